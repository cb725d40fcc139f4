//! A deterministic generator of realistic bike-station open data, in exactly the formats of the
//! real services: Opendatasoft Explore v2.1 `records` pages for the Vélib' datasets of Paris, and
//! GBFS 2.3 feeds for Vélo'v in Lyon, with the edge cases those services really produce (numbers
//! sent as text, null or swapped coordinates, null or missing keys, duplicate keys, closed
//! stations, stale timestamps, unknown fields, 1/0 flags…).
//!
//! The stations are invented (street names of each city combined at random by a seeded
//! generator); nothing is copied from a recording. It writes:
//!
//! - `data/opendata/`: the bundled snapshot the reference lakehouse runs on (pages of 100);
//! - `lakehouse-runtime/tests/fixtures/opendata/`: the runtime tests' fixtures (pages of 20):
//!   `paged/` (clean data over several pages), `edge/` (the edge cases), `truncated/` and
//!   `invalid/` (malformed pages) and `errors/` (API error bodies).
//!
//! Run `cargo run -p lakehouse-pipelines --example generate_opendata` after changing it; a test
//! checks that the committed files are its output.

use std::path::{Path, PathBuf};

use lakehouse_runtime::sources::{Url, snapshot_path};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

/// The generated trees, relative to the workspace root.
pub const ROOTS: [&str; 2] = ["data/opendata", "lakehouse-runtime/tests/fixtures/opendata"];

/// The Explore API v2.1 of the Paris portal.
const ODS_BASE: &str = "https://opendata.paris.fr/api/explore/v2.1/catalog/datasets";

/// The Grand Lyon Vélo'v feeds.
const GBFS_BASE: &str = "https://download.data.grandlyon.com/files/rdata/jcd_jcdecaux.jcdvelov";

/// The availability dataset.
const STATUS_DATASET: &str = "velib-disponibilite-en-temps-reel";

/// The locations dataset.
const INFO_DATASET: &str = "velib-emplacement-des-stations";

/// The instant the snapshot describes: 2025-06-03T08:15:00Z.
const SNAPSHOT_TIME: i64 = 1_748_938_500;

/// Every generated file, `(path relative to the workspace root, contents)`, sorted by path.
pub fn generate() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    bundled(Path::new(ROOTS[0]), &mut files);
    fixtures(Path::new(ROOTS[1]), &mut files);
    files.sort();
    files
}

/// The bundled snapshot: 230 Vélib' and 60 Vélo'v stations with every edge case mixed in.
fn bundled(root: &Path, files: &mut Vec<(PathBuf, String)>) {
    let paris = paris_stations(230, 1);
    let mut status_rng = rng(2);
    let mut status: Vec<Paris> = paris.iter().map(|s| s.status(&mut status_rng)).collect();
    status.extend(paris_status_edges(&paris));
    sort_by_code(&mut status);
    ods_pages(
        root,
        STATUS_DATASET,
        &status,
        100,
        Paris::status_json,
        files,
    );
    ods_export(root, STATUS_DATASET, &status, Paris::status_json, files);
    let mut info: Vec<Paris> = paris.clone();
    info.extend(paris_info_edges(&paris));
    sort_by_code(&mut info);
    ods_pages(root, INFO_DATASET, &info, 100, Paris::info_json, files);
    ods_export(root, INFO_DATASET, &info, Paris::info_json, files);

    let lyon = lyon_stations(60, 3);
    let mut information: Vec<String> = lyon.iter().map(Lyon::info_json).collect();
    information.extend(lyon_info_edges(&lyon));
    let mut status_rng = rng(4);
    let mut status: Vec<String> = lyon
        .iter()
        .map(|s| s.status_json(&mut status_rng))
        .collect();
    status.extend(lyon_status_edges(&lyon));
    gbfs_files(root, &information, &status, files);
}

/// The runtime tests' fixtures.
fn fixtures(root: &Path, files: &mut Vec<(PathBuf, String)>) {
    // paged/: 45 clean stations over three pages of 20, and 25 clean Lyon stations.
    let paged = root.join("paged");
    let paris = paris_stations(45, 11);
    let mut status_rng = rng(12);
    let status: Vec<Paris> = paris.iter().map(|s| s.status(&mut status_rng)).collect();
    ods_pages(
        &paged,
        STATUS_DATASET,
        &status,
        20,
        Paris::status_json,
        files,
    );
    ods_pages(&paged, INFO_DATASET, &paris, 20, Paris::info_json, files);
    let lyon = lyon_stations(25, 13);
    let information: Vec<String> = lyon.iter().map(Lyon::info_json).collect();
    let mut status_rng = rng(14);
    let lyon_status: Vec<String> = lyon
        .iter()
        .map(|s| s.status_json(&mut status_rng))
        .collect();
    gbfs_files(&paged, &information, &lyon_status, files);

    // edge/: three ordinary stations, then every edge case, in one page or feed each.
    let edge = root.join("edge");
    let base = paris_stations(3, 21);
    let mut status_rng = rng(22);
    let mut status: Vec<Paris> = base.iter().map(|s| s.status(&mut status_rng)).collect();
    status.extend(paris_status_edges(&base));
    ods_pages(
        &edge,
        STATUS_DATASET,
        &status,
        20,
        Paris::status_json,
        files,
    );
    let mut info = base.clone();
    info.extend(paris_info_edges(&base));
    ods_pages(&edge, INFO_DATASET, &info, 20, Paris::info_json, files);
    let lyon = lyon_stations(3, 23);
    let mut information: Vec<String> = lyon.iter().map(Lyon::info_json).collect();
    information.extend(lyon_info_edges(&lyon));
    let mut status_rng = rng(24);
    let mut lyon_status: Vec<String> = lyon
        .iter()
        .map(|s| s.status_json(&mut status_rng))
        .collect();
    lyon_status.extend(lyon_status_edges(&lyon));
    gbfs_files(&edge, &information, &lyon_status, files);

    // truncated/ and invalid/: the first status page of paged/, cut after 300 bytes, and with
    // a comma missing between two records.
    let first_page = records_path(&paged, STATUS_DATASET, 20, 0);
    let page = files
        .iter()
        .find(|(path, _)| *path == first_page)
        .map(|(_, body)| body.clone())
        .unwrap_or_default();
    let truncated: String = page.chars().take(300).collect();
    files.push((
        records_path(&root.join("truncated"), STATUS_DATASET, 20, 0),
        truncated,
    ));
    let invalid = page.replacen("},\n{", "}\n{", 1);
    files.push((
        records_path(&root.join("invalid"), STATUS_DATASET, 20, 0),
        invalid,
    ));

    // errors/: the bodies the APIs answer with.
    let errors = root.join("errors");
    let error_files = [
        (
            "ods_400_limit.json",
            r#"{"error_code": "InvalidRESTParameterError", "message": "Invalid value for limit API parameter: 200 was found but -1 <= limit <= 100 is expected."}"#,
        ),
        (
            "ods_400_offset_limit.json",
            r#"{"error_code": "InvalidRESTParameterError", "message": "Invalid value for sum of offset + limit API parameter: 10020 was found but <= 10000 is expected."}"#,
        ),
        (
            "ods_400_odsql.json",
            r#"{"message": "ODSQL query is malformed: capacity >>> 10 Clause(s) containing the error(s): where.", "error_code": "ODSQLError"}"#,
        ),
        (
            "ods_429_quota.json",
            r#"{"errorcode": 10002, "reset_time": "2025-06-04T00:00:00Z", "limit_time_unit": "day", "call_limit": 10000, "error": "Too many requests on the domain. Please contact the domain administrator."}"#,
        ),
        (
            "gateway_503.html",
            "<html>\n<head><title>503 Service Unavailable</title></head>\n<body>\n<h1>503 Service Unavailable</h1>\n<p>The upstream server is temporarily unable to answer. Please retry later.</p>\n</body>\n</html>",
        ),
    ];
    for (name, body) in error_files {
        files.push((errors.join(name), format!("{body}\n")));
    }
}

/// A generator seeded with `seed`.
fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(0x0DA7_A5EED ^ seed)
}

// ---------------------------------------------------------------------------------------------
// JSON with the key order of the real services.
// ---------------------------------------------------------------------------------------------

/// A JSON value whose objects keep their key order.
#[derive(Clone, Debug, PartialEq)]
enum J {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Obj(Vec<(&'static str, J)>),
    Arr(Vec<J>),
}

impl J {
    fn s(text: &str) -> J {
        J::Str(text.to_owned())
    }

    /// Compact JSON with `", "` and `": "` separators.
    fn write(&self, out: &mut String) {
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Int(n) => out.push_str(&n.to_string()),
            J::Float(f) => out.push_str(&serde_json::to_string(f).unwrap_or_default()),
            J::Str(s) => out.push_str(&serde_json::to_string(s).unwrap_or_default()),
            J::Obj(fields) => {
                out.push('{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&serde_json::to_string(key).unwrap_or_default());
                    out.push_str(": ");
                    value.write(out);
                }
                out.push('}');
            }
            J::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write(out);
                }
                out.push(']');
            }
        }
    }

    fn text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    /// Sets `key` (replacing it, or appending it), like a source that changed one field.
    fn set(&mut self, key: &'static str, value: J) {
        if let J::Obj(fields) = self {
            match fields.iter_mut().find(|(k, _)| *k == key) {
                Some(field) => field.1 = value,
                None => fields.push((key, value)),
            }
        }
    }

    /// Removes `key`.
    fn remove(&mut self, key: &str) {
        if let J::Obj(fields) = self {
            fields.retain(|(k, _)| *k != key);
        }
    }
}

/// `2025-06-03T08:12:41+00:00` for epoch seconds `t`.
fn rfc3339(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+00:00",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The calendar date of a day number (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `value` rounded to 6 decimals.
fn round6(value: f64) -> f64 {
    (value * 1e6).round() / 1e6
}

/// A coordinate with 6 to 13 decimals, as the services write them.
fn coordinate(rng: &mut ChaCha8Rng, value: f64) -> f64 {
    let decimals = [6, 7, 9, 13][rng.random_range(0..4)];
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

// ---------------------------------------------------------------------------------------------
// Paris: Vélib' on Opendatasoft.
// ---------------------------------------------------------------------------------------------

/// Arrondissement centres (lon, lat).
const ARRONDISSEMENTS: [(f64, f64); 20] = [
    (2.3364, 48.8626),
    (2.3428, 48.8683),
    (2.3600, 48.8630),
    (2.3576, 48.8543),
    (2.3507, 48.8445),
    (2.3327, 48.8491),
    (2.3122, 48.8562),
    (2.3125, 48.8727),
    (2.3375, 48.8771),
    (2.3607, 48.8762),
    (2.3800, 48.8591),
    (2.4000, 48.8400),
    (2.3621, 48.8283),
    (2.3265, 48.8292),
    (2.2923, 48.8401),
    (2.2700, 48.8604),
    (2.3067, 48.8873),
    (2.3482, 48.8925),
    (2.3849, 48.8871),
    (2.4011, 48.8634),
];

/// Communes around Paris: (name, INSEE code, first digit of their station codes, lon, lat).
const COMMUNES: [(&str, &str, u32, f64, f64); 10] = [
    ("Boulogne-Billancourt", "92012", 2, 2.2399, 48.8353),
    ("Issy-les-Moulineaux", "92040", 2, 2.2700, 48.8245),
    ("Levallois-Perret", "92044", 2, 2.2875, 48.8951),
    ("Clichy", "92024", 2, 2.3060, 48.9044),
    ("Montreuil", "93048", 3, 2.4411, 48.8611),
    ("Saint-Denis", "93066", 3, 2.3580, 48.9362),
    ("Pantin", "93055", 3, 2.4020, 48.8944),
    ("Vincennes", "94080", 4, 2.4393, 48.8474),
    ("Ivry-sur-Seine", "94041", 4, 2.3873, 48.8159),
    ("Créteil", "94028", 4, 2.4550, 48.7904),
];

/// Street and place names that Vélib' station names combine.
const PARIS_STREETS: [&str; 60] = [
    "Rivoli",
    "Louvre",
    "Saint-Honoré",
    "Turbigo",
    "Réaumur",
    "Sébastopol",
    "Temple",
    "Bretagne",
    "Saint-Paul",
    "Archives",
    "Mouffetard",
    "Monge",
    "Gay-Lussac",
    "Saint-Germain",
    "Vaugirard",
    "Rennes",
    "Grenelle",
    "Bac",
    "Université",
    "Haussmann",
    "Malesherbes",
    "Friedland",
    "La Fayette",
    "Provence",
    "Martyrs",
    "Magenta",
    "Faubourg Saint-Denis",
    "Parmentier",
    "Oberkampf",
    "Voltaire",
    "Charonne",
    "Daumesnil",
    "Bercy",
    "Picpus",
    "Tolbiac",
    "Place d'Italie",
    "Gobelins",
    "Alésia",
    "Raspail",
    "Denfert-Rochereau",
    "Convention",
    "Lecourbe",
    "Commerce",
    "Passy",
    "Victor Hugo",
    "Trocadéro",
    "Batignolles",
    "Wagram",
    "Caulaincourt",
    "Ordener",
    "Abbesses",
    "Jean Jaurès",
    "Crimée",
    "Flandre",
    "Belleville",
    "Ménilmontant",
    "Pyrénées",
    "Gambetta",
    "Gare de l'Est",
    "Gare de Lyon",
];

/// The codes of the hand-written edge stations, never given to generated ones.
const PARIS_EDGE_CODES: [&str; 20] = [
    "5119", "10163", "11999", "6021", "40021", "8027", "14118", "7026", "6002", "15121", "3011",
    "12127", "42031", "6006", "17026", "10164", "9021", "12110", "41304", "15113",
];

/// A Vélib' station: its location record, and optionally its status; the record itself when
/// it is an edge case written by hand.
#[derive(Clone, Debug)]
struct Paris {
    code: Option<String>,
    name: String,
    capacity: i64,
    lon: f64,
    lat: f64,
    commune: &'static str,
    insee: &'static str,
    status: Option<Status>,
    /// A record edited to be an edge case, replacing the generated one.
    custom: Option<J>,
}

/// The availability part of a status record.
#[derive(Clone, Debug)]
struct Status {
    docks: i64,
    bikes: i64,
    mechanical: i64,
    ebike: i64,
    open: bool,
    duedate: i64,
}

/// `count` stations with distinct codes and names.
fn paris_stations(count: usize, seed: u64) -> Vec<Paris> {
    let mut rng = rng(seed);
    let mut stations: Vec<Paris> = Vec::with_capacity(count);
    let mut sequence = [0u32; 30];
    while stations.len() < count {
        let (code, commune, insee, lon, lat) = if rng.random_bool(0.75) {
            let arr = rng.random_range(1..=20usize);
            sequence[arr - 1] += rng.random_range(1..=9);
            let (lon, lat) = ARRONDISSEMENTS[arr - 1];
            (
                format!("{arr}{:03}", sequence[arr - 1]),
                "Paris",
                "75056",
                lon,
                lat,
            )
        } else {
            let i = rng.random_range(0..COMMUNES.len());
            let (commune, insee, digit, lon, lat) = COMMUNES[i];
            sequence[20 + i] += rng.random_range(1..=5);
            (
                format!("{digit}{}{:03}", i % 10, sequence[20 + i]),
                commune,
                insee,
                lon,
                lat,
            )
        };
        let a = PARIS_STREETS[rng.random_range(0..PARIS_STREETS.len())];
        let b = PARIS_STREETS[rng.random_range(0..PARIS_STREETS.len())];
        let taken = stations.iter().any(|s| s.code.as_deref() == Some(&code));
        if a == b || taken || PARIS_EDGE_CODES.contains(&code.as_str()) {
            continue;
        }
        let name = if commune != "Paris" && rng.random_bool(0.2) {
            format!("Mairie de {commune}")
        } else {
            format!("{a} - {b}")
        };
        if stations.iter().any(|s| s.name == name) {
            continue;
        }
        let lon = lon + rng.random_range(-0.012..0.012);
        let lon = coordinate(&mut rng, lon);
        let lat = lat + rng.random_range(-0.008..0.008);
        let lat = coordinate(&mut rng, lat);
        stations.push(Paris {
            code: Some(code),
            name,
            capacity: rng.random_range(12..=60),
            lon,
            lat,
            commune,
            insee,
            status: None,
            custom: None,
        });
    }
    stations
}

impl Paris {
    /// The station with a plausible status at the snapshot time.
    fn status(&self, rng: &mut ChaCha8Rng) -> Paris {
        let bikes = rng.random_range(0..=self.capacity);
        let disabled = rng.random_range(0..=2).min(self.capacity - bikes);
        let ebike = rng.random_range(0..=bikes);
        let mut station = self.clone();
        station.status = Some(Status {
            docks: self.capacity - bikes - disabled,
            bikes,
            mechanical: bikes - ebike,
            ebike,
            open: true,
            duedate: SNAPSHOT_TIME - rng.random_range(0..900),
        });
        station
    }

    /// The record of `velib-disponibilite-en-temps-reel`.
    fn status_record(&self) -> J {
        let flag = |open: bool| J::s(if open { "OUI" } else { "NON" });
        let status = self.status.clone().unwrap_or(Status {
            docks: 0,
            bikes: 0,
            mechanical: 0,
            ebike: 0,
            open: false,
            duedate: SNAPSHOT_TIME,
        });
        J::Obj(vec![
            ("stationcode", self.code.as_deref().map_or(J::Null, J::s)),
            ("name", J::s(&self.name)),
            ("is_installed", flag(status.open)),
            ("capacity", J::Int(self.capacity)),
            ("numdocksavailable", J::Int(status.docks)),
            ("numbikesavailable", J::Int(status.bikes)),
            ("mechanical", J::Int(status.mechanical)),
            ("ebike", J::Int(status.ebike)),
            ("is_renting", flag(status.open)),
            ("is_returning", flag(status.open)),
            ("duedate", J::Str(rfc3339(status.duedate))),
            ("coordonnees_geo", self.geo()),
            ("nom_arrondissement_communes", J::s(self.commune)),
            ("code_insee_commune", J::s(self.insee)),
            ("station_opening_hours", J::Null),
        ])
    }

    /// The record of `velib-emplacement-des-stations`.
    fn info_record(&self) -> J {
        J::Obj(vec![
            ("stationcode", self.code.as_deref().map_or(J::Null, J::s)),
            ("name", J::s(&self.name)),
            ("capacity", J::Int(self.capacity)),
            ("coordonnees_geo", self.geo()),
            ("station_opening_hours", J::Null),
        ])
    }

    fn geo(&self) -> J {
        J::Obj(vec![
            ("lon", J::Float(self.lon)),
            ("lat", J::Float(self.lat)),
        ])
    }

    fn status_json(&self) -> String {
        self.custom
            .clone()
            .unwrap_or_else(|| self.status_record())
            .text()
    }

    fn info_json(&self) -> String {
        self.custom
            .clone()
            .unwrap_or_else(|| self.info_record())
            .text()
    }

    /// A copy whose record is `edit` applied to `record`.
    fn edited(&self, record: J, edit: impl FnOnce(&mut J)) -> Paris {
        let mut record = record;
        edit(&mut record);
        let mut station = self.clone();
        station.code = match &record {
            J::Obj(fields) => {
                fields
                    .iter()
                    .find(|(k, _)| *k == "stationcode")
                    .and_then(|(_, v)| match v {
                        J::Str(s) => Some(s.clone()),
                        _ => None,
                    })
            }
            _ => None,
        };
        station.custom = Some(record);
        station
    }
}

/// A new station for an edge case.
fn paris_station(code: &str, name: &str, arr: usize, capacity: i64) -> Paris {
    let (lon, lat) = ARRONDISSEMENTS[arr - 1];
    Paris {
        code: Some(code.to_owned()),
        name: name.to_owned(),
        capacity,
        lon: round6(lon + 0.0012),
        lat: round6(lat - 0.0007),
        commune: "Paris",
        insee: "75056",
        status: None,
        custom: None,
    }
}

/// The availability records that real data has and a loader must survive. `base` (at least
/// one station) supplies the duplicated key.
fn paris_status_edges(base: &[Paris]) -> Vec<Paris> {
    let fresh = |code: &str, name: &str, arr: usize, capacity: i64| {
        paris_station(code, name, arr, capacity).status(&mut rng(100 + arr as u64))
    };
    vec![
        // Numbers sent as text: rejected.
        {
            let s = fresh("5119", "Claude Bernard - Gay-Lussac", 5, 24);
            s.edited(s.status_record(), |r| {
                r.set("numdocksavailable", J::s("17"));
                r.set("numbikesavailable", J::s("7"));
                r.set("ebike", J::s("4"));
            })
        },
        // Null coordinates: rejected.
        {
            let s = fresh("10163", "Faubourg Saint-Martin - Château d'Eau", 10, 32);
            s.edited(s.status_record(), |r| r.set("coordonnees_geo", J::Null))
        },
        // Null station code: rejected.
        {
            let s = fresh("11999", "Station sans code", 11, 20);
            s.edited(s.status_record(), |r| r.set("stationcode", J::Null))
        },
        // Longitude and latitude swapped: rejected.
        {
            let s = fresh("6021", "Odéon - Saint-Germain", 6, 30);
            s.edited(s.status_record(), |r| {
                r.set(
                    "coordonnees_geo",
                    J::Obj(vec![("lon", J::Float(s.lat)), ("lat", J::Float(s.lon))]),
                );
            })
        },
        // Closed station, stale for months: kept.
        {
            let s = fresh("40021", "Mont-Mesly - Église", 12, 27);
            s.edited(s.status_record(), |r| {
                for flag in ["is_installed", "is_renting", "is_returning"] {
                    r.set(flag, J::s("NON"));
                }
                r.set("numdocksavailable", J::Int(1));
                r.set("numbikesavailable", J::Int(0));
                r.set("mechanical", J::Int(0));
                r.set("ebike", J::Int(0));
                r.set(
                    "duedate",
                    J::Str(rfc3339(SNAPSHOT_TIME - 97 * 86_400 - 4_213)),
                );
                r.set("nom_arrondissement_communes", J::s("Créteil"));
                r.set("code_insee_commune", J::s("94028"));
            })
        },
        // A key sent twice, with other counts: kept (bronze keeps what the source said).
        {
            let s = base[0].status(&mut rng(101));
            s.edited(s.status_record(), |r| {
                r.set("numbikesavailable", J::Int(s.capacity / 2));
                r.set("mechanical", J::Int(s.capacity / 2));
                r.set("ebike", J::Int(0));
            })
        },
        // The older schema, without `station_opening_hours`, and more bikes than docks
        // (overflow parking): kept.
        {
            let s = fresh("8027", "Madeleine - Vignon", 8, 40);
            s.edited(s.status_record(), |r| {
                r.remove("station_opening_hours");
                r.set("numbikesavailable", J::Int(61));
                r.set("mechanical", J::Int(25));
                r.set("ebike", J::Int(36));
                r.set("numdocksavailable", J::Int(2));
            })
        },
        // No `code_insee_commune` key and a field the dataset did not have: kept.
        {
            let s = fresh("14118", "Denfert-Rochereau - Froidevaux", 14, 25);
            s.edited(s.status_record(), |r| {
                r.remove("code_insee_commune");
                r.set("unexpected_new_field", J::s("added upstream"));
            })
        },
        // Null `duedate`, and mechanical + ebike different from the bike count: kept.
        {
            let s = fresh("7026", "Champ de Mars - Suffren", 7, 33);
            s.edited(s.status_record(), |r| {
                r.set("duedate", J::Null);
                r.set("numbikesavailable", J::Int(13));
                r.set("mechanical", J::Int(2));
                r.set("ebike", J::Int(1));
            })
        },
        // An update time from a broken clock, decades ahead: kept (silver leaves it out).
        {
            let s = fresh("11104", "Charonne - Robert et Sonia Delaunay", 11, 32);
            s.edited(s.status_record(), |r| {
                r.set("duedate", J::s("2100-01-01T00:00:00+00:00"));
            })
        },
        // Null capacity and a negative dock count: rejected.
        {
            let s = fresh("6002", "Institut - Quai de Conti", 6, 20);
            s.edited(s.status_record(), |r| {
                r.set("capacity", J::Null);
                r.set("numdocksavailable", J::Int(-1));
            })
        },
        // Coordinates without a latitude: rejected.
        {
            let s = fresh("15121", "Vaugirard - Volontaires", 15, 24);
            s.edited(s.status_record(), |r| {
                r.set("coordonnees_geo", J::Obj(vec![("lon", J::Float(s.lon))]));
            })
        },
        // A flag of the wrong type: rejected.
        {
            let s = fresh("3011", "Bretagne - Archives", 3, 22);
            s.edited(s.status_record(), |r| r.set("is_renting", J::s("1")))
        },
        // More bikes than the station's capacity (counts updated at different times): kept.
        {
            let s = fresh("12127", "Lac Daumesnil - Minimes", 12, 48);
            s.edited(s.status_record(), |r| {
                r.set("numbikesavailable", J::Int(78));
                r.set("mechanical", J::Int(24));
                r.set("ebike", J::Int(54));
                r.set("numdocksavailable", J::Int(4));
            })
        },
    ]
}

/// The location records that real data has and a loader must survive.
fn paris_info_edges(base: &[Paris]) -> Vec<Paris> {
    let edit = |s: Paris, f: &dyn Fn(&mut J)| {
        let record = s.info_record();
        s.edited(record, f)
    };
    vec![
        // Zero capacity: kept.
        edit(paris_station("42031", "Bouvard - Gambetta", 20, 0), &|_| {}),
        // A double space in the name: kept as is.
        edit(
            paris_station("6006", "Montparnasse -  Square Delambre", 14, 49),
            &|_| {},
        ),
        // A trailing space in the name: kept as is.
        edit(
            paris_station("17026", "Courcelles - Chazelles ", 17, 35),
            &|_| {},
        ),
        // Null coordinates: rejected.
        edit(
            paris_station("10164", "Quai de Valmy - Parodi", 10, 24),
            &|r| r.set("coordonnees_geo", J::Null),
        ),
        // Capacity and coordinates sent as text: rejected.
        edit(paris_station("9021", "Clauzel - Martyrs", 9, 21), &|r| {
            r.set("capacity", J::s("21"));
            r.set(
                "coordonnees_geo",
                J::Obj(vec![
                    ("lon", J::s("2.3373600840568")),
                    ("lat", J::s("48.879295917335")),
                ]),
            );
        }),
        // A null name: kept (the name is optional).
        edit(paris_station("12110", "", 12, 30), &|r| {
            r.set("name", J::Null)
        }),
        // A key sent twice, with another capacity: kept.
        edit(base[0].clone(), &|r| r.set("capacity", J::Int(40))),
        // Opening hours filled in: kept as text.
        edit(paris_station("41304", "Gare de Nogent", 12, 32), &|r| {
            r.set("station_opening_hours", J::s("Mo-Su 06:00-23:00"));
        }),
        // Coordinates without a latitude: rejected.
        edit(
            paris_station("15113", "Vigée-Lebrun - Payen", 15, 24),
            &|r| {
                r.set(
                    "coordonnees_geo",
                    J::Obj(vec![("lon", J::Float(2.3110422))]),
                );
            },
        ),
        // No station code key at all: rejected.
        edit(paris_station("", "Station sans identifiant", 4, 20), &|r| {
            r.remove("stationcode");
        }),
    ]
}

/// Sorts like `order_by=stationcode`: by code as text, records without one last.
fn sort_by_code(stations: &mut [Paris]) {
    stations.sort_by(|a, b| match (&a.code, &b.code) {
        (Some(a), Some(b)) => a.cmp(b),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
}

/// The snapshot file of a records page.
fn records_path(root: &Path, dataset: &str, limit: usize, offset: usize) -> PathBuf {
    let url = format!("{ODS_BASE}/{dataset}/records?limit={limit}&offset={offset}");
    snapshot(root, &url)
}

/// The snapshot file of `url` under `root`.
fn snapshot(root: &Path, url: &str) -> PathBuf {
    match Url::parse(url).map(|u| snapshot_path(root, &u)) {
        Ok(Ok(path)) => path,
        _ => panic!("the generator's URL {url} has a snapshot path"),
    }
}

/// `records` as pages of `limit`, each `{"total_count": N, "results": [..]}` with one record per
/// line, as the client asks for them: each page after the first from the record the previous one
/// ended with (offsets 0, `limit - 1`, `2 * (limit - 1)`, …).
fn ods_pages(
    root: &Path,
    dataset: &str,
    records: &[Paris],
    limit: usize,
    json: fn(&Paris) -> String,
    files: &mut Vec<(PathBuf, String)>,
) {
    let total = records.len();
    let mut offset = 0;
    loop {
        let page = &records[offset..(offset + limit).min(total)];
        let lines: Vec<String> = page.iter().map(json).collect();
        let body = format!(
            "{{\"total_count\": {total}, \"results\": [\n{}\n]}}\n",
            lines.join(",\n")
        );
        files.push((records_path(root, dataset, limit, offset), body));
        if offset + page.len() >= total {
            break;
        }
        offset += page.len() - 1;
    }
}

/// `records` as the exports endpoint answers (`velib.fetch = export`): one JSON array, a record
/// per line.
fn ods_export(
    root: &Path,
    dataset: &str,
    records: &[Paris],
    json: fn(&Paris) -> String,
    files: &mut Vec<(PathBuf, String)>,
) {
    let lines: Vec<String> = records.iter().map(json).collect();
    let body = format!("[\n{}\n]\n", lines.join(",\n"));
    let url = format!("{ODS_BASE}/{dataset}/exports/json");
    files.push((snapshot(root, &url), body));
}

// ---------------------------------------------------------------------------------------------
// Lyon: Vélo'v on GBFS 2.3.
// ---------------------------------------------------------------------------------------------

/// Districts of Lyon and Villeurbanne: (first digits of station ids, lon, lat).
const LYON_DISTRICTS: [(u32, f64, f64); 10] = [
    (1, 4.8330, 45.7700),
    (2, 4.8260, 45.7500),
    (3, 4.8600, 45.7570),
    (4, 4.8270, 45.7780),
    (5, 4.8050, 45.7600),
    (6, 4.8500, 45.7720),
    (7, 4.8420, 45.7330),
    (8, 4.8700, 45.7350),
    (9, 4.8050, 45.7750),
    (10, 4.8800, 45.7700),
];

/// Places and streets that Vélo'v station names combine.
const LYON_PLACES: [&str; 40] = [
    "PERRACHE",
    "BELLECOUR",
    "CORDELIERS",
    "TERREAUX",
    "CROIX-ROUSSE",
    "PART-DIEU",
    "BROTTEAUX",
    "SAXE",
    "GAMBETTA",
    "JEAN MACÉ",
    "GERLAND",
    "VAISE",
    "MONPLAISIR",
    "GRANGE BLANCHE",
    "CHARPENNES",
    "GRATTE-CIEL",
    "CONFLUENCE",
    "SAINT-PAUL",
    "FOURVIÈRE",
    "MASSÉNA",
    "GUILLOTIÈRE",
    "SANS SOUCI",
    "BACHUT",
    "VALMY",
    "GORGE DE LOUP",
    "HÔTEL DE VILLE",
    "AMPÈRE",
    "FOCH",
    "GARIBALDI",
    "VILLETTE",
    "THIERS",
    "LAFAYETTE",
    "DUGUESCLIN",
    "SAINT-JEAN",
    "CHAZEAUX",
    "TONY GARNIER",
    "MERMOZ",
    "LAENNEC",
    "CUSSET",
    "FLACHET",
];

/// Street kinds for addresses.
const STREET_KINDS: [&str; 4] = ["RUE", "AVENUE", "PLACE", "QUAI"];

/// The ids of the hand-written edge stations, never given to generated ones.
const LYON_EDGE_IDS: [&str; 10] = [
    "2011", "10064", "7062", "8021", "6023", "4012", "3099", "5031", "9999", "1044",
];

/// A Vélo'v station.
#[derive(Clone, Debug)]
struct Lyon {
    id: String,
    name: String,
    lon: f64,
    lat: f64,
    address: String,
    capacity: i64,
    card: bool,
}

/// `count` stations with distinct ids and names.
fn lyon_stations(count: usize, seed: u64) -> Vec<Lyon> {
    let mut rng = rng(seed);
    let mut stations: Vec<Lyon> = Vec::with_capacity(count);
    let mut sequence = [0u32; 10];
    while stations.len() < count {
        let d = rng.random_range(0..LYON_DISTRICTS.len());
        let (district, lon, lat) = LYON_DISTRICTS[d];
        sequence[d] += rng.random_range(1..=6);
        let id = format!("{district}{:03}", sequence[d]);
        let a = LYON_PLACES[rng.random_range(0..LYON_PLACES.len())];
        let b = LYON_PLACES[rng.random_range(0..LYON_PLACES.len())];
        let name = if rng.random_bool(0.4) {
            a.to_owned()
        } else {
            format!("{a} / {b}")
        };
        let taken = stations.iter().any(|s| s.id == id || s.name == name);
        if a == b || taken || LYON_EDGE_IDS.contains(&id.as_str()) {
            continue;
        }
        let street = LYON_PLACES[rng.random_range(0..LYON_PLACES.len())];
        let kind = STREET_KINDS[rng.random_range(0..STREET_KINDS.len())];
        let address = if rng.random_bool(0.3) {
            format!("Angle {} {}", kind.to_lowercase(), street)
        } else {
            format!("{} {kind} {street}", rng.random_range(1..=120))
        };
        let lon = lon + rng.random_range(-0.01..0.01);
        let lon = coordinate(&mut rng, lon);
        let lat = lat + rng.random_range(-0.008..0.008);
        let lat = coordinate(&mut rng, lat);
        stations.push(Lyon {
            id,
            name,
            lon,
            lat,
            address,
            capacity: rng.random_range(10..=40),
            card: rng.random_bool(0.5),
        });
    }
    stations
}

impl Lyon {
    /// The `station_information` record.
    fn info_record(&self) -> J {
        let mut fields = vec![
            ("station_id", J::s(&self.id)),
            ("name", J::s(&self.name)),
            ("lat", J::Float(self.lat)),
            ("lon", J::Float(self.lon)),
            ("address", J::s(&self.address)),
            ("capacity", J::Int(self.capacity)),
        ];
        if self.card {
            fields.push(("rental_methods", J::Arr(vec![J::s("CREDITCARD")])));
        }
        J::Obj(fields)
    }

    fn info_json(&self) -> String {
        self.info_record().text()
    }

    /// A plausible `station_status` record at the snapshot time.
    fn status_record(&self, rng: &mut ChaCha8Rng) -> J {
        let open = rng.random_bool(0.95);
        let bikes = if open {
            rng.random_range(0..=self.capacity)
        } else {
            0
        };
        let docks_disabled = rng.random_range(0..=2).min(self.capacity - bikes);
        let electrical = rng.random_range(0..=bikes);
        J::Obj(vec![
            ("station_id", J::s(&self.id)),
            ("num_bikes_available", J::Int(bikes)),
            ("num_bikes_disabled", J::Int(0)),
            (
                "num_docks_available",
                J::Int(self.capacity - bikes - docks_disabled),
            ),
            ("num_docks_disabled", J::Int(docks_disabled)),
            ("is_installed", J::Bool(true)),
            ("is_renting", J::Bool(open)),
            ("is_returning", J::Bool(open)),
            (
                "last_reported",
                J::Int(SNAPSHOT_TIME - rng.random_range(0..300)),
            ),
            (
                "vehicle_types_available",
                J::Arr(vec![
                    vehicle("mechanical", bikes - electrical),
                    vehicle("electrical", electrical),
                ]),
            ),
        ])
    }

    fn status_json(&self, rng: &mut ChaCha8Rng) -> String {
        self.status_record(rng).text()
    }
}

/// A `vehicle_types_available` entry.
fn vehicle(id: &str, count: i64) -> J {
    J::Obj(vec![
        ("vehicle_type_id", J::s(id)),
        ("count", J::Int(count)),
    ])
}

/// A new Lyon station for an edge case.
fn lyon_station(id: &str, name: &str, district: usize, capacity: i64) -> Lyon {
    let (_, lon, lat) = LYON_DISTRICTS[district - 1];
    Lyon {
        id: id.to_owned(),
        name: name.to_owned(),
        lon: round6(lon + 0.0011),
        lat: round6(lat - 0.0006),
        address: "12 RUE DE LA RÉPUBLIQUE".to_owned(),
        capacity,
        card: false,
    }
}

/// The `station_information` records that real data has and a loader must survive.
fn lyon_info_edges(base: &[Lyon]) -> Vec<String> {
    let edit = |s: Lyon, f: &dyn Fn(&mut J)| {
        let mut record = s.info_record();
        f(&mut record);
        record.text()
    };
    vec![
        // The name keeps its number prefix (GBFS 1.x style): kept.
        edit(
            lyon_station("2011", "2011 - CONFLUENCE / MUSÉE", 2, 22),
            &|_| {},
        ),
        // Null coordinates: rejected.
        edit(lyon_station("10064", "SANS COORDONNÉES", 10, 20), &|r| {
            r.set("lat", J::Null);
            r.set("lon", J::Null);
        }),
        // Numbers sent as text: rejected.
        edit(
            lyon_station("7062", "UNIVERSITÉ / CHEVREUL", 7, 20),
            &|r| {
                r.set("capacity", J::s("20"));
                r.set("lat", J::s("45.7485428567"));
                r.set("lon", J::s("4.8432379481"));
            },
        ),
        // Latitude and longitude swapped: rejected.
        edit(lyon_station("8021", "MOULIN À VENT", 8, 20), &|r| {
            r.set("lat", J::Float(4.8539637));
            r.set("lon", J::Float(45.7297266));
        }),
        // A station id that is not a number: kept (ids are text).
        edit(
            lyon_station("10002-B", "IDENTIFIANT NON NUMÉRIQUE", 10, 10),
            &|_| {},
        ),
        // An id sent twice: kept.
        edit(base[0].clone(), &|r| {
            r.set("name", J::Str(format!("{} (DOUBLON)", base[0].name)));
        }),
        // No capacity: kept (null).
        edit(lyon_station("6023", "LYAUTEY", 6, 0), &|r| {
            r.remove("capacity")
        }),
        // No station id at all: rejected.
        edit(lyon_station("", "SANS IDENTIFIANT", 3, 15), &|r| {
            r.remove("station_id");
        }),
    ]
}

/// The `station_status` records that real data has and a loader must survive.
fn lyon_status_edges(base: &[Lyon]) -> Vec<String> {
    let mut rng = rng(77);
    let mut edit = |s: Lyon, f: &dyn Fn(&mut J)| {
        let mut record = s.status_record(&mut rng);
        f(&mut record);
        record.text()
    };
    vec![
        // GBFS 1.x: flags as 1/0, no `*_disabled`, no vehicle types: kept.
        edit(lyon_station("2011", "", 2, 22), &|r| {
            for flag in ["is_installed", "is_renting", "is_returning"] {
                r.set(flag, J::Int(1));
            }
            r.remove("num_bikes_disabled");
            r.remove("num_docks_disabled");
            r.remove("vehicle_types_available");
            r.set("num_bikes_available", J::Int(5));
            r.set("num_docks_available", J::Int(17));
        }),
        // Closed, never reported: flags false, `last_reported` 0: kept.
        edit(lyon_station("6023", "", 6, 20), &|r| {
            for flag in ["is_installed", "is_renting", "is_returning"] {
                r.set(flag, J::Bool(false));
            }
            r.set("num_bikes_available", J::Int(0));
            r.set("num_docks_available", J::Int(0));
            r.set("num_docks_disabled", J::Int(20));
            r.set("last_reported", J::Int(0));
            r.set(
                "vehicle_types_available",
                J::Arr(vec![vehicle("mechanical", 0), vehicle("electrical", 0)]),
            );
        }),
        // A bike count sent as text: rejected.
        edit(lyon_station("7062", "", 7, 20), &|r| {
            r.set("num_bikes_available", J::s("5"));
        }),
        // A null disabled count, and a flag as 0: kept.
        edit(lyon_station("4012", "", 4, 18), &|r| {
            r.set("num_bikes_disabled", J::Null);
            r.set("is_returning", J::Int(0));
        }),
        // A station id that is not a number: kept.
        edit(lyon_station("10002-B", "", 10, 10), &|_| {}),
        // A vehicle type the columns do not know: kept.
        edit(base[0].clone(), &|r| {
            r.set(
                "vehicle_types_available",
                J::Arr(vec![
                    vehicle("mechanical", 3),
                    vehicle("electrical", 2),
                    vehicle("cargo", 0),
                ]),
            );
            r.set("num_bikes_available", J::Int(5));
        }),
        // A negative dock count: rejected.
        edit(lyon_station("3099", "", 3, 20), &|r| {
            r.set("num_docks_available", J::Int(-2));
        }),
        // `last_reported` in the future (2100-01-01): kept.
        edit(lyon_station("5031", "", 5, 16), &|r| {
            r.set("last_reported", J::Int(4_102_444_800));
        }),
        // A status for a station missing from station_information: kept.
        edit(lyon_station("9999", "", 9, 12), &|_| {}),
        // A flag of the wrong type: rejected.
        edit(lyon_station("1044", "", 1, 16), &|r| {
            r.set("is_renting", J::s("true"));
        }),
    ]
}

/// The Vélo'v discovery document and its two station feeds.
fn gbfs_files(
    root: &Path,
    information: &[String],
    status: &[String],
    files: &mut Vec<(PathBuf, String)>,
) {
    let feed = |stations: &[String]| {
        format!(
            "{{\"last_updated\": {SNAPSHOT_TIME}, \"ttl\": 60, \"version\": \"2.3\", \"data\": {{\"stations\": [\n{}\n]}}}}\n",
            stations.join(",\n")
        )
    };
    let feeds: Vec<J> = [
        "system_information",
        "station_information",
        "station_status",
    ]
    .iter()
    .map(|name| {
        J::Obj(vec![
            ("name", J::s(name)),
            ("url", J::Str(format!("{GBFS_BASE}/{name}.json"))),
        ])
    })
    .collect();
    let discovery = J::Obj(vec![
        ("last_updated", J::Int(SNAPSHOT_TIME)),
        ("ttl", J::Int(3600)),
        ("version", J::s("2.3")),
        (
            "data",
            J::Obj(vec![("fr", J::Obj(vec![("feeds", J::Arr(feeds))]))]),
        ),
    ]);
    files.push((
        snapshot(root, &format!("{GBFS_BASE}/gbfs.json")),
        format!("{}\n", discovery.text()),
    ));
    files.push((
        snapshot(root, &format!("{GBFS_BASE}/station_information.json")),
        feed(information),
    ));
    files.push((
        snapshot(root, &format!("{GBFS_BASE}/station_status.json")),
        feed(status),
    ));
}
