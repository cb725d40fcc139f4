//! Conformance of a DataFrame to a table's declared columns: names present, types equal (string
//! encodings and time zones aside), nothing extra, declared order, NOT NULL asserted where the plan
//! cannot prove it, and the table's qualifier set.

use datafusion::common::Column;
use datafusion::dataframe::DataFrame;
use std::sync::Arc;

use arrow::datatypes::Field;
use datafusion::logical_expr::{Cast, Expr, lit};
use datafusion::scalar::ScalarValue;

use super::not_null::{assert_not_null, assert_stored_not_null};
use crate::backend::qualifier;
use crate::error::{Error, Result};
use crate::table::{ColumnDef, LogicalType, TableDef};

/// How strictly a DataFrame must match the declared columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Strictness {
    /// A pipeline's output: exactly the declared columns.
    Exact,
    /// A stored table read back: columns it has beyond the declaration are dropped, declared
    /// nullable columns it lacks (not written yet) read as NULL.
    Read,
}

/// Conforms `df` to the data columns of `table` (what a pipeline must produce).
pub(crate) fn conform_output(df: DataFrame, table: &'static TableDef) -> Result<DataFrame> {
    let columns: Vec<&ColumnDef> = table.data_columns().collect();
    conform(df, table, &columns, Strictness::Exact)
}

/// Conforms `df` to `columns` of `table`; see the module docs.
pub(crate) fn conform(
    df: DataFrame,
    table: &'static TableDef,
    columns: &[&ColumnDef],
    strictness: Strictness,
) -> Result<DataFrame> {
    let qualified = table.qualified_name();
    // Who produced `df`, for messages.
    let source = match strictness {
        Strictness::Exact => "the output",
        Strictness::Read => "the stored Delta table",
    };
    let fields: Vec<_> = df.schema().iter().collect();
    let available = || {
        fields
            .iter()
            .map(|(_, f)| f.name().as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (_, field) in &fields {
        if strictness == Strictness::Exact && !columns.iter().any(|c| c.name == field.name()) {
            return Err(Error::schema(
                &qualified,
                format!(
                    "the output has a column `{}` that the table does not declare; remove it or add a field to `{}`",
                    field.name(),
                    table.rust_type
                ),
            ));
        }
    }
    let mut exprs = Vec::with_capacity(columns.len());
    for column in columns {
        let matches: Vec<_> = fields
            .iter()
            .filter(|(_, f)| f.name() == column.name)
            .collect();
        let (field_qualifier, field) = match matches.as_slice() {
            [one] => **one,
            [] if strictness == Strictness::Read && column.nullable => {
                let null = ScalarValue::try_from(&column.data_type.arrow_type())?;
                exprs.push(lit(null).alias(column.name));
                continue;
            }
            [] => {
                return Err(Error::schema(
                    &qualified,
                    format!(
                        "{source} has no column `{}` (declared {}); it has: {}",
                        column.name,
                        describe(column),
                        available()
                    ),
                ));
            }
            _ => {
                return Err(Error::schema(
                    &qualified,
                    format!(
                        "the output has several columns named `{}`; select one",
                        column.name
                    ),
                ));
            }
        };
        let found = LogicalType::from_arrow(field.data_type());
        if found != Some(column.data_type) {
            let found = found
                .map(|t| t.to_string())
                .unwrap_or_else(|| field.data_type().to_string());
            // SQL's `CAST(.. AS TIMESTAMP)`, `to_timestamp` and `now()` give nanoseconds; a
            // table's timestamps are microseconds, which a plain `TIMESTAMP` cast does not give.
            let how = match field.data_type() {
                arrow::datatypes::DataType::Timestamp(unit, _)
                    if *unit != arrow::datatypes::TimeUnit::Microsecond
                        && matches!(column.data_type, LogicalType::Timestamp) =>
                {
                    "cast it to microseconds in UTC (SQL: `CAST(x AS TIMESTAMP(6))` or \
                     `to_timestamp_micros(x)`; an expression: `cast(x, \
                     DataType::Timestamp(TimeUnit::Microsecond, Some(\"UTC\".into())))`)"
                }
                _ => "cast it or change the field's type",
            };
            return Err(Error::schema(
                &qualified,
                format!(
                    "column `{}` is declared {} but {source} has {found}; {how}",
                    column.name, column.data_type
                ),
            ));
        }
        let mut expr = Expr::Column(Column::new(field_qualifier.cloned(), column.name));
        let declared_type = column.data_type.arrow_type();
        if field.data_type() != &declared_type || !field.metadata().is_empty() {
            // A cast to an explicit field also drops the source's field metadata (Delta column
            // comments): DataFusion 55 plans unions of inputs whose metadata differ
            // inconsistently ("Physical input schema should be the same ...").
            let target = Field::new("", declared_type, false);
            expr = Expr::Cast(Cast::new_from_field(Box::new(expr), Arc::new(target)));
        }
        if field.is_nullable() && !column.nullable {
            let label = format!("{qualified}.{}", column.name);
            expr = match strictness {
                Strictness::Exact => assert_not_null(expr, &label),
                Strictness::Read => assert_stored_not_null(expr, &label),
            };
        }
        exprs.push(expr.alias(column.name));
    }
    Ok(df.select(exprs)?.alias(&qualifier(table).to_string())?)
}

fn describe(column: &ColumnDef) -> String {
    if column.nullable {
        column.data_type.to_string()
    } else {
        format!("{} NOT NULL", column.data_type)
    }
}
