//! Statuses and the run report.

use std::time::Duration;

use comfy_table::{Cell, Color, ContentArrangement, Table as Grid, presets};

use crate::table::Timestamp;

/// The state of a pipeline in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Not started yet.
    Pending,
    /// Executing.
    Running,
    /// Its output was written (or had already been written by this run).
    Succeeded,
    /// It failed after its last attempt.
    Failed,
    /// Not run because its upstreams failed.
    Skipped,
    /// Not run or interrupted because the run stopped (fail-fast, Ctrl-C).
    Cancelled,
}

impl Status {
    /// The lowercase name, as stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Cancelled => "cancelled",
        }
    }

    /// Parses a stored status.
    pub fn parse(text: &str) -> Option<Status> {
        Some(match text {
            "pending" => Status::Pending,
            "running" => Status::Running,
            "succeeded" => Status::Succeeded,
            "failed" => Status::Failed,
            "skipped" => Status::Skipped,
            "cancelled" => Status::Cancelled,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one pipeline ended in a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineResult {
    /// The pipeline.
    pub pipeline: &'static str,
    /// The table it writes.
    pub table: String,
    /// Final status.
    pub status: Status,
    /// Attempts made in this execution (0 when not run): a resume counts its own, where the
    /// ledger numbers them on after the run's earlier executions' attempts.
    pub attempts: u32,
    /// Rows inserted or updated.
    pub rows_written: Option<u64>,
    /// Rows the write deleted (a `full_snapshot` merge's missing keys, deletion keys).
    pub rows_deleted: Option<u64>,
    /// The table version after the write.
    pub version: Option<u64>,
    /// Whether the write was not made again: this run had already committed it (a resume, a
    /// retry after a commit), or a later run wrote the table since (`error` then says so).
    pub replayed: bool,
    /// Whether nothing was written because a full-snapshot pipeline's incremental inputs
    /// brought no new rows since its last write (its function did not run).
    pub nothing_new: bool,
    /// Time spent, all attempts included.
    pub duration: Duration,
    /// Why it failed, was skipped or cancelled.
    pub error: Option<String>,
}

/// The outcome of one run.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The run's id.
    pub run_id: String,
    /// The run's sequence number.
    pub sequence: i64,
    /// The run's logical time.
    pub run_at: Timestamp,
    /// One result per planned pipeline, in plan order.
    pub results: Vec<PipelineResult>,
    /// Wall-clock duration.
    pub duration: Duration,
    /// Why the run is not wholly recorded in `lakehouse.runs`, if it is not: a pipeline's attempt
    /// (the run's end is then recorded as failed) or the run's end (the ledger still shows it
    /// running) could not be. The run is no success either way; this report is the account.
    pub unrecorded: Option<String>,
    /// Pipelines of a resumed run that had not succeeded and are no longer registered (removed
    /// or renamed since): the resume could not run them, and the run is no success.
    pub not_resumed: Vec<String>,
}

impl RunReport {
    /// True when every planned pipeline succeeded, and the run's end is recorded.
    pub fn succeeded(&self) -> bool {
        self.unrecorded.is_none()
            && self.not_resumed.is_empty()
            && self.results.iter().all(|r| r.status == Status::Succeeded)
    }

    /// The overall status: failed if any pipeline failed (or the run's end could not be
    /// recorded, or a resume could not run a pipeline since removed: [`RunReport::not_resumed`]),
    /// else cancelled, else skipped, else succeeded.
    pub fn status(&self) -> Status {
        // A run whose end could not be recorded did not end well.
        if self.unrecorded.is_some() || !self.not_resumed.is_empty() {
            return Status::Failed;
        }
        [Status::Failed, Status::Cancelled, Status::Skipped]
            .into_iter()
            .find(|s| self.results.iter().any(|r| r.status == *s))
            .unwrap_or(Status::Succeeded)
    }

    /// The result of `pipeline`.
    pub fn result(&self, pipeline: &str) -> Option<&PipelineResult> {
        self.results.iter().find(|r| r.pipeline == pipeline)
    }

    /// The status of every pipeline, by name.
    pub fn statuses(&self) -> Vec<(&'static str, Status)> {
        self.results
            .iter()
            .map(|r| (r.pipeline, r.status))
            .collect()
    }

    /// The summary table printed at the end of a run.
    pub fn render(&self, colors: bool) -> String {
        let mut grid = Grid::new();
        grid.load_preset(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header([
                "pipeline", "table", "status", "attempts", "rows", "version", "time", "error",
            ]);
        for r in &self.results {
            let mut status = Cell::new(if r.replayed && r.error.is_some() {
                format!("{} (superseded)", r.status)
            } else if r.replayed {
                format!("{} (already committed)", r.status)
            } else if r.nothing_new {
                format!("{} (nothing new)", r.status)
            } else {
                r.status.to_string()
            });
            if colors {
                status = status.fg(match r.status {
                    Status::Succeeded => Color::Green,
                    Status::Failed => Color::Red,
                    Status::Skipped | Status::Cancelled => Color::Yellow,
                    Status::Pending | Status::Running => Color::Reset,
                });
            }
            grid.add_row(vec![
                Cell::new(r.pipeline),
                Cell::new(&r.table),
                status,
                Cell::new(r.attempts),
                Cell::new(rows_text(r.rows_written, r.rows_deleted)),
                Cell::new(r.version.map(|v| v.to_string()).unwrap_or_default()),
                Cell::new(format!("{:.2}s", r.duration.as_secs_f64())),
                Cell::new(
                    r.error
                        .as_deref()
                        .map(|e| first_line(crate::error::without_pipeline(e, r.pipeline)))
                        .unwrap_or_default(),
                ),
            ]);
        }
        let counts: Vec<String> = [
            Status::Succeeded,
            Status::Failed,
            Status::Skipped,
            Status::Cancelled,
        ]
        .into_iter()
        .map(|s| (s, self.results.iter().filter(|r| r.status == s).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
        let mut text = format!(
            "{grid}\nRun {} (sequence {}, run_at {}): {} in {:.2}s",
            self.run_id,
            self.sequence,
            self.run_at,
            counts.join(", "),
            self.duration.as_secs_f64()
        );
        if !self.not_resumed.is_empty() {
            text.push_str(&format!(
                "\nNot resumed, no longer registered and never succeeded in this run: {} (the \
                 run stays failed; run them again in a new run if they were renamed)",
                self.not_resumed.join(", ")
            ));
        }
        // The table shows an error's first line, cut: the whole of each failure it cut follows.
        // (And a superseded replay's note, which says how to write what it did not.)
        let ran_and_failed = |r: &&PipelineResult| {
            r.status == Status::Failed
                || (r.status == Status::Cancelled && r.attempts > 0)
                || (r.replayed && r.error.is_some())
        };
        for r in self.results.iter().filter(ran_and_failed) {
            let error = r
                .error
                .as_deref()
                .map(|e| crate::error::without_pipeline(e, r.pipeline));
            if let Some(error) = error.filter(|e| first_line(e) != *e) {
                text.push_str(&format!("\n`{}` {}: {error}", r.pipeline, r.status));
            }
        }
        text
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > 120 {
        format!("{}…", line.chars().take(119).collect::<String>())
    } else {
        line.to_owned()
    }
}

/// The rows a write wrote, and those it deleted when it deleted any: `120`, `120, 30 deleted`.
pub(crate) fn rows_text(written: Option<u64>, deleted: Option<u64>) -> String {
    match (written, deleted.filter(|&n| n > 0)) {
        (written, Some(deleted)) => format!("{}, {deleted} deleted", written.unwrap_or(0)),
        (Some(written), None) => written.to_string(),
        (None, None) => String::new(),
    }
}
