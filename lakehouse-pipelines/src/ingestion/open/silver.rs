//! Bike-station open data, bronze → silver: the new rows of each run, cleaned and keyed.
//! Availability is merged per (station, source timestamp); station descriptions keep their
//! history (SCD2), stations missing from a run's full list being closed.

use lakehouse_runtime::prelude::*;

use super::velib::{
    BronzeVelibStationInfo, BronzeVelibStationStatus, velib_station_info, velib_station_status,
};
use super::velov::{
    BronzeVelovStationInfo, BronzeVelovStationStatus, velov_station_info, velov_station_status,
};

/// Vélib' availability, one row per station and update time.
#[derive(Table)]
#[table(schema = "silver", name = "velib_station_status", key(stationcode, timestamp), mode = merge,
        expect(name = "plausible_time", on_fail = drop,
               expr = "\"timestamp\" > TIMESTAMP '1970-01-01T00:00:00Z' AND \"timestamp\" <= run_at + INTERVAL '1 day'"),
        expect(name = "bike_types_add_up", expr = "mechanical + ebike = numbikesavailable"),
        property(key = "delta.enableChangeDataFeed", value = "true"))]
pub struct SilverVelibStationStatus {
    /// Station code
    pub stationcode: String,
    /// When the source last updated the station (`duedate`)
    pub timestamp: Timestamp,
    /// Station name
    pub name: Option<String>,
    /// Whether the station is installed
    pub is_installed: bool,
    /// Whether bikes can be rented
    pub is_renting: bool,
    /// Whether bikes can be returned
    pub is_returning: bool,
    /// Number of docks
    pub capacity: Option<i32>,
    /// Free docks
    pub numdocksavailable: i32,
    /// Available bikes
    pub numbikesavailable: i32,
    /// Available mechanical bikes
    pub mechanical: Option<i32>,
    /// Available electric bikes
    pub ebike: Option<i32>,
    /// Longitude (WGS84), NULL when the source's was unusable
    pub longitude: Option<f64>,
    /// Latitude (WGS84), NULL when the source's was unusable
    pub latitude: Option<f64>,
    /// Municipality
    pub nom_arrondissement_communes: Option<String>,
    /// INSEE code of the municipality
    pub code_insee_commune: Option<String>,
    /// Logical time of the run that ingested the row
    pub run_at: Timestamp,
}

/// Vélib' stations, with the history of their description.
#[derive(Table)]
#[table(schema = "silver", name = "velib_station_info", key(stationcode), mode = scd2,
        change_columns(name, capacity, longitude, latitude, station_opening_hours))]
pub struct SilverVelibStationInfo {
    /// Station code
    pub stationcode: String,
    /// Station name
    pub name: Option<String>,
    /// Number of docks
    pub capacity: Option<i32>,
    /// Longitude (WGS84); NULL when the list's was unusable
    pub longitude: Option<f64>,
    /// Latitude (WGS84); NULL when the list's was unusable
    pub latitude: Option<f64>,
    /// Opening hours, when published
    pub station_opening_hours: Option<String>,
    /// Logical time of the run that ingested the row
    pub run_at: Timestamp,
}

/// Vélo'v availability, one row per station and report time.
#[derive(Table)]
#[table(schema = "silver", name = "velov_station_status", key(station_id, last_reported), mode = merge,
        expect(name = "plausible_time", on_fail = drop,
               expr = "last_reported > TIMESTAMP '1970-01-01T00:00:00Z' AND last_reported <= run_at + INTERVAL '1 day'"),
        property(key = "delta.enableChangeDataFeed", value = "true"))]
pub struct SilverVelovStationStatus {
    /// Station id
    pub station_id: String,
    /// When the station last reported
    pub last_reported: Timestamp,
    /// Available bikes
    pub num_bikes_available: i32,
    /// Disabled bikes
    pub num_bikes_disabled: Option<i32>,
    /// Free docks
    pub num_docks_available: i32,
    /// Disabled docks
    pub num_docks_disabled: Option<i32>,
    /// Whether the station is installed
    pub is_installed: bool,
    /// Whether bikes can be rented
    pub is_renting: bool,
    /// Whether bikes can be returned
    pub is_returning: bool,
    /// Available mechanical bikes
    pub mechanical: Option<i32>,
    /// Available electric bikes
    pub electrical: Option<i32>,
    /// Logical time of the run that ingested the row
    pub run_at: Timestamp,
}

/// Vélo'v stations, with the history of their description.
#[derive(Table)]
#[table(schema = "silver", name = "velov_station_info", key(station_id), mode = scd2,
        change_columns(name, longitude, latitude, address, capacity, rental_methods))]
pub struct SilverVelovStationInfo {
    /// Station id
    pub station_id: String,
    /// Station name
    pub name: Option<String>,
    /// Longitude (WGS84); NULL when the list's was unusable
    pub longitude: Option<f64>,
    /// Latitude (WGS84); NULL when the list's was unusable
    pub latitude: Option<f64>,
    /// Street address
    pub address: Option<String>,
    /// Number of docks
    pub capacity: Option<i32>,
    /// Accepted payment methods, comma-separated (e.g. "KEY,CREDITCARD")
    pub rental_methods: Option<String>,
    /// Logical time of the run that ingested the row
    pub run_at: Timestamp,
}

/// The new Vélib' availability rows. One without an update time (read as 1970), or with one
/// from the future, is dropped by the table's `plausible_time` expectation, which counts it in
/// `lakehouse.quality_issues` (a date outside the calendar would also block the fact's date
/// check): stations that never reported, or a run dated before its data (a backfill over a
/// snapshot of later).
#[pipeline(depends_on = [velib_station_status], tags = ["velib", "opendata"])]
pub async fn silver_velib_station_status(
    raw: Changes<BronzeVelibStationStatus>,
) -> Result<Frame<SilverVelibStationStatus>> {
    use BronzeVelibStationStatus as b;
    raw.select_into(SilverVelibStationStatusSelect {
        stationcode: b::stationcode,
        timestamp: typed::<Timestamp>(coalesce(vec![b::duedate.expr(), Timestamp(0).lit()])),
        name: b::name,
        is_installed: b::is_installed,
        is_renting: b::is_renting,
        is_returning: b::is_returning,
        capacity: b::capacity,
        numdocksavailable: b::numdocksavailable,
        numbikesavailable: b::numbikesavailable,
        mechanical: b::mechanical,
        ebike: b::ebike,
        longitude: b::lon,
        latitude: b::lat,
        nom_arrondissement_communes: b::nom_arrondissement_communes,
        code_insee_commune: b::code_insee_commune,
        run_at: b::run_at,
    })
}

/// The Vélib' station list of the latest run: new and changed stations get a new version,
/// stations no longer listed are closed.
#[pipeline(depends_on = [velib_station_info], tags = ["velib", "opendata"], full_snapshot)]
pub async fn silver_velib_station_info(
    raw: Changes<BronzeVelibStationInfo>,
) -> Result<Frame<SilverVelibStationInfo>> {
    use BronzeVelibStationInfo as b;
    // The newest run's list only (several runs' after a failure: a station the newest lacks is
    // closed). Bronze keeps a station's first listing (a second goes to the rejects); should
    // a list still hold one twice, one row is kept, the same at every run: ordered by every
    // change column, so two rows that differ in any are never tied.
    raw.latest_only(b::run_at)?
        .latest_by(
            [b::stationcode.expr()],
            [
                b::capacity.expr(),
                b::name.expr(),
                b::lon.expr(),
                b::lat.expr(),
                b::station_opening_hours.expr(),
            ],
        )?
        .select_into(SilverVelibStationInfoSelect {
            stationcode: b::stationcode,
            name: b::name,
            capacity: b::capacity,
            longitude: b::lon,
            latitude: b::lat,
            station_opening_hours: b::station_opening_hours,
            run_at: b::run_at,
        })
}

/// The new Vélo'v availability rows. Stations that never reported (`last_reported` 0), or that
/// report from the future, are dropped by the table's `plausible_time` expectation (counted in
/// `lakehouse.quality_issues`), as for Vélib'. (The future is measured from the row's run: a
/// report more than a day ahead of it is a clock error, or a run dated before its data.)
#[pipeline(depends_on = [velov_station_status], tags = ["velov", "opendata"])]
pub async fn silver_velov_station_status(
    raw: Changes<BronzeVelovStationStatus>,
) -> Result<Frame<SilverVelovStationStatus>> {
    use BronzeVelovStationStatus as b;
    raw.select_into(SilverVelovStationStatusSelect {
        station_id: b::station_id,
        last_reported: b::last_reported,
        num_bikes_available: b::num_bikes_available,
        num_bikes_disabled: b::num_bikes_disabled,
        num_docks_available: b::num_docks_available,
        num_docks_disabled: b::num_docks_disabled,
        is_installed: b::is_installed,
        is_renting: b::is_renting,
        is_returning: b::is_returning,
        mechanical: b::mechanical,
        electrical: b::electrical,
        run_at: b::run_at,
    })
}

/// The Vélo'v station list of the latest run, with history.
#[pipeline(depends_on = [velov_station_info], tags = ["velov", "opendata"], full_snapshot)]
pub async fn silver_velov_station_info(
    raw: Changes<BronzeVelovStationInfo>,
) -> Result<Frame<SilverVelovStationInfo>> {
    use BronzeVelovStationInfo as b;
    // As for Vélib': the newest run's list, one row per station whatever their order.
    raw.latest_only(b::run_at)?
        .latest_by(
            [b::station_id.expr()],
            [
                b::capacity.expr(),
                b::name.expr(),
                b::address.expr(),
                b::lon.expr(),
                b::lat.expr(),
                b::rental_methods.expr(),
            ],
        )?
        .select_into(SilverVelovStationInfoSelect {
            station_id: b::station_id,
            name: b::name,
            longitude: b::lon,
            latitude: b::lat,
            address: b::address,
            capacity: b::capacity,
            rental_methods: b::rental_methods,
            run_at: b::run_at,
        })
}
