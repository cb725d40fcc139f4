//! The commands behind the command line.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use comfy_table::{ContentArrangement, Table as Grid, presets};
use futures::StreamExt as _;

use super::args::{
    Cli, Command, DirectionArg, ExecutionArgs, GlobalArgs, GraphFormat, NotifyOnArg, OrderArg,
    OutputFormat, ReportFormat, RunArgs, SelectArgs, SkipPolicyArg,
};
use crate::check::check_plans_with;
use crate::ctx::Settings;
use crate::error::{Error, Result};
use crate::graph::Registry;
use crate::ledger::{Liveness, RunRecord, system_tables};
use crate::orchestrator::{
    Direction, Orchestrator, Order, RunConfig, RunReport, SkipPolicy, Status,
};
use crate::store::Warehouse;
use crate::table::{TableDef, Timestamp};

/// Runs the parsed command.
pub async fn dispatch(cli: Cli) -> Result<ExitCode> {
    let registry = Registry::from_inventory()?;
    let global = cli.global.clone();
    match cli.command.unwrap_or(Command::Run(RunArgs::default())) {
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
            super::inspect::history(&existing_warehouse(&global)?, table, limit).await
        }
        Command::Restore { table, to, force } => {
            let table = table_named(&registry, &table)?;
            super::inspect::restore(&registry, &existing_warehouse(&global)?, table, to, force)
                .await
        }
        Command::Describe { table } => {
            let table = table_named(&registry, &table)?;
            super::inspect::describe(&registry, &existing_warehouse(&global)?, table).await
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
            let orchestrator =
                Orchestrator::new(registry, existing_warehouse(&global)?).with_shutdown(shutdown);
            let orchestrator = notified(orchestrator, &execution)?;
            stop_when_interrupted(stop);
            let settings = config.settings.clone();
            let report = with_progress(&orchestrator, |o| async move {
                o.resume(&run_id, &config).await
            })
            .await?;
            warn_unread_settings(&settings, &report, &global);
            Ok(finish(&report, true))
        }
        Command::Optimize { tables } => {
            let warehouse = existing_warehouse(&global)?;
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
        Command::Vacuum {
            tables,
            retention,
            dry_run,
            force,
            ignore_pending_readers,
        } => {
            let orchestrator = Orchestrator::new(registry.clone(), existing_warehouse(&global)?);
            let warehouse = orchestrator.warehouse();
            let mut failed = Vec::new();
            for table in tables_named(&registry, &tables)? {
                let vacuumed = async {
                    // Readers ignored, the ledger is not read (it may be what is broken).
                    let readers = if ignore_pending_readers {
                        Vec::new()
                    } else {
                        orchestrator.pending_readers(table).await?
                    };
                    warehouse
                        .vacuum_keeping(table, retention, dry_run, force, &readers)
                        .await
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
            }
            maintenance_outcome("vacuum", failed)
        }
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
        super::print_stderr(format_args!("error: {failure}\n"));
    }
    super::print_stderr(format_args!("{command}: {count} table(s) failed\n"));
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
fn describe_location(location: &str) -> String {
    match crate::store::location::local_directory(location) {
        Ok(Some(directory)) => std::path::absolute(&directory)
            .unwrap_or(directory)
            .display()
            .to_string(),
        _ => location.to_owned(),
    }
}

fn warehouse(global: &GlobalArgs) -> Result<Warehouse> {
    Warehouse::open(global.warehouse())?.with_memory_limit(global.memory_limit)
}

/// The warehouse of a command that only reads or maintains it: a local warehouse that does not
/// exist is an error (most likely a mistyped `--warehouse`), not an empty answer.
fn existing_warehouse(global: &GlobalArgs) -> Result<Warehouse> {
    Warehouse::open_existing(global.warehouse())
        .map_err(|error| Error::msg(format!("{error}; check --warehouse or LAKEHOUSE_WAREHOUSE")))?
        .with_memory_limit(global.memory_limit)
}

/// The pipelines' settings the global options give (`--set`, `--live`, `--opendata-dir`).
fn settings_of(global: &GlobalArgs) -> Settings {
    let mut settings = Settings::new();
    if global.live {
        settings.set("opendata.mode", "live");
    }
    if let Some(dir) = &global.opendata_dir {
        settings.set("opendata.dir", dir.display().to_string());
    }
    for (key, value) in &global.settings {
        settings.set(key.clone(), value.clone());
    }
    settings
}

fn config(global: &GlobalArgs, selection: &SelectArgs, execution: &ExecutionArgs) -> RunConfig {
    let settings = settings_of(global);
    let mut config = RunConfig {
        targets: selection.select.clone(),
        exclude: selection.exclude.clone(),
        direction: match selection.direction {
            DirectionArg::Upstream => Direction::Upstream,
            DirectionArg::Downstream => Direction::Downstream,
            DirectionArg::All => Direction::All,
            DirectionArg::None => Direction::None,
        },
        order: match selection.order {
            OrderArg::ProcessFirst => Order::ProcessFirst,
            OrderArg::ProcessLast => Order::ProcessLast,
        },
        fail_fast: execution.fail_fast,
        skip_downstream_on_failure: !execution.no_skip_downstream,
        skip_policy: match execution.skip_policy {
            SkipPolicyArg::All => SkipPolicy::All,
            SkipPolicyArg::Any => SkipPolicy::Any,
        },
        retry_delay: execution.retry_delay,
        settings,
        ..RunConfig::default()
    };
    if execution.serial {
        config.concurrency = 1;
    } else if let Some(n) = execution.concurrency {
        config.concurrency = n.max(1);
    }
    if let Some(retries) = execution.retries {
        config.default_retries = retries;
        for pipeline in inventory::iter::<crate::graph::PipelineDescriptor> {
            config
                .overrides
                .entry(pipeline.name.to_owned())
                .or_default()
                .retries = Some(retries);
        }
    }
    if let Some(timeout) = execution.timeout {
        config.default_timeout = Some(timeout);
        for pipeline in inventory::iter::<crate::graph::PipelineDescriptor> {
            config
                .overrides
                .entry(pipeline.name.to_owned())
                .or_default()
                .timeout = Some(timeout);
        }
    }
    config
}

async fn run(registry: &Registry, global: &GlobalArgs, args: RunArgs) -> Result<ExitCode> {
    let mut config = config(global, &args.selection, &args.execution);
    config.force = args.force;
    config.run_at = args.run_at;
    config.full_refresh = args.full_refresh || args.rebuild;
    config.rebuild = args.rebuild;
    // The selection and range are checked before the warehouse is opened (a local one is
    // created).
    if let (Some(from), Some(to)) = (args.from, args.to) {
        let times = crate::orchestrator::backfill_times(from, to, args.step)?;
        if let Some(last) = times.last()
            && !config.force
        {
            crate::orchestrator::refuse_future_run_at(*last)?;
        }
    }
    if let Some(run_at) = args.run_at
        && !config.force
    {
        crate::orchestrator::refuse_future_run_at(run_at)?;
    }
    tell!("{}", config.plan(registry)?.to_string().trim_end());
    if args.dry_run
        && let (Some(from), Some(to)) = (args.from, args.to)
    {
        return backfill_preview(registry, global, config, (from, to, args.step), args.rerun).await;
    }
    // Where the run writes: a mistyped `--warehouse` (or a cron job started elsewhere, the
    // default being relative) would otherwise build a new warehouse unnoticed.
    match Warehouse::missing(global.warehouse())? {
        Some(directory) => tell!(
            "Warehouse: {} (new: this run creates it)",
            std::path::absolute(&directory)
                .unwrap_or(directory)
                .display()
        ),
        None => tell!("Warehouse: {}", describe_location(global.warehouse())),
    }
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let orchestrator =
        Orchestrator::new(registry.clone(), warehouse(global)?).with_shutdown(shutdown);
    let orchestrator = notified(orchestrator, &args.execution)?;
    run_selected(&orchestrator, config, args, stop, global).await
}

/// `orchestrator`, telling `--notify`'s webhook of each run when set.
fn notified(orchestrator: Orchestrator, execution: &ExecutionArgs) -> Result<Orchestrator> {
    let Some(url) = &execution.notify else {
        return Ok(orchestrator);
    };
    let on = match execution.notify_on {
        NotifyOnArg::Failure => crate::orchestrator::NotifyOn::Failure,
        NotifyOnArg::Always => crate::orchestrator::NotifyOn::Always,
    };
    Ok(orchestrator.with_webhook(crate::orchestrator::Webhook::new(&url.0, on)?))
}

/// Sends `stop` at the first interrupt (no new pipeline starts, running ones finish) and exits
/// at the second.
fn stop_when_interrupted(stop: tokio::sync::watch::Sender<bool>) {
    tokio::spawn(async move {
        if interrupted().await {
            tracing::warn!(
                "interrupted: letting running pipelines finish; interrupt again to abort"
            );
            let _ = stop.send(true);
            if interrupted().await {
                std::process::exit(130);
            }
        } else {
            // Nothing to listen for: the sender stays, or a loop would see a stop at once.
            std::future::pending::<()>().await;
            drop(stop);
        }
    });
}

/// Ctrl-C, or, on Unix, SIGTERM (what `docker stop`, `systemctl stop` and Kubernetes send);
/// `false` when neither can be listened for.
async fn interrupted() -> bool {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            return tokio::select! {
                pressed = tokio::signal::ctrl_c() => pressed.is_ok(),
                _ = terminate.recv() => true,
            };
        }
    }
    tokio::signal::ctrl_c().await.is_ok()
}

/// Runs the plan once or in a loop until it ends or is interrupted (Ctrl-C, SIGTERM).
async fn run_selected(
    orchestrator: &Orchestrator,
    config: RunConfig,
    args: RunArgs,
    stop: tokio::sync::watch::Sender<bool>,
    global: &GlobalArgs,
) -> Result<ExitCode> {
    stop_when_interrupted(stop);
    let settings = config.settings.clone();
    if let (Some(from), Some(to)) = (args.from, args.to) {
        let redo = if args.rerun {
            crate::orchestrator::Redo::All
        } else {
            crate::orchestrator::Redo::Missing
        };
        return backfill(orchestrator, config, (from, to, args.step), redo, global).await;
    }
    match args.every {
        None => {
            let report =
                with_progress(orchestrator, |o| async move { o.run(&config).await }).await?;
            warn_unread_settings(&settings, &report, global);
            Ok(finish(&report, true))
        }
        Some(every) => {
            // Each run's report as it ends; the settings check after the first complete run.
            let mut code = ExitCode::SUCCESS;
            let mut checked = false;
            let on_report = |report: &RunReport| {
                if !checked {
                    checked = warn_unread_settings(&settings, report, global);
                }
                if finish(report, false) != ExitCode::SUCCESS {
                    code = ExitCode::FAILURE;
                }
            };
            let runs = with_progress(orchestrator, |o| async move {
                o.run_loop_with(&config, every, args.duration, args.iterations, on_report)
                    .await
            })
            .await?;
            if runs.failed > 0 {
                tell!(
                    "{} run(s) done, {} more could not start or be recorded (see the log)",
                    runs.done,
                    runs.failed
                );
                return Ok(ExitCode::FAILURE);
            }
            tell!("{} run(s) done", runs.done);
            Ok(code)
        }
    }
}

/// Prints what a backfill over `range` would run at each time, running nothing (and creating no
/// warehouse: without one, every time runs every selected pipeline).
async fn backfill_preview(
    registry: &Registry,
    global: &GlobalArgs,
    config: RunConfig,
    (from, to, step): (Timestamp, Timestamp, std::time::Duration),
    rerun: bool,
) -> Result<ExitCode> {
    let times = crate::orchestrator::backfill_times(from, to, step)?;
    let redo = if rerun {
        crate::orchestrator::Redo::All
    } else {
        crate::orchestrator::Redo::Missing
    };
    let preview = if Warehouse::missing(global.warehouse())?.is_some() {
        let selected: Vec<String> = config
            .plan(registry)?
            .pipelines()
            .map(|p| p.name.to_owned())
            .collect();
        times.iter().map(|t| (*t, selected.clone())).collect()
    } else {
        Orchestrator::new(registry.clone(), existing_warehouse(global)?)
            .backfill_preview(&config, &times, redo)
            .await?
    };
    let to_run = preview
        .iter()
        .filter(|(_, targets)| !targets.is_empty())
        .count();
    say!(
        "backfill (dry run): {} time(s) from {from} every {}, {to_run} to run, {} already done",
        preview.len(),
        humantime::format_duration(step),
        preview.len() - to_run
    );
    for (run_at, targets) in &preview {
        if targets.is_empty() {
            say!("  {run_at}: already done");
        } else {
            say!("  {run_at}: {}", targets.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a backfill over `range` (from, to excluded, step), printing each run's report as it ends.
async fn backfill(
    orchestrator: &Orchestrator,
    config: RunConfig,
    (from, to, step): (Timestamp, Timestamp, std::time::Duration),
    redo: crate::orchestrator::Redo,
    global: &GlobalArgs,
) -> Result<ExitCode> {
    let times = crate::orchestrator::backfill_times(from, to, step)?;
    let planned = times.len();
    tell!(
        "backfill: {planned} time(s), from {from} every {}{}",
        humantime::format_duration(step),
        match redo {
            crate::orchestrator::Redo::Missing => ", skipping those already done",
            crate::orchestrator::Redo::All => ", every one run again",
        }
    );
    let settings = config.settings.clone();
    let mut checked = false;
    let on_report = |report: &RunReport| {
        if !checked {
            checked = warn_unread_settings(&settings, report, global);
        }
        finish(report, false);
    };
    let done = with_progress(orchestrator, |o| async move {
        o.backfill(&config, &times, redo, on_report).await
    })
    .await?;
    let runs = done.runs.len();
    let skipped = match done.already_done.len() {
        0 => String::new(),
        n => format!(", {n} time(s) already done"),
    };
    match done.runs.iter().find(|r| !r.succeeded()) {
        Some(stopped) => {
            let interrupted = stopped
                .results
                .iter()
                .any(|r| r.status == Status::Cancelled)
                && !stopped.results.iter().any(|r| r.status == Status::Failed);
            let go_on = match redo {
                crate::orchestrator::Redo::Missing => "run the same backfill again to go on: the \
                     pipelines done at each time are skipped"
                    .to_owned(),
                crate::orchestrator::Redo::All => format!(
                    "`resume {}`, then backfill --rerun on from the next time",
                    stopped.run_id
                ),
            };
            tell!(
                "backfill {}: run {} at {} did not succeed ({runs} run(s) made{skipped}); \
                 {}{go_on}",
                if interrupted {
                    "interrupted"
                } else {
                    "stopped"
                },
                stopped.run_id,
                stopped.run_at,
                if interrupted { "" } else { "fix it, then " },
            );
            Ok(ExitCode::FAILURE)
        }
        None if !done.completed => {
            tell!(
                "backfill interrupted: {runs} run(s) made{skipped}, of {planned} time(s); run \
                 the same backfill again to go on"
            );
            Ok(ExitCode::FAILURE)
        }
        None => {
            tell!("backfill done: {runs} run(s){skipped}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The first paragraph of a doc comment, on one line (a doc's first line is often half a
/// sentence).
fn first_paragraph(doc: &str) -> String {
    doc.lines()
        .map(str::trim)
        .take_while(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Warns of `--set` keys no pipeline of `report`'s run read (a misspelled key is otherwise
/// silently ignored and the default used). Only a run whose every pipeline ran and succeeded
/// tells: a pipeline that failed, did not run or was replayed may not have read its keys.
/// Returns whether it told.
fn warn_unread_settings(settings: &Settings, report: &RunReport, global: &GlobalArgs) -> bool {
    let complete = report
        .results
        .iter()
        .all(|r| r.status == Status::Succeeded && !r.replayed);
    if !complete {
        return false;
    }
    for (key, closest) in settings.unread() {
        if !global.settings.iter().any(|(set, _)| *set == key) {
            continue;
        }
        let hint = closest
            .map(|c| format!("; did you mean `{c}`?"))
            .unwrap_or_default();
        tracing::warn!("setting `{key}` was not read by any pipeline of the run{hint}");
    }
    true
}

async fn with_progress<T, F, Fut>(orchestrator: &Orchestrator, work: F) -> Result<T>
where
    F: FnOnce(Orchestrator) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let display = tokio::spawn(super::progress::display(receiver));
    let result = work(orchestrator.clone().with_events(sender)).await;
    let _ = display.await;
    result
}

/// Prints a run's report; the exit status it makes. `resumable`: a single run (not one of a
/// loop, whose later runs supersede it, nor of a backfill, which is run again instead), whose
/// failure ends with the command to resume it.
fn finish(report: &RunReport, resumable: bool) -> ExitCode {
    if super::json_reports() {
        say!("{}", report.to_json());
    } else {
        say!("{}", report.render(std::io::stdout().is_terminal()));
    }
    if let Some(error) = &report.unrecorded {
        tell!(
            "The run is not wholly recorded in lakehouse.runs ({error}): `orchestrate runs` shows \
             what is (a run whose end is missing shows as running until this process has ended, \
             then as died), and `orchestrate resume {}` reruns what it did not record as \
             succeeded, finding the writes that landed.",
            report.run_id
        );
        return ExitCode::FAILURE;
    }
    if report.succeeded() {
        ExitCode::SUCCESS
    } else {
        if !resumable {
            return ExitCode::FAILURE;
        }
        tell!(
            "Once mended, `orchestrate resume {}` runs the pipelines that did not succeed, at \
             the same logical time.",
            report.run_id
        );
        ExitCode::FAILURE
    }
}

fn list(registry: &Registry) {
    let mut grid = Grid::new();
    grid.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header([
            "pipeline",
            "level",
            "layer",
            "table",
            "mode",
            "depends on",
            "tags",
            "description",
        ]);
    for p in registry.pipelines() {
        grid.add_row(vec![
            p.name.to_owned(),
            p.level.to_string(),
            p.layer().to_owned(),
            p.output.qualified_name(),
            match p.output.overwrite {
                crate::table::OverwriteScope::Partitions => "overwrite (partitions)".to_owned(),
                crate::table::OverwriteScope::Table => p.output.mode.as_str().to_owned(),
            },
            p.depends_on.join(", "),
            p.tags.join(", "),
            first_paragraph(p.description),
        ]);
    }
    say!("{grid}");
    say!("{} pipeline(s)", registry.len());
}

/// `list --format json`: one object per pipeline.
fn list_json(registry: &Registry) -> Result<()> {
    print_json_lines(registry.pipelines().iter().map(|p| {
        let inputs: Vec<serde_json::Value> = p
            .inputs
            .iter()
            .map(|input| {
                serde_json::json!({
                    "table": input.table.qualified_name(),
                    "incremental": input.incremental,
                })
            })
            .collect();
        serde_json::json!({
            "pipeline": p.name,
            "level": p.level,
            "layer": p.layer(),
            "table": p.output.qualified_name(),
            "mode": p.output.mode.as_str(),
            "depends_on": p.depends_on,
            "inputs": inputs,
            "tags": p.tags,
            "retries": p.retries,
            "timeout_ms": p.timeout_ms,
            "full_snapshot": p.full_snapshot,
            "description": p.description,
        })
    }))
}

/// The graph in Mermaid or dot syntax: one node per pipeline, one edge per dependency.
pub fn graph(registry: &Registry, format: GraphFormat) -> String {
    let mut out = String::new();
    match format {
        GraphFormat::Mermaid => {
            out.push_str("flowchart LR\n");
            for p in registry.pipelines() {
                out.push_str(&format!(
                    "  {}[\"{}<br/>{}\"]\n",
                    p.name,
                    p.name,
                    p.output.qualified_name()
                ));
            }
            for (from, to) in registry.edges() {
                out.push_str(&format!("  {from} --> {to}\n"));
            }
        }
        GraphFormat::Dot => {
            out.push_str("digraph lakehouse {\n  rankdir=LR;\n");
            for p in registry.pipelines() {
                out.push_str(&format!(
                    "  {} [label=\"{}\\n{}\"];\n",
                    p.name,
                    p.name,
                    p.output.qualified_name()
                ));
            }
            for (from, to) in registry.edges() {
                out.push_str(&format!("  {from} -> {to};\n"));
            }
            out.push_str("}\n");
        }
    }
    out
}

async fn check(registry: &Registry, global: &GlobalArgs) -> Result<ExitCode> {
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
            ))
        };
        let (drifted, missing) = match read.await {
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

async fn sql(
    registry: &Registry,
    global: &GlobalArgs,
    query: &str,
    as_of: &[(&'static TableDef, crate::store::AsOf)],
    format: OutputFormat,
) -> Result<ExitCode> {
    let warehouse = existing_warehouse(global)?;
    let tables = all_tables(registry);
    let df = warehouse.sql_as_of(&tables, query, as_of).await?;
    let schema = df.schema().inner().clone();
    // Streamed: a result of any size is written batch by batch, never held whole.
    let failed = |e: datafusion::error::DataFusionError| {
        Error::msg(format!("query failed: {}", Error::from(e)))
    };
    let mut stream = df.execute_stream().await.map_err(failed)?;
    match format {
        OutputFormat::Table => {
            let (mut shown, mut rows) = (Vec::new(), 0);
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(failed)?;
                let room = GRID_ROWS.saturating_sub(rows);
                if room > 0 {
                    shown.push(batch.slice(0, room.min(batch.num_rows())));
                }
                rows += batch.num_rows();
            }
            let grid = grid_of(&schema, &shown)?;
            if rows > GRID_ROWS {
                say!(
                    "{grid}\n{rows} row(s), the first {GRID_ROWS} shown (`--format csv` or \
                     `json` writes them all)"
                );
            } else {
                say!("{grid}\n{rows} row(s)");
            }
        }
        OutputFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(std::io::stdout());
            let mut written = false;
            while let Some(batch) = stream.next().await {
                written = true;
                if quiet_if_reader_gone(writer.write(&batch.map_err(failed)?))?.is_none() {
                    break;
                }
            }
            // The header is written with the first batch: an empty result still has one.
            if !written {
                let empty = arrow::array::RecordBatch::new_empty(schema);
                quiet_if_reader_gone(writer.write(&empty))?;
            }
        }
        OutputFormat::Json => {
            let mut writer = arrow::json::LineDelimitedWriter::new(std::io::stdout());
            let mut open = true;
            while let Some(batch) = stream.next().await {
                if quiet_if_reader_gone(writer.write(&batch.map_err(failed)?))?.is_none() {
                    open = false;
                    break;
                }
            }
            if open {
                quiet_if_reader_gone(writer.finish())?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Rows `sql` draws in its table; the count covers them all.
const GRID_ROWS: usize = 1_000;

/// Query results of `schema` as a table drawn like the other commands' (NULL spelled out).
fn grid_of(
    schema: &arrow::datatypes::Schema,
    batches: &[arrow::array::RecordBatch],
) -> Result<Grid> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let mut grid = Grid::new();
    grid.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    grid.set_header(schema.fields().iter().map(|f| f.name().clone()));
    let options = FormatOptions::default().with_null("NULL");
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            grid.add_row(formatters.iter().map(|f| f.value(row).to_string()));
        }
    }
    Ok(grid)
}

/// `written`, `None` when the reader is gone (`orchestrate sql .. | head`), which is no error.
fn quiet_if_reader_gone(
    written: Result<(), arrow::error::ArrowError>,
) -> Result<Option<()>, arrow::error::ArrowError> {
    match written {
        Ok(()) => Ok(Some(())),
        Err(error) if super::is_broken_pipe(&error) => Ok(None),
        Err(error) => Err(error),
    }
}

/// A run's status for `runs`: `died` for a run recorded as running whose process is gone.
fn run_status(run: &RunRecord) -> String {
    if run_died(run) {
        "died (resume it)".to_owned()
    } else {
        run.status.clone()
    }
}

/// Whether `run` is recorded as running by a process that is gone.
fn run_died(run: &RunRecord) -> bool {
    run.status == Status::Running.as_str() && run.process_liveness() == Liveness::Gone
}

/// `runs --format json`: one object per line, for schedulers and scripts.
fn print_json_lines(rows: impl IntoIterator<Item = serde_json::Value>) -> Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    for row in rows {
        match writeln!(out, "{row}") {
            Ok(()) => {}
            // The reader went away (`| head`): nothing more to say.
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(error) => return Err(Error::msg(format!("writing to stdout: {error}"))),
        }
    }
    Ok(())
}

async fn runs(
    registry: &Registry,
    global: &GlobalArgs,
    run_id: Option<String>,
    limit: usize,
    format: ReportFormat,
) -> Result<ExitCode> {
    let orchestrator = Orchestrator::new(registry.clone(), existing_warehouse(global)?);
    let time = |t: Option<Timestamp>| t.map(|t| t.to_rfc3339());
    if format == ReportFormat::Json {
        match run_id {
            None => {
                let runs = orchestrator.ledger().runs(limit).await?;
                print_json_lines(runs.iter().map(|r| {
                    serde_json::json!({
                        "run_id": r.run_id,
                        "sequence": r.sequence,
                        "run_at": r.run_at.to_rfc3339(),
                        "status": if run_died(r) { "died" } else { r.status.as_str() },
                        "started_at": r.started_at.to_rfc3339(),
                        "finished_at": time(r.finished_at),
                        "duration_ms": r.duration_ms,
                        "rows_written": r.rows_written,
                        "rows_deleted": r.rows_deleted,
                        "selection": r.selection,
                    })
                }))?;
            }
            Some(prefix) => {
                let (run_id, records) = run_records(&orchestrator, prefix).await?;
                print_json_lines(records.iter().filter(|r| r.kind == "pipeline").map(|r| {
                    serde_json::json!({
                        "run_id": run_id,
                        "pipeline": r.pipeline,
                        "attempt": r.attempt,
                        "status": r.status,
                        "started_at": r.started_at.to_rfc3339(),
                        "finished_at": time(r.finished_at),
                        "duration_ms": r.duration_ms,
                        "rows_written": r.rows_written,
                        "rows_deleted": r.rows_deleted,
                        "table": r.output_table,
                        "table_version": r.table_version,
                        "error": r.error,
                    })
                }))?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut grid = Grid::new();
    grid.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    match run_id {
        None => {
            grid.set_header([
                "run",
                "sequence",
                "run_at",
                "status",
                "rows",
                "duration",
                "selection",
            ]);
            let runs = orchestrator.ledger().runs(limit).await?;
            for r in &runs {
                grid.add_row(vec![
                    r.run_id.clone(),
                    r.sequence.to_string(),
                    r.run_at.to_string(),
                    run_status(r),
                    crate::orchestrator::report::rows_text(
                        r.rows_written.map(|n| n as u64),
                        r.rows_deleted.map(|n| n as u64),
                    ),
                    r.duration_ms
                        .map(|ms| format!("{:.2}s", ms as f64 / 1000.0))
                        .unwrap_or_default(),
                    r.selection.clone().unwrap_or_default(),
                ]);
            }
            say!("{grid}");
            if runs.is_empty() {
                say!("no run recorded in {} yet", global.warehouse());
            }
        }
        Some(prefix) => {
            let (_, records) = run_records(&orchestrator, prefix).await?;
            grid.set_header([
                "pipeline", "attempt", "status", "rows", "version", "duration", "error",
            ]);
            for r in records.iter().filter(|r| r.kind == "pipeline") {
                grid.add_row(vec![
                    r.pipeline.clone().unwrap_or_default(),
                    r.attempt.map(|a| a.to_string()).unwrap_or_default(),
                    r.status.clone(),
                    crate::orchestrator::report::rows_text(
                        r.rows_written.map(|n| n as u64),
                        r.rows_deleted.map(|n| n as u64),
                    ),
                    r.table_version.map(|v| v.to_string()).unwrap_or_default(),
                    r.duration_ms
                        .map(|ms| format!("{:.2}s", ms as f64 / 1000.0))
                        .unwrap_or_default(),
                    r.error.clone().unwrap_or_default(),
                ]);
            }
            say!("{grid}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The id of the run `prefix` names (a unique start of it), and its records.
async fn run_records(
    orchestrator: &Orchestrator,
    prefix: String,
) -> Result<(String, Vec<RunRecord>)> {
    let run_id = orchestrator
        .ledger()
        .resolve_run_id(&prefix)
        .await?
        .unwrap_or(prefix);
    let records = orchestrator.ledger().run(&run_id).await?;
    if records.is_empty() {
        return Err(Error::msg(format!(
            "no run `{run_id}` in the ledger; see `orchestrate runs`"
        )));
    }
    Ok((run_id, records))
}

/// Every table the CLI knows: the pipelines' outputs and the system tables.
fn all_tables(registry: &Registry) -> Vec<&'static TableDef> {
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
                    let known: Vec<String> = all.iter().map(|t| t.qualified_name()).collect();
                    let hint = crate::similar::closest(name, known.iter().map(String::as_str))
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                    Error::msg(format!("no table `{name}`{hint}"))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_doc_comments_first_paragraph_is_one_line() {
        let doc = "Rebuilds the calendar (fixes the\noriginal's: it ended yesterday).\n\nMore.";
        assert_eq!(
            first_paragraph(doc),
            "Rebuilds the calendar (fixes the original's: it ended yesterday)."
        );
        assert_eq!(first_paragraph(""), "");
    }
}
