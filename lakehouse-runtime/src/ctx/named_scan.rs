//! A scan of landing files whose errors name the files: a value the reader cannot decode (an
//! NDJSON `"abc"` for a number, a corrupt Parquet page) fails while the plan runs, with the
//! reader's message alone, which names neither the file nor the table.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
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

/// Its input, whose errors say `label` first.
#[derive(Debug)]
struct NamedErrorsExec {
    input: Arc<dyn ExecutionPlan>,
    label: Arc<str>,
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
            (Some(input), true) => Ok(Arc::new(NamedErrorsExec {
                input,
                label: self.label.clone(),
            })),
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
