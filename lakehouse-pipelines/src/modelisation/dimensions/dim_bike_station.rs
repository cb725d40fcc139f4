//! The bike-station dimension: Vélib' and Vélo'v stations in one table.

use lakehouse_runtime::prelude::*;

use crate::ingestion::open::silver::{
    SilverVelibStationInfo, SilverVelibStationStatus, SilverVelovStationInfo,
    SilverVelovStationStatus, silver_velib_station_info, silver_velib_station_status,
    silver_velov_station_info, silver_velov_station_status,
};

/// Bike-sharing stations of Paris and Lyon, with the history of their description. A station
/// that reports availability but is missing from its source's station list is included too
/// (`is_listed` false), with what its status tells, so every availability fact has its station.
#[derive(Table)]
#[table(schema = "gold", name = "dim_bike_station", key(station_key), mode = scd2, quality = blocking,
        change_columns(name, capacity, longitude, latitude, address, opening_hours, rental_methods,
                       is_listed))]
pub struct DimBikeStation {
    /// Surrogate key: SHA-256 of `station_source || station_id`
    pub station_key: String,
    /// `velib` or `velov`
    pub station_source: String,
    /// The station's id in its source
    pub station_id: String,
    /// Station name
    pub name: Option<String>,
    /// Number of docks
    pub capacity: Option<i32>,
    /// Longitude (WGS84)
    pub longitude: Option<f64>,
    /// Latitude (WGS84)
    pub latitude: Option<f64>,
    /// Street address (Vélo'v only)
    pub address: Option<String>,
    /// Opening hours, when published (Vélib' only)
    pub opening_hours: Option<String>,
    /// Accepted payment methods, comma-separated (Vélo'v only)
    pub rental_methods: Option<String>,
    /// Whether the station is in its source's current station list
    pub is_listed: bool,
    /// Logical time of the run that wrote the row
    pub run_at: Timestamp,
}

/// The current stations of both sources' lists, plus the stations only their availability
/// history knows (`is_listed` false; a Vélib' one with its latest status's attributes, a
/// Vélo'v one with none, its feed carrying no description): every availability
/// fact keeps its station, so a station gone from its list stays, unlisted, rather than closed.
/// The stations their operators list now are `is_current AND is_listed` (a listed station may
/// still be out of service: its availability facts tell, `is_installed`).
#[pipeline(
    depends_on = [silver_velib_station_info, silver_velov_station_info, silver_velib_station_status, silver_velov_station_status],
    full_snapshot
)]
pub async fn dim_bike_station(
    velib: Frame<SilverVelibStationInfo>,
    velov: Frame<SilverVelovStationInfo>,
    velib_status: Frame<SilverVelibStationStatus>,
    velov_status: Frame<SilverVelovStationStatus>,
    cx: &Ctx,
) -> Result<Frame<DimBikeStation>> {
    use SilverVelibStationInfo as p;
    use SilverVelibStationStatus as ps;
    use SilverVelovStationInfo as l;
    use SilverVelovStationStatus as ls;
    let velib = velib.filter(p::is_current.expr())?;
    let velov = velov.filter(l::is_current.expr())?;
    let paris = velib.clone().select_into(DimBikeStationSelect {
        station_key: surrogate_key([lit("velib"), p::stationcode.expr()]),
        station_source: "velib",
        station_id: p::stationcode,
        name: p::name,
        capacity: p::capacity,
        longitude: p::longitude,
        latitude: p::latitude,
        address: None::<String>,
        opening_hours: p::station_opening_hours,
        rental_methods: None::<String>,
        is_listed: true,
        run_at: cx.run_at(),
    })?;
    let paris_unlisted = velib_status
        .latest_by(
            [ps::stationcode.expr()],
            [ps::timestamp.expr(), ps::run_at.expr()],
        )?
        .join(
            velib,
            JoinType::LeftAnti,
            [on(ps::stationcode, p::stationcode)],
        )?
        .select_into(DimBikeStationSelect {
            station_key: surrogate_key([lit("velib"), ps::stationcode.expr()]),
            station_source: "velib",
            station_id: ps::stationcode,
            name: ps::name,
            capacity: ps::capacity,
            longitude: ps::longitude,
            latitude: ps::latitude,
            address: None::<String>,
            opening_hours: None::<String>,
            rental_methods: None::<String>,
            is_listed: false,
            run_at: cx.run_at(),
        })?;
    let lyon = velov.clone().select_into(DimBikeStationSelect {
        station_key: surrogate_key([lit("velov"), l::station_id.expr()]),
        station_source: "velov",
        station_id: l::station_id,
        name: l::name,
        capacity: l::capacity,
        longitude: l::longitude,
        latitude: l::latitude,
        address: l::address,
        opening_hours: None::<String>,
        rental_methods: l::rental_methods,
        is_listed: true,
        run_at: cx.run_at(),
    })?;
    let lyon_unlisted = velov_status
        .latest_by(
            [ls::station_id.expr()],
            [ls::last_reported.expr(), ls::run_at.expr()],
        )?
        .join(
            velov,
            JoinType::LeftAnti,
            [on(ls::station_id, l::station_id)],
        )?
        .select_into(DimBikeStationSelect {
            station_key: surrogate_key([lit("velov"), ls::station_id.expr()]),
            station_source: "velov",
            station_id: ls::station_id,
            name: None::<String>,
            capacity: None::<i32>,
            longitude: None::<f64>,
            latitude: None::<f64>,
            address: None::<String>,
            opening_hours: None::<String>,
            rental_methods: None::<String>,
            is_listed: false,
            run_at: cx.run_at(),
        })?;
    paris
        .union(paris_unlisted)?
        .union(lyon)?
        .union(lyon_unlisted)
}
