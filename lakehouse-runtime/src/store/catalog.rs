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

    /// Runs a read-only SQL query over `tables`. DDL, DML, `COPY` and `SET` are rejected. Only
    /// the tables the query names are loaded (all of them for `information_schema` queries), so
    /// one unreadable table does not fail queries of the others; a name that is none of `tables`
    /// is an error with the closest one.
    pub async fn sql(&self, tables: &[&'static TableDef], query: &str) -> Result<DataFrame> {
        let named = named_tables(&self.session(), tables, query)?;
        let session = self.catalog(named.as_deref().unwrap_or(tables)).await?;
        session
            .sql_with_options(query, read_only())
            .await
            .map_err(|e| Error::msg(format!("query failed: {e}")))
    }
}

/// The tables among `tables` that `query` reads; `None` when that cannot be told from the text
/// alone (it does not parse, or is not a query, which running it then reports; or it reads
/// `information_schema`).
fn named_tables(
    session: &SessionContext,
    tables: &[&'static TableDef],
    query: &str,
) -> Result<Option<Vec<&'static TableDef>>> {
    let state = session.state();
    let dialect = state.config().options().sql_parser.dialect;
    let Ok(statement) = state.sql_to_statement(query, &dialect) else {
        return Ok(None);
    };
    // Anything but a query is refused as such (read-only), whatever it names.
    let is_query = matches!(
        &statement,
        datafusion::sql::parser::Statement::Statement(inner)
            if matches!(**inner, datafusion::sql::sqlparser::ast::Statement::Query(_))
    );
    if !is_query {
        return Ok(None);
    }
    let Ok(references) = state.resolve_table_references(&statement) else {
        return Ok(None);
    };
    let mut named: Vec<&'static TableDef> = Vec::new();
    for reference in &references {
        if reference.schema() == Some("information_schema") {
            return Ok(None);
        }
        // An unqualified name is no table of ours: a table function (`generate_series`), say,
        // which the query itself resolves.
        let Some(schema) = reference.schema() else {
            return Ok(None);
        };
        let found = tables.iter().copied().find(|t| {
            reference.table() == t.name
                && schema == t.schema
                && reference.catalog().is_none_or(|c| c == "datafusion")
        });
        match found {
            Some(table) if !named.contains(&table) => named.push(table),
            Some(_) => {}
            None => {
                let known: Vec<String> = tables.iter().map(|t| t.qualified_name()).collect();
                let name = format!("{schema}.{}", reference.table());
                let hint = crate::similar::closest(&name, known.iter().map(String::as_str))
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_else(|| "; tables are named `schema.table`".to_owned());
                return Err(Error::msg(format!("query failed: no table `{name}`{hint}")));
            }
        }
    }
    Ok(Some(named))
}
