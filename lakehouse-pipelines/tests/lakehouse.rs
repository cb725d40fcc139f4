//! The reference lakehouse end to end in a temporary warehouse: exact row counts, zero quality
//! issues, every fact key resolving, SCD2 versions exactly where attributes changed, and a replay
//! that changes no table.

use std::collections::BTreeMap;

use lakehouse_runtime::orchestrator::{Orchestrator, RunConfig};
use lakehouse_runtime::{Registry, TableDef, Timestamp, Warehouse};

fn run_at(day: u32) -> Timestamp {
    Timestamp::parse(&format!("2026-01-{day:02}T06:00:00Z")).expect("valid time")
}

async fn scalar(warehouse: &Warehouse, tables: &[&'static TableDef], query: &str) -> i64 {
    let batches = warehouse
        .sql(tables, query)
        .await
        .expect(query)
        .collect()
        .await
        .expect(query);
    let column = batches[0].column(0);
    let values = column
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .expect("an integer");
    values.value(0)
}

fn tables(registry: &Registry) -> Vec<&'static TableDef> {
    registry
        .pipelines()
        .iter()
        .map(|p| p.output)
        .chain(lakehouse_runtime::ledger::system_tables())
        .collect()
}

async fn counts(warehouse: &Warehouse, registry: &Registry) -> BTreeMap<String, i64> {
    let all = tables(registry);
    let mut counts = BTreeMap::new();
    for p in registry.pipelines() {
        let name = p.output.qualified_name();
        counts.insert(
            name.clone(),
            scalar(warehouse, &all, &format!("SELECT count(*) FROM {name}")).await,
        );
    }
    counts
}

async fn versions(warehouse: &Warehouse, registry: &Registry) -> BTreeMap<String, Option<u64>> {
    let mut versions = BTreeMap::new();
    for p in registry.pipelines() {
        versions.insert(
            p.output.qualified_name(),
            warehouse.version(p.output).await.expect("version"),
        );
    }
    versions
}

fn expected(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[tokio::test]
async fn two_runs_and_a_replay() {
    let dir = tempfile::tempdir().expect("dir");
    let warehouse = Warehouse::open(dir.path().to_str().expect("utf-8")).expect("warehouse");
    // The reference lakehouse alone (this test binary also links the walkthrough's pipeline).
    let registry = Registry::new(
        Registry::from_inventory()
            .expect("graph")
            .pipelines()
            .iter()
            .copied()
            .filter(|p| p.module_path.starts_with("lakehouse_pipelines")),
    )
    .expect("graph");
    let orchestrator = Orchestrator::new(registry.clone(), warehouse.clone());
    let all = tables(&registry);

    // Run 1.
    let first = orchestrator
        .run(&RunConfig {
            run_at: Some(run_at(15)),
            ..RunConfig::default()
        })
        .await
        .expect("run 1");
    assert!(first.succeeded(), "{}", first.render(false));
    assert_eq!(
        counts(&warehouse, &registry).await,
        expected(&[
            ("bronze.crm_contacts", 10),
            ("bronze.erp_sales_transactions", 100),
            ("bronze.velib_station_info", 238),
            ("bronze.velib_station_status", 240),
            ("bronze.velov_station_info", 66),
            ("bronze.velov_station_status", 67),
            ("gold.agg_daily_store_sales", 86),
            ("gold.dim_bike_station", 313),
            ("gold.dim_customer", 10),
            ("gold.dim_date", 47_482),
            ("gold.dim_product", 5),
            ("gold.dim_promo", 3),
            ("gold.dim_store", 3),
            ("gold.fact_bike_status", 303),
            ("gold.fact_sales", 100),
            ("silver.crm_contacts", 10),
            ("silver.erp_sales_transactions", 100),
            ("silver.velib_station_info", 238),
            ("silver.velib_station_status", 238),
            ("silver.velov_station_info", 66),
            ("silver.velov_station_status", 65),
        ])
    );
    // Silver's expectations: each source's two reports without a plausible time, dropped and
    // counted (a station that never reported, one from the future), and one Vélib' report
    // whose bike types do not add up, counted (and kept); nothing else.
    assert_eq!(
        scalar(
            &warehouse,
            &all,
            "SELECT count(*) FROM lakehouse.quality_issues",
        )
        .await,
        3
    );
    for (table, expectation, failing) in [
        ("silver.velib_station_status", "plausible_time", 2),
        ("silver.velov_station_status", "plausible_time", 2),
        ("silver.velib_station_status", "bike_types_add_up", 1),
    ] {
        let query = format!(
            "SELECT count(*) FROM lakehouse.quality_issues WHERE table_name = '{table}' AND \
             check_name = 'expectation' AND column_name = '{expectation}' AND failing_rows = \
             {failing} AND NOT blocking"
        );
        assert_eq!(scalar(&warehouse, &all, &query).await, 1, "{query}");
    }
    for (column, dimension, key) in [
        ("customer_key", "gold.dim_customer", "customer_key"),
        ("product_key", "gold.dim_product", "product_key"),
        ("store_key", "gold.dim_store", "store_key"),
        ("promo_key", "gold.dim_promo", "promo_key"),
        ("date_key", "gold.dim_date", "date_key"),
    ] {
        let unresolved = scalar(
            &warehouse,
            &all,
            &format!(
                "SELECT count(*) FROM gold.fact_sales f WHERE f.{column} IS NOT NULL \
                 AND NOT EXISTS (SELECT 1 FROM {dimension} d WHERE d.{key} = f.{column})"
            ),
        )
        .await;
        assert_eq!(unresolved, 0, "every {column} resolves to {dimension}");
    }
    assert_eq!(
        scalar(&warehouse, &all, "SELECT count(*) FROM gold.fact_sales WHERE customer_key IS NULL OR product_key IS NULL OR store_key IS NULL OR date_key IS NULL").await,
        0
    );
    for (column, dimension, key) in [
        ("station_key", "gold.dim_bike_station", "station_key"),
        ("date_key", "gold.dim_date", "date_key"),
    ] {
        let unresolved = scalar(
            &warehouse,
            &all,
            &format!(
                "SELECT count(*) FROM gold.fact_bike_status f \
                 WHERE NOT EXISTS (SELECT 1 FROM {dimension} d WHERE d.{key} = f.{column})"
            ),
        )
        .await;
        assert_eq!(unresolved, 0, "every {column} resolves to {dimension}");
    }
    // The daily aggregate adds up to the fact table, line for line and cent for cent.
    assert_eq!(
        scalar(
            &warehouse,
            &all,
            "SELECT count(*) FROM \
             (SELECT sum(order_lines) AS lines, sum(quantity) AS quantity, sum(revenue) AS revenue, \
                     sum(profit) AS profit FROM gold.agg_daily_store_sales) a, \
             (SELECT count(*) AS lines, sum(quantity) AS quantity, sum(total_price) AS revenue, \
                     sum(profit) AS profit FROM gold.fact_sales) f \
             WHERE a.lines = f.lines AND a.quantity = f.quantity AND a.revenue = f.revenue \
               AND a.profit = f.profit AND f.lines = 100"
        )
        .await,
        1
    );
    // Stations that report availability without being listed are in the dimension, flagged.
    assert_eq!(
        scalar(
            &warehouse,
            &all,
            "SELECT count(*) FROM gold.dim_bike_station WHERE NOT is_listed"
        )
        .await,
        9
    );
    let after_first = versions(&warehouse, &registry).await;

    // Run 2: customer names and two brands change with the run; contact 9 leaves the CRM;
    // promo OFFER2 appears.
    let second = orchestrator
        .run(&RunConfig {
            run_at: Some(run_at(16)),
            ..RunConfig::default()
        })
        .await
        .expect("run 2");
    assert!(second.succeeded(), "{}", second.render(false));
    assert_eq!(
        counts(&warehouse, &registry).await,
        expected(&[
            ("bronze.crm_contacts", 19),
            ("bronze.erp_sales_transactions", 200),
            ("bronze.velib_station_info", 476),
            ("bronze.velib_station_status", 480),
            ("bronze.velov_station_info", 132),
            ("bronze.velov_station_status", 134),
            ("gold.agg_daily_store_sales", 145),
            ("gold.dim_bike_station", 313),
            ("gold.dim_customer", 20),
            ("gold.dim_date", 47_482),
            ("gold.dim_product", 7),
            ("gold.dim_promo", 4),
            ("gold.dim_store", 4),
            ("gold.fact_bike_status", 303),
            ("gold.fact_sales", 200),
            ("silver.crm_contacts", 9),
            ("silver.erp_sales_transactions", 200),
            ("silver.velib_station_info", 238),
            ("silver.velib_station_status", 238),
            ("silver.velov_station_info", 66),
            ("silver.velov_station_status", 65),
        ])
    );
    let changed_products = scalar(
        &warehouse,
        &all,
        "SELECT count(*) FROM gold.dim_product WHERE NOT is_current AND product_id IN ('PROD1', 'PROD2')",
    )
    .await;
    assert_eq!(
        changed_products, 2,
        "exactly the products whose brand changed got a new version"
    );
    let renamed_stores = scalar(
        &warehouse,
        &all,
        "SELECT count(*) FROM gold.dim_store WHERE NOT is_current AND store_id = 'STORE1'",
    )
    .await;
    assert_eq!(
        renamed_stores, 1,
        "the store whose name changed kept its old name as a closed version"
    );
    let current_per_key = scalar(
        &warehouse,
        &all,
        "SELECT count(*) FROM (SELECT customer_key FROM gold.dim_customer WHERE is_current GROUP BY customer_key HAVING count(*) <> 1)",
    )
    .await;
    assert_eq!(current_per_key, 0, "one current row per customer");
    // Joined as the README says, on the current version, a dimension gives each fact one row,
    // however many versions it keeps (each customer has two by now).
    for (dimension, key, attribute) in [
        ("gold.dim_customer", "customer_key", "customer_name"),
        ("gold.dim_product", "product_key", "brand"),
        ("gold.dim_store", "store_key", "store_name"),
    ] {
        let joined = scalar(
            &warehouse,
            &all,
            &format!(
                "SELECT count(*) FROM gold.fact_sales f JOIN {dimension} d \
                 ON d.{key} = f.{key} AND d.is_current"
            ),
        )
        .await;
        assert_eq!(joined, 200, "one current {dimension} row per sale");
        // As the line was loaded, as the README says: the version its run wrote (the first
        // for a line older than its dimension), one per sale, with the sale's own attributes
        // (every customer, two products and a store change name at every run; a join on the
        // sale's day would give run 2's lines run 1's versions).
        let as_loaded = |select: &str| {
            format!(
                "WITH d AS (SELECT *, min(valid_from) OVER (PARTITION BY {key}) AS first_from \
                 FROM {dimension}) \
                 SELECT {select} FROM gold.fact_sales f JOIN d ON d.{key} = f.{key} \
                 AND (d.valid_from <= f.run_at OR d.valid_from = d.first_from) \
                 AND (d.valid_to IS NULL OR f.run_at < d.valid_to) \
                 JOIN silver.erp_sales_transactions s \
                 ON s.order_id = f.order_id AND s.order_line = f.order_line"
            )
        };
        let as_of = scalar(&warehouse, &all, &as_loaded("count(*)")).await;
        assert_eq!(as_of, 200, "one {dimension} version per sale as loaded");
        let not_its_own = scalar(
            &warehouse,
            &all,
            &as_loaded(&format!(
                "count(*) FILTER (WHERE d.{attribute} <> s.{attribute})"
            )),
        )
        .await;
        assert_eq!(
            not_its_own, 0,
            "{dimension}: each sale's version is the one it came with"
        );
    }
    // Every generated order is one line, and no two runs share an order id: the daily orders add
    // up to the lines.
    assert_eq!(
        scalar(
            &warehouse,
            &all,
            "SELECT sum(orders) - sum(order_lines) FROM gold.agg_daily_store_sales",
        )
        .await,
        0
    );
    // The same open-data snapshot twice: no station changed, so no new version.
    assert_eq!(
        scalar(
            &warehouse,
            &all,
            "SELECT count(*) FROM gold.dim_bike_station WHERE NOT is_current"
        )
        .await,
        0
    );
    let departed = scalar(
        &warehouse,
        &all,
        "SELECT count(*) FROM gold.dim_customer WHERE is_current AND customer_id = 'CUST10' AND contact_id IS NULL",
    )
    .await;
    assert_eq!(
        departed, 1,
        "the deleted contact is gone from the current customer row"
    );
    // Each run ingests the snapshot anew, and silver counts the same again.
    assert_eq!(
        scalar(
            &warehouse,
            &all,
            "SELECT count(*) FROM lakehouse.quality_issues WHERE column_name = \
             'plausible_time' AND failing_rows = 2",
        )
        .await,
        4
    );
    assert_eq!(
        scalar(
            &warehouse,
            &all,
            "SELECT count(*) FROM lakehouse.quality_issues"
        )
        .await,
        6
    );

    // Replaying run 1 changes no table.
    let before_replay = versions(&warehouse, &registry).await;
    let replay = orchestrator
        .resume(
            &first.run_id,
            &RunConfig {
                rerun_succeeded: true,
                ..RunConfig::default()
            },
        )
        .await
        .expect("replay");
    assert!(replay.succeeded(), "{}", replay.render(false));
    assert!(
        replay.results.iter().all(|r| r.replayed),
        "{}",
        replay.render(false)
    );
    assert_eq!(versions(&warehouse, &registry).await, before_replay);
    assert_ne!(after_first, before_replay);
}

/// `silver_crm_contacts` applies only the newest extract when it missed some: a contact the
/// newest one lacks is deleted, and each contact takes its newest attributes.
#[tokio::test]
async fn a_snapshot_pipeline_that_missed_runs_applies_the_newest_extract() {
    let dir = tempfile::tempdir().expect("dir");
    let warehouse = Warehouse::open(dir.path().to_str().expect("utf-8")).expect("warehouse");
    let registry = Registry::from_inventory().expect("graph");
    let orchestrator = Orchestrator::new(registry.clone(), warehouse.clone());
    let only = |target: &str, day: u32| RunConfig {
        targets: vec![target.to_owned()],
        run_at: Some(run_at(day)),
        ..RunConfig::default()
    };
    // Runs 1 and 2 ingest two extracts (contact 9 is in the first only; contact 0 is a Manager
    // in the first, a Director in the second); silver runs only at run 3.
    for (target, day) in [
        ("crm_contacts", 1),
        ("crm_contacts", 2),
        ("silver_crm_contacts", 3),
    ] {
        let report = orchestrator.run(&only(target, day)).await.expect("run");
        assert!(report.succeeded(), "{}", report.render(false));
    }
    let all = tables(&registry);
    assert_eq!(
        scalar(&warehouse, &all, "SELECT count(*) FROM silver.crm_contacts").await,
        9
    );
    assert_eq!(
        scalar(
            &warehouse,
            &all,
            "SELECT count(*) FROM silver.crm_contacts WHERE contact_id = '9' \
             OR (contact_id = '0' AND job_title <> 'Director')"
        )
        .await,
        0
    );
}

#[test]
fn the_calendar_runs_through_2099_with_iso_weeks_and_real_weekends() {
    use lakehouse_pipelines::modelisation::dimensions::dim_date::calendar;
    let days = calendar(run_at(15));
    assert_eq!(days.first().map(|d| d.date_key.as_str()), Some("19700101"));
    assert_eq!(days.last().map(|d| d.date_key.as_str()), Some("20991231"));
    let day = |key: &str| {
        days.iter()
            .find(|d| d.date_key == key)
            .expect("in the calendar")
    };
    // 2026-01-01 is a Thursday in ISO week 1 of 2026; 2027-01-01 a Friday in week 53 of 2026.
    let new_year = day("20260101");
    assert_eq!(
        (
            new_year.day_of_week,
            new_year.iso_week,
            new_year.iso_year,
            new_year.is_weekend
        ),
        (4, 1, 2026, false)
    );
    let next = day("20270101");
    assert_eq!(
        (next.day_of_week, next.iso_week, next.iso_year, next.quarter),
        (5, 53, 2026, 1)
    );
    // Saturday and Sunday are the weekend; Friday is not.
    assert!(
        day("20260103").is_weekend && day("20260104").is_weekend && !day("20260102").is_weekend
    );
    let weekends = days.iter().filter(|d| d.is_weekend).count();
    assert_eq!(weekends, days.iter().filter(|d| d.day_of_week >= 6).count());
    assert!((weekends as f64 / days.len() as f64 - 2.0 / 7.0).abs() < 0.001);
}

/// A station's update is dated by its local day: 00:30 in Paris is 22:30 UTC the day before in
/// summer, 23:30 in winter.
#[tokio::test]
async fn bike_status_is_dated_by_the_local_day() {
    use lakehouse_pipelines::modelisation::facts::fact_bike_status::date_key;
    use lakehouse_runtime::prelude::{DataType, TimeUnit, cast, lit};
    let session = datafusion::prelude::SessionContext::new();
    let utc = |text: &str| {
        cast(
            lit(text),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        )
    };
    let batches = session
        .read_empty()
        .expect("one row")
        .select(vec![
            date_key(utc("2025-06-02T22:30:00Z"))
                .into_expr()
                .alias("summer"),
            date_key(utc("2025-01-14T23:30:00Z"))
                .into_expr()
                .alias("winter"),
            date_key(utc("2025-06-03T08:15:00Z"))
                .into_expr()
                .alias("day"),
        ])
        .expect("plan")
        .collect()
        .await
        .expect("rows");
    let text = arrow::util::pretty::pretty_format_batches(&batches)
        .expect("text")
        .to_string();
    assert!(
        text.contains("| 20250603 | 20250115 | 20250603 |"),
        "{text}"
    );
}
