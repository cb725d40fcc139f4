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
    let output = fact_sales(sales, test.ctx()).await.expect("the pipeline");
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
