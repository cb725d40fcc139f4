//! JSON lines of `orchestrate sql --format json`: what arrow's writer would lose or refuse.

use std::sync::Arc;

use arrow::array::{Array, AsArray as _};
use arrow::datatypes::{DataType, Field, FieldRef, Float32Type, Float64Type, Schema};
use arrow::error::ArrowError;
use arrow::json::writer::{Encoder, EncoderFactory, EncoderOptions, NullableEncoder};

use crate::error::{Error, Result};

/// Writes the floats of a column holding NaN or an infinity as JSON numbers, and those values
/// as the strings `"NaN"`, `"Infinity"` and `"-Infinity"` (JSON has no number for them: arrow's
/// writer makes them `null`, as a NULL is).
#[derive(Debug)]
pub(super) struct NonFiniteAsText;

impl EncoderFactory for NonFiniteAsText {
    fn make_default_encoder<'a>(
        &self,
        _field: &'a FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> Result<Option<NullableEncoder<'a>>, ArrowError> {
        let values: Box<dyn Fn(usize) -> f64 + 'a> = match array.data_type() {
            DataType::Float64 => {
                let floats = array.as_primitive::<Float64Type>();
                Box::new(move |i| floats.value(i))
            }
            DataType::Float32 => {
                let floats = array.as_primitive::<Float32Type>();
                Box::new(move |i| f64::from(floats.value(i)))
            }
            _ => return Ok(None),
        };
        // A column of finite floats keeps arrow's own encoding.
        let finite = (0..array.len()).all(|i| array.is_null(i) || values(i).is_finite());
        if finite {
            return Ok(None);
        }
        let nulls = array.logical_nulls();
        Ok(Some(NullableEncoder::new(
            Box::new(FloatEncoder(values)),
            nulls,
        )))
    }
}

/// Floats as JSON: finite ones as numbers, the others as text.
struct FloatEncoder<'a>(Box<dyn Fn(usize) -> f64 + 'a>);

impl Encoder for FloatEncoder<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let value = (self.0)(idx);
        let text = if value.is_nan() {
            "\"NaN\"".to_owned()
        } else if value.is_infinite() {
            if value > 0.0 {
                "\"Infinity\"".to_owned()
            } else {
                "\"-Infinity\"".to_owned()
            }
        } else {
            // Debug is the shortest text that reads back the same (`0.1`, `1e300`, `2.0`).
            format!("{value:?}")
        };
        out.extend_from_slice(text.as_bytes());
    }
}

/// An error naming the first column of `schema` that JSON lines cannot hold (a map whose keys
/// are not text, a union), with the fix, before any row is written.
pub(super) fn refuse_unwritable(schema: &Schema) -> Result<()> {
    fn unwritable(field: &Field) -> bool {
        match field.data_type() {
            DataType::Map(entries, _) => match entries.data_type() {
                DataType::Struct(parts) => parts.iter().enumerate().any(|(index, part)| {
                    (index == 0
                        && !matches!(
                            part.data_type(),
                            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                        ))
                        || unwritable(part)
                }),
                _ => true,
            },
            DataType::Union(..) => true,
            DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
                unwritable(item)
            }
            DataType::Struct(fields) => fields.iter().any(|f| unwritable(f)),
            _ => false,
        }
    }
    match schema.fields().iter().find(|f| unwritable(f)) {
        Some(field) => Err(Error::msg(format!(
            "column `{}` is {}, which JSON cannot hold (an object's keys are text): make it \
             text in the query (`CAST(.. AS VARCHAR)`), or turn its keys into text",
            field.name(),
            field.data_type()
        ))),
        None => Ok(()),
    }
}

/// The encoder factory of `sql --format json`.
pub(super) fn encoders() -> Arc<dyn EncoderFactory> {
    Arc::new(NonFiniteAsText)
}
