//! Rows of Rust values (any `serde::Serialize` struct whose fields match a table) into Arrow
//! record batches and back, through Arrow's JSON decoder and writer, so sources and tests need
//! no array builders.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::json::ReaderBuilder;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Rows per record batch.
const BATCH_ROWS: usize = 8192;

/// Rows whose values are checked for a type the decoder would change without an error: a row
/// struct's fields have one type for every row.
const ROWS_SAMPLED: usize = 64;

/// `rows` as record batches of `schema`. Field names must match column names: a field that is
/// no column (misspelled, or renamed by serde) is an error naming it, not a column silently
/// left NULL; a missing nullable column is NULL. A value of the wrong type is an error naming
/// the column, a float for an integer or decimal column and decimal text with more places than
/// the column's scale included (the decoder would cut them: checked on the first rows).
pub fn batches_from_rows<R: Serialize>(schema: SchemaRef, rows: &[R]) -> Result<Vec<RecordBatch>> {
    refuse_cut_values(&schema, rows)?;
    let columns = || {
        schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_batch_size(BATCH_ROWS)
        .with_strict_mode(true)
        .build_decoder()?;
    let mut batches = Vec::with_capacity(rows.len().div_ceil(BATCH_ROWS));
    // A mistake of the code making the rows: another attempt makes the same.
    let unfit = |e: arrow::error::ArrowError| {
        Error::Refused(format!(
            "rows do not fit the table's columns ({}): {e}",
            columns()
        ))
    };
    for chunk in rows.chunks(BATCH_ROWS) {
        decoder.serialize(chunk).map_err(unfit)?;
        if let Some(batch) = decoder.flush().map_err(unfit)? {
            batches.push(batch);
        }
    }
    Ok(batches)
}

/// An error naming the first column of `schema` whose value, in one of the first rows, Arrow's
/// JSON decoder would cut without an error: a float into an integer column (truncated), a float
/// into a decimal column or decimal text with more places than its scale (cut to the scale).
fn refuse_cut_values<R: Serialize>(schema: &arrow::datatypes::Schema, rows: &[R]) -> Result<()> {
    use arrow::datatypes::DataType;
    use serde_json::Value;
    for row in rows.iter().take(ROWS_SAMPLED) {
        // A row that is no JSON object: the decoder says what is wrong with it.
        let Ok(Value::Object(values)) = serde_json::to_value(row) else {
            return Ok(());
        };
        for field in schema.fields() {
            let (Some(value), data_type) = (values.get(field.name()), field.data_type()) else {
                continue;
            };
            let why = match (data_type, value) {
                (t, Value::Number(n)) if t.is_integer() && n.is_f64() => format!(
                    "is {t} but the rows give it the float {n}, which would be cut to a whole \
                     number: give the field an integer type (round it first)"
                ),
                (DataType::Decimal128(p, s) | DataType::Decimal256(p, s), Value::Number(n))
                    if n.is_f64() =>
                {
                    format!(
                        "is DECIMAL({p},{s}) but the rows give it the float {n}, whose places \
                         past {s} would be cut: give the field the type `Decimal<{p}, {s}>`"
                    )
                }
                (DataType::Decimal128(p, s) | DataType::Decimal256(p, s), Value::String(text))
                    if decimal_places(text) > usize::try_from(*s).unwrap_or(0) =>
                {
                    format!(
                        "is DECIMAL({p},{s}) but the rows give it {text:?}, whose places past \
                         {s} would be cut: give the field the type `Decimal<{p}, {s}>` (round \
                         it first)"
                    )
                }
                _ => continue,
            };
            return Err(Error::Refused(format!(
                "rows do not fit the table's columns: column `{}` {why}",
                field.name()
            )));
        }
    }
    Ok(())
}

/// The digits after the point of decimal text (`"1.230"`: 3).
fn decimal_places(text: &str) -> usize {
    text.split_once('.').map_or(0, |(_, places)| {
        places.chars().take_while(char::is_ascii_digit).count()
    })
}

/// Record batches as `R`s, through Arrow's JSON writer (decimals as their exact text: the
/// writer would make them JSON numbers, read back as `f64`).
/// A float that is not finite (NaN, an infinity) is an error naming its column: JSON has no such
/// value, and the writer would make it `null`, read back as `None` (a test would pass on a
/// division by zero the table stores).
pub fn batches_to_rows<R: DeserializeOwned>(batches: &[RecordBatch]) -> Result<Vec<R>> {
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    for batch in batches {
        refuse_non_finite(batch)?;
        writer.write(&decimals_as_text(batch)?)?;
    }
    writer.finish()?;
    let json = writer.into_inner();
    if json.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&json).map_err(|e| Error::msg(format!("reading rows: {e}")))
}

/// An error naming the first float column of `batch` holding NaN or an infinity.
fn refuse_non_finite(batch: &RecordBatch) -> Result<()> {
    use arrow::array::AsArray as _;
    use arrow::datatypes::{DataType, Float32Type, Float64Type};
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let found = match field.data_type() {
            DataType::Float64 => column
                .as_primitive::<Float64Type>()
                .iter()
                .flatten()
                .find(|v| !v.is_finite()),
            DataType::Float32 => column
                .as_primitive::<Float32Type>()
                .iter()
                .flatten()
                .find(|v| !v.is_finite())
                .map(f64::from),
            _ => None,
        };
        if let Some(value) = found {
            return Err(Error::msg(format!(
                "column `{}` holds {value}, which rows cannot carry (JSON has no NaN or \
                 infinity): compare it on the frame (`isnan`, a filter), or guard the division",
                field.name()
            )));
        }
    }
    Ok(())
}

/// `batch` with its decimal columns cast to their exact text.
fn decimals_as_text(batch: &RecordBatch) -> Result<RecordBatch> {
    use arrow::datatypes::{DataType, Field, Schema};
    let is_decimal =
        |t: &DataType| matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..));
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| is_decimal(f.data_type()))
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if is_decimal(field.data_type()) {
            fields.push(Field::new(
                field.name(),
                DataType::Utf8,
                field.is_nullable(),
            ));
            columns.push(arrow::compute::cast(column, &DataType::Utf8)?);
        } else {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
        }
    }
    Ok(RecordBatch::try_new(
        std::sync::Arc::new(Schema::new(fields)),
        columns,
    )?)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn a_float_that_is_not_finite_is_named_not_read_as_null() {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "ratio",
            DataType::Float64,
            true,
        )]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(arrow::array::Float64Array::from(vec![
                Some(1.5),
                None,
                Some(f64::NAN),
            ]))],
        )
        .expect("batch");
        let error = batches_to_rows::<serde_json::Value>(&[batch])
            .expect_err("NaN")
            .to_string();
        assert!(error.starts_with("column `ratio` holds NaN"), "{error}");
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    #[test]
    fn a_field_that_is_no_column_is_an_error_and_a_missing_nullable_one_is_null() {
        #[derive(Serialize)]
        struct Misspelled {
            id: i64,
            nmae: &'static str,
        }
        let error = batches_from_rows(schema(), &[Misspelled { id: 1, nmae: "a" }])
            .expect_err("nmae is no column");
        let text = error.to_string();
        assert!(
            text.contains("rows do not fit the table's columns (id, name)")
                && text.contains("column 'nmae' missing from schema"),
            "{text}"
        );
        #[derive(Serialize)]
        struct IdOnly {
            id: i64,
        }
        let batches = batches_from_rows(schema(), &[IdOnly { id: 1 }]).expect("name is NULL");
        assert_eq!(batches[0].num_rows(), 1);
        assert_eq!(batches[0].column(1).null_count(), 1);
    }

    #[test]
    fn a_value_the_decoder_would_cut_is_an_error_naming_its_column() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("qty", DataType::Int64, true),
            Field::new("amount", DataType::Decimal128(10, 2), true),
        ]));
        #[derive(Serialize)]
        struct Row<Q, A> {
            qty: Option<Q>,
            amount: Option<A>,
        }
        let refused = |rows: &[Row<f64, i64>]| {
            batches_from_rows(schema.clone(), rows)
                .expect_err("a float into an integer")
                .to_string()
        };
        // The first row with a value tells: a row struct's field has one type.
        let error = refused(&[
            Row {
                qty: None,
                amount: Some(1),
            },
            Row {
                qty: Some(1.9),
                amount: None,
            },
        ]);
        assert_eq!(
            error,
            "rows do not fit the table's columns: column `qty` is Int64 but the rows give it the \
             float 1.9, which would be cut to a whole number: give the field an integer type \
             (round it first)"
        );
        let floats = batches_from_rows(
            schema.clone(),
            &[Row::<i64, f64> {
                qty: Some(2),
                amount: Some(19.999),
            }],
        )
        .expect_err("a float into a decimal")
        .to_string();
        assert!(
            floats.contains(
                "column `amount` is DECIMAL(10,2) but the rows give it the float \
                             19.999, whose places past 2 would be cut"
            ),
            "{floats}"
        );
        let text = batches_from_rows(
            schema.clone(),
            &[Row::<i64, &str> {
                qty: Some(2),
                amount: Some("1.239"),
            }],
        )
        .expect_err("three places into two")
        .to_string();
        assert!(text.contains("it \"1.239\", whose places past 2"), "{text}");
        // Exact values go through.
        let batches = batches_from_rows(
            schema,
            &[Row::<i64, &str> {
                qty: Some(2),
                amount: Some("1.20"),
            }],
        )
        .expect("exact");
        assert_eq!(batches[0].num_rows(), 1);
    }
}
