//! `assert_not_null(value, 'schema.table.column')`: passes values through, fails the query on a
//! NULL. The conformance step wraps an output expression in it when the table declares the column
//! NOT NULL but DataFusion cannot prove the expression never NULL; the plan then has the declared
//! nullability and the error, if it happens, names the column.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility, lit,
};

#[derive(Debug, PartialEq, Eq, Hash)]
struct AssertNotNull {
    signature: Signature,
}

impl ScalarUDFImpl for AssertNotNull {
    fn name(&self) -> &str {
        "assert_not_null"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        match arg_types.first() {
            Some(t) => Ok(t.clone()),
            None => plan_err!("assert_not_null takes a value and a column name"),
        }
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> datafusion::error::Result<FieldRef> {
        let Some(value) = args.arg_fields.first() else {
            return plan_err!("assert_not_null takes a value and a column name");
        };
        Ok(Arc::new(Field::new(
            self.name(),
            value.data_type().clone(),
            false,
        )))
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let text = |i: usize| match args.args.get(i) {
            Some(ColumnarValue::Scalar(ScalarValue::Utf8(Some(text)))) => Some(text.clone()),
            _ => None,
        };
        let column = text(1).unwrap_or_else(|| "a NOT NULL column".to_owned());
        let stored = text(2).is_some_and(|source| source == STORED);
        let file = text(2).filter(|source| source == FILE).and(text(3));
        let partition = text(2).is_some_and(|source| source == EMPTY_PARTITION);
        let Some(value) = args.args.into_iter().next() else {
            return exec_err!("assert_not_null takes a value and a column name");
        };
        let has_null = match &value {
            ColumnarValue::Array(array) => array.null_count() > 0,
            ColumnarValue::Scalar(scalar) => scalar.is_null(),
        };
        if has_null && partition {
            return exec_err!(
                "column `{column}` is a NOT NULL partition column, and the pipeline produced an \
                 empty string in it, which Delta keeps as no value (read back as NULL); give it \
                 a value, or declare the field as Option<_> (it is then NULL)"
            );
        }
        if has_null && let Some(files) = file {
            return exec_err!(
                "column `{column}` is declared NOT NULL, but a row of {files} has no value in \
                 it (an empty field, a missing key); fill it in the file, or declare the field \
                 as Option<_> and fill or filter such rows in the pipeline"
            );
        }
        if has_null && stored {
            return exec_err!(
                "column `{column}` is declared NOT NULL, but the stored table holds a NULL in it \
                 (written while it was nullable, or by another engine); declare the field as \
                 Option<_>, or mend the stored rows"
            );
        }
        if has_null {
            return exec_err!(
                "column `{column}` is declared NOT NULL, but the pipeline produced a NULL in it; \
                 filter those rows, use coalesce(..), or declare the field as Option<_>"
            );
        }
        Ok(value)
    }
}

// Volatile, though it computes nothing: DataFusion moves a filter above a projection below it
// with the projection's (non-volatile) expressions inlined, and ANDs it with the filters there,
// which may evaluate it on every row of a batch; the assertion would then see the rows the
// pipeline's own filter removes (`.filter(x.is_not_null())` before `x.assume_not_null()`).
static ASSERT_NOT_NULL: LazyLock<ScalarUDF> = LazyLock::new(|| {
    ScalarUDF::from(AssertNotNull {
        signature: Signature::variadic_any(Volatility::Volatile),
    })
});

/// The third argument of an assertion on a stored table read back (its NULL was not produced by
/// the pipeline at hand).
const STORED: &str = "stored";

/// `expr`, asserted non-NULL at execution; `column` names it in the error.
pub(crate) fn assert_not_null(expr: Expr, column: &str) -> Expr {
    ASSERT_NOT_NULL.call(vec![expr, lit(column)])
}

/// [`assert_not_null`] on a NOT NULL text partition column whose empty strings were made NULL
/// (Delta keeps no empty partition value): the error says so.
pub(crate) fn assert_partition_value(expr: Expr, column: &str) -> Expr {
    ASSERT_NOT_NULL.call(vec![expr, lit(column), lit(EMPTY_PARTITION)])
}

/// The third argument of an assertion on a partition value made NULL from an empty string.
const EMPTY_PARTITION: &str = "partition";

/// The third argument of an assertion on a landing file's column; the fourth names the files.
const FILE: &str = "file";

/// Whether `source`, an assertion's third argument, says it is on a stored table read back.
pub(crate) fn is_stored_assertion(source: &str) -> bool {
    source == STORED
}

/// Whether `source`, an assertion's third argument, says it is a landing file's.
pub(crate) fn is_file_assertion(source: &str) -> bool {
    source == FILE
}

/// [`assert_not_null`] on a column read from landing files (`files` names them): the error
/// says the files lack the value, not the pipeline.
pub(crate) fn assert_file_not_null(expr: Expr, column: &str, files: &str) -> Expr {
    ASSERT_NOT_NULL.call(vec![expr, lit(column), lit(FILE), lit(files)])
}

/// [`assert_not_null`] on a stored table read back: the error says the NULL is stored.
pub(crate) fn assert_stored_not_null(expr: Expr, column: &str) -> Expr {
    ASSERT_NOT_NULL.call(vec![expr, lit(column), lit(STORED)])
}

/// `as_nullable(value)`: the value itself, typed nullable. A write that replaces a table's
/// schema takes each column's nullability from the plan: a column declared `Option<_>` but
/// filled by an expression DataFusion knows is never NULL (a literal, a NOT NULL input) would be
/// stored NOT NULL, and flip back at the next run whose plan may be NULL (a metadata commit each
/// time).
#[derive(Debug, PartialEq, Eq, Hash)]
struct AsNullable {
    signature: Signature,
}

impl ScalarUDFImpl for AsNullable {
    fn name(&self) -> &str {
        "as_nullable"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        match arg_types {
            [value] => Ok(value.clone()),
            _ => plan_err!("as_nullable takes one value"),
        }
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> datafusion::error::Result<FieldRef> {
        match args.arg_fields {
            [value] => Ok(Arc::new(Field::new(
                self.name(),
                value.data_type().clone(),
                true,
            ))),
            _ => plan_err!("as_nullable takes one value"),
        }
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        match <[ColumnarValue; 1]>::try_from(args.args) {
            Ok([value]) => Ok(value),
            Err(_) => exec_err!("as_nullable takes one value"),
        }
    }
}

static AS_NULLABLE: LazyLock<ScalarUDF> = LazyLock::new(|| {
    ScalarUDF::from(AsNullable {
        signature: Signature::any(1, Volatility::Immutable),
    })
});

/// `expr`, typed nullable (see [`AsNullable`]).
pub(crate) fn as_nullable(expr: Expr) -> Expr {
    AS_NULLABLE.call(vec![expr])
}
