//! What a row type reads, found by deserializing made-up records: the names of its fields,
//! and which of them serde fills when the record lacks them (an `Option`, a
//! `#[serde(default)]` field).

use serde::de::value::{Error as ProbeError, MapDeserializer, SeqDeserializer};
use serde::de::{DeserializeOwned, Deserializer, IntoDeserializer, Visitor};

/// The names `R`'s derived `Deserialize` reads a struct's fields by (serde's `FIELDS`,
/// aliases included), caught by a deserializer that asks for nothing else; `None` when `R` is
/// not deserialized as a struct of named fields.
pub(super) fn struct_fields<R: DeserializeOwned>() -> Option<&'static [&'static str]> {
    use serde::de::Error as _;

    struct Probe<'a>(&'a std::cell::Cell<Option<&'static [&'static str]>>);

    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = ProbeError;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, ProbeError> {
            Err(ProbeError::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, ProbeError> {
            self.0.set(Some(fields));
            Err(ProbeError::custom("fields caught"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    let caught = std::cell::Cell::new(None);
    // (Always an error: the probe builds no value.)
    let _ = R::deserialize(Probe(&caught));
    caught.get()
}

/// Whether `R` reads `{"<name>": null}` without its field `name` failing: an `Option` (an error
/// at the root is another field missing).
pub(super) fn reads_null<R: DeserializeOwned>(name: &str) -> bool {
    let json = serde_json::json!({ name: null }).to_string();
    let mut deserializer = serde_json::Deserializer::from_str(&json);
    match serde_path_to_error::deserialize::<_, R>(&mut deserializer) {
        Ok(_) => true,
        Err(error) => error.path().iter().next().is_none(),
    }
}

/// Whether `a` and `b` are names of one field of `R` (one an alias of the other): serde refuses
/// a record holding both as a duplicate.
pub(super) fn same_field<R: DeserializeOwned>(a: &str, b: &str) -> bool {
    a == b
        || read::<R>(&[a, b])
            .err()
            .is_some_and(|error| error.to_string().starts_with("duplicate field"))
}

/// One name of each field of `R` among `names` (its first: serde lists a field's name before
/// its aliases).
pub(super) fn one_name_each<R: DeserializeOwned>(names: &[&'static str]) -> Vec<&'static str> {
    let mut fields: Vec<&'static str> = Vec::new();
    for name in names {
        if !fields.iter().any(|kept| same_field::<R>(kept, name)) {
            fields.push(name);
        }
    }
    fields
}

/// Whether `R` reads a record holding a value for each of its `fields` (one name of each, see
/// [`one_name_each`]) but the one named `name`: serde fills that one itself. `false` when it
/// cannot be told: another field's type takes none of the values made up (a strict text
/// format, an enum variant holding data).
pub(super) fn reads_without<R: DeserializeOwned>(name: &str, fields: &[&str]) -> bool {
    let others: Vec<&str> = fields
        .iter()
        .copied()
        .filter(|other| !same_field::<R>(other, name))
        .collect();
    read::<R>(&others).is_ok()
}

/// `R` read from a record of the fields `names`, each holding a made-up value.
fn read<R: DeserializeOwned>(names: &[&str]) -> Result<R, ProbeError> {
    let record = names
        .iter()
        .map(|name| (name.to_string(), AnyValue))
        .collect::<Vec<_>>();
    R::deserialize(MapDeserializer::<_, ProbeError>::new(record.into_iter()))
}

/// A value that reads as whatever the field asks for: zero, `false`, `"0"`, an empty list or
/// map, a tuple or struct of such values, `None`, an enum's first variant (if a unit one). Text
/// of a strict format (a chrono date) does not take `"0"`: a field beside it is not told.
#[derive(Clone, Copy)]
struct AnyValue;

impl<'de> IntoDeserializer<'de, ProbeError> for AnyValue {
    type Deserializer = AnyValue;

    fn into_deserializer(self) -> AnyValue {
        self
    }
}

impl<'de> Deserializer<'de> for AnyValue {
    type Error = ProbeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_i64(0)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_bool(false)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_f32(0.0)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_f64(0.0)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_char('0')
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_str("0")
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_str("0")
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_bytes(b"")
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_bytes(b"")
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_none()
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_seq(SeqDeserializer::new(std::iter::empty::<AnyValue>()))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_map(MapDeserializer::new(
            std::iter::empty::<(String, AnyValue)>(),
        ))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        visitor.visit_seq(SeqDeserializer::new(std::iter::repeat_n(AnyValue, len)))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        // Each of its fields made up (a nested struct with aliases reads a duplicate, and a
        // field beside it is not told).
        visitor.visit_map(MapDeserializer::new(
            fields.iter().map(|name| (*name, AnyValue)),
        ))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        // Its first variant, if a unit one (one holding data is not made up).
        match variants.first() {
            Some(first) => visitor.visit_enum(first.into_deserializer()),
            None => Err(serde::de::Error::custom("an enum of no variant")),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 identifier
    }
}
