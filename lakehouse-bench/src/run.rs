//! The six stages as orchestrator runs over a fresh warehouse, each timed (wall and CPU), then
//! the untimed checks and the report.

use std::path::PathBuf;
use std::time::Instant;

use lakehouse_runtime::ctx::Settings;
use lakehouse_runtime::orchestrator::Status;
use lakehouse_runtime::{Orchestrator, Registry, RunConfig, Warehouse};

use crate::checks;
use crate::generator::ensure_landing;
use crate::report::{Report, STAGES, cpu_seconds, dir_bytes, peak_rss_mb, round, rss_mb};
use crate::{BATCH, Error, LANDING, Result};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// N: rows of the first sales batch.
    pub rows: u64,
    /// The generator's seed.
    pub seed: u64,
    /// Work directory: the landing zone (shared with the peers) and the warehouse.
    pub out: PathBuf,
    /// Keep the warehouse after the run.
    pub keep: bool,
    /// Called with each stage's figures (wall and CPU time, memory) as one line, once the
    /// stage has run: the binary's `-v` prints them.
    pub on_stage: Option<fn(&str)>,
}

/// The pipelines each stage runs, and the landing batch it processes.
pub fn stage_plan() -> [(&'static str, &'static [&'static str], Option<u8>); 6] {
    [
        (STAGES[0], &["bronze_sales"], Some(1)),
        (STAGES[1], &["silver_sales"], Some(1)),
        (STAGES[2], &["bronze_sales"], Some(2)),
        (STAGES[3], &["silver_sales"], Some(2)),
        (
            STAGES[4],
            &[
                "dim_customer",
                "dim_product",
                "dim_store",
                "dim_promo",
                "dim_date",
            ],
            None,
        ),
        (STAGES[5], &["fact_sales"], None),
    ]
}

/// The directory of the warehouse under `out`.
pub fn warehouse_dir(options: &Options) -> PathBuf {
    options.out.join("lakehouse_bench")
}

/// Generates (or reuses) the landing zone, runs the six stages and computes the checks.
/// `process_start` is when the process started: everything before the first stage except the
/// generation is reported as `startup_s`.
pub async fn run(options: &Options, process_start: Instant) -> Result<Report> {
    let (rows, seed, out) = (options.rows, options.seed, options.out.clone());
    let (landing, gen_s) = tokio::task::spawn_blocking(move || ensure_landing(&out, rows, seed))
        .await
        .map_err(|e| Error::msg(format!("the generator failed: {e}")))??;
    let landing = landing
        .to_str()
        .ok_or_else(|| Error::msg("the landing path is not UTF-8"))?
        .to_owned();

    // Every landing file is there before the first stage (not found by the fourth).
    for name in crate::generator::LANDING_FILES {
        let file = std::path::Path::new(&landing).join(format!("{name}.parquet"));
        if !file.is_file() {
            return Err(Error::msg(format!(
                "{}: missing from the landing zone, though its `_DONE` marker is there: delete \
                 the directory to generate it again",
                file.display()
            )));
        }
    }

    let root = warehouse_dir(options);
    if root.exists() {
        std::fs::remove_dir_all(&root).map_err(Error::at(&root))?;
    }
    std::fs::create_dir_all(&root).map_err(Error::at(&root))?;
    // Everything from here is undone when it fails (unless `keep`): no warehouse is left.
    let measured = async {
        let warehouse = Warehouse::open(
            root.to_str()
                .ok_or_else(|| Error::msg("the warehouse path is not UTF-8"))?,
        )?;
        let registry = Registry::from_inventory().map_err(lakehouse_runtime::Error::from)?;
        // What a deployed lakehouse has before any run: its system tables.
        for table in lakehouse_runtime::ledger::system_tables() {
            warehouse.ensure(table).await?;
        }
        let orchestrator = Orchestrator::new(registry, warehouse.clone());
        let startup_s = (process_start.elapsed().as_secs_f64() - gen_s).max(0.0);

        // The generation and the startup are not timed. Their peak counts in the process's (as the
        // peers' `ru_maxrss`), and is forgotten for the stages' own, what they freed given back.
        let peak_before_stages = peak_rss_mb();
        lakehouse_runtime::allocator::give_back();
        crate::report::reset_peak_rss();
        let mut wall = crate::report::PerStage::default();
        let mut cpu = crate::report::PerStage::default();
        for (index, (stage, targets, batch)) in stage_plan().into_iter().enumerate() {
            let mut settings = Settings::new();
            settings.set(LANDING, landing.clone());
            if let Some(batch) = batch {
                settings.set(BATCH, batch.to_string());
            }
            let config = RunConfig {
                targets: targets.iter().map(|t| (*t).to_owned()).collect(),
                fail_fast: true,
                settings,
                // Deterministic logical times, one second apart from batch 1's ingestion.
                run_at: Some(lakehouse_runtime::Timestamp(
                    crate::generator::INGEST_TS[0] + index as i64 * 1_000_000,
                )),
                ..RunConfig::default()
            };
            let cpu_before = cpu_seconds();
            let started = Instant::now();
            let report = orchestrator.run(&config).await?;
            let seconds = started.elapsed().as_secs_f64();
            let cpu_seconds = cpu_seconds() - cpu_before;
            if report.status() != Status::Succeeded {
                let errors: Vec<String> = report
                    .results
                    .iter()
                    .filter_map(|r| r.error.as_ref().map(|e| format!("{}: {e}", r.pipeline)))
                    .collect();
                return Err(Error::msg(format!(
                    "stage {stage} failed: {}",
                    errors.join("; ")
                )));
            }
            wall.set(stage, round(seconds, 4));
            cpu.set(stage, round(cpu_seconds, 3));
            if let Some(on_stage) = options.on_stage {
                on_stage(&format!(
                    "{stage:<13} {seconds:>8.3} s wall {cpu_seconds:>8.2} s cpu  rss {:>7.0} MiB (peak {:>7.0} MiB)",
                    rss_mb(),
                    peak_rss_mb()
                ));
            }
        }

        let checks = checks::compute(&warehouse).await?;
        let mut report = Report::new(options.rows, options.seed, checks);
        report.gen_s = round(gen_s, 4);
        report.startup_s = round(startup_s, 4);
        report.total_s = round(wall.total(), 4);
        report.total_cpu_s = round(cpu.total(), 3);
        report.rows_per_s =
            (report.total_s > 0.0).then(|| round(options.rows as f64 / report.total_s, 1));
        report.peak_rss_self_mb = report.peak_rss_self_mb.max(round(peak_before_stages, 1));
        report.stages_s = wall;
        report.stages_cpu_s = cpu;
        // The workload's tables, as the peers count them (not the run ledger's).
        report.bytes_on_disk = ["bronze", "silver", "gold"]
            .iter()
            .map(|schema| dir_bytes(&root.join(schema)))
            .sum();
        Ok::<_, Error>(report)
    }
    .await;
    if !options.keep {
        match (
            std::fs::remove_dir_all(&root).map_err(Error::at(&root)),
            &measured,
        ) {
            (Err(error), Ok(_)) => return Err(error),
            // The run's own error says more.
            (Err(error), Err(_)) => tracing::warn!(%error, "the warehouse was not removed"),
            (Ok(()), _) => {}
        }
    }
    measured
}

/// The physical plan of `pipeline`'s output over the warehouse under `options.out` as it stands
/// (run with `--keep` first), for profiling: every input read whole (a `Changes<T>` input too,
/// which a run reads from the change data feed), and the plan of the output only, not of its
/// write.
pub async fn explain(options: &Options, pipeline: &str) -> Result<String> {
    use std::sync::Arc;

    use lakehouse_runtime::Inputs;
    use lakehouse_runtime::ctx::{Ctx, RunInfo};

    let root = warehouse_dir(options);
    let warehouse = Warehouse::open(
        root.to_str()
            .ok_or_else(|| Error::msg("the warehouse path is not UTF-8"))?,
    )?;
    let registry = Registry::from_inventory().map_err(lakehouse_runtime::Error::from)?;
    let descriptor = registry
        .pipelines()
        .iter()
        .find(|p| p.name == pipeline)
        .ok_or_else(|| Error::msg(format!("no pipeline `{pipeline}`")))?;
    let session = warehouse.session();
    let mut settings = Settings::new();
    let landing = crate::generator::landing_dir(&options.out, options.rows, options.seed);
    settings.set(LANDING, landing.to_string_lossy().into_owned());
    settings.set(BATCH, "2");
    let run = Arc::new(RunInfo {
        run_id: "explain".to_owned(),
        sequence: 0,
        run_at: lakehouse_runtime::Timestamp(0),
    });
    let cx = Ctx::new(
        descriptor.name,
        run,
        Arc::new(settings),
        session.clone(),
        false,
    );
    let mut frames = Vec::new();
    for input in descriptor.inputs {
        let df = warehouse.read(&session, input.table).await?;
        cx.register_input(input.table, df.clone())?;
        frames.push(df);
    }
    let output = (descriptor.run)(&cx, Inputs::new(frames)).await?;
    let plan = output.df.create_physical_plan().await?;
    Ok(datafusion::physical_plan::displayable(plan.as_ref())
        .indent(true)
        .to_string())
}
