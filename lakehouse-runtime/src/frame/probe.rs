//! A look at the numbers a row gives its top-level fields, as serde hands them over, without
//! building the row: cheap enough for every row (Arrow's JSON decoder would truncate a float
//! into an integer or date column, a float past 38 digits overflows its decimal parser, and a
//! bare integer into a date or timestamp column is taken as days or microseconds).

use serde::Serialize;
use serde::ser::{self, Impossible};

use crate::table::{DATE_NEWTYPE, TIMESTAMP_NEWTYPE};

/// A number a row gives a top-level field.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Number {
    /// A float.
    Float(f64),
    /// A bare integer: not a [`crate::table::Date`] or [`crate::table::Timestamp`], which
    /// serialize as integers too.
    Integer(i128),
    /// A [`crate::table::Date`]: days.
    Date,
    /// A [`crate::table::Timestamp`]: microseconds.
    Timestamp,
}

/// Calls `found(field, number)` for each number `row` gives a top-level field (a struct's field,
/// or a map's entry under a text key), through `Option`s and newtypes. A row of another shape
/// gives none: the decoder says what is wrong with it.
pub(super) fn numbers_of<R: Serialize + ?Sized, F: FnMut(&str, Number) -> Result<(), String>>(
    row: &R,
    found: F,
) -> Result<(), String> {
    match row.serialize(Row { found }) {
        Ok(()) => Ok(()),
        Err(Stop(why)) => Err(why),
    }
}

/// Why the look stopped: what `found` said.
#[derive(Debug)]
struct Stop(String);

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stop {}

impl ser::Error for Stop {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Stop(msg.to_string())
    }
}

/// What a value is, for this look: a number, a text (a map's key), or anything else.
enum Given {
    Number(Number),
    Text(String),
    Other,
}

/// Serializes one value into what it is ([`Given`]); nested values are `Other`.
struct Value {
    /// Whether a text is kept (a map's key) or passed over (a value).
    keep_text: bool,
}

/// Serializes a row: its fields' numbers go to `found`.
struct Row<F> {
    found: F,
}

/// A row's fields (a struct's, or a map's).
struct Fields<F> {
    found: F,
    /// A map's key, waiting for its value.
    key: Option<String>,
}

impl<F: FnMut(&str, Number) -> Result<(), String>> Fields<F> {
    fn field<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<(), Stop> {
        if let Ok(Given::Number(number)) = value.serialize(Value { keep_text: false }) {
            (self.found)(name, number).map_err(Stop)?;
        }
        Ok(())
    }
}

/// Every scalar method of a `Serializer`, returning `$value` (`v` bound to the scalar).
macro_rules! scalars {
    ($($method:ident($ty:ty) => $value:expr;)*) => {$(
        fn $method(self, v: $ty) -> Result<Self::Ok, Self::Error> {
            let _ = &v;
            #[allow(clippy::redundant_closure_call)]
            Ok(($value)(self, v))
        }
    )*};
}

impl ser::Serializer for Value {
    type Ok = Given;
    type Error = Stop;
    type SerializeSeq = Impossible<Given, Stop>;
    type SerializeTuple = Impossible<Given, Stop>;
    type SerializeTupleStruct = Impossible<Given, Stop>;
    type SerializeTupleVariant = Impossible<Given, Stop>;
    type SerializeMap = Impossible<Given, Stop>;
    type SerializeStruct = Impossible<Given, Stop>;
    type SerializeStructVariant = Impossible<Given, Stop>;

    scalars! {
        serialize_bool(bool) => |_, _| Given::Other;
        serialize_i8(i8) => |_, v: i8| Given::Number(Number::Integer(v.into()));
        serialize_i16(i16) => |_, v: i16| Given::Number(Number::Integer(v.into()));
        serialize_i32(i32) => |_, v: i32| Given::Number(Number::Integer(v.into()));
        serialize_i64(i64) => |_, v: i64| Given::Number(Number::Integer(v.into()));
        serialize_i128(i128) => |_, v: i128| Given::Number(Number::Integer(v));
        serialize_u8(u8) => |_, v: u8| Given::Number(Number::Integer(v.into()));
        serialize_u16(u16) => |_, v: u16| Given::Number(Number::Integer(v.into()));
        serialize_u32(u32) => |_, v: u32| Given::Number(Number::Integer(v.into()));
        serialize_u64(u64) => |_, v: u64| Given::Number(Number::Integer(v.into()));
        serialize_f32(f32) => |_, v: f32| Given::Number(Number::Float(f64::from(v)));
        serialize_f64(f64) => |_, v: f64| Given::Number(Number::Float(v));
        serialize_char(char) => |_, _| Given::Other;
        serialize_str(&str) => |s: Value, v: &str| if s.keep_text {
            Given::Text(v.to_owned())
        } else {
            Given::Other
        };
        serialize_bytes(&[u8]) => |_, _| Given::Other;
        serialize_unit_struct(&'static str) => |_, _| Given::Other;
    }

    fn serialize_none(self) -> Result<Given, Stop> {
        Ok(Given::Other)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Given, Stop> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<Given, Stop> {
        Ok(Given::Other)
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<Given, Stop> {
        Ok(Given::Other)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Given, Stop> {
        // A date's days and a timestamp's microseconds are what their own columns take.
        if name == DATE_NEWTYPE {
            return Ok(Given::Number(Number::Date));
        }
        if name == TIMESTAMP_NEWTYPE {
            return Ok(Given::Number(Number::Timestamp));
        }
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Given, Stop> {
        Ok(Given::Other)
    }

    // A nested value is no float of a column: `Err` is read as "other" by the caller.
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Stop> {
        Err(Stop(String::new()))
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Stop> {
        Err(Stop(String::new()))
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Stop> {
        Err(Stop(String::new()))
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Stop> {
        Err(Stop(String::new()))
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Stop> {
        Err(Stop(String::new()))
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Stop> {
        Err(Stop(String::new()))
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Stop> {
        Err(Stop(String::new()))
    }
}

impl<F: FnMut(&str, Number) -> Result<(), String>> ser::Serializer for Row<F> {
    type Ok = ();
    type Error = Stop;
    type SerializeSeq = Impossible<(), Stop>;
    type SerializeTuple = Impossible<(), Stop>;
    type SerializeTupleStruct = Impossible<(), Stop>;
    type SerializeTupleVariant = Impossible<(), Stop>;
    type SerializeMap = Fields<F>;
    type SerializeStruct = Fields<F>;
    type SerializeStructVariant = Impossible<(), Stop>;

    scalars! {
        serialize_bool(bool) => |_, _| ();
        serialize_i8(i8) => |_, _| ();
        serialize_i16(i16) => |_, _| ();
        serialize_i32(i32) => |_, _| ();
        serialize_i64(i64) => |_, _| ();
        serialize_u8(u8) => |_, _| ();
        serialize_u16(u16) => |_, _| ();
        serialize_u32(u32) => |_, _| ();
        serialize_u64(u64) => |_, _| ();
        serialize_f32(f32) => |_, _| ();
        serialize_f64(f64) => |_, _| ();
        serialize_char(char) => |_, _| ();
        serialize_str(&str) => |_, _| ();
        serialize_bytes(&[u8]) => |_, _| ();
        serialize_unit_struct(&'static str) => |_, _| ();
    }

    fn serialize_none(self) -> Result<(), Stop> {
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Stop> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Stop> {
        Ok(())
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Stop> {
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Stop> {
        Ok(())
    }

    // Rows of another shape: the decoder says what is wrong with them (`Ok`: nothing found).
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Stop> {
        Err(Stop(String::new()))
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Stop> {
        Err(Stop(String::new()))
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Stop> {
        Err(Stop(String::new()))
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Stop> {
        Err(Stop(String::new()))
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Fields<F>, Stop> {
        Ok(Fields {
            found: self.found,
            key: None,
        })
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Fields<F>, Stop> {
        Ok(Fields {
            found: self.found,
            key: None,
        })
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Stop> {
        Err(Stop(String::new()))
    }
}

impl<F: FnMut(&str, Number) -> Result<(), String>> ser::SerializeStruct for Fields<F> {
    type Ok = ();
    type Error = Stop;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        self.field(name, value)
    }

    fn end(self) -> Result<(), Stop> {
        Ok(())
    }
}

impl<F: FnMut(&str, Number) -> Result<(), String>> ser::SerializeMap for Fields<F> {
    type Ok = ();
    type Error = Stop;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Stop> {
        self.key = match key.serialize(Value { keep_text: true }) {
            Ok(Given::Text(key)) => Some(key),
            _ => None,
        };
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        match self.key.take() {
            Some(key) => self.field(&key, value),
            None => Ok(()),
        }
    }

    fn end(self) -> Result<(), Stop> {
        Ok(())
    }
}
