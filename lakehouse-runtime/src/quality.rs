//! Data-quality checks of a pipeline's output, run before it is written: NOT NULL columns hold
//! no NULL, the primary key is unique, every foreign key resolves to a row of its dimension.

use datafusion::common::{Column, JoinType, TableReference};
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::SessionContext;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::{Expr, lit};

use crate::error::Result;
use crate::store::Warehouse;
use crate::table::{ColumnDef, ColumnRef, Quality, TableDef, WriteMode};

/// One failed check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// `schema.table`.
    pub table: String,
    /// The column, for column checks.
    pub column: Option<String>,
    /// `not_null`, `primary_key_unique` or `foreign_key_resolves`.
    pub check: &'static str,
    /// A sample offending value.
    pub value: Option<String>,
    /// Rows failing the check.
    pub failing_rows: i64,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} failed on {} row(s)",
            self.table, self.check, self.failing_rows
        )?;
        if let Some(column) = &self.column {
            write!(f, " (column `{column}`)")?;
        }
        if let Some(value) = &self.value {
            write!(f, ", e.g. {value}")?;
        }
        Ok(())
    }
}

/// Runs the checks `table` declares on `output` (its data columns); empty when all pass or the
/// table's quality is off.
pub async fn check_output(
    warehouse: &Warehouse,
    session: &SessionContext,
    table: &'static TableDef,
    output: &DataFrame,
) -> Result<Vec<Finding>> {
    if table.quality == Quality::Off {
        return Ok(Vec::new());
    }
    let mut findings = null_violations(session, table, output).await?;
    if !table.key.is_empty()
        && table.mode != WriteMode::Append
        && let Some(finding) = duplicate_keys(table, output.clone()).await?
    {
        findings.push(finding);
    }
    for column in table.data_columns() {
        if let Some(target) = column.references
            && let Some(finding) =
                unresolved(warehouse, session, table, column, target, output.clone()).await?
        {
            findings.push(finding);
        }
    }
    Ok(findings)
}

/// NULLs in NOT NULL columns. The output plan asserts those columns non-NULL (and would fail
/// the write on the first NULL); the count runs on the plan without the assertions.
async fn null_violations(
    session: &SessionContext,
    table: &'static TableDef,
    output: &DataFrame,
) -> Result<Vec<Finding>> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::functions_aggregate::expr_fn::sum;
    use datafusion::logical_expr::case;

    let required: Vec<&ColumnDef> = table.data_columns().filter(|c| !c.nullable).collect();
    if required.is_empty() {
        return Ok(Vec::new());
    }
    let plan = output
        .logical_plan()
        .clone()
        .transform_up(|node| {
            let node = node.map_expressions(|expr| {
                expr.transform_up(|e| match e {
                    Expr::ScalarFunction(f) if f.name() == "assert_not_null" => {
                        Ok(Transformed::yes(f.args[0].clone()))
                    }
                    other => Ok(Transformed::no(other)),
                })
            })?;
            if node.transformed {
                Ok(Transformed::yes(node.data.recompute_schema()?))
            } else {
                Ok(node)
            }
        })?
        .data;
    let unchecked = DataFrame::new(session.state(), plan);
    let counts: Vec<Expr> = required
        .iter()
        .map(|c| {
            let is_null = case(unqualified(c.name).is_null())
                .when(lit(true), lit(1i64))
                .otherwise(lit(0i64));
            is_null.map(|e| sum(e).alias(c.name))
        })
        .collect::<datafusion::error::Result<_>>()?;
    let batches = unchecked.aggregate(vec![], counts)?.collect().await?;
    let mut findings = Vec::new();
    if let Some(batch) = batches.first() {
        for (i, column) in required.iter().enumerate() {
            let nulls = batch
                .column(i)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .filter(|a| !a.is_empty() && arrow::array::Array::is_valid(*a, 0))
                .map_or(0, |a| a.value(0));
            if nulls > 0 {
                findings.push(Finding {
                    table: table.qualified_name(),
                    column: Some(column.name.to_owned()),
                    check: "not_null",
                    value: None,
                    failing_rows: nulls,
                });
            }
        }
    }
    Ok(findings)
}

fn unqualified(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

async fn duplicate_keys(table: &'static TableDef, output: DataFrame) -> Result<Option<Finding>> {
    let key: Vec<Expr> = table.key.iter().map(|k| unqualified(k)).collect();
    let duplicates = output
        .aggregate(key.clone(), vec![count(lit(1)).alias("n")])?
        .filter(unqualified("n").gt(lit(1)))?;
    let batches = duplicates.collect().await?;
    let failing: usize = batches.iter().map(|b| b.num_rows()).sum();
    if failing == 0 {
        return Ok(None);
    }
    let sample = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .map(|b| row_text(b, 0, table.key.len()))
        .unwrap_or_default();
    Ok(Some(Finding {
        table: table.qualified_name(),
        column: Some(table.key.join(", ")),
        check: "primary_key_unique",
        value: Some(sample),
        failing_rows: failing as i64,
    }))
}

async fn unresolved(
    warehouse: &Warehouse,
    session: &SessionContext,
    table: &'static TableDef,
    column: &ColumnDef,
    target: ColumnRef,
    output: DataFrame,
) -> Result<Option<Finding>> {
    let Some(dimension) = find_table(target) else {
        return Ok(None);
    };
    let keys = warehouse
        .read(session, dimension)
        .await?
        .select(vec![unqualified(target.column).alias("__lakehouse_ref")])?
        .distinct()?;
    let missing = output
        .filter(unqualified(column.name).is_not_null())?
        .join_on(
            keys,
            JoinType::LeftAnti,
            vec![unqualified(column.name).eq(Expr::Column(Column::new(
                None::<TableReference>,
                "__lakehouse_ref",
            )))],
        )?
        .select(vec![unqualified(column.name)])?;
    let batches = missing.collect().await?;
    let failing: usize = batches.iter().map(|b| b.num_rows()).sum();
    if failing == 0 {
        return Ok(None);
    }
    let sample = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .map(|b| row_text(b, 0, 1))
        .unwrap_or_default();
    Ok(Some(Finding {
        table: table.qualified_name(),
        column: Some(column.name.to_owned()),
        check: "foreign_key_resolves",
        value: Some(format!(
            "{sample} (not in {}.{}.{})",
            target.schema, target.table, target.column
        )),
        failing_rows: failing as i64,
    }))
}

/// The table a foreign key points to, among the registered pipelines' outputs.
fn find_table(target: ColumnRef) -> Option<&'static TableDef> {
    inventory::iter::<crate::graph::PipelineDescriptor>
        .into_iter()
        .map(|p| p.output)
        .find(|t| t.schema == target.schema && t.name == target.table)
}

fn row_text(batch: &arrow::array::RecordBatch, row: usize, columns: usize) -> String {
    let options = arrow::util::display::FormatOptions::default().with_null("NULL");
    (0..columns.min(batch.num_columns()))
        .map(|c| {
            arrow::util::display::ArrayFormatter::try_new(batch.column(c).as_ref(), &options)
                .map(|f| f.value(row).to_string())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(", ")
}
