//! Casting text to decimals without formatting every value.
//!
//! Arrow's string → decimal cast builds a new `String` per value (to pad or round it) before
//! parsing it as a 256-bit integer: on a price column it costs more than reading the column. The
//! [`FastDecimalCast`] optimizer rule replaces `CAST(text AS DECIMAL(p, s))` (p ≤ 18) in
//! projections with `parse_decimal`, which parses plain decimals (`[+-]digits[.digits]`, at most
//! `s` fraction digits) straight into the integer. An array holding anything else — spaces, an
//! exponent, more fraction digits than the scale, a value beyond the precision, or text that is
//! no number — is cast by Arrow as a whole, so results and errors are exactly the cast's.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray as _, Decimal128Array};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::format::DEFAULT_CAST_OPTIONS;
use datafusion::common::tree_node::{Transformed, TreeNode as _};
use datafusion::common::{DFSchema, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    Cast, ColumnarValue, Expr, ExprSchemable as _, LogicalPlan, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

/// The largest precision parsed into an `i64` without overflow.
const MAX_PRECISION: u8 = 18;

/// Replaces `CAST(text AS DECIMAL(p, s))` in projections by `parse_decimal`, keeping the
/// column names.
#[derive(Debug, Default)]
pub(crate) struct FastDecimalCast;

impl OptimizerRule for FastDecimalCast {
    fn name(&self) -> &str {
        "lakehouse_fast_decimal_cast"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Projection(projection) = &plan else {
            return Ok(Transformed::no(plan));
        };
        let input = projection.input.schema().clone();
        let names = NamePreserver::new(&plan);
        plan.map_expressions(|expr| {
            let saved = names.save(&expr);
            let rewritten = expr.transform_up(|e| rewrite_cast(e, &input))?;
            Ok(rewritten.update_data(|e| saved.restore(e)))
        })
    }
}

/// `parse_decimal(e)` for `CAST(e AS DECIMAL(p, s))` when `e` is text and `p` ≤ 18.
fn rewrite_cast(expr: Expr, input: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::Cast(Cast { expr: inner, field }) = &expr else {
        return Ok(Transformed::no(expr));
    };
    let DataType::Decimal128(precision, scale) = *field.data_type() else {
        return Ok(Transformed::no(expr));
    };
    if precision > MAX_PRECISION || scale < 0 || inner.get_type(input)? != DataType::Utf8 {
        return Ok(Transformed::no(expr));
    }
    let udf = ScalarUDF::new_from_impl(ParseDecimal::new(precision, scale));
    let call = Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::new(udf),
        vec![inner.as_ref().clone()],
    ));
    Ok(Transformed::yes(call))
}

/// `parse_decimal(text)` → `DECIMAL(precision, scale)`, as `CAST` does it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ParseDecimal {
    precision: u8,
    scale: i8,
    signature: Signature,
}

impl ParseDecimal {
    fn new(precision: u8, scale: i8) -> ParseDecimal {
        ParseDecimal {
            precision,
            scale,
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        }
    }

    fn data_type(&self) -> DataType {
        DataType::Decimal128(self.precision, self.scale)
    }
}

impl ScalarUDFImpl for ParseDecimal {
    fn name(&self) -> &str {
        "parse_decimal"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.data_type())
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        // NULL exactly where the text is NULL, as the cast.
        let nullable = args.arg_fields.iter().any(|f| f.is_nullable());
        Ok(Arc::new(Field::new(
            self.name(),
            self.data_type(),
            nullable,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [arg] = <[ColumnarValue; 1]>::try_from(args.args).map_err(|_| {
            datafusion::error::DataFusionError::Plan("parse_decimal takes one argument".into())
        })?;
        let array = arg.into_array(rows)?;
        Ok(ColumnarValue::Array(self.parse(&array)?))
    }
}

impl ParseDecimal {
    /// `array` parsed, or cast by Arrow when any value is not a plain decimal within range.
    fn parse(&self, array: &ArrayRef) -> Result<ArrayRef> {
        let Some(strings) = array.as_string_opt::<i32>() else {
            return exec_err!("parse_decimal takes text, got {}", array.data_type());
        };
        let scale = self.scale as u8;
        let bound = 10_i64.pow(u32::from(self.precision));
        let mut values = Vec::with_capacity(strings.len());
        for value in strings.iter() {
            let parsed = match value {
                None => Some(0),
                Some(text) => parse_plain(text.as_bytes(), scale).filter(|v| v.abs() < bound),
            };
            match parsed {
                Some(v) => values.push(i128::from(v)),
                None => return self.cast(array),
            }
        }
        let parsed = Decimal128Array::new(values.into(), strings.nulls().cloned())
            .with_precision_and_scale(self.precision, self.scale)?;
        Ok(Arc::new(parsed))
    }

    /// Arrow's cast, as DataFusion's `CAST` runs it.
    fn cast(&self, array: &ArrayRef) -> Result<ArrayRef> {
        Ok(arrow::compute::cast_with_options(
            array,
            &self.data_type(),
            &DEFAULT_CAST_OPTIONS,
        )?)
    }
}

/// `array` (text) parsed as `DECIMAL(precision, scale)` as `CAST` does, plain decimals fast
/// when `precision` ≤ 18 (otherwise, and for any other text, by Arrow's cast).
pub(crate) fn parse_text(array: &ArrayRef, precision: u8, scale: i8) -> Result<ArrayRef> {
    let parser = ParseDecimal::new(precision, scale);
    if precision > MAX_PRECISION || scale < 0 || array.data_type() != &DataType::Utf8 {
        return parser.cast(array);
    }
    parser.parse(array)
}

/// `text` as an integer of `scale` implied decimals, if it is `[+-]digits[.digits]` with at most
/// `scale` fraction digits and at most 18 digits once scaled.
fn parse_plain(text: &[u8], scale: u8) -> Option<i64> {
    let (negative, digits) = match text.first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let mut value: i64 = 0;
    let mut integer_digits = 0_u32;
    let mut rest = digits.iter();
    let mut fraction_digits = 0_u8;
    let mut in_fraction = false;
    for &byte in rest.by_ref() {
        match byte {
            b'0'..=b'9' => {
                if in_fraction {
                    if fraction_digits == scale {
                        return None;
                    }
                    fraction_digits += 1;
                } else {
                    integer_digits += 1;
                }
                if integer_digits + u32::from(fraction_digits) > u32::from(MAX_PRECISION) {
                    return None;
                }
                value = value * 10 + i64::from(byte - b'0');
            }
            b'.' if !in_fraction => in_fraction = true,
            _ => return None,
        }
    }
    if integer_digits == 0 || integer_digits + u32::from(scale) > u32::from(MAX_PRECISION) {
        return None;
    }
    let value = value * 10_i64.pow(u32::from(scale - fraction_digits));
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use arrow::array::StringArray;

    use super::*;

    /// The fast path and Arrow's cast agree on `texts`, values and errors alike.
    fn agrees(precision: u8, scale: i8, texts: &[Option<&str>]) {
        let array: ArrayRef = Arc::new(StringArray::from(texts.to_vec()));
        let udf = ParseDecimal::new(precision, scale);
        let ours = udf.parse(&array).map_err(|e| e.to_string());
        let arrows = udf.cast(&array).map_err(|e| e.to_string());
        assert_eq!(
            ours.as_ref().map(|a| a.to_data()),
            arrows.as_ref().map(|a| a.to_data()),
            "{texts:?} as DECIMAL({precision}, {scale})"
        );
    }

    #[test]
    fn plain_decimals_parse_as_the_cast_does() {
        let texts = [
            Some("323.74"),
            Some("0.99"),
            Some("1"),
            Some("1."),
            Some("-0.5"),
            Some("+12.3"),
            Some("00012.30"),
            None,
            Some("99999999.99"),
            Some("-99999999.99"),
        ];
        agrees(10, 2, &texts);
        agrees(18, 0, &[Some("123456789012345678"), Some("-5"), None]);
        assert_eq!(parse_plain(b"323.74", 2), Some(32374));
        assert_eq!(parse_plain(b"-0.5", 2), Some(-50));
    }

    #[test]
    fn anything_else_is_left_to_the_cast() {
        for text in [
            " 1.5",
            "1.5 ",
            "1e3",
            "1.234",
            ".5",
            "-",
            "",
            "abc",
            "1.2.3",
            "999999999.99",
            "1234567890123456789",
        ] {
            agrees(10, 2, &[Some("1.00"), Some(text)]);
        }
        assert_eq!(parse_plain(b"1.234", 2), None);
        assert_eq!(parse_plain(b".5", 2), None);
    }
}

#[cfg(test)]
mod rule_tests {
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::SessionContext;

    use super::*;

    const QUERY: &str = "SELECT CAST(t.price AS DECIMAL(10, 2)), \
        CAST(t.qty AS DECIMAL(10, 2)) * CAST(t.price AS DECIMAL(10, 2)) AS amount, \
        CAST(t.price AS DECIMAL(30, 2)) AS wide \
        FROM (VALUES ('1.50', 2), ('323.74', 3), (NULL, 4)) AS t(price, qty)";

    fn session(with_rule: bool) -> SessionContext {
        let mut builder = SessionStateBuilder::new().with_default_features();
        if with_rule {
            builder = builder.with_optimizer_rule(Arc::new(FastDecimalCast));
        }
        SessionContext::new_with_state(builder.build())
    }

    async fn run(session: &SessionContext, sql: &str) -> Vec<arrow::array::RecordBatch> {
        session
            .sql(sql)
            .await
            .expect("plans")
            .collect()
            .await
            .expect("runs")
    }

    #[tokio::test]
    async fn the_rule_keeps_names_types_and_values() {
        let fast = run(&session(true), QUERY).await;
        let plain = run(&session(false), QUERY).await;
        assert_eq!(fast, plain);
        let explained = run(&session(true), &format!("EXPLAIN {QUERY}")).await;
        let text = arrow::util::pretty::pretty_format_batches(&explained)
            .expect("printable")
            .to_string();
        assert!(text.contains("parse_decimal"), "{text}");
        // DECIMAL(30, 2) does not fit an i64: the cast stays.
        assert!(text.contains("Decimal128(30, 2)"), "{text}");
    }

    #[tokio::test]
    async fn a_bad_price_fails_as_the_cast_does() {
        let sql =
            "SELECT CAST(t.price AS DECIMAL(10, 2)) FROM (VALUES ('1.50'), ('abc')) AS t(price)";
        let fast = session(true).sql(sql).await.expect("plans").collect().await;
        let plain = session(false)
            .sql(sql)
            .await
            .expect("plans")
            .collect()
            .await;
        let (fast, plain) = (fast.expect_err("fails"), plain.expect_err("fails"));
        assert_eq!(fast.to_string(), plain.to_string());
    }
}
