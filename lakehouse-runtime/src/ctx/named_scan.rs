//! A scan of landing files whose errors name the files: a value the reader cannot decode (an
//! NDJSON `"abc"` for a number, a corrupt Parquet page) fails while the plan runs, with the
//! reader's message alone, which names neither the file nor the table.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use crate::frame::pass_through::{ErrorLabel, PassThroughExec, named};

/// `inner` (a listing of files) whose scan's errors say `label` first.
#[derive(Debug)]
pub(crate) struct NamedScan {
    inner: Arc<dyn TableProvider>,
    label: Arc<ErrorLabel>,
}

impl NamedScan {
    /// `inner`, its errors preceded by `label` (see [`ErrorLabel`]).
    pub(crate) fn new(inner: Arc<dyn TableProvider>, label: ErrorLabel) -> NamedScan {
        NamedScan {
            inner,
            label: Arc::new(label),
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
        Ok(Arc::new(PassThroughExec::named(scan, self.label.clone())))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }
}
