//! The open-data pipelines: the committed snapshot and fixtures are the generator's output, the
//! four bronze pipelines read the bundled snapshot with exact row and reject counts, edge records
//! are quarantined with their reasons, and the plan check does no I/O.

#[path = "../examples/generate_opendata/generator.rs"]
mod generator;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::execution::context::SessionContext;
use lakehouse_pipelines::ingestion::open::{velib, velov};
use lakehouse_runtime::ctx::{Reject, RunInfo, Settings};
use lakehouse_runtime::{Ctx, Frame, Table, Timestamp};

/// The workspace root.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every file under `dir`, relative to the workspace root.
fn files_under(dir: &Path, out: &mut BTreeSet<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else if path.file_name().is_some_and(|n| n != "README.md") {
            let relative = path
                .strip_prefix(workspace())
                .expect("inside")
                .to_path_buf();
            out.insert(relative);
        }
    }
}

#[test]
fn the_committed_snapshot_and_fixtures_are_the_generators_output() {
    let generated = generator::generate();
    for (path, contents) in &generated {
        let committed = std::fs::read_to_string(workspace().join(path)).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `cargo run -p lakehouse-pipelines --example generate_opendata`",
                path.display()
            )
        });
        assert!(
            committed == *contents,
            "{} differs from the generator's output; run `cargo run -p lakehouse-pipelines \
             --example generate_opendata` and commit the result",
            path.display()
        );
    }
    let mut on_disk = BTreeSet::new();
    for root in generator::ROOTS {
        files_under(&workspace().join(root), &mut on_disk);
    }
    let expected: BTreeSet<PathBuf> = generated.into_iter().map(|(path, _)| path).collect();
    assert_eq!(on_disk, expected, "no stale file in the generated trees");
}

/// 2026-01-15T06:00:00Z.
const RUN_AT: Timestamp = Timestamp(1_768_456_800_000_000);

fn ctx(pipeline: &'static str, settings: &[(&str, &str)], dry_run: bool) -> Ctx {
    let mut all = Settings::new();
    for (key, value) in settings {
        all.set(*key, *value);
    }
    let run = RunInfo {
        run_id: "test".to_owned(),
        sequence: 1,
        run_at: RUN_AT,
    };
    Ctx::new(
        pipeline,
        Arc::new(run),
        Arc::new(all),
        SessionContext::new(),
        dry_run,
    )
}

/// The number of rows of `frame`, each checked to be stamped with the run's time.
async fn rows<T: Table>(frame: Frame<T>) -> usize {
    let batches = frame.collect().await.expect("collect");
    for batch in &batches {
        let run_at = batch
            .column_by_name("run_at")
            .and_then(|c| {
                c.as_any()
                    .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
            })
            .expect("run_at");
        assert!(run_at.iter().all(|t| t == Some(RUN_AT.0)), "stamped rows");
    }
    batches.iter().map(|b| b.num_rows()).sum()
}

/// `column` of `frame`'s rows whose `key` is `value`, as text.
async fn values_where<T: Table>(
    frame: &Frame<T>,
    key: &str,
    value: &str,
    column: &str,
) -> Vec<String> {
    use datafusion::prelude::{col, lit};
    let batches = frame
        .dataframe()
        .clone()
        .filter(col(key).eq(lit(value)))
        .and_then(|df| df.select_columns(&[column]))
        .expect("the columns")
        .collect()
        .await
        .expect("collect");
    batches
        .iter()
        .flat_map(|batch| {
            (0..batch.num_rows()).map(|row| {
                arrow::util::display::array_value_to_string(batch.column(0), row).expect("text")
            })
        })
        .collect()
}

fn reasons(rejects: &[Reject]) -> Vec<&str> {
    rejects.iter().map(|r| r.reason.as_str()).collect()
}

/// How many of `rejects` were rejected, and how many kept with NULLs.
fn rejected_and_kept(rejects: &[Reject]) -> (usize, usize) {
    let kept = rejects
        .iter()
        .filter(|r| r.reason.starts_with("kept, with NULL for: "))
        .count();
    (rejects.len() - kept, kept)
}

#[tokio::test]
async fn the_four_pipelines_read_the_bundled_snapshot() {
    let cx = ctx("velib_station_status", &[], false);
    let status = rows(
        velib::velib_station_status(&cx)
            .await
            .expect("velib status"),
    )
    .await;
    // A report whose only fault is its coordinates is kept, with NULL ones.
    let rejects = cx.take_rejects();
    assert_eq!((status, rejected_and_kept(&rejects)), (240, (4, 3)));
    // Reports tied on the code are ordered further: the pages stay in one order.
    assert!(
        rejects.iter().all(|r| r
            .source
            .contains("order_by=stationcode%2Cduedate%2Cnumbikesavailable%2Cnumdocksavailable")),
        "{}",
        rejects[0].source
    );

    let cx = ctx("velib_station_info", &[], false);
    let info = velib::velib_station_info(&cx).await.expect("velib info");
    // Listed twice, with 21 and 40 docks: the first listing, which the availability agrees with.
    assert_eq!(
        values_where(&info, "stationcode", "14004", "capacity").await,
        ["21"]
    );
    let info = rows(info).await;
    // A station with an unusable description stays listed: only one without a code is not, and
    // the second listing of a station listed twice.
    let rejects = cx.take_rejects();
    assert_eq!((info, rejected_and_kept(&rejects)), (238, (2, 3)));
    // Which listing is first does not depend on how the service orders ties on the code.
    assert!(
        rejects
            .iter()
            .all(|r| r.source.contains("order_by=stationcode%2Ccapacity%2Cname")),
        "{}",
        rejects[0].source
    );

    let cx = ctx("velov_station_info", &[], false);
    let info = velov::velov_station_info(&cx).await.expect("velov info");
    // Listed again as a `(DOUBLON)` copy: the station's own listing is kept.
    assert_eq!(
        values_where(&info, "station_id", "10001", "name").await,
        ["BELLECOUR / PERRACHE"]
    );
    let info = rows(info).await;
    assert_eq!((info, rejected_and_kept(&cx.take_rejects())), (66, (2, 3)));

    let cx = ctx("velov_station_status", &[], false);
    let status = rows(
        velov::velov_station_status(&cx)
            .await
            .expect("velov status"),
    )
    .await;
    assert_eq!((status, cx.take_rejects().len()), (67, 3));
}

#[tokio::test]
async fn velib_reads_each_dataset_in_one_export_as_it_reads_the_pages() {
    let export = [("velib.fetch", "export")];
    let cx = ctx("velib_station_status", &export, false);
    let status = velib::velib_station_status(&cx)
        .await
        .expect("velib status");
    let rejects = cx.take_rejects();
    assert_eq!(
        (rows(status).await, rejected_and_kept(&rejects)),
        (240, (4, 3))
    );
    assert!(
        rejects.iter().all(|r| r.source.contains("/exports/json?")),
        "{}",
        rejects[0].source
    );
    let cx = ctx("velib_station_info", &export, false);
    let info = velib::velib_station_info(&cx).await.expect("velib info");
    // The first of two listings, as when paging.
    assert_eq!(
        values_where(&info, "stationcode", "14004", "capacity").await,
        ["21"]
    );
    assert_eq!(
        (rows(info).await, rejected_and_kept(&cx.take_rejects())),
        (238, (2, 3))
    );
    let cx = ctx("velib_station_info", &[("velib.fetch", "all")], false);
    let Err(error) = velib::velib_station_info(&cx).await else {
        panic!("`all` is no way to fetch");
    };
    let error = error.to_string();
    assert!(
        error.contains("`velib.fetch` = \"all\": `pages`") && error.contains("or `export`"),
        "{error}"
    );
}

/// The runtime's edge fixtures, recorded with pages of 20 (a third or more of their records
/// are rejected: far above the default limit).
fn edge_settings() -> Vec<(&'static str, &'static str)> {
    vec![
        ("ingest.max_reject_ratio", "1"),
        (
            "opendata.dir",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../lakehouse-runtime/tests/fixtures/opendata/edge"
            ),
        ),
        ("velib.page_size", "20"),
    ]
}

#[tokio::test]
async fn velib_edge_records_are_quarantined_with_their_reasons() {
    let cx = ctx("velib_station_status", &edge_settings(), false);
    let status = rows(velib::velib_station_status(&cx).await.expect("status")).await;
    let rejects = cx.take_rejects();
    assert_eq!(status, 13);
    assert_eq!(
        reasons(&rejects),
        [
            "`numdocksavailable` should be an integer but is the string \"17\"",
            "`stationcode` is null",
            "`numdocksavailable` is negative (-1): a count cannot be",
            "`is_renting` should be a flag (true/false, 1/0 or \"OUI\"/\"NON\") but is the string \"1\"",
            "kept, with NULL for: `coordonnees_geo` is null",
            "kept, with NULL for: `coordonnees_geo.lon` 48.8484 and `coordonnees_geo.lat` \
             2.3339 look swapped: the point is outside the Vélib' Métropole area unless they \
             are exchanged",
            "kept, with NULL for: missing key `coordonnees_geo.lat`",
        ]
    );
    assert!(
        rejects[0]
            .source
            .starts_with("https://opendata.paris.fr/api/explore/v2.1/catalog/datasets/velib-disponibilite-en-temps-reel/records?select=stationcode%2Cname"),
        "{}",
        rejects[0].source
    );

    let cx = ctx("velib_station_info", &edge_settings(), false);
    let info = rows(velib::velib_station_info(&cx).await.expect("info")).await;
    assert_eq!(info, 11);
    assert_eq!(
        reasons(&cx.take_rejects()),
        [
            "station `14007` is listed twice: its first listing is kept",
            "missing key `stationcode`",
            "kept, with NULL for: `coordonnees_geo` is null",
            "kept, with NULL for: `capacity` should be an integer but is the string \"21\"; \
             `coordonnees_geo.lon` should be a number but is the string \"2.3373600840568\"",
            "kept, with NULL for: missing key `coordonnees_geo.lat`",
        ]
    );
}

#[tokio::test]
async fn velov_edge_records_are_quarantined_with_their_reasons() {
    let cx = ctx("velov_station_info", &edge_settings(), false);
    let info = rows(velov::velov_station_info(&cx).await.expect("info")).await;
    assert_eq!(info, 9);
    assert_eq!(
        reasons(&cx.take_rejects()),
        [
            "station `3005` is listed twice: its first listing is kept",
            "missing key `station_id`",
            "kept, with NULL for: `lon` is null",
            "kept, with NULL for: `capacity` should be an integer but is the string \"20\"; \
             `lon` should be a number but is the string \"4.8432379481\"",
            "kept, with NULL for: `lon` 45.7297266 and `lat` 4.8539637 look swapped: the point \
             is outside the Lyon metropolis unless they are exchanged",
        ]
    );

    let cx = ctx("velov_station_status", &edge_settings(), false);
    let status = rows(velov::velov_station_status(&cx).await.expect("status")).await;
    assert_eq!(status, 10);
    assert_eq!(
        reasons(&cx.take_rejects()),
        [
            "`num_bikes_available` should be an integer but is the string \"5\"",
            "`num_docks_available` is negative (-2): a count cannot be",
            "`is_renting` should be a flag (true/false, 1/0 or \"OUI\"/\"NON\") but is the string \"true\"",
        ]
    );
}

#[tokio::test]
async fn discovery_through_gbfs_json_reads_the_same_feeds() {
    let direct = ctx("velov_station_status", &[], false);
    let direct_rows = rows(velov::velov_station_status(&direct).await.expect("direct")).await;
    let discovered = ctx(
        "velov_station_status",
        &[(
            "velov.gbfs_url",
            "https://download.data.grandlyon.com/files/rdata/jcd_jcdecaux.jcdvelov/gbfs.json",
        )],
        false,
    );
    let discovered_rows = rows(
        velov::velov_station_status(&discovered)
            .await
            .expect("discovery"),
    )
    .await;
    assert_eq!(direct_rows, discovered_rows);
    // The discovery URL is the one read (the bundled `gbfs.json` lists the same feeds, so equal
    // rows alone would not show it): one the snapshot lacks fails, naming it.
    let elsewhere = ctx(
        "velov_station_status",
        &[(
            "velov.gbfs_url",
            "https://download.data.grandlyon.com/files/rdata/elsewhere/gbfs.json",
        )],
        false,
    );
    let error = velov::velov_station_status(&elsewhere)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(error.contains("elsewhere/gbfs.json"), "{error}");
}

#[tokio::test]
async fn the_plan_check_reads_nothing() {
    let nowhere = [("opendata.dir", "/nonexistent/opendata")];
    let cx = ctx("velib_station_status", &nowhere, true);
    assert_eq!(
        rows(velib::velib_station_status(&cx).await.expect("dry")).await,
        0
    );
    let cx = ctx("velov_station_info", &nowhere, true);
    assert_eq!(
        rows(velov::velov_station_info(&cx).await.expect("dry")).await,
        0
    );

    let cx = ctx("velib_station_status", &nowhere, false);
    let error = velib::velib_station_status(&cx)
        .await
        .err()
        .expect("no snapshot there");
    assert!(
        error.to_string().contains("/nonexistent/opendata"),
        "{error}"
    );
}

/// Stations as GBFS 3.0 writes them (translated names, `num_vehicles_*`, RFC 3339 times) read
/// as 2.x's do; a `last_reported` in milliseconds is rejected, not dated in the year 55 000.
#[test]
fn velov_reads_gbfs_3_stations() {
    use lakehouse_runtime::sources::Record;
    let at = |text: &str| Timestamp::parse(text).expect("time");
    let (updated, run_at) = (at("2025-06-03T08:15:00Z"), at("2025-06-03T08:16:00Z"));
    let info = serde_json::json!({
        "station_id": "10001",
        "name": [
            {"text": "Place Bellecour", "language": "en"},
            {"text": "Bellecour", "language": "fr"}
        ],
        "lat": 45.7578, "lon": 4.832, "address": "Place Bellecour", "capacity": 40
    });
    let row =
        velov::info_row(&Record::new(&info).expect("object"), updated, run_at).expect("accepted");
    assert_eq!(row.name.as_deref(), Some("Bellecour"));
    let status = serde_json::json!({
        "station_id": "10001",
        "num_vehicles_available": 7, "num_vehicles_disabled": 1,
        "num_docks_available": 32,
        "is_installed": true, "is_renting": true, "is_returning": true,
        "last_reported": "2025-06-03T08:12:41+02:00",
        "vehicle_types_available": [
            {"vehicle_type_id": "mechanical", "count": 5},
            {"vehicle_type_id": "electrical", "count": 2}
        ]
    });
    let row = velov::status_row(&Record::new(&status).expect("object"), updated, run_at)
        .expect("accepted");
    assert_eq!(
        (
            row.num_bikes_available,
            row.num_bikes_disabled,
            row.mechanical,
            row.electrical
        ),
        (7, Some(1), Some(5), Some(2))
    );
    assert_eq!(row.last_reported, at("2025-06-03T06:12:41Z"));
    // A type without a column costs nothing, even with an odd count; a known one's problem is
    // named by its place.
    let mut types = status.clone();
    types["vehicle_types_available"] = serde_json::json!([
        {"vehicle_type_id": "cargo", "count": -1},
        {"vehicle_type_id": "mechanical", "count": 5},
        {"vehicle_type_id": "electrical", "count": "2"}
    ]);
    let Err(rejected) = velov::status_row(&Record::new(&types).expect("object"), updated, run_at)
    else {
        panic!("a count as text is rejected");
    };
    assert_eq!(
        rejected.to_string(),
        "`vehicle_types_available[2].count` should be an integer but is the string \"2\""
    );
    types["vehicle_types_available"][2]["count"] = serde_json::json!(2);
    let row = velov::status_row(&Record::new(&types).expect("object"), updated, run_at)
        .expect("the cargo bikes are ignored");
    assert_eq!((row.mechanical, row.electrical), (Some(5), Some(2)));
    types["vehicle_types_available"] = serde_json::json!([null]);
    let Err(rejected) = velov::status_row(&Record::new(&types).expect("object"), updated, run_at)
    else {
        panic!("a null type is rejected");
    };
    assert_eq!(
        rejected.to_string(),
        "`vehicle_types_available[0]` should be an object but is null"
    );
    let mut in_milliseconds = status.clone();
    in_milliseconds["last_reported"] = serde_json::json!(1_748_938_361_000_i64);
    let Err(rejected) = velov::status_row(
        &Record::new(&in_milliseconds).expect("object"),
        updated,
        run_at,
    ) else {
        panic!("milliseconds are rejected");
    };
    assert_eq!(
        rejected.to_string(),
        "`last_reported` is 1748938361000: too large for seconds since the epoch (milliseconds?)"
    );
}

/// Live data is not stamped with a logical time long past (RUN_AT is in January 2026): refused
/// before any request (the base URL would refuse the connection).
#[tokio::test]
async fn live_sources_refuse_a_distant_run_at() {
    let settings = [
        ("opendata.mode", "live"),
        ("velib.base_url", "http://127.0.0.1:9/api/explore/v2.1/"),
        ("velov.gbfs_url", "http://127.0.0.1:9/gbfs.json"),
    ];
    let velib = velib::velib_station_status(&ctx("velib_station_status", &settings, false)).await;
    let velov = velov::velov_station_status(&ctx("velov_station_status", &settings, false)).await;
    for (source, result) in [("velib", velib.err()), ("velov", velov.err())] {
        let error = result.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            error.starts_with(&format!(
                "{source}: the live services answer with their data of now"
            )),
            "{error}"
        );
    }
}

/// A filter of the live API cannot apply to the snapshot: refused rather than ignored.
#[tokio::test]
async fn a_live_filter_on_a_snapshot_run_is_refused() {
    let cx = ctx(
        "velib_station_status",
        &[("velib.where", "nom_arrondissement_communes = \"Paris\"")],
        false,
    );
    let Err(error) = velib::velib_station_status(&cx).await else {
        panic!("the filter would be ignored");
    };
    assert!(
        error
            .to_string()
            .contains("only a live run can apply it (snapshots hold the unfiltered answers)"),
        "{error}"
    );
    assert!(
        !error.is_retryable(),
        "the same at every attempt: {error:?}"
    );
}

/// The station list is a full snapshot: filtered, it would close the history of every station
/// the filter leaves out. It is read whole whatever `velib.where` says (and so reads the
/// snapshot, where the filter of the availability is refused).
#[tokio::test]
async fn the_live_filter_leaves_the_station_list_whole() {
    let cx = ctx(
        "velib_station_info",
        &[("velib.where", "nom_arrondissement_communes = \"Paris\"")],
        false,
    );
    let info = velib::velib_station_info(&cx)
        .await
        .expect("the whole list");
    assert_eq!((rows(info).await, cx.take_rejects().len()), (238, 5));
}
