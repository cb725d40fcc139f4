//! Surrogate keys: `surrogate_key([a, b])` is the lowercase hex SHA-256 of the values cast to
//! strings the way Spark casts them, joined with `||`; NULL when any part is NULL. It is
//! compatible with keys computed by the original PySpark lakehouse (`sha2(concat_ws('||', ..), 256)`
//! over non-NULL parts), and vectorised: one pass over the arrays, one reused buffer.

use std::fmt::Write as _;
use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, AsArray, StringArray, StringBuilder};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, FieldRef, Int8Type, Int16Type, Int32Type,
    Int64Type, TimeUnit, TimestampMicrosecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::common::{exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use sha2::{Digest, Sha256};

use super::typed::{Typed, typed};
use crate::table::format_decimal;

/// The separator between parts.
const SEPARATOR: &str = "||";

#[derive(Debug, PartialEq, Eq, Hash)]
struct SurrogateKey {
    signature: Signature,
}

fn supported(data_type: &DataType) -> bool {
    // A dictionary is hashed by its values (a join carries a dimension's strings so).
    if let DataType::Dictionary(_, values) = data_type {
        return supported(values);
    }
    matches!(
        data_type,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Date32
            | DataType::Timestamp(TimeUnit::Microsecond, _)
            | DataType::Null
    ) || matches!(data_type, DataType::Decimal128(_, scale) if *scale >= 0)
    // A negative scale (`DECIMAL(5, -2)` of 12300) would be rendered without its zeros.
}

impl ScalarUDFImpl for SurrogateKey {
    fn name(&self) -> &str {
        "surrogate_key"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        if let Some(bad) = arg_types.iter().find(|t| !supported(t)) {
            return plan_err!(
                "surrogate_key cannot hash a {bad} value: use strings, integers, booleans, dates, \
                 timestamps in microseconds (cast others: `CAST(x AS TIMESTAMP(6))`) or \
                 decimals (floating-point text is not stable across engines)"
            );
        }
        if arg_types.is_empty() {
            return plan_err!("surrogate_key needs at least one value");
        }
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> datafusion::error::Result<FieldRef> {
        hash_field(self, &args)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let rows = args.number_rows;
        if rows
            .checked_mul(64)
            .is_none_or(|bytes| bytes > i32::MAX as usize)
        {
            return exec_err!(
                "surrogate_key: {rows} rows do not fit one string array; use smaller batches"
            );
        }
        let arrays: Vec<ArrayRef> = args
            .args
            .into_iter()
            .map(|a| {
                let array = a.into_array(rows)?;
                Ok(match array.data_type() {
                    DataType::Dictionary(_, values) => arrow::compute::cast(&array, values)?,
                    _ => array,
                })
            })
            .collect::<datafusion::error::Result<_>>()?;
        let mut builder = StringBuilder::with_capacity(rows, rows * 64);
        let mut text = String::with_capacity(64);
        let mut hex = [0u8; 64];
        'rows: for row in 0..rows {
            text.clear();
            for (i, array) in arrays.iter().enumerate() {
                // A NULL literal's array has no null buffer: its type says it is NULL.
                if array.is_null(row) || array.data_type() == &DataType::Null {
                    builder.append_null();
                    continue 'rows;
                }
                if i > 0 {
                    text.push_str(SEPARATOR);
                }
                if let Err(e) = append_text(&mut text, array, row) {
                    return exec_err!("surrogate_key: {e}");
                }
            }
            hex_digest(text.as_bytes(), &mut hex);
            // Lowercase hex digits are ASCII.
            builder.append_value(std::str::from_utf8(&hex).unwrap_or_default());
        }
        Ok(ColumnarValue::Array(Arc::new(builder.finish())))
    }
}

/// A hash's field: NULL exactly when an argument may be NULL.
fn hash_field(
    udf: &dyn ScalarUDFImpl,
    args: &ReturnFieldArgs,
) -> datafusion::error::Result<FieldRef> {
    let types: Vec<DataType> = args
        .arg_fields
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    let data_type = udf.return_type(&types)?;
    let nullable = args.arg_fields.iter().any(|f| f.is_nullable());
    Ok(Arc::new(Field::new(udf.name(), data_type, nullable)))
}

/// Appends the Spark string form of `array[row]`.
fn append_text(text: &mut String, array: &ArrayRef, row: usize) -> Result<(), String> {
    let result = match array.data_type() {
        DataType::Utf8 => {
            text.push_str(array.as_string::<i32>().value(row));
            Ok(())
        }
        DataType::LargeUtf8 => {
            text.push_str(array.as_string::<i64>().value(row));
            Ok(())
        }
        DataType::Utf8View => {
            text.push_str(array.as_string_view().value(row));
            Ok(())
        }
        DataType::Boolean => write!(text, "{}", array.as_boolean().value(row)),
        DataType::Int8 => write!(text, "{}", array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => write!(text, "{}", array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => write!(text, "{}", array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => write!(text, "{}", array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => write!(text, "{}", array.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => write!(text, "{}", array.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => write!(text, "{}", array.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => write!(text, "{}", array.as_primitive::<UInt64Type>().value(row)),
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            write_date(text, days)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let micros = array.as_primitive::<TimestampMicrosecondType>().value(row);
            write_timestamp(text, micros)
        }
        DataType::Decimal128(_, scale) => {
            let value = array.as_primitive::<Decimal128Type>().value(row);
            text.push_str(&format_decimal(value, *scale));
            Ok(())
        }
        other => return Err(format!("unsupported type {other}")),
    };
    result.map_err(|e| e.to_string())
}

/// `yyyy-MM-dd`.
fn write_date(text: &mut String, days: i32) -> std::fmt::Result {
    let (y, m, d) = civil_from_days(days as i64);
    write!(text, "{y:04}-{m:02}-{d:02}")
}

/// `yyyy-MM-dd HH:mm:ss[.SSSSSS]` in UTC, trailing zeros of the fraction dropped (Spark's cast).
fn write_timestamp(text: &mut String, micros: i64) -> std::fmt::Result {
    let seconds = micros.div_euclid(1_000_000);
    let fraction = micros.rem_euclid(1_000_000);
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    write!(
        text,
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        second_of_day / 3600,
        (second_of_day / 60) % 60,
        second_of_day % 60
    )?;
    if fraction != 0 {
        let digits = format!("{fraction:06}");
        write!(text, ".{}", digits.trim_end_matches('0'))?;
    }
    Ok(())
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Two lowercase hex digits per byte value.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut table = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = [DIGITS[i >> 4], DIGITS[i & 15]];
        i += 1;
    }
    table
};

/// Writes the lowercase hex SHA-256 of `bytes` into `out`.
fn hex_digest(bytes: &[u8], out: &mut [u8; 64]) {
    let digest = Sha256::digest(bytes);
    for (pair, byte) in out.chunks_exact_mut(2).zip(digest.iter()) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(*byte)]);
    }
}

/// `sha256_hex(text)`: the lowercase hex SHA-256 of a string's UTF-8 bytes (Spark's
/// `sha2(text, 256)`); NULL for NULL. One pass over the array into one preallocated buffer.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Sha256Hex {
    signature: Signature,
}

impl ScalarUDFImpl for Sha256Hex {
    fn name(&self) -> &str {
        "sha256_hex"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        match arg_types {
            [DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null] => {
                Ok(DataType::Utf8)
            }
            _ => plan_err!(
                "sha256_hex takes one string, got {arg_types:?}; build the text first, e.g. \
                 concat(cast(a AS string), '|', b)"
            ),
        }
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> datafusion::error::Result<FieldRef> {
        hash_field(self, &args)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let rows = args.number_rows;
        let [arg] = <[ColumnarValue; 1]>::try_from(args.args).map_err(|_| {
            datafusion::error::DataFusionError::Plan("sha256_hex takes one argument".into())
        })?;
        let array = arg.into_array(rows)?;
        let hashed = match array.data_type() {
            DataType::Utf8 => hash_strings(array.as_string::<i32>().iter(), array.nulls()),
            DataType::LargeUtf8 => hash_strings(array.as_string::<i64>().iter(), array.nulls()),
            DataType::Utf8View => hash_strings(array.as_string_view().iter(), array.nulls()),
            DataType::Null => Ok(StringArray::new_null(array.len())),
            other => return exec_err!("sha256_hex cannot hash a {other} value"),
        }?;
        Ok(ColumnarValue::Array(Arc::new(hashed)))
    }
}

/// The hex digests of `values` as one string array: 64 bytes per non-NULL value, written into
/// a buffer allocated once.
fn hash_strings<'a>(
    values: impl ExactSizeIterator<Item = Option<&'a str>>,
    nulls: Option<&NullBuffer>,
) -> datafusion::error::Result<StringArray> {
    let rows = values.len();
    let Some(capacity) = rows.checked_mul(64).filter(|c| *c <= i32::MAX as usize) else {
        return exec_err!(
            "sha256_hex: {rows} rows do not fit one string array; use smaller batches"
        );
    };
    let mut data: Vec<u8> = Vec::with_capacity(capacity);
    let mut offsets: Vec<i32> = Vec::with_capacity(rows + 1);
    offsets.push(0);
    let mut hex = [0u8; 64];
    for value in values {
        if let Some(text) = value {
            hex_digest(text.as_bytes(), &mut hex);
            data.extend_from_slice(&hex);
        }
        // At most i32::MAX bytes (checked above).
        offsets.push(data.len() as i32);
    }
    Ok(StringArray::try_new(
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        Buffer::from_vec(data),
        nulls.cloned(),
    )?)
}

static SHA256_HEX: LazyLock<ScalarUDF> = LazyLock::new(|| {
    ScalarUDF::from(Sha256Hex {
        signature: Signature::string(1, Volatility::Immutable),
    })
});

static SURROGATE_KEY: LazyLock<ScalarUDF> = LazyLock::new(|| {
    ScalarUDF::from(SurrogateKey {
        signature: Signature::variadic_any(Volatility::Immutable),
    })
});

/// Registers the runtime's SQL functions (`surrogate_key(..)`, `sha256_hex(..)`) in `session`.
pub fn register_functions(session: &datafusion::execution::context::SessionContext) {
    session.register_udf(SURROGATE_KEY.clone());
    session.register_udf(SHA256_HEX.clone());
}

/// The surrogate key of `parts`: lowercase hex SHA-256 of their Spark string forms joined with
/// `||`; NULL when any part is NULL. Usable in any DataFusion expression.
pub fn surrogate_key<I, E>(parts: I) -> Typed<String>
where
    I: IntoIterator<Item = E>,
    E: Into<Expr>,
{
    typed(SURROGATE_KEY.call(parts.into_iter().map(Into::into).collect()))
}

/// `sha256_hex(text)`: the lowercase hex SHA-256 of one string (Spark's `sha2(text, 256)`),
/// NULL for NULL. To hash several values, build the exact text first (`concat(..)`).
pub fn sha256_hex(text: impl Into<Expr>) -> Typed<String> {
    typed(SHA256_HEX.call(vec![text.into()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spark_text_of_dates_and_timestamps() {
        let mut s = String::new();
        write_date(&mut s, 19_723).unwrap();
        assert_eq!(s, "2024-01-01");
        s.clear();
        write_timestamp(&mut s, 1_704_067_200_000_000 + 1_500_000).unwrap();
        assert_eq!(s, "2024-01-01 00:00:01.5");
        s.clear();
        write_timestamp(&mut s, -1).unwrap();
        assert_eq!(s, "1969-12-31 23:59:59.999999");
    }
}
