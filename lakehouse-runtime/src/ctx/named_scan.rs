//! A scan of landing files whose errors name the files: a value the reader cannot decode (an
//! NDJSON `"abc"` for a number, a corrupt Parquet page) fails while the plan runs, with the
//! reader's message alone, which names neither the file nor the table.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::config::ConfigOptions;
use datafusion::common::stats::Statistics;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::CardinalityEffect;
use datafusion::physical_plan::filter_pushdown::{FilterDescription, FilterPushdownPhase};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildStats, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, StatisticsArgs,
};
use futures::TryStreamExt;

/// `inner` (a listing of files) whose scan's errors say `label` first.
#[derive(Debug)]
pub(crate) struct NamedScan {
    inner: Arc<dyn TableProvider>,
    label: Arc<str>,
}

impl NamedScan {
    /// `inner`, its errors preceded by `label` ("reading the NDJSON file `a.json` for bronze.x").
    pub(crate) fn new(inner: Arc<dyn TableProvider>, label: String) -> NamedScan {
        NamedScan {
            inner,
            label: label.into(),
        }
    }
}

#[async_trait]
impl TableProvider for NamedScan {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let scan = self
            .inner
            .scan(state, projection, filters, limit)
            .await
            .map_err(|e| named(&self.label, e))?;
        Ok(Arc::new(NamedErrorsExec {
            input: scan,
            label: self.label.clone(),
        }))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }
}

/// `error` with `label` before it (its kind kept: a value's error is still not retried).
fn named(label: &str, error: DataFusionError) -> DataFusionError {
    DataFusionError::Context(label.to_owned(), Box::new(error))
}

/// Its input, whose errors say `label` first. Otherwise transparent: statistics, filters,
/// limits, projections and repartitioning reach the scan as if it were not there (a small
/// file's exact row count makes its write one file).
#[derive(Debug)]
struct NamedErrorsExec {
    input: Arc<dyn ExecutionPlan>,
    label: Arc<str>,
}

impl NamedErrorsExec {
    /// `input` named as this one is.
    fn around(&self, input: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
        Arc::new(NamedErrorsExec {
            input,
            label: self.label.clone(),
        })
    }
}

impl DisplayAs for NamedErrorsExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "NamedErrorsExec")
    }
}

impl ExecutionPlan for NamedErrorsExec {
    fn name(&self) -> &str {
        "NamedErrorsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        Ok(input_stats
            .first()
            .cloned()
            .unwrap_or_else(|| Arc::new(Statistics::new_unknown(&self.schema()))))
    }

    fn supports_limit_pushdown(&self) -> bool {
        true
    }

    fn cardinality_effect(&self) -> CardinalityEffect {
        CardinalityEffect::Equal
    }

    fn repartitioned(
        &self,
        target_partitions: usize,
        config: &ConfigOptions,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        Ok(self
            .input
            .repartitioned(target_partitions, config)?
            .map(|input| self.around(input)))
    }

    fn try_swapping_with_projection(
        &self,
        projection: &ProjectionExec,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        // The projection over this node's input, as the input's own rule expects it.
        let over_input =
            ProjectionExec::try_new(projection.expr().iter().cloned(), self.input.clone())?;
        Ok(self
            .input
            .try_swapping_with_projection(&over_input)?
            .map(|input| self.around(input)))
    }

    fn gather_filters_for_pushdown(
        &self,
        _phase: FilterPushdownPhase,
        parent_filters: Vec<Arc<dyn PhysicalExpr>>,
        _config: &ConfigOptions,
    ) -> Result<FilterDescription> {
        FilterDescription::from_children(parent_filters, &self.children())
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(self.around(input)),
            _ => Err(DataFusionError::Internal(
                "NamedErrorsExec takes one input".to_owned(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let label = self.label.clone();
        let stream = self
            .input
            .execute(partition, context)
            .map_err(|e| named(&label, e))?;
        let schema = stream.schema();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            stream.map_err(move |e| named(&label, e)),
        )))
    }
}
