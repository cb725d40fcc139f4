//! Reference pipelines called on rows: edge cases of their transformations.

use lakehouse_pipelines::ingestion::erp::SilverErpSales;
use lakehouse_pipelines::modelisation::facts::fact_sales::fact_sales;
use lakehouse_runtime::prelude::*;
use lakehouse_runtime::testing::{TEST_RUN_AT, TestContext, rows};
use serde::{Deserialize, Serialize};

/// The columns of a silver sale these tests set.
#[derive(Serialize)]
struct Sale {
    order_id: i64,
    order_line: i32,
    quantity: Option<i32>,
    unit_price: Option<Decimal<10, 2>>,
    discount: Option<Decimal<10, 2>>,
    cost: Option<Decimal<10, 2>>,
    run_at: Timestamp,
}

/// The amounts of a fact row.
#[derive(Deserialize, Debug, PartialEq)]
struct Amounts {
    order_id: i64,
    total_price: Option<Decimal<12, 2>>,
    discount_pct: Option<Decimal<10, 2>>,
}

#[tokio::test]
async fn a_free_sale_line_has_no_discount_percentage_and_fails_nothing() {
    let test = TestContext::new("fact_sales").expect("context");
    let sale = |order_id, unit_price| Sale {
        order_id,
        order_line: 1,
        quantity: Some(2),
        unit_price: Some(Decimal(unit_price)),
        discount: Some(Decimal(50)),
        cost: Some(Decimal(100)),
        run_at: TEST_RUN_AT,
    };
    let sales = test
        .frame::<SilverErpSales, _>(&[sale(1, 0), sale(2, 1000)])
        .expect("sales");
    let output = fact_sales(sales).await.expect("the pipeline");
    let mut amounts: Vec<Amounts> = rows(output).await.expect("a free line divides by nothing");
    amounts.sort_by_key(|a| a.order_id);
    assert_eq!(
        amounts,
        [
            Amounts {
                order_id: 1,
                total_price: Some(Decimal(0)),
                discount_pct: None,
            },
            Amounts {
                order_id: 2,
                total_price: Some(Decimal(2000)),
                discount_pct: Some(Decimal(500)),
            },
        ]
    );
}

/// The time of a fact row.
#[derive(Deserialize, Debug, PartialEq)]
struct Loaded {
    order_id: i64,
    run_at: Timestamp,
}

#[tokio::test]
async fn a_sale_fact_keeps_the_run_that_ingested_its_line() {
    // Written by a later run (the facts failed in the line's own run, say), a fact still joins
    // the dimension versions its line came with: its `run_at` is the line's.
    let later = Timestamp(TEST_RUN_AT.0 + 86_400_000_000);
    let test = TestContext::new("fact_sales")
        .expect("context")
        .with_run_at(later);
    let sale = |order_id, run_at| Sale {
        order_id,
        order_line: 1,
        quantity: Some(1),
        unit_price: Some(Decimal(1000)),
        discount: Some(Decimal(0)),
        cost: Some(Decimal(100)),
        run_at,
    };
    let sales = test
        .frame::<SilverErpSales, _>(&[sale(1, TEST_RUN_AT), sale(2, later)])
        .expect("sales");
    let mut loaded: Vec<Loaded> = rows(fact_sales(sales).await.expect("the pipeline"))
        .await
        .expect("rows");
    loaded.sort_by_key(|l| l.order_id);
    assert_eq!(
        loaded,
        [
            Loaded {
                order_id: 1,
                run_at: TEST_RUN_AT,
            },
            Loaded {
                order_id: 2,
                run_at: later,
            },
        ]
    );
}

#[tokio::test]
async fn a_line_whose_amounts_do_not_fit_the_facts_leaves_them_null_and_fails_nothing() {
    let test = TestContext::new("fact_sales").expect("context");
    let sale = |order_id, quantity, unit_price, discount| Sale {
        order_id,
        order_line: 1,
        quantity: Some(quantity),
        unit_price: Some(Decimal(unit_price)),
        discount: Some(Decimal(discount)),
        cost: Some(Decimal(100)),
        run_at: TEST_RUN_AT,
    };
    // 2 billion units at 99 999 999.99; a discount ten million times the price; a sane line.
    let lines = [
        sale(1, 2_000_000_000, 9_999_999_999, 0),
        sale(2, 1, 1, 9_999_999_999),
        sale(3, 2, 1000, 50),
    ];
    let sales = test.frame::<SilverErpSales, _>(&lines).expect("sales");
    let output = fact_sales(sales).await.expect("the pipeline");
    let mut amounts: Vec<Amounts> = rows(output).await.expect("no overflow fails the run");
    amounts.sort_by_key(|a| a.order_id);
    assert_eq!(
        amounts,
        [
            Amounts {
                order_id: 1,
                total_price: None,
                discount_pct: Some(Decimal(0)),
            },
            Amounts {
                order_id: 2,
                total_price: Some(Decimal(1)),
                discount_pct: None,
            },
            Amounts {
                order_id: 3,
                total_price: Some(Decimal(2000)),
                discount_pct: Some(Decimal(500)),
            },
        ]
    );
    // Silver counts the two lines (a warning: they are kept).
    let silver = test.frame::<SilverErpSales, _>(&lines).expect("sales");
    let (_, findings) = test.expectations(silver).await.expect("checked");
    let line_fits: Vec<i64> = findings
        .iter()
        .filter(|(finding, _)| finding.column.as_deref() == Some("line_fits"))
        .map(|(finding, _)| finding.failing_rows)
        .collect();
    assert_eq!(line_fits, [2], "{findings:?}");
}

#[test]
fn the_calendar_does_not_shrink_for_a_past_run() {
    use lakehouse_pipelines::modelisation::dimensions::dim_date::calendar;
    let past = Timestamp::parse("2020-06-01T00:00:00Z").expect("a time");
    let days = calendar(past);
    assert_eq!(days.len(), 47_482);
    assert_eq!(days.last().map(|d| d.date_key.as_str()), Some("20991231"));
    // A run after it: through the end of its next year.
    let later = Timestamp::parse("2101-03-01T00:00:00Z").expect("a time");
    assert_eq!(
        calendar(later).last().map(|d| d.date_key.clone()),
        Some("21021231".to_owned())
    );
}

/// A Vélib' station row as the bronze table holds it.
#[derive(Serialize, Clone)]
struct StationInfo {
    stationcode: &'static str,
    name: Option<&'static str>,
    capacity: Option<i32>,
    lon: f64,
    lat: f64,
    station_opening_hours: Option<&'static str>,
    run_at: Timestamp,
}

/// The version a station list gives a station.
#[derive(Deserialize, Debug, PartialEq)]
struct StationVersion {
    stationcode: String,
    station_opening_hours: Option<String>,
}

#[tokio::test]
async fn a_station_listed_twice_keeps_the_same_row_whatever_the_order() {
    use lakehouse_pipelines::ingestion::open::silver::silver_velib_station_info;
    use lakehouse_pipelines::ingestion::open::velib::BronzeVelibStationInfo;
    // Listed twice, the rows differing only in their opening hours (a change column): the
    // one kept must not depend on the order the rows come in, or every run may open a version.
    let row = |hours| StationInfo {
        stationcode: "16107",
        name: Some("Benjamin Godard - Victor Hugo"),
        capacity: Some(35),
        lon: 2.275725,
        lat: 48.865983,
        station_opening_hours: hours,
        run_at: TEST_RUN_AT,
    };
    let mut kept = Vec::new();
    for rows_in in [
        [row(Some("24/7")), row(Some("6h-1h"))],
        [row(Some("6h-1h")), row(Some("24/7"))],
    ] {
        let test = TestContext::new("silver_velib_station_info").expect("context");
        let raw = test
            .changes::<BronzeVelibStationInfo, _>(&rows_in)
            .expect("raw");
        let output = silver_velib_station_info(raw).await.expect("the pipeline");
        let versions: Vec<StationVersion> = rows(output).await.expect("rows");
        kept.push(versions);
    }
    assert_eq!(kept[0].len(), 1, "{:?}", kept[0]);
    assert_eq!(kept[0], kept[1]);
}

/// A Vélib' availability row as the bronze table holds it: the columns these tests set.
#[derive(Serialize)]
struct VelibStatus {
    stationcode: &'static str,
    is_installed: bool,
    numdocksavailable: i32,
    numbikesavailable: i32,
    is_renting: bool,
    is_returning: bool,
    duedate: Option<Timestamp>,
    lon: f64,
    lat: f64,
    run_at: Timestamp,
}

/// A Vélo'v availability row as the bronze table holds it: the columns these tests set.
#[derive(Serialize)]
struct VelovStatus {
    station_id: &'static str,
    num_bikes_available: i32,
    num_docks_available: i32,
    is_installed: bool,
    is_renting: bool,
    is_returning: bool,
    last_reported: Timestamp,
    feed_last_updated: Timestamp,
    run_at: Timestamp,
}

/// The station of an availability row silver kept.
#[derive(Deserialize, Debug, PartialEq)]
struct Kept {
    #[serde(alias = "stationcode", alias = "station_id")]
    station: String,
}

const HOUR: i64 = 3600 * 1_000_000;

/// `hours` after [`TEST_RUN_AT`].
fn after(hours: i64) -> Timestamp {
    Timestamp(TEST_RUN_AT.0 + hours * HOUR)
}

/// Each finding of expectations as (its expectation, the rows failing it, what they do).
fn named(
    findings: &[(
        lakehouse_runtime::quality::Finding,
        lakehouse_runtime::table::OnFail,
    )],
) -> Vec<(&str, i64, lakehouse_runtime::table::OnFail)> {
    findings
        .iter()
        .map(|(f, on_fail)| {
            (
                f.column.as_deref().unwrap_or_default(),
                f.failing_rows,
                *on_fail,
            )
        })
        .collect()
}

/// The silver output of a "late" and an "ahead" report: the late one kept, the other dropped
/// by `plausible_time` (and counted).
async fn only_the_late_report_is_kept<T: Table>(
    kept: Frame<T>,
    findings: Vec<(
        lakehouse_runtime::quality::Finding,
        lakehouse_runtime::table::OnFail,
    )>,
) {
    assert_eq!(
        named(&findings),
        [("plausible_time", 1, lakehouse_runtime::table::OnFail::Drop)]
    );
    let kept: Vec<Kept> = rows(kept).await.expect("rows");
    assert_eq!(
        kept,
        [Kept {
            station: "late".to_owned()
        }]
    );
}

/// Availability rows are judged against the run that fetched them, not the run reading them:
/// a resumed run (its logical time earlier) reads rows fetched days later, and a row silver
/// skips is never read again.
#[tokio::test]
async fn a_report_time_is_judged_against_its_own_fetch() {
    use lakehouse_pipelines::ingestion::open::silver::{
        silver_velib_station_status, silver_velov_station_status,
    };
    use lakehouse_pipelines::ingestion::open::velib::BronzeVelibStationStatus;
    use lakehouse_pipelines::ingestion::open::velov::BronzeVelovStationStatus;
    // "late": fetched two days after the run reading it, its report an hour before the fetch:
    // a report. "ahead": fetched at the run's time, its report 30 h ahead: a clock error, even
    // read 7 h later.
    let velib = |stationcode, duedate, run_at| VelibStatus {
        stationcode,
        is_installed: true,
        numdocksavailable: 3,
        numbikesavailable: 4,
        is_renting: true,
        is_returning: true,
        duedate: Some(duedate),
        lon: 2.3,
        lat: 48.8,
        run_at,
    };
    let test = TestContext::new("silver_velib_station_status")
        .expect("context")
        .with_run_at(after(7));
    let raw = test
        .changes::<BronzeVelibStationStatus, _>(&[
            velib("late", after(47), after(48)),
            velib("ahead", after(30), after(0)),
        ])
        .expect("raw");
    // The table's `plausible_time` expectation drops (and counts) the other.
    let (kept, dropped) = test
        .expectations(
            silver_velib_station_status(raw)
                .await
                .expect("the pipeline"),
        )
        .await
        .expect("expectations");
    only_the_late_report_is_kept(kept, dropped).await;

    let velov = |station_id, last_reported, run_at| VelovStatus {
        station_id,
        num_bikes_available: 4,
        num_docks_available: 3,
        is_installed: true,
        is_renting: true,
        is_returning: true,
        last_reported,
        feed_last_updated: run_at,
        run_at,
    };
    let test = TestContext::new("silver_velov_station_status")
        .expect("context")
        .with_run_at(after(7));
    let raw = test
        .changes::<BronzeVelovStationStatus, _>(&[
            velov("late", after(47), after(48)),
            velov("ahead", after(30), after(0)),
        ])
        .expect("raw");
    let (kept, dropped) = test
        .expectations(
            silver_velov_station_status(raw)
                .await
                .expect("the pipeline"),
        )
        .await
        .expect("expectations");
    only_the_late_report_is_kept(kept, dropped).await;
}

/// Two runs' generated orders never share an id: the daily aggregate counts distinct order ids,
/// and ids numbered from 0 in every run made orders of different runs count as one.
#[test]
fn generated_orders_are_unique_across_runs() {
    use lakehouse_pipelines::ingestion::erp::generate_sales;
    let ids = |sequence| {
        generate_sales(100, 42, sequence, TEST_RUN_AT)
            .into_iter()
            .map(|sale| (sale.order_id, sale.order_line))
            .collect::<std::collections::BTreeSet<_>>()
    };
    let (first, second) = (ids(1), ids(2));
    assert_eq!((first.len(), second.len()), (100, 100));
    assert!(first.is_disjoint(&second), "{first:?} {second:?}");
    let orders = |set: &std::collections::BTreeSet<(i64, i32)>| {
        set.iter()
            .map(|(id, _)| *id)
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert!(orders(&first).is_disjoint(&orders(&second)));
    assert_eq!(ids(1), first, "a replayed run generates the same orders");
}

#[test]
fn a_generated_customer_is_named_by_its_number() {
    // The original system extracted the number with a pattern that never matched, and named
    // every customer "Customer " with none.
    use lakehouse_pipelines::ingestion::erp::generate_sales;
    let sales = generate_sales(100, 42, 7, TEST_RUN_AT);
    let mut customers = std::collections::BTreeSet::new();
    for sale in &sales {
        let id = sale.customer_id.as_deref().expect("a customer");
        let number = id.strip_prefix("CUST").expect("CUST<n>");
        assert!(number.parse::<u32>().is_ok(), "{id}");
        assert_eq!(
            sale.customer_name.as_deref(),
            Some(format!("Customer {number} 7").as_str())
        );
        customers.insert(id.to_owned());
    }
    assert!(customers.len() > 1, "{customers:?}");
}

#[test]
fn an_order_is_dated_by_its_stores_local_day() {
    // At 02:05 UTC it is still the day before in New York, Chicago and San Francisco: orders
    // dated by the UTC day were in their stores' future.
    use lakehouse_pipelines::ingestion::erp::generate_sales;
    let run_at = Timestamp::parse("2026-12-01T02:05:00Z").expect("a time");
    let day = |year, month, day| Date::from_ymd(year, month, day).expect("a date");
    let sales = generate_sales(1_000, 42, 1, run_at);
    let latest = sales
        .iter()
        .filter_map(|sale| sale.order_date)
        .max()
        .expect("orders");
    assert_eq!(latest, day(2026, 11, 30));
    // At 12:00 UTC it is that day everywhere.
    let noon = Timestamp::parse("2026-12-01T12:00:00Z").expect("a time");
    let latest = generate_sales(1_000, 42, 1, noon)
        .iter()
        .filter_map(|sale| sale.order_date)
        .max()
        .expect("orders");
    assert_eq!(latest, day(2026, 12, 1));
}

#[tokio::test]
async fn silver_erp_drops_lines_without_a_product_or_quantity_and_counts_what_it_keeps() {
    use lakehouse_pipelines::ingestion::erp::{
        BronzeErpSales, generate_sales, silver_erp_sales_transactions,
    };
    use lakehouse_runtime::table::OnFail;
    let mut lines = generate_sales(5, 42, 1, TEST_RUN_AT);
    lines[0].product_id = None;
    lines[1].quantity = Some(0);
    lines[2].quantity = None;
    lines[3].discount = Some(Decimal(-100));
    let kept_ids = [lines[3].order_id, lines[4].order_id];
    let test = TestContext::new("silver_erp_sales_transactions").expect("context");
    let raw = test.changes::<BronzeErpSales, _>(&lines).expect("raw");
    let (kept, findings) = test
        .expectations(
            silver_erp_sales_transactions(raw)
                .await
                .expect("the pipeline"),
        )
        .await
        .expect("expectations");
    assert_eq!(
        named(&findings),
        [
            ("has_product", 1, OnFail::Drop),
            ("positive_quantity", 2, OnFail::Drop),
            ("amounts_not_negative", 1, OnFail::Warn),
        ]
    );
    #[derive(Deserialize)]
    struct Id {
        order_id: i64,
    }
    let mut ids: Vec<i64> = rows::<Id, _>(kept)
        .await
        .expect("rows")
        .into_iter()
        .map(|r| r.order_id)
        .collect();
    ids.sort();
    assert_eq!(ids, kept_ids);
}

/// A silver sale's place in time, and its price.
#[derive(Serialize)]
struct DatedSale {
    order_id: i64,
    order_line: i32,
    order_date: Option<Date>,
    customer_id: Option<String>,
    product_id: Option<String>,
    store_id: Option<String>,
    quantity: Option<i32>,
    unit_price: Option<Decimal<10, 2>>,
    cost: Option<Decimal<10, 2>>,
    run_at: Timestamp,
}

/// The `date_key` of a fact row.
#[derive(Deserialize, Debug, PartialEq)]
struct Dated {
    order_id: i64,
    date_key: Option<String>,
}

#[tokio::test]
async fn a_sale_dated_outside_the_calendar_is_counted_and_placed_on_no_day() {
    // 1969-12-31 and 2100-01-01 are days `dim_date` lacks: a fact naming them would fail its
    // foreign-key check, and block the facts at every run from then on.
    let test = TestContext::new("fact_sales").expect("context");
    let day = |text: &str| Date::parse(text).expect("a date");
    let sale = |order_id, order_date: Option<Date>, unit_price: Option<i128>| DatedSale {
        order_id,
        order_line: 1,
        order_date,
        customer_id: Some("CUST1".to_owned()),
        product_id: Some("PROD1".to_owned()),
        store_id: Some("STORE1".to_owned()),
        quantity: Some(1),
        unit_price: unit_price.map(Decimal),
        cost: unit_price.map(Decimal),
        run_at: TEST_RUN_AT,
    };
    let lines = [
        sale(1, Some(day("1969-12-31")), Some(100)),
        sale(2, Some(day("1970-01-01")), Some(100)),
        sale(3, Some(day("2099-12-31")), Some(100)),
        sale(4, Some(day("2100-01-01")), Some(100)),
        sale(5, Some(day("2026-01-15")), None),
    ];
    let sales = test.frame::<SilverErpSales, _>(&lines).expect("sales");
    let mut dated: Vec<Dated> = rows(fact_sales(sales).await.expect("the pipeline"))
        .await
        .expect("rows");
    dated.sort_by_key(|d| d.order_id);
    let keys: Vec<Option<&str>> = dated.iter().map(|d| d.date_key.as_deref()).collect();
    assert_eq!(
        keys,
        [
            None,
            Some("19700101"),
            Some("20991231"),
            None,
            Some("20260115")
        ]
    );
    // Silver keeps them, and counts them: out of the calendar, and without a price.
    let sales = test.frame::<SilverErpSales, _>(&lines).expect("sales");
    let (kept, findings) =
        lakehouse_runtime::quality::apply_expectations(SilverErpSales::DEF, sales.into_dataframe())
            .await
            .expect("checked");
    assert_eq!(kept.count().await.expect("count"), 5, "kept");
    let mut failing: Vec<(String, i64)> = findings
        .iter()
        .map(|(finding, _)| {
            (
                finding.column.clone().unwrap_or_default(),
                finding.failing_rows,
            )
        })
        .collect();
    failing.sort();
    assert_eq!(
        failing,
        [("in_calendar".to_owned(), 2), ("priced".to_owned(), 1)]
    );
}
