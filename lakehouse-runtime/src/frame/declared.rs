//! `declared(value)`: a computed expression whose value type its author declared
//! (`typed::<V>(..)`), where the declaration decides how it is computed on: an aggregate's input
//! (a `sum` of `typed::<Decimal<10, 2>>` values is cast to a scale-2 column, which would round a
//! scale-4 total without an error) or a join key. The declaration is checked when the plan is
//! built (the plan test builds every pipeline's), and the values pass through unchanged.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::table::LogicalType;

/// The check of one declared type.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Declared {
    signature: Signature,
    declared: LogicalType,
}

impl ScalarUDFImpl for Declared {
    fn name(&self) -> &str {
        "declared"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        match arg_types {
            [value] => self.checked(value),
            _ => plan_err!("declared takes one value"),
        }
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> datafusion::error::Result<FieldRef> {
        match args.arg_fields {
            [value] => Ok(Arc::new(Field::new(
                self.name(),
                self.checked(value.data_type())?,
                value.is_nullable(),
            ))),
            _ => plan_err!("declared takes one value"),
        }
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        match <[ColumnarValue; 1]>::try_from(args.args) {
            Ok([value]) => Ok(value),
            Err(_) => exec_err!("declared takes one value"),
        }
    }
}

impl Declared {
    /// `actual`, when values of that type are what the declaration says.
    fn checked(&self, actual: &DataType) -> datafusion::error::Result<DataType> {
        if fits(&self.declared.arrow_type(), actual) {
            return Ok(actual.clone());
        }
        let declared = self.declared;
        plan_err!(
            "an expression declared {declared} (`typed::<..>`) is {actual}: declare the type it \
             has, or cast it to {declared} (`cast(..)`, `decimal(..)`) before declaring it"
        )
    }
}

/// Whether values of type `actual` are of the declared type `declared` as far as computing on
/// them goes: the same type, text of any encoding for text, a decimal of the same scale (any
/// precision), an integer of any width for an integer, any float for a float, a timestamp of
/// any unit or zone for a timestamp; a NULL literal is of every type.
fn fits(declared: &DataType, actual: &DataType) -> bool {
    use DataType::*;
    match (declared, actual) {
        (_, Null) => true,
        (declared, actual) if declared == actual => true,
        (declared, Dictionary(_, values)) => fits(declared, values),
        (Utf8, actual) => matches!(actual, LargeUtf8 | Utf8View),
        (Decimal128(_, scale), Decimal128(_, actual) | Decimal256(_, actual)) => scale == actual,
        (Int32 | Int64, actual) => actual.is_integer(),
        (Float64, actual) => matches!(actual, Float32),
        // Any unit: an output column casts it, and computing on it needs no particular one.
        (Timestamp(..), Timestamp(..)) => true,
        _ => false,
    }
}

/// `expr`, checked at planning to have values of the `declared` type.
pub(crate) fn declared(expr: Expr, declared: LogicalType) -> Expr {
    ScalarUDF::from(Declared {
        signature: Signature::any(1, Volatility::Immutable),
        declared,
    })
    .call(vec![expr])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fit_their_declaration_by_what_computing_on_them_needs() {
        use DataType::*;
        let decimal = LogicalType::Decimal {
            precision: 10,
            scale: 2,
        }
        .arrow_type();
        assert!(fits(&decimal, &Decimal128(21, 2)));
        assert!(fits(&decimal, &Decimal256(40, 2)));
        assert!(!fits(&decimal, &Decimal128(21, 4)));
        assert!(!fits(&decimal, &Float64));
        assert!(fits(&Int64, &Int32));
        assert!(!fits(&Int64, &Float64));
        assert!(!fits(&Float64, &Int64));
        assert!(fits(
            &Utf8,
            &Dictionary(Box::new(Int32), Box::new(Utf8View))
        ));
        assert!(fits(&Int64, &Null));
        assert!(!fits(&Utf8, &Int64));
    }
}
