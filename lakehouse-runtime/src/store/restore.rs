//! Restoring a table to an earlier version (`orchestrate restore`): Delta's `RESTORE`.

use super::drift::{DriftKind, SchemaDrift};
use super::{AsOf, Warehouse};
use crate::error::{Error, Result};
use crate::table::TableDef;

/// What `restore` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreReport {
    /// `schema.table`.
    pub table: String,
    /// The version whose rows the table holds again.
    pub restored: u64,
    /// The version the restore committed.
    pub version: u64,
    /// Data files removed (written after the restored version).
    pub files_removed: usize,
    /// Data files added back.
    pub files_restored: usize,
    /// Nothing was committed: the figures say what the restore would do, and `version` is the
    /// table's current one.
    pub dry_run: bool,
}

impl Warehouse {
    /// Brings `table` back to its rows as of a version or a time (the latest commit by then, as
    /// `sql --as-of` reads it), in one new commit (Delta's `RESTORE`): the later versions stay
    /// in its history. The restored version's data files must still exist (vacuum deletes them
    /// after the retention). An error if the table is already at that version, and a refusal
    /// if the version's schema does not fit the table's declaration (see
    /// [`Warehouse::restore_allowing_drift`]).
    pub async fn restore(&self, table: &'static TableDef, as_of: AsOf) -> Result<RestoreReport> {
        self.restore_allowing_drift(table, as_of, false).await
    }

    /// What [`Warehouse::restore_allowing_drift`] would do, refusals included, without
    /// committing: the data files it would remove and add back.
    pub async fn restore_dry_run(
        &self,
        table: &'static TableDef,
        as_of: AsOf,
        allow_drift: bool,
    ) -> Result<RestoreReport> {
        self.restore_or_plan(table, as_of, allow_drift, true).await
    }

    /// [`Warehouse::restore`]; with `allow_drift`, to a version whose schema does not fit the
    /// table's declaration too. Delta's `RESTORE` brings the version's schema back, and every
    /// reader of the table (`Frame<T>`) then fails until the table's pipeline writes it again
    /// when the version lacks a declared NOT NULL column or stores a column with another type;
    /// the table's writes fail when its partitioning, its key or a stored NOT NULL column no
    /// longer declared differs (then only a schema-replacing write or `--rebuild` mends it), or
    /// when the version's rows fail a declared CHECK constraint its metadata lacks (each write
    /// adds it first, validating the stored rows).
    pub async fn restore_allowing_drift(
        &self,
        table: &'static TableDef,
        as_of: AsOf,
        allow_drift: bool,
    ) -> Result<RestoreReport> {
        self.restore_or_plan(table, as_of, allow_drift, false).await
    }

    async fn restore_or_plan(
        &self,
        table: &'static TableDef,
        as_of: AsOf,
        allow_drift: bool,
        dry_run: bool,
    ) -> Result<RestoreReport> {
        let qualified = table.qualified_name();
        if table.schema == crate::ledger::LEDGER_SCHEMA {
            return Err(Error::msg(format!(
                "{qualified} is a ledger table: restoring it would make the orchestrator reuse run \
                 sequences or read ingested files again; it is not restored"
            )));
        }
        let Some(delta) = self.load(table).await? else {
            return Err(Error::msg(format!(
                "{qualified} has never been written: there is nothing to restore"
            )));
        };
        let latest = delta.version().unwrap_or_default();
        let restored = match as_of {
            AsOf::Version(version) => version,
            AsOf::Time(time) => self.version_at(&delta, table, time).await?,
        };
        if restored >= latest {
            let state = if restored == latest {
                format!("is at version {latest} already")
            } else {
                format!("has no version {restored}: its latest is {latest}")
            };
            return Err(Error::msg(format!(
                "{qualified} {state}; restore to an earlier one (see `orchestrate history \
                 {qualified}`)"
            )));
        }
        let mut target = delta.clone();
        super::history::load_version(&mut target, table, restored).await?;
        // Every refusal at once (a dry run says each it would meet).
        let mut refusals = Vec::new();
        let files = |delta: &deltalake::DeltaTable| -> Result<
            std::collections::HashMap<String, deltalake::Path>,
        > {
            let snapshot = delta.snapshot().map_err(|e| Error::delta(&qualified, e))?;
            Ok(snapshot
                .log_data()
                .iter()
                .map(|file| (file.path().to_string(), file.object_store_path()))
                .collect())
        };
        let (now, then) = (files(&delta)?, files(&target)?);
        let added: Vec<&deltalake::Path> = then
            .iter()
            .filter(|(path, _)| !now.contains_key(*path))
            .map(|(_, location)| location)
            .collect();
        // Delta's RESTORE checks that the files it adds back are there; so is it checked first,
        // for a dry run and before the version's rows are read.
        let gone = gone_files(&delta, &added, &qualified).await?;
        if gone > 0 {
            refusals.push(format!(
                "{gone} data file(s) of that version are gone (vacuumed once older than the \
                 table's retention, `delta.deletedFileRetentionDuration`)"
            ));
        }
        if !allow_drift {
            let unfit = self.unfit_after_restore(table, &delta, &target).await?;
            // Its rows read only when readable as the declaration has them.
            if gone == 0 && unfit.is_empty() {
                refusals.extend(self.checks_blocked_by_restore(table, &delta, &target).await);
            }
            refusals.extend(unfit);
        }
        if !refusals.is_empty() {
            // (No flag brings gone files back.)
            let fix = if allow_drift || gone > 0 {
                String::new()
            } else {
                format!(
                    "; restore a later version (see `orchestrate history {qualified}`), or \
                     restore with --allow-schema-drift knowingly"
                )
            };
            return Err(Error::Refused(format!(
                "{qualified} cannot be restored to version {restored}: {}{fix}",
                refusals.join("; ")
            )));
        }
        if dry_run {
            return Ok(RestoreReport {
                table: qualified,
                restored,
                version: latest,
                files_removed: now.keys().filter(|path| !then.contains_key(*path)).count(),
                files_restored: added.len(),
                dry_run: true,
            });
        }
        let (restored_table, metrics) = delta
            .restore()
            .with_version_to_restore(restored)
            .await
            .map_err(|e| restore_error(&qualified, restored, e))?;
        Ok(RestoreReport {
            table: qualified,
            restored,
            version: restored_table.version().unwrap_or_default(),
            files_removed: metrics.num_removed_file,
            files_restored: metrics.num_restored_file,
            dry_run: false,
        })
    }
}

/// Whether `drift` of a restored version's schema from `table`'s declaration breaks the table:
/// its readers (a declared NOT NULL column missing, a column of another type) or its writes
/// (what [`SchemaDrift::is_incompatible`] says).
impl Warehouse {
    /// What the schema of `target` (`table` at the version a restore brings back) breaks that
    /// `delta` (its latest) does not already: a drift the table has now stays as it is.
    async fn unfit_after_restore(
        &self,
        table: &'static TableDef,
        delta: &deltalake::DeltaTable,
        target: &deltalake::DeltaTable,
    ) -> Result<Vec<String>> {
        let now = self.drift_counted(table, delta).await?;
        let unfit: Vec<String> = self
            .drift_counted(table, target)
            .await?
            .into_iter()
            .filter(|drift| {
                // The same drift of the same column; a missing column counts as there now
                // unless the restore makes it refuse writes (that depends on the version
                // having rows).
                let there_now = now.iter().any(|n| {
                    n.column == drift.column
                        && match (&n.kind, &drift.kind) {
                            (
                                DriftKind::MissingInTable { refused: now, .. },
                                DriftKind::MissingInTable {
                                    refused: restored, ..
                                },
                            ) => *now || !*restored,
                            (now, restored) => now == restored,
                        }
                });
                breaks_after_restore(table, drift) && !there_now
            })
            .map(|drift| drift.to_string())
            .collect();
        Ok(match unfit.is_empty() {
            true => Vec::new(),
            false => vec![format!(
                "that version's schema does not fit the table's declaration ({}), and its \
                 readers or its writes would fail until the table is written anew",
                unfit.join("; ")
            )],
        })
    }

    /// The declared CHECK constraints the table's writes could no longer add once restored to
    /// `target` (its rows fail them, and its metadata lacks them), and can now. The rows are
    /// read only for what `target` lacks; one that cannot be read (a file gone that the restore
    /// does not bring back, shared with the latest) is left to the table's readers: a warning.
    async fn checks_blocked_by_restore(
        &self,
        table: &'static TableDef,
        delta: &deltalake::DeltaTable,
        target: &deltalake::DeltaTable,
    ) -> Vec<String> {
        // As the table's own writes go (a full snapshot's pipeline is not known here).
        let replaces_every_row = super::drift::writes_replace_every_row(table, false);
        let counted = async {
            let then = self
                .blocked_checks(table, target, replaces_every_row)
                .await?;
            if then.is_empty() {
                return Ok(then);
            }
            let now: Vec<String> = self
                .blocked_checks(table, delta, replaces_every_row)
                .await?
                .into_iter()
                .map(|blocked| blocked.name)
                .collect();
            Ok::<_, Error>(
                then.into_iter()
                    .filter(|b| !now.contains(&b.name))
                    .collect(),
            )
        };
        match counted.await {
            Ok(blocked) => blocked.iter().map(restore_refusal).collect(),
            Err(error) => {
                tracing::warn!(
                    table = %table.qualified_name(),
                    %error,
                    "the rows of the version to restore could not be read to check them against \
                     the declared CHECK constraints"
                );
                Vec::new()
            }
        }
    }
}

/// What a restore bringing back rows `blocked` refuses says.
fn restore_refusal(blocked: &super::BlockedCheck) -> String {
    let (name, expr) = (&blocked.name, &blocked.expr);
    match &blocked.blocked_by {
        super::BlockedBy::FailingRows(rows) => format!(
            "{rows} of its row(s) fail the declared CHECK constraint `{name}` ({expr}), which its \
             metadata lacks: every write would fail adding it"
        ),
        super::BlockedBy::Unevaluable(why) => {
            format!("the declared CHECK constraint `{name}` could not be added to it: {why}")
        }
    }
}

/// How many of the data files `added` (of `delta`'s table) its storage no longer holds.
async fn gone_files(
    delta: &deltalake::DeltaTable,
    added: &[&deltalake::Path],
    qualified: &str,
) -> Result<usize> {
    use deltalake::logstore::object_store::ObjectStoreExt as _;
    use futures::{StreamExt as _, TryStreamExt as _};
    /// Requests in flight at once (an object store answers each in tens of milliseconds).
    const AT_ONCE: usize = 16;
    let store = delta.log_store().object_store(None);
    futures::stream::iter(added)
        .map(|location| {
            let store = store.clone();
            async move {
                match store.head(location).await {
                    Ok(_) => Ok(0),
                    Err(deltalake::ObjectStoreError::NotFound { .. }) => Ok(1),
                    Err(error) => Err(Error::msg(format!(
                        "checking the data file {location} of {qualified}: {error}"
                    ))),
                }
            }
        })
        .buffer_unordered(AT_ONCE)
        .try_fold(0, |gone, one| async move { Ok(gone + one) })
        .await
}

fn breaks_after_restore(table: &TableDef, drift: &SchemaDrift) -> bool {
    let declared_not_null = || {
        table
            .columns
            .iter()
            .any(|c| c.name == drift.column && !c.nullable)
    };
    drift.is_incompatible()
        || matches!(drift.kind, DriftKind::TypeChanged { .. })
        || (matches!(drift.kind, DriftKind::MissingInTable { .. }) && declared_not_null())
}

/// Why restoring `qualified` to version `restored` failed, and what to do.
fn restore_error(qualified: &str, restored: u64, error: deltalake::DeltaTableError) -> Error {
    use deltalake::DeltaTableError;
    match &error {
        // Committed with no retry: any commit landing meanwhile fails it.
        DeltaTableError::Transaction {
            source:
                deltalake::kernel::transaction::TransactionError::CommitConflict(_)
                | deltalake::kernel::transaction::TransactionError::MaxCommitAttempts(_)
                | deltalake::kernel::transaction::TransactionError::VersionAlreadyExists(_),
        }
        | DeltaTableError::VersionAlreadyExists(_) => Error::msg(format!(
            "restoring {qualified} to version {restored}: another commit landed on the \
                 table meanwhile (a pipeline's write, a compaction), and nothing was restored; \
                 restore it again ({error})"
        )),
        _ if error.to_string().contains("missing file") => Error::Refused(format!(
            "{qualified} cannot be restored to version {restored}: its data files are gone \
             (vacuumed once older than the table's retention, \
             `delta.deletedFileRetentionDuration`) ({error})"
        )),
        _ => Error::msg(format!(
            "restoring {qualified} to version {restored}: {error}"
        )),
    }
}
