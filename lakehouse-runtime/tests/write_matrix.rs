//! Write modes × schema evolution × single and composite keys × partitioned or not: three writes
//! per case, the exact table contents asserted after each against a reference model.

use lakehouse_runtime::prelude::*;
use lakehouse_runtime::store::WriteOptions;
use lakehouse_runtime::{SchemaEvolution, TableDef, WriteMode};
use serde::Serialize;

use crate::common::{TempWarehouse, contents, stored_columns, write};

#[derive(Serialize, Clone, Debug, PartialEq)]
struct Row {
    id: i64,
    line: i32,
    region: String,
    amount: Option<i64>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
struct RowWithNote {
    id: i64,
    line: i32,
    region: String,
    amount: Option<i64>,
    note: Option<String>,
}

fn row(id: i64, line: i32, region: &str, amount: Option<i64>) -> Row {
    Row {
        id,
        line,
        region: region.to_owned(),
        amount,
    }
}

/// The reference model: what each mode must leave in the table.
struct Model {
    mode: WriteMode,
    composite: bool,
    rows: Vec<RowWithNote>,
}

impl Model {
    fn key(&self, r: &RowWithNote) -> (i64, i32) {
        (r.id, if self.composite { r.line } else { 0 })
    }

    fn apply(&mut self, batch: Vec<RowWithNote>) {
        match self.mode {
            WriteMode::Append => self.rows.extend(batch),
            WriteMode::Overwrite => self.rows = batch,
            WriteMode::Merge | WriteMode::Scd2 => {
                // Duplicate keys: the row that sorts last by the non-key columns wins.
                let mut winners: Vec<RowWithNote> = Vec::new();
                for r in batch {
                    let non_key =
                        |x: &RowWithNote| (x.line, x.region.clone(), x.amount, x.note.clone());
                    match winners.iter_mut().find(|w| self.key(w) == self.key(&r)) {
                        Some(w) if non_key(&r) > non_key(w) => *w = r,
                        Some(_) => {}
                        None => winners.push(r),
                    }
                }
                for r in winners {
                    let k = self.key(&r);
                    match self
                        .rows
                        .iter_mut()
                        .find(|x| (x.id, if self.composite { x.line } else { 0 }) == k)
                    {
                        Some(existing) => *existing = r,
                        None => self.rows.push(r),
                    }
                }
            }
        }
    }

    fn render(&self, with_note: bool) -> Vec<String> {
        let cell = |v: Option<String>| v.unwrap_or_else(|| "∅".to_owned());
        let mut out: Vec<String> = self
            .rows
            .iter()
            .map(|r| {
                let mut s = format!(
                    "{}|{}|{}|{}",
                    r.id,
                    r.line,
                    r.region,
                    cell(r.amount.map(|a| a.to_string()))
                );
                if with_note {
                    s.push('|');
                    s.push_str(&cell(r.note.clone()));
                }
                s
            })
            .collect();
        out.sort();
        out
    }
}

fn with_note(rows: &[Row], note: Option<&str>) -> Vec<RowWithNote> {
    rows.iter()
        .map(|r| RowWithNote {
            id: r.id,
            line: r.line,
            region: r.region.clone(),
            amount: r.amount,
            note: note.map(|n| format!("{n}{}", r.id)),
        })
        .collect()
}

/// Write number `n`: SCD2 tables need the run's time; every write carries a transaction and
/// metadata, which its commit must record whatever path the mode takes.
fn step(n: i64) -> WriteOptions {
    WriteOptions {
        run_at: Some(Timestamp(n * 86_400_000_000)),
        transaction: Some(("matrix".to_owned(), n)),
        metadata: [("step".to_owned(), serde_json::json!(n))].into(),
        ..WriteOptions::default()
    }
}

/// Asserts that write number `n` committed `step`'s metadata, found by its transaction.
async fn assert_recorded(
    warehouse: &lakehouse_runtime::Warehouse,
    table: &'static TableDef,
    n: i64,
) {
    let metadata = warehouse
        .transaction_metadata(table, "matrix", n)
        .await
        .expect("history")
        .unwrap_or_else(|| panic!("no commit of transaction {n} in {}", table.qualified_name()));
    assert_eq!(
        metadata.get("step"),
        Some(&serde_json::json!(n)),
        "{metadata:?}"
    );
}

/// The table's rows; for SCD2 tables the current versions of the data columns.
async fn current(
    warehouse: &lakehouse_runtime::Warehouse,
    table: &'static TableDef,
) -> Vec<String> {
    if table.mode != WriteMode::Scd2 {
        return contents(warehouse, table).await;
    }
    let columns: Vec<&str> = table.data_columns().map(|c| c.name).collect();
    let session = warehouse.session();
    let df = warehouse
        .read(&session, table)
        .await
        .expect("read")
        .filter(datafusion::prelude::col("is_current"))
        .expect("filter")
        .select_columns(&columns)
        .expect("select");
    crate::common::render(df).await
}

async fn run_case(v1: &'static TableDef, v2: &'static TableDef) {
    let wh = TempWarehouse::new();
    let composite = v1.key.len() == 2;
    let mut model = Model {
        mode: v1.mode,
        composite,
        rows: Vec::new(),
    };

    // 1. First write creates the table.
    let a = vec![row(1, 1, "eu", Some(10)), row(2, 1, "us", Some(20))];
    let outcome = write(&wh.warehouse, v1, &a, step(1))
        .await
        .expect("first write");
    assert_recorded(&wh.warehouse, v1, 1).await;
    assert!(outcome.committed);
    model.apply(with_note(&a, None));
    assert_eq!(
        current(&wh.warehouse, v1).await,
        model.render(false),
        "after write 1"
    );

    // 2. Overlapping keys, a new key, and (for a single key) a duplicate key in the batch.
    let b = vec![
        row(2, 1, "us", Some(25)),
        row(3, 1, "eu", None),
        row(2, 2, "us", Some(5)),
    ];
    write(&wh.warehouse, v1, &b, step(2))
        .await
        .expect("second write");
    assert_recorded(&wh.warehouse, v1, 2).await;
    model.apply(with_note(&b, None));
    assert_eq!(
        current(&wh.warehouse, v1).await,
        model.render(false),
        "after write 2"
    );

    // 3. The declaration gains a column.
    let c = vec![row(3, 1, "eu", Some(31)), row(4, 1, "us", Some(40))];
    write(&wh.warehouse, v2, &with_note(&c, Some("n")), step(3))
        .await
        .expect("third write");
    assert_recorded(&wh.warehouse, v2, 3).await;
    let kept = v2.evolution == SchemaEvolution::Keep;
    model.apply(with_note(&c, if kept { None } else { Some("n") }));
    assert_eq!(
        current(&wh.warehouse, v2).await,
        model.render(true),
        "after write 3"
    );
    let columns = stored_columns(&wh.warehouse, v2).await;
    assert_eq!(
        columns.contains(&"note".to_owned()),
        !kept,
        "stored columns {columns:?}"
    );
    if !v1.partition_by.is_empty() {
        let dir = wh
            .warehouse
            .local_root()
            .expect("local")
            .join(v1.schema)
            .join(v1.name);
        assert!(
            dir.join("region=eu").is_dir(),
            "partition directories under {}",
            dir.display()
        );
    }
}

macro_rules! case {
    ($test:ident: mode = $mode:ident, evolution = $evo:ident, key($($key:ident),+), partition_by($($part:ident)?)) => {
        mod $test {
            use super::*;

            #[derive(Table)]
            #[table(schema = "matrix", name = "t", key($($key),+), partition_by($($part)?), mode = $mode, evolution = $evo)]
            pub struct V1 {
                pub id: i64,
                pub line: i32,
                pub region: String,
                pub amount: Option<i64>,
            }

            #[derive(Table)]
            #[table(schema = "matrix", name = "t", key($($key),+), partition_by($($part)?), mode = $mode, evolution = $evo)]
            pub struct V2 {
                pub id: i64,
                pub line: i32,
                pub region: String,
                pub amount: Option<i64>,
                pub note: Option<String>,
            }

            #[tokio::test]
            async fn three_writes() {
                run_case(<V1 as lakehouse_runtime::Table>::DEF, <V2 as lakehouse_runtime::Table>::DEF).await;
            }
        }
    };
}

case!(append_merge_single: mode = append, evolution = merge, key(id), partition_by());
case!(append_merge_composite_partitioned: mode = append, evolution = merge, key(id, line), partition_by(region));
case!(append_keep_single_partitioned: mode = append, evolution = keep, key(id), partition_by(region));
case!(append_keep_composite: mode = append, evolution = keep, key(id, line), partition_by());
case!(overwrite_merge_single: mode = overwrite, evolution = merge, key(id), partition_by());
case!(overwrite_merge_composite_partitioned: mode = overwrite, evolution = merge, key(id, line), partition_by(region));
case!(overwrite_keep_single_partitioned: mode = overwrite, evolution = keep, key(id), partition_by(region));
case!(overwrite_keep_composite: mode = overwrite, evolution = keep, key(id, line), partition_by());
case!(overwrite_overwrite_single: mode = overwrite, evolution = overwrite, key(id), partition_by());
case!(overwrite_overwrite_composite_partitioned: mode = overwrite, evolution = overwrite, key(id, line), partition_by(region));
case!(merge_merge_single: mode = merge, evolution = merge, key(id), partition_by());
case!(merge_merge_single_partitioned: mode = merge, evolution = merge, key(id), partition_by(region));
case!(merge_merge_composite: mode = merge, evolution = merge, key(id, line), partition_by());
case!(merge_merge_composite_partitioned: mode = merge, evolution = merge, key(id, line), partition_by(region));
case!(merge_keep_single: mode = merge, evolution = keep, key(id), partition_by());
case!(merge_keep_composite_partitioned: mode = merge, evolution = keep, key(id, line), partition_by(region));
case!(scd2_merge_single: mode = scd2, evolution = merge, key(id), partition_by());
case!(scd2_merge_composite_partitioned: mode = scd2, evolution = merge, key(id, line), partition_by(region));
case!(scd2_keep_single_partitioned: mode = scd2, evolution = keep, key(id), partition_by(region));
case!(scd2_keep_composite: mode = scd2, evolution = keep, key(id, line), partition_by());
