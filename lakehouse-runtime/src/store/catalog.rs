//! The SQL catalog: every table registered as `schema.table` in one session, queried read-only.

use std::sync::Arc;

use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::{SQLOptions, SessionContext};

use super::Warehouse;
use super::read::empty;
use crate::error::{Error, Result};
use crate::table::TableDef;

/// The options every user query runs with: no DDL, no DML (`INSERT`, `UPDATE`, `DELETE`, `COPY`),
/// no statements (`SET`, transactions).
fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Fails with a clear message if `query` is not a read-only query.
pub fn check_read_only(
    session: &SessionContext,
    plan: &datafusion::logical_expr::LogicalPlan,
) -> Result<()> {
    let _ = session;
    read_only()
        .verify_plan(plan)
        .map_err(|e| Error::msg(format!("only read-only queries are allowed ({e})")))
}

impl Warehouse {
    /// A session in which each of `tables` is registered as `schema.table` (an empty table if it
    /// was never written).
    pub async fn catalog(&self, tables: &[&'static TableDef]) -> Result<SessionContext> {
        let session = self.session();
        let catalog = session
            .catalog("datafusion")
            .ok_or_else(|| Error::msg("the session has no default catalog"))?;
        for table in tables {
            if catalog.schema(table.schema).is_none() {
                catalog.register_schema(table.schema, Arc::new(MemorySchemaProvider::new()))?;
            }
            let provider = match self.load(table).await? {
                Some(delta) => delta
                    .table_provider()
                    .with_session(super::session_state(&session))
                    .await
                    .map_err(|e| {
                        Error::msg(format!("registering {}: {e}", table.qualified_name()))
                    })?,
                None => empty(&session, table)?.into_view(),
            };
            session.register_table(TableReference::partial(table.schema, table.name), provider)?;
        }
        Ok(session)
    }

    /// Runs a read-only SQL query over `tables`. DDL, DML, `COPY` and `SET` are rejected.
    pub async fn sql(&self, tables: &[&'static TableDef], query: &str) -> Result<DataFrame> {
        let session = self.catalog(tables).await?;
        session
            .sql_with_options(query, read_only())
            .await
            .map_err(|e| Error::msg(format!("query failed: {e}")))
    }
}
