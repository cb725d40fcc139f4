//! The JSON report line (WORKLOAD.md §3.4) and the process measurements it carries.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::checks::Checks;
use crate::generator::WORKLOAD;

/// The stage names, in execution order.
pub const STAGES: [&str; 6] = [
    "bronze1",
    "silver_init",
    "bronze2",
    "silver_merge",
    "gold_dims",
    "gold_fact",
];

/// One value per stage, serialised in stage order.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PerStage {
    /// Landing batch 1 appended to bronze.
    pub bronze1: f64,
    /// Batch 1 cleaned into silver (merge into the empty table).
    pub silver_init: f64,
    /// Landing batch 2 appended to bronze.
    pub bronze2: f64,
    /// Batch 2 cleaned and merged into silver.
    pub silver_merge: f64,
    /// The five dimensions.
    pub gold_dims: f64,
    /// The fact.
    pub gold_fact: f64,
}

impl PerStage {
    /// Sets the value of `stage`.
    pub fn set(&mut self, stage: &str, value: f64) {
        match stage {
            "bronze1" => self.bronze1 = value,
            "silver_init" => self.silver_init = value,
            "bronze2" => self.bronze2 = value,
            "silver_merge" => self.silver_merge = value,
            "gold_dims" => self.gold_dims = value,
            "gold_fact" => self.gold_fact = value,
            _ => {}
        }
    }

    /// The sum over the stages.
    pub fn total(&self) -> f64 {
        self.bronze1
            + self.silver_init
            + self.bronze2
            + self.silver_merge
            + self.gold_dims
            + self.gold_fact
    }
}

/// The report line, fields in the order of WORKLOAD.md §3.4.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `superlake-bench-v1`.
    pub workload: &'static str,
    /// `lakehouse`.
    pub peer: &'static str,
    /// Versions of the engine's components.
    pub versions: BTreeMap<&'static str, String>,
    /// N.
    pub rows: u64,
    /// The generator's seed.
    pub seed: u64,
    /// Seconds spent generating the landing zone (0 when it already existed).
    pub gen_s: f64,
    /// Process start to the first stage: registry, warehouse, system tables.
    pub startup_s: f64,
    /// Wall seconds per stage.
    pub stages_s: PerStage,
    /// Sum of the stage wall times.
    pub total_s: f64,
    /// `rows / total_s` (`null` when nothing was timed).
    pub rows_per_s: Option<f64>,
    /// CPU seconds (user + system, all threads) per stage.
    pub stages_cpu_s: PerStage,
    /// Sum of the stage CPU times.
    pub total_cpu_s: f64,
    /// `/proc/loadavg` after the checks.
    pub loadavg_at_end: [f64; 3],
    /// Bytes of the warehouse's files.
    pub bytes_on_disk: u64,
    /// Peak resident memory of the whole process, MiB, to a decimal: as the peers' (their
    /// `ru_maxrss`), a landing generated in the same process included.
    pub peak_rss_self_mb: f64,
    /// CPUs available.
    pub cpus: usize,
    /// Host name.
    pub host: String,
    /// The check values.
    pub checks: Checks,
    /// Not in the workload's format (after its fields): the peak resident memory from the first
    /// stage on, MiB, to a decimal (Linux; the same as `peak_rss_self_mb` elsewhere).
    pub peak_rss_stages_mb: f64,
}

impl Report {
    /// A report of `WORKLOAD` by peer `lakehouse`.
    pub fn new(rows: u64, seed: u64, checks: Checks) -> Report {
        let mut versions = BTreeMap::new();
        versions.insert("lakehouse", env!("CARGO_PKG_VERSION").to_owned());
        versions.insert("datafusion", datafusion::DATAFUSION_VERSION.to_owned());
        versions.insert("deltalake", deltalake::crate_version().to_owned());
        versions.insert("arrow", arrow::ARROW_VERSION.to_owned());
        Report {
            workload: WORKLOAD,
            peer: "lakehouse",
            versions,
            rows,
            seed,
            gen_s: 0.0,
            startup_s: 0.0,
            stages_s: PerStage::default(),
            total_s: 0.0,
            rows_per_s: None,
            stages_cpu_s: PerStage::default(),
            total_cpu_s: 0.0,
            loadavg_at_end: loadavg(),
            bytes_on_disk: 0,
            peak_rss_self_mb: round(peak_rss_mb(), 1),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_default(),
            checks,
            peak_rss_stages_mb: round(peak_rss_mb(), 1),
        }
    }

    /// The report as one JSON line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on Linux).
const CLOCK_TICKS: f64 = 100.0;

/// User + system CPU seconds of this process, all threads (`/proc/self/stat`, fields 14 and 15).
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The command name may contain spaces; fields are counted after its closing parenthesis.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    (ticks(11) + ticks(12)) / CLOCK_TICKS
}

/// Forgets the peak resident set size so far (`VmHWM`): what is measured next starts from the
/// memory in use now. Best effort (Linux only).
pub fn reset_peak_rss() {
    // 5: reset the peak resident set size to the current one (proc(5), `clear_refs`).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set size of this process, MiB (`VmHWM` of `/proc/self/status`).
pub fn peak_rss_mb() -> f64 {
    status_kib("VmHWM:") / 1024.0
}

/// Current resident set size of this process, MiB.
pub fn rss_mb() -> f64 {
    status_kib("VmRSS:") / 1024.0
}

fn status_kib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut values = text
        .split_whitespace()
        .map(|v| v.parse::<f64>().unwrap_or(0.0));
    [
        values.next().unwrap_or(0.0),
        values.next().unwrap_or(0.0),
        values.next().unwrap_or(0.0),
    ]
}

/// Bytes of every file under `path`.
pub fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// `value` rounded to `digits` decimals.
pub fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}
