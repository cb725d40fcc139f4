//! Bike availability facts.

use lakehouse_runtime::prelude::*;

use crate::ingestion::open::silver::{
    SilverVelibStationStatus, SilverVelovStationStatus, silver_velib_station_status,
    silver_velov_station_status,
};
use crate::modelisation::dimensions::dim_bike_station::{DimBikeStation, dim_bike_station};
use crate::modelisation::dimensions::dim_date::{DimDate, dim_date};

/// Availability of every station at every update time, Paris and Lyon together.
#[derive(Table)]
#[table(schema = "gold", name = "fact_bike_status", key(station_key, timestamp), mode = merge, quality = blocking)]
pub struct FactBikeStatus {
    /// The station (same key as the dimension: SHA-256 of `station_source || station_id`)
    #[column(references = DimBikeStation::station_key)]
    pub station_key: String,
    /// When the source last updated the station
    pub timestamp: Timestamp,
    /// The update's local date (Europe/Paris) as `yyyyMMdd`
    #[column(references = DimDate::date_key)]
    pub date_key: String,
    /// `velib` or `velov`
    pub station_source: String,
    /// The station's id in its source
    pub station_id: String,
    /// Free docks
    pub available_docks: i32,
    /// Available bikes
    pub available_bikes: i32,
    /// Available mechanical bikes
    pub mechanical_bikes: Option<i32>,
    /// Available electric bikes
    pub electric_bikes: Option<i32>,
    /// Whether the station is installed
    pub is_installed: bool,
    /// Whether bikes can be rented
    pub is_renting: bool,
    /// Whether bikes can be returned
    pub is_returning: bool,
    /// Logical time of the run that ingested the record (silver's): a backfill merging
    /// silver's later changes of a record does not take them for older than the fact's row
    pub run_at: Timestamp,
}

/// The stations' time zone (Paris and Lyon alike): their day starts at local midnight, not UTC's.
const LOCAL_TIME_ZONE: &str = "Europe/Paris";

/// The local date of `timestamp` (a UTC instant) as `yyyyMMdd`: the key of `gold.dim_date`.
pub fn date_key(timestamp: Expr) -> Typed<String> {
    let local = cast(
        timestamp,
        DataType::Timestamp(TimeUnit::Microsecond, Some(LOCAL_TIME_ZONE.into())),
    );
    typed::<String>(to_char(local, lit("%Y%m%d")))
}

/// Every availability record of both sources, keyed like the station dimension: each run
/// merges the records silver inserted or updated since the last one (its change data feed), not
/// the whole history again.
#[pipeline(depends_on = [silver_velib_station_status, silver_velov_station_status, dim_bike_station, dim_date])]
pub async fn fact_bike_status(
    velib: Changes<SilverVelibStationStatus>,
    velov: Changes<SilverVelovStationStatus>,
) -> Result<Frame<FactBikeStatus>> {
    use SilverVelibStationStatus as p;
    use SilverVelovStationStatus as l;
    let paris = velib.select_into(FactBikeStatusSelect {
        station_key: surrogate_key([lit("velib"), p::stationcode.expr()]),
        timestamp: p::timestamp,
        date_key: date_key(p::timestamp.expr()),
        station_source: "velib",
        station_id: p::stationcode,
        available_docks: p::numdocksavailable,
        available_bikes: p::numbikesavailable,
        mechanical_bikes: p::mechanical,
        electric_bikes: p::ebike,
        is_installed: p::is_installed,
        is_renting: p::is_renting,
        is_returning: p::is_returning,
        run_at: p::run_at,
    })?;
    let lyon = velov.select_into(FactBikeStatusSelect {
        station_key: surrogate_key([lit("velov"), l::station_id.expr()]),
        timestamp: l::last_reported,
        date_key: date_key(l::last_reported.expr()),
        station_source: "velov",
        station_id: l::station_id,
        available_docks: l::num_docks_available,
        available_bikes: l::num_bikes_available,
        mechanical_bikes: l::mechanical,
        electric_bikes: l::electrical,
        is_installed: l::is_installed,
        is_renting: l::is_renting,
        is_returning: l::is_returning,
        run_at: l::run_at,
    })?;
    paris.union(lyon)
}
