//! Rows of Rust values (any `serde::Serialize` struct whose fields match a table) into Arrow
//! record batches and back, through Arrow's JSON decoder and writer, so sources and tests need
//! no array builders.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::json::ReaderBuilder;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

mod probe;

/// Rows per record batch.
const BATCH_ROWS: usize = 8192;

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
    refuse_unfit_numbers(&schema, rows)?;
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

/// An error naming the first column of `schema` a row fills with a number Arrow's decoder would
/// not read as given: a float into an integer column (`1.9` truncated to 1), a date or a
/// timestamp one (truncated to whole days or microseconds), or past any decimal's 38 digits
/// into a decimal one (its text overflows the decoder's digit count: an obscure error, or a
/// panic in a debug build); a bare integer (not a [`Date`](crate::table::Date) or a
/// [`Timestamp`](crate::table::Timestamp)) into a date or timestamp column, which would be taken
/// as days or microseconds (epoch seconds, or `20240101`, stored as dates in 1970 or far
/// ahead). Every row is looked at, as rows of one type may still differ (`serde_json::Value`, an
/// `Option<f64>` that is `None` for thousands of rows first).
fn refuse_unfit_numbers<R: Serialize>(schema: &arrow::datatypes::Schema, rows: &[R]) -> Result<()> {
    use super::probe::Number;
    use arrow::datatypes::DataType;
    let unfit = |field: &str, number: Number| -> Option<String> {
        let data_type = schema.field_with_name(field).ok()?.data_type();
        let why = match (number, data_type) {
            // Even a whole one: the field's other values may not be.
            (Number::Float(_), t) if t.is_integer() => {
                "which would be truncated to whole numbers: give the field an integer type"
            }
            (Number::Float(float), DataType::Decimal128(..) | DataType::Decimal256(..)) => {
                if float.abs() < 1e38 {
                    return None;
                }
                "past any decimal's 38 digits"
            }
            (Number::Float(_), DataType::Date32) => {
                "which would be truncated to whole days: give the field a `Date`"
            }
            (Number::Float(_), DataType::Timestamp(..)) => {
                "which would be truncated to whole microseconds: give the field a `Timestamp`"
            }
            (Number::Integer(_), DataType::Date32) => {
                "which would be taken as days since 1970-01-01: give the field a `Date` \
                 (`Date::from_ymd`, `Date::parse`), or a text `YYYY-MM-DD` (a `Date` made a \
                 `serde_json::Value` is a bare integer too: give its `to_string()`)"
            }
            (Number::Integer(_), DataType::Timestamp(..)) => {
                "which would be taken as microseconds since 1970-01-01 00:00 UTC: give the \
                 field a `Timestamp` (`Timestamp(seconds * 1_000_000)` for epoch seconds, \
                 `Timestamp::parse`), or an RFC 3339 text (a `Timestamp` made a \
                 `serde_json::Value` is a bare integer too: give its `to_rfc3339()`)"
            }
            (Number::Date, DataType::Timestamp(..)) => {
                "whose days would be taken as microseconds: give the field a `Timestamp` \
                 (`Date::start`)"
            }
            (Number::Timestamp, DataType::Date32) => {
                "whose microseconds would be taken as days: give the field a `Date` \
                 (`Timestamp::date`)"
            }
            _ => return None,
        };
        let given = match number {
            Number::Float(float) => format!("floats ({float:?})"),
            Number::Integer(integer) => format!("bare integers ({integer})"),
            Number::Date => "`Date`s".to_owned(),
            Number::Timestamp => "`Timestamp`s".to_owned(),
        };
        Some(format!(
            "rows do not fit the table's columns: column `{field}` is {data_type} but the rows \
             give it {given}, {why}"
        ))
    };
    for (index, row) in rows.iter().enumerate() {
        super::probe::numbers_of(row, |field, number| match unfit(field, number) {
            Some(why) => Err(format!("{why} (row {})", index + 1)),
            None => Ok(()),
        })
        .map_err(Error::Refused)?;
    }
    Ok(())
}

/// Record batches as `R`s, through Arrow's JSON writer (decimals as their exact text: the
/// writer would make them JSON numbers, read back as `f64`).
/// A float that is not finite (NaN, an infinity) is an error naming its column: JSON has no such
/// value, and the writer would make it `null`, read back as `None` (a test would pass on a
/// division by zero the table stores).
/// Every field `R` reads must be a column (`refuse_fields_without_column`): an `Option` or
/// `#[serde(default)]` field no column fills would read `None`, or its default, on every row.
pub fn batches_to_rows<R: DeserializeOwned>(batches: &[RecordBatch]) -> Result<Vec<R>> {
    if let Some(batch) = batches.first() {
        refuse_fields_without_column::<R>(&batch.schema())?;
    }
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
    let mut deserializer = serde_json::Deserializer::from_slice(&json);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let columns = batches.first().map(|b| b.schema());
        let is_column = |name: &str| {
            columns
                .as_ref()
                .is_some_and(|c| c.field_with_name(name).is_ok())
        };
        Error::msg(unreadable_row::<R>(&e, is_column))
    })
}

/// An error naming the fields of `R` no column of `schema` fills that serde would fill anyway:
/// an `Option` reads `None`, a `#[serde(default)]` field its default, so a misspelled or
/// renamed field would read the same on every row and a test comparing with it pass; a field
/// not read from the rows is `#[serde(skip)]`. A field read by an alias is filled when one of
/// its names is a column. (A missing field of another type fails the read itself, on its first
/// row.) Not checked when `R` does not read a struct by its field names (a map, a
/// `serde_json::Value`, a struct with a `#[serde(flatten)]` field).
pub(crate) fn refuse_fields_without_column<R: DeserializeOwned>(
    schema: &arrow::datatypes::Schema,
) -> Result<()> {
    let Some(names) = probe::struct_fields::<R>() else {
        return Ok(());
    };
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let (filled, unfilled): (Vec<&str>, Vec<&str>) =
        names.iter().partition(|name| columns.contains(name));
    let mut missing: Vec<&str> = Vec::new();
    // Found once, if a field asks (most reads fill every field).
    let mut fields: Option<Vec<&str>> = None;
    for name in unfilled {
        // Another name of a field a column fills, or of one already told.
        if filled
            .iter()
            .chain(&missing)
            .any(|other| probe::same_field::<R>(other, name))
        {
            continue;
        }
        let fields = fields.get_or_insert_with(|| probe::one_name_each::<R>(names));
        if probe::reads_null::<R>(name) || probe::reads_without::<R>(name, fields) {
            missing.push(name);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let told: Vec<String> = missing
        .iter()
        .map(
            |name| match crate::similar::closest(name, columns.iter().copied()) {
                Some(column) => format!("`{name}` (did you mean `{column}`?)"),
                None => format!("`{name}`"),
            },
        )
        .collect();
    Err(Error::Refused(format!(
        "reading rows as `{}`: {} no column of the rows (columns: {}), and would read `None` (an \
         `Option`) or the default (`#[serde(default)]`) on every row: name its column \
         (`#[serde(rename = \"…\")]`, or `alias`), or leave the field out of reading \
         (`#[serde(skip)]`)",
        std::any::type_name::<R>(),
        match told.as_slice() {
            [one] => format!("field {one} is"),
            many => format!("fields {} are", many.join(", ")),
        },
        columns.join(", ")
    )))
}

/// What a row that does not deserialize as `R` tells: its number, its column, and what was
/// wrong, without the position in the JSON made of the batches (no one wrote that text).
/// `is_column` tells a NULL (the JSON writer leaves it out) from a field no column fills.
fn unreadable_row<R>(
    error: &serde_path_to_error::Error<serde_json::Error>,
    is_column: impl Fn(&str) -> bool,
) -> String {
    use serde_path_to_error::Segment;
    let inner = error.inner();
    let mut why = inner.to_string();
    if inner.line() > 0 {
        let position = format!(" at line {} column {}", inner.line(), inner.column());
        if let Some(stripped) = why.strip_suffix(&position) {
            why = stripped.to_owned();
        }
    }
    let (mut row, mut column) = (None, None);
    for segment in error.path().iter() {
        match segment {
            Segment::Seq { index } if row.is_none() => row = Some(index + 1),
            Segment::Map { key } if column.is_none() => column = Some(key.as_str()),
            _ => {}
        }
    }
    let missing = why
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
        .map(str::to_owned);
    let null = missing.clone().filter(|name| is_column(name));
    if null.is_some() {
        column = null.as_deref();
        why = "NULL, which the field's type cannot hold".to_owned();
    }
    let mut place = String::new();
    if let Some(row) = row {
        place.push_str(&format!(", row {row}"));
    }
    if let Some(column) = column {
        place.push_str(&format!(", column `{column}`"));
    }
    let hint = if null.is_some() {
        ": make it an `Option`"
    } else if missing.is_some() {
        ": the rows have no such column (a field to fill from another column needs \
         `#[serde(rename = \"…\")]`, one not read `#[serde(skip)]`)"
    } else {
        ""
    };
    format!(
        "reading rows as `{}`{place}: {why}{hint}",
        std::any::type_name::<R>()
    )
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

    #[test]
    fn a_row_that_does_not_read_names_its_row_and_column() {
        use serde::Deserialize;
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("qty", DataType::Int32, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(arrow::array::Int64Array::from(vec![1, 2, 3])),
                Arc::new(arrow::array::Int32Array::from(vec![Some(5), Some(6), None])),
            ],
        )
        .expect("batch");
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct NotNullQty {
            id: i64,
            qty: i32,
        }
        let error = batches_to_rows::<NotNullQty>(std::slice::from_ref(&batch))
            .expect_err("a NULL qty")
            .to_string();
        assert_eq!(
            error,
            "reading rows as `lakehouse_runtime::frame::rows::tests::\
             a_row_that_does_not_read_names_its_row_and_column::NotNullQty`, row 3, column \
             `qty`: NULL, which the field's type cannot hold: make it an `Option`"
        );
    }

    #[test]
    fn a_field_no_column_fills_is_refused_not_read_as_none() {
        use serde::Deserialize;
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("discount_pct", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(arrow::array::Int64Array::from(vec![1, 2])),
                Arc::new(arrow::array::Float64Array::from(vec![Some(5.0), None])),
            ],
        )
        .expect("batch");
        // `Option`s serde would fill with `None` on every row (one by two names), and a
        // `#[serde(default)]` field with its default; a plain field no column fills fails the
        // read itself, and one an alias fills reads.
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Misnamed {
            #[serde(alias = "id", alias = "order_id")]
            key: i64,
            discount: Option<f64>,
            #[serde(alias = "remark")]
            note: Option<String>,
            #[serde(default)]
            quantity: i32,
        }
        let error = batches_to_rows::<Misnamed>(std::slice::from_ref(&batch))
            .expect_err("no discount column")
            .to_string();
        assert_eq!(
            error,
            "reading rows as `lakehouse_runtime::frame::rows::tests::\
             a_field_no_column_fills_is_refused_not_read_as_none::Misnamed`: fields `discount` \
             (did you mean `discount_pct`?), `note`, `quantity` are no column of the rows \
             (columns: id, discount_pct), and would read `None` (an `Option`) or the default \
             (`#[serde(default)]`) on every row: name its column (`#[serde(rename = \"…\")]`, \
             or `alias`), or leave the field out of reading (`#[serde(skip)]`)"
        );
        // A default filled by its column is read; one beside a field no made-up value fits (an
        // enum variant holding data) cannot be told, and is left to read.
        #[derive(Deserialize, Debug, PartialEq)]
        struct Defaulted {
            id: i64,
            #[serde(default)]
            discount_pct: Option<f64>,
        }
        let read: Vec<Defaulted> =
            batches_to_rows(std::slice::from_ref(&batch)).expect("a column fills the default");
        assert_eq!(read[0].discount_pct, Some(5.0));
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        enum Tier {
            Gold(i64),
        }
        impl Default for Tier {
            fn default() -> Tier {
                Tier::Gold(0)
            }
        }
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Untold {
            id: i64,
            #[serde(default)]
            tier: Tier,
            #[serde(default)]
            quantity: i32,
        }
        let untold = batches_to_rows::<Untold>(std::slice::from_ref(&batch))
            .expect_err("tier is a default no column fills")
            .to_string();
        assert!(untold.contains("field `tier` is no column"), "{untold}");

        // Renamed to its column, or left out of reading: read.
        #[derive(Deserialize, Debug, PartialEq)]
        struct Named {
            #[serde(alias = "id", alias = "order_id")]
            key: i64,
            #[serde(alias = "discount_pct")]
            discount: Option<f64>,
            #[serde(skip)]
            note: Option<String>,
        }
        let read: Vec<Named> =
            batches_to_rows(std::slice::from_ref(&batch)).expect("every field a column");
        assert_eq!(read[1].discount, None, "a NULL is still `None`");
        assert_eq!(read[0].discount, Some(5.0));
        // Not a struct of named fields: not checked.
        let values: Vec<serde_json::Value> = batches_to_rows(&[batch]).expect("values");
        assert_eq!(values.len(), 2);
    }

    #[test]
    fn dates_of_any_year_read_back_as_written() {
        use serde::Deserialize;
        #[derive(Deserialize, Debug, PartialEq)]
        struct Day {
            day: crate::table::Date,
        }
        let days = [(-44, 3, 15), (0, 1, 1), (1970, 1, 1), (12_000, 12, 31)]
            .map(|(y, m, d)| crate::table::Date::from_ymd(y, m, d).expect("a day"));
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(
                "day",
                DataType::Date32,
                false,
            )])),
            vec![Arc::new(arrow::array::Date32Array::from(
                days.iter().map(|d| d.0).collect::<Vec<_>>(),
            ))],
        )
        .expect("batch");
        let read: Vec<Day> = batches_to_rows(&[batch]).expect("dates Arrow writes");
        assert_eq!(read, days.map(|day| Day { day }));
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
    fn every_row_is_looked_at_for_a_float_the_decoder_would_truncate() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("count", DataType::Int64, true),
            Field::new("amount", DataType::Decimal128(10, 2), true),
            Field::new("day", DataType::Date32, true),
            Field::new(
                "seen_at",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]));
        #[derive(Serialize, Default)]
        struct Row {
            id: i64,
            count: Option<f64>,
            amount: Option<f64>,
            day: Option<f64>,
            seen_at: Option<f64>,
        }
        let refused = |rows: &[Row]| {
            batches_from_rows(schema.clone(), rows)
                .expect_err("refused")
                .to_string()
        };
        // Thousands of rows without a value first: the float after them is still seen.
        let mut rows: Vec<Row> = (0..5000)
            .map(|id| Row {
                id,
                ..Row::default()
            })
            .collect();
        rows.push(Row {
            id: 5000,
            count: Some(2.7),
            ..Row::default()
        });
        let error = refused(&rows);
        assert!(
            error.contains("column `count` is Int64 but the rows give it floats (2.7)")
                && error.ends_with("(row 5001)"),
            "{error}"
        );
        // A sentinel past the decimals, after the first rows.
        rows.truncate(100);
        rows.push(Row {
            id: 100,
            amount: Some(f64::MAX),
            ..Row::default()
        });
        let error = refused(&rows);
        assert!(
            error.contains("column `amount` is Decimal128(10, 2)")
                && error.contains("past any decimal's 38 digits (row 101)"),
            "{error}"
        );
        // Days and microseconds are whole.
        let error = refused(&[Row {
            day: Some(19000.7),
            ..Row::default()
        }]);
        assert!(
            error.contains(
                "column `day` is Date32 but the rows give it floats (19000.7), which \
                 would be truncated to whole days"
            ),
            "{error}"
        );
        let error = refused(&[Row {
            seen_at: Some(1.5),
            ..Row::default()
        }]);
        assert!(error.contains("truncated to whole microseconds"), "{error}");
        // Rows that are JSON values may differ from one to the next.
        let values = [
            serde_json::json!({"id": 1, "count": 1}),
            serde_json::json!({"id": 1.9}),
        ];
        let error = batches_from_rows(schema.clone(), &values)
            .expect_err("a float id")
            .to_string();
        assert!(
            error.contains("column `id` is Int64 but the rows give it floats (1.9)")
                && error.ends_with("(row 2)"),
            "{error}"
        );
        // Whole numbers, and floats for a decimal, are read as given.
        let fine = [Row {
            id: 1,
            amount: Some(2.5),
            ..Row::default()
        }];
        assert_eq!(
            batches_from_rows(schema, &fine).expect("fits")[0].num_rows(),
            1
        );
    }

    #[test]
    fn a_bare_integer_for_a_date_or_a_timestamp_is_an_error_and_theirs_are_read() {
        use crate::table::{Date, Timestamp};
        use arrow::array::AsArray as _;
        let schema = Arc::new(Schema::new(vec![
            Field::new("day", DataType::Date32, true),
            Field::new(
                "seen_at",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]));
        #[derive(Serialize)]
        struct Row<D, T> {
            day: Option<D>,
            seen_at: Option<T>,
        }
        // `20261201` would be a day in the year 57 400; epoch seconds a time in January 1970.
        let error = batches_from_rows(
            schema.clone(),
            &[Row::<i32, Timestamp> {
                day: Some(20_261_201),
                seen_at: None,
            }],
        )
        .expect_err("a bare integer into a date")
        .to_string();
        assert!(
            error.contains(
                "column `day` is Date32 but the rows give it bare integers (20261201), which \
                 would be taken as days since 1970-01-01: give the field a `Date`"
            ) && error.ends_with("(row 1)"),
            "{error}"
        );
        let seconds = serde_json::json!({"seen_at": 1_764_547_200});
        let error = batches_from_rows(schema.clone(), &[seconds])
            .expect_err("epoch seconds")
            .to_string();
        assert!(
            error.contains("column `seen_at` is Timestamp(µs, \"UTC\") but the rows give it bare integers (1764547200)")
                && error.contains("`Timestamp(seconds * 1_000_000)` for epoch seconds"),
            "{error}"
        );
        // A `Date` and a `Timestamp` are days and microseconds, though integers too; texts are
        // parsed.
        let day = Date::from_ymd(2026, 12, 1).expect("a date");
        let at = Timestamp::parse("2026-12-01T06:00:00Z").expect("a timestamp");
        let typed = batches_from_rows(
            schema.clone(),
            &[Row {
                day: Some(day),
                seen_at: Some(at),
            }],
        )
        .expect("typed");
        let texts = batches_from_rows(
            schema.clone(),
            &[Row {
                day: Some("2026-12-01"),
                seen_at: Some("2026-12-01T06:00:00Z"),
            }],
        )
        .expect("texts");
        // One for the other: days as microseconds, or the reverse.
        let error = batches_from_rows(
            schema.clone(),
            &[Row::<Timestamp, Date> {
                day: Some(at),
                seen_at: Some(day),
            }],
        )
        .expect_err("swapped")
        .to_string();
        assert!(
            error.contains(
                "column `day` is Date32 but the rows give it `Timestamp`s, whose microseconds \
                 would be taken as days: give the field a `Date` (`Timestamp::date`)"
            ),
            "{error}"
        );
        for batch in [&typed[0], &texts[0]] {
            assert_eq!(
                batch
                    .column(0)
                    .as_primitive::<arrow::datatypes::Date32Type>()
                    .value(0),
                day.0
            );
            assert_eq!(
                batch
                    .column(1)
                    .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                    .value(0),
                at.0
            );
        }
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
             type (row 2)"
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
