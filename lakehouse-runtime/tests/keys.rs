//! Surrogate keys equal SHA-256 computed independently, with Spark's string forms.

use datafusion::prelude::{col, lit};
use lakehouse_runtime::frame::surrogate_key;
use sha2::{Digest, Sha256};

use crate::common::{TempWarehouse, lines, render};

fn sha(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[tokio::test]
async fn surrogate_keys_match_independent_sha256() {
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let df = session
        .sql(
            "SELECT * FROM (VALUES
                (CAST(42 AS BIGINT), 'CUST1', DATE '2024-03-05', TIMESTAMP '2024-03-05 10:20:30.250' AT TIME ZONE 'UTC', CAST(12.50 AS DECIMAL(10,2)), true),
                (CAST(-7 AS BIGINT), NULL, DATE '1969-12-31', TIMESTAMP '1970-01-01 00:00:00' AT TIME ZONE 'UTC', CAST(-0.05 AS DECIMAL(10,2)), false)
             ) AS t(n, s, d, ts, amount, flag)",
        )
        .await
        .expect("values");
    let df = df
        .select(vec![
            surrogate_key([col("n")]).into_expr().alias("k_int"),
            surrogate_key([col("n"), col("s")])
                .into_expr()
                .alias("k_null"),
            surrogate_key([col("d"), col("amount"), col("flag")])
                .into_expr()
                .alias("k_mixed"),
            surrogate_key([datafusion::logical_expr::cast(
                col("ts"),
                arrow::datatypes::DataType::Timestamp(
                    arrow::datatypes::TimeUnit::Microsecond,
                    Some("UTC".into()),
                ),
            )])
            .into_expr()
            .alias("k_ts"),
            surrogate_key([lit("a"), lit("b")])
                .into_expr()
                .alias("k_lit"),
        ])
        .expect("select");
    let expected = lines(&[
        &format!(
            "{}|{}|{}|{}|{}",
            sha("42"),
            sha("42||CUST1"),
            sha("2024-03-05||12.50||true"),
            sha("2024-03-05 10:20:30.25"),
            sha("a||b")
        ),
        &format!(
            "{}|∅|{}|{}|{}",
            sha("-7"),
            sha("1969-12-31||-0.05||false"),
            sha("1970-01-01 00:00:00"),
            sha("a||b")
        ),
    ]);
    assert_eq!(render(df).await, expected);
}

#[tokio::test]
async fn dictionary_encoded_parts_are_hashed_by_their_values() {
    // A join carries a dimension's strings dictionary-encoded.
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let df = session
        .sql(
            "SELECT arrow_cast(s, 'Dictionary(Int32, Utf8)') AS s, n FROM (VALUES
                ('toys', CAST(1 AS BIGINT)), (NULL, CAST(2 AS BIGINT))) AS t(s, n)",
        )
        .await
        .expect("values");
    let df = df
        .select(vec![
            surrogate_key([col("s"), col("n")]).into_expr().alias("k"),
        ])
        .expect("a dictionary of strings is hashed as its strings");
    assert_eq!(render(df).await, lines(&[&sha("toys||1"), "∅"]));
}

#[tokio::test]
async fn a_null_literal_part_makes_the_key_null() {
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let df = session
        .sql("SELECT 'a' AS s")
        .await
        .expect("values")
        .select(vec![
            surrogate_key([col("s"), lit(datafusion::scalar::ScalarValue::Null)])
                .into_expr()
                .alias("k"),
        ])
        .expect("select");
    assert_eq!(render(df).await, ["∅"]);
}

#[tokio::test]
async fn floating_point_and_negative_scale_parts_are_refused_at_plan_time() {
    let session = datafusion::prelude::SessionContext::new();
    for (value, type_name) in [
        ("CAST(1.5 AS DOUBLE)", "Float64"),
        // 12300 as DECIMAL(5, -2) would be rendered "123".
        (
            "arrow_cast(12300, 'Decimal128(5, -2)')",
            "Decimal128(5, -2)",
        ),
    ] {
        let df = session
            .sql(&format!("SELECT {value} AS x"))
            .await
            .expect("values");
        let error = df
            .select(vec![surrogate_key([col("x")]).into_expr()])
            .expect_err("refused while planning")
            .to_string();
        assert!(
            error.contains(&format!("surrogate_key cannot hash a {type_name} value")),
            "{error}"
        );
    }
}

#[tokio::test]
async fn sha256_hex_hashes_one_string_like_spark_sha2() {
    use lakehouse_runtime::frame::sha256_hex;
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let df = session
        .sql(
            "SELECT * FROM (VALUES
                (CAST(10000000 AS BIGINT), CAST(1 AS INT), 'C000001'),
                (CAST(10000001 AS BIGINT), CAST(4 AS INT), NULL),
                (CAST(7 AS BIGINT), CAST(2 AS INT), '')
             ) AS t(o, l, s)",
        )
        .await
        .expect("values");
    let text = datafusion::functions::expr_fn::concat(vec![
        datafusion::logical_expr::cast(col("o"), arrow::datatypes::DataType::Utf8),
        lit("|"),
        datafusion::logical_expr::cast(col("l"), arrow::datatypes::DataType::Utf8),
    ]);
    let view = datafusion::logical_expr::cast(col("s"), arrow::datatypes::DataType::Utf8View);
    let df = df
        .select(vec![
            sha256_hex(text).into_expr().alias("k_line"),
            sha256_hex(col("s")).into_expr().alias("k_text"),
            sha256_hex(view).into_expr().alias("k_view"),
        ])
        .expect("select");
    let expected = lines(&[
        &format!(
            "{}|{}|{}",
            sha("10000000|1"),
            sha("C000001"),
            sha("C000001")
        ),
        &format!("{}|∅|∅", sha("10000001|4")),
        &format!("{}|{}|{}", sha("7|2"), sha(""), sha("")),
    ]);
    assert_eq!(render(df).await, expected);
    // In SQL too, registered with every warehouse session.
    let df = session
        .sql("SELECT sha256_hex('10000000|1') AS k")
        .await
        .expect("sql");
    assert_eq!(render(df).await, vec![sha("10000000|1")]);
}
