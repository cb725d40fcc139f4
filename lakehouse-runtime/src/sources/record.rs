//! Typed reads of one JSON record. A field of the wrong type, a missing required field or
//! unusable coordinates give a [`Rejected`] reason naming the field, so the record goes to the
//! rejects table instead of being dropped or crashing the ingestion.

use std::cell::RefCell;
use std::ops::RangeInclusive;

use serde_json::{Map, Value};

use crate::table::Timestamp;

/// Why a record was rejected, naming the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected(pub String);

impl Rejected {
    /// A reason.
    pub fn new(reason: impl Into<String>) -> Rejected {
        Rejected(reason.into())
    }
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The area a source's stations are in, to catch coordinates that are swapped or wrong.
#[derive(Clone, Debug, PartialEq)]
pub struct Area {
    /// Its name, for messages.
    pub name: &'static str,
    /// Longitudes inside it.
    pub lon: RangeInclusive<f64>,
    /// Latitudes inside it.
    pub lat: RangeInclusive<f64>,
}

impl Area {
    /// Whether (`lon`, `lat`) is inside.
    pub fn contains(&self, lon: f64, lat: f64) -> bool {
        self.lon.contains(&lon) && self.lat.contains(&lat)
    }
}

/// One JSON object of a page, read field by field.
#[derive(Clone, Debug)]
pub struct Record<'a> {
    fields: &'a Map<String, Value>,
    /// The path of this object inside the record (`coordonnees_geo.`), for messages.
    prefix: String,
    /// Why fields read with [`Record::or_null`] are NULL (shared with the nested objects read
    /// from this record); `None` outside [`super::collect_batches`], where they are only logged.
    notes: Option<&'a RefCell<Vec<String>>>,
}

/// The JSON type of `value`, with the value when it is short, for messages.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.chars().count() <= 40 => format!("the string {s:?}"),
        Value::String(_) => "a string".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

impl<'a> Record<'a> {
    /// `value` as a record; anything but a JSON object is rejected.
    pub fn new(value: &'a Value) -> Result<Record<'a>, Rejected> {
        match value {
            Value::Object(fields) => Ok(Record {
                fields,
                prefix: String::new(),
                notes: None,
            }),
            other => Err(Rejected(format!(
                "the record is {}, not a JSON object",
                describe(other)
            ))),
        }
    }

    /// [`Record::new`], keeping in `notes` why fields read with [`Record::or_null`] are NULL.
    pub(crate) fn with_notes(
        value: &'a Value,
        notes: &'a RefCell<Vec<String>>,
    ) -> Result<Record<'a>, Rejected> {
        Record::new(value).map(|record| Record {
            notes: Some(notes),
            ..record
        })
    }

    /// What `read` read, or `None` when it rejected the field: the record is then kept with a
    /// NULL there, and the reason is recorded with it in `lakehouse.rejects` (as kept, not
    /// counted against the reject limit). For fields that describe a record and must not cost
    /// it: a station of a full list whose absence would close its history, say.
    ///
    /// ```
    /// # use lakehouse_runtime::sources::{Record, Rejected};
    /// # fn row(r: &Record<'_>) -> Result<(String, Option<i32>), Rejected> {
    /// let code = r.string("stationcode")?; // no code, no station: rejected
    /// let capacity = r.or_null(r.opt_count("capacity")).flatten(); // a bad one is NULL
    /// # Ok((code, capacity))
    /// # }
    /// ```
    pub fn or_null<T>(&self, read: Result<T, Rejected>) -> Option<T> {
        match read {
            Ok(value) => Some(value),
            Err(Rejected(reason)) => {
                match self.notes {
                    Some(notes) => notes.borrow_mut().push(reason),
                    None => tracing::warn!(%reason, "a field read as NULL"),
                }
                None
            }
        }
    }

    /// The field's name as shown in reasons.
    fn name(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The value of `key`, `None` when the key is missing.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.fields.get(key)
    }

    /// The keys of the record, in alphabetical order (not necessarily the order the source sent
    /// them in).
    pub fn keys(&self) -> impl Iterator<Item = &'a str> {
        self.fields.keys().map(String::as_str)
    }

    /// The value of a required field: a missing key or a null is rejected.
    fn required(&self, key: &str) -> Result<&'a Value, Rejected> {
        match self.fields.get(key) {
            None => Err(Rejected(format!("missing key `{}`", self.name(key)))),
            Some(Value::Null) => Err(Rejected(format!("`{}` is null", self.name(key)))),
            Some(value) => Ok(value),
        }
    }

    /// The value of an optional field: `None` for a missing key or a null.
    fn optional(&self, key: &str) -> Option<&'a Value> {
        self.fields.get(key).filter(|v| !v.is_null())
    }

    /// A wrong-type reason.
    fn wrong(&self, key: &str, expected: &str, found: &Value) -> Rejected {
        Rejected(format!(
            "`{}` should be {expected} but is {}",
            self.name(key),
            describe(found)
        ))
    }

    /// A required string.
    pub fn string(&self, key: &str) -> Result<String, Rejected> {
        let value = self.required(key)?;
        self.as_string(key, value)
    }

    /// An optional string.
    pub fn opt_string(&self, key: &str) -> Result<Option<String>, Rejected> {
        self.optional(key)
            .map(|value| self.as_string(key, value))
            .transpose()
    }

    fn as_string(&self, key: &str, value: &Value) -> Result<String, Rejected> {
        match value {
            Value::String(s) => Ok(s.clone()),
            other => Err(self.wrong(key, "a string", other)),
        }
    }

    /// A required identifier: a non-empty string, or an integer written as text (some feeds
    /// send numeric ids).
    pub fn id(&self, key: &str) -> Result<String, Rejected> {
        match self.required(key)? {
            Value::String(s) if s.trim().is_empty() => {
                Err(Rejected(format!("`{}` is empty", self.name(key))))
            }
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
            other => Err(self.wrong(key, "a string or integer identifier", other)),
        }
    }

    /// A required 32-bit integer (a number, `20.0` included: a feed written by a JSON library
    /// that makes every number a float; a fraction and text are rejected).
    pub fn int(&self, key: &str) -> Result<i32, Rejected> {
        let value = self.required(key)?;
        self.as_int(key, value)
    }

    /// An optional 32-bit integer.
    pub fn opt_int(&self, key: &str) -> Result<Option<i32>, Rejected> {
        self.optional(key)
            .map(|value| self.as_int(key, value))
            .transpose()
    }

    fn as_int(&self, key: &str, value: &Value) -> Result<i32, Rejected> {
        let whole_float = || {
            value
                .as_f64()
                .filter(|f| {
                    f.fract() == 0.0 && (f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(f)
                })
                // (Whole and within range: exact.)
                .map(|f| f as i64)
        };
        value
            .as_i64()
            .or_else(whole_float)
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| self.wrong(key, "an integer", value))
    }

    /// A required count: an integer ≥ 0.
    pub fn count(&self, key: &str) -> Result<i32, Rejected> {
        let n = self.int(key)?;
        self.non_negative(key, n)
    }

    /// An optional count: an integer ≥ 0.
    pub fn opt_count(&self, key: &str) -> Result<Option<i32>, Rejected> {
        self.opt_int(key)?
            .map(|n| self.non_negative(key, n))
            .transpose()
    }

    fn non_negative(&self, key: &str, n: i32) -> Result<i32, Rejected> {
        if n < 0 {
            Err(Rejected(format!(
                "`{}` is negative ({n}): a count cannot be",
                self.name(key)
            )))
        } else {
            Ok(n)
        }
    }

    /// A required number (integers included; text is rejected).
    pub fn float(&self, key: &str) -> Result<f64, Rejected> {
        let value = self.required(key)?;
        value
            .as_f64()
            .filter(|f| f.is_finite())
            .ok_or_else(|| self.wrong(key, "a number", value))
    }

    /// A required flag, as the sources write them: `true`/`false`, `1`/`0` (GBFS 1.x), or
    /// `"OUI"`/`"NON"` (Opendatasoft's Vélib' datasets).
    pub fn flag(&self, key: &str) -> Result<bool, Rejected> {
        let value = self.required(key)?;
        match value {
            Value::Bool(b) => Ok(*b),
            Value::Number(n) if n.as_u64() == Some(1) => Ok(true),
            Value::Number(n) if n.as_u64() == Some(0) => Ok(false),
            Value::String(s) if s == "OUI" => Ok(true),
            Value::String(s) if s == "NON" => Ok(false),
            other => Err(self.wrong(key, "a flag (true/false, 1/0 or \"OUI\"/\"NON\")", other)),
        }
    }

    /// An optional RFC 3339 date-time with an offset (`2025-06-03T08:12:41+00:00`), as UTC.
    pub fn opt_datetime(&self, key: &str) -> Result<Option<Timestamp>, Rejected> {
        let Some(value) = self.optional(key) else {
            return Ok(None);
        };
        let text = value
            .as_str()
            .ok_or_else(|| self.wrong(key, "an RFC 3339 date-time", value))?;
        parse_datetime(text)
            .map(Some)
            .ok_or_else(|| self.wrong(key, "an RFC 3339 date-time", value))
    }

    /// A required time: seconds since the Unix epoch (GBFS 1.x and 2.x `last_reported`; a
    /// fraction, or a number written as text, which some feeds send, kept to the microsecond) or
    /// an RFC 3339 date-time (GBFS 3.0). A number too large for seconds (milliseconds, say) is
    /// rejected rather than read as a date thousands of years ahead.
    pub fn epoch_seconds(&self, key: &str) -> Result<Timestamp, Rejected> {
        let value = self.required(key)?;
        let expected = "seconds since the epoch or an RFC 3339 date-time";
        let seconds = match value {
            Value::String(text) => match parse_datetime(text) {
                Some(time) => return Ok(time),
                None => text
                    .trim()
                    .parse::<serde_json::Number>()
                    .map_err(|_| self.wrong(key, expected, value))?,
            },
            Value::Number(n) => n.clone(),
            other => return Err(self.wrong(key, expected, other)),
        };
        match seconds_as_micros(&seconds) {
            Some(micros) => Ok(Timestamp(micros)),
            None if seconds.as_f64().is_some_and(f64::is_finite) => Err(Rejected(format!(
                "`{}` is {seconds}: too large for seconds since the epoch (milliseconds?)",
                self.name(key)
            ))),
            None => Err(self.wrong(key, expected, value)),
        }
    }

    /// An optional name that is a string (GBFS 1.x, 2.x) or a list of translations
    /// `[{"text", "language"}]` (GBFS 3.0): the text in the first of `languages` present, else
    /// the first listed.
    pub fn opt_localized(&self, key: &str, languages: &[&str]) -> Result<Option<String>, Rejected> {
        let Some(value) = self.optional(key) else {
            return Ok(None);
        };
        let Value::Array(translations) = value else {
            return self.as_string(key, value).map(Some);
        };
        let expected = "a string or a list of `{\"text\", \"language\"}`";
        let mut texts = Vec::with_capacity(translations.len());
        for translation in translations {
            let text = translation.get("text").and_then(Value::as_str);
            let language = translation.get("language").and_then(Value::as_str);
            match (text, language) {
                (Some(text), Some(language)) => texts.push((language, text)),
                _ => return Err(self.wrong(key, expected, value)),
            }
        }
        let preferred = languages
            .iter()
            .find_map(|wanted| texts.iter().find(|(language, _)| language == wanted));
        Ok(preferred
            .or(texts.first())
            .map(|(_, text)| (*text).to_owned()))
    }

    /// Any non-null value as text: a string as is, anything else as its JSON.
    pub fn opt_text(&self, key: &str) -> Option<String> {
        self.optional(key).map(|value| match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// A required nested object.
    pub fn object(&self, key: &str) -> Result<Record<'a>, Rejected> {
        let value = self.required(key)?;
        match value {
            Value::Object(fields) => Ok(Record {
                fields,
                prefix: format!("{}{key}.", self.prefix),
                notes: self.notes,
            }),
            other => Err(self.wrong(key, "an object", other)),
        }
    }

    /// An optional array.
    pub fn opt_array(&self, key: &str) -> Result<Option<&'a Vec<Value>>, Rejected> {
        match self.optional(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(other) => Err(self.wrong(key, "an array", other)),
        }
    }

    /// An optional array of objects, each read as a record whose reasons name it by its place
    /// (`vehicle_types_available[2].count`); an element that is no object is rejected so named.
    pub fn opt_objects(&self, key: &str) -> Result<Option<Vec<Record<'a>>>, Rejected> {
        let Some(items) = self.opt_array(key)? else {
            return Ok(None);
        };
        items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let place = format!("{key}[{index}]");
                match item {
                    Value::Object(fields) => Ok(Record {
                        fields,
                        prefix: format!("{}{place}.", self.prefix),
                        notes: self.notes,
                    }),
                    other => Err(self.wrong(&place, "an object", other)),
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// Required coordinates `(lon, lat)` from the fields `lon_key` and `lat_key`, which must be
    /// numbers inside `area`; coordinates that are inside only once swapped are rejected as
    /// swapped.
    pub fn lon_lat(
        &self,
        lon_key: &str,
        lat_key: &str,
        area: &Area,
    ) -> Result<(f64, f64), Rejected> {
        let lon = self.float(lon_key)?;
        let lat = self.float(lat_key)?;
        if area.contains(lon, lat) {
            Ok((lon, lat))
        } else if area.contains(lat, lon) {
            Err(Rejected(format!(
                "`{}` {lon} and `{}` {lat} look swapped: the point is outside {} unless they \
                 are exchanged",
                self.name(lon_key),
                self.name(lat_key),
                area.name
            )))
        } else {
            Err(Rejected(format!(
                "`{}` {lon}, `{}` {lat} is outside {} (lon {:?}, lat {:?})",
                self.name(lon_key),
                self.name(lat_key),
                area.name,
                area.lon,
                area.lat
            )))
        }
    }
}

/// An RFC 3339 date-time as a UTC timestamp.
pub fn parse_datetime(text: &str) -> Option<Timestamp> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| Timestamp(t.timestamp_micros()))
}

/// Seconds since the epoch (an integer, or a fraction kept to the microsecond) as microseconds;
/// `None` for a value too large for seconds (5138-11-16 and later: milliseconds since 1973 are
/// all larger) or not finite.
pub(crate) fn seconds_as_micros(seconds: &serde_json::Number) -> Option<i64> {
    /// No report is dated later.
    const LARGEST_SECONDS: i64 = 100_000_000_000;
    let micros = match seconds.as_i64() {
        Some(whole) => whole.checked_mul(1_000_000)?,
        None => seconds
            .as_f64()
            .filter(|s| s.is_finite() && s.abs() < LARGEST_SECONDS as f64)
            .map(|s| (s * 1e6).round() as i64)?,
    };
    (micros.unsigned_abs() < LARGEST_SECONDS.unsigned_abs() * 1_000_000).then_some(micros)
}
