//! The whole workload through the orchestrator at small N; its checks must equal values computed
//! here from the generated rows with plain Rust (a map of the upserted rows and `sha2`), which
//! are themselves checked against WORKLOAD.md's published values at N = 100 000.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use lakehouse_bench::checks::{Checks, reference};
use lakehouse_bench::generator::{Texts, batch1, batch2, sales_row};
use lakehouse_bench::run::{Options, run};
use sha2::{Digest, Sha256};

/// One silver row: (quantity, amount in cents, batch, customer).
type SilverRow = (i64, i64, i64, String);

/// The checks of N rows, computed without DataFusion or Delta.
fn expected_checks(n: u64) -> Checks {
    let texts = Texts::new();
    let mut silver: BTreeMap<(i64, i32), SilverRow> = BTreeMap::new();
    let mut promos: BTreeMap<(i64, i32), bool> = BTreeMap::new();
    for (batch, rows) in [(1, batch1(n).collect::<Vec<_>>()), (2, batch2(n).collect())] {
        for (i, update) in rows {
            let row = sales_row(&texts, 42, i, update);
            let Some(customer) = row.customer_id else {
                continue;
            };
            if row.quantity <= 0 {
                continue;
            }
            let (units, cents) = row.unit_price.split_once('.').expect("price");
            let cents: i64 = units.parse::<i64>().unwrap() * 100 + cents.parse::<i64>().unwrap();
            let key = (row.order_id, row.order_line);
            let quantity = i64::from(row.quantity);
            silver.insert(
                key,
                (
                    quantity,
                    quantity * cents,
                    batch,
                    customer.trim_matches(' ').to_uppercase(),
                ),
            );
            promos.insert(key, row.promo_id.is_none());
        }
    }
    let sum_cents: i64 = silver.values().map(|r| r.1).sum();
    let amount = format!("{}.{:02}", sum_cents / 100, sum_cents % 100);
    let keys: BTreeSet<String> = silver
        .keys()
        .map(|(order, line)| hex::encode(Sha256::digest(format!("{order}|{line}").as_bytes())))
        .collect();
    let customers: BTreeSet<&String> = silver.values().map(|r| &r.3).collect();
    Checks {
        bronze_rows: (n + n / 10) as i64,
        silver_rows: silver.len() as i64,
        silver_sum_quantity: silver.values().map(|r| r.0).sum(),
        silver_sum_amount: amount.clone(),
        silver_rows_from_batch2: silver.values().filter(|r| r.2 == 2).count() as i64,
        // Every code of the sales exists in its dimension, every date in the calendar.
        fact_rows: silver.len() as i64,
        fact_promo_null: promos.values().filter(|none| **none).count() as i64,
        fact_sum_amount: amount,
        fact_min_sales_sk: keys.first().cloned().unwrap_or_default(),
        fact_max_sales_sk: keys.last().cloned().unwrap_or_default(),
        fact_distinct_customer_sk: customers.len() as i64,
        dim_rows: [10_000, 1_000, 50, 20, 1_096],
        silver_files: None,
    }
}

#[test]
fn the_independent_computation_reproduces_the_published_checks() {
    assert_eq!(
        expected_checks(100_000),
        reference(100_000).expect("published")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_at_10_000_rows_has_the_expected_checks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = Options {
        rows: 10_000,
        seed: 42,
        out: dir.path().to_owned(),
        keep: true,
        on_stage: None,
    };
    let report = run(&options, Instant::now()).await.expect("benchmark run");
    assert_eq!(report.checks.comparable(), expected_checks(10_000));
    assert!(report.checks.silver_files.unwrap_or(0) >= 1);
    assert!(report.bytes_on_disk > 0);
    assert!(dir.path().join("landing-n10000-s42/_DONE").is_file());
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("JSON line");
    assert_eq!(json["workload"], "superlake-bench-v1");
    assert_eq!(json["rows"], 10_000);
    for stage in lakehouse_bench::report::STAGES {
        assert!(json["stages_s"][stage].is_number(), "{stage}");
        assert!(json["stages_cpu_s"][stage].is_number(), "{stage}");
    }
    assert_eq!(
        json["checks"]["dim_rows"],
        serde_json::json!([10000, 1000, 50, 20, 1096])
    );
    // The whole process's peak memory, as the peers report theirs, and the stages' own.
    for peak in ["peak_rss_self_mb", "peak_rss_stages_mb"] {
        assert!(json[peak].as_f64().is_some_and(|mb| mb > 0.0), "{peak}");
    }
    assert!(json["rows_per_s"].is_number());
}

#[tokio::test]
async fn every_bench_pipeline_plans_on_empty_tables() {
    let registry = lakehouse_runtime::Registry::from_inventory().expect("registry");
    let names: Vec<&str> = registry.pipelines().iter().map(|p| p.name).collect();
    assert_eq!(
        names.len(),
        8,
        "the benchmark's own registry (no reference pipelines): {names:?}"
    );
    lakehouse_runtime::check::check_plans(&registry)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_landing_zone_is_named_and_leaves_no_warehouse() {
    use lakehouse_bench::generator::{fingerprint, landing_dir, write_landing};
    let dir = tempfile::tempdir().expect("temp dir");
    let options = Options {
        rows: 1_000,
        seed: 42,
        out: dir.path().to_owned(),
        keep: false,
        on_stage: None,
    };
    let landing = landing_dir(dir.path(), 1_000, 42);
    write_landing(&landing, 1_000, 42).expect("landing");

    // A file gone: named before any stage runs.
    let promos = landing.join("promos.parquet");
    let kept = std::fs::read(&promos).expect("promos");
    std::fs::remove_file(&promos).expect("removed");
    let error = run(&options, Instant::now())
        .await
        .expect_err("promos missing")
        .to_string();
    assert!(
        error.contains(&format!(
            "{}: missing from the landing zone",
            promos.display()
        )),
        "{error}"
    );
    let fingerprinted = fingerprint(&landing)
        .expect_err("promos missing")
        .to_string();
    assert!(fingerprinted.contains("promos.parquet"), "{fingerprinted}");

    // A file that is no Parquet: its stage fails, and the warehouse is not left behind.
    std::fs::write(&promos, kept).expect("restored");
    std::fs::write(landing.join("customers.parquet"), "not parquet").expect("broken");
    let error = run(&options, Instant::now())
        .await
        .expect_err("customers broken")
        .to_string();
    assert!(error.contains("stage gold_dims failed"), "{error}");
    assert!(!lakehouse_bench::run::warehouse_dir(&options).exists());
}
