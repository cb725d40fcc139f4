//! [`PassThroughExec`]: its input unchanged, with what the runtime adds around a plan it does
//! not own: errors that name what was read (a scan of landing files), or a fence no filter
//! crosses (see [`super::fenced`]). Statistics, limits, projections and partitioning reach the
//! input as if it were not there (a small file's exact row count makes its write one file).

use std::fmt;
use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::stats::Statistics;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::CardinalityEffect;
use datafusion::physical_plan::filter_pushdown::{FilterDescription, FilterPushdownPhase};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildStats, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, StatisticsArgs,
};
use futures::TryStreamExt;

/// Its input, whose errors say `label` first (when given), and through which filters pass
/// unless it is a fence.
#[derive(Debug)]
pub(crate) struct PassThroughExec {
    input: Arc<dyn ExecutionPlan>,
    label: Option<Arc<ErrorLabel>>,
    fence: bool,
}

impl PassThroughExec {
    /// `input`, its errors preceded by `label` ("reading the NDJSON file `a.json` for bronze.x").
    pub(crate) fn named(input: Arc<dyn ExecutionPlan>, label: Arc<ErrorLabel>) -> PassThroughExec {
        PassThroughExec {
            input,
            label: Some(label),
            fence: false,
        }
    }

    /// `input`, which no filter above is pushed into.
    pub(crate) fn fence(input: Arc<dyn ExecutionPlan>) -> PassThroughExec {
        PassThroughExec {
            input,
            label: None,
            fence: true,
        }
    }

    /// `input` wrapped as this one is.
    fn around(&self, input: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
        Arc::new(PassThroughExec {
            input,
            label: self.label.clone(),
            fence: self.fence,
        })
    }
}

/// What an error of a scan is preceded by, unless it already names what was read.
#[derive(Debug)]
pub(crate) struct ErrorLabel {
    /// "reading the NDJSON file `a.json` for bronze.x".
    pub(crate) text: String,
    /// What was read, as the label says it ("the NDJSON file `a.json`"): an error already saying
    /// it (a cast's, pushed into the scan, names its files) is not told it twice.
    pub(crate) read: String,
}

/// `error` with `label` before it (its kind kept: a value's error is still not retried).
pub(crate) fn named(label: &ErrorLabel, error: DataFusionError) -> DataFusionError {
    if error.to_string().contains(&label.read) {
        return error;
    }
    DataFusionError::Context(label.text.clone(), Box::new(error))
}

impl DisplayAs for PassThroughExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.name())
    }
}

impl ExecutionPlan for PassThroughExec {
    fn name(&self) -> &str {
        if self.fence {
            "FenceExec"
        } else {
            "NamedErrorsExec"
        }
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

    // A projection moves no filter: below a fence too.
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
        if self.fence {
            Ok(FilterDescription::all_unsupported(
                &parent_filters,
                &self.children(),
            ))
        } else {
            FilterDescription::from_children(parent_filters, &self.children())
        }
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
            _ => Err(DataFusionError::Internal(format!(
                "{} takes one input",
                self.name()
            ))),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let Some(label) = self.label.clone() else {
            return self.input.execute(partition, context);
        };
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
