//! Command-line arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run and inspect the lakehouse: plan, run, query and maintain its pipelines and tables.
#[derive(Parser, Debug)]
#[command(name = "orchestrate", version)]
pub struct Cli {
    /// What to do (default: `run` every pipeline).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of every command.
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// Where the warehouse is unless `--warehouse` or `LAKEHOUSE_WAREHOUSE` says otherwise.
pub const DEFAULT_WAREHOUSE: &str = "data/warehouse";

impl GlobalArgs {
    /// The warehouse location: the one given, or [`DEFAULT_WAREHOUSE`].
    pub fn warehouse(&self) -> &str {
        self.warehouse_given.as_deref().unwrap_or(DEFAULT_WAREHOUSE)
    }
}

/// Options of every command.
#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Warehouse location: a directory, or an object-store URL with the matching feature
    /// [default: data/warehouse].
    // No clap default: whether it was given is what `check` needs to know (see `warehouse()`).
    #[arg(
        long = "warehouse",
        global = true,
        env = "LAKEHOUSE_WAREHOUSE",
        value_name = "WAREHOUSE"
    )]
    pub warehouse_given: Option<String>,
    /// Log line format (logs go to stderr; reports and answers to stdout).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// A pipeline setting, `key=value` (repeatable), e.g. `--set erp.rows=500`; a key no pipeline
    /// of a complete run reads is warned about.
    #[arg(long = "set", global = true, value_name = "KEY=VALUE", value_parser = parse_setting)]
    pub settings: Vec<(String, String)>,
    /// Call the real open-data APIs instead of reading the bundled snapshots.
    #[arg(long, global = true)]
    pub live: bool,
    /// Read open-data snapshots from this directory instead of the bundled ones (with `--set
    /// opendata.mode=record`, the directory the responses are recorded into).
    #[arg(long, global = true, value_name = "DIR")]
    pub opendata_dir: Option<PathBuf>,
    /// Memory for query operators and merge and SCD2 sources, e.g. `8GiB`, `512MiB` (default 4GiB):
    /// sorts and aggregates spill to disk beyond it, what cannot spill fails with an error
    /// naming the table.
    #[arg(
        long,
        global = true,
        env = "LAKEHOUSE_MEMORY_LIMIT",
        value_name = "SIZE",
        value_parser = parse_memory_size
    )]
    pub memory_limit: Option<usize>,
}

/// Log line format.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the selected pipelines (the default command).
    Run(RunArgs),
    /// Print the groups the selection would run, without running anything.
    Plan(SelectArgs),
    /// List the pipelines with their layer, table, dependencies and tags.
    List {
        /// A table, or one JSON object per pipeline on stdout (with its inputs, retries and
        /// time limit), for tooling.
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
    },
    /// Print the dependency graph.
    Graph {
        /// Output format.
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
    },
    /// Validate the graph, build every plan on empty tables, compare declared schemas and CHECK
    /// constraints with the Delta tables and their stored rows, and look for data files the
    /// tables reference that are gone, tables it cannot read or whose protocol delta-rs cannot
    /// write, and tables older than their `freshness`; exits 1 on any of these but a schema
    /// drift the table's writes accept.
    Check,
    /// Run a read-only SQL query over the tables (`schema.table`; only those it names are read).
    Sql {
        /// The query, e.g. "SELECT * FROM gold.dim_product LIMIT 5".
        query: String,
        /// Read a table as it was: `schema.table=VERSION`, or `schema.table=TIME` (RFC 3339 or a
        /// date: its latest version committed by then); repeatable. See `history`.
        #[arg(long, value_name = "TABLE=VERSION|TIME", value_parser = parse_as_of)]
        as_of: Vec<(String, crate::store::AsOf)>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Show recent runs, or the attempts of one run.
    Runs {
        /// A run id (or a unique start of it, such as `r000007`), to show its attempts.
        run_id: Option<String>,
        /// How many runs to show (the list; a run's attempts are all shown).
        #[arg(long, default_value_t = 20, value_parser = parse_count, conflicts_with = "run_id")]
        limit: usize,
        /// A table, or one JSON object per run (per attempt, of one run) on stdout: `status` is
        /// `died` for a run whose process is gone, times are RFC 3339.
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
    },
    /// Show a table's commits, newest first: version, time, operation, rows and files changed,
    /// and the run that made each.
    History {
        /// The table, `schema.table`.
        table: String,
        /// How many commits to show.
        #[arg(long, default_value_t = 20, value_parser = parse_count)]
        limit: usize,
    },
    /// Show a table: its declaration (description, mode, key, columns) beside what is stored
    /// (version, size, properties).
    Describe {
        /// The table, `schema.table`.
        table: String,
    },
    /// Bring a table back to an earlier version, in a new commit (Delta's RESTORE).
    Restore {
        /// The table, `schema.table`.
        table: String,
        /// The version (see `history`), or a time (RFC 3339 or a date): the latest commit by
        /// then.
        #[arg(long, value_name = "VERSION|TIME", value_parser = parse_when)]
        to: crate::store::AsOf,
        /// Restore a table that pipelines read incrementally (`Changes<T>`; rebuild them after).
        #[arg(long)]
        force: bool,
        /// Restore to a version whose schema does not fit the table's declaration, or whose
        /// rows fail a declared CHECK constraint it lacks (its readers or writes fail until it
        /// is written anew).
        #[arg(long)]
        allow_schema_drift: bool,
        /// Say what the restore would do (its refusals too) without committing it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Re-run the failed, skipped and cancelled pipelines of a run, and those it planned but
    /// never started, with its `run_at` (a full refresh or rebuild goes on as one).
    Resume {
        /// The run id, or a unique start of it such as `r000007` (see `runs`).
        run_id: String,
        /// Execution options.
        #[command(flatten)]
        execution: ExecutionArgs,
        /// Resume a run recorded as running whose process cannot be checked from here (another
        /// host or container): make sure it is gone.
        #[arg(long)]
        force: bool,
        /// Re-execute the pipelines that succeeded too: one whose write this run committed is
        /// replayed from its commit (its sources are not called again); one that committed
        /// nothing (a merge that changed no row) runs again.
        #[arg(long)]
        rerun_succeeded: bool,
    },
    /// Compact the files of tables (and Z-order them when they declare `z_order`).
    Optimize {
        /// Tables (`schema.table`); all by default.
        tables: Vec<String>,
    },
    /// Delete files older versions no longer need.
    Vacuum {
        /// Tables (`schema.table`); all by default.
        tables: Vec<String>,
        /// Keep files needed by versions newer than this [default: each table's
        /// `delta.deletedFileRetentionDuration`, 7 days unless set].
        #[arg(long, value_parser = parse_duration)]
        retention: Option<Duration>,
        /// List the files without deleting them.
        #[arg(long)]
        dry_run: bool,
        /// Allow a retention under the table's own (and, with an explicit `--retention`, a
        /// table whose own Delta cannot read). Incremental readers are still checked.
        #[arg(long)]
        force: bool,
        /// Vacuum even when an incremental (`Changes<T>`) reader has commits to read older than
        /// the retention, whose files it may delete: the reader then needs `--full-refresh`
        /// (or `--rebuild`). The ledger is not read.
        #[arg(long)]
        ignore_pending_readers: bool,
    },
    /// Remove from the run ledger (`lakehouse.*`) the runs that ended long ago, with their
    /// metrics, findings, rejects and the records of ingested files since deleted. Kept: each
    /// pipeline's latest success, runs recorded as running, unfinished refreshes, and the
    /// records of files still there. A backfill from before the pruned runs' times then needs
    /// `--rerun`; `vacuum` deletes the replaced files later.
    PruneLedger {
        /// Prune the runs that ended longer ago than this, e.g. `90d`.
        #[arg(long, value_parser = parse_positive_duration)]
        older_than: Duration,
        /// Count what would be removed, changing nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Which runs `--notify` is told of.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NotifyOnArg {
    /// Runs that did not succeed.
    #[default]
    Failure,
    /// Every run.
    Always,
}

/// Graph output formats.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphFormat {
    /// Mermaid flowchart.
    Mermaid,
    /// Graphviz dot.
    Dot,
}

/// Query output formats.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// A table.
    Table,
    /// CSV with a header.
    Csv,
    /// One JSON object per line.
    Json,
}

/// Which pipelines.
#[derive(Args, Debug, Clone, Default)]
pub struct SelectArgs {
    /// Targets: names, `+name` (with upstreams), `name+` (with downstreams), `+name+` (both),
    /// `tag:x`, `layer:silver`. Repeatable or comma-separated. All pipelines when absent.
    #[arg(long, short = 's', value_delimiter = ',', value_parser = parse_selector)]
    pub select: Vec<String>,
    /// Pipelines left out of the selection, in the same syntax (`+name` with its upstreams);
    /// the others run on their current tables. Repeatable or comma-separated.
    #[arg(long, short = 'x', value_delimiter = ',', value_parser = parse_selector)]
    pub exclude: Vec<String>,
    /// Neighbours selected with plain names.
    #[arg(long, value_enum, default_value_t = DirectionArg::None)]
    pub direction: DirectionArg,
    /// When pipelines start: as soon as their upstreams end, or as late as their downstreams
    /// allow (group by group).
    #[arg(long, value_enum, default_value_t = OrderArg::ProcessFirst)]
    pub order: OrderArg,
}

/// `--direction`.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DirectionArg {
    /// Everything upstream of the targets too.
    Upstream,
    /// Everything downstream of the targets too.
    Downstream,
    /// Both.
    All,
    /// The targets only.
    #[default]
    None,
}

/// `--order`.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OrderArg {
    /// As soon as possible: each pipeline once its upstreams in the run have ended.
    #[default]
    ProcessFirst,
    /// As late as possible: group by group, each pipeline just before its first downstream.
    ProcessLast,
}

/// `--skip-policy`.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SkipPolicyArg {
    /// Skip when any upstream in the run failed or was skipped (the default: a pipeline never
    /// builds on an upstream that failed to refresh).
    #[default]
    Any,
    /// Skip only when every upstream in the run failed or was skipped.
    All,
}

/// `--format` of run reports and listings.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReportFormat {
    /// A table, for people.
    #[default]
    Table,
    /// JSON objects on stdout, one a line (the option's help says of what), everything else on
    /// stderr: for schedulers and scripts.
    Json,
}

impl Command {
    /// How many pipelines this command may run at once (1 for one that runs none).
    pub(crate) fn concurrency(&self) -> usize {
        let execution = match self {
            Command::Run(run) => &run.execution,
            Command::Resume { execution, .. } => execution,
            _ => return 1,
        };
        if execution.serial {
            1
        } else {
            execution
                .concurrency
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        }
    }
}

/// How to execute.
#[derive(Args, Debug, Clone, Default)]
pub struct ExecutionArgs {
    /// How each run's report is printed: a table, or one JSON object per run on stdout (the
    /// webhook's fields).
    #[arg(long = "format", value_enum, default_value_t = ReportFormat::Table)]
    pub report_format: ReportFormat,
    /// Run one pipeline at a time (`--concurrency 1`).
    #[arg(long, conflicts_with = "concurrency")]
    pub serial: bool,
    /// POST each run's outcome as JSON to this webhook (Slack, Mattermost, a pager): https, or http
    /// to this machine.
    #[arg(
        long,
        value_name = "URL",
        env = "LAKEHOUSE_NOTIFY_URL",
        hide_env_values = true,
        value_parser = WebhookUrlParser
    )]
    pub notify: Option<WebhookUrl>,
    /// Which runs `--notify` is told of.
    #[arg(long, value_enum, default_value_t = NotifyOnArg::Failure, requires = "notify")]
    pub notify_on: NotifyOnArg,
    /// Pipelines running at once (default: the number of cores).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub concurrency: Option<usize>,
    /// Stop at the first failure and cancel running pipelines.
    #[arg(long)]
    pub fail_fast: bool,
    /// After SIGTERM (`docker stop`, Kubernetes, systemd), how long running pipelines get to
    /// finish before they are cut short (5 s more at most) and the run's end is recorded: keep
    /// it under the supervisor's own grace by 8 s or more (Kubernetes 30 s; Docker 10 s:
    /// `2s`). Ctrl-C waits for a second one.
    #[arg(long, value_name = "DURATION", default_value = "20s", env = "LAKEHOUSE_STOP_GRACE",
          value_parser = parse_duration)]
    pub stop_grace: Duration,
    /// Run pipelines even when their upstreams failed.
    #[arg(long, conflicts_with = "skip_policy")]
    pub no_skip_downstream: bool,
    /// Which upstream failures skip a pipeline.
    #[arg(long, value_enum, default_value_t = SkipPolicyArg::Any)]
    pub skip_policy: SkipPolicyArg,
    /// Extra attempts for every pipeline, overriding declarations (0 to 100).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=100))]
    pub retries: Option<u32>,
    /// Time limit per attempt for every pipeline, overriding declarations (e.g. `5m`).
    #[arg(long, value_parser = parse_positive_duration)]
    pub timeout: Option<Duration>,
    /// First retry delay (doubled per attempt up to 60 s or this delay if longer, jittered down
    /// to half at most), e.g. `1s`.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub retry_delay: Duration,
}

impl RunArgs {
    /// The options of `run` given none: clap's defaults, and the environment variables it reads
    /// (an invalid one is an error, as with `run`), which `RunArgs::default()` lacks.
    pub fn parsed_defaults() -> Result<RunArgs, clap::Error> {
        use clap::FromArgMatches as _;
        let command = RunArgs::augment_args(clap::Command::new("orchestrate"));
        command
            .try_get_matches_from(["orchestrate"])
            .and_then(|matches| RunArgs::from_arg_matches(&matches))
    }
}

/// `run` options.
#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    /// Selection.
    #[command(flatten)]
    pub selection: SelectArgs,
    /// Execution.
    #[command(flatten)]
    pub execution: ExecutionArgs,
    /// Start beside a run of some of the same pipelines still going in another process of this
    /// host, go on although a full refresh or rebuild of them did not finish, and accept a
    /// `--run-at` or backfill time more than five minutes in the future.
    #[arg(long)]
    pub force: bool,
    /// The run's logical time (RFC 3339, or a date for its midnight UTC), e.g. to backfill a
    /// past day; default: now.
    #[arg(long, value_parser = parse_instant, conflicts_with = "every")]
    pub run_at: Option<crate::table::Timestamp>,
    /// Read the selected pipelines' incremental (`Changes<T>`) inputs whole, not from their last
    /// success (after an upstream table was recreated or vacuumed), and every file
    /// `read_new_files` lists, ingested or not; an append output gets the rows again.
    #[arg(long, conflicts_with = "every")]
    pub full_refresh: bool,
    /// A full refresh that replaces the append tables the selected pipelines build from
    /// incremental inputs or new files, instead of adding the rows again (rows their upstreams no longer
    /// hold are then gone from them).
    #[arg(long, conflicts_with = "every")]
    pub rebuild: bool,
    /// Backfill: one run per logical time from this one (RFC 3339, or a date for its midnight
    /// UTC), every `--step`, up to `--to`, skipping the times already done; stops after the
    /// first run that does not succeed (run the same backfill again to go on).
    #[arg(
        long,
        value_parser = parse_instant,
        requires = "to",
        conflicts_with_all = ["run_at", "every", "full_refresh", "rebuild"]
    )]
    pub from: Option<crate::table::Timestamp>,
    /// Backfill: the end of the range, not included (RFC 3339, or a date for its midnight UTC).
    #[arg(long, value_parser = parse_instant, requires = "from")]
    pub to: Option<crate::table::Timestamp>,
    /// Backfill: the time between two runs' logical times.
    #[arg(long, default_value = "1d", value_parser = parse_positive_duration, requires = "from")]
    pub step: Duration,
    /// Backfill: run every time again in a new run, also those at which the selected pipelines
    /// already succeeded (by default they are skipped, and only the pipelines without a success at
    /// a time run).
    #[arg(long, requires = "from")]
    pub rerun: bool,
    /// Backfill: print each time and the pipelines it would run (or that it is already done),
    /// running nothing.
    #[arg(long, requires = "from", conflicts_with = "report_format")]
    pub dry_run: bool,
    /// After the run, remove from the ledger the runs that ended longer ago than this, e.g.
    /// `90d` (as `prune-ledger --older-than`), at most once a day: for a loop, or a run a
    /// scheduler starts often (not a backfill).
    #[arg(long, value_parser = parse_positive_duration, conflicts_with_all = ["dry_run", "from"])]
    pub ledger_retention: Option<Duration>,
    /// Repeat the run at this interval (loop mode), e.g. `60s`; runs never overlap: one longer
    /// than the interval skips the starts it overran.
    #[arg(long, value_parser = parse_positive_duration)]
    pub every: Option<Duration>,
    /// With `--every`: stop looping after this long, e.g. `10m` (default: until Ctrl-C).
    #[arg(long = "for", value_parser = parse_positive_duration, requires = "every")]
    pub duration: Option<Duration>,
    /// With `--every`: stop looping after this many runs.
    #[arg(long, value_parser = parse_count, requires = "every")]
    pub iterations: Option<usize>,
}

/// An RFC 3339 timestamp, or a date (`2026-11-01`) for its midnight UTC, in years 1 to 9999
/// (a signed or five-digit year is almost certainly a typo).
fn parse_instant(text: &str) -> Result<crate::table::Timestamp, String> {
    use chrono::Datelike as _;
    let expected = "expected a date such as 2026-01-31 or an RFC 3339 timestamp such as \
                    2026-01-31T06:00:00Z";
    let parsed = match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(date) => Some(date.and_time(chrono::NaiveTime::MIN).and_utc()),
        Err(_) => match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(instant) => Some(instant.to_utc()),
            // A time of day without a zone is the reader's local time as often as UTC.
            Err(_)
                if ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                    .iter()
                    .any(|format| chrono::NaiveDateTime::parse_from_str(text, format).is_ok()) =>
            {
                return Err(format!(
                    "{text:?} has no time zone: add `Z` for UTC, or the offset of the time \
                     meant (`+01:00`)"
                ));
            }
            Err(_) => crate::table::Timestamp::parse(text)
                .and_then(|t| chrono::DateTime::from_timestamp_micros(t.0)),
        },
    };
    let Some(instant) = parsed else {
        return Err(format!("{expected}, got {text:?}"));
    };
    if !(1..=9999).contains(&instant.year()) {
        return Err(format!(
            "{expected} (years 1 to 9999), got {text:?}, in year {}",
            instant.year()
        ));
    }
    Ok(crate::table::Timestamp(instant.timestamp_micros()))
}

/// `schema.table=VERSION` or `schema.table=TIME`.
fn parse_as_of(text: &str) -> Result<(String, crate::store::AsOf), String> {
    let Some((table, when)) = text.split_once('=') else {
        return Err(format!(
            "expected TABLE=VERSION or TABLE=TIME, such as gold.fact_sales=3, got {text:?}"
        ));
    };
    Ok((table.trim().to_owned(), parse_when(when)?))
}

/// A version (`3`), or a time (RFC 3339 or a date).
fn parse_when(text: &str) -> Result<crate::store::AsOf, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map(crate::store::AsOf::Version)
            .map_err(|_| format!("version {text} is larger than any table's ({})", u64::MAX));
    }
    Ok(crate::store::AsOf::Time(parse_instant(text)?))
}

/// A webhook URL: it often holds a token, so `Debug` does not show it.
#[derive(Clone)]
pub struct WebhookUrl(pub String);

impl std::fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookUrl(…)")
    }
}

/// `--notify`'s parser: a URL [`crate::orchestrator::Webhook`] accepts. Its error does not
/// repeat the value (clap's own would, token and all).
#[derive(Clone)]
struct WebhookUrlParser;

impl clap::builder::TypedValueParser for WebhookUrlParser {
    type Value = WebhookUrl;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<WebhookUrl, clap::Error> {
        let refuse = |message: String| {
            clap::Error::raw(clap::error::ErrorKind::ValueValidation, message + "\n").with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| refuse("the webhook URL is not valid UTF-8".to_owned()))?;
        crate::orchestrator::checked_url(text)
            .map(|_| WebhookUrl(text.to_owned()))
            .map_err(|e| refuse(e.to_string()))
    }
}

fn parse_selector(text: &str) -> Result<String, String> {
    let selector = text.trim();
    if selector.is_empty() {
        return Err("an empty selector (omit --select to select every pipeline)".to_owned());
    }
    Ok(selector.to_owned())
}

fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be longer than zero".to_owned()),
        result => result,
    }
}

/// A duration such as `30s`, `5m`, `1h30m` or `2d`. `M` alone (months, to humantime) is refused
/// as most likely meant for minutes, and `month`s are refused for their 30.44 days: a monthly
/// backfill would drift off the calendar's months. At most 100 years (clocks overflow past).
fn parse_duration(text: &str) -> Result<Duration, String> {
    const LONGEST: Duration = Duration::from_secs(36_525 * 24 * 3600);
    let duration = parse_calendar_free_duration(text)?;
    if duration > LONGEST {
        return Err(format!("{text:?} is longer than 100 years"));
    }
    Ok(duration)
}

fn parse_calendar_free_duration(text: &str) -> Result<Duration, String> {
    let units = text
        .split(|c: char| c.is_ascii_digit() || c.is_whitespace() || c == '.')
        .filter(|unit| !unit.is_empty());
    for unit in units {
        if unit == "M" || unit.starts_with("month") {
            return Err(format!(
                "`{unit}` in {text:?} is months of 30.44 days: write `m` for minutes, or days \
                 (`30d`)"
            ));
        }
        // A year of 365.25 days drifts off the calendar: `--step 1y` from Jan 1 gives Dec 31.
        if matches!(unit, "y" | "yr" | "yrs") || unit.starts_with("year") {
            return Err(format!(
                "`{unit}` in {text:?} is years of 365.25 days, which drift off the calendar: \
                 write days (`365d`)"
            ));
        }
    }
    humantime::parse_duration(text)
        .map_err(|error| format!("{error} (a duration such as 30s, 5m, 1h30m or 2d)"))
}

fn parse_count(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(count) => Ok(count),
        Err(_) => Err(format!("expected a whole number, got {text:?}")),
    }
}

fn parse_setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// A size in bytes from `text`: a number with an optional unit, `KiB`, `MiB`, `GiB`, `TiB` (or
/// `K`, `M`, `G`, `T`, the same binary units), e.g. `4GiB`, `512M`, `1.5GiB`.
fn parse_memory_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        "t" | "tib" => 40,
        other => {
            return Err(format!(
                "unknown unit `{other}` in {text:?}: write e.g. `8GiB`, `512MiB` or a number of bytes"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("expected a size such as `8GiB` or `512MiB`, got {text:?}"))?;
    let bytes = value * (1u64 << shift) as f64;
    if bytes < (1u64 << 20) as f64 {
        return Err(format!(
            "{text:?} is less than 1MiB: too little to run a query"
        ));
    }
    if bytes > usize::MAX as f64 {
        return Err(format!("{text:?} is more than this machine can address"));
    }
    Ok(bytes as usize)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::{Cli, parse_instant, parse_memory_size, parse_when};
    use crate::store::AsOf;
    use crate::table::Timestamp;

    /// The async workers the CLI starts count on it (one more than the pipelines at once).
    #[test]
    fn a_command_runs_as_many_pipelines_at_once_as_it_says() {
        let concurrency = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).expect("valid");
            cli.command.as_ref().map(super::Command::concurrency)
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        assert_eq!(concurrency(&["orchestrate", "run"]), Some(cores));
        assert_eq!(
            concurrency(&["orchestrate", "run", "--concurrency", "9"]),
            Some(9)
        );
        assert_eq!(concurrency(&["orchestrate", "run", "--serial"]), Some(1));
        assert_eq!(
            concurrency(&["orchestrate", "resume", "r1", "--concurrency", "3"]),
            Some(3)
        );
        assert_eq!(concurrency(&["orchestrate", "list"]), Some(1));
    }

    /// How long a SIGTERM lets running pipelines finish before the run is aborted.
    #[test]
    fn the_grace_after_sigterm_is_20s_unless_given() {
        let grace = |args: &[&str]| match Cli::try_parse_from(args).expect("valid").command {
            Some(super::Command::Run(run)) => run.execution.stop_grace,
            Some(super::Command::Resume { execution, .. }) => execution.stop_grace,
            _ => panic!("run or resume"),
        };
        use std::time::Duration;
        assert_eq!(grace(&["orchestrate", "run"]), Duration::from_secs(20));
        assert_eq!(
            grace(&["orchestrate", "run", "--stop-grace", "5s"]),
            Duration::from_secs(5)
        );
        assert_eq!(
            grace(&["orchestrate", "resume", "r1", "--stop-grace", "1m"]),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn instants_are_dates_or_timestamps_in_years_1_to_9999() {
        let midnight = Timestamp::parse("2026-01-31T00:00:00Z").expect("a timestamp");
        assert_eq!(parse_instant("2026-01-31"), Ok(midnight));
        assert_eq!(parse_instant("2026-01-31T00:00:00Z"), Ok(midnight));
        // chrono reads signed and long years: the ledger could not read them back.
        for typo in [
            "-9999-01-01",
            "+200000-01-01",
            "+20260-01-31T00:00:00Z",
            "0000-01-01",
        ] {
            let error = parse_instant(typo).expect_err(typo);
            assert!(error.contains("(years 1 to 9999)"), "{typo}: {error}");
        }
        assert!(parse_instant("yesterday").is_err());
        // A time without its zone is refused (it was taken for UTC), an offset converted.
        let error = parse_instant("2026-01-31T06:00:00").expect_err("no zone");
        assert!(error.contains("has no time zone"), "{error}");
        assert_eq!(
            parse_instant("2026-01-31T07:00:00+01:00"),
            parse_instant("2026-01-31T06:00:00Z")
        );
    }

    #[test]
    fn a_duration_is_at_most_a_century() {
        let error = super::parse_duration("10000000000000000000s").expect_err("too long");
        assert!(error.contains("longer than 100 years"), "{error}");
        assert!(super::parse_duration("36500d").is_ok());
    }

    #[test]
    fn months_and_years_are_refused_as_durations() {
        assert_eq!(
            super::parse_duration("1h30m"),
            Ok(std::time::Duration::from_secs(5400))
        );
        for text in ["1M", "2months", "1y", "1yr", "2yrs", "1year"] {
            let error = super::parse_duration(text).expect_err(text);
            assert!(error.contains("days"), "{text}: {error}");
        }
    }

    #[test]
    fn a_version_too_large_says_so() {
        assert!(matches!(parse_when("3"), Ok(AsOf::Version(3))));
        let error = parse_when("99999999999999999999").expect_err("past u64");
        assert!(
            error.starts_with("version 99999999999999999999 is larger than any table's"),
            "{error}"
        );
        assert!(matches!(parse_when("2026-01-31"), Ok(AsOf::Time(_))));
    }

    #[test]
    fn memory_sizes_are_read_in_binary_units() {
        assert_eq!(parse_memory_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_memory_size("512M"), Ok(512 << 20));
        assert_eq!(parse_memory_size("1.5gib"), Ok(3 << 29));
        assert_eq!(parse_memory_size(" 2 GiB "), Ok(2 << 30));
        assert_eq!(parse_memory_size("2097152"), Ok(2 << 20));
        let unknown = parse_memory_size("4GB").expect_err("GB is refused");
        assert!(unknown.contains("unknown unit `gb`"), "{unknown}");
        let small = parse_memory_size("100KiB").expect_err("too small");
        assert!(small.contains("less than 1MiB"), "{small}");
        assert!(parse_memory_size("lots").is_err());
        assert!(parse_memory_size("").is_err());
    }
}
