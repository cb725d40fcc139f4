//! Vélo'v (Lyon) from the Grand Lyon GBFS feeds `station_information` and `station_status`.
//!
//! Settings: `velov.gbfs_url` to find the feeds through a `gbfs.json` discovery document (by
//! default the two feed URLs are used directly), plus the `opendata.*` settings of the sources.

use std::path::Path;

use lakehouse_runtime::prelude::*;
use lakehouse_runtime::sources::{
    self, Area, GbfsClient, GbfsFeed, Mode, OpenData, Record, Rejected,
};
use serde::Serialize;

use super::SNAPSHOT_DIR;

/// The Grand Lyon feeds of Vélo'v, by GBFS feed name.
pub const FEEDS: [(&str, &str); 2] = [
    (
        "station_information",
        "https://download.data.grandlyon.com/files/rdata/jcd_jcdecaux.jcdvelov/station_information.json",
    ),
    (
        "station_status",
        "https://download.data.grandlyon.com/files/rdata/jcd_jcdecaux.jcdvelov/station_status.json",
    ),
];

/// The languages a translated name (GBFS 3.0) is read in, by preference.
pub const LANGUAGES: [&str; 2] = ["fr", "en"];

/// Where Vélo'v stations are: the Lyon metropolis. A point outside is wrong data (most often
/// longitude and latitude swapped).
pub const LYON_AREA: Area = Area {
    name: "the Lyon metropolis",
    lon: 4.65..=5.1,
    lat: 45.55..=45.95,
};

/// The Vélo'v stations' locations, one row per station and run, from GBFS
/// `station_information`.
#[derive(Table, Serialize)]
#[table(schema = "bronze", name = "velov_station_info")]
pub struct BronzeVelovStationInfo {
    /// Station id (`station_id`), the station's business key; text, not always numeric
    pub station_id: String,
    /// Station name, as published (sometimes prefixed with its number)
    pub name: Option<String>,
    /// Longitude (`lon`, WGS 84); NULL when unusable (the reason is in `lakehouse.rejects`)
    pub lon: Option<f64>,
    /// Latitude (`lat`, WGS 84); NULL when unusable
    pub lat: Option<f64>,
    /// Street address
    pub address: Option<String>,
    /// Number of docks (`capacity`)
    pub capacity: Option<i32>,
    /// Accepted payment methods, comma-separated (`rental_methods`, e.g. "CREDITCARD")
    pub rental_methods: Option<String>,
    /// When the publisher last updated the feed (`last_updated`)
    pub feed_last_updated: Timestamp,
    /// Logical time of the run that ingested the row
    pub run_at: Timestamp,
}

/// The real-time state of each Vélo'v station, one row per station and run, from GBFS
/// `station_status`.
#[derive(Table, Serialize)]
#[table(schema = "bronze", name = "velov_station_status")]
pub struct BronzeVelovStationStatus {
    /// Station id (`station_id`), the station's business key
    pub station_id: String,
    /// Bikes available (`num_bikes_available`)
    pub num_bikes_available: i32,
    /// Bikes present but out of order (`num_bikes_disabled`)
    pub num_bikes_disabled: Option<i32>,
    /// Free docks (`num_docks_available`)
    pub num_docks_available: i32,
    /// Docks out of order (`num_docks_disabled`)
    pub num_docks_disabled: Option<i32>,
    /// Whether the station is installed (`is_installed`, boolean or 1/0 in the source)
    pub is_installed: bool,
    /// Whether bikes can be rented (`is_renting`, boolean or 1/0 in the source)
    pub is_renting: bool,
    /// Whether bikes can be returned (`is_returning`, boolean or 1/0 in the source)
    pub is_returning: bool,
    /// When the station last reported (`last_reported`; the epoch when it never did)
    pub last_reported: Timestamp,
    /// Mechanical bikes available (`vehicle_types_available`, type `mechanical`)
    pub mechanical: Option<i32>,
    /// Electric bikes available (`vehicle_types_available`, type `electrical`)
    pub electrical: Option<i32>,
    /// When the publisher last updated the feed (`last_updated`)
    pub feed_last_updated: Timestamp,
    /// Logical time of the run that ingested the row
    pub run_at: Timestamp,
}

/// A location row from one station of `station_information`. The list is a full snapshot: a
/// station it lacks has its history closed, so only a station without an id is rejected; a
/// description that cannot be read is NULL, with the reason recorded.
pub fn info_row(
    r: &Record<'_>,
    feed_last_updated: Timestamp,
    run_at: Timestamp,
) -> Result<BronzeVelovStationInfo, Rejected> {
    let station_id = r.id("station_id")?;
    let capacity = r.or_null(r.opt_count("capacity")).flatten();
    let (lon, lat) = r.or_null(r.lon_lat("lon", "lat", &LYON_AREA)).unzip();
    let rental_methods = r.opt_array("rental_methods").and_then(|methods| {
        methods
            .map(|methods| {
                methods
                    .iter()
                    .map(|m| {
                        m.as_str().map(str::to_owned).ok_or_else(|| {
                            Rejected::new(format!("`rental_methods` should hold strings, not {m}"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(|methods| methods.join(","))
            })
            .transpose()
    });
    Ok(BronzeVelovStationInfo {
        station_id,
        name: r.or_null(r.opt_localized("name", &LANGUAGES)).flatten(),
        lon,
        lat,
        address: r.or_null(r.opt_string("address")).flatten(),
        capacity,
        rental_methods: r.or_null(rental_methods).flatten(),
        feed_last_updated,
        run_at,
    })
}

/// A status row from one station of `station_status`.
pub fn status_row(
    r: &Record<'_>,
    feed_last_updated: Timestamp,
    run_at: Timestamp,
) -> Result<BronzeVelovStationStatus, Rejected> {
    let station_id = r.id("station_id")?;
    let (mut mechanical, mut electrical) = (None, None);
    if let Some(types) = r.opt_objects("vehicle_types_available")? {
        for vehicle in types {
            // Other types (cargo bikes…) have no column, and their counts are not read: the
            // bike total counts them.
            match vehicle.string("vehicle_type_id")?.as_str() {
                "mechanical" => mechanical = Some(vehicle.count("count")?),
                "electrical" => electrical = Some(vehicle.count("count")?),
                _ => {}
            }
        }
    }
    // GBFS 3.0 counts vehicles: `num_vehicles_*` are 2.x's `num_bikes_*`.
    let renamed = |bikes: &'static str, vehicles: &'static str| match r.get(bikes) {
        None => vehicles,
        Some(_) => bikes,
    };
    Ok(BronzeVelovStationStatus {
        num_bikes_available: r.count(renamed("num_bikes_available", "num_vehicles_available"))?,
        num_bikes_disabled: r.opt_count(renamed("num_bikes_disabled", "num_vehicles_disabled"))?,
        num_docks_available: r.count("num_docks_available")?,
        num_docks_disabled: r.opt_count("num_docks_disabled")?,
        is_installed: r.flag("is_installed")?,
        is_renting: r.flag("is_renting")?,
        is_returning: r.flag("is_returning")?,
        last_reported: r.epoch_seconds("last_reported")?,
        mechanical,
        electrical,
        station_id,
        feed_last_updated,
        run_at,
    })
}

/// Reads the station feed `name` from the mode's fetcher; warns when live data is stale.
async fn feed(cx: &Ctx, name: &str) -> Result<GbfsFeed> {
    let settings = cx.settings();
    let open = OpenData::from_settings(settings, "velov", Path::new(SNAPSHOT_DIR))?;
    open.check_run_at(cx.run_at(), settings)?;
    let fetch = open.fetch()?;
    let client = match settings.get("velov.gbfs_url") {
        Some(url) => GbfsClient::discover(fetch, url)?,
        None => GbfsClient::direct(fetch, FEEDS)?,
    };
    let feed = client.station_feed(name).await?;
    if open.mode() != Mode::Snapshot {
        // Against the time of the fetch: a run's logical time may be minutes before it (a long
        // run), or days (a backfill).
        feed.warn_if_stale(Timestamp::now());
    }
    Ok(feed)
}

/// Ingests the location and size of every Vélo'v station.
// A service that answers slowly, a chunk at a time, holds no run for ever.
#[pipeline(tags = ["velov", "opendata"], timeout = "10m")]
pub async fn velov_station_info(cx: &Ctx) -> Result<Frame<BronzeVelovStationInfo>> {
    if cx.is_dry_run() {
        return cx.empty();
    }
    let run_at = cx.run_at();
    let mut feed = feed(cx, "station_information").await?;
    // The listing of a station listed twice that is kept does not depend on the feed's order.
    super::order_repeated_listings(&mut feed.stations, "station_id");
    let updated = feed.last_updated;
    let mut pages = feed.into_pages();
    let row = super::first_listing(
        |s: &BronzeVelovStationInfo| &s.station_id,
        |r| info_row(r, updated, run_at),
    );
    sources::collect_frame(cx, &mut pages, row).await
}

/// Ingests the real-time availability of every Vélo'v station.
// A service that answers slowly, a chunk at a time, holds no run for ever.
#[pipeline(tags = ["velov", "opendata"], timeout = "10m")]
pub async fn velov_station_status(cx: &Ctx) -> Result<Frame<BronzeVelovStationStatus>> {
    if cx.is_dry_run() {
        return cx.empty();
    }
    let run_at = cx.run_at();
    let feed = feed(cx, "station_status").await?;
    let updated = feed.last_updated;
    let mut pages = feed.into_pages();
    sources::collect_frame(cx, &mut pages, |r| status_row(r, updated, run_at)).await
}
