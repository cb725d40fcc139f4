//! `orchestrate check`: the graph, the plans, the tables against their declarations, lost data
//! files and freshness.

use std::process::ExitCode;

use super::args::GlobalArgs;
use super::commands::{all_tables, existing_warehouse, settings_of, warehouse};
use crate::check::check_plans_with;
use crate::error::{Error, Result};
use crate::graph::Registry;
use crate::store::Warehouse;
use crate::table::Timestamp;

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
    // A location given that holds no table is most likely the wrong one (a warehouse's parent,
    // one of its schemas, a mistyped bucket prefix): a gate must not pass on it either.
    let warehouse = match global.warehouse_given {
        Some(_) => existing_warehouse(global)?,
        None => warehouse(global)?,
    };
    let mut written = 0;
    let (mut drifts, mut damaged) = (0, 0);
    let mut unreadable = 0;
    let mut stale = Vec::new();
    let now = Timestamp::now();
    for table in all_tables(registry) {
        // A table that cannot be read is reported, and the others are still checked.
        // A full snapshot's writes replace every row: what they refuse differs.
        let full_snapshot = registry
            .pipelines()
            .iter()
            .any(|p| p.full_snapshot && p.output.qualified_name() == table.qualified_name());
        let health = match warehouse.health_of_output(table, full_snapshot).await {
            Ok(health) => health,
            Err(error) => {
                unreadable += 1;
                ok = false;
                say!("unreadable: {}: {error}", table.qualified_name());
                continue;
            }
        };
        written += usize::from(health.version.is_some());
        stale.extend(health.stale(table, now));
        if let Some(error) = &health.history_unreadable {
            // Its freshness is unknown, which is no pass; the rest is still reported.
            unreadable += 1;
            ok = false;
            say!(
                "unreadable: {}: its history, for its freshness: {error}",
                table.qualified_name()
            );
        }
        for drift in health.drift {
            drifts += 1;
            ok &= !drift.is_incompatible();
            say!("schema drift: {drift}");
        }
        for blocked in &health.blocked_checks {
            // A declaration the table does not match.
            drifts += 1;
            ok = false;
            say!("check constraint: {blocked}");
        }
        if let Some(why) = health.unwritable {
            damaged += 1;
            ok = false;
            say!(
                "unwritable: {}: delta-rs cannot write it ({why}); its writes fail until the \
                 table's protocol is one it supports (rewrite the table, or drop the feature \
                 with the engine that added it)",
                table.qualified_name()
            );
        }
        if let Some(first) = health.missing_files.first() {
            damaged += 1;
            ok = false;
            say!(
                "missing files: {}: {} data file(s) of its current version are gone (e.g. {first}); \
                 every read of it fails: restore them, or rebuild the table",
                table.qualified_name(),
                health.missing_files.len()
            );
        }
    }
    if written == 0 && unreadable == 0 && global.warehouse_given.is_some() {
        ok = false;
        say!(
            "tables: none of this lakehouse's {} tables is written at {}: check --warehouse or \
             LAKEHOUSE_WAREHOUSE (a warehouse is created by its first `orchestrate run`)",
            all_tables(registry).len(),
            global.warehouse()
        );
    } else if written == 0 && unreadable == 0 {
        // (The default location, made by something else: nothing to compare, as without it.)
        say!(
            "tables: none written at {} yet, nothing to compare",
            global.warehouse()
        );
    } else if drifts == 0 && unreadable == 0 {
        say!("tables: every Delta table matches its declaration");
    }
    if written > 0 && damaged == 0 && unreadable == 0 {
        say!("files: every data file the tables reference is present");
    }
    // (None written at the default location: nothing compared, freshness included.)
    let nothing_written = written == 0 && unreadable == 0 && global.warehouse_given.is_none();
    for table in stale.iter().filter(|_| !nothing_written) {
        ok = false;
        say!("stale: {table}");
    }
    // A table that cannot be read has an unknown freshness, which is no pass.
    let declared = all_tables(registry)
        .iter()
        .filter(|t| t.freshness_secs.is_some())
        .count();
    if declared > 0 && stale.is_empty() && unreadable == 0 {
        say!("freshness: every table declaring one was written within it ({declared})");
    }
    Ok(exit_code(ok))
}

fn exit_code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
