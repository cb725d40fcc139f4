//! One table's health as `orchestrate check` reports it, read from one load of its log.

use super::{SchemaDrift, StaleTable, Warehouse};
use crate::error::Result;
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
    /// [`Warehouse::drift`], [`Warehouse::missing_files`], [`Warehouse::unwritable`] and the
    /// latest write of data of `table`, from one load of its log (each of those loads it again;
    /// on an object store a load is several requests). A table never written has no drift, no
    /// missing file and no write.
    pub async fn health(&self, table: &'static TableDef) -> Result<TableHealth> {
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
        Ok(TableHealth {
            version: delta.version(),
            drift: self.drift_counted(table, &delta).await?,
            missing_files: super::maintain::missing_files_of(table, &delta).await?,
            unwritable: super::create::unwritable_of(table, &delta)?,
            latest_data_write,
            history_unreadable,
        })
    }
}
