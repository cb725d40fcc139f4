//! Data-quality checks of a pipeline's output, run before it is written: NOT NULL columns hold
//! no NULL, the primary key is unique, every foreign key resolves to a row of its dimension.
//! All of them are answered by one query over the output.

use std::sync::Arc;

use arrow::array::Array as _;
use datafusion::common::{Column, JoinType};
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::SessionContext;
use datafusion::functions_aggregate::expr_fn::{count, min, sum};
use datafusion::logical_expr::{Expr, lit, when};

use crate::error::{Error, Result};
use crate::store::Warehouse;
use crate::table::{ColumnDef, ColumnRef, OnFail, Quality, TableDef, WriteMode};

/// The column a merge or SCD2 write orders a key's rows by, newest kept (`store::merge::dedupe`).
const RUN_AT: &str = "run_at";

/// One failed check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// `schema.table`.
    pub table: String,
    /// The column, for column checks.
    pub column: Option<String>,
    /// `not_null`, `primary_key_unique`, `foreign_key_resolves` or `expectation` (whose name
    /// is then in `column`, and its condition in `value`).
    pub check: &'static str,
    /// A sample offending value.
    pub value: Option<String>,
    /// Rows failing the check.
    pub failing_rows: i64,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.check == "expectation" {
            return write!(
                f,
                "{}: expectation `{}` ({}) failed on {} row(s)",
                self.table,
                self.column.as_deref().unwrap_or_default(),
                self.value.as_deref().unwrap_or_default(),
                self.failing_rows
            );
        }
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
        let advice = match self.check {
            "not_null" => {
                "filter those rows out, fill them (`coalesce(..)`), or declare the field `Option<_>`"
            }
            "primary_key_unique" => "keep one row per key (`latest_by`), or widen the key",
            "foreign_key_resolves" => {
                "the referenced table lacks those keys: run its pipeline first, or keep such rows \
                 out with an expectation (`on_fail = drop`)"
            }
            _ => return Ok(()),
        };
        write!(f, ": {advice}")
    }
}

/// Runs the checks `table` declares on `output` (its data columns); empty when all pass or the
/// table's quality is off. Every check is answered by one execution of the output's plan (only
/// a failed uniqueness check runs a second query, for a sample key), so checking costs about
/// one more read of the inputs whatever the number of checks.
pub async fn check_output(
    warehouse: &Warehouse,
    session: &SessionContext,
    table: &'static TableDef,
    output: &DataFrame,
) -> Result<Vec<Finding>> {
    if table.quality == Quality::Off {
        return Ok(Vec::new());
    }
    let checks = Checks::of(table);
    if checks.is_empty() {
        return Ok(Vec::new());
    }
    let unchecked = without_not_null_assertions(output.clone())?;
    let measured = measure(warehouse, session, table, &checks, unchecked.clone()).await?;

    let qualified = table.qualified_name();
    let mut findings = Vec::new();
    for (column, nulls) in checks.required.iter().zip(&measured.nulls) {
        if *nulls > 0 {
            findings.push(Finding {
                table: qualified.clone(),
                column: Some(column.name.to_owned()),
                check: "not_null",
                value: None,
                failing_rows: *nulls,
            });
        }
    }
    if measured.duplicated_keys > 0 {
        findings.push(Finding {
            table: qualified.clone(),
            column: Some(table.key.join(", ")),
            check: "primary_key_unique",
            value: Some(duplicate_sample(table, &checks, unchecked).await?),
            failing_rows: measured.duplicated_keys,
        });
    }
    for (reference, (missing, sample)) in checks.references.iter().zip(measured.unresolved) {
        if missing > 0 {
            let target = reference.target;
            findings.push(Finding {
                table: qualified.clone(),
                column: Some(reference.column.name.to_owned()),
                check: "foreign_key_resolves",
                value: Some(format!(
                    "{sample} (not in {}.{}.{})",
                    target.schema, target.table, target.column
                )),
                failing_rows: missing,
            });
        }
    }
    Ok(findings)
}

/// What a table's checks look at.
struct Checks {
    /// NOT NULL data columns.
    required: Vec<&'static ColumnDef>,
    /// The primary key, when its uniqueness is checked (append-only tables may repeat it).
    key: Option<&'static [&'static str]>,
    /// Whether a key is checked unique among the rows of its newest `run_at` only: a merge or
    /// SCD2 write keeps a key's row of the newest run (an incremental read after a failed run
    /// holds several runs' rows of a key), so only several rows of that run are left to a
    /// tie-break.
    per_run: bool,
    /// Foreign keys whose dimension is a registered pipeline's output.
    references: Vec<Reference>,
}

/// A foreign key and the dimension it points to.
struct Reference {
    column: &'static ColumnDef,
    target: ColumnRef,
    dimension: &'static TableDef,
}

impl Checks {
    fn of(table: &'static TableDef) -> Checks {
        Checks {
            required: table.data_columns().filter(|c| !c.nullable).collect(),
            key: (!table.key.is_empty() && table.mode != WriteMode::Append).then_some(table.key),
            per_run: matches!(table.mode, WriteMode::Merge | WriteMode::Scd2)
                && table.data_columns().any(|c| c.name == RUN_AT)
                && !table.key.contains(&RUN_AT),
            references: table
                .data_columns()
                .filter_map(|column| {
                    let target = column.references?;
                    Some(Reference {
                        column,
                        target,
                        dimension: find_table(target)?,
                    })
                })
                .collect(),
        }
    }

    fn is_empty(&self) -> bool {
        self.required.is_empty() && self.key.is_none() && self.references.is_empty()
    }

    /// The columns whose values must be unique together: the key, and `run_at` when
    /// [`Checks::per_run`].
    fn unique_by(&self) -> Vec<Expr> {
        let key = self.key.unwrap_or_default().iter();
        key.chain(self.per_run.then_some(&RUN_AT))
            .map(|k| unqualified(k))
            .collect()
    }

    /// `grouped` (one row per [`Checks::unique_by`] value, its rows counted in
    /// `__lakehouse_rows`, its measures in `measures`: name, whether a sample) as one row per
    /// key when per run: the rows of the key's newest run (`run_at` descending, NULL last, as
    /// the write orders them; its older runs' rows the write leaves out), the measures over all
    /// its runs, and the newest run in `__lakehouse_newest`. Aggregated, not ranked: no sort.
    fn newest_run_per_key(
        &self,
        grouped: DataFrame,
        measures: &[(String, bool)],
    ) -> Result<DataFrame> {
        use datafusion::functions_aggregate::expr_fn::{first_value, max};
        if !self.per_run {
            return Ok(grouped);
        }
        let key = self.key.unwrap_or_default();
        let newest_first = vec![unqualified(RUN_AT).sort(false, false)];
        let mut per_key = vec![
            first_value(unqualified("__lakehouse_rows"), newest_first).alias("__lakehouse_rows"),
            max(unqualified(RUN_AT)).alias("__lakehouse_newest"),
        ];
        per_key.extend(measures.iter().map(|(name, sample)| {
            let measure = unqualified(name);
            match sample {
                true => min(measure),
                false => sum(measure),
            }
            .alias(name)
        }));
        Ok(grouped.aggregate(key.iter().map(|k| unqualified(k)).collect(), per_key)?)
    }
}

/// The answers of every check, in the order of [`Checks`].
struct Measured {
    /// NULLs per NOT NULL column.
    nulls: Vec<i64>,
    /// Rows whose (non-NULL) key value another row holds too.
    duplicated_keys: i64,
    /// Per foreign key: rows whose value is not in the dimension, and the smallest such value.
    unresolved: Vec<(i64, String)>,
}

/// `output`'s plan without its NOT NULL assertions (which would fail the query on the first
/// NULL instead of counting them), but those on the inputs' stored NULLs: such a NULL is the
/// input table's to mend, and its error says so (counted, it was blamed on the output).
fn without_not_null_assertions(output: DataFrame) -> Result<DataFrame> {
    use datafusion::scalar::ScalarValue::Utf8;
    without_assertions(output, |args| {
        !matches!(args, [_, _, Expr::Literal(Utf8(Some(source)), _)]
            if crate::frame::is_stored_assertion(source))
    })
}

/// `output` (a pipeline's for `table`) without the NOT NULL assertions of `table`'s own columns
/// (`assert_not_null(value, 'schema.table.column')`, its conformance's, and a landing file's
/// read as the table), which would fail the query on a NULL that an expectation counts or
/// drops. The assertions on the inputs' stored NULLs stay.
fn without_output_assertions(output: DataFrame, table: &TableDef) -> Result<DataFrame> {
    use datafusion::scalar::ScalarValue::Utf8;
    let prefix = format!("{}.", table.qualified_name());
    without_assertions(output, |args| match args {
        // The conformance's.
        [_, Expr::Literal(Utf8(Some(label)), _)] => label.starts_with(&prefix),
        // A landing file's read into the table (`read_files::<T>` returned as it is).
        [
            _,
            Expr::Literal(Utf8(Some(label)), _),
            Expr::Literal(Utf8(Some(source)), _),
            _,
        ] => label.starts_with(&prefix) && crate::frame::is_file_assertion(source),
        _ => false,
    })
}

/// `output`'s plan without the NOT NULL assertions whose arguments `strip` picks; every node's
/// schema derived again (a parent, a union above all, would keep its inputs' former NOT NULLs,
/// and DataFusion would fold `c IS NULL` of such a column to false).
fn without_assertions(output: DataFrame, strip: impl Fn(&[Expr]) -> bool) -> Result<DataFrame> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::logical_expr::{LogicalPlan, Union};

    let (state, plan) = output.into_parts();
    let plan = plan
        .transform_up(|node| {
            let node = node.map_expressions(|expr| {
                expr.transform_up(|e| match e {
                    Expr::ScalarFunction(f) if f.name() == "assert_not_null" && strip(&f.args) => {
                        Ok(Transformed::yes(f.args[0].clone()))
                    }
                    other => Ok(Transformed::no(other)),
                })
            })?;
            let rebuilt = match node.data {
                // Its schema is kept as long as its width is (`recompute_schema`): its types
                // stay (the analyzer coerces a union's inputs later), its NULLs are the inputs'.
                LogicalPlan::Union(union) => {
                    let fields: Vec<_> = union
                        .schema
                        .iter()
                        .enumerate()
                        .map(|(i, (qualifier, field))| {
                            let nullable = field.is_nullable()
                                || union.inputs.iter().any(|input| {
                                    input
                                        .schema()
                                        .fields()
                                        .get(i)
                                        .is_some_and(|f| f.is_nullable())
                                });
                            let field = field.as_ref().clone().with_nullable(nullable);
                            (qualifier.cloned(), Arc::new(field))
                        })
                        .collect();
                    let schema = datafusion::common::DFSchema::new_with_metadata(
                        fields,
                        union.schema.metadata().clone(),
                    )?;
                    LogicalPlan::Union(Union {
                        inputs: union.inputs,
                        schema: Arc::new(schema),
                    })
                }
                other => other.recompute_schema()?,
            };
            Ok(Transformed::yes(rebuilt))
        })?
        .data;
    Ok(DataFrame::new(state, plan))
}

/// Answers every check in one query over `output`: each dimension's keys are outer-joined to it
/// (they are distinct, so rows are neither lost nor repeated), per-row flags are summed — per key
/// value first when uniqueness is checked, then over those groups.
async fn measure(
    warehouse: &Warehouse,
    session: &SessionContext,
    table: &TableDef,
    checks: &Checks,
    output: DataFrame,
) -> Result<Measured> {
    let reference = |i: usize| format!("__lakehouse_ref_{i}");
    let mut joined = output;
    for (i, r) in checks.references.iter().enumerate() {
        let keys = warehouse
            .read(session, r.dimension)
            .await?
            .select(vec![unqualified(r.target.column).alias(reference(i))])?
            .distinct()?;
        // The dimension's keys are the join's build side (the left one: join reordering is
        // off): the output streams through, however large.
        joined = keys.join_on(
            joined,
            JoinType::Right,
            vec![unqualified(&reference(i)).eq(unqualified(r.column.name))],
        )?;
    }
    let flag = |condition: Expr| when(condition, lit(1i64)).otherwise(lit(0i64));
    let unresolved = |i: usize, r: &Reference| {
        unqualified(r.column.name)
            .is_not_null()
            .and(unqualified(&reference(i)).is_null())
    };
    // Per row: (name, what is aggregated, whether it is a sample (min) or a count (sum)).
    let mut measures: Vec<(String, Expr, bool)> = Vec::new();
    for (j, column) in checks.required.iter().enumerate() {
        measures.push((
            format!("__lakehouse_nulls_{j}"),
            flag(unqualified(column.name).is_null())?,
            false,
        ));
    }
    for (i, r) in checks.references.iter().enumerate() {
        measures.push((
            format!("__lakehouse_missing_{i}"),
            flag(unresolved(i, r))?,
            false,
        ));
        let sample = when(unresolved(i, r), unqualified(r.column.name)).end()?;
        measures.push((format!("__lakehouse_sample_{i}"), sample, true));
    }
    let over = |measure: Expr, sample: bool| if sample { min(measure) } else { sum(measure) };
    let totals: Vec<Expr> = match checks.key {
        Some(key) => {
            let mut per_key = vec![count(lit(1)).alias("__lakehouse_rows")];
            per_key.extend(
                measures
                    .iter()
                    .map(|(name, measure, sample)| over(measure.clone(), *sample).alias(name)),
            );
            let names: Vec<(String, bool)> = measures
                .iter()
                .map(|(name, _, sample)| (name.clone(), *sample))
                .collect();
            joined = checks
                .newest_run_per_key(joined.aggregate(checks.unique_by(), per_key)?, &names)?;
            // Rows sharing a key value (of its newest run, when per run) with another (dbt's
            // `unique`: NULL keys, which the NOT NULL check reports, are no duplicates).
            let key_present = key
                .iter()
                .map(|k| unqualified(k).is_not_null())
                .reduce(Expr::and)
                .unwrap_or(lit(true));
            let shared = unqualified("__lakehouse_rows").gt(lit(1)).and(key_present);
            let mut totals = vec![
                sum(when(shared, unqualified("__lakehouse_rows")).otherwise(lit(0i64))?)
                    .alias("__lakehouse_duplicated"),
            ];
            totals.extend(
                measures
                    .iter()
                    .map(|(name, _, sample)| over(unqualified(name), *sample).alias(name)),
            );
            totals
        }
        None => measures
            .iter()
            .map(|(name, measure, sample)| over(measure.clone(), *sample).alias(name))
            .collect(),
    };
    let batches = joined.aggregate(vec![], totals)?.collect().await?;
    let Some(row) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Err(Error::msg(format!(
            "{}: the data-quality checks' totals query returned no row",
            table.qualified_name()
        )));
    };
    let number = |name: &str| row.column_by_name(name).map_or(0, |c| count_of(c.as_ref()));
    Ok(Measured {
        nulls: (0..checks.required.len())
            .map(|j| number(&format!("__lakehouse_nulls_{j}")))
            .collect(),
        duplicated_keys: checks.key.map_or(0, |_| number("__lakehouse_duplicated")),
        unresolved: (0..checks.references.len())
            .map(|i| {
                let sample = row
                    .column_by_name(&format!("__lakehouse_sample_{i}"))
                    .map(|c| value_text(c.as_ref(), 0))
                    .unwrap_or_default();
                (number(&format!("__lakehouse_missing_{i}")), sample)
            })
            .collect(),
    })
}

/// The count (a `sum` of flags) in the first row of `column`: 0 when NULL (no row summed).
pub(crate) fn count_of(column: &dyn arrow::array::Array) -> i64 {
    column
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .filter(|counts| counts.is_valid(0))
        .map_or(0, |counts| counts.value(0))
}

fn unqualified(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

/// One key value held by several rows of `output` (of its newest run, when checked per run),
/// as text: `1, 'a'`, or `1, 'a' (run_at 2026-01-02T03:04:05Z)`.
async fn duplicate_sample(
    table: &'static TableDef,
    checks: &Checks,
    output: DataFrame,
) -> Result<String> {
    let present = table
        .key
        .iter()
        .map(|k| unqualified(k).is_not_null())
        .reduce(Expr::and)
        .unwrap_or(lit(true));
    // A working name no column has (a key column may be called `n`).
    let grouped = output.filter(present)?.aggregate(
        checks.unique_by(),
        vec![count(lit(1)).alias("__lakehouse_rows")],
    )?;
    let duplicates = checks
        .newest_run_per_key(grouped, &[])?
        .filter(unqualified("__lakehouse_rows").gt(lit(1)))?
        .limit(0, Some(1))?;
    let batches = duplicates.collect().await?;
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(String::new());
    };
    let key = row_text(batch, 0, table.key.len());
    let newest = batch.column_by_name("__lakehouse_newest");
    Ok(match newest {
        Some(newest) => format!("{key} ({RUN_AT} {})", value_text(newest.as_ref(), 0)),
        None => key,
    })
}

/// The table a foreign key points to, among the registered pipelines' outputs.
fn find_table(target: ColumnRef) -> Option<&'static TableDef> {
    inventory::iter::<crate::graph::PipelineDescriptor>
        .into_iter()
        .map(|p| p.output)
        .find(|t| t.schema == target.schema && t.name == target.table)
}

fn row_text(batch: &arrow::array::RecordBatch, row: usize, columns: usize) -> String {
    (0..columns.min(batch.num_columns()))
        .map(|c| value_text(batch.column(c).as_ref(), row))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `array[row]` as text, `NULL` for NULL.
fn value_text(array: &dyn arrow::array::Array, row: usize) -> String {
    let options = arrow::util::display::FormatOptions::default().with_null("NULL");
    arrow::util::display::ArrayFormatter::try_new(array, &options)
        .map(|f| f.value(row).to_string())
        .unwrap_or_default()
}

/// The rows of `output` failing each of `table`'s expectations, counted in one query (a row
/// fails when the condition is false; NULL passes): one finding per expectation that fails
/// somewhere, checked `expectation`, naming the expectation in `column` and its condition in
/// `value`. Also returns `output` without the rows failing a `drop` expectation. An expression
/// that is not valid SQL over the table's columns is an error naming it.
pub async fn apply_expectations(
    table: &'static TableDef,
    output: DataFrame,
) -> Result<(DataFrame, Vec<(Finding, OnFail)>)> {
    if table.expectations.is_empty() {
        return Ok((output, Vec::new()));
    }
    let qualified = table.qualified_name();
    // Judged on the values the pipeline produced: a NOT NULL column's assertion would fail the
    // query on the NULL an expectation is there to count or drop (and DataFusion folds `c IS
    // NULL` of a column it believes NOT NULL to false). The write asserts again what is kept.
    let unchecked = without_output_assertions(output.clone(), table)?;
    let conditions: Vec<Expr> = table
        .expectations
        .iter()
        .map(|expectation| expectation_condition(&unchecked, table, expectation))
        .collect::<Result<_>>()?;
    let counts: Vec<Expr> = conditions
        .iter()
        .zip(table.expectations)
        .map(|(condition, expectation)| {
            Ok(
                sum(when(condition.clone().is_false(), lit(1i64)).otherwise(lit(0i64))?)
                    .alias(expectation.name),
            )
        })
        .collect::<Result<_>>()?;
    let batches = match unchecked.clone().aggregate(vec![], counts)?.collect().await {
        Ok(batches) => batches,
        Err(error) => return Err(expectations_failed(table, &unchecked, &conditions, error).await),
    };
    let mut findings = Vec::new();
    for (index, expectation) in table.expectations.iter().enumerate() {
        let failing = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .map_or(0, |b| count_of(b.column(index).as_ref()));
        if failing > 0 {
            findings.push((
                Finding {
                    table: qualified.clone(),
                    column: Some(expectation.name.to_owned()),
                    check: "expectation",
                    value: Some(expectation.expr.to_owned()),
                    failing_rows: failing,
                },
                expectation.on_fail,
            ));
        }
    }
    let drops: Vec<&crate::table::Expectation> = table
        .expectations
        .iter()
        .filter(|e| e.on_fail == OnFail::Drop)
        .collect();
    let output = if drops.is_empty() {
        output
    } else {
        // Filtered above a fence: pushed down into the pipeline's own filters, a condition that
        // fails on a value (a CAST) would meet the rows they remove, which the count above
        // never saw.
        let fenced = crate::frame::fenced(unchecked, crate::backend::qualifier(table))?;
        let kept = drops
            .iter()
            .map(|expectation| {
                expectation_condition(&fenced, table, expectation).map(Expr::is_not_false)
            })
            .reduce(|a, b| Ok(a?.and(b?)))
            .unwrap_or(Ok(lit(true)))?;
        crate::frame::conform_output(fenced.filter(kept)?, table)?
    };
    Ok((output, findings))
}

/// An error counting `table`'s expectations (`conditions`, over `output`), blamed on what fails:
/// the output itself (a value the pipeline's own plan cannot convert: no expectation named),
/// or the expectations whose condition fails on a value when counted alone (a cast that does
/// not convert), with the hint of their TRY_ form. Its kind kept (a value's error is not
/// retried, a read's may be). Finding out runs the output again, and once more per expectation
/// when there are several: only on this failure.
async fn expectations_failed(
    table: &'static TableDef,
    output: &DataFrame,
    conditions: &[Expr],
    error: datafusion::error::DataFusionError,
) -> Error {
    let qualified = table.qualified_name();
    let context = |label: String, error| {
        Error::DataFusion(datafusion::error::DataFusionError::Context(
            label,
            Box::new(error),
        ))
    };
    // A read that failed (a missing file, a full disk) is not the expectations' doing: no hint.
    // Nor is a stored NULL an input's declaration forbids, which says what it is by itself.
    if !crate::error::is_deterministic(&error) || error.to_string().contains("is declared NOT NULL")
    {
        return context(
            format!("{qualified}: running the output to check it"),
            error,
        );
    }
    if let Err(own) = crate::frame::drain(output.clone()).await
        && crate::error::is_deterministic(&own)
    {
        return context(
            format!(
                "{qualified}: running the output (the pipeline's plan, before its expectations)"
            ),
            own,
        );
    }
    let mut failing = Vec::new();
    // Each counted alone, when there are several to tell apart (each count runs the output).
    if conditions.len() > 1 {
        for (condition, expectation) in conditions.iter().zip(table.expectations) {
            // Only a value's error blames it (a read failing now says nothing of the condition).
            let alone = count_false(output.clone(), condition.clone()).await;
            if alone.is_err_and(|e| crate::error::is_deterministic(&e)) {
                failing.push(format!("`{}`", expectation.name));
            }
        }
    }
    if failing.is_empty() {
        // The only one, or none fails alone (the plan gives other values each time?): all of
        // them, then.
        failing = table
            .expectations
            .iter()
            .map(|e| format!("`{}`", e.name))
            .collect();
    }
    context(
        format!(
            "{qualified}: running the output to count its expectation(s) {} (if a condition \
             fails on a value, as CAST does, its TRY_ form gives NULL instead)",
            failing.join(", ")
        ),
        error,
    )
}

/// Counts the rows of `output` for which `condition` is false (whether that fails is what
/// matters).
async fn count_false(output: DataFrame, condition: Expr) -> datafusion::error::Result<()> {
    let flag = when(condition.is_false(), lit(1i64)).otherwise(lit(0i64))?;
    output.aggregate(vec![], vec![sum(flag)])?.collect().await?;
    Ok(())
}

/// `expectation`'s condition over `output` (a pipeline's output for `table`): a boolean
/// expression of its columns, without aggregates or window functions; an error naming the
/// expectation otherwise.
pub(crate) fn expectation_condition(
    output: &DataFrame,
    table: &'static TableDef,
    expectation: &crate::table::Expectation,
) -> Result<Expr> {
    row_condition(
        output,
        table,
        "expectation",
        expectation.name,
        expectation.expr,
    )
}

/// The CHECK constraint `check` of `table` as a condition over `output`'s columns: refused as
/// an expectation's is, so that the plan check catches a typo before the first write does.
/// Read as delta-rs reads it: names as written (`QTY` is not `qty`), not lowercased as SQL's.
pub(crate) fn check_condition(
    output: &DataFrame,
    table: &'static TableDef,
    check: &crate::table::CheckConstraint,
) -> Result<Expr> {
    let (mut state, plan) = output.clone().into_parts();
    state
        .config_mut()
        .options_mut()
        .sql_parser
        .enable_ident_normalization = false;
    let output = DataFrame::new(state, plan);
    row_condition(&output, table, "check", check.name, check.expr)
}

/// How many rows of `rows` fail each of `checks`, in their order, as Delta evaluates a CHECK (a
/// NULL fails), counted in one pass over `rows`; a check whose expression cannot be evaluated
/// there gives its error instead.
pub(crate) async fn rows_failing_checks(
    rows: &DataFrame,
    table: &'static TableDef,
    checks: &[&crate::table::CheckConstraint],
) -> Result<Vec<Result<u64>>> {
    let mut counted = Vec::new();
    let mut sums = Vec::new();
    let conditions: Vec<Result<Expr>> = checks
        .iter()
        .map(|check| check_condition(rows, table, check))
        .collect();
    for condition in conditions.iter().flatten() {
        let failing = when(condition.clone().is_not_true(), lit(1i64)).otherwise(lit(0i64))?;
        sums.push(sum(failing).alias(format!("failing_{}", sums.len())));
    }
    if !sums.is_empty() {
        let batches = match rows.clone().aggregate(vec![], sums)?.collect().await {
            Ok(batches) => batches,
            // A value one of them fails on (a division by zero, a cast): each counted alone,
            // so that the error names its check and the others still count. A read that
            // failed (a store's error), or rows that fail without any check, are no check's.
            Err(error)
                if crate::error::is_deterministic(&error)
                    && crate::frame::drain(rows.clone()).await.is_ok() =>
            {
                return each_alone(rows, table, checks, conditions).await;
            }
            Err(error) => return Err(error.into()),
        };
        let row = batches.iter().find(|b| b.num_rows() > 0).ok_or_else(|| {
            Error::msg(format!(
                "{}: counting the rows failing its CHECK constraints returned no row",
                table.qualified_name()
            ))
        })?;
        counted = row
            .columns()
            .iter()
            .map(|column| count_of(column.as_ref()) as u64)
            .collect();
    }
    let mut counts = counted.into_iter();
    Ok(conditions
        .into_iter()
        .map(|condition| condition.map(|_| counts.next().unwrap_or_default()))
        .collect())
}

/// [`rows_failing_checks`], each check's `condition` counted in a pass of its own: one that
/// fails on a stored value gives an error naming it.
async fn each_alone(
    rows: &DataFrame,
    table: &'static TableDef,
    checks: &[&crate::table::CheckConstraint],
    conditions: Vec<Result<Expr>>,
) -> Result<Vec<Result<u64>>> {
    let mut counts = Vec::with_capacity(checks.len());
    for (check, condition) in checks.iter().zip(conditions) {
        let Ok(condition) = condition else {
            counts.push(condition.map(|_| 0));
            continue;
        };
        let counted = match rows.clone().filter(condition.is_not_true())?.count().await {
            Ok(failing) => Ok(failing as u64),
            // Only a value's error blames the check; another fails the count.
            Err(error) if !crate::error::is_deterministic(&error) => return Err(error.into()),
            Err(error) => Err(Error::schema(
                table.qualified_name(),
                format!(
                    "check `{}`: `{}` fails on a stored value: {error}",
                    check.name, check.expr
                ),
            )),
        };
        counts.push(counted);
    }
    Ok(counts)
}

/// `expr`, the `kind` named `name` of `table`, as a row condition over `output`'s columns.
fn row_condition(
    output: &DataFrame,
    table: &'static TableDef,
    kind: &str,
    name: &str,
    expr: &str,
) -> Result<Expr> {
    use datafusion::logical_expr::ExprSchemable as _;
    use datafusion::logical_expr::utils::{find_aggregate_exprs, find_window_exprs};
    let refuse = |why: String| {
        Error::schema(
            table.qualified_name(),
            format!("{kind} `{name}`: `{expr}` {why}"),
        )
    };
    let condition = output
        .parse_sql_expr(expr)
        .map_err(|e| refuse(format!("is not a condition over the table's columns: {e}")))?;
    let condition_ref = std::slice::from_ref(&condition);
    if !find_aggregate_exprs(condition_ref).is_empty()
        || !find_window_exprs(condition_ref).is_empty()
    {
        return Err(refuse(format!(
            "uses an aggregate or window function: a {kind} is checked row by row"
        )));
    }
    match condition.get_type(output.schema()) {
        Ok(arrow::datatypes::DataType::Boolean) => Ok(condition),
        Ok(other) => Err(refuse(format!(
            "is {other}, not a condition (true or false)"
        ))),
        Err(e) => Err(refuse(format!("cannot be typed: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;

    /// Orders with expectations that are not row conditions.
    #[derive(Table)]
    #[table(
        schema = "test",
        name = "expecting",
        expect(name = "a_number", expr = "quantity + 1"),
        expect(name = "an_aggregate", expr = "sum(quantity) > 0"),
        expect(name = "a_typo", expr = "quantiy > 0"),
        expect(name = "fine", expr = "quantity > 0 OR quantity IS NULL")
    )]
    struct Expecting {
        quantity: Option<i64>,
    }

    #[tokio::test]
    async fn an_expectation_must_be_a_row_condition_over_the_columns() {
        let session = datafusion::prelude::SessionContext::new();
        let output = session
            .sql("SELECT CAST(1 AS BIGINT) AS quantity")
            .await
            .expect("output");
        let table = Expecting::DEF;
        let errors: Vec<String> = table
            .expectations
            .iter()
            .map(|e| match super::expectation_condition(&output, table, e) {
                Ok(_) => "ok".to_owned(),
                Err(error) => error.to_string(),
            })
            .collect();
        assert!(
            errors[0].contains("expectation `a_number`: `quantity + 1` is Int64, not a condition"),
            "{errors:?}"
        );
        assert!(
            errors[1].contains("uses an aggregate or window function"),
            "{errors:?}"
        );
        assert!(
            errors[2].contains("is not a condition over the table's columns"),
            "{errors:?}"
        );
        assert_eq!(errors[3], "ok");
    }
}
