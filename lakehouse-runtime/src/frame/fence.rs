//! `evaluated_after_filters(value)`: the value itself, computed where the projection holding it
//! stands. Volatile, so DataFusion neither inlines it into a filter it pushes below (where it
//! would be ANDed with the pipeline's own filters and evaluated on every row of a batch, the
//! rows those filters remove included), nor folds it away.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

#[derive(Debug, PartialEq, Eq, Hash)]
struct EvaluatedAfterFilters {
    signature: Signature,
}

impl ScalarUDFImpl for EvaluatedAfterFilters {
    fn name(&self) -> &str {
        "evaluated_after_filters"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        match arg_types {
            [value] => Ok(value.clone()),
            _ => plan_err!("evaluated_after_filters takes one value"),
        }
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> datafusion::error::Result<FieldRef> {
        match args.arg_fields {
            [value] => Ok(Arc::new(Field::new(
                self.name(),
                value.data_type().clone(),
                value.is_nullable(),
            ))),
            _ => plan_err!("evaluated_after_filters takes one value"),
        }
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        match <[ColumnarValue; 1]>::try_from(args.args) {
            Ok([value]) => Ok(value),
            Err(_) => exec_err!("evaluated_after_filters takes one value"),
        }
    }
}

static EVALUATED_AFTER_FILTERS: LazyLock<ScalarUDF> = LazyLock::new(|| {
    ScalarUDF::from(EvaluatedAfterFilters {
        signature: Signature::any(1, Volatility::Volatile),
    })
});

/// `expr`, evaluated only on the rows that reach the projection holding it (see the module).
pub(crate) fn evaluated_after_filters(expr: Expr) -> Expr {
    EVALUATED_AFTER_FILTERS.call(vec![expr])
}
