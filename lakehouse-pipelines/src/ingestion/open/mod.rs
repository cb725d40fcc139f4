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

use lakehouse_runtime::sources::{RawRecord, Record, Rejected};

/// Orders the listings of each station listed more than once (`id_key` the same) by their name,
/// then their whole text, in the places they hold, the others left where they are: the first,
/// which [`first_listing`] keeps, is then the same whatever order the source gives them in (a
/// GBFS feed has none), and a station's `X` comes before its copy `X (DOUBLON)`.
pub(crate) fn order_repeated_listings(stations: &mut Vec<RawRecord>, id_key: &str) {
    let id = |record: &RawRecord| record.value.get(id_key).map(ToString::to_string);
    let mut places: std::collections::HashMap<String, Vec<usize>> =
        std::collections::HashMap::new();
    for (place, record) in stations.iter().enumerate() {
        if let Some(id) = id(record) {
            places.entry(id).or_default().push(place);
        }
    }
    let repeated: Vec<Vec<usize>> = places.into_values().filter(|p| p.len() > 1).collect();
    if repeated.is_empty() {
        return;
    }
    let order = |record: &RawRecord| {
        // The text itself (a JSON string's quote would sort `X` after `X (..)`).
        let name = record.value.get("name").map(|name| {
            name.as_str()
                .map_or_else(|| name.to_string(), str::to_owned)
        });
        (name, record.raw.clone())
    };
    let mut slots: Vec<Option<RawRecord>> =
        std::mem::take(stations).into_iter().map(Some).collect();
    for places in repeated {
        let mut listings: Vec<RawRecord> = places.iter().filter_map(|&p| slots[p].take()).collect();
        listings.sort_by_key(order);
        for (place, listing) in places.into_iter().zip(listings) {
            slots[place] = Some(listing);
        }
    }
    *stations = slots.into_iter().flatten().collect();
}

/// `row`, rejecting a record of a station the list already gave: a list holding one station
/// twice (Vélo'v has sent a `(DOUBLON)` copy under the same id) keeps its first listing (in the
/// source's order, made one: see [`order_repeated_listings`]), and the copy goes to
/// `lakehouse.rejects` with its raw JSON, seen rather than silently chosen between.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn station(json: &str) -> RawRecord {
        RawRecord::parse(json.as_bytes().to_vec()).expect("a record")
    }

    #[test]
    fn a_station_listed_twice_keeps_the_same_first_listing_in_any_order() {
        let copy = r#"{"station_id":"1","name":"X (DOUBLON)","capacity":20}"#;
        let other = r#"{"station_id":"2","name":"Y"}"#;
        let original = r#"{"station_id":"1","name":"X","capacity":20}"#;
        for given in [[copy, other, original], [original, other, copy]] {
            let mut stations: Vec<RawRecord> = given.iter().map(|s| station(s)).collect();
            order_repeated_listings(&mut stations, "station_id");
            let raw: Vec<&str> = stations.iter().map(|s| s.raw.as_str()).collect();
            assert_eq!(raw, [original, other, copy], "from {given:?}");
        }
    }
}
