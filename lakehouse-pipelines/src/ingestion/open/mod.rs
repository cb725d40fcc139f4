//! Bike-station open data into bronze: Vélib' (Paris, Opendatasoft Explore API v2.1) and Vélo'v
//! (Lyon, GBFS). Every run appends one snapshot of each source, stamped with the run's `run_at`.
//!
//! The sources read the bundled snapshot in `data/opendata/` by default, so runs are offline and
//! deterministic; `--live` (`opendata.mode=live`) asks the real services, `--opendata-dir`
//! (`opendata.dir`) reads another snapshot, and `--set opendata.mode=record --set
//! opendata.dir=<dir>` records the live responses as a new snapshot. Records that cannot be read
//! (wrong types, missing keys, a station's second listing) go to `lakehouse.rejects` with the
//! reason and the raw JSON; a
//! station list's or a Vélib' availability record whose only fault is its coordinates (null,
//! missing, swapped) is kept with NULL ones, its reason recorded there too.

pub mod silver;
pub mod velib;
pub mod velov;

use lakehouse_runtime::sources::{Record, Rejected};

/// `row`, rejecting a record of a station the list already gave: a list holding one station
/// twice (Vélo'v has sent a `(DOUBLON)` copy under the same id) keeps its first listing, in the
/// source's order, and the copy goes to `lakehouse.rejects` with its raw JSON, seen rather than
/// silently chosen between.
pub(crate) fn first_listing<R>(
    station: fn(&R) -> &str,
    mut row: impl FnMut(&Record<'_>) -> Result<R, Rejected>,
) -> impl FnMut(&Record<'_>) -> Result<R, Rejected> {
    let mut listed = std::collections::HashSet::new();
    move |record| {
        let parsed = row(record)?;
        let code = station(&parsed);
        if !listed.insert(code.to_owned()) {
            return Err(Rejected::new(format!(
                "station `{code}` is listed twice: its first listing is kept"
            )));
        }
        Ok(parsed)
    }
}

/// The bundled snapshot, `data/opendata/` of the repository (the default of `opendata.dir`).
pub const SNAPSHOT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/opendata");
