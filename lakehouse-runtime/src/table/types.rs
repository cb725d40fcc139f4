//! Column value types: the Rust types a `#[derive(Table)]` field may have, and their mapping to
//! Arrow and Delta types.

use arrow_schema::{DataType, TimeUnit};

/// A calendar date, stored as days since 1970-01-01 (Arrow `Date32`, Delta `date`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(pub i32);

/// An instant in UTC with microsecond precision (Arrow `Timestamp(µs, "UTC")`, Delta `timestamp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

/// A decimal number with precision `P` (1..=38 digits) and scale `S` (0..=P digits after the
/// point), stored as its unscaled value (Arrow `Decimal128(P, S)`, Delta `decimal(P,S)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Decimal<const P: u8, const S: i8>(pub i128);

/// The type of a column, independent of nullability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogicalType {
    /// `bool`
    Boolean,
    /// `i32`
    Int32,
    /// `i64`
    Int64,
    /// `f64`
    Float64,
    /// `String`
    Utf8,
    /// [`Date`]
    Date,
    /// [`Timestamp`]
    Timestamp,
    /// [`Decimal<P, S>`]
    Decimal {
        /// Total number of digits.
        precision: u8,
        /// Digits after the decimal point.
        scale: i8,
    },
}

impl LogicalType {
    /// The Arrow type columns of this type are written with.
    pub fn arrow_type(self) -> DataType {
        match self {
            LogicalType::Boolean => DataType::Boolean,
            LogicalType::Int32 => DataType::Int32,
            LogicalType::Int64 => DataType::Int64,
            LogicalType::Float64 => DataType::Float64,
            LogicalType::Utf8 => DataType::Utf8,
            LogicalType::Date => DataType::Date32,
            LogicalType::Timestamp => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
            LogicalType::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
        }
    }

    /// The logical type of an Arrow type, treating the string encodings (`Utf8`, `LargeUtf8`,
    /// `Utf8View`) and timestamp time zones alike. `None` for types tables cannot hold.
    pub fn from_arrow(data_type: &DataType) -> Option<LogicalType> {
        Some(match data_type {
            DataType::Boolean => LogicalType::Boolean,
            DataType::Int32 => LogicalType::Int32,
            DataType::Int64 => LogicalType::Int64,
            DataType::Float64 => LogicalType::Float64,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => LogicalType::Utf8,
            DataType::Date32 => LogicalType::Date,
            DataType::Timestamp(TimeUnit::Microsecond, _) => LogicalType::Timestamp,
            DataType::Decimal128(precision, scale) => LogicalType::Decimal {
                precision: *precision,
                scale: *scale,
            },
            // Delta partition columns come back dictionary-encoded.
            DataType::Dictionary(_, value) => return LogicalType::from_arrow(value),
            _ => return None,
        })
    }

    /// The SQL spelling of the type, as shown in errors and `describe`.
    pub fn sql_name(self) -> String {
        match self {
            LogicalType::Boolean => "BOOLEAN".into(),
            LogicalType::Int32 => "INT".into(),
            LogicalType::Int64 => "BIGINT".into(),
            LogicalType::Float64 => "DOUBLE".into(),
            LogicalType::Utf8 => "STRING".into(),
            LogicalType::Date => "DATE".into(),
            LogicalType::Timestamp => "TIMESTAMP".into(),
            LogicalType::Decimal { precision, scale } => format!("DECIMAL({precision},{scale})"),
        }
    }
}

impl std::fmt::Display for LogicalType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.sql_name())
    }
}

/// A Rust type that can be the type of a table column.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the type of a table column",
    label = "unsupported column type",
    note = "supported: bool, i32, i64, f64, String, Date, Timestamp, Decimal<P, S>, and Option<_> of those for a nullable column"
)]
pub trait ColumnType: 'static {
    /// The column's type.
    const LOGICAL: LogicalType;
    /// Whether the column may hold NULL (`Option<_>` fields).
    const NULLABLE: bool = false;
    /// The type without its `Option`.
    type NonNull: ColumnType;
}

macro_rules! column_types {
    ($($ty:ty => $logical:expr),* $(,)?) => {$(
        impl ColumnType for $ty {
            const LOGICAL: LogicalType = $logical;
            type NonNull = $ty;
        }
    )*};
}

column_types! {
    bool => LogicalType::Boolean,
    i32 => LogicalType::Int32,
    i64 => LogicalType::Int64,
    f64 => LogicalType::Float64,
    String => LogicalType::Utf8,
    Date => LogicalType::Date,
    Timestamp => LogicalType::Timestamp,
}

impl<const P: u8, const S: i8> ColumnType for Decimal<P, S> {
    const LOGICAL: LogicalType = {
        assert!(
            P >= 1 && P <= 38,
            "Decimal<P, S>: the precision P must be between 1 and 38"
        );
        assert!(
            S >= 0 && S as u8 <= P,
            "Decimal<P, S>: the scale S must be between 0 and P"
        );
        LogicalType::Decimal {
            precision: P,
            scale: S,
        }
    };
    type NonNull = Decimal<P, S>;
}

impl<T: ColumnType> ColumnType for Option<T> {
    const LOGICAL: LogicalType = T::LOGICAL;
    const NULLABLE: bool = {
        // A column is NULL or not: a second `Option` would mean nothing the table can store.
        assert!(
            !T::NULLABLE,
            "`Option<Option<_>>` is not a column type: a nullable column is one `Option<_>`"
        );
        true
    };
    type NonNull = T::NonNull;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "engine")]
    #[test]
    fn dates_and_decimals_read_back_from_json() {
        let date: Date = serde_json::from_str("\"2024-02-29\"").expect("a date");
        assert_eq!(date, Date::from_ymd(2024, 2, 29).expect("leap day"));
        assert_eq!(
            serde_json::from_str::<Date>("19000").expect("days"),
            Date(19_000)
        );
        assert!(serde_json::from_str::<Date>("\"2023-02-29\"").is_err());
        let read = |text: &str| serde_json::from_str::<Decimal<10, 2>>(text).map(|d| d.0);
        assert_eq!(read("\"-12.5\"").expect("text"), -1250);
        assert_eq!(read("\"7\"").expect("an integer"), 700);
        assert_eq!(read("\".05\"").expect("no integer part"), 5);
        assert_eq!(read("3").expect("a number"), 300);
        assert_eq!(read("0.125").expect("rounded"), 13);
        assert!(read("\"1.234\"").is_err(), "more digits than the scale");
        assert!(read("\"1e3\"").is_err());
        assert!(read("\"-\"").is_err());
    }

    #[cfg(feature = "engine")]
    #[test]
    fn timestamps_of_any_year_read_back_as_written() {
        for (y, m, d) in [(2026, 1, 31), (-9999, 1, 1), (200_000, 6, 30), (0, 1, 1)] {
            let instant = Date::from_ymd(y, m, d).expect("a day").start();
            let text = instant.to_rfc3339();
            assert_eq!(Timestamp::parse(&text), Some(instant), "{text}");
        }
        // As Arrow's JSON writer gives them (the ledger's rows are read back through it).
        let far = Timestamp::parse("-9999-01-01T00:00:00Z").expect("a signed year");
        assert_eq!(far, Date::from_ymd(-9999, 1, 1).expect("a day").start());
        assert_eq!(
            Timestamp::parse("2024-01-31T10:00:00"),
            Timestamp::parse("2024-01-31T10:00:00Z")
        );
        assert_eq!(Timestamp::parse("2024-01-31T10:00:00ZZ"), None);
        // RFC 3339 stays strict: only a signed year takes the lenient form.
        assert_eq!(Timestamp::parse("2024-1-3T1:2:3Z"), None);
        assert_eq!(Timestamp::parse(" 2024-01-31T10:00:00Z"), None);
    }

    #[test]
    fn arrow_types_round_trip() {
        for t in [
            LogicalType::Boolean,
            LogicalType::Int32,
            LogicalType::Int64,
            LogicalType::Float64,
            LogicalType::Utf8,
            LogicalType::Date,
            LogicalType::Timestamp,
            LogicalType::Decimal {
                precision: 10,
                scale: 2,
            },
        ] {
            assert_eq!(LogicalType::from_arrow(&t.arrow_type()), Some(t));
        }
        assert_eq!(
            LogicalType::from_arrow(&DataType::Utf8View),
            Some(LogicalType::Utf8)
        );
        assert_eq!(LogicalType::from_arrow(&DataType::Float16), None);
    }

    #[test]
    fn option_is_nullable() {
        let nullable = [
            <Option<Decimal<10, 2>> as ColumnType>::NULLABLE,
            <Decimal<10, 2> as ColumnType>::NULLABLE,
        ];
        assert_eq!(nullable, [true, false]);
        assert_eq!(
            <Option<Decimal<10, 2>> as ColumnType>::LOGICAL,
            LogicalType::Decimal {
                precision: 10,
                scale: 2
            }
        );
    }
}

/// The name [`Date`] serializes its newtype under: an integer in it is days.
#[cfg(feature = "engine")]
pub(crate) const DATE_NEWTYPE: &str = "lakehouse::Date";
/// The name [`Timestamp`] serializes its newtype under: an integer in it is microseconds.
#[cfg(feature = "engine")]
pub(crate) const TIMESTAMP_NEWTYPE: &str = "lakehouse::Timestamp";

/// Rows serialize to what the Arrow JSON decoder reads back losslessly: dates as days, timestamps
/// as microseconds, decimals as their exact text.
#[cfg(feature = "engine")]
mod serde_impls {
    use serde::de::{self, Deserializer, Visitor};
    use serde::{Deserialize, Serialize, Serializer};

    use super::{Date, Decimal, Timestamp};

    /// Reads a date as days since the epoch or as `YYYY-MM-DD` (what Arrow's JSON writer emits).
    impl<'de> Deserialize<'de> for Date {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Date, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Date;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("days since the epoch or a YYYY-MM-DD date")
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Date, E> {
                    i32::try_from(v).map(Date).map_err(E::custom)
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Date, E> {
                    i32::try_from(v).map(Date).map_err(E::custom)
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Date, E> {
                    // chrono reads the signed years Arrow writes outside 0000–9999
                    // (`-0044-03-15`, `+10000-01-01`).
                    Date::parse(v).ok_or_else(|| E::custom(format!("invalid date {v:?}")))
                }
            }
            deserializer.deserialize_any(V)
        }
    }

    /// Reads a decimal from its exact text (what `batches_to_rows` makes of decimal columns) or
    /// a number (a JSON float is rounded to the scale `S`, and exact only to about 15 digits).
    impl<'de, const P: u8, const S: i8> Deserialize<'de> for Decimal<P, S> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Decimal<P, S>, D::Error> {
            struct V<const P: u8, const S: i8>;
            impl<const P: u8, const S: i8> Visitor<'_> for V<P, S> {
                type Value = Decimal<P, S>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a decimal as text or a number")
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Decimal<P, S>, E> {
                    super::scaled(i128::from(v), S)
                        .and_then(Decimal::from_unscaled)
                        .ok_or_else(|| E::custom(format!("{v} overflows a DECIMAL({P}, {S})")))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Decimal<P, S>, E> {
                    super::scaled(i128::from(v), S)
                        .and_then(Decimal::from_unscaled)
                        .ok_or_else(|| E::custom(format!("{v} overflows a DECIMAL({P}, {S})")))
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<Decimal<P, S>, E> {
                    Decimal::from_f64(v).ok_or_else(|| {
                        E::custom(format!("{v} is not a number a DECIMAL({P}, {S}) holds"))
                    })
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal<P, S>, E> {
                    super::parse_decimal_text(v, S)
                        .and_then(Decimal::from_unscaled)
                        .ok_or_else(|| {
                            E::custom(format!("invalid decimal {v:?} for a DECIMAL({P}, {S})"))
                        })
                }
            }
            deserializer.deserialize_any(V::<P, S>)
        }
    }

    /// Reads a timestamp as microseconds or as RFC 3339 text (what Arrow's JSON writer emits).
    impl<'de> Deserialize<'de> for Timestamp {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Timestamp;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("microseconds since the epoch or an RFC 3339 timestamp")
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                    Ok(Timestamp(v))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                    i64::try_from(v).map(Timestamp).map_err(E::custom)
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                    Timestamp::parse(v).ok_or_else(|| E::custom(format!("invalid timestamp {v:?}")))
                }
            }
            deserializer.deserialize_any(V)
        }
    }

    /// Days since the epoch (a JSON number), in a newtype so that rows can tell a date from a
    /// bare integer given to a date column.
    impl Serialize for Date {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_newtype_struct(super::DATE_NEWTYPE, &self.0)
        }
    }

    /// Microseconds since the epoch (a JSON number), in a newtype so that rows can tell a
    /// timestamp from a bare integer given to a timestamp column.
    impl Serialize for Timestamp {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_newtype_struct(super::TIMESTAMP_NEWTYPE, &self.0)
        }
    }

    impl<const P: u8, const S: i8> Serialize for Decimal<P, S> {
        fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
            serializer.collect_str(self)
        }
    }
}

impl<const P: u8, const S: i8> std::fmt::Display for Decimal<P, S> {
    /// The exact decimal text, with `S` digits after the point (`12345` at scale 2 is `123.45`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&format_decimal(self.0, S))
    }
}

/// `unscaled / 10^scale` as exact text with `scale` decimals, as Spark casts decimals to strings.
pub fn format_decimal(unscaled: i128, scale: i8) -> String {
    let negative = unscaled < 0;
    let digits = unscaled.unsigned_abs().to_string();
    let scale = scale.max(0) as usize;
    let sign = if negative { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// `value` at scale `scale` (`value` × 10^scale), `None` on overflow or a negative scale.
#[cfg(feature = "engine")]
fn scaled(value: i128, scale: i8) -> Option<i128> {
    10i128
        .checked_pow(u32::try_from(scale).ok()?)
        .and_then(|factor| value.checked_mul(factor))
}

/// The unscaled value of decimal text (`-12.5`) at `scale`: `None` when it is not a plain decimal
/// or has more fractional digits than `scale`.
#[cfg(feature = "engine")]
fn parse_decimal_text(text: &str, scale: i8) -> Option<i128> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let scale = usize::try_from(scale).ok()?;
    if (int.is_empty() && frac.is_empty())
        || frac.len() > scale
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let padded = format!("{int}{frac:0<scale$}");
    let value: i128 = if padded.is_empty() {
        0
    } else {
        padded.parse().ok()?
    };
    Some(if negative { -value } else { value })
}

impl<const P: u8, const S: i8> Decimal<P, S> {
    /// The shortest decimal that reads back as `value`, rounded half away from zero to `S`
    /// digits (`1.005` gives `1.01`, as its text does, though the float is a hair under it);
    /// `None` for NaN, an infinity, or a value with more than `P` digits at scale `S`.
    ///
    /// The value is the shortest decimal that reads back as the same `f64` (`0.1`, not
    /// `0.1000000000000000055511151231257827`), rounded to `S` digits: multiplying by `10^S` in
    /// floating point was inexact past 2^53 (`1234.5678` at scale 18 gave
    /// `1234.567800000000032768`).
    pub fn from_f64(value: f64) -> Option<Decimal<P, S>> {
        if !value.is_finite() {
            return None;
        }
        // `d.ddd…e±x`: the shortest digits that read back as `value`.
        let shortest = format!("{:e}", value.abs());
        let (mantissa, exponent) = shortest.split_once('e')?;
        let exponent: i32 = exponent.parse().ok()?;
        let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        let significand: i128 = digits.parse().ok()?;
        let fraction_digits = i32::try_from(digits.len()).ok()? - 1;
        // value = significand × 10^(exponent − fraction_digits); at scale S:
        let shift = exponent - fraction_digits + i32::from(S);
        let unscaled = if shift >= 0 {
            significand.checked_mul(10i128.checked_pow(shift.unsigned_abs())?)?
        } else {
            match 10i128.checked_pow(shift.unsigned_abs()) {
                // Half away from zero.
                Some(divisor) => {
                    let (quotient, remainder) = (significand / divisor, significand % divisor);
                    quotient + i128::from(remainder * 2 >= divisor)
                }
                // Past i128's range the digits all go (a significand has at most 17).
                None => 0,
            }
        };
        Decimal::from_unscaled(if value < 0.0 { -unscaled } else { unscaled })
    }

    /// The decimal `unscaled / 10^S`, if it has at most `P` digits (what `DECIMAL(P, S)` holds).
    pub fn from_unscaled(unscaled: i128) -> Option<Decimal<P, S>> {
        let limit = 10i128.checked_pow(u32::from(P)).unwrap_or(i128::MAX);
        (unscaled.unsigned_abs() < limit.unsigned_abs()).then_some(Decimal(unscaled))
    }
}

#[cfg(feature = "engine")]
impl Timestamp {
    /// Parses RFC 3339 (`2024-01-31T10:00:00Z`, offsets allowed) or Arrow's `2024-01-31T10:00:00`
    /// (taken as UTC). Years beyond RFC 3339's 0000–9999 are read with their sign
    /// (`+20000-01-01T00:00:00Z`), as [`Timestamp::to_rfc3339`] writes them (within chrono's
    /// range of about ±262 000 years).
    pub fn parse(text: &str) -> Option<Timestamp> {
        use chrono::{DateTime, NaiveDateTime};
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Some(Timestamp(t.timestamp_micros()));
        }
        // A trailing `Z` only after a signed year (what RFC 3339 cannot write): chrono's
        // format parsing is lenient (one-digit fields), which Arrow's form already allows.
        let utc = match text.strip_suffix('Z') {
            Some(signed) if signed.starts_with(['+', '-']) => signed,
            Some(_) => return None,
            None => text,
        };
        NaiveDateTime::parse_from_str(utc, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .map(|t| Timestamp(t.and_utc().timestamp_micros()))
    }

    /// The current time, truncated to microseconds.
    pub fn now() -> Timestamp {
        Timestamp(chrono::Utc::now().timestamp_micros())
    }

    /// RFC 3339 text in UTC.
    pub fn to_rfc3339(self) -> String {
        chrono::DateTime::from_timestamp_micros(self.0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            .unwrap_or_else(|| format!("{}µs", self.0))
    }
}

#[cfg(feature = "engine")]
impl Date {
    /// Parses `YYYY-MM-DD` (with a sign for years beyond 0000–9999, `+10000-01-01`, as
    /// [`Date`]'s `Display` writes them).
    pub fn parse(text: &str) -> Option<Date> {
        use chrono::Datelike as _;
        let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| Date::from_ymd(d.year(), d.month(), d.day()))?;
        // chrono takes one-digit fields, short years and leading spaces (`26-1-5`): only the
        // text the date writes is its own.
        (date.to_string() == text).then_some(date)
    }

    /// Today (UTC).
    pub fn today() -> Date {
        Timestamp::now().date()
    }
}

/// Days from 0001-01-01 (chrono's count) to 1970-01-01.
#[cfg(feature = "engine")]
const EPOCH_DAYS_FROM_CE: i32 = 719_163;

#[cfg(feature = "engine")]
impl std::fmt::Display for Date {
    /// `YYYY-MM-DD` (a signed year beyond 0000–9999); days since 1970 beyond chrono's range of
    /// about ±262 000 years.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self
            .0
            .checked_add(EPOCH_DAYS_FROM_CE)
            .and_then(chrono::NaiveDate::from_num_days_from_ce_opt)
        {
            Some(date) => write!(f, "{}", date.format("%Y-%m-%d")),
            None => write!(f, "{} days from 1970-01-01", self.0),
        }
    }
}

#[cfg(feature = "engine")]
impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Microseconds in a day.
const DAY_MICROS: i64 = 86_400_000_000;

impl Timestamp {
    /// The day (UTC) this instant falls on.
    pub fn date(self) -> Date {
        Date(self.0.div_euclid(DAY_MICROS) as i32)
    }
}

impl Date {
    /// The instant this day starts (midnight UTC); the earliest or latest instant a
    /// [`Timestamp`] holds for a day beyond them (about 292 000 years from 1970).
    pub fn start(self) -> Timestamp {
        Timestamp(i64::from(self.0).saturating_mul(DAY_MICROS))
    }

    /// The date `year-month-day`, or `None` if it does not exist (or is more than about 5.8
    /// million years from 1970, which a [`Date`] cannot hold).
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Date> {
        // Days from civil (Howard Hinnant's algorithm), valid for the proleptic Gregorian calendar.
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        let y = i64::from(year) - i64::from(month <= 2);
        let era = if y >= 0 { y } else { y - 399 } / 400;
        let yoe = y - era * 400;
        let m = month as i64;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        i32::try_from(era * 146_097 + doe - 719_468).ok().map(Date)
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

#[cfg(test)]
mod value_tests {
    use super::*;

    #[test]
    fn an_instant_falls_on_its_utc_day() {
        let day = Date::from_ymd(2026, 11, 30).expect("a date");
        assert_eq!(day.start().date(), day);
        assert_eq!(Timestamp(day.start().0 + DAY_MICROS - 1).date(), day);
        // Before 1970 too: the day before the epoch starts a day before it.
        let eve = Date::from_ymd(1969, 12, 31).expect("a date");
        assert_eq!(Timestamp(-1).date(), eve);
        assert_eq!(eve.start(), Timestamp(-DAY_MICROS));
    }

    #[test]
    fn a_date_reads_and_writes_as_iso_text() {
        let day = Date::from_ymd(2026, 2, 28).expect("a date");
        assert_eq!(day.to_string(), "2026-02-28");
        assert_eq!(Date::parse("2026-02-28"), Some(day));
        assert_eq!(Date(0).to_string(), "1970-01-01");
        assert_eq!(Date(-1).to_string(), "1969-12-31");
        // Years beyond four digits carry their sign, and read back.
        let far = Date::from_ymd(10_000, 1, 1).expect("a date");
        assert_eq!(far.to_string(), "+10000-01-01");
        assert_eq!(Date::parse(&far.to_string()), Some(far));
        let roman = Date::from_ymd(-44, 3, 15).expect("a date");
        assert_eq!(Date::parse(&roman.to_string()), Some(roman));
        assert_eq!(Date::parse("2026-02-30"), None);
        assert_eq!(Date::parse("2026-2-28x"), None);
        for loose in ["26-1-5", "2026-2-28", " 2026-02-28", "2026-02-28 "] {
            assert_eq!(Date::parse(loose), None, "{loose:?}");
        }
        assert_eq!(
            Date(i32::MAX).to_string(),
            "2147483647 days from 1970-01-01"
        );
    }

    #[test]
    fn decimals_format_exactly() {
        assert_eq!(format_decimal(12345, 2), "123.45");
        assert_eq!(format_decimal(-5, 2), "-0.05");
        assert_eq!(format_decimal(7, 0), "7");
        assert_eq!(
            Decimal::<10, 2>::from_f64(19.999).map(|d| d.to_string()),
            Some("20.00".to_owned())
        );
        assert_eq!(Decimal::<4, 2>::from_f64(99.99), Some(Decimal(9999)));
        assert_eq!(Decimal::<4, 2>::from_f64(100.0), None, "5 digits");
        assert_eq!(
            Decimal::<4, 2>::from_f64(-99.995),
            None,
            "rounds to -100.00"
        );
        // The shortest decimal that reads back as the float, rounded: not the float's binary
        // value multiplied in floating point.
        assert_eq!(
            Decimal::<38, 18>::from_f64(1234.5678).map(|d| d.to_string()),
            Some("1234.567800000000000000".to_owned())
        );
        assert_eq!(
            Decimal::<38, 30>::from_f64(1.0).map(|d| d.to_string()),
            Some(format!("1.{}", "0".repeat(30)))
        );
        assert_eq!(
            Decimal::<10, 2>::from_f64(0.125),
            Some(Decimal(13)),
            "half away"
        );
        assert_eq!(Decimal::<10, 2>::from_f64(-0.125), Some(Decimal(-13)));
        assert_eq!(Decimal::<10, 2>::from_f64(1e-300), Some(Decimal(0)));
        assert_eq!(Decimal::<10, 2>::from_f64(1e300), None, "too large");
        assert_eq!(
            Decimal::<38, 0>::from_f64(1e37).map(|d| d.to_string()),
            Some(format!("1{}", "0".repeat(37)))
        );
        assert_eq!(Decimal::<10, 2>::from_f64(f64::NAN), None);
        assert_eq!(Decimal::<10, 2>::from_f64(f64::INFINITY), None);
        assert_eq!(Decimal::<38, 0>::from_unscaled(i128::MAX), None);
        let parsed: Result<Decimal<4, 2>, _> = serde_json::from_str("\"123.45\"");
        assert!(parsed.is_err(), "{parsed:?}");
    }

    #[test]
    fn dates_at_the_ends_of_i32_years_are_none_not_a_panic() {
        assert_eq!(Date::from_ymd(i32::MIN, 1, 1), None);
        assert_eq!(Date::from_ymd(i32::MAX, 12, 31), None);
    }

    #[test]
    fn dates_from_calendar() {
        assert_eq!(Date::from_ymd(1970, 1, 1), Some(Date(0)));
        assert_eq!(Date::from_ymd(2000, 3, 1), Some(Date(11_017)));
        assert_eq!(Date::from_ymd(1969, 12, 31), Some(Date(-1)));
        assert_eq!(Date::from_ymd(2023, 2, 29), None);
        // Beyond what a Date holds: none, not a wrapped-around day.
        assert_eq!(Date::from_ymd(9_999_999, 1, 1), None);
        assert_eq!(Date(i32::MAX).start(), Timestamp(i64::MAX));
        assert_eq!(Date(i32::MIN).start(), Timestamp(i64::MIN));
    }
}
