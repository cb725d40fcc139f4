//! One table's health as `orchestrate check` reports it, read from one load of its log.

use datafusion::logical_expr::lit;
use deltalake::DeltaTable;

use super::{SchemaDrift, StaleTable, Warehouse};
use crate::error::{Error, Result};
use crate::table::{TableDef, Timestamp};

/// What is wrong with a stored table, or may be ([`Warehouse::health`]).
#[derive(Clone, Debug, Default)]
pub struct TableHealth {
    /// Its latest version (`None`: never written).
    pub version: Option<u64>,
    /// Every difference between its declaration and its stored schema.
    pub drift: Vec<SchemaDrift>,
    /// The data files of its current version its storage no longer holds.
    pub missing_files: Vec<String>,
    /// Why delta-rs cannot write it, when it cannot.
    pub unwritable: Option<String>,
    /// When its latest write of data was committed (`None`: never, or not searched because it
    /// declares no freshness, or its history could not be read).
    pub latest_data_write: Option<Timestamp>,
    /// Why its history could not be read to find its latest write of data (its freshness is
    /// then unknown; the rest was still read).
    pub history_unreadable: Option<String>,
    /// The declared CHECK constraints its next write cannot add, as stored rows fail them (not
    /// looked for while a drift refuses writes anyway).
    pub blocked_checks: Vec<BlockedCheck>,
}

/// A declared CHECK constraint a table does not hold yet (or holds with another expression)
/// that stored rows fail: a write adds the declared constraints first, validating the stored
/// rows, so every write fails until they pass it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockedCheck {
    /// `schema.table`.
    pub table: String,
    /// The constraint's name.
    pub name: String,
    /// Its declared expression.
    pub expr: String,
    /// Whether the table holds a constraint of that name with another expression (kept until
    /// this one can replace it).
    pub replaces: bool,
    /// Why it cannot be added.
    pub blocked_by: BlockedBy,
}

/// Why a [`BlockedCheck`] cannot be added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockedBy {
    /// This many stored rows fail it (a NULL fails a CHECK).
    FailingRows(u64),
    /// Its expression cannot be evaluated over the table, as delta-rs would evaluate it (a
    /// column the table lacks and its next write does not add, under `evolution = keep`).
    Unevaluable(String),
}

impl std::fmt::Display for BlockedCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            table, name, expr, ..
        } = self;
        let held = match self.replaces {
            true => "would replace the table's constraint of that name",
            false => "is not on the Delta table yet",
        };
        match &self.blocked_by {
            BlockedBy::FailingRows(rows) => write!(
                f,
                "{table}: the declared CHECK constraint `{name}` ({expr}) {held}, and {rows} \
                 stored row(s) fail it (a NULL fails a CHECK): every write fails until it can be \
                 added; fix or delete those rows with the engine that wrote them, change the \
                 declaration, or rebuild the table (move its folder away and run its pipeline \
                 with --full-refresh)"
            ),
            // (`why` names the table, the constraint and its expression.)
            BlockedBy::Unevaluable(why) => write!(
                f,
                "{why}; it {held}, and every write fails until it can be added: change the \
                 declaration"
            ),
        }
    }
}

impl TableHealth {
    /// The table as stale at `now`, when it declares a freshness its latest write is older than
    /// (`None` too when its history could not be read: see
    /// [`TableHealth::history_unreadable`]).
    pub fn stale(&self, table: &TableDef, now: Timestamp) -> Option<StaleTable> {
        if self.history_unreadable.is_some() {
            return None;
        }
        StaleTable::of(table, self.latest_data_write, now)
    }
}

impl Warehouse {
    /// [`Warehouse::drift`], [`Warehouse::missing_files`], [`Warehouse::unwritable`], the
    /// declared CHECK constraints its next write cannot add and the latest write of data of
    /// `table`, from one load of its log (each of those loads it again; on an object store a
    /// load is several requests). A table never written has no drift, no missing file and no
    /// write.
    pub async fn health(&self, table: &'static TableDef) -> Result<TableHealth> {
        self.health_of_output(table, false).await
    }

    /// [`Warehouse::health`] of the output of a pipeline that is, or is not, a `full_snapshot`
    /// one: each of its writes into an overwrite table (partitions replaced too) replaces every
    /// row, so the old rows need no value of a new NOT NULL column, nor lose their NULLs to a
    /// column made NOT NULL, and no such drift refuses its writes.
    pub async fn health_of_output(
        &self,
        table: &'static TableDef,
        full_snapshot: bool,
    ) -> Result<TableHealth> {
        let Some(delta) = self.load(table).await? else {
            return Ok(TableHealth::default());
        };
        let (latest_data_write, history_unreadable) = match table.freshness_secs {
            Some(_) => match super::history::latest_data_write(table, &delta).await {
                Ok(written) => (written, None),
                Err(error) => (None, Some(error.to_string())),
            },
            None => (None, None),
        };
        let replaces_every_row = super::drift::writes_replace_every_row(table, full_snapshot);
        let drift = self
            .drift_counted_for(table, &delta, replaces_every_row)
            .await?;
        let missing_files = super::maintain::missing_files_of(table, &delta).await?;
        // Not counted while a drift refuses writes anyway, nor over files that are gone.
        let blocked_checks =
            match drift.iter().any(SchemaDrift::is_incompatible) || !missing_files.is_empty() {
                true => Vec::new(),
                false => {
                    self.blocked_checks(table, &delta, replaces_every_row)
                        .await?
                }
            };
        Ok(TableHealth {
            version: delta.version(),
            drift,
            blocked_checks,
            missing_files,
            unwritable: super::create::unwritable_of(table, &delta)?,
            latest_data_write,
            history_unreadable,
        })
    }

    /// The constraints of [`TableHealth::blocked_checks`]: every declared one the next write
    /// adds, counted in one query over the stored rows as delta-rs validates them (no NOT NULL
    /// assertion; a declared column the table lacks NULL, as the write adds it first, unless
    /// under `evolution = keep`). `replaces_every_row`: whether the next write replaces every
    /// stored row (see [`Warehouse::health_of_output`]).
    pub(super) async fn blocked_checks(
        &self,
        table: &'static TableDef,
        delta: &DeltaTable,
        replaces_every_row: bool,
    ) -> Result<Vec<BlockedCheck>> {
        let pending = super::constraints::checks_to_apply(table, delta)?;
        // A table without rows too: delta-rs reads the expression before any row.
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.rows_as_next_write_sees(table, delta).await?;
        let blocked = |check: &crate::table::CheckConstraint, replaces, blocked_by| BlockedCheck {
            table: table.qualified_name(),
            name: check.name.to_owned(),
            expr: check.expr.to_owned(),
            replaces,
            blocked_by,
        };
        // A write replacing every row gains a new constraint past rows that fail it (see
        // `Warehouse::declared_checks_before_replacing`).
        let rows_replaced =
            replaces_every_row && table.evolution != crate::table::SchemaEvolution::Overwrite;
        let checks: Vec<_> = pending.iter().map(|(check, _)| *check).collect();
        let failing = crate::quality::rows_failing_checks(&rows, table, &checks).await?;
        let mut found = Vec::new();
        for ((check, replaces), failing) in pending.into_iter().zip(failing) {
            match failing {
                Err(error) => found.push(blocked(
                    check,
                    replaces,
                    BlockedBy::Unevaluable(error.to_string()),
                )),
                Ok(rows) if rows > 0 && (replaces || !rows_replaced) => {
                    found.push(blocked(check, replaces, BlockedBy::FailingRows(rows)));
                }
                Ok(_) => {}
            }
        }
        Ok(found)
    }

    /// The stored rows of `delta` as `table`'s next write validates its constraints over them:
    /// as stored (no NOT NULL assertion), with the declared columns the write adds first (NULL).
    async fn rows_as_next_write_sees(
        &self,
        table: &'static TableDef,
        delta: &DeltaTable,
    ) -> Result<datafusion::dataframe::DataFrame> {
        let session = self.session();
        let provider = delta
            .table_provider()
            .with_session(super::session_state(&session))
            .await
            .map_err(|e| Error::msg(format!("reading {}: {e}", table.qualified_name())))?;
        let mut rows = session.read_table(provider)?;
        if table.evolution != crate::table::SchemaEvolution::Keep {
            for column in table.columns {
                if rows
                    .schema()
                    .field_with_unqualified_name(column.name)
                    .is_err()
                {
                    let null =
                        datafusion::common::ScalarValue::try_from(&column.data_type.arrow_type())?;
                    rows = rows.with_column(column.name, lit(null))?;
                }
            }
        }
        Ok(rows.alias(&crate::backend::qualifier(table).to_string())?)
    }
}
