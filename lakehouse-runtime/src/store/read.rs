//! Reading tables as lazy DataFrames.

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SessionContext;

use super::{Warehouse, session_state};
use crate::error::{Error, Result};
use crate::frame::{Strictness, conform};
use crate::table::{ColumnDef, TableDef};

impl Warehouse {
    /// `table` as a lazy DataFrame conforming to its declared columns (all of them, system columns
    /// included). A table never written reads as empty. Drift between the declaration and the
    /// stored schema is an error naming the columns (see [`Warehouse::drift`]).
    pub async fn read(
        &self,
        session: &SessionContext,
        table: &'static TableDef,
    ) -> Result<DataFrame> {
        let df = match self.load(table).await? {
            Some(delta) => {
                let provider = delta
                    .table_provider()
                    .with_session(session_state(session))
                    .await
                    .map_err(|e| Error::msg(format!("reading {}: {e}", table.qualified_name())))?;
                session.read_table(provider)?
            }
            None => empty(session, table)?,
        };
        conform_all(df, table)
    }

    /// `table` as it was at `version` (time travel).
    pub async fn read_version(
        &self,
        session: &SessionContext,
        table: &'static TableDef,
        version: u64,
    ) -> Result<DataFrame> {
        let qualified = table.qualified_name();
        let Some(mut delta) = self.load(table).await? else {
            return Err(Error::msg(format!(
                "table {qualified} has no version {version}: it was never written"
            )));
        };
        delta
            .load_version(version)
            .await
            .map_err(|e| Error::delta(&qualified, e))?;
        let provider = delta
            .table_provider()
            .with_session(session_state(session))
            .await
            .map_err(|e| Error::msg(format!("reading {qualified} at version {version}: {e}")))?;
        conform_all(session.read_table(provider)?, table)
    }
}

/// An empty DataFrame with `table`'s stored schema.
pub(crate) fn empty(session: &SessionContext, table: &TableDef) -> Result<DataFrame> {
    let schema = table.arrow_schema();
    let provider = MemTable::try_new(schema.clone(), vec![vec![RecordBatch::new_empty(schema)]])?;
    Ok(session.read_table(Arc::new(provider))?)
}

fn conform_all(df: DataFrame, table: &'static TableDef) -> Result<DataFrame> {
    let columns: Vec<&ColumnDef> = table.columns.iter().collect();
    conform(df, table, &columns, Strictness::Read)
}
