//! Bike-station open data into bronze: Vélib' (Paris, Opendatasoft Explore API v2.1) and Vélo'v
//! (Lyon, GBFS). Every run appends one snapshot of each source, stamped with the run's `run_at`.
//!
//! The sources read the bundled snapshot in `data/opendata/` by default, so runs are offline and
//! deterministic; `--live` (`opendata.mode=live`) asks the real services, `--opendata-dir`
//! (`opendata.dir`) reads another snapshot, and `--set opendata.mode=record --set
//! opendata.dir=<dir>` records the live responses as a new snapshot. Records that cannot be read
//! (wrong types, missing keys) go to `lakehouse.rejects` with the reason and the raw JSON; a
//! station list's or a Vélib' availability record whose only fault is its coordinates (null,
//! missing, swapped) is kept with NULL ones, its reason recorded there too.

pub mod silver;
pub mod velib;
pub mod velov;

/// The bundled snapshot, `data/opendata/` of the repository (the default of `opendata.dir`).
pub const SNAPSHOT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/opendata");
