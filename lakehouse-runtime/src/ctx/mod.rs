//! `Ctx`: what a pipeline may ask of the runtime — the run's identity and logical time, settings,
//! and SQL over its declared inputs.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::context::SessionContext;

use crate::error::{Error, Result};
use crate::frame::{Frame, batches_from_rows};
use crate::table::{Table, TableDef, Timestamp};

mod files;
mod named_scan;

pub use files::{FileFormat, NewFiles};
pub(crate) use files::{FileHistory, FoundFile, GroupedScan};

/// Identity and logical time of one orchestrator run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunInfo {
    /// Unique id of the run.
    pub run_id: String,
    /// Increasing number of the run in its warehouse; the Delta transaction version of its writes.
    pub sequence: i64,
    /// The run's logical timestamp: every row it writes is stamped with it, never with `now()`.
    pub run_at: Timestamp,
}

/// Key/value settings for pipelines (`--set erp.rows=500`). Lookups are remembered (clones,
/// such as each run's copy, share the memory) so that [`Settings::unread`] can name the keys no
/// pipeline asked for; [`Settings::iter`] counts as reading every key.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    values: BTreeMap<String, String>,
    /// The keys looked up, shared by clones (the runs' copies): which settings nothing read.
    read: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

impl PartialEq for Settings {
    fn eq(&self, other: &Settings) -> bool {
        self.values == other.values
    }
}

impl Eq for Settings {}

impl Settings {
    /// Empty settings.
    pub fn new() -> Settings {
        Settings::default()
    }

    /// Sets `key` to `value`.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Settings {
        self.values.insert(key.into(), value.into());
        self
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(key.to_owned());
        self.values.get(key).map(String::as_str)
    }

    /// The keys set that were never looked up (by this value or a clone), each with the looked
    /// up key closest to it: a misspelled `--set` most likely.
    pub fn unread(&self) -> Vec<(String, Option<String>)> {
        let read = self
            .read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.values
            .keys()
            .filter(|key| !read.contains(*key))
            .map(|key| {
                let closest = crate::similar::closest(key, read.iter().map(String::as_str));
                (key.clone(), closest.map(str::to_owned))
            })
            .collect()
    }

    /// The value of `key` parsed as `V`, or `default` when unset; an unparsable value is an error
    /// naming the key.
    pub fn parse_or<V: std::str::FromStr + 'static>(&self, key: &str, default: V) -> Result<V>
    where
        V::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|e| {
                // Errors reach the ledger and the webhook: a secret's value stays out, and so
                // does the parser's message, which may quote part of it.
                let (shown, why) = if may_be_secret(key, raw) {
                    (
                        "(a value that may be secret, not shown)".to_owned(),
                        String::new(),
                    )
                } else {
                    (format!("{raw:?}"), format!(": {e}"))
                };
                Error::Refused(format!(
                    "setting `{key}` = {shown} is invalid{why} (expected {}, e.g. `--set \
                     {key}=..`)",
                    expected::<V>()
                ))
            }),
        }
    }

    /// The settings a run records for `resume`, as a JSON object (`None` when there are none):
    /// a setting that may hold a secret (`auth`, `token`, `password`, `passwd`, `pwd`, `secret`,
    /// `key`, `credential`, `cookie`, `session`, `dsn`, `private`, `cert` or `signature` in its
    /// name; or a value that is a URL with a user name or password or a query parameter named
    /// so, or `sig`; a connection string's `Password=`/`pwd=`; an `Authorization` header's) is
    /// recorded without its value (`null`) unless the value names an environment variable
    /// (`env:NAME`).
    pub(crate) fn to_record(&self) -> Option<String> {
        let recorded: BTreeMap<&str, Option<&str>> = self
            .values
            .iter()
            .map(|(key, value)| {
                let kept = value.starts_with("env:") || !may_be_secret(key, value);
                (key.as_str(), kept.then_some(value.as_str()))
            })
            .collect();
        (!self.values.is_empty()).then(|| serde_json::json!(recorded).to_string())
    }

    /// These settings over those a run recorded (`recorded`, from [`Settings::to_record`]): a key
    /// set here wins, with a warning when the run had it otherwise; a key recorded without its
    /// value (a secret) and not set here is warned about. The result shares this value's record
    /// of the keys read.
    pub(crate) fn over_recorded(&self, recorded: Option<&str>, run_id: &str) -> Settings {
        let recorded: BTreeMap<String, Option<String>> = recorded
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_default();
        let mut merged = self.clone();
        for (key, value) in recorded {
            match (self.values.get(&key), value) {
                (Some(given), Some(value)) if *given != value => tracing::warn!(
                    run_id,
                    key,
                    "the run had this setting otherwise; resuming with the value given now"
                ),
                (Some(_), _) => {}
                (None, Some(value)) => {
                    merged.values.insert(key, value);
                }
                (None, None) => tracing::warn!(
                    run_id,
                    key,
                    "the run had this setting, whose value was not recorded (it may be a \
                     secret); pass it again with --set to resume with it"
                ),
            }
        }
        merged
    }

    /// All settings, sorted by key (every key then counts as read).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend(self.values.keys().cloned());
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Whether a setting's value may be a secret, by its key or by its look.
/// Whether a URL query parameter named `name` may hold a secret (`apikey`, `token`, ...;
/// `sig`, Azure's SAS, too short a word to look for inside others).
fn secret_parameter(name: &str) -> bool {
    secret_word(name) || name.eq_ignore_ascii_case("sig")
}

/// Whether `url` carries a secret: credentials, or a query parameter that may hold one.
pub(crate) fn url_holds_secret(url: &url::Url) -> bool {
    url.password().is_some()
        || !url.username().is_empty()
        || url.query_pairs().any(|(name, _)| secret_parameter(&name))
}

fn may_be_secret(key: &str, value: &str) -> bool {
    // `scheme://user:password@host` or `scheme://token@host`, `…?apikey=…` or `…&sig=…`, as
    // URLs are redacted where they are shown; `Bearer …`, `Apikey …`; a connection string's
    // `Password=…`.
    let with_credentials = value.split_once("://").is_some_and(|(_, rest)| {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        authority.contains('@')
    });
    let with_secret_parameter = value.split_once('?').is_some_and(|(_, query)| {
        query
            .split(['&', '#'])
            .filter_map(|pair| pair.split_once('=').map(|(name, _)| name))
            .any(secret_parameter)
    });
    let lowered = value.trim_start().to_ascii_lowercase();
    let with_password_pair = lowered
        .split([';', ' ', '&'])
        .filter_map(|pair| pair.split_once('=').map(|(name, _)| name.trim()))
        .any(|name| ["password", "pwd", "passwd"].contains(&name));
    secret_word(key)
        || with_credentials
        || with_secret_parameter
        || with_password_pair
        || ["bearer ", "basic ", "apikey ", "token ", "digest "]
            .iter()
            .any(|scheme| lowered.starts_with(scheme))
}

/// `url` as it may be shown, in errors, logs and tables: its password and the values of its
/// query parameters named like secrets (`?apikey=…`, `&token=…`) replaced by `redacted`.
pub(crate) fn redacted_url(url: &url::Url) -> String {
    const HIDDEN: &str = "redacted";
    let secret = secret_parameter;
    let secret_query = url.query_pairs().any(|(name, _)| secret(&name));
    // A user name alone may be a token (`https://TOKEN@host/`).
    let credentials = url.password().is_some() || !url.username().is_empty();
    if !credentials && !secret_query {
        return url.to_string();
    }
    let mut shown = url.clone();
    if credentials {
        // Only fail for URLs that cannot have credentials, and this one has some.
        let _ = shown.set_username(HIDDEN);
        if shown.password().is_some() {
            let _ = shown.set_password(Some(HIDDEN));
        }
    }
    if secret_query {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(name, value)| {
                let value = if secret(&name) {
                    HIDDEN.to_owned()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        shown.query_pairs_mut().clear().extend_pairs(pairs);
    }
    shown.to_string()
}

/// [`redacted_url`] of `text` when it is a URL; a text that is no URL but looks like it holds a
/// secret is replaced whole.
pub(crate) fn redacted_url_text(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(url) => redacted_url(&url),
        Err(_) if may_be_secret("", text) => "<a URL holding a secret, redacted>".to_owned(),
        Err(_) => text.to_owned(),
    }
}

/// Whether `name` (a setting's key, a URL's parameter) names something secret.
fn secret_word(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "auth",
        "token",
        "password",
        "passwd",
        "pwd",
        "secret",
        "key",
        "credential",
        "cookie",
        "session",
        "dsn",
        "private",
        "cert",
        "signature",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// A source record that could not be ingested, kept with the reason instead of being dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// Where it came from: a dataset, file or URL.
    pub source: String,
    /// Why it was rejected, naming the field.
    pub reason: String,
    /// The record as received (JSON text).
    pub raw: String,
}

/// The context of one pipeline execution.
#[derive(Clone)]
pub struct Ctx {
    pipeline: &'static str,
    run: Arc<RunInfo>,
    settings: Arc<Settings>,
    session: SessionContext,
    dry_run: bool,
    rejects: Arc<std::sync::Mutex<Vec<Reject>>>,
    /// The files this pipeline ingested before (an orchestrator run's; none: every file is new).
    file_history: Option<Arc<FileHistory>>,
    /// The files [`Ctx::read_new_files`] read (`None` until it is called).
    new_files: Arc<std::sync::Mutex<Option<Vec<FoundFile>>>>,
    /// The scans of several landing files this execution made, to find which file a value's
    /// error is in ([`Ctx::with_failing_file`]).
    grouped_scans: Arc<std::sync::Mutex<Vec<GroupedScan>>>,
    /// The pipeline's registration, when the caller has it (plan checks, orchestrator runs):
    /// what its declarations refuse is decided from it.
    descriptor: Option<&'static crate::graph::PipelineDescriptor>,
}

impl Ctx {
    /// A context for `pipeline` in `run`. `session` holds the pipeline's inputs (see
    /// [`Ctx::register_input`]); `dry_run` is set while plans are checked on empty tables.
    pub fn new(
        pipeline: &'static str,
        run: Arc<RunInfo>,
        settings: Arc<Settings>,
        session: SessionContext,
        dry_run: bool,
    ) -> Ctx {
        Ctx {
            pipeline,
            run,
            settings,
            session,
            dry_run,
            rejects: Arc::default(),
            file_history: None,
            new_files: Arc::default(),
            grouped_scans: Arc::default(),
            descriptor: None,
        }
    }

    /// This context, with what its pipeline ingested before (for [`Ctx::read_new_files`]).
    pub(crate) fn with_file_history(self, history: Arc<FileHistory>) -> Ctx {
        Ctx {
            file_history: Some(history),
            ..self
        }
    }

    /// This context with the pipeline's registration.
    pub(crate) fn with_descriptor(
        self,
        descriptor: &'static crate::graph::PipelineDescriptor,
    ) -> Ctx {
        Ctx {
            descriptor: Some(descriptor),
            ..self
        }
    }

    /// The pipeline's registration: the one given, else the registered pipeline of this name
    /// (a unit test's context).
    pub(crate) fn descriptor(&self) -> Option<&'static crate::graph::PipelineDescriptor> {
        self.descriptor.or_else(|| {
            inventory::iter::<crate::graph::PipelineDescriptor>
                .into_iter()
                .find(|p| p.name == self.pipeline)
        })
    }

    /// Records source records that could not be ingested; the orchestrator stores them in
    /// `lakehouse.rejects` with the pipeline and run when the write commits (or when the attempt
    /// fails a data-quality limit, such as an ingestion's reject ratio).
    pub fn reject(&self, rejects: impl IntoIterator<Item = Reject>) {
        match self.rejects.lock() {
            Ok(mut list) => list.extend(rejects),
            Err(poisoned) => poisoned.into_inner().extend(rejects),
        }
    }

    /// The records rejected so far, emptied.
    pub fn take_rejects(&self) -> Vec<Reject> {
        match self.rejects.lock() {
            Ok(mut list) => std::mem::take(&mut *list),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }

    /// The pipeline being run.
    pub fn pipeline(&self) -> &'static str {
        self.pipeline
    }

    /// The run's identity.
    pub fn run(&self) -> &RunInfo {
        &self.run
    }

    /// The run's logical timestamp.
    pub fn run_at(&self) -> Timestamp {
        self.run.run_at
    }

    /// The day (UTC) of the run's logical time: what a daily pipeline computes, and what a
    /// backfill (`run --from .. --to ..`) sets one run per day of.
    ///
    /// # Examples
    ///
    /// ```ignore
    /// let today = sales.filter(BronzeSales::order_date.expr().eq(cx.run_date().lit()))?;
    /// ```
    pub fn run_date(&self) -> crate::table::Date {
        self.run.run_at.date()
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// True while the graph check builds plans on empty tables: sources should return an empty
    /// frame instead of calling services.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// The DataFusion session, with the pipeline's inputs registered as `schema.table`.
    pub fn session(&self) -> &SessionContext {
        &self.session
    }

    /// Registers an input so SQL can name it `schema.table` (replacing one registered before).
    pub fn register_input(&self, table: &'static TableDef, df: DataFrame) -> Result<()> {
        let catalog = self
            .session
            .catalog("datafusion")
            .ok_or_else(|| Error::msg("the session has no default catalog"))?;
        if catalog.schema(table.schema).is_none() {
            catalog.register_schema(table.schema, Arc::new(MemorySchemaProvider::new()))?;
        }
        // A table registered again (a test's second frame of it) replaces the first.
        let name = TableReference::partial(table.schema, table.name);
        self.session.deregister_table(name.clone())?;
        self.session.register_table(name, df.into_view())?;
        Ok(())
    }

    /// Runs a read-only SQL query over the pipeline's inputs (named `schema.table`) and conforms
    /// the result to table `T`. DDL, DML and `SET` are refused. The inputs are the tables the
    /// pipeline takes as parameters (`Frame<T>`, or `Changes<T>`, whose table then holds only
    /// the new rows, unless a `Frame<T>` of the same table is a later parameter: SQL reads the
    /// last parameter of a table); a table listed only in `depends_on` is not readable: take it
    /// as a parameter (`_dim: Frame<Dim>`).
    ///
    /// # Examples
    ///
    /// ```ignore
    /// #[pipeline(depends_on = [events])]
    /// async fn event_counts(_events: Frame<Events>, cx: &Ctx) -> Result<Frame<EventCounts>> {
    ///     cx.sql("SELECT kind, count(*) AS events FROM bronze.events GROUP BY kind").await
    /// }
    /// ```
    pub async fn sql<T: Table>(&self, query: &str) -> Result<Frame<T>> {
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = self
            .session
            .sql_with_options(query, options)
            .await
            .map_err(|e| {
                let hint =
                    if e.to_string().contains("table '") && e.to_string().contains("not found") {
                        " (SQL reads the tables the pipeline takes as parameters: add one as \
                     `_name: Frame<Table>`)"
                    } else {
                        ""
                    };
                let message = format!("pipeline `{}`: SQL failed: {e}{hint}", self.pipeline);
                // A syntax or planning error recurs on every attempt: not retried.
                if crate::error::is_deterministic(&e) {
                    Error::Refused(message)
                } else {
                    Error::msg(message)
                }
            })?;
        Frame::from_dataframe(df)
    }

    /// A frame of `T` from record batches (a source's fetched rows).
    pub fn frame_from_batches<T: Table>(&self, batches: Vec<RecordBatch>) -> Result<Frame<T>> {
        let schema = T::DEF.output_arrow_schema();
        let df = if batches.is_empty() {
            self.session.read_batch(RecordBatch::new_empty(schema))?
        } else {
            self.session.read_batches(batches)?
        };
        Frame::from_dataframe(df)
    }

    /// A frame of `T` from Rust rows: any `serde::Serialize` struct whose fields are `T`'s data
    /// columns (often `T` itself with `#[derive(Serialize)]`).
    pub fn frame_from_rows<T: Table, R: serde::Serialize>(&self, rows: &[R]) -> Result<Frame<T>> {
        let batches = batches_from_rows(T::DEF.output_arrow_schema(), rows)
            .map_err(|error| self.naming_rows_of::<T>(error))?;
        self.frame_from_batches(batches)
    }

    /// `error` (of rows that do not fit table `T`) naming the pipeline and the table.
    pub(crate) fn naming_rows_of<T: Table>(&self, error: Error) -> Error {
        match error {
            Error::Refused(message) => Error::Refused(format!(
                "pipeline `{}`: rows for {}: {message}",
                self.pipeline,
                T::DEF.qualified_name()
            )),
            other => other,
        }
    }

    /// An empty frame of `T`.
    pub fn empty<T: Table>(&self) -> Result<Frame<T>> {
        self.frame_from_batches(Vec::new())
    }
}

/// What a setting of type `V` is, for its parse error: "a whole number", ..
fn expected<V: 'static>() -> &'static str {
    use std::any::TypeId;
    let is = |types: &[TypeId]| types.contains(&TypeId::of::<V>());
    if is(&[
        TypeId::of::<u8>(),
        TypeId::of::<u16>(),
        TypeId::of::<u32>(),
        TypeId::of::<u64>(),
        TypeId::of::<usize>(),
    ]) {
        "a whole number, 0 or more"
    } else if is(&[
        TypeId::of::<i8>(),
        TypeId::of::<i16>(),
        TypeId::of::<i32>(),
        TypeId::of::<i64>(),
        TypeId::of::<isize>(),
    ]) {
        "a whole number"
    } else if is(&[TypeId::of::<f32>(), TypeId::of::<f64>()]) {
        "a number"
    } else if is(&[TypeId::of::<bool>()]) {
        "`true` or `false`"
    } else {
        "a valid value"
    }
}

#[cfg(test)]
mod tests {
    use super::Settings;

    #[test]
    fn settings_that_may_be_secrets_are_recorded_without_their_values() {
        let mut settings = Settings::new();
        settings
            .set("erp.rows", "500")
            .set("db.passwd", "hunter2")
            .set("pg.dsn", "host=db user=me")
            .set("warehouse.url", "postgres://me:hunter2@db/lake")
            .set("feed.url", "https://user@example.com/feed")
            .set("blob.url", "https://acct.blob.example/c?sv=1&sig=XYZ")
            .set("erp.conn", "Server=db;Database=erp;Password=p")
            .set("plain.url", "https://example.com/feed?lang=fr")
            .set("http.header", "Bearer abc")
            .set(
                "velib.base_url",
                "https://data.example/api?apikey=abc&lang=fr",
            )
            .set("ods.header", "Apikey abc")
            .set("velib.token", "env:VELIB_TOKEN");
        let recorded: serde_json::Value =
            serde_json::from_str(&settings.to_record().expect("recorded")).expect("json");
        assert_eq!(
            recorded,
            serde_json::json!({
                "erp.rows": "500",
                "db.passwd": null,
                "pg.dsn": null,
                "warehouse.url": null,
                // A user name alone may be a token.
                "feed.url": null,
                "blob.url": null,
                "erp.conn": null,
                "plain.url": "https://example.com/feed?lang=fr",
                "http.header": null,
                "velib.base_url": null,
                "ods.header": null,
                "velib.token": "env:VELIB_TOKEN",
            })
        );
    }

    #[test]
    fn an_unparsable_secret_is_not_quoted() {
        let mut settings = Settings::new();
        settings.set("db.password_retries", "hunter2");
        let error = settings
            .parse_or("db.password_retries", 3u32)
            .expect_err("not a number")
            .to_string();
        assert!(!error.contains("hunter2"), "{error}");
        assert!(
            error.starts_with("setting `db.password_retries` = (a value that may be secret"),
            "{error}"
        );
        // Nor is it quoted by the parser's own message (humantime names the unit it read).
        settings.set("api.token_wait", "5hunter2");
        let error = settings
            .parse_or(
                "api.token_wait",
                humantime::Duration::from(std::time::Duration::from_secs(1)),
            )
            .expect_err("not a duration")
            .to_string();
        assert!(!error.contains("hunter"), "{error}");
        assert!(error.contains("is invalid (expected "), "{error}");
    }

    #[test]
    fn an_unparsable_setting_names_the_key_and_what_it_expects() {
        let mut settings = Settings::new();
        settings.set("erp.rows", "many");
        settings.set("erp.live", "yes");
        let rows = settings
            .parse_or("erp.rows", 100usize)
            .expect_err("not a number")
            .to_string();
        assert!(
            rows.starts_with("setting `erp.rows` = \"many\" is invalid: ")
                && rows.ends_with("(expected a whole number, 0 or more, e.g. `--set erp.rows=..`)"),
            "{rows}"
        );
        let live = settings
            .parse_or("erp.live", false)
            .expect_err("not a bool")
            .to_string();
        assert!(live.contains("(expected `true` or `false`"), "{live}");
        assert_eq!(settings.parse_or("erp.absent", 7u32).expect("default"), 7);
    }
}
