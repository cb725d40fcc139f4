//! Vélib' Métropole (Paris and its neighbours) from the City of Paris' Opendatasoft portal:
//! real-time availability (`velib-disponibilite-en-temps-reel`) and station locations
//! (`velib-emplacement-des-stations`).
//!
//! Settings: `velib.page_size` (records per page, default 100, the API's maximum),
//! `velib.fetch` (`pages`, the default, or `export`: each dataset in one request to the exports
//! endpoint instead of a request per page, for live loops within the anonymous daily quota),
//! `velib.base_url` (default the Paris portal's Explore API v2.1) and `velib.where` (an ODSQL
//! filter of the availability records, none by default; live runs only), plus the `opendata.*`
//! settings of the sources.
//!
//! The filter applies to the availability only: the station list is a full snapshot whose
//! history (`silver.velib_station_info`, `gold.dim_bike_station`) closes every station it does
//! not list, so a filtered list would end the history of every station the filter leaves out.

use std::path::Path;

use lakehouse_runtime::prelude::*;
use lakehouse_runtime::sources::{
    self, Area, Mode, OPENDATA_PARIS, OdsClient, OdsPages, OdsQuery, OpenData, Record, Rejected,
};
use serde::Serialize;

use super::SNAPSHOT_DIR;

/// The real-time availability dataset.
pub const STATUS_DATASET: &str = "velib-disponibilite-en-temps-reel";

/// The station locations dataset.
pub const INFO_DATASET: &str = "velib-emplacement-des-stations";

/// The fields read from the availability dataset.
pub const STATUS_FIELDS: &[&str] = &[
    "stationcode",
    "name",
    "is_installed",
    "capacity",
    "numdocksavailable",
    "numbikesavailable",
    "mechanical",
    "ebike",
    "is_renting",
    "is_returning",
    "duedate",
    "coordonnees_geo",
    "nom_arrondissement_communes",
    "code_insee_commune",
    "station_opening_hours",
];

/// The fields read from the locations dataset.
pub const INFO_FIELDS: &[&str] = &[
    "stationcode",
    "name",
    "capacity",
    "coordonnees_geo",
    "station_opening_hours",
];

/// Where Vélib' stations are: Paris and the communes around it. A point outside is wrong data
/// (most often longitude and latitude swapped).
pub const PARIS_AREA: Area = Area {
    name: "the Vélib' Métropole area",
    lon: 2.0..=2.7,
    lat: 48.6..=49.1,
};

/// The real-time state of each Vélib' station, one row per station and run, as the
/// Opendatasoft dataset `velib-disponibilite-en-temps-reel` gives it.
#[derive(Table, Serialize)]
#[table(schema = "bronze", name = "velib_station_status")]
pub struct BronzeVelibStationStatus {
    /// Station code (`stationcode`), the station's business key
    pub stationcode: String,
    /// Station name
    pub name: Option<String>,
    /// Whether the station is installed (`is_installed`, "OUI"/"NON" in the source)
    pub is_installed: bool,
    /// Number of docks (`capacity`)
    pub capacity: Option<i32>,
    /// Free docks (`numdocksavailable`)
    pub numdocksavailable: i32,
    /// Bikes available, both kinds (`numbikesavailable`)
    pub numbikesavailable: i32,
    /// Mechanical bikes available
    pub mechanical: Option<i32>,
    /// Electric bikes available
    pub ebike: Option<i32>,
    /// Whether bikes can be rented (`is_renting`, "OUI"/"NON" in the source)
    pub is_renting: bool,
    /// Whether bikes can be returned (`is_returning`, "OUI"/"NON" in the source)
    pub is_returning: bool,
    /// When the station last reported (`duedate`, UTC)
    pub duedate: Option<Timestamp>,
    /// Longitude (`coordonnees_geo.lon`, WGS 84); NULL when unusable (the reason is in
    /// `lakehouse.rejects`)
    pub lon: Option<f64>,
    /// Latitude (`coordonnees_geo.lat`, WGS 84); NULL when unusable
    pub lat: Option<f64>,
    /// Commune, or "Paris" (`nom_arrondissement_communes`)
    pub nom_arrondissement_communes: Option<String>,
    /// INSEE code of the commune (`code_insee_commune`)
    pub code_insee_commune: Option<String>,
    /// Opening hours as the source writes them (`station_opening_hours`, usually null)
    pub station_opening_hours: Option<String>,
    /// Logical time of the run that ingested the row
    pub run_at: Timestamp,
}

/// The Vélib' stations' locations, one row per station and run, as the Opendatasoft dataset
/// `velib-emplacement-des-stations` gives them.
#[derive(Table, Serialize)]
#[table(schema = "bronze", name = "velib_station_info")]
pub struct BronzeVelibStationInfo {
    /// Station code (`stationcode`), the station's business key
    pub stationcode: String,
    /// Station name
    pub name: Option<String>,
    /// Number of docks (`capacity`)
    pub capacity: Option<i32>,
    /// Longitude (`coordonnees_geo.lon`, WGS 84); NULL when unusable (the reason is in
    /// `lakehouse.rejects`)
    pub lon: Option<f64>,
    /// Latitude (`coordonnees_geo.lat`, WGS 84); NULL when unusable
    pub lat: Option<f64>,
    /// Opening hours as the source writes them (`station_opening_hours`, usually null)
    pub station_opening_hours: Option<String>,
    /// Logical time of the run that ingested the row
    pub run_at: Timestamp,
}

/// A status row from one record of `velib-disponibilite-en-temps-reel`. Counts must be
/// non-negative integers, flags "OUI"/"NON"; coordinates, which availability does not need
/// (the station list places stations), are NULL unless numbers inside [`PARIS_AREA`], the
/// reason recorded.
pub fn status_row(r: &Record<'_>, run_at: Timestamp) -> Result<BronzeVelibStationStatus, Rejected> {
    let stationcode = r.string("stationcode")?;
    let (lon, lat) = r
        .or_null(
            r.object("coordonnees_geo")
                .and_then(|point| point.lon_lat("lon", "lat", &PARIS_AREA)),
        )
        .unzip();
    Ok(BronzeVelibStationStatus {
        stationcode,
        name: r.opt_string("name")?,
        is_installed: r.flag("is_installed")?,
        capacity: r.opt_count("capacity")?,
        numdocksavailable: r.count("numdocksavailable")?,
        numbikesavailable: r.count("numbikesavailable")?,
        mechanical: r.opt_count("mechanical")?,
        ebike: r.opt_count("ebike")?,
        is_renting: r.flag("is_renting")?,
        is_returning: r.flag("is_returning")?,
        duedate: r.opt_datetime("duedate")?,
        lon,
        lat,
        nom_arrondissement_communes: r.opt_string("nom_arrondissement_communes")?,
        code_insee_commune: r.opt_string("code_insee_commune")?,
        station_opening_hours: r.opt_text("station_opening_hours"),
        run_at,
    })
}

/// A location row from one record of `velib-emplacement-des-stations`. The list is a full
/// snapshot: a station it lacks has its history closed, so only a record without a station
/// code is rejected; a description that cannot be read is NULL, with the reason recorded.
pub fn info_row(r: &Record<'_>, run_at: Timestamp) -> Result<BronzeVelibStationInfo, Rejected> {
    let stationcode = r.string("stationcode")?;
    let capacity = r.or_null(r.opt_count("capacity")).flatten();
    let (lon, lat) = r
        .or_null(
            r.object("coordonnees_geo")
                .and_then(|point| point.lon_lat("lon", "lat", &PARIS_AREA)),
        )
        .unzip();
    Ok(BronzeVelibStationInfo {
        stationcode,
        name: r.or_null(r.opt_string("name")).flatten(),
        capacity,
        lon,
        lat,
        station_opening_hours: r.opt_text("station_opening_hours"),
        run_at,
    })
}

/// The order of the station list: by code, then by what tells two listings of one code apart.
const INFO_ORDER: &str = "stationcode,capacity,name";

/// The order of the availability reports: by code, then by what tells two reports of one code
/// apart (the service orders ties as it likes, maybe otherwise from one page's request to the
/// next, and paging would then find its pages shifted and fail).
const STATUS_ORDER: &str = "stationcode,duedate,numbikesavailable,numdocksavailable";

/// The pages of `dataset` with `fields`, ordered by `order_by` (the station code first), a
/// record identified by `identity` ([`OdsQuery::identified_by`]; empty: the whole record), from
/// the mode's fetcher; `filtered`: with the `velib.where` filter.
fn pages(
    cx: &Ctx,
    dataset: &str,
    fields: &[&str],
    order_by: &str,
    identity: &[&str],
    filtered: bool,
) -> Result<OdsPages> {
    let settings = cx.settings();
    let open = OpenData::from_settings(settings, "velib", Path::new(SNAPSHOT_DIR))?;
    open.check_run_at(cx.run_at(), settings)?;
    let base_url = settings.get("velib.base_url").unwrap_or(OPENDATA_PARIS);
    let client = OdsClient::new(open.fetch()?, base_url)?;
    let mut query = OdsQuery::new(dataset, order_by)
        .select(fields)
        .identified_by(identity)
        .page_size(settings.parse_or("velib.page_size", 100u32)?);
    if let Some(filter) = settings.get("velib.where").filter(|_| filtered) {
        // A snapshot file holds the unfiltered answer (its name keeps only the paging keys):
        // reading one would ignore the filter, recording one would pass a filtered answer off
        // as the whole dataset.
        if open.mode() != Mode::Live {
            return Err(Error::Refused(format!(
                "`velib.where` = {filter:?} filters the live API's answer, and only a live run \
                 can apply it (snapshots hold the unfiltered answers): run with `--live`, or \
                 leave the setting out"
            )));
        }
        query = query.filter(filter);
    }
    match settings.get("velib.fetch").unwrap_or("pages") {
        "pages" => client.pages(query),
        "export" => client.export(query),
        other => Err(Error::msg(format!(
            "`velib.fetch` = {other:?}: `pages` (a request per page of `velib.page_size` \
             records, the default) or `export` (each dataset in one request)"
        ))),
    }
}

/// Ingests the real-time availability of every Vélib' station.
// A service that answers slowly, a chunk at a time, holds no run for ever.
#[pipeline(tags = ["velib", "opendata"], timeout = "10m")]
pub async fn velib_station_status(cx: &Ctx) -> Result<Frame<BronzeVelibStationStatus>> {
    if cx.is_dry_run() {
        return cx.empty();
    }
    let run_at = cx.run_at();
    // The counts and `duedate` change every minute or so, maybe between two page requests:
    // the record a page starts with is told the previous page's last by its code alone.
    let mut pages = pages(
        cx,
        STATUS_DATASET,
        STATUS_FIELDS,
        STATUS_ORDER,
        &["stationcode"],
        true,
    )?;
    sources::collect_frame(cx, &mut pages, |r| status_row(r, run_at)).await
}

/// Ingests the location and size of every Vélib' station.
// A service that answers slowly, a chunk at a time, holds no run for ever.
#[pipeline(tags = ["velib", "opendata"], timeout = "10m")]
pub async fn velib_station_info(cx: &Ctx) -> Result<Frame<BronzeVelibStationInfo>> {
    if cx.is_dry_run() {
        return cx.empty();
    }
    let run_at = cx.run_at();
    // The whole list, whatever `velib.where` says (see the module's documentation).
    // A station listed twice keeps its first listing: the service orders records tied on the
    // code as it likes, so the listings are ordered further, and the same one is kept at every
    // run (a snapshot keeps the order it was recorded in).
    let mut pages = pages(cx, INFO_DATASET, INFO_FIELDS, INFO_ORDER, &[], false)?;
    let row = super::first_listing(
        |s: &BronzeVelibStationInfo| &s.stationcode,
        |r| info_row(r, run_at),
    );
    sources::collect_frame(cx, &mut pages, row).await
}
