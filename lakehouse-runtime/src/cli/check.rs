//! `orchestrate check`: the graph, the plans, the tables against their declarations, lost data
//! files and freshness.

use std::process::ExitCode;

use super::args::GlobalArgs;
use super::commands::{all_tables, settings_of, warehouse};
use crate::check::check_plans_with;
use crate::error::{Error, Result};
use crate::graph::Registry;
use crate::store::Warehouse;
use crate::table::{TableDef, Timestamp};

pub(super) async fn check(registry: &Registry, global: &GlobalArgs) -> Result<ExitCode> {
    let missing = Warehouse::missing(global.warehouse())?;
    // A fresh clone has no warehouse yet; a location given explicitly is most likely mistyped,
    // and a gate must not pass on it.
    if let Some(directory) = &missing
        && global.warehouse_given.is_some()
    {
        return Err(Error::msg(format!(
            "no warehouse at {}: check --warehouse or LAKEHOUSE_WAREHOUSE (a warehouse is \
             created by its first `orchestrate run`)",
            directory.display()
        )));
    }
    say!(
        "graph: {} pipelines, no cycle, every input declared",
        registry.len()
    );
    let mut ok = true;
    match check_plans_with(registry, &settings_of(global)).await {
        Ok(()) => say!("plans: every pipeline's plan matches its table"),
        Err(failures) => {
            ok = false;
            say!("{}", failures.to_string().trim_end());
        }
    }
    if let Some(directory) = missing {
        say!(
            "tables: no warehouse at {} yet, nothing to compare",
            directory.display()
        );
        return Ok(exit_code(ok));
    }
    let warehouse = warehouse(global)?;
    let (mut drifts, mut damaged) = (0, 0);
    let mut unreadable: Vec<&'static TableDef> = Vec::new();
    for table in all_tables(registry) {
        // A table that cannot be read is reported, and the others are still checked.
        let read = async {
            Ok::<_, Error>((
                warehouse.drift(table).await?,
                warehouse.missing_files(table).await?,
                warehouse.unwritable(table).await?,
            ))
        };
        let (drifted, missing, unwritable) = match read.await {
            Ok(read) => read,
            Err(error) => {
                unreadable.push(table);
                ok = false;
                say!("unreadable: {}: {error}", table.qualified_name());
                continue;
            }
        };
        for drift in drifted {
            drifts += 1;
            ok &= !drift.is_incompatible();
            say!("schema drift: {drift}");
        }
        if let Some(why) = unwritable {
            damaged += 1;
            ok = false;
            say!(
                "unwritable: {}: delta-rs cannot write it ({why}); its writes fail until the \
                 table's protocol is one it supports (rewrite the table, or drop the feature \
                 with the engine that added it)",
                table.qualified_name()
            );
        }
        if let Some(first) = missing.first() {
            damaged += 1;
            ok = false;
            say!(
                "missing files: {}: {} data file(s) of its current version are gone (e.g. {first}); \
                 every read of it fails: restore them, or rebuild the table",
                table.qualified_name(),
                missing.len()
            );
        }
    }
    if drifts == 0 && unreadable.is_empty() {
        say!("tables: every Delta table matches its declaration");
    }
    if damaged == 0 && unreadable.is_empty() {
        say!("files: every data file the tables reference is present");
    }
    ok &= check_freshness(registry, &warehouse, &unreadable).await?;
    Ok(exit_code(ok))
}

/// Reports the tables declaring a `freshness` whose latest write is older (or that were never
/// written); true when there is none.
async fn check_freshness(
    registry: &Registry,
    warehouse: &Warehouse,
    unreadable: &[&'static TableDef],
) -> Result<bool> {
    let tables = all_tables(registry);
    let mut stale = Vec::new();
    let mut fresh = true;
    for table in tables.iter().filter(|t| !unreadable.contains(t)) {
        match warehouse.stale_tables(&[table], Timestamp::now()).await {
            Ok(found) => stale.extend(found),
            // Its history cannot be read: its freshness is unknown, which is no pass.
            Err(error) => {
                fresh = false;
                say!("unreadable: {}: {error}", table.qualified_name());
            }
        }
    }
    for table in &stale {
        say!("stale: {table}");
    }
    let declared = tables.iter().filter(|t| t.freshness_secs.is_some()).count();
    if declared > 0 && stale.is_empty() && fresh && unreadable.is_empty() {
        say!("freshness: every table declaring one was written within it ({declared})");
    }
    Ok(stale.is_empty() && fresh)
}

fn exit_code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
