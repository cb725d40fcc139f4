//! The commands behind the command line: dispatch, and running the pipelines (`run`, `resume`,
//! backfills, loops) with their reports; `check`, `sql` and the listings have modules of their own.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use super::args::{
    Cli, Command, DirectionArg, ExecutionArgs, GlobalArgs, NotifyOnArg, OrderArg, ReportFormat,
    RunArgs, SelectArgs, SkipPolicyArg,
};
use crate::ctx::Settings;
use crate::error::{Error, Result};
use crate::graph::Registry;
use crate::ledger::system_tables;
use crate::orchestrator::{
    Direction, Orchestrator, Order, RunConfig, RunReport, SkipPolicy, Status,
};
use crate::store::Warehouse;

use super::check::check;
use super::listing::{graph, list, list_json, runs};
use super::query::sql;
use crate::table::{TableDef, Timestamp};

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

/// A run recorded as running whose process is alive on this host (`` `run_id` (pid …) ``), if
/// any.
/// One elsewhere cannot be checked, and one whose process died writes nothing: neither stops a
/// vacuum. A ledger that cannot be read is warned about.
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
                format!("`{}`{process}", run.run_id)
            }),
        Err(error) => {
            tracing::warn!("not checked for a run in progress: {error}");
            None
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
fn describe_location(location: &str) -> String {
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
    let (abort, aborting) = tokio::sync::watch::channel(false);
    let orchestrator = Orchestrator::new(registry.clone(), warehouse(global)?)
        .with_shutdown(shutdown)
        .with_abort(aborting);
    let orchestrator = notified(orchestrator, &args.execution)?;
    run_selected(&orchestrator, config, args, (stop, abort), global).await
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

/// How long an aborted run gets to cut its pipelines and record its end before the process
/// exits anyway (an attempt blocking without awaiting gets 30 s to stop).
const ABORT_GRACE: std::time::Duration = std::time::Duration::from_secs(45);

/// Sends `stop` at the first interrupt (no new pipeline starts, running ones finish), `abort`
/// at the second, or `grace` after a SIGTERM (running ones are cut short, and the run's end
/// recorded: the process manager kills the process soon after its SIGTERM), and exits at the
/// third, or when the aborted run takes longer than [`ABORT_GRACE`].
fn stop_when_interrupted(
    stop: tokio::sync::watch::Sender<bool>,
    abort: tokio::sync::watch::Sender<bool>,
    grace: std::time::Duration,
) {
    tokio::spawn(async move {
        if let Some(first) = interrupted().await {
            let _ = stop.send(true);
            let second = if first == Interrupt::Terminate {
                tracing::warn!(
                    grace = %humantime::format_duration(grace),
                    "terminated: letting running pipelines finish for the grace given \
                     (`--stop-grace`), then cutting them short"
                );
                tokio::select! {
                    _ = interrupted() => "interrupted again",
                    () = tokio::time::sleep(grace) => "the grace after SIGTERM is over",
                }
            } else {
                tracing::warn!(
                    "interrupted: letting running pipelines finish; interrupt again to abort"
                );
                match interrupted().await {
                    // A supervisor stopping the process after a Ctrl-C: its grace applies.
                    Some(Interrupt::Terminate) => tokio::select! {
                        _ = interrupted() => "interrupted again",
                        () = tokio::time::sleep(grace) => "the grace after SIGTERM is over",
                    },
                    _ => "interrupted again",
                }
            };
            tracing::error!(
                "{second}: cutting the running pipelines short and recording the run's end; \
                 interrupt again to exit at once"
            );
            let _ = abort.send(true);
            tokio::select! {
                _ = interrupted() => {}
                () = tokio::time::sleep(ABORT_GRACE) => {}
            }
            std::process::exit(130);
        } else {
            // Nothing to listen for: the sender stays, or a loop would see a stop at once.
            std::future::pending::<()>().await;
            drop((stop, abort));
        }
    });
}

/// What interrupted the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Interrupt {
    /// Ctrl-C (SIGINT): someone at the terminal, who can press it again.
    CtrlC,
    /// SIGTERM: what `docker stop`, `systemctl stop` and Kubernetes send, a kill following.
    Terminate,
}

/// Ctrl-C, or, on Unix, SIGTERM; `None` when neither can be listened for.
async fn interrupted() -> Option<Interrupt> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            return tokio::select! {
                pressed = tokio::signal::ctrl_c() => pressed.ok().map(|()| Interrupt::CtrlC),
                _ = terminate.recv() => Some(Interrupt::Terminate),
            };
        }
    }
    tokio::signal::ctrl_c()
        .await
        .ok()
        .map(|()| Interrupt::CtrlC)
}

/// Runs the plan once or in a loop until it ends or is interrupted (Ctrl-C, SIGTERM).
async fn run_selected(
    orchestrator: &Orchestrator,
    config: RunConfig,
    args: RunArgs,
    (stop, abort): (
        tokio::sync::watch::Sender<bool>,
        tokio::sync::watch::Sender<bool>,
    ),
    global: &GlobalArgs,
) -> Result<ExitCode> {
    stop_when_interrupted(stop, abort, args.execution.stop_grace);
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
        // (An existing directory holding no table yet is a warehouse with nothing done, as a
        // real backfill takes it.)
        Orchestrator::new(registry.clone(), warehouse(global)?)
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

/// Warns of `--set` keys no pipeline of `report`'s run read (a misspelled key is otherwise
/// silently ignored and the default used). Only a run whose every pipeline ran and succeeded
/// tells: a pipeline that failed, did not run or was replayed may not have read its keys.
/// Returns whether it told.
fn warn_unread_settings(settings: &Settings, report: &RunReport, global: &GlobalArgs) -> bool {
    let complete = report
        .results
        .iter()
        .all(|r| r.status == Status::Succeeded && !r.replayed && !r.nothing_new);
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
        // Only pipelines no longer registered did not succeed: a resume has nothing to run.
        let only_removed = report
            .results
            .iter()
            .all(|r| r.status == crate::orchestrator::Status::Succeeded);
        if !resumable || only_removed {
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
