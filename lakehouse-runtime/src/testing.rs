//! Unit tests of pipelines: call the pipeline function itself on frames built from Rust rows,
//! and read its output back as Rust rows. No warehouse on disk, no upstream pipelines.
//!
//! ```ignore
//! use lakehouse_runtime::testing::{TestContext, rows};
//!
//! #[tokio::test]
//! async fn one_row_per_category() {
//!     let test = TestContext::new("dim_category").expect("context");
//!     let sales = test.frame::<SilverErpSales, _>(&[sale("toys"), sale("toys")]).expect("sales");
//!     let output = dim_category(sales, test.ctx()).await.expect("pipeline");
//!     let categories: Vec<DimCategory> = rows(output).await.expect("rows");
//!     assert_eq!(categories.len(), 1);
//! }
//! ```

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use datafusion::execution::context::SessionContext;

use crate::ctx::{Ctx, RunInfo, Settings};
use crate::error::{Error, Result};
use crate::frame::{Changes, Frame};
use crate::store::Warehouse;
use crate::table::{Table, Timestamp};

/// The logical time of a test run unless [`TestContext::with_run_at`] sets one:
/// 2026-01-01T00:00:00Z.
pub const TEST_RUN_AT: Timestamp = Timestamp(1_767_225_600_000_000);

/// A pipeline's context for a unit test: the run's time and settings, and a session configured
/// as the orchestrator's (the same functions, `surrogate_key` included), over an in-memory
/// warehouse. Frames made here of the pipeline's parameters' tables are registered for [`Ctx::sql`]
/// under their table's name, as a run registers its inputs (see [`TestContext::frame`]).
pub struct TestContext {
    pipeline: &'static str,
    /// The pipeline's registration; `None` for [`TestContext::unregistered`].
    descriptor: Option<&'static crate::graph::PipelineDescriptor>,
    /// Keeps the in-memory warehouse the session's store belongs to.
    _warehouse: Warehouse,
    session: SessionContext,
    run_at: Timestamp,
    settings: Settings,
    cx: Ctx,
}

impl TestContext {
    /// A context for the registered pipeline `pipeline` at [`TEST_RUN_AT`], without settings.
    /// An error when no pipeline (or more than one) has that name: its declaration says which
    /// frames its SQL may read and what it may do, and a misspelt name would skip those checks.
    pub fn new(pipeline: &'static str) -> Result<TestContext> {
        let mut named = inventory::iter::<crate::graph::PipelineDescriptor>
            .into_iter()
            .filter(|p| p.name == pipeline);
        match (named.next(), named.next()) {
            (Some(only), None) => TestContext::build(pipeline, Some(only)),
            (Some(first), Some(second)) => Err(Error::Refused(format!(
                "pipeline `{pipeline}` is registered twice, in `{}` and `{}`: rename one (a \
                 run refuses them too)",
                first.module_path, second.module_path
            ))),
            (None, _) => {
                let names = inventory::iter::<crate::graph::PipelineDescriptor>
                    .into_iter()
                    .map(|p| p.name);
                let hint = crate::similar::closest(pipeline, names)
                    .map(|name| format!(" (did you mean `{name}`?)"))
                    .unwrap_or_default();
                Err(Error::Refused(format!(
                    "pipeline `{pipeline}`: no pipeline of that name is registered{hint}; a test \
                     context takes the name of the pipeline under test, whose declaration its \
                     frames and checks follow (`TestContext::unregistered` makes one for no \
                     pipeline)"
                )))
            }
        }
    }

    /// A context named `name` that stands for no registered pipeline (a helper's test): SQL
    /// reads every frame made here, of any table, and what needs a pipeline's declaration
    /// (reading new files) is refused.
    pub fn unregistered(name: &'static str) -> Result<TestContext> {
        TestContext::build(name, None)
    }

    fn build(
        pipeline: &'static str,
        descriptor: Option<&'static crate::graph::PipelineDescriptor>,
    ) -> Result<TestContext> {
        let warehouse = Warehouse::open("memory:///")?;
        let session = warehouse.session();
        let settings = Settings::new();
        let cx = context(pipeline, &session, TEST_RUN_AT, &settings);
        Ok(TestContext {
            pipeline,
            descriptor,
            _warehouse: warehouse,
            session,
            run_at: TEST_RUN_AT,
            settings,
            cx,
        })
    }

    /// The same context at logical time `run_at` (what `cx.run_at()` returns). Frames made
    /// before keep the time they were made at (an SCD2 frame's `valid_from`): set it first.
    pub fn with_run_at(mut self, run_at: Timestamp) -> TestContext {
        self.run_at = run_at;
        self.rebuilt()
    }

    /// The same context with setting `key` = `value` (as `--set key=value`).
    pub fn with_setting(mut self, key: &str, value: &str) -> TestContext {
        self.settings.set(key, value);
        self.rebuilt()
    }

    /// The context to pass to the pipeline.
    pub fn ctx(&self) -> &Ctx {
        &self.cx
    }

    /// A frame of table `T` holding `rows` (any `Serialize` struct whose fields are `T`'s data
    /// columns, often `T` itself; a nullable column it lacks is NULL, a NOT NULL one is an
    /// error), the pipeline's `Frame<T>` parameter. The pipeline's SQL reads it as
    /// `schema.table` as a run would: when `T` is a parameter, and its last parameter of `T` is
    /// a `Frame` (of a pipeline taking `Changes<T>` then `Frame<T>`, SQL reads the whole table),
    /// the latest frame made; a table it only lists in `depends_on`, or its output, is not
    /// readable (a test must not pass where the run fails). An SCD2 table's rows are current
    /// versions opened at the context's `run_at` (its `valid_from`, `valid_to` NULL,
    /// `is_current` true), as a pipeline reads them.
    pub fn frame<T: Table, R: Serialize>(&self, rows: &[R]) -> Result<Frame<T>> {
        self.input(rows, false)
    }

    /// `rows` as the new rows of an incremental input (`Changes<T>`), readable by SQL as
    /// [`TestContext::frame`] says.
    pub fn changes<T: Table, R: Serialize>(&self, rows: &[R]) -> Result<Changes<T>> {
        Ok(Changes::new(self.input::<T, R>(rows, true)?))
    }

    /// The input frame of `T` holding `rows`, registered for SQL when a run's last parameter
    /// of `T` is of its kind (`incremental` for `Changes<T>`).
    fn input<T: Table, R: Serialize>(&self, rows: &[R], incremental: bool) -> Result<Frame<T>> {
        let frame = self.cx.frame_from_rows::<T, R>(rows)?;
        let frame = self.with_system_columns(frame)?;
        // A run registers its inputs in parameter order: the last of a table is the one read.
        let read_by_sql = self.descriptor.is_none_or(|pipeline| {
            pipeline
                .inputs
                .iter()
                .rfind(|input| input.table.qualified_name() == T::DEF.qualified_name())
                .is_some_and(|last| last.incremental == incremental)
        });
        if read_by_sql {
            self.cx.register_input(T::DEF, frame.dataframe().clone())?;
        }
        Ok(frame)
    }

    /// `frame` with its table's system columns (an SCD2 table's validity), as a read gives them.
    fn with_system_columns<T: Table>(&self, frame: Frame<T>) -> Result<Frame<T>> {
        use crate::table::ColumnRole;
        use datafusion::prelude::{cast, col, lit};
        let table = T::DEF;
        if table.columns.iter().all(|c| c.role == ColumnRole::Data) {
            return Ok(frame);
        }
        let columns: Vec<datafusion::prelude::Expr> = table
            .columns
            .iter()
            .map(|c| {
                let value = match (c.role, c.name) {
                    (ColumnRole::Data, name) => col(name),
                    (ColumnRole::System, "valid_from") => self.run_at.lit(),
                    (ColumnRole::System, "is_current") => lit(true),
                    (ColumnRole::System, _) => cast(
                        lit(datafusion::scalar::ScalarValue::Null),
                        c.data_type.arrow_type(),
                    ),
                };
                value.alias(c.name)
            })
            .collect();
        let df = frame.into_dataframe().select(columns)?;
        let all: Vec<&crate::table::ColumnDef> = table.columns.iter().collect();
        Ok(Frame::conformed(crate::frame::conform(
            df,
            table,
            &all,
            crate::frame::Strictness::Read,
        )?))
    }

    /// The table's expectations applied to `output` as a run applies them before its write:
    /// the rows a `drop` expectation keeps, and each expectation that fails on some row, with
    /// what it does (`warn` counts, `drop` removes, `fail` fails the write). NOT NULL, key and
    /// foreign-key checks read the warehouse at the write: an end-to-end test sees those.
    ///
    /// ```ignore
    /// let (kept, failed) = test.expectations(output).await?;
    /// assert_eq!(failed[0].0.check, "expectation");
    /// ```
    pub async fn expectations<T: Table>(
        &self,
        output: Frame<T>,
    ) -> Result<(
        Frame<T>,
        Vec<(crate::quality::Finding, crate::table::OnFail)>,
    )> {
        let (kept, findings) =
            crate::quality::apply_expectations(T::DEF, output.into_dataframe()).await?;
        Ok((Frame::from_dataframe(kept)?, findings))
    }

    /// This context rebuilt from its parts (after a change of time or settings), with the
    /// records rejected so far.
    fn rebuilt(mut self) -> TestContext {
        let rejects = self.cx.take_rejects();
        self.cx = context(self.pipeline, &self.session, self.run_at, &self.settings);
        self.cx.reject(rejects);
        self
    }
}

/// The context of `pipeline` at `run_at` in `session` (frames made before stay registered).
fn context(
    pipeline: &'static str,
    session: &SessionContext,
    run_at: Timestamp,
    settings: &Settings,
) -> Ctx {
    let run = RunInfo {
        run_id: "test".to_owned(),
        sequence: 1,
        run_at,
    };
    Ctx::new(
        pipeline,
        Arc::new(run),
        Arc::new(settings.clone()),
        session.clone(),
        false,
    )
}

/// Every row of `frame` as an `R` (any `Deserialize` struct whose fields are the columns it
/// reads, often the table's struct itself), in the frame's order: sort the rows, or the plan, to
/// compare them.
/// A field of `R` that is no column of the frame is an error naming it, rows or none (an
/// `Option` field would read `None` on every row, a `#[serde(default)]` one its default).
pub async fn rows<R: DeserializeOwned, T: Table>(frame: Frame<T>) -> Result<Vec<R>> {
    let in_table = |e: Error| Error::msg(format!("table `{}`: {e}", T::DEF.qualified_name()));
    let schema = frame.dataframe().schema().as_arrow().clone();
    crate::frame::refuse_fields_without_column::<R>(&schema).map_err(in_table)?;
    let batches = frame.collect().await?;
    crate::frame::batches_to_rows(&batches).map_err(in_table)
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::{TestContext, rows};
    use crate::prelude::*;

    /// Exact values of every kind.
    #[derive(Table, Serialize, Deserialize, Debug, PartialEq)]
    #[table(schema = "test", name = "exact")]
    struct Exact {
        id: i64,
        amount: Decimal<38, 18>,
        day: Option<Date>,
        at: Timestamp,
    }

    #[tokio::test]
    async fn rows_come_back_exactly() {
        let test = TestContext::unregistered("exact").expect("context");
        let written = vec![Exact {
            id: 1,
            // 20 integer digits and 18 decimals: more than an f64 holds.
            amount: Decimal(12_345_678_901_234_567_890_123_456_789_012_345_678),
            day: Date::from_ymd(2024, 2, 29),
            at: Timestamp(1_767_225_600_123_456),
        }];
        let frame = test.frame::<Exact, _>(&written).expect("frame");
        let read: Vec<Exact> = rows(frame).await.expect("rows");
        assert_eq!(read, written);
    }

    #[tokio::test]
    async fn changes_have_the_frames_operations() {
        let test = TestContext::unregistered("exact").expect("context");
        let exact = |id| Exact {
            id,
            amount: Decimal(0),
            day: None,
            at: Timestamp(id),
        };
        let changes = || {
            test.changes::<Exact, _>(&[exact(1), exact(2), exact(3)])
                .expect("changes")
        };
        assert_eq!(changes().count().await.expect("count"), 3);
        let kept = changes()
            .filter(Exact::id.expr().gt(lit(1i64)))
            .expect("filter");
        assert_eq!(kept.count().await.expect("count"), 2);
        let newest = changes().latest_only(Exact::at).expect("latest");
        let newest: Vec<Exact> = rows(newest).await.expect("rows");
        assert_eq!(newest, [exact(3)]);
        let descending = changes()
            .sort(vec![Exact::id.expr().sort(false, false)])
            .expect("sorted");
        let ids: Vec<i64> = rows::<Exact, _>(descending)
            .await
            .expect("rows")
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, [3, 2, 1]);
        let both = changes()
            .union(test.frame::<Exact, _>(&[exact(4)]).expect("frame"))
            .expect("union");
        assert_eq!(both.count().await.expect("count"), 4);
        let batches = changes().collect().await.expect("batches");
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
    }

    #[tokio::test]
    async fn sql_reads_the_latest_frame_of_a_table_whatever_was_configured_after() {
        let test = TestContext::unregistered("exact").expect("context");
        let exact = |id| Exact {
            id,
            amount: Decimal(0),
            day: None,
            at: Timestamp(0),
        };
        test.frame::<Exact, _>(&[exact(1)]).expect("first frame");
        test.frame::<Exact, _>(&[exact(2), exact(3)])
            .expect("a second frame of the table");
        let test = test.with_setting("k", "v");
        let counted = test
            .ctx()
            .session()
            .sql("SELECT count(*) FROM test.exact")
            .await
            .expect("sql")
            .collect()
            .await
            .expect("rows");
        let count = counted[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .expect("a count")
            .value(0);
        assert_eq!(count, 2);
        assert_eq!(test.ctx().settings().get("k"), Some("v"));
    }
}
