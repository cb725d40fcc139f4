//! `CAST` that names what it casts: a value of a landing file that does not convert fails with
//! the file and the column (Arrow's cast error says neither), and what to do.

use std::sync::Arc;

use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, FieldRef};
use arrow::error::ArrowError;
use datafusion::common::{exec_datafusion_err, plan_err};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

#[derive(Debug, PartialEq, Eq, Hash)]
struct NamedCast {
    signature: Signature,
    target: DataType,
    /// What is cast, for the error: "the file `x.csv`: column `amount` (DECIMAL(10, 2))".
    label: String,
    /// What to do about a value that does not convert.
    advice: &'static str,
}

impl ScalarUDFImpl for NamedCast {
    fn name(&self) -> &str {
        "cast_named"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(self.target.clone())
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> datafusion::error::Result<FieldRef> {
        let Some(value) = args.arg_fields.first() else {
            return plan_err!("cast_named takes one value");
        };
        Ok(Arc::new(Field::new(
            self.name(),
            self.target.clone(),
            value.is_nullable(),
        )))
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let rows = args.number_rows;
        let Some(value) = args.args.into_iter().next() else {
            return Err(exec_datafusion_err!("cast_named takes one value"));
        };
        let array = value.into_array(rows)?;
        let options = CastOptions {
            safe: false,
            ..CastOptions::default()
        };
        let cast = match (array.data_type(), &self.target) {
            // Text to a decimal: as fast as `CAST`'s planned parse (`FastDecimalCast`).
            (DataType::Utf8, DataType::Decimal128(precision, scale)) => {
                super::decimal::parse_text(&array, *precision, *scale)
            }
            // Arrow's casts take more than a date (a time's date, its zone dropped) and a
            // flag (`tr`, ` of `): text must say exactly one.
            (from, DataType::Date32) if is_text(from) => {
                refuse_text(&array, "a date (`YYYY-MM-DD`)", is_date_text)
                    .and_then(|()| cast_with_options(&array, &self.target, &options))
                    .map_err(Into::into)
            }
            (from, DataType::Boolean) if is_text(from) => {
                refuse_text(&array, "a flag (`true`/`false`, `1`/`0`)", is_flag_text)
                    .and_then(|()| cast_with_options(&array, &self.target, &options))
                    .map_err(Into::into)
            }
            // A float to a decimal by its shortest digits, as text would be: Arrow's cast
            // multiplies in floating point (1.005 became 1.00, not 1.01).
            (from, DataType::Decimal128(precision, scale)) if from.is_floating() => {
                shortest_digits(&array)
                    .and_then(|text| super::decimal::parse_text(&text, *precision, *scale))
            }
            // Arrow takes any number but 0 for true: a flag is 1 or 0.
            (from, DataType::Boolean) if from.is_numeric() => refuse_non_flags(&array)
                .and_then(|()| cast_with_options(&array, &self.target, &options))
                .map_err(Into::into),
            (from, to) if fractional(from) && to.is_integer() => {
                cast_with_options(&array, &self.target, &options)
                    .and_then(|whole| refuse_fractions(&array, whole))
                    .map_err(Into::into)
            }
            // Arrow's cast of a type to itself checks nothing: a decimal computed past its
            // precision (a sum in the widest decimal) would be stored as it is.
            (DataType::Decimal128(precision, _), to) if array.data_type() == to => {
                use arrow::array::AsArray as _;
                array
                    .as_primitive::<arrow::datatypes::Decimal128Type>()
                    .validate_decimal_precision(*precision)
                    .map(|()| array.clone())
                    .map_err(Into::into)
            }
            _ => cast_with_options(&array, &self.target, &options).map_err(Into::into),
        };
        // A cast error, as the value's (not retried: the same value fails again).
        cast.map(ColumnarValue::Array).map_err(|error| {
            let cause = crate::error::Error::from(error).to_string();
            let cause = cause.strip_prefix("Cast error: ").unwrap_or(&cause);
            DataFusionError::ArrowError(
                Box::new(ArrowError::CastError(format!(
                    "{}: {cause}; {}",
                    self.label, self.advice
                ))),
                None,
            )
        })
    }
}

/// Whether `data_type` is text, of any of Arrow's layouts.
fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// An error quoting the first of the text `values` that is not `what` (`accepted` says).
fn refuse_text(
    values: &arrow::array::ArrayRef,
    what: &str,
    accepted: fn(&str) -> bool,
) -> Result<(), ArrowError> {
    use arrow::array::AsArray as _;
    let refused = |text: &&str| !accepted(text);
    let first_refused = match values.data_type() {
        DataType::LargeUtf8 => values.as_string::<i64>().iter().flatten().find(refused),
        DataType::Utf8View => values.as_string_view().iter().flatten().find(refused),
        _ => values.as_string::<i32>().iter().flatten().find(refused),
    };
    match first_refused {
        Some(text) => Err(ArrowError::CastError(format!("{text:?} is not {what}"))),
        None => Ok(()),
    }
}

/// `YYYY-MM-DD`, and nothing more.
fn is_date_text(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, byte)| match i {
            4 | 7 => *byte == b'-',
            _ => byte.is_ascii_digit(),
        })
}

/// `true`/`false` or `1`/`0`, in any case, blanks around them aside.
fn is_flag_text(text: &str) -> bool {
    matches!(
        text.trim().to_ascii_lowercase().as_str(),
        "true" | "false" | "1" | "0"
    )
}

/// Float `values` as text, each the shortest digits that read back as the same float (`1.005`,
/// `0.1` of an `f32`), never in exponent form.
fn shortest_digits(
    values: &arrow::array::ArrayRef,
) -> datafusion::error::Result<arrow::array::ArrayRef> {
    use arrow::array::{AsArray as _, StringArray};
    use arrow::datatypes::{Float16Type, Float32Type, Float64Type};
    let text: StringArray = match values.data_type() {
        DataType::Float16 => values
            .as_primitive::<Float16Type>()
            .iter()
            .map(|v| v.map(|v| v.to_string()))
            .collect(),
        DataType::Float32 => values
            .as_primitive::<Float32Type>()
            .iter()
            .map(|v| v.map(|v| v.to_string()))
            .collect(),
        DataType::Float64 => values
            .as_primitive::<Float64Type>()
            .iter()
            .map(|v| v.map(|v| v.to_string()))
            .collect(),
        other => {
            return Err(exec_datafusion_err!("{other} is not a float"));
        }
    };
    Ok(Arc::new(text))
}

/// The value of `values` at `row` as text, for an error.
fn shown(values: &arrow::array::ArrayRef, row: usize) -> String {
    arrow::util::display::ArrayFormatter::try_new(
        values.as_ref(),
        &arrow::util::display::FormatOptions::default(),
    )
    .map(|f| f.value(row).to_string())
    .unwrap_or_else(|_| "a value".to_owned())
}

/// An error quoting the first of the numeric `values` that is neither 1 nor 0.
fn refuse_non_flags(values: &arrow::array::ArrayRef) -> Result<(), ArrowError> {
    use arrow::array::{Array as _, AsArray as _};
    let numbers = cast_with_options(values, &DataType::Float64, &CastOptions::default())?;
    let numbers = numbers.as_primitive::<arrow::datatypes::Float64Type>();
    match (0..numbers.len())
        .find(|&row| numbers.is_valid(row) && !matches!(numbers.value(row), 0.0 | 1.0))
    {
        None => Ok(()),
        Some(row) => {
            let shown = shown(values, row);
            Err(ArrowError::CastError(format!(
                "{shown} is not a flag (`1`/`0`)"
            )))
        }
    }
}

/// Whether values of `data_type` may have a fraction, which a cast to an integer drops.
fn fractional(data_type: &DataType) -> bool {
    data_type.is_floating()
        || matches!(
            data_type,
            DataType::Decimal128(..) | DataType::Decimal256(..)
        )
}

/// `whole`, the cast of `values` to an integer type, unless it dropped a fraction: Arrow's cast
/// truncates (1.9 becomes 1), a wrong value stored without an error.
fn refuse_fractions(
    values: &arrow::array::ArrayRef,
    whole: arrow::array::ArrayRef,
) -> Result<arrow::array::ArrayRef, ArrowError> {
    use arrow::array::Array;
    let back = cast_with_options(&whole, values.data_type(), &CastOptions::default())?;
    let same = arrow::compute::kernels::cmp::eq(values, &back)?;
    // Arrow compares floats by their bits: -0.0 comes back as 0.0, and is a whole number.
    let zero = |row: usize| {
        use arrow::array::{Float16Array, Float32Array, Float64Array};
        let any = values.as_any();
        any.downcast_ref::<Float64Array>()
            .is_some_and(|f| f.value(row) == 0.0)
            || any
                .downcast_ref::<Float32Array>()
                .is_some_and(|f| f.value(row) == 0.0)
            || any
                .downcast_ref::<Float16Array>()
                .is_some_and(|f| f.value(row).to_f32() == 0.0)
    };
    match (0..same.len()).find(|&row| same.is_valid(row) && !same.value(row) && !zero(row)) {
        None => Ok(whole),
        Some(row) => {
            let shown = shown(values, row);
            Err(ArrowError::CastError(format!(
                "{shown} is not a whole number, and {} would drop its fraction",
                whole.data_type()
            )))
        }
    }
}

/// `expr` cast to `target` as `CAST` does (failing on a value that does not convert), the
/// error naming `label` and giving `advice`.
pub(crate) fn cast_named(
    expr: Expr,
    target: DataType,
    label: String,
    advice: &'static str,
) -> Expr {
    ScalarUDF::from(NamedCast {
        signature: Signature::any(1, Volatility::Immutable),
        target,
        label,
        advice,
    })
    .call(vec![expr])
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, ArrayRef, Float64Array, Int64Array};
    use arrow::compute::cast;
    use arrow::datatypes::DataType;

    use super::refuse_fractions;

    #[test]
    fn negative_zero_is_a_whole_number_and_a_fraction_is_not() {
        let values: ArrayRef = Arc::new(Float64Array::from(vec![Some(-0.0), None, Some(3.0)]));
        let whole = cast(&values, &DataType::Int64).expect("cast");
        let kept = refuse_fractions(&values, whole).expect("whole numbers");
        let kept = kept.as_any().downcast_ref::<Int64Array>().expect("i64");
        assert_eq!(kept.iter().collect::<Vec<_>>(), [Some(0), None, Some(3)]);

        let halves: ArrayRef = cast(
            &(Arc::new(Float64Array::from(vec![-0.0])) as ArrayRef),
            &DataType::Float16,
        )
        .expect("half precision");
        let whole = cast(&halves, &DataType::Int64).expect("cast");
        refuse_fractions(&halves, whole).expect("a half-precision -0.0");

        let values: ArrayRef = Arc::new(Float64Array::from(vec![-0.0, 1.5]));
        let whole = cast(&values, &DataType::Int64).expect("cast");
        let error = refuse_fractions(&values, whole)
            .expect_err("1.5")
            .to_string();
        assert!(error.contains("1.5 is not a whole number"), "{error}");
    }
}
