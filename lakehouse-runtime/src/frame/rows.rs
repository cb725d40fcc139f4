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

/// Rows looked at, at most, for a float field filling an integer column (until each such
/// column has a value): a row struct's field has one type for every row.
const ROWS_SAMPLED: usize = 4096;

/// Extra fraction digits decimal columns are decoded with, rounded off by a cast after.
const EXTRA_DIGITS: i8 = 10;

/// `rows` as record batches of `schema`. Field names must match column names: a field that is
/// no column (misspelled, or renamed by serde) is an error naming it, not a column silently
/// left NULL; a missing nullable column is NULL. A value of the wrong type is an error naming
/// the column, a float field for an integer column included (Arrow's decoder would truncate
/// it). A decimal column's extra fraction digits (a `Decimal` of a larger scale, a float, text)
/// are rounded half away from zero, as in landing files; one that does not fit its precision
/// is an error naming the column.
pub fn batches_from_rows<R: Serialize>(schema: SchemaRef, rows: &[R]) -> Result<Vec<RecordBatch>> {
    refuse_floats_for_integers(&schema, rows)?;
    let columns = || {
        schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    // Decimals are decoded wider, then cast: the decoder would cut their extra digits.
    let read = decimals_read_wider(&schema);
    let mut decoder = ReaderBuilder::new(read.clone().unwrap_or_else(|| schema.clone()))
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
            batches.push(match read {
                Some(_) => decimals_rounded(batch, &schema)?,
                None => batch,
            });
        }
    }
    Ok(batches)
}

/// `schema` with its decimal columns [`EXTRA_DIGITS`] wider in scale, as 38-digit decimals
/// (76-digit ones past 28 digits); `None` when it has none.
fn decimals_read_wider(schema: &arrow::datatypes::Schema) -> Option<SchemaRef> {
    use arrow::datatypes::{DataType, Field, Schema};
    let wider = |t: &DataType| match *t {
        // The widest precision: a value too large for the column's is named by the cast.
        // (128 bits when they hold it: quicker to parse.)
        DataType::Decimal128(p, s) if s >= 0 && p.saturating_add(EXTRA_DIGITS as u8) <= 38 => {
            Some(DataType::Decimal128(38, s + EXTRA_DIGITS))
        }
        DataType::Decimal128(_, s) | DataType::Decimal256(_, s) if s >= 0 => {
            Some(DataType::Decimal256(76, s + EXTRA_DIGITS))
        }
        _ => None,
    };
    if !schema
        .fields()
        .iter()
        .any(|f| wider(f.data_type()).is_some())
    {
        return None;
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match wider(f.data_type()) {
            Some(t) => f.as_ref().clone().with_data_type(t),
            None => f.as_ref().clone(),
        })
        .collect();
    Some(std::sync::Arc::new(Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    )))
}

/// `batch`, decoded with [`decimals_read_wider`], in `schema`'s types: decimals rounded to
/// their scale, one that does not fit its precision an error naming its column.
fn decimals_rounded(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let options = arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, column)| {
            if column.data_type() == field.data_type() {
                return Ok(column.clone());
            }
            arrow::compute::cast_with_options(column, field.data_type(), &options).map_err(|e| {
                Error::Refused(format!(
                    "rows do not fit the table's columns: column `{}` ({}): {e}",
                    field.name(),
                    field.data_type()
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// An error naming the first integer column of `schema` that the rows fill with a float (the
/// decoder would truncate `1.9` to 1), from the first rows (up to [`ROWS_SAMPLED`], until each
/// integer column has a value): a row struct's field is a float in every row or in none.
fn refuse_floats_for_integers<R: Serialize>(
    schema: &arrow::datatypes::Schema,
    rows: &[R],
) -> Result<()> {
    use arrow::datatypes::DataType;
    use serde_json::Value;
    let mut unseen: Vec<&arrow::datatypes::FieldRef> = schema
        .fields()
        .iter()
        .filter(|f| f.data_type().is_integer())
        .collect();
    let decimals = schema.fields().iter().any(|f| {
        matches!(
            f.data_type(),
            DataType::Decimal128(..) | DataType::Decimal256(..)
        )
    });
    for (index, row) in rows.iter().take(ROWS_SAMPLED).enumerate() {
        // Sentinels are looked for in the first rows only.
        if unseen.is_empty() && (!decimals || index >= 64) {
            break;
        }
        // A row that is no JSON object: the decoder says what is wrong with it.
        let Ok(Value::Object(values)) = serde_json::to_value(row) else {
            return Ok(());
        };
        // A float past any decimal's 38 digits (a sentinel such as `f64::MAX`): its text
        // overflows Arrow's digit count, which fails obscurely (or panics in a debug build).
        for field in schema.fields() {
            if let (DataType::Decimal128(..) | DataType::Decimal256(..), Some(Value::Number(n))) =
                (field.data_type(), values.get(field.name()))
                && n.as_f64().is_some_and(|v| v.abs() >= 1e38)
            {
                return Err(Error::Refused(format!(
                    "rows do not fit the table's columns: column `{}` is {} but the rows give \
                     it {n}, past any decimal's 38 digits",
                    field.name(),
                    field.data_type()
                )));
            }
        }
        for field in &unseen {
            if let Some(Value::Number(n)) = values.get(field.name())
                && n.is_f64()
            {
                return Err(Error::Refused(format!(
                    "rows do not fit the table's columns: column `{}` is {} but the rows give \
                     it floats ({n}), which would be truncated to whole numbers: give the field \
                     an integer type",
                    field.name(),
                    field.data_type()
                )));
            }
        }
        unseen.retain(|field| values.get(field.name()).is_none_or(Value::is_null));
    }
    Ok(())
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
    fn a_float_for_an_integer_is_an_error_and_extra_decimal_places_round() {
        use arrow::array::AsArray as _;
        let schema = Arc::new(Schema::new(vec![
            Field::new("qty", DataType::Int64, true),
            Field::new("amount", DataType::Decimal128(10, 2), true),
        ]));
        #[derive(Serialize)]
        struct Row<Q, A> {
            qty: Option<Q>,
            amount: Option<A>,
        }
        // The first row with a value tells: a row struct's field has one type.
        let error = batches_from_rows(
            schema.clone(),
            &[
                Row::<f64, i64> {
                    qty: None,
                    amount: Some(1),
                },
                Row {
                    qty: Some(2.0),
                    amount: None,
                },
            ],
        )
        .expect_err("a float into an integer")
        .to_string();
        assert_eq!(
            error,
            "rows do not fit the table's columns: column `qty` is Int64 but the rows give it \
             floats (2.0), which would be truncated to whole numbers: give the field an integer \
             type"
        );
        // Decimals: extra places round half away from zero, however given.
        let amounts = |batches: Vec<RecordBatch>| -> Vec<Option<i128>> {
            batches
                .iter()
                .flat_map(|b| {
                    b.column(1)
                        .as_primitive::<arrow::datatypes::Decimal128Type>()
                        .iter()
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let floats = batches_from_rows(
            schema.clone(),
            &[
                Row::<i64, f64> {
                    qty: Some(1),
                    amount: Some(19.999),
                },
                Row {
                    qty: Some(2),
                    amount: Some(-1.005),
                },
                Row {
                    qty: Some(3),
                    amount: Some(19.5),
                },
            ],
        )
        .expect("floats");
        assert_eq!(amounts(floats), [Some(2000), Some(-101), Some(1950)]);
        let mut texts: Vec<Row<i64, String>> = (0..5000)
            .map(|_| Row {
                qty: Some(1),
                amount: Some("1.20".to_owned()),
            })
            .collect();
        // Past any sample: every row's text is read whole.
        texts.push(Row {
            qty: Some(1),
            amount: Some("1.239".to_owned()),
        });
        texts.push(Row {
            qty: Some(1),
            amount: Some("1.5e1".to_owned()),
        });
        let read = amounts(batches_from_rows(schema.clone(), &texts).expect("texts"));
        assert_eq!(read[4999..], [Some(120), Some(124), Some(1500)]);
        // A sentinel past any decimal: refused, naming the column (Arrow's parser overflows).
        let error = batches_from_rows(
            schema.clone(),
            &[Row::<i64, f64> {
                qty: Some(1),
                amount: Some(f64::MAX),
            }],
        )
        .expect_err("f64::MAX")
        .to_string();
        assert!(
            error.contains("column `amount` is Decimal128(10, 2) but the rows give it"),
            "{error}"
        );
        // Too many digits for the precision: an error naming the column.
        let error = batches_from_rows(
            schema,
            &[Row::<i64, &str> {
                qty: Some(1),
                amount: Some("123456789.00"),
            }],
        )
        .expect_err("11 digits in a DECIMAL(10, 2)")
        .to_string();
        assert!(
            error.starts_with(
                "rows do not fit the table's columns: column `amount` (Decimal128(10, 2)): "
            ),
            "{error}"
        );
    }
}
