//! Typed aggregation: `group_by` + `select_into` with `sum`, `count`, `min`, `max`, `avg`; the
//! results have the declared types, stray columns are refused, and empty inputs behave as SQL's.

use lakehouse_runtime::prelude::*;
use serde::Serialize;

use crate::common::{TempWarehouse, contents, frame, render};

/// An order line.
#[derive(Table, Serialize)]
#[table(schema = "agg", name = "lines", mode = append)]
pub struct Line {
    pub order_id: i64,
    pub customer_id: String,
    pub quantity: i32,
    pub amount: Decimal<10, 2>,
    pub discount: Option<Decimal<10, 2>>,
    pub order_date: Date,
    pub promo: Option<String>,
}

/// A customer's totals.
#[derive(Table)]
#[table(schema = "agg", name = "customer_totals", key(customer_id), mode = merge)]
pub struct CustomerTotals {
    pub customer_id: String,
    pub orders: i64,
    pub lines: i64,
    pub promo_lines: i64,
    pub quantity: i64,
    pub revenue: Decimal<14, 2>,
    pub discount: Option<Decimal<14, 2>>,
    pub first_order: Date,
    pub last_order: Date,
    pub mean_quantity: f64,
    pub mean_amount: Decimal<12, 4>,
    pub revenue_per_order: f64,
}

/// One row over everything.
#[derive(Table)]
#[table(schema = "agg", name = "summary", mode = overwrite)]
pub struct Summary {
    pub lines: i64,
    pub quantity: Option<i64>,
    pub first_order: Option<Date>,
}

/// The same, with a NOT NULL sum.
#[derive(Table)]
#[table(schema = "agg", name = "strict_summary", mode = overwrite)]
pub struct StrictSummary {
    pub lines: i64,
    pub quantity: i64,
    pub first_order: Option<Date>,
}

/// A customer, in a region.
#[derive(Table, Serialize)]
#[table(schema = "agg", name = "customers", key(customer_id), mode = merge)]
pub struct Customer {
    pub customer_id: String,
    pub region: String,
}

/// Quantities per region.
#[derive(Table)]
#[table(schema = "agg", name = "regional", mode = overwrite)]
pub struct Regional {
    pub region: String,
    pub customers: i64,
    pub quantity: i64,
}

/// Quantities per month.
#[derive(Table)]
#[table(schema = "agg", name = "monthly", mode = overwrite)]
pub struct Monthly {
    pub month: String,
    pub quantity: i64,
}

fn line(order_id: i64, customer: &str, quantity: i32, cents: i128, day: i32) -> Line {
    Line {
        order_id,
        customer_id: customer.into(),
        quantity,
        amount: Decimal(cents),
        discount: None,
        order_date: Date(day),
        promo: None,
    }
}

fn lines() -> Vec<Line> {
    let mut lines = vec![
        line(1, "C1", 2, 1050, 19_000),
        line(1, "C1", 1, 999, 19_000),
        line(2, "C1", 5, 10_000, 19_031),
        line(3, "C2", 1, 1, 19_010),
    ];
    lines[1].promo = Some("SPRING".into());
    lines[2].discount = Some(Decimal(250));
    lines
}

#[tokio::test]
async fn groups_fill_the_declared_types_and_write() {
    use Line as l;
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let input = Frame::<Line>::from_dataframe(frame(&session, Line::DEF, &lines())).expect("lines");
    let totals = input
        .group_by([l::customer_id.expr()])
        .select_into(CustomerTotalsSelect {
            customer_id: l::customer_id,
            orders: count_distinct(l::order_id),
            lines: count_rows(),
            promo_lines: count(l::promo),
            quantity: sum(l::quantity),
            revenue: sum(l::amount),
            discount: sum(l::discount),
            first_order: min(l::order_date),
            last_order: max(l::order_date),
            mean_quantity: avg(l::quantity),
            mean_amount: avg(l::amount),
            revenue_per_order: typed::<f64>(
                cast(sum(l::amount).into_expr(), DataType::Float64)
                    / cast(count_distinct(l::order_id).into_expr(), DataType::Float64),
            ),
        })
        .expect("aggregate");

    let schema = totals.dataframe().schema().clone();
    let types: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{}:{}", f.name(), f.data_type()))
        .collect();
    assert_eq!(
        types,
        [
            "customer_id:Utf8",
            "orders:Int64",
            "lines:Int64",
            "promo_lines:Int64",
            "quantity:Int64",
            "revenue:Decimal128(14, 2)",
            "discount:Decimal128(14, 2)",
            "first_order:Date32",
            "last_order:Date32",
            "mean_quantity:Float64",
            "mean_amount:Decimal128(12, 4)",
            "revenue_per_order:Float64",
        ]
    );
    wh.warehouse
        .write(
            &session,
            CustomerTotals::DEF,
            totals.into_dataframe(),
            Default::default(),
        )
        .await
        .expect("write");
    assert_eq!(
        contents(&wh.warehouse, CustomerTotals::DEF).await,
        [
            "C1|2|3|1|8|120.49|2.50|2022-01-08|2022-02-08|2.6666666666666665|40.1633|60.245",
            "C2|1|1|0|1|0.01|∅|2022-01-18|2022-01-18|1.0|0.0100|0.01",
        ]
    );
}

#[tokio::test]
async fn key_expressions_and_joined_views_group() {
    use Line as l;
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let input = Frame::<Line>::from_dataframe(frame(&session, Line::DEF, &lines())).expect("lines");
    let month = typed::<String>(to_char(l::order_date.expr(), lit("%Y-%m")));
    let monthly = input
        .filter(l::quantity.expr().gt(lit(0)))
        .expect("filter")
        .group_by([month.expr().clone()])
        .select_into(MonthlySelect {
            month,
            quantity: sum(l::quantity),
        })
        .expect("aggregate by an expression");
    assert_eq!(
        render(monthly.into_dataframe()).await,
        ["2022-01|4", "2022-02|5"]
    );

    let customers = [("C1", "north"), ("C2", "south")].map(|(id, region)| Customer {
        customer_id: id.into(),
        region: region.into(),
    });
    let customers = Frame::<Customer>::from_dataframe(frame(&session, Customer::DEF, &customers))
        .expect("customers");
    let input = Frame::<Line>::from_dataframe(frame(&session, Line::DEF, &lines())).expect("lines");
    let regional = input
        .join(
            customers,
            JoinType::Inner,
            [on(l::customer_id, Customer::customer_id)],
        )
        .expect("join")
        .group_by([Customer::region.expr()])
        .select_into(RegionalSelect {
            region: Customer::region,
            customers: count_distinct(l::customer_id),
            quantity: sum(l::quantity),
        })
        .expect("aggregate a joined view");
    assert_eq!(
        render(regional.into_dataframe()).await,
        ["north|1|8", "south|1|1"]
    );
}

#[tokio::test]
async fn keys_may_be_unqualified_or_aliased() {
    use Line as l;
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    for key in [col("order_date"), l::order_date.expr().alias("day")] {
        let input =
            Frame::<Line>::from_dataframe(frame(&session, Line::DEF, &lines())).expect("lines");
        let daily = input
            .group_by([key])
            .select_into(MonthlySelect {
                month: typed::<String>(to_char(l::order_date.expr(), lit("%Y-%m-%d"))),
                quantity: sum(l::quantity),
            })
            .expect("the key is the projection's column");
        assert_eq!(
            render(daily.into_dataframe()).await,
            ["2022-01-08|3", "2022-01-18|1", "2022-02-08|5"]
        );
    }
}

#[tokio::test]
async fn a_column_neither_grouped_nor_aggregated_is_named() {
    use Line as l;
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let input = Frame::<Line>::from_dataframe(frame(&session, Line::DEF, &lines())).expect("lines");
    let error = input
        .group_by([l::order_date.expr()])
        .select_into(MonthlySelect {
            month: l::customer_id,
            quantity: sum(l::quantity),
        })
        .err()
        .expect("customer_id is not a key");
    let message = error.to_string();
    assert!(
        message.contains("agg.monthly")
            && message.contains(
                "`agg.lines.customer_id` (for column `month`) is neither a group key nor inside \
                 an aggregate (the keys: `agg.lines.order_date`)"
            ),
        "{message}"
    );
}

#[tokio::test]
async fn no_keys_give_one_row_even_over_nothing() {
    use Line as l;
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let empty: Vec<Line> = Vec::new();
    let summarise = |rows: &[Line]| {
        Frame::<Line>::from_dataframe(frame(&session, Line::DEF, rows))
            .expect("lines")
            .group_by([])
            .select_into(SummarySelect {
                lines: count_rows(),
                quantity: sum(l::quantity),
                first_order: min(l::order_date),
            })
            .expect("aggregate")
    };
    assert_eq!(
        render(summarise(&lines()).into_dataframe()).await,
        ["4|9|2022-01-08"]
    );
    assert_eq!(render(summarise(&empty).into_dataframe()).await, ["0|∅|∅"]);

    // A NOT NULL sum over no rows is NULL: the output names the column instead of storing it.
    let strict = Frame::<Line>::from_dataframe(frame(&session, Line::DEF, &empty))
        .expect("lines")
        .group_by([])
        .select_into(StrictSummarySelect {
            lines: count_rows(),
            quantity: sum(l::quantity),
            first_order: min(l::order_date),
        })
        .expect("aggregate");
    let error = wh
        .warehouse
        .write(
            &session,
            StrictSummary::DEF,
            strict.into_dataframe(),
            Default::default(),
        )
        .await
        .expect_err("a NULL sum cannot fill a NOT NULL column");
    assert!(error.to_string().contains("quantity"), "{error}");
    assert!(
        contents(&wh.warehouse, StrictSummary::DEF).await.is_empty(),
        "nothing was written"
    );
}

/// A total as a narrow decimal.
#[derive(Table)]
#[table(schema = "agg", name = "total_amount", mode = overwrite)]
pub struct TotalAmount {
    pub total: Decimal<4, 2>,
}

/// Prices as the widest decimal.
#[derive(Table)]
#[table(schema = "agg", name = "wide_priced", mode = overwrite)]
pub struct WidePriced {
    pub order_id: i64,
    pub price: Decimal<38, 2>,
}

/// Prices as a narrow decimal.
#[derive(Table)]
#[table(schema = "agg", name = "priced", mode = overwrite)]
pub struct Priced {
    pub order_id: i64,
    pub price: Decimal<4, 2>,
    pub discount: Option<Decimal<4, 2>>,
}

#[tokio::test]
async fn decimal_literals_fill_optional_columns_and_never_exceed_their_precision() {
    use Line as l;
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let lines =
        || Frame::<Line>::from_dataframe(frame(&session, Line::DEF, &lines()[..1])).expect("lines");
    let priced = lines()
        .select_into(PricedSelect {
            order_id: l::order_id,
            price: Decimal::<4, 2>(9999),
            discount: None::<Decimal<4, 2>>,
        })
        .expect("select");
    assert_eq!(render(priced.into_dataframe()).await, ["1|99.99|∅"]);
    let discounted = lines()
        .select_into(PricedSelect {
            order_id: l::order_id,
            price: Decimal::<4, 2>(100),
            discount: Decimal::<4, 2>(25),
        })
        .expect("select");
    assert_eq!(render(discounted.into_dataframe()).await, ["1|1.00|0.25"]);
    // Five digits in a DECIMAL(4, 2): an error, not a value the Parquet writer truncates.
    let error = lines()
        .select_into(PricedSelect {
            order_id: l::order_id,
            price: Decimal::<4, 2>(12345),
            discount: None::<Decimal<4, 2>>,
        })
        .expect("select")
        .into_dataframe()
        .collect()
        .await
        .expect_err("too many digits")
        .to_string();
    assert!(error.contains("precision 4"), "{error}");
    // At 38 digits too: 39 digits in a DECIMAL(38, 2).
    let error = lines()
        .select_into(WidePricedSelect {
            order_id: l::order_id,
            price: Decimal::<38, 2>(10i128.pow(38)),
        })
        .expect("select")
        .into_dataframe()
        .collect()
        .await
        .expect_err("39 digits")
        .to_string();
    assert!(error.contains("precision 38"), "{error}");
    // A sum that does not fit its column names it.
    let total = Frame::<Line>::from_dataframe(frame(&session, Line::DEF, &self::lines()))
        .expect("lines")
        .group_by([])
        .select_into(TotalAmountSelect {
            total: sum(l::amount),
        })
        .expect("select")
        .into_dataframe()
        .collect()
        .await
        .expect_err("120.50 has five digits")
        .to_string();
    assert!(
        total.contains("column `total`: an aggregate does not fit the declared DECIMAL(4"),
        "{total}"
    );
    // Rows too.
    let mut too_wide = self::lines();
    too_wide[0].amount = Decimal(123_456_789_012);
    let rows =
        lakehouse_runtime::frame::batches_from_rows(Line::DEF.output_arrow_schema(), &too_wide);
    assert!(rows.is_err(), "12 digits in a DECIMAL(10, 2)");
}

/// A counter's readings.
#[derive(Table, Serialize)]
#[table(schema = "agg", name = "readings", mode = append)]
pub struct Reading {
    pub meter: String,
    pub value: i64,
}

/// Each meter's total, as `i64` and exactly.
#[derive(Table)]
#[table(schema = "agg", name = "meter_totals", mode = overwrite)]
pub struct MeterTotal {
    pub meter: String,
    pub total: Option<i64>,
    pub exact: Decimal<38, 0>,
}

#[tokio::test]
async fn integer_sums_are_exact_and_one_past_i64_fails_naming_its_column() {
    use Reading as r;
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let readings = |values: &[i64]| {
        let rows: Vec<Reading> = values
            .iter()
            .map(|&value| Reading {
                meter: "m1".into(),
                value,
            })
            .collect();
        Frame::<Reading>::from_dataframe(frame(&session, Reading::DEF, &rows)).expect("readings")
    };
    let totals = |values: &[i64]| {
        readings(values)
            .group_by([r::meter.expr()])
            .select_into(MeterTotalSelect {
                meter: r::meter,
                total: sum(r::value),
                exact: sum(r::value),
            })
            .expect("aggregate")
    };
    // Past i64::MAX and back: DataFusion's own i64 sum wraps on the way and lands here too.
    assert_eq!(
        render(totals(&[i64::MAX, 1, -2]).into_dataframe()).await,
        [format!("m1|{}|{}", i64::MAX - 1, i64::MAX - 1)]
    );

    // A total past i64's range fails the write, naming the column and the way out; the
    // decimal column holds it.
    let error = wh
        .warehouse
        .write(
            &session,
            MeterTotal::DEF,
            totals(&[i64::MAX, 1]).into_dataframe(),
            Default::default(),
        )
        .await
        .expect_err("the total does not fit i64")
        .to_string();
    assert!(
        error.contains("column `total`: an aggregate does not fit the declared BIGINT")
            && error.contains("declare the column `Decimal<38, 0>`: integers sum exactly into it"),
        "{error}"
    );
    assert!(contents(&wh.warehouse, MeterTotal::DEF).await.is_empty());
    let exact = readings(&[i64::MAX, i64::MAX, 3])
        .group_by([r::meter.expr()])
        .select_into(MeterExactSelect {
            meter: r::meter,
            exact: sum(r::value),
        })
        .expect("aggregate");
    assert_eq!(
        render(exact.into_dataframe()).await,
        [format!("m1|{}", 2 * i128::from(i64::MAX) + 3)]
    );

    // Built on, the sum is an aggregate DataFusion takes as it is, and exact.
    let built_on = readings(&[i64::MAX, 1])
        .into_dataframe()
        .aggregate(vec![], vec![sum(r::value).into_expr().alias("total")])
        .expect("an aggregate");
    assert_eq!(
        render(built_on).await,
        [(i128::from(i64::MAX) + 1).to_string()]
    );
}

/// Each meter's exact total.
#[derive(Table)]
#[table(schema = "agg", name = "meter_exact", mode = overwrite)]
pub struct MeterExact {
    pub meter: String,
    pub exact: Decimal<38, 0>,
}

#[tokio::test]
async fn an_aggregate_that_does_not_plan_is_not_retried() {
    use datafusion::functions_aggregate::expr_fn::sum as raw_sum;
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let lines = frame(&session, Line::DEF, &lines());
    // A raw DataFusion sum of text: no plan holds it, whatever the attempt.
    let error = Frame::<Line>::from_dataframe(lines)
        .expect("frame")
        .group_by([])
        .select_into(SummarySelect {
            lines: count_rows(),
            quantity: typed::<Option<i64>>(raw_sum(Line::customer_id.expr())),
            first_order: min(Line::order_date),
        })
        .err()
        .expect("a sum of text");
    assert!(!error.is_retryable(), "{error}");
    assert!(
        error.to_string().contains("agg.summary")
            && error.to_string().contains("cannot group the rows"),
        "{error}"
    );
}

#[tokio::test]
async fn a_projection_that_cannot_be_planned_names_the_table_and_the_column() {
    use lakehouse_runtime::frame::typed;
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let input = Frame::<Line>::from_dataframe(frame(&session, Line::DEF, &lines())).expect("lines");
    let error = input
        .select_into(CustomerSelect {
            customer_id: Line::customer_id,
            region: typed::<String>(Line::order_date.expr() * datafusion::prelude::lit(2)),
        })
        .err()
        .expect("a date times a number")
        .to_string();
    assert!(
        error.contains("agg.customers")
            && error.contains("column `region`: cannot project the rows: "),
        "{error}"
    );
    // Over groups too.
    let input = Frame::<Line>::from_dataframe(frame(&session, Line::DEF, &lines())).expect("lines");
    let error = input
        .group_by([Line::customer_id.expr(), Line::order_date.expr()])
        .select_into(CustomerSelect {
            customer_id: Line::customer_id,
            region: typed::<String>(Line::order_date.expr() * datafusion::prelude::lit(2)),
        })
        .err()
        .expect("a date times a number")
        .to_string();
    assert!(
        error.contains("agg.customers")
            && error.contains("column `region`: cannot project the groups: "),
        "{error}"
    );
}

/// Readings of a high-scale decimal.
#[derive(Table, Serialize)]
#[table(schema = "agg", name = "fine_readings", mode = append)]
pub struct FineReading {
    pub meter: String,
    pub value: Decimal<38, 30>,
}

/// Each meter's total of high-scale decimals.
#[derive(Table)]
#[table(schema = "agg", name = "fine_totals", mode = overwrite)]
pub struct FineTotal {
    pub meter: String,
    pub total: Option<Decimal<38, 30>>,
}

#[tokio::test]
async fn a_sum_of_38_digit_decimals_past_their_range_fails_naming_its_column() {
    // DataFusion sums DECIMAL(38, 30) in 38 digits, wrapping around past them: 90 000 000 twice
    // was stored as -160282366.92…, and a 39-digit total as it was.
    use FineReading as r;
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let totals = |values: &[&str]| {
        let rows: Vec<serde_json::Value> = values
            .iter()
            .map(|value| serde_json::json!({"meter": "m1", "value": value}))
            .collect();
        Frame::<FineReading>::from_dataframe(frame(&session, FineReading::DEF, &rows))
            .expect("readings")
            .group_by([r::meter.expr()])
            .select_into(FineTotalSelect {
                meter: r::meter,
                total: sum(r::value),
            })
            .expect("aggregate")
    };
    assert_eq!(
        render(totals(&["10000000.5", "10000000.25"]).into_dataframe()).await,
        [format!("m1|20000000.75{}", "0".repeat(28))]
    );
    for values in [["90000000", "90000000"], ["60000000", "60000000"]] {
        let error = totals(&values)
            .into_dataframe()
            .collect()
            .await
            .expect_err("past 38 digits")
            .to_string();
        assert!(
            error.contains("column `total`: an aggregate does not fit the declared DECIMAL(38,30)")
                && error.contains("the total has more than 38 digits"),
            "{values:?}: {error}"
        );
    }
}

/// Each meter's mean of high-scale decimals.
#[derive(Table)]
#[table(schema = "agg", name = "fine_means", mode = overwrite)]
pub struct FineMean {
    pub meter: String,
    pub mean: Option<Decimal<38, 30>>,
}

#[tokio::test]
async fn a_mean_of_38_digit_decimals_is_what_their_column_holds() {
    // DataFusion averages DECIMAL(38, 30) at scale 34, in 38 digits: the mean of 10 000 and
    // 10 000 overflowed, failed the run, and was retried.
    use FineReading as r;
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let rows: Vec<serde_json::Value> = ["10000", "10000.5", "-20000000.25"]
        .iter()
        .map(|value| serde_json::json!({"meter": "m1", "value": value}))
        .collect();
    let means = Frame::<FineReading>::from_dataframe(frame(&session, FineReading::DEF, &rows))
        .expect("readings")
        .group_by([r::meter.expr()])
        .select_into(FineMeanSelect {
            meter: r::meter,
            mean: avg(r::value),
        })
        .expect("aggregate");
    assert_eq!(
        render(means.into_dataframe()).await,
        ["m1|-6659999.916666666666666666666666666667"]
    );
}

#[tokio::test]
async fn a_max_of_an_outer_joins_optional_side_into_a_not_null_column_is_refused() {
    // It passed the plan test (empty tables) and failed in production on the first group of
    // unmatched rows: "declared NOT NULL, but the pipeline produced a NULL".
    use Line as l;
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let customers = Frame::<Customer>::from_dataframe(frame(
        &session,
        Customer::DEF,
        &[Customer {
            customer_id: "C1".into(),
            region: "north".into(),
        }],
    ))
    .expect("customers");
    let joined = || {
        Frame::<Line>::from_dataframe(frame(&session, Line::DEF, &lines()))
            .expect("lines")
            .join(
                customers.clone(),
                JoinType::Left,
                [on(l::customer_id, Customer::customer_id)],
            )
            .expect("join")
    };
    let error = joined()
        .group_by([l::customer_id.expr()])
        .select_into(RegionalSelect {
            region: max(Customer::region),
            customers: count_distinct(l::customer_id),
            quantity: sum(l::quantity),
        })
        .err()
        .expect("refused while planning")
        .to_string();
    assert!(
        error.contains(
            "column `region` is NOT NULL and filled with the max of `agg.customers.region`"
        ),
        "{error}"
    );
    // A sum of that side too (it was caught by the first run with an unmatched group only).
    let error = customers
        .clone()
        .join(
            Frame::<Line>::from_dataframe(frame(&session, Line::DEF, &lines())).expect("lines"),
            JoinType::Left,
            [on(Customer::customer_id, l::customer_id)],
        )
        .expect("join")
        .group_by([Customer::region.expr()])
        .select_into(RegionalSelect {
            region: Customer::region,
            customers: count_distinct(Customer::customer_id),
            quantity: sum(l::quantity),
        })
        .err()
        .expect("refused while planning")
        .to_string();
    assert!(
        error.contains(
            "column `quantity` is NOT NULL and filled with the sum of `agg.lines.quantity`"
        ),
        "{error}"
    );
    // An inner join's side has a value in every group.
    Frame::<Line>::from_dataframe(frame(&session, Line::DEF, &lines()))
        .expect("lines")
        .join(
            customers.clone(),
            JoinType::Inner,
            [on(l::customer_id, Customer::customer_id)],
        )
        .expect("join")
        .group_by([l::customer_id.expr()])
        .select_into(RegionalSelect {
            region: max(Customer::region),
            customers: count_distinct(l::customer_id),
            quantity: sum(l::quantity),
        })
        .expect("an inner join");
}

/// The total of squared amounts.
#[derive(Table)]
#[table(schema = "agg", name = "squares", mode = overwrite)]
pub struct Squares {
    pub total: Option<Decimal<31, 4>>,
}

#[tokio::test]
async fn a_computed_value_declared_of_another_type_than_it_has_is_refused_while_planning() {
    // A sum of `typed::<Decimal<10, 2>>` values is cast to scale 2: a scale-4 total was rounded
    // without an error.
    use Line as l;
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let lines =
        || Frame::<Line>::from_dataframe(frame(&session, Line::DEF, &lines())).expect("lines");
    let squared = || l::amount.expr() * l::amount.expr();
    let error = lines()
        .group_by([])
        .select_into(TotalAmountSelect {
            total: sum(typed::<Decimal<10, 2>>(squared())),
        })
        .err()
        .expect("refused while planning")
        .to_string();
    assert!(
        error.contains("agg.total_amount")
            && error.contains(
                "an expression declared DECIMAL(10,2) (`typed::<..>`) is Decimal128(21, 4): \
                 declare the type it has"
            ),
        "{error}"
    );
    // Declared as it is, it sums exactly.
    let total = lines()
        .group_by([])
        .select_into(SquaresSelect {
            total: sum(typed::<Decimal<21, 4>>(squared())),
        })
        .expect("declared as it is");
    let expected: f64 = self::lines()
        .iter()
        .map(|line| (line.amount.0 as f64 / 100.0).powi(2))
        .sum();
    let rendered = render(total.into_dataframe()).await;
    assert_eq!(rendered, [format!("{expected:.4}")]);
    // A join key declared of another type is refused too.
    let customers =
        Frame::<Customer>::from_dataframe(frame(&session, Customer::DEF, &[] as &[Customer]))
            .expect("customers");
    let error = lines()
        .join(
            customers,
            JoinType::Inner,
            [on_values(
                typed::<i64>(l::customer_id.expr()),
                typed::<i64>(cast(
                    Customer::region.expr(),
                    arrow::datatypes::DataType::Int64,
                )),
            )],
        )
        .err()
        .expect("text declared i64")
        .to_string();
    assert!(
        error.contains("an expression declared BIGINT (`typed::<..>`) is Utf8"),
        "{error}"
    );
}
