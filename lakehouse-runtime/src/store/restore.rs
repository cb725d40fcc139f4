//! Restoring a table to an earlier version (`orchestrate restore`): Delta's `RESTORE`.

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
}

impl Warehouse {
    /// Brings `table` back to its rows as of a version or a time (the latest commit by then, as
    /// `sql --as-of` reads it), in one new commit (Delta's `RESTORE`): the later versions stay
    /// in its history. The restored version's data files must still exist (vacuum deletes them
    /// after the retention). An error if the table is already at that version.
    pub async fn restore(&self, table: &'static TableDef, as_of: AsOf) -> Result<RestoreReport> {
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
        })
    }
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
