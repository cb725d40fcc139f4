//! The SQL catalog: every table registered as `schema.table` in one session, queried read-only.

use std::sync::Arc;

use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::{SQLOptions, SessionContext};

use super::Warehouse;
use super::read::empty;
use crate::error::{Error, Result};
use crate::table::{TableDef, Timestamp};

/// The past state of a table a query reads instead of its latest ([`Warehouse::sql_as_of`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsOf {
    /// The table at this version.
    Version(u64),
    /// The table as it was at this time: its latest version committed by then.
    Time(Timestamp),
}

impl std::fmt::Display for AsOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AsOf::Version(version) => write!(f, "version {version}"),
            AsOf::Time(time) => write!(f, "{time}"),
        }
    }
}

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
        self.catalog_as_of(tables, &[]).await
    }

    /// [`Warehouse::catalog`], with the tables of `as_of` at their past states.
    async fn catalog_as_of(
        &self,
        tables: &[&'static TableDef],
        as_of: &[(&'static TableDef, AsOf)],
    ) -> Result<SessionContext> {
        let session = self.session();
        let catalog = session
            .catalog("datafusion")
            .ok_or_else(|| Error::msg("the session has no default catalog"))?;
        for table in tables {
            if catalog.schema(table.schema).is_none() {
                catalog.register_schema(table.schema, Arc::new(MemorySchemaProvider::new()))?;
            }
            let past = as_of.iter().find(|(t, _)| std::ptr::eq(*t, *table));
            let loaded = match (self.load(table).await?, past) {
                (Some(mut delta), Some((_, when))) => {
                    let latest = delta.version().unwrap_or_default();
                    let version = match when {
                        AsOf::Version(version) if *version > latest => {
                            return Err(Error::msg(format!(
                                "{} has no version {version}: its latest is {latest} (see \
                                 `orchestrate history {}`)",
                                table.qualified_name(),
                                table.qualified_name()
                            )));
                        }
                        AsOf::Version(version) => *version,
                        // By the commits' own times, which `history` shows (delta-rs's
                        // `load_with_datetime` goes by the log files' modification times).
                        AsOf::Time(time) => self.version_at(&delta, table, *time).await?,
                    };
                    super::history::load_version(&mut delta, table, version)
                        .await
                        .map_err(|e| {
                            let text = e.to_string();
                            let see = if text.contains("orchestrate history") {
                                String::new()
                            } else {
                                format!(" (see `orchestrate history {}`)", table.qualified_name())
                            };
                            Error::msg(format!(
                                "reading {} as of {when}: {text}{see}",
                                table.qualified_name()
                            ))
                        })?;
                    Some(delta)
                }
                (None, Some((_, when))) => {
                    return Err(Error::msg(format!(
                        "{} has no {when}: it was never written",
                        table.qualified_name()
                    )));
                }
                (loaded, None) => loaded,
            };
            let provider = match loaded {
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
        self.sql_as_of(tables, query, &[]).await
    }

    /// [`Warehouse::sql`], reading the tables of `as_of` as they were at a version or time
    /// (Delta time travel); each must be one the query reads.
    pub async fn sql_as_of(
        &self,
        tables: &[&'static TableDef],
        query: &str,
        as_of: &[(&'static TableDef, AsOf)],
    ) -> Result<DataFrame> {
        let named = named_tables(&self.session(), tables, query)?;
        if let Some(named) = &named
            && let Some((unread, _)) = as_of
                .iter()
                .find(|(table, _)| !named.iter().any(|n| std::ptr::eq(*n, *table)))
        {
            return Err(Error::msg(format!(
                "the query does not read {}, which `as of` names",
                unread.qualified_name()
            )));
        }
        let session = self
            .catalog_as_of(named.as_deref().unwrap_or(tables), as_of)
            .await?;
        session
            .sql_with_options(query, read_only())
            .await
            .map_err(|e| {
                let text = e.to_string();
                let hint = unknown_table_hint(&text, tables).unwrap_or_default();
                Error::msg(format!("query failed: {text}{hint}"))
            })
    }
}

/// For DataFusion's "table 'datafusion.public.fact_sale' not found" (an unqualified name that is
/// none of ours, nor a table function's): the closest of `tables`, by its name.
fn unknown_table_hint(error: &str, tables: &[&'static TableDef]) -> Option<String> {
    let name = error
        .split_once("table 'datafusion.public.")?
        .1
        .split_once("' not found")?
        .0;
    let close = crate::similar::closest(name, tables.iter().map(|t| t.name))?;
    // Every schema's table of that name (`silver.sales`, `gold.sales`).
    let named: Vec<String> = tables
        .iter()
        .filter(|t| t.name == close)
        .map(|t| format!("`{}`", t.qualified_name()))
        .collect();
    Some(format!(
        "; did you mean {}? (tables are named `schema.table`)",
        named.join(" or ")
    ))
}

/// The tables among `tables` that `query` reads; `None` when that cannot be told from the text
/// alone (it is not a query, which running it then reports; or it reads `information_schema`).
/// A query that does not parse is an error.
fn named_tables(
    session: &SessionContext,
    tables: &[&'static TableDef],
    query: &str,
) -> Result<Option<Vec<&'static TableDef>>> {
    let state = session.state();
    let dialect = state.config().options().sql_parser.dialect;
    // A syntax error is told before any table is loaded (which could fail on its own).
    let statement = match state.sql_to_statement(query, &dialect) {
        Ok(statement) => statement,
        Err(datafusion::error::DataFusionError::SQL(error, _)) => {
            return Err(Error::msg(format!(
                "query failed: SQL syntax error: {error}"
            )));
        }
        // Several statements, or none: refused before any table is loaded too.
        Err(error) => {
            let text = error.to_string();
            let why = if text.contains("single SQL statement") {
                "`sql` runs one statement: give each its own `sql`".to_owned()
            } else if text.contains("No SQL statements") {
                "the query is empty".to_owned()
            } else {
                text
            };
            return Err(Error::msg(format!("query failed: {why}")));
        }
    };
    use datafusion::sql::parser::Statement as Df;
    use datafusion::sql::sqlparser::ast::Statement as Sql;
    // A write is refused as such, before any table is loaded: DataFusion's own refusal names
    // its plan ("DML not supported"), or a wrong number of values first.
    let explained = match &statement {
        Df::Explain(explain) => &*explain.statement,
        other => other,
    };
    let write = match explained {
        Df::CopyTo(_) => Some("COPY"),
        Df::CreateExternalTable(_) => Some("CREATE EXTERNAL TABLE"),
        Df::Statement(inner) => match **inner {
            Sql::Insert(_) => Some("INSERT"),
            Sql::Update { .. } => Some("UPDATE"),
            Sql::Delete(_) => Some("DELETE"),
            Sql::Merge { .. } => Some("MERGE"),
            Sql::Truncate { .. } => Some("TRUNCATE"),
            Sql::Drop { .. } => Some("DROP"),
            Sql::CreateTable(_) | Sql::CreateView { .. } | Sql::CreateSchema { .. } => {
                Some("CREATE")
            }
            Sql::AlterTable { .. } => Some("ALTER TABLE"),
            _ => None,
        },
        _ => None,
    };
    if let Some(write) = write {
        return Err(Error::msg(format!(
            "query failed: `{write}` is refused: `sql` runs read-only queries (SELECT, WITH, \
             EXPLAIN, DESCRIBE, SHOW); tables are written by pipelines"
        )));
    }
    // A query, or the query an EXPLAIN shows: only the tables it names are loaded. Anything
    // else (DESCRIBE, SHOW, SET...) loads them all, and running it says what it is.
    let is_query = match explained {
        Df::Statement(inner) => match &**inner {
            Sql::Query(_) => true,
            Sql::Explain { statement, .. } => matches!(**statement, Sql::Query(_)),
            _ => false,
        },
        _ => false,
    };
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
        // which the query itself resolves; one of our tables' names without its schema is a
        // mistake to point out.
        let Some(schema) = reference.schema() else {
            // `"gold.fact_sales"`: one quoted identifier, not a schema and a table.
            if let Some(table) = tables
                .iter()
                .find(|t| t.qualified_name() == reference.table())
            {
                return Err(Error::msg(format!(
                    "query failed: no table `\"{}\"`: quoted whole, it is one name; write \
                     `{}` (or `\"{}\".\"{}\"`)",
                    reference.table(),
                    table.qualified_name(),
                    table.schema,
                    table.name
                )));
            }
            let same_name: Vec<String> = tables
                .iter()
                .filter(|t| t.name == reference.table())
                .map(|t| format!("`{}`", t.qualified_name()))
                .collect();
            if same_name.is_empty() {
                continue;
            }
            return Err(Error::msg(format!(
                "query failed: no table `{}`: tables are named `schema.table`; did you mean {}?",
                reference.table(),
                same_name.join(" or ")
            )));
        };
        let found = tables.iter().copied().find(|t| {
            reference.table() == t.name
                && schema == t.schema
                && reference.catalog().is_none_or(|c| c == "datafusion")
        });
        // `x.gold.fact_sales`: the table, in another catalog than the warehouse's only one.
        if found.is_none()
            && let Some(catalog) = reference.catalog()
            && let Some(table) = tables
                .iter()
                .find(|t| reference.table() == t.name && schema == t.schema)
        {
            return Err(Error::msg(format!(
                "query failed: no catalog `{catalog}`: the warehouse's tables are named \
                 `schema.table`; write `{}`",
                table.qualified_name()
            )));
        }
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
