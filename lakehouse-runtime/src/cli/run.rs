//! Running the pipelines from the command line (`run`, `resume`, backfills, loops): the run's
//! configuration from the arguments, interrupts, progress, the report and the exit status.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use super::args::{
    DirectionArg, ExecutionArgs, GlobalArgs, NotifyOnArg, OrderArg, RunArgs, SelectArgs,
    SkipPolicyArg,
};
use super::commands::{describe_location, settings_of, warehouse};
use crate::ctx::Settings;
use crate::error::Result;
use crate::graph::Registry;
use crate::orchestrator::{
    Direction, Orchestrator, Order, RunConfig, RunReport, SkipPolicy, Status,
};
use crate::store::Warehouse;
use crate::table::Timestamp;

/// The run configuration the command line gives.
pub(super) fn config(
    global: &GlobalArgs,
    selection: &SelectArgs,
    execution: &ExecutionArgs,
) -> RunConfig {
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

pub(super) async fn run(
    registry: &Registry,
    global: &GlobalArgs,
    args: RunArgs,
) -> Result<ExitCode> {
    let mut config = config(global, &args.selection, &args.execution);
    config.force = args.force;
    config.run_at = args.run_at;
    config.full_refresh = args.full_refresh || args.rebuild;
    config.rebuild = args.rebuild;
    config.ledger_retention = args.ledger_retention;
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
pub(super) fn notified(
    orchestrator: Orchestrator,
    execution: &ExecutionArgs,
) -> Result<Orchestrator> {
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
pub(super) fn stop_when_interrupted(
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
            let mut unsuccessful = 0usize;
            let on_report = |report: &RunReport| {
                if !checked {
                    checked = warn_unread_settings(&settings, report, global);
                }
                if finish(report, false) != ExitCode::SUCCESS {
                    code = ExitCode::FAILURE;
                    // (One not recorded is counted with those that could not be.)
                    if report.unrecorded.is_none() {
                        unsuccessful += 1;
                    }
                }
            };
            let runs = with_progress(orchestrator, |o| async move {
                o.run_loop_with(&config, every, args.duration, args.iterations, on_report)
                    .await
            })
            .await?;
            // (A run whose pipelines failed is done, and counted apart.)
            let mut of_them = match unsuccessful {
                0 => String::new(),
                n => format!(" ({n} not successful)"),
            };
            if runs.skipped > 0 {
                of_them.push_str(&format!(
                    ", {} tick(s) skipped beside another process's run",
                    runs.skipped
                ));
            }
            if runs.failed > 0 {
                tell!(
                    "{} run(s) done{of_them}, {} more could not start or be recorded (see the log)",
                    runs.done,
                    runs.failed
                );
                return Ok(ExitCode::FAILURE);
            }
            tell!("{} run(s) done{of_them}", runs.done);
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
pub(super) fn warn_unread_settings(
    settings: &Settings,
    report: &RunReport,
    global: &GlobalArgs,
) -> bool {
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

pub(super) async fn with_progress<T, F, Fut>(orchestrator: &Orchestrator, work: F) -> Result<T>
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
pub(super) fn finish(report: &RunReport, resumable: bool) -> ExitCode {
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
