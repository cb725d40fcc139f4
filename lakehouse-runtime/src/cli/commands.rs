//! The commands behind the command line: dispatch, the warehouse and settings they share, and
//! the maintenance commands; running the pipelines is `run`'s, `check`, `sql` and the listings
//! have modules of their own.

use std::process::ExitCode;

use super::args::{Cli, Command, ExecutionArgs, GlobalArgs, ReportFormat, RunArgs, SelectArgs};
use crate::ctx::Settings;
use crate::error::{Error, Result};
use crate::graph::Registry;
use crate::ledger::system_tables;
use crate::orchestrator::Orchestrator;
use crate::store::Warehouse;

use super::check::check;
use super::listing::{graph, list, list_json, runs};
use super::query::sql;
use super::run::{
    config, finish, notified, run, stop_when_interrupted, warn_unread_settings, with_progress,
};
use crate::table::TableDef;

/// Runs the parsed command.
pub async fn dispatch(cli: Cli) -> Result<ExitCode> {
    let registry = Registry::from_inventory()?;
    let global = cli.global.clone();
    let command = match cli.command {
        Some(command) => command,
        None => Command::Run(RunArgs::parsed_defaults().map_err(|e| Error::msg(e.to_string()))?),
    };
    let reads_settings = matches!(
        command,
        Command::Run(_) | Command::Resume { .. } | Command::Check
    );
    if !reads_settings
        && (!global.settings.is_empty() || global.live || global.opendata_dir.is_some())
    {
        tracing::warn!(
            "`--set`, `--live` and `--opendata-dir` are read by `run`, `resume` and `check` \
             (the pipelines'): this command ignores them"
        );
    }
    if reads_settings {
        refuse_conflicting_settings(&global)?;
    }
    match command {
        Command::Run(args) => {
            super::set_json_reports(args.execution.report_format == ReportFormat::Json);
            run(&registry, &global, args).await
        }
        Command::Plan(selection) => {
            // Only the registry: planning reads no warehouse (and creates none).
            let config = config(&global, &selection, &ExecutionArgs::default());
            say!("{}", config.plan(&registry)?.to_string().trim_end());
            Ok(ExitCode::SUCCESS)
        }
        Command::List { format } => {
            if format == ReportFormat::Json {
                list_json(&registry)?;
            } else {
                list(&registry);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Graph { format } => {
            say!("{}", graph(&registry, format).trim_end());
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => check(&registry, &global).await,
        Command::Sql {
            query,
            as_of,
            format,
        } => {
            let as_of = as_of
                .iter()
                .map(|(table, when)| Ok((table_named(&registry, table)?, *when)))
                .collect::<Result<Vec<_>>>()?;
            // One version per table: a second `--as-of` would be ignored.
            for (index, (table, _)) in as_of.iter().enumerate() {
                if as_of[..index].iter().any(|(earlier, _)| earlier == table) {
                    return Err(Error::msg(format!(
                        "--as-of is given twice for `{}`: a query reads one version of a table",
                        table.qualified_name()
                    )));
                }
            }
            sql(&registry, &global, &query, &as_of, format).await
        }
        Command::Runs {
            run_id,
            limit,
            format,
        } => runs(&registry, &global, run_id, limit, format).await,
        Command::History { table, limit } => {
            let table = table_named(&registry, &table)?;
            let warehouse = existing_warehouse(&global)?;
            refuse_unwritten_object_store(&warehouse, &registry, &global).await?;
            super::inspect::history(&warehouse, table, limit).await
        }
        Command::Restore {
            table,
            to,
            force,
            allow_schema_drift,
            dry_run,
        } => {
            let table = table_named(&registry, &table)?;
            let warehouse = existing_warehouse(&global)?;
            let allowed = super::inspect::RestoreAllowed {
                incremental_readers: force,
                schema_drift: allow_schema_drift,
            };
            super::inspect::restore(&registry, &warehouse, table, to, allowed, dry_run).await
        }
        Command::Describe { table } => {
            let table = table_named(&registry, &table)?;
            let warehouse = existing_warehouse(&global)?;
            refuse_unwritten_object_store(&warehouse, &registry, &global).await?;
            super::inspect::describe(&registry, &warehouse, table).await
        }
        Command::Resume {
            run_id,
            execution,
            force,
            rerun_succeeded,
        } => {
            super::set_json_reports(execution.report_format == ReportFormat::Json);
            let mut config = config(&global, &SelectArgs::default(), &execution);
            config.force = force;
            config.rerun_succeeded = rerun_succeeded;
            let (stop, shutdown) = tokio::sync::watch::channel(false);
            let (abort, aborting) = tokio::sync::watch::channel(false);
            let orchestrator = Orchestrator::new(registry, existing_warehouse(&global)?)
                .with_shutdown(shutdown)
                .with_abort(aborting);
            let orchestrator = notified(orchestrator, &execution)?;
            stop_when_interrupted(stop, abort, execution.stop_grace);
            let settings = config.settings.clone();
            let report = with_progress(&orchestrator, |o| async move {
                o.resume(&run_id, &config).await
            })
            .await?;
            if report.results.is_empty() {
                tell!(
                    "run {}: every pipeline had ended; its end, which the ledger lacked, is \
                     recorded",
                    report.run_id
                );
                // A JSON report still goes to stdout, for whatever reads it.
                if !super::json_reports() {
                    return Ok(ExitCode::SUCCESS);
                }
            } else {
                warn_unread_settings(&settings, &report, &global);
            }
            Ok(finish(&report, true))
        }
        Command::Optimize { tables } => {
            let warehouse = existing_warehouse(&global)?;
            refuse_unwritten_object_store(&warehouse, &registry, &global).await?;
            let mut failed = Vec::new();
            for table in tables_named(&registry, &tables)? {
                match warehouse.optimize(table).await {
                    Ok(report) => say!(
                        "{}: {} file(s) compacted into {} (version {})",
                        report.table,
                        report.files_removed,
                        report.files_added,
                        report
                            .version
                            .map(|v| v.to_string())
                            .unwrap_or_else(|| "-".into())
                    ),
                    // The other tables are still maintained.
                    Err(error) => failed.push(naming(table, error)),
                }
            }
            maintenance_outcome("optimize", failed)
        }
        Command::PruneLedger {
            older_than,
            dry_run,
        } => {
            let warehouse = existing_warehouse(&global)?;
            refuse_unwritten_object_store(&warehouse, &registry, &global).await?;
            super::listing::prune_ledger(&warehouse, older_than, dry_run).await
        }
        Command::Vacuum {
            tables,
            retention,
            dry_run,
            force,
            ignore_pending_readers,
        } => {
            let orchestrator = Orchestrator::new(registry.clone(), existing_warehouse(&global)?);
            let warehouse = orchestrator.warehouse();
            refuse_unwritten_object_store(warehouse, &registry, &global).await?;
            let mut failed = Vec::new();
            // A retention forced short deletes the files a write in progress has not committed:
            // a run of this warehouse's that is running here is waited for.
            let writing = if force {
                running_here(&orchestrator).await
            } else {
                None
            };
            for table in tables_named(&registry, &tables)? {
                let vacuumed = async {
                    // Readers ignored, the ledger is not read (it may be what is broken).
                    let (readers, unknown) = if ignore_pending_readers {
                        (Vec::new(), None)
                    } else {
                        match orchestrator.pending_readers(table).await {
                            Ok(readers) => (readers, None),
                            Err(error) => {
                                let refusal = format!(
                                    "{error}; vacuum could delete files it still has to read \
                                     (--ignore-pending-readers vacuums without it, then read \
                                     its input whole)"
                                );
                                // A dry run deletes nothing: it lists the files, and says the
                                // vacuum would be refused.
                                if !dry_run {
                                    return Err(crate::error::Error::msg(refusal));
                                }
                                (Vec::new(), Some(refusal))
                            }
                        }
                    };
                    let mut report = warehouse
                        .vacuum_guarded(
                            table,
                            retention,
                            dry_run,
                            force,
                            &readers,
                            writing.as_deref(),
                        )
                        .await?;
                    report.refused.extend(unknown);
                    Ok(report)
                };
                let report = match vacuumed.await {
                    Ok(report) => report,
                    Err(error) => {
                        failed.push(naming(table, error));
                        continue;
                    }
                };
                let verb = if report.dry_run {
                    "would delete"
                } else {
                    "deleted"
                };
                say!("{}: {verb} {} file(s)", report.table, report.files.len());
                if report.dry_run {
                    for file in &report.files {
                        say!("  {file}");
                    }
                }
                // The exit status tells a dry run used as a gate what the vacuum would do.
                for reason in report.refused {
                    failed.push(format!("the vacuum would be refused: {reason}"));
                }
            }
            maintenance_outcome("vacuum", failed)
        }
    }
}

/// A run recorded as running whose process is alive on this host (`` run `run_id` (pid …) is
/// running ``), if any, or, when the ledger cannot be read, why none can be ruled out.
/// One elsewhere cannot be checked, and one whose process died writes nothing: neither stops a
/// vacuum.
async fn running_here(orchestrator: &Orchestrator) -> Option<String> {
    match orchestrator.ledger().running().await {
        Ok(runs) => runs
            .into_iter()
            .find(|run| run.process_liveness() == crate::ledger::Liveness::Alive)
            .map(|run| {
                let process = run
                    .run_process()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default();
                format!("run `{}`{process} is running", run.run_id)
            }),
        Err(error) => Some(format!(
            "lakehouse.runs could not be read ({error}), so a run in progress cannot be ruled out"
        )),
    }
}

/// The exit status of a maintenance command over several tables: each failure is told, after
/// the tables that succeeded.
fn maintenance_outcome(command: &str, failed: Vec<String>) -> Result<ExitCode> {
    if failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let count = failed.len();
    for failure in &failed {
        super::failure(format_args!("{failure}"));
    }
    super::notice(format_args!("{command}: {count} table(s) failed"));
    Ok(ExitCode::FAILURE)
}

/// `error`'s text, naming `table` if it does not already.
fn naming(table: &TableDef, error: Error) -> String {
    let text = error.to_string();
    let name = table.qualified_name();
    if text.contains(&name) {
        text
    } else {
        format!("{name}: {text}")
    }
}

/// A warehouse location as a user reads it: a local directory made absolute.
pub(super) fn describe_location(location: &str) -> String {
    match crate::store::location::local_directory(location) {
        Ok(Some(directory)) => std::path::absolute(&directory)
            .unwrap_or(directory)
            .display()
            .to_string(),
        _ => location.to_owned(),
    }
}

pub(super) fn warehouse(global: &GlobalArgs) -> Result<Warehouse> {
    Warehouse::open(global.warehouse())?.with_memory_limit(global.memory_limit)
}

/// The warehouse of a command that only reads or maintains it: a local warehouse that does not
/// exist is an error (most likely a mistyped `--warehouse`), not an empty answer.
pub(super) fn existing_warehouse(global: &GlobalArgs) -> Result<Warehouse> {
    Warehouse::open_existing(global.warehouse())
        .map_err(|error| Error::msg(format!("{error}; check --warehouse or LAKEHOUSE_WAREHOUSE")))?
        .with_memory_limit(global.memory_limit)
}

/// An error when an option and a `--set` give one setting two values (`--live` and `--set
/// opendata.mode=snapshot`): which one was meant is not guessed.
fn refuse_conflicting_settings(global: &GlobalArgs) -> Result<()> {
    let set = |key: &str| {
        global
            .settings
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    if global.live
        && let Some(mode) = set("opendata.mode").filter(|mode| *mode != "live")
    {
        return Err(Error::Refused(format!(
            "`--live` and `--set opendata.mode={mode}` ask for two modes: give one"
        )));
    }
    // A live run reads no snapshot and records none: the directory would be silently unread.
    if global.live || set("opendata.mode") == Some("live") {
        let dir = global
            .opendata_dir
            .as_ref()
            .map(|dir| format!("--opendata-dir {}", dir.display()))
            .or_else(|| set("opendata.dir").map(|dir| format!("--set opendata.dir={dir}")));
        if let Some(dir) = dir {
            let live = match global.live {
                true => "--live",
                false => "--set opendata.mode=live",
            };
            return Err(Error::Refused(format!(
                "`{live}` reads the open-data APIs and would leave `{dir}` unread: to record \
                 their answers there, use `--set opendata.mode=record` instead of `{live}`; to \
                 read that snapshot, leave `{live}` out"
            )));
        }
    }
    // The same directory however written (`./snap`, `../x/snap`, its absolute path, a link).
    let same = |a: &std::path::Path, b: &std::path::Path| match (
        std::fs::canonicalize(a),
        std::fs::canonicalize(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => {
            let normalized = crate::store::location::normalized;
            matches!((normalized(a), normalized(b)), (Ok(a), Ok(b)) if a == b)
        }
    };
    if let Some(dir) = &global.opendata_dir
        && let Some(other) =
            set("opendata.dir").filter(|other| !same(std::path::Path::new(other), dir))
    {
        return Err(Error::Refused(format!(
            "`--opendata-dir {}` and `--set opendata.dir={other}` name two directories: give one",
            dir.display()
        )));
    }
    Ok(())
}

/// An error for an object-store warehouse where none of `registry`'s tables is written: a
/// prefix has no folders to look at, and a mistyped bucket would answer as an empty warehouse
/// (a cron'd `optimize` and `vacuum` on it passed, maintaining nothing; `runs` and `history`
/// told a monitoring script of an empty ledger).
pub(super) async fn refuse_unwritten_object_store(
    warehouse: &Warehouse,
    registry: &Registry,
    global: &GlobalArgs,
) -> Result<()> {
    if crate::store::location::local_directory(global.warehouse())?.is_some() {
        return Ok(());
    }
    let tables = all_tables(registry);
    // A listing each, not a load; a table whose listing fails counts as written.
    for table in &tables {
        if warehouse.has_log(table).await {
            return Ok(());
        }
    }
    Err(Error::msg(format!(
        "no warehouse at {}: none of this lakehouse's {} tables is written there; check \
         --warehouse or LAKEHOUSE_WAREHOUSE (a warehouse is created by its first `orchestrate \
         run`)",
        global.warehouse(),
        tables.len()
    )))
}

/// The pipelines' settings the global options give (`--set`, `--live`, `--opendata-dir`).
pub(super) fn settings_of(global: &GlobalArgs) -> Settings {
    let mut settings = Settings::new();
    if global.live {
        settings.set("opendata.mode", "live");
    }
    // Recorded with the run for `resume`, which may start in another directory: a relative
    // snapshot directory would then name another one.
    let absolute = |dir: &str| match std::path::absolute(dir) {
        Ok(path) if std::path::Path::new(dir).is_relative() => path.display().to_string(),
        _ => dir.to_owned(),
    };
    if let Some(dir) = &global.opendata_dir {
        settings.set("opendata.dir", absolute(&dir.display().to_string()));
    }
    for (key, value) in &global.settings {
        let value = if key == "opendata.dir" {
            absolute(value)
        } else {
            value.clone()
        };
        settings.set(key.clone(), value);
    }
    settings
}

/// Every table the CLI knows: the pipelines' outputs and the system tables.
pub(super) fn all_tables(registry: &Registry) -> Vec<&'static TableDef> {
    registry
        .pipelines()
        .iter()
        .map(|p| p.output)
        .chain(system_tables())
        .collect()
}

/// The table called `name` (`schema.table`), or an error with the closest name.
fn table_named(registry: &Registry, name: &str) -> Result<&'static TableDef> {
    let mut found = tables_named(registry, &[name.to_owned()])?;
    found
        .pop()
        .ok_or_else(|| Error::msg(format!("no table `{name}`")))
}

fn tables_named(registry: &Registry, names: &[String]) -> Result<Vec<&'static TableDef>> {
    let all = all_tables(registry);
    if names.is_empty() {
        return Ok(all);
    }
    names
        .iter()
        .map(|name| {
            all.iter()
                .copied()
                .find(|t| t.qualified_name() == *name)
                .ok_or_else(|| {
                    // A table's name without its schema: every schema's table of that name.
                    let table_part = name.rsplit('.').next().unwrap_or(name);
                    let same_name: Vec<String> = all
                        .iter()
                        .filter(|t| t.name == table_part)
                        .map(|t| format!("`{}`", t.qualified_name()))
                        .collect();
                    let hint = if same_name.is_empty() {
                        let known: Vec<String> = all.iter().map(|t| t.qualified_name()).collect();
                        crate::similar::closest(name, known.iter().map(String::as_str))
                            .map(|s| format!("; did you mean `{s}`?"))
                            .unwrap_or_default()
                    } else if name.contains('.') {
                        // Another schema's table of that name.
                        format!("; did you mean {}?", same_name.join(" or "))
                    } else {
                        format!(
                            ": tables are named `schema.table`; did you mean {}?",
                            same_name.join(" or ")
                        )
                    };
                    Error::msg(format!("no table `{name}`{hint}"))
                })
        })
        .collect()
}
