//! The whole-graph plan check: every pipeline's DataFusion plan is built against empty tables of
//! its declared inputs and its output schema compared with its declared table. No data is read.
//! This catches what types cannot: SQL text, computed expression types, expectations and CHECK
//! constraints over missing columns. A NOT NULL column filled from an expression DataFusion types as nullable is
//! not an error here (a filter it cannot see through may exclude the NULLs): the write asserts it
//! on the data, and fails naming the column.

use std::sync::Arc;

use arrow::array::RecordBatch;

use crate::ctx::{Ctx, RunInfo, Settings};
use crate::error::{Error, Result};
use crate::frame::{Inputs, Strictness, conform};
use crate::graph::{PipelineDescriptor, Registry};
use crate::table::{ColumnDef, LogicalType, TableDef, Timestamp};

/// A pipeline whose plan does not match its declaration.
#[derive(Debug)]
pub struct PlanFailure {
    /// The pipeline.
    pub pipeline: &'static str,
    /// What is wrong.
    pub error: Error,
}

/// Every failure of a plan check.
#[derive(Debug)]
pub struct PlanFailures(pub Vec<PlanFailure>);

impl std::fmt::Display for PlanFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} pipeline plan(s) do not match their tables:",
            self.0.len()
        )?;
        for failure in &self.0 {
            let error = failure.error.to_string();
            let error = crate::error::without_pipeline(&error, failure.pipeline);
            writeln!(f, "- pipeline `{}`: {error}", failure.pipeline)?;
        }
        Ok(())
    }
}

impl std::error::Error for PlanFailures {}

/// How long one pipeline's plan may take in the check (planning reads nothing: it takes
/// milliseconds), whatever the pipeline's own time limit...
const PLANNING_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// ... and at least this long, however short its own (a loaded machine plans slowly).
const PLANNING_TIME_FLOOR: std::time::Duration = std::time::Duration::from_secs(10);

/// Builds every pipeline's plan on empty inputs and checks its output schema; all failures are
/// returned together.
pub async fn check_plans(registry: &Registry) -> Result<(), PlanFailures> {
    check_plans_with(registry, &Settings::new()).await
}

/// [`check_plans`] with `settings` (what `--set` gives a run): a pipeline that requires a
/// setting, or plans by one, is checked as it would run.
pub async fn check_plans_with(
    registry: &Registry,
    settings: &Settings,
) -> Result<(), PlanFailures> {
    let mut failures = Vec::new();
    for pipeline in registry.pipelines() {
        if let Err(error) = check_plan_with(pipeline, settings).await {
            failures.push(PlanFailure {
                pipeline: pipeline.name,
                error,
            });
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(PlanFailures(failures))
    }
}

/// Builds one pipeline's plan on empty inputs and checks its output schema.
pub async fn check_plan(pipeline: &'static PipelineDescriptor) -> Result<()> {
    check_plan_with(pipeline, &Settings::new()).await
}

/// [`check_plan`] with `settings`.
pub async fn check_plan_with(
    pipeline: &'static PipelineDescriptor,
    settings: &Settings,
) -> Result<()> {
    // Configured as a run's session (its optimizer rules included), on a default runtime.
    let session = crate::store::session_on(Arc::new(
        datafusion::execution::runtime_env::RuntimeEnv::default(),
    ));
    let run = Arc::new(RunInfo {
        run_id: "plan-check".to_owned(),
        sequence: 0,
        run_at: Timestamp(0),
    });
    let cx = Ctx::new(
        pipeline.name,
        run,
        Arc::new(settings.clone()),
        session.clone(),
        true,
    )
    .with_descriptor(pipeline);
    let mut frames = Vec::with_capacity(pipeline.inputs.len());
    for input in pipeline.inputs {
        let df = session.read_batch(RecordBatch::new_empty(input.table.arrow_schema()))?;
        let columns: Vec<&ColumnDef> = input.table.columns.iter().collect();
        let df = conform(df, input.table, &columns, Strictness::Exact)?;
        cx.register_input(input.table, df.clone())?;
        frames.push(df);
    }
    let inputs = Inputs::new(frames);
    // A panic in pipeline code is a failure of that pipeline's check, not of the whole check;
    // so is a plan that does not come (a source calling its service in a dry run, say): within
    // the pipeline's own time limit, or [`PLANNING_TIME_LIMIT`].
    let limit = pipeline
        .timeout_ms
        .map_or(PLANNING_TIME_LIMIT, std::time::Duration::from_millis)
        .clamp(PLANNING_TIME_FLOOR, PLANNING_TIME_LIMIT);
    let task = tokio::spawn(async move { (pipeline.run)(&cx, inputs).await });
    let abort = task.abort_handle();
    let output = match tokio::time::timeout(limit, task).await {
        Ok(joined) => joined
            .map_err(|e| Error::msg(format!("the pipeline panicked while planning: {e}")))??,
        Err(_) => {
            abort.abort();
            return Err(Error::Refused(format!(
                "planning took longer than {}: does the pipeline call a service or read files \
                 in a dry run? (guard it with `cx.is_dry_run()`)",
                humantime::format_duration(limit)
            )));
        }
    };
    // The table's expectations must be conditions over its columns.
    for expectation in pipeline.output.expectations {
        crate::quality::expectation_condition(&output.df, pipeline.output, expectation)?;
    }
    // And its CHECK constraints, which Delta evaluates on every write.
    for check in pipeline.output.checks {
        crate::quality::check_condition(&output.df, pipeline.output, check)?;
    }
    // Planned physically too: some errors only show there (inputs a union cannot line up,
    // operators that refuse their arguments), and would fail every run.
    let physical = output.df.clone().create_physical_plan().await?;
    drop(physical);
    let plan = output.df.into_optimized_plan()?;
    compare_schema(pipeline.output, plan.schema().as_arrow())
}

/// The plan's output must have the table's data columns, in order, with the declared types; a
/// NOT NULL column must be non-nullable in the plan.
fn compare_schema(table: &'static TableDef, schema: &arrow::datatypes::Schema) -> Result<()> {
    let qualified = table.qualified_name();
    let declared: Vec<&ColumnDef> = table.data_columns().collect();
    let produced: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let names: Vec<&str> = declared.iter().map(|c| c.name).collect();
    if produced != names {
        return Err(Error::schema(
            qualified,
            format!(
                "the plan produces columns [{}], the table declares [{}]",
                produced.join(", "),
                names.join(", ")
            ),
        ));
    }
    for (column, field) in declared.iter().zip(schema.fields()) {
        if LogicalType::from_arrow(field.data_type()) != Some(column.data_type) {
            return Err(Error::schema(
                &qualified,
                format!(
                    "column `{}`: the plan produces {}, the table declares {}",
                    column.name,
                    field.data_type(),
                    column.data_type
                ),
            ));
        }
        if field.is_nullable() && !column.nullable {
            return Err(Error::schema(
                &qualified,
                format!(
                    "column `{}` is NOT NULL but the plan may produce NULLs",
                    column.name
                ),
            ));
        }
    }
    Ok(())
}
