//! [`fenced`]: a DataFrame's rows read through a scan that no filter crosses, so that a filter
//! put above it is evaluated on the rows the plan below produced, and on no other.
//!
//! Without it, DataFusion moves a filter down to the filters of the plan below and ANDs them:
//! the logical optimizer unless the condition is volatile, and the physical `FilterPushdown`
//! rule even then (a filter its child cannot take is absorbed by the nearest `FilterExec`).
//! An AND evaluates both sides on every row of a batch, so a condition that fails on a value
//! (`CAST(code AS INT)` of `'AB1'`) then fails on a row the plan's own filter removes. A
//! logical extension node would do too, but delta-rs plans a merge's source with its own planner,
//! which knows none but its own: a table scan is planned by every planner.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::{TableType, provider_as_source};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::ExecutionPlan;

/// `df`'s rows, read through a scan no filter crosses (see the module), under the name
/// `table` (the output table's): a filter on the result sees exactly the rows `df` produces. Its
/// columns keep their names, types and nullability.
pub(crate) fn fenced(
    df: DataFrame,
    table: datafusion::common::TableReference,
) -> Result<DataFrame> {
    let (state, plan) = df.into_parts();
    let provider = Arc::new(FencedPlan {
        schema: Arc::new(plan.schema().as_arrow().clone()),
        state: Arc::new(state.clone()),
        plan,
    });
    let scan = LogicalPlanBuilder::scan(table, provider_as_source(provider), None)?.build()?;
    Ok(DataFrame::new(state, scan))
}

/// A logical plan as a table: each scan plans it (with the session it was made in, whatever
/// planner plans the scan) under a fence
/// ([`PassThroughExec::fence`](super::pass_through::PassThroughExec::fence)).
struct FencedPlan {
    schema: SchemaRef,
    state: Arc<SessionState>,
    plan: LogicalPlan,
}

impl fmt::Debug for FencedPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FencedPlan")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TableProvider for FencedPlan {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    // Filters are left to the plan above (the default: none is taken); a limit is applied there
    // too, the scan's being a hint.
    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // The columns asked for, projected in the plan below the fence: its inputs are then
        // read for those only (a projection moves no filter).
        let plan = match projection {
            None => self.plan.clone(),
            Some(indices) => {
                let columns = self.plan.schema().columns();
                let picked: Vec<Expr> = indices
                    .iter()
                    .map(|&i| {
                        columns.get(i).cloned().map(Expr::Column).ok_or_else(|| {
                            DataFusionError::Internal(format!("the fenced plan has no column {i}"))
                        })
                    })
                    .collect::<Result<_>>()?;
                LogicalPlanBuilder::from(self.plan.clone())
                    .project(picked)?
                    .build()?
            }
        };
        let plan = self.state.create_physical_plan(&plan).await?;
        Ok(Arc::new(super::pass_through::PassThroughExec::fence(plan)))
    }
}
