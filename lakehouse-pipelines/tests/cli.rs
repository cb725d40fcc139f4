//! The real `orchestrate` binary: every command a user types, in a temporary warehouse.

use std::process::{Command, Output};

use lakehouse_runtime::Registry;

fn orchestrate(warehouse: &std::path::Path, args: &[&str]) -> Output {
    orchestrate_with(warehouse, args, &[])
}

/// [`orchestrate`] with environment variables `env` (the ones the binary reads are otherwise
/// removed: a developer's own webhook or memory limit would change the outcome).
fn orchestrate_with(warehouse: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orchestrate"));
    command
        .arg("--warehouse")
        .arg(warehouse)
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("LAKEHOUSE_NOTIFY_URL")
        .env_remove("LAKEHOUSE_MEMORY_LIMIT")
        .env_remove("LAKEHOUSE_WAREHOUSE");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_documents_every_command() {
    let dir = tempfile::tempdir().expect("dir");
    let help = stdout(&orchestrate(dir.path(), &["--help"]));
    for command in [
        "run",
        "plan",
        "list",
        "graph",
        "check",
        "sql",
        "runs",
        "history",
        "describe",
        "restore",
        "resume",
        "optimize",
        "vacuum",
        "prune-ledger",
    ] {
        assert!(
            help.contains(&format!("  {command} ")),
            "`{command}` missing from --help:\n{help}"
        );
    }
    // A listing's JSON is not a run report's: each `--format` says what its objects are.
    for (command, objects) in [
        ("list", "one JSON object per pipeline"),
        ("runs", "one JSON object per run"),
        (
            "run",
            "one JSON object per run on stdout (the webhook's fields)",
        ),
    ] {
        let help = stdout(&orchestrate(dir.path(), &[command, "--help"]));
        assert!(help.contains(objects), "{command} --help:\n{help}");
        let webhook = help.matches("webhook's fields").count();
        assert_eq!(
            webhook,
            usize::from(command == "run"),
            "{command} --help:\n{help}"
        );
    }
}

#[test]
fn orchestrate_alone_is_orchestrate_run_with_its_defaults_and_environment() {
    let dir = tempfile::tempdir().expect("dir");
    // A webhook over plain HTTP to another machine is refused by `run`, and so without a command
    // (which took no notice of the variable).
    let env = [("LAKEHOUSE_NOTIFY_URL", "http://hooks.example.org/run")];
    for args in [&["run", "--select", "dim_date"][..], &[]] {
        let output = orchestrate_with(dir.path(), args, &env);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains("LAKEHOUSE_NOTIFY_URL") || stderr(&output).contains("https"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn json_logs_leave_stderr_all_json() {
    let dir = tempfile::tempdir().expect("dir");
    // The plan and notes of a JSON-reported run, and a failed command's error.
    let run = orchestrate_with(
        dir.path(),
        &[
            "--log-format",
            "json",
            "run",
            "--select",
            "dim_date",
            "--format",
            "json",
        ],
        &[("RUST_LOG", "info")],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let failed = orchestrate(dir.path(), &["--log-format", "json", "sql", "SELEC 1"]);
    assert_eq!(failed.status.code(), Some(1));
    for output in [&run, &failed] {
        let text = stderr(output);
        assert!(!text.trim().is_empty());
        for line in text.lines() {
            let event: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{text}"));
            assert!(event["level"].is_string(), "{line}");
        }
    }
    assert!(
        stderr(&failed).contains("\"level\":\"ERROR\""),
        "{}",
        stderr(&failed)
    );
    // Whatever RUST_LOG says of other targets: the error is the CLI's answer.
    let filtered = orchestrate_with(
        dir.path(),
        &["--log-format", "json", "sql", "SELEC 1"],
        &[("RUST_LOG", "lakehouse_runtime=debug")],
    );
    assert_eq!(filtered.status.code(), Some(1));
    assert!(
        stderr(&filtered).contains("\"level\":\"ERROR\"") && stderr(&filtered).contains("SELEC"),
        "{}",
        stderr(&filtered)
    );
}

#[test]
fn pipeline_settings_given_to_a_command_that_runs_no_pipeline_are_warned_about() {
    let dir = tempfile::tempdir().expect("dir");
    let listed = orchestrate(dir.path(), &["--set", "erp.rows=5", "list"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(
        stderr(&listed).contains("this command ignores them"),
        "{}",
        stderr(&listed)
    );
    let planned = orchestrate(dir.path(), &["plan"]);
    assert!(
        !stderr(&planned).contains("ignores them"),
        "{}",
        stderr(&planned)
    );
}

#[test]
fn options_that_would_be_ignored_together_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    for args in [
        &["run", "--serial", "--concurrency", "8"][..],
        &["run", "--no-skip-downstream", "--skip-policy", "all"],
        &["runs", "r000001", "--limit", "1"],
        &["resume", "r000001", "--serial", "--concurrency", "2"],
    ] {
        let output = orchestrate(dir.path(), args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).contains("cannot be used with"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    // `--force` is each command's own: a run's does not re-execute anything.
    let help = stdout(&orchestrate(dir.path(), &["run", "--help"]));
    assert!(!help.contains("Re-execute"), "{help}");
    let help = stdout(&orchestrate(dir.path(), &["resume", "--help"]));
    assert!(help.contains("--rerun-succeeded"), "{help}");
}

#[test]
fn plan_list_and_graph_describe_the_registry() {
    let dir = tempfile::tempdir().expect("dir");
    // The binary's registry: the reference lakehouse (this test binary also links the walkthrough).
    let registry = Registry::new(
        Registry::from_inventory()
            .expect("graph")
            .pipelines()
            .iter()
            .copied()
            .filter(|p| p.module_path.starts_with("lakehouse_pipelines")),
    )
    .expect("graph");

    let plan = orchestrate(dir.path(), &["plan", "--select", "+dim_product"]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    assert!(
        stdout(&plan).starts_with("Plan: 3 pipeline(s) in 3 group(s)\n"),
        "{}",
        stdout(&plan)
    );
    assert!(
        stdout(&plan).contains("   3. dim_product → gold.dim_product"),
        "{}",
        stdout(&plan)
    );

    // An exclusion: the rest of the selection waits for nothing excluded.
    let excluded = orchestrate(
        dir.path(),
        &[
            "plan",
            "--select",
            "+dim_product",
            "--exclude",
            "+silver_erp_sales_transactions",
        ],
    );
    assert!(excluded.status.success(), "{}", stderr(&excluded));
    assert_eq!(
        stdout(&excluded),
        "Plan: 1 pipeline(s) in 1 group(s)\n   1. dim_product → gold.dim_product\n"
    );

    let list = stdout(&orchestrate(dir.path(), &["list"]));
    for p in registry.pipelines() {
        assert!(
            list.contains(p.name),
            "{} missing from list:\n{list}",
            p.name
        );
    }
    assert!(list.contains(&format!("{} pipeline(s)", registry.len())));
    let json = stdout(&orchestrate(dir.path(), &["list", "--format", "json"]));
    let listed: Vec<serde_json::Value> = json
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON object per line"))
        .collect();
    assert_eq!(listed.len(), registry.len(), "{json}");
    let product = listed
        .iter()
        .find(|p| p["pipeline"] == "dim_product")
        .expect("dim_product listed");
    assert_eq!(product["table"], "gold.dim_product");
    assert_eq!(product["mode"], "scd2");
    assert_eq!(product["overwrite_partitions"], false);
    assert_eq!(
        product["depends_on"],
        serde_json::json!(["silver_erp_sales_transactions"])
    );
    assert_eq!(
        product["inputs"][0]["table"],
        "silver.erp_sales_transactions"
    );

    let mermaid = stdout(&orchestrate(dir.path(), &["graph"]));
    assert!(mermaid.starts_with("flowchart LR\n"));
    for (from, to) in registry.edges() {
        assert!(
            mermaid.contains(&format!("  p_{from} --> p_{to}\n")),
            "edge {from} -> {to} missing:\n{mermaid}"
        );
    }
    let dot = stdout(&orchestrate(dir.path(), &["graph", "--format", "dot"]));
    assert!(dot.contains("digraph lakehouse {"));
    for (from, to) in registry.edges() {
        assert!(
            dot.contains(&format!("  \"{from}\" -> \"{to}\";\n")),
            "{dot}"
        );
    }
}

#[test]
fn run_then_runs_and_sql() {
    let dir = tempfile::tempdir().expect("dir");
    let run = orchestrate(
        dir.path(),
        &[
            "run",
            "--select",
            "+dim_product",
            "--set",
            "erp.rows=20",
            "--set",
            "erp.sede=7",
        ],
    );
    assert!(run.status.success(), "{}\n{}", stdout(&run), stderr(&run));
    assert!(
        stderr(&run).contains(
            "setting `erp.sede` was not read by any pipeline of the run; did you mean `erp.seed`?"
        ),
        "{}",
        stderr(&run)
    );
    assert!(
        !stderr(&run).contains("setting `erp.rows`"),
        "{}",
        stderr(&run)
    );
    let out = stdout(&run);
    assert!(out.contains("3 succeeded"), "{out}");
    assert!(out.contains("dim_product"), "{out}");

    let runs = stdout(&orchestrate(dir.path(), &["runs"]));
    assert!(runs.contains("r000001-"), "{runs}");
    assert!(runs.contains("succeeded"), "{runs}");
    // Every run shown: no "more" to see.
    let all = stdout(&orchestrate(dir.path(), &["runs", "--limit", "1"]));
    assert!(all.contains("r000001-"), "{all}");
    assert!(!all.contains("shows more"), "{all}");
    // For schedulers: one JSON object per run, then per attempt of one run.
    let json = stdout(&orchestrate(dir.path(), &["runs", "--format", "json"]));
    let listed: Vec<serde_json::Value> = json
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON object per line"))
        .collect();
    assert_eq!(listed.len(), 1, "{json}");
    assert_eq!(listed[0]["status"], "succeeded", "{json}");
    assert_eq!(listed[0]["sequence"], 1, "{json}");
    let run_id = listed[0]["run_id"].as_str().expect("an id").to_owned();
    assert!(run_id.starts_with("r000001-"), "{json}");
    assert!(
        listed[0]["run_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.len() >= 20),
        "{json}"
    );
    let json = stdout(&orchestrate(
        dir.path(),
        &["runs", "r000001", "--format", "json"],
    ));
    let attempts: Vec<serde_json::Value> = json
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON object per line"))
        .collect();
    let product = attempts
        .iter()
        .find(|a| a["pipeline"] == "dim_product")
        .expect("dim_product's attempt");
    assert_eq!(product["run_id"], run_id.as_str());
    assert_eq!(product["status"], "succeeded");
    assert_eq!(product["attempt"], 1);
    assert_eq!(product["table"], "gold.dim_product");
    assert!(
        product["rows_written"].as_i64().is_some_and(|n| n > 0),
        "{json}"
    );
    // A run is named by a unique prefix of its id.
    let attempts = stdout(&orchestrate(dir.path(), &["runs", "r000001"]));
    assert!(attempts.contains("dim_product"), "{attempts}");
    // With the run's own status, which its attempts alone do not tell (a run that died).
    assert!(
        attempts.contains(&format!("run {run_id} (sequence 1, run_at "))
            && attempts.trim_end().ends_with("): succeeded"),
        "{attempts}"
    );

    let sql = orchestrate(
        dir.path(),
        &[
            "sql",
            "SELECT count(*) AS n FROM silver.erp_sales_transactions",
            "--format",
            "csv",
        ],
    );
    assert!(sql.status.success(), "{}", stderr(&sql));
    assert_eq!(stdout(&sql), "n\n20\n");
    // As a table: drawn, NULL spelled out, counted; an empty result keeps its header.
    let table = stdout(&orchestrate(
        dir.path(),
        &["sql", "SELECT 7 AS seven, CAST(NULL AS INT) AS nothing"],
    ));
    assert!(
        table.contains("seven ┆ nothing")
            && table.contains("│ 7     ┆ NULL    │")
            && table.ends_with("1 row(s)\n"),
        "{table}"
    );
    // As JSON lines: a NULL is `null`, not a key left out.
    let json = stdout(&orchestrate(
        dir.path(),
        &[
            "sql",
            "SELECT 7 AS seven, CAST(NULL AS INT) AS nothing",
            "--format",
            "json",
        ],
    ));
    assert_eq!(json, "{\"seven\":7,\"nothing\":null}\n");
    // NaN and the infinities as text, not `null` as a NULL is; finite floats as numbers.
    let floats = stdout(&orchestrate(
        dir.path(),
        &[
            "sql",
            "SELECT x, CAST(NULL AS DOUBLE) AS nothing, CAST(1.5 AS REAL) AS single FROM \
             (VALUES (CAST('NaN' AS DOUBLE)), (CAST('-inf' AS DOUBLE)), (0.1), (1e300)) AS t(x)",
            "--format",
            "json",
        ],
    ));
    assert_eq!(
        floats,
        "{\"x\":\"NaN\",\"nothing\":null,\"single\":1.5}\n\
         {\"x\":\"-Infinity\",\"nothing\":null,\"single\":1.5}\n\
         {\"x\":0.1,\"nothing\":null,\"single\":1.5}\n\
         {\"x\":1e300,\"nothing\":null,\"single\":1.5}\n"
    );
    // A map keyed by numbers: refused before any row, naming the column.
    let map = orchestrate(
        dir.path(),
        &[
            "sql",
            "SELECT map([1, 2], ['a', 'b']) AS m",
            "--format",
            "json",
        ],
    );
    assert_eq!(map.status.code(), Some(1));
    assert!(
        stderr(&map).contains("column `m` is Map(") && stdout(&map).is_empty(),
        "{}",
        stderr(&map)
    );
    // Two columns of one name (a join's `run_at`s): each qualified, as a JSON object keeps one
    // of two equal keys.
    let joined = stdout(&orchestrate(
        dir.path(),
        &[
            "sql",
            "SELECT s.order_id, s.run_at, p.run_at FROM silver.erp_sales_transactions s \
             JOIN gold.dim_product p ON p.product_id = s.product_id LIMIT 1",
            "--format",
            "json",
        ],
    ));
    let row: serde_json::Value = serde_json::from_str(joined.trim()).expect("one JSON line");
    let keys: Vec<&String> = row.as_object().expect("an object").keys().collect();
    assert_eq!(keys, ["order_id", "p.run_at", "s.run_at"], "{joined}");
    let empty = stdout(&orchestrate(
        dir.path(),
        &[
            "sql",
            "SELECT product_id FROM silver.erp_sales_transactions WHERE false",
        ],
    ));
    assert!(
        empty.contains("product_id") && empty.ends_with("0 row(s)\n"),
        "{empty}"
    );
    let empty_csv = orchestrate(
        dir.path(),
        &[
            "sql",
            "SELECT product_id, quantity FROM silver.erp_sales_transactions WHERE false",
            "--format",
            "csv",
        ],
    );
    assert_eq!(stdout(&empty_csv), "product_id,quantity\n");

    // The README's queries of the ledger's tables run as shown.
    let readme = include_str!("../../README.md");
    let section = &readme[readme.find("### The ledger's tables").expect("the section")..];
    let queries: Vec<&str> = section
        .lines()
        .take_while(|line| !line.starts_with("## "))
        .filter_map(|line| line.strip_prefix("cargo run --bin orchestrate -- sql \""))
        .map(|rest| rest.trim_end_matches('"'))
        .collect();
    assert_eq!(queries.len(), 3, "{section}");
    for query in queries {
        let output = orchestrate(dir.path(), &["sql", query, "--format", "csv"]);
        assert!(output.status.success(), "{query}: {}", stderr(&output));
        if query.contains("FROM lakehouse.runs") {
            assert!(
                stdout(&output).contains("dim_product,succeeded"),
                "{}",
                stdout(&output)
            );
        }
    }

    let refused = orchestrate(dir.path(), &["sql", "DROP TABLE gold.dim_product"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("`DROP` is refused: `sql` runs read-only queries"),
        "{}",
        stderr(&refused)
    );
    // A list column in CSV: refused before any line is written, naming it.
    let nested = orchestrate(
        dir.path(),
        &[
            "sql",
            "SELECT array_agg(product_id) AS products FROM silver.erp_sales_transactions",
            "--format",
            "csv",
        ],
    );
    assert!(!nested.status.success());
    assert_eq!(stdout(&nested), "");
    assert!(
        stderr(&nested).contains("column `products` is List(Utf8), which CSV cannot hold"),
        "{}",
        stderr(&nested)
    );
    // A list cut at its limit says so.
    let history = stdout(&orchestrate(
        dir.path(),
        &["history", "lakehouse.runs", "--limit", "1"],
    ));
    assert!(
        history.contains("the latest 1 version(s) shown: `--limit N` shows more"),
        "{history}"
    );
}

#[test]
fn history_and_describe_show_a_table() {
    let dir = tempfile::tempdir().expect("dir");
    let run = orchestrate(
        dir.path(),
        &["run", "--select", "+dim_product", "--set", "erp.rows=20"],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let history = orchestrate(dir.path(), &["history", "silver.erp_sales_transactions"]);
    assert!(history.status.success(), "{}", stderr(&history));
    let out = stdout(&history);
    // Newest first: the run's write (a MERGE, into an empty table), then the creation.
    let write = out.find("mergePredicate=").expect("the run's commit");
    let created = out.find("CREATE TABLE").expect("the creation");
    assert!(write < created, "{out}");
    assert!(out.contains("+20"), "{out}");
    assert!(out.contains("r000001-"), "{out}");

    // Time travel: the table before the second run.
    let second = orchestrate(
        dir.path(),
        &["run", "--select", "+dim_product", "--set", "erp.rows=20"],
    );
    assert!(second.status.success(), "{}", stderr(&second));
    let count_as_of = |as_of: &str| {
        let mut args = vec![
            "sql",
            "SELECT count(*) AS n FROM silver.erp_sales_transactions",
            "--format",
            "csv",
        ];
        if !as_of.is_empty() {
            args.extend(["--as-of", as_of]);
        }
        let output = orchestrate(dir.path(), &args);
        (stdout(&output), stderr(&output))
    };
    assert_eq!(count_as_of("").0, "n\n40\n");
    assert_eq!(count_as_of("silver.erp_sales_transactions=1").0, "n\n20\n");
    let future = count_as_of("silver.erp_sales_transactions=7");
    assert!(
        future
            .1
            .contains("silver.erp_sales_transactions has no version 7: its latest is 2"),
        "{future:?}"
    );
    let twice = orchestrate(
        dir.path(),
        &[
            "sql",
            "SELECT count(*) AS n FROM silver.erp_sales_transactions",
            "--as-of",
            "silver.erp_sales_transactions=0",
            "--as-of",
            "silver.erp_sales_transactions=1",
        ],
    );
    assert_eq!(twice.status.code(), Some(1));
    assert!(
        stderr(&twice).contains(
            "--as-of is given twice for `silver.erp_sales_transactions`: a query reads one \
             version of a table"
        ),
        "{}",
        stderr(&twice)
    );
    let elsewhere = count_as_of("gold.dim_product=1");
    assert!(
        elsewhere
            .1
            .contains("the query does not read gold.dim_product"),
        "{elsewhere:?}"
    );

    let describe = orchestrate(dir.path(), &["describe", "gold.dim_product"]);
    assert!(describe.status.success(), "{}", stderr(&describe));
    let out = stdout(&describe);
    for expected in [
        "gold.dim_product: Products sold, with the history of their attributes.",
        "pipeline `dim_product`",
        "scd2",
        "Surrogate key: SHA-256 of `product_id`",
        "version 2, ",
    ] {
        assert!(out.contains(expected), "`{expected}` missing:\n{out}");
    }
    // Restore: refused while a pipeline reads the table incrementally; done otherwise.
    let refused = orchestrate(
        dir.path(),
        &["restore", "bronze.erp_sales_transactions", "--to", "1"],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains(
            "bronze.erp_sales_transactions is read incrementally by silver_erp_sales_transactions"
        ) && stderr(&refused).contains("restore with --force, then rebuild them"),
        "{}",
        stderr(&refused)
    );
    // A dry run says what the restore would do, and every refusal it would meet.
    let dry = orchestrate(
        dir.path(),
        &[
            "restore",
            "bronze.erp_sales_transactions",
            "--to",
            "1",
            "--dry-run",
        ],
    );
    assert_eq!(dry.status.code(), Some(1));
    assert!(
        stdout(&dry).contains("bronze.erp_sales_transactions: would restore version 1 over"),
        "{}",
        stdout(&dry)
    );
    assert!(
        stderr(&dry).contains("is read incrementally by silver_erp_sales_transactions"),
        "{}",
        stderr(&dry)
    );
    let planned = orchestrate(
        dir.path(),
        &["restore", "gold.dim_product", "--to", "1", "--dry-run"],
    );
    assert!(planned.status.success(), "{}", stderr(&planned));
    assert!(
        stdout(&planned).contains("gold.dim_product: would restore version 1 over version 2 (")
            && stdout(&planned).contains("nothing was committed"),
        "{}",
        stdout(&planned)
    );
    let restored = orchestrate(dir.path(), &["restore", "gold.dim_product", "--to", "1"]);
    assert!(restored.status.success(), "{}", stderr(&restored));
    assert!(
        stdout(&restored).contains("gold.dim_product: restored to version 1 as version 3"),
        "{}",
        stdout(&restored)
    );

    // A table not written yet: its declaration alone, foreign keys and quality included.
    let fact = stdout(&orchestrate(dir.path(), &["describe", "gold.fact_sales"]));
    for expected in ["not yet written", "gold.dim_date.date_key", "blocking"] {
        assert!(fact.contains(expected), "`{expected}` missing:\n{fact}");
    }
    let unknown = orchestrate(dir.path(), &["describe", "gold.dim_prodct"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("no table `gold.dim_prodct`; did you mean `gold.dim_product`?"),
        "{}",
        stderr(&unknown)
    );
    // Its name without its schema: every schema's table of that name.
    let unqualified = orchestrate(dir.path(), &["history", "erp_sales_transactions"]);
    assert_eq!(unqualified.status.code(), Some(1));
    assert!(
        stderr(&unqualified).contains(
            "no table `erp_sales_transactions`: tables are named `schema.table`; did you mean \
             `bronze.erp_sales_transactions` or `silver.erp_sales_transactions`?"
        ),
        "{}",
        stderr(&unqualified)
    );
    let other_schema = orchestrate(dir.path(), &["history", "gold.erp_sales_transactions"]);
    assert!(
        stderr(&other_schema).contains(
            "no table `gold.erp_sales_transactions`; did you mean \
             `bronze.erp_sales_transactions` or `silver.erp_sales_transactions`?"
        ),
        "{}",
        stderr(&other_schema)
    );
}

/// A backfill of `erp_sales_transactions`, two rows a day, from `from` up to `to`.
fn backfill_erp(warehouse: &std::path::Path, from: &str, to: &str) -> Output {
    orchestrate(
        warehouse,
        &[
            "run",
            "--select",
            "erp_sales_transactions",
            "--set",
            "erp.rows=2",
            "--from",
            from,
            "--to",
            to,
        ],
    )
}

#[test]
fn a_backfill_makes_one_run_per_day_in_order() {
    let dir = tempfile::tempdir().expect("dir");
    // Two ERP rows a day from November 1st up to `to`.
    let backfill_erp = |to: &str| backfill_erp(dir.path(), "2026-11-01", to);
    let backfill = backfill_erp("2026-11-04");
    let out = stdout(&backfill);
    assert!(backfill.status.success(), "{out}\n{}", stderr(&backfill));
    assert!(
        out.contains(
            "backfill: 3 time(s), from 2026-11-01T00:00:00Z every 1day, skipping those already \
             done"
        ),
        "{out}"
    );
    assert!(out.contains("backfill done: 3 run(s)\n"), "{out}");
    // Again over a longer range: only the new day runs.
    let longer = backfill_erp("2026-11-05");
    let out = stdout(&longer);
    assert!(longer.status.success(), "{out}\n{}", stderr(&longer));
    assert!(
        out.contains("backfill done: 1 run(s), 3 time(s) already done"),
        "{out}"
    );
    let sql = orchestrate(
        dir.path(),
        &[
            "sql",
            "SELECT run_at, count(*) AS n FROM bronze.erp_sales_transactions GROUP BY run_at ORDER BY run_at",
            "--format",
            "csv",
        ],
    );
    assert_eq!(
        stdout(&sql),
        "run_at,n\n2026-11-01T00:00:00Z,2\n2026-11-02T00:00:00Z,2\n2026-11-03T00:00:00Z,2\n\
         2026-11-04T00:00:00Z,2\n",
        "{}",
        stderr(&sql)
    );
    // An empty range is refused before anything runs.
    let reversed = orchestrate(
        dir.path(),
        &["run", "--from", "2026-11-04", "--to", "2026-11-01"],
    );
    assert!(!reversed.status.success());
    assert!(
        stderr(&reversed).contains("--to must be later"),
        "{}",
        stderr(&reversed)
    );
    let with_run_at = orchestrate(
        dir.path(),
        &[
            "run",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-02",
            "--run-at",
            "2026-11-01T00:00:00Z",
        ],
    );
    assert_eq!(
        with_run_at.status.code(),
        Some(2),
        "{}",
        stderr(&with_run_at)
    );
    // `M` is months to humantime: refused, as is a month of 30.44 days.
    for (flag, duration) in [
        ("--every", "5M"),
        ("--timeout", "5M"),
        ("--retry-delay", "1month"),
    ] {
        let months = orchestrate(dir.path(), &["run", flag, duration]);
        assert_eq!(months.status.code(), Some(2), "{}", stderr(&months));
        assert!(
            stderr(&months).contains("is months of 30.44 days: write `m` for minutes"),
            "{}",
            stderr(&months)
        );
    }
    let step_alone = orchestrate(dir.path(), &["run", "--step", "2d"]);
    assert_eq!(step_alone.status.code(), Some(2), "{}", stderr(&step_alone));
    // A range reaching into the future is refused before anything runs (every later run would
    // take a logical time after it).
    let future = orchestrate(
        dir.path(),
        &[
            "run",
            "--from",
            "2026-11-01",
            "--to",
            "2099-01-01",
            "--step",
            "30d",
        ],
    );
    assert_eq!(future.status.code(), Some(1));
    assert!(
        stderr(&future).contains("is in the future") && stderr(&future).contains("--force"),
        "{}",
        stderr(&future)
    );
}

#[test]
fn prune_ledger_forgets_old_runs_and_a_backfill_over_them_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let backfill = |from: &str, to: &str| backfill_erp(dir.path(), from, to);
    let first = backfill("2026-11-01", "2026-11-04");
    assert!(first.status.success(), "{}", stderr(&first));
    // Every run ended before the command started: all are pruned but the latest success.
    let prune = |dry_run: bool| {
        let mut args = vec!["prune-ledger", "--older-than", "1ms"];
        if dry_run {
            args.push("--dry-run");
        }
        let output = orchestrate(dir.path(), &args);
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };
    let dry = prune(true);
    assert!(
        dry.starts_with("would prune 2 run(s) that ended before ")
            && dry.contains("; 1 run(s) that ended before are kept (a pipeline's latest success")
            && dry.contains("  lakehouse.runs: ")
            && dry.contains("row(s) would be removed")
            && !dry.contains("vacuum"),
        "{dry}"
    );
    assert!(stdout(&orchestrate(dir.path(), &["runs"])).contains("r000001"));
    let pruned = prune(false);
    assert!(
        pruned.starts_with("pruned 2 run(s) that ended before ")
            && pruned.contains(
                "a backfill skipping the times already done is refused from \
                 2026-11-01T00:00:00Z to 2026-11-02T00:00:00Z"
            )
            && pruned.contains("until `orchestrate vacuum` deletes them"),
        "{pruned}"
    );
    let runs = stdout(&orchestrate(dir.path(), &["runs"]));
    assert!(
        !runs.contains("r000001")
            && !runs.contains("r000002")
            && runs.contains("r000003")
            && runs.contains("older runs were pruned on "),
        "{runs}"
    );
    let gone = orchestrate(dir.path(), &["runs", "r000001"]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        stderr(&gone).contains("no run `r000001` in the ledger (old runs were pruned from it on "),
        "{}",
        stderr(&gone)
    );
    // Which of the pruned times ran is not known: refused. After them, the kept run's time is
    // done, and the next one runs, in the next sequence.
    let over = backfill("2026-11-01", "2026-11-05");
    assert_eq!(over.status.code(), Some(1), "{}", stdout(&over));
    assert!(
        stderr(&over).contains(
            "from 2026-11-01T00:00:00Z to 2026-11-02T00:00:00Z: which of them were already done \
             is not known. Backfill outside them, or with --rerun to run every time again"
        ),
        "{}",
        stderr(&over)
    );
    let after = backfill("2026-11-03", "2026-11-05");
    let out = stdout(&after);
    assert!(after.status.success(), "{out}\n{}", stderr(&after));
    assert!(
        out.contains("backfill done: 1 run(s), 1 time(s) already done"),
        "{out}"
    );
    assert!(
        stdout(&orchestrate(dir.path(), &["runs"])).contains("r000004"),
        "the next run's sequence"
    );
    // Run 3 is no longer the latest success.
    let again = prune(false);
    assert!(
        again.starts_with("pruned 1 run(s) that ended before ")
            && again.contains("; 1 run(s) that ended before are kept"),
        "{again}"
    );
    let again = prune(false);
    assert!(
        again.starts_with("pruned 0 run(s) that ended before ") && !again.contains("vacuum"),
        "{again}"
    );
}

#[test]
fn a_run_with_a_ledger_retention_prunes_the_runs_before_it() {
    let dir = tempfile::tempdir().expect("dir");
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--select", "dim_date"];
        args.extend_from_slice(extra);
        let output = orchestrate(dir.path(), &args);
        assert!(output.status.success(), "{}", stderr(&output));
    };
    run(&[]);
    run(&[]);
    // Runs 1 and 2 ended before it: pruned after it, which is the latest success.
    run(&["--ledger-retention", "1ms"]);
    let runs = stdout(&orchestrate(dir.path(), &["runs"]));
    assert!(
        !runs.contains("r000001")
            && !runs.contains("r000002")
            && runs.contains("r000003")
            && runs.contains("older runs were pruned on "),
        "{runs}"
    );
    let dry = orchestrate(
        dir.path(),
        &[
            "run",
            "--ledger-retention",
            "1d",
            "--dry-run",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-02",
        ],
    );
    assert_eq!(dry.status.code(), Some(2), "{}", stderr(&dry));
}

#[test]
fn numbers_out_of_range_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().expect("dir");
    let retries = orchestrate(dir.path(), &["run", "--retries", "101"]);
    assert_eq!(retries.status.code(), Some(2));
    assert!(
        stderr(&retries).contains("101 is not in 0..=100"),
        "{}",
        stderr(&retries)
    );
    let memory = orchestrate(dir.path(), &["run", "--memory-limit", "4GB"]);
    assert_eq!(memory.status.code(), Some(2));
    assert!(
        stderr(&memory).contains("unknown unit `gb`"),
        "{}",
        stderr(&memory)
    );
    // A setting is read by its pipeline: the run fails, naming it, with nothing generated.
    let rows = orchestrate(
        dir.path(),
        &[
            "run",
            "--select",
            "erp_sales_transactions",
            "--set",
            "erp.rows=100000000000",
        ],
    );
    assert_eq!(rows.status.code(), Some(1));
    let report = format!("{}{}", stdout(&rows), stderr(&rows));
    assert!(
        report.contains("`erp.rows` = 100000000000 is more than the 10000000 rows"),
        "{report}"
    );
}

#[test]
fn a_wrong_flag_is_explained() {
    let dir = tempfile::tempdir().expect("dir");
    let output = orchestrate(dir.path(), &["run", "--selct", "dim_product"]);
    assert_eq!(output.status.code(), Some(2));
    let error = stderr(&output);
    assert!(
        error.contains("unexpected argument '--selct' found"),
        "{error}"
    );
    assert!(
        error.contains("a similar argument exists: '--select'"),
        "{error}"
    );
    let unknown = orchestrate(dir.path(), &["run", "--select", "dim_prodcut"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown)
            .contains("no pipeline is named `dim_prodcut`; did you mean `dim_product`?"),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn values_that_cannot_work_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().expect("dir");
    let warehouse = dir.path().join("warehouse");
    for (args, expected) in [
        (&["run", "--every", "0s"][..], "must be longer than zero"),
        (&["run", "--timeout", "0s"], "must be longer than zero"),
        (
            &["run", "--every", "1s", "--iterations", "0"],
            "must be at least 1",
        ),
        (&["run", "--concurrency", "0"], "must be at least 1"),
        (&["runs", "--limit", "0"], "must be at least 1"),
        // An empty variable in `--select "$PIPES"` must not select everything.
        (&["run", "--select", ""], "an empty selector"),
        (&["plan", "--select", ",,"], "an empty selector"),
        (
            &[
                "run",
                "--notify",
                "http://hooks.example.org/services/T/B/SECRET",
            ],
            "must be https (or http to this machine), not http://hooks.example.org/…",
        ),
    ] {
        let output = orchestrate(&warehouse, args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(expected),
            "{args:?}: {}",
            stderr(&output)
        );
        // A webhook's token is not repeated.
        assert!(!stderr(&output).contains("SECRET"), "{}", stderr(&output));
    }
    assert!(!warehouse.exists(), "nothing ran");
}

#[test]
fn reading_a_warehouse_that_does_not_exist_is_an_error_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let mistyped = dir.path().join("warehuose");
    for args in [
        &["sql", "SELECT 1"][..],
        &["runs"],
        &["optimize"],
        &["vacuum"],
        &["resume", "r000001"],
        &["prune-ledger", "--older-than", "90d"],
    ] {
        let output = orchestrate(&mistyped, args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let error = stderr(&output);
        assert!(
            error.contains(&format!("no warehouse at {}", mistyped.display()))
                && error.contains("check --warehouse"),
            "{args:?}: {error}"
        );
    }
    // Planning reads no warehouse; a run whose selection is refused opens none.
    assert!(
        orchestrate(&mistyped, &["plan", "--select", "+dim_product"])
            .status
            .success()
    );
    assert_eq!(
        orchestrate(&mistyped, &["run", "--select", "nosuch"])
            .status
            .code(),
        Some(1)
    );
    // A gate does not pass on a mistyped warehouse; a fresh clone has none at the default place.
    let check = orchestrate(&mistyped, &["check"]);
    assert_eq!(check.status.code(), Some(1));
    assert!(
        stderr(&check).contains(&format!(
            "no warehouse at {}: check --warehouse or LAKEHOUSE_WAREHOUSE",
            mistyped.display()
        )),
        "{}",
        stderr(&check)
    );
    let fresh = Command::new(env!("CARGO_BIN_EXE_orchestrate"))
        .arg("check")
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .env_remove("LAKEHOUSE_WAREHOUSE")
        .output()
        .expect("the binary runs");
    assert!(fresh.status.success(), "{}", stderr(&fresh));
    assert!(
        stdout(&fresh).contains("data/warehouse yet, nothing to compare"),
        "{}",
        stdout(&fresh)
    );
    // The default location there but empty: nothing compared either, and nothing said to match.
    let made = tempfile::tempdir().expect("dir");
    std::fs::create_dir_all(made.path().join("data/warehouse")).expect("mkdir");
    let empty = Command::new(env!("CARGO_BIN_EXE_orchestrate"))
        .arg("check")
        .current_dir(made.path())
        .env("RUST_LOG", "warn")
        .env_remove("LAKEHOUSE_WAREHOUSE")
        .output()
        .expect("the binary runs");
    assert!(empty.status.success(), "{}", stderr(&empty));
    let said = stdout(&empty);
    assert!(
        said.contains("tables: none written at data/warehouse yet, nothing to compare")
            && !said.contains("every Delta table matches")
            && !said.contains("every data file"),
        "{said}"
    );
    // Given, even as the default's text, a location that does not exist fails the gate.
    let given = Command::new(env!("CARGO_BIN_EXE_orchestrate"))
        .arg("check")
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .env("LAKEHOUSE_WAREHOUSE", "data/warehouse")
        .output()
        .expect("the binary runs");
    assert_eq!(given.status.code(), Some(1), "{}", stdout(&given));
    assert!(
        stderr(&given).contains("data/warehouse: check --warehouse or LAKEHOUSE_WAREHOUSE"),
        "{}",
        stderr(&given)
    );
    assert!(!mistyped.exists(), "the mistyped warehouse was created");
    // An existing directory that holds no table: the warehouse's parent, say.
    for args in [&["sql", "SELECT 1"][..], &["runs"], &["vacuum"], &["check"]] {
        let output = orchestrate(dir.path(), args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let error = stderr(&output);
        assert!(
            error.contains(&format!("no warehouse at {}", dir.path().display()))
                && error.contains("holds no Delta table"),
            "{args:?}: {error}"
        );
    }
    // A file where the warehouse should be: said so, by a run (which announced a new warehouse
    // and failed on "File exists") and by a read (which said the directory did not exist).
    let file = dir.path().join("warehouse.txt");
    std::fs::write(&file, "not a warehouse").expect("file");
    let dangling = dir.path().join("warehouse-link");
    std::os::unix::fs::symlink(dir.path().join("gone"), &dangling).expect("link");
    for (location, args) in [
        (&file, &["run", "--select", "dim_date"][..]),
        (&file, &["vacuum"]),
        (&dangling, &["run", "--select", "dim_date"]),
    ] {
        let output = orchestrate(location, args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&output).contains("it is a file (or a link to nothing), not a directory")
                && !stdout(&output).contains("this run creates it"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    // An object store has no folders to look at: no table written there fails the gate.
    let bucket = Command::new(env!("CARGO_BIN_EXE_orchestrate"))
        .args(["--warehouse", "memory:///typo", "check"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary runs");
    assert_eq!(bucket.status.code(), Some(1), "{}", stdout(&bucket));
    assert!(
        stdout(&bucket).contains(
            "tables: none of this lakehouse's 26 tables is written at memory:///typo: check \
             --warehouse"
        ),
        "{}",
        stdout(&bucket)
    );
    // Asked of a missing table, the kernel logged an ERROR for each.
    assert!(!stderr(&bucket).contains("ERROR"), "{}", stderr(&bucket));
    // Maintenance and queries of it fail too, rather than pass maintaining nothing.
    for args in [
        &["optimize"][..],
        &["vacuum", "--retention", "0s", "--force"],
        &["sql", "SELECT count(*) FROM gold.dim_date"],
        // (They told a monitoring script of an empty ledger, a table not written yet.)
        &["runs"],
        &["history", "gold.dim_date"],
        &["describe", "gold.dim_date"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_orchestrate"))
            .args(["--warehouse", "memory:///typo"])
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .expect("the binary runs");
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&output).contains(
                "no warehouse at memory:///typo: none of this lakehouse's 26 tables is written \
                 there"
            ),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn vacuum_dry_run_lists_the_files_and_maintenance_goes_on_past_a_failing_table() {
    let dir = tempfile::tempdir().expect("dir");
    for _ in 0..2 {
        let run = orchestrate(dir.path(), &["run", "--select", "dim_date"]);
        assert!(run.status.success(), "{}", stderr(&run));
    }
    let dry = orchestrate(
        dir.path(),
        &[
            "vacuum",
            "gold.dim_date",
            "--retention",
            "0s",
            "--force",
            "--dry-run",
        ],
    );
    assert!(dry.status.success(), "{}", stderr(&dry));
    let listed = stdout(&dry);
    assert!(
        listed.starts_with("gold.dim_date: would delete 1 file(s)\n  "),
        "{listed}"
    );
    assert!(listed.trim_end().ends_with(".parquet"), "{listed}");
    // A table that fails (a short retention without --force) does not stop the others.
    let refused = orchestrate(
        dir.path(),
        &[
            "vacuum",
            "gold.dim_date",
            "lakehouse.runs",
            "--retention",
            "1h",
            "--dry-run",
        ],
    );
    assert_eq!(refused.status.code(), Some(1));
    let error = stderr(&refused);
    assert!(
        error.contains("error: vacuum of gold.dim_date: a retention of 1h")
            && error.contains("error: vacuum of lakehouse.runs: a retention of 1h")
            && error.contains("vacuum: 2 table(s) failed"),
        "{error}"
    );
}

#[test]
fn history_says_when_the_log_no_longer_reaches_the_first_version() {
    let dir = tempfile::tempdir().expect("dir");
    for _ in 0..2 {
        let run = orchestrate(dir.path(), &["run", "--select", "dim_date"]);
        assert!(run.status.success(), "{}", stderr(&run));
    }
    // As Delta's log cleanup leaves it: a checkpoint at the latest version, the commits before
    // it gone.
    let table = Registry::from_inventory()
        .expect("registry")
        .get("dim_date")
        .expect("dim_date")
        .output;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let log = runtime.block_on(async {
        let warehouse = lakehouse_runtime::Warehouse::open(dir.path().to_str().expect("utf-8"))
            .expect("warehouse");
        let delta = warehouse.load(table).await.expect("load").expect("table");
        assert_eq!(delta.version(), Some(2));
        lakehouse_runtime::deltalake::checkpoints::create_checkpoint(&delta, None)
            .await
            .expect("checkpoint");
        warehouse
            .local_root()
            .expect("a local warehouse")
            .join("gold/dim_date/_delta_log")
    });
    for version in 0..2 {
        std::fs::remove_file(log.join(format!("{version:020}.json"))).expect("cleaned up");
    }
    let history = orchestrate(dir.path(), &["history", "gold.dim_date"]);
    let out = stdout(&history);
    assert!(history.status.success(), "{out}{}", stderr(&history));
    assert!(
        out.ends_with(
            "versions before 2 are no longer in the table's log: Delta removes the entries \
             older than its `delta.logRetentionDuration`, 30days at checkpoints\n"
        ),
        "{out}"
    );
    // A page that holds every version the log has says so too; a shorter one says `--limit`.
    let limited = |limit: &str| {
        stdout(&orchestrate(
            dir.path(),
            &["history", "gold.dim_date", "--limit", limit],
        ))
    };
    assert!(
        limited("1").ends_with(
            "versions before 2 are no longer in the table's log: Delta removes the entries \
             older than its `delta.logRetentionDuration`, 30days at checkpoints\n"
        ),
        "{}",
        limited("1")
    );
    let run = orchestrate(dir.path(), &["run", "--select", "dim_date"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        limited("1").ends_with("the latest 1 version(s) shown: `--limit N` shows more\n"),
        "{}",
        limited("1")
    );
}

#[test]
fn a_forced_short_retention_waits_for_a_run_in_progress_here() {
    use lakehouse_runtime::ledger::{Ledger, RunProcess};
    let dir = tempfile::tempdir().expect("dir");
    let run = orchestrate(dir.path(), &["run", "--select", "dim_date"]);
    assert!(run.status.success(), "{}", stderr(&run));
    // A run in progress, by a live process of this host (this test's).
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let warehouse = lakehouse_runtime::Warehouse::open(dir.path().to_str().expect("utf-8"))
            .expect("warehouse");
        let ledger = Ledger::new(warehouse);
        let done = ledger.runs(1).await.expect("runs").remove(0);
        let running = lakehouse_runtime::ledger::RunRecord {
            run_id: "r000099-in-progress".to_owned(),
            sequence: 99,
            status: "running".to_owned(),
            finished_at: None,
            process: Some(RunProcess::current().to_json()),
            ..done
        };
        ledger.append(&[running]).await.expect("recorded");
    });
    for extra in [&[][..], &["--dry-run"][..]] {
        let mut args = vec!["vacuum", "gold.dim_date", "--retention", "0s", "--force"];
        args.extend_from_slice(extra);
        let refused = orchestrate(dir.path(), &args);
        assert_eq!(
            refused.status.code(),
            Some(1),
            "{extra:?}: {}",
            stderr(&refused)
        );
        assert!(
            stderr(&refused).contains("vacuum of gold.dim_date: run `r000099-in-progress` (pid ")
                && stderr(&refused)
                    .contains(") is running; a forced retention of 0s under the table's"),
            "{extra:?}: {}",
            stderr(&refused)
        );
    }
    // Within the table's retention, nothing uncommitted is old enough: not refused, forced or
    // not.
    for args in [
        &["vacuum", "gold.dim_date"][..],
        &["vacuum", "gold.dim_date", "--force"],
    ] {
        let kept = orchestrate(dir.path(), args);
        assert!(kept.status.success(), "{args:?}: {}", stderr(&kept));
    }
    // A ledger that cannot be read cannot rule a run out: refused too, even with the readers
    // ignored (before, it was only warned about, and the files went).
    let log = dir.path().join("lakehouse/runs/_delta_log");
    let mut entries: Vec<_> = std::fs::read_dir(&log)
        .expect("log")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    entries.sort();
    std::fs::write(entries.last().expect("a commit"), "not a commit").expect("broken");
    let args = [
        "vacuum",
        "gold.dim_date",
        "--retention",
        "0s",
        "--force",
        "--ignore-pending-readers",
    ];
    let refused = orchestrate(dir.path(), &args);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("vacuum of gold.dim_date: lakehouse.runs could not be read (")
            && stderr(&refused)
                .contains("so a run in progress cannot be ruled out; a forced retention of 0s"),
        "{}",
        stderr(&refused)
    );
    let kept = orchestrate(
        dir.path(),
        &[
            "vacuum",
            "gold.dim_date",
            "--force",
            "--ignore-pending-readers",
        ],
    );
    assert!(kept.status.success(), "{}", stderr(&kept));
}

#[test]
fn forcing_a_short_retention_still_asks_the_incremental_readers() {
    let dir = tempfile::tempdir().expect("dir");
    // The silver reader reads one extract, then two it has not read are compacted away.
    let first = orchestrate(
        dir.path(),
        &["run", "--select", "+silver_erp_sales_transactions"],
    );
    assert!(first.status.success(), "{}", stderr(&first));
    for _ in 0..2 {
        let run = orchestrate(dir.path(), &["run", "--select", "erp_sales_transactions"]);
        assert!(run.status.success(), "{}", stderr(&run));
    }
    let optimize = orchestrate(dir.path(), &["optimize", "bronze.erp_sales_transactions"]);
    assert!(optimize.status.success(), "{}", stderr(&optimize));
    let vacuum = |extra: &[&str]| {
        let mut args = vec![
            "vacuum",
            "bronze.erp_sales_transactions",
            "--retention",
            "0s",
            "--force",
        ];
        args.extend_from_slice(extra);
        orchestrate(dir.path(), &args)
    };
    let refused = vacuum(&[]);
    assert_eq!(refused.status.code(), Some(1));
    let error = stderr(&refused);
    assert!(
        error.contains(
            "pipeline `silver_erp_sales_transactions` reads its changes incrementally and has \
             not read version 2 yet"
        ) && error.contains("pass --ignore-pending-readers"),
        "{error}"
    );
    // A dry run lists the files, and fails as the vacuum would: a gate sees the refusal.
    let dry = vacuum(&["--dry-run"]);
    assert_eq!(dry.status.code(), Some(1), "{}", stderr(&dry));
    assert!(
        stdout(&dry).starts_with("bronze.erp_sales_transactions: would delete 3 file(s)"),
        "{}",
        stdout(&dry)
    );
    assert!(
        stderr(&dry).contains("the vacuum would be refused: ")
            && stderr(&dry).contains("has not read version 2 yet"),
        "{}",
        stderr(&dry)
    );
    let ignored = vacuum(&["--ignore-pending-readers"]);
    assert!(ignored.status.success(), "{}", stderr(&ignored));
    assert!(
        stdout(&ignored).starts_with("bronze.erp_sales_transactions: deleted 3 file(s)"),
        "{}",
        stdout(&ignored)
    );
    // A ledger that cannot tell where the reader is: the vacuum is refused, its dry run too.
    let runs = dir.path().join("lakehouse/runs");
    for file in std::fs::read_dir(&runs).expect("runs folder") {
        let path = file.expect("entry").path();
        if path.extension().is_some_and(|e| e == "parquet") {
            std::fs::remove_file(path).expect("removed");
        }
    }
    for extra in [&[][..], &["--dry-run"][..]] {
        let refused = vacuum(extra);
        assert_eq!(
            refused.status.code(),
            Some(1),
            "{extra:?}: {}",
            stderr(&refused)
        );
        assert!(
            stderr(&refused).contains("reading the run ledger"),
            "{extra:?}: {}",
            stderr(&refused)
        );
    }
}

#[test]
fn a_loop_prints_each_report_and_checks_the_settings_once() {
    let dir = tempfile::tempdir().expect("dir");
    let output = orchestrate(
        dir.path(),
        &[
            "run",
            "--select",
            "dim_date",
            "--every",
            "1ms",
            "--iterations",
            "2",
            "--set",
            "dim.typo=1",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    assert_eq!(out.matches("1 succeeded in").count(), 2, "{out}");
    assert!(out.ends_with("2 run(s) done\n"), "{out}");
    // Runs whose pipelines fail are done too, and counted apart (an empty snapshot directory).
    let empty = tempfile::tempdir().expect("dir");
    let opendata_dir = empty.path().display().to_string();
    let failing = orchestrate(
        dir.path(),
        &[
            "--opendata-dir",
            &opendata_dir,
            "run",
            "--select",
            "velib_station_info",
            "--every",
            "1ms",
            "--iterations",
            "2",
        ],
    );
    assert_eq!(failing.status.code(), Some(1), "{}", stderr(&failing));
    let out = stdout(&failing);
    assert!(out.ends_with("2 run(s) done (2 not successful)\n"), "{out}");
    let warning = "setting `dim.typo` was not read by any pipeline of the run";
    assert_eq!(
        stderr(&output).matches(warning).count(),
        1,
        "{}",
        stderr(&output)
    );
}

#[test]
fn check_reports_data_files_lost_outside_delta() {
    let dir = tempfile::tempdir().expect("dir");
    let run = orchestrate(dir.path(), &["run", "--select", "dim_date"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let clean = orchestrate(dir.path(), &["check"]);
    assert!(clean.status.success(), "{}", stdout(&clean));
    assert!(
        stdout(&clean).contains("files: every data file the tables reference is present"),
        "{}",
        stdout(&clean)
    );
    let table = dir.path().join("gold").join("dim_date");
    let lost = std::fs::read_dir(&table)
        .expect("table directory")
        .map(|entry| entry.expect("entry").path())
        .find(|path| path.extension().is_some_and(|e| e == "parquet"))
        .expect("a data file");
    std::fs::remove_file(&lost).expect("removed");
    let damaged = orchestrate(dir.path(), &["check"]);
    assert_eq!(damaged.status.code(), Some(1));
    let name = lost
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        stdout(&damaged).contains(&format!(
            "missing files: gold.dim_date: 1 data file(s) of its current version are gone (e.g. {name})"
        )),
        "{}",
        stdout(&damaged)
    );

    // A table another engine gave a writer feature delta-rs lacks: every write of it fails.
    let log = table.join("_delta_log");
    let latest = std::fs::read_dir(&log)
        .expect("log")
        .filter_map(|entry| {
            let name = entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            name.strip_suffix(".json")?.parse::<u64>().ok()
        })
        .max()
        .expect("a commit");
    std::fs::write(
        log.join(format!("{:020}.json", latest + 1)),
        concat!(
            r#"{"commitInfo":{"timestamp":1764547200000,"operation":"SET TBLPROPERTIES"}}"#,
            "\n",
            r#"{"protocol":{"minReaderVersion":1,"minWriterVersion":7,"writerFeatures":["identityColumns"]}}"#,
            "\n"
        ),
    )
    .expect("a commit of another engine");
    let unwritable = orchestrate(dir.path(), &["check"]);
    assert_eq!(unwritable.status.code(), Some(1));
    assert!(
        stdout(&unwritable).contains(
            "unwritable: gold.dim_date: delta-rs cannot write it (Unsupported table features \
             required: [IdentityColumns])"
        ),
        "{}",
        stdout(&unwritable)
    );

    // A table whose log cannot be read is reported, and the others are still checked.
    let other = orchestrate(dir.path(), &["run", "--select", "erp_sales_transactions"]);
    assert!(other.status.success(), "{}", stderr(&other));
    let log = dir
        .path()
        .join("bronze/erp_sales_transactions/_delta_log")
        .join(format!("{:020}.json", 0));
    std::fs::write(&log, "{ not json").expect("log damaged");
    let unreadable = orchestrate(dir.path(), &["check"]);
    assert_eq!(unreadable.status.code(), Some(1));
    let out = stdout(&unreadable);
    assert!(
        out.contains("unreadable: bronze.erp_sales_transactions: ")
            && out.contains("missing files: gold.dim_date: 1 data file(s)"),
        "{out}"
    );
    assert!(
        !out.contains("every Delta table matches") && !out.contains("every data file"),
        "{out}"
    );
    // The check itself did not fail (the Delta kernel logs what it could not parse).
    assert!(
        !stderr(&unreadable)
            .lines()
            .any(|line| line.starts_with("error:")),
        "{}",
        stderr(&unreadable)
    );
}

#[test]
fn a_reader_that_goes_away_fails_nothing() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().expect("dir");
    // `orchestrate run 2>&1 | head -1`: both outputs closed before the first line.
    let mut child = Command::new(env!("CARGO_BIN_EXE_orchestrate"))
        .arg("--warehouse")
        .arg(dir.path())
        .args(["run", "--select", "dim_date"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = child.wait().expect("exits");
    assert_eq!(status.code(), Some(0));
    let runs = orchestrate(dir.path(), &["runs"]);
    let listed = stdout(&runs);
    assert!(listed.contains("r000001-"), "{listed}");
    assert!(listed.contains("succeeded"), "{listed}");
    assert!(!listed.contains("failed"), "{listed}");
    // A query whose reader goes away.
    let mut child = Command::new(env!("CARGO_BIN_EXE_orchestrate"))
        .arg("--warehouse")
        .arg(dir.path())
        .args(["sql", "SELECT * FROM gold.dim_date", "--format", "csv"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary runs");
    drop(child.stdout.take());
    assert_eq!(child.wait().expect("exits").code(), Some(0));
    // A failing command whose error has no reader: exit code 1, not a panic's 101.
    let mut child = Command::new(env!("CARGO_BIN_EXE_orchestrate"))
        .arg("--warehouse")
        .arg(dir.path())
        .args(["sql", "SELECT * FROM gold.no_such_table"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    drop(child.stdout.take());
    drop(child.stderr.take());
    assert_eq!(child.wait().expect("exits").code(), Some(1));
}

#[test]
fn the_readme_orchestrations_plan_as_described() {
    let dir = tempfile::tempdir().expect("dir");
    let plan = |args: &[&str]| {
        let mut all = vec!["plan"];
        all.extend_from_slice(args);
        let output = orchestrate(dir.path(), &all);
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };
    let ingestions = plan(&[
        "--select",
        "velib_station_status,velib_station_info,velov_station_status,velov_station_info",
    ]);
    assert!(
        ingestions.starts_with("Plan: 4 pipeline(s) in 1 group(s)"),
        "{ingestions}"
    );
    let downstream = plan(&[
        "--select",
        "velib_station_status,velov_station_status",
        "--direction",
        "downstream",
    ]);
    assert!(
        downstream.starts_with("Plan: 6 pipeline(s) in 4 group(s)"),
        "{downstream}"
    );
    assert!(
        downstream.contains("   4. fact_bike_status"),
        "{downstream}"
    );
    let upstream = plan(&["--select", "fact_bike_status", "--direction", "upstream"]);
    assert!(
        upstream.starts_with("Plan: 11 pipeline(s) in 4 group(s)"),
        "{upstream}"
    );
    let readme = include_str!("../../README.md");
    for command in [
        "run --live --select velib_station_status,velib_station_info,velov_station_status,velov_station_info --every 60s --for 10m",
        "run --select velib_station_status,velov_station_status --direction downstream",
        "run --select fact_bike_status --direction upstream",
    ] {
        assert!(readme.contains(command), "README shows `{command}`");
    }
}

#[test]
fn an_ingestion_rejecting_too_many_records_fails_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    // The bundled Vélo'v availability has 3 malformed stations out of 70 (4.3 %).
    let strict = orchestrate(
        dir.path(),
        &[
            "run",
            "--select",
            "velov_station_status",
            "--set",
            "ingest.velov_station_status.max_reject_ratio=0.04",
            // Not retried: the same answer would fail the same way.
            "--retries",
            "2",
        ],
    );
    assert_eq!(strict.status.code(), Some(1), "{}", stderr(&strict));
    let report = format!("{}{}", stdout(&strict), stderr(&strict));
    assert!(
        report.contains(
            "velov_station_status rejected 3 of 70 records (4.3 %, more than the 4.0 % allowed)"
        ),
        "{report}"
    );
    assert!(
        report.contains("raise `ingest.velov_station_status.max_reject_ratio`"),
        "{report}"
    );
    assert!(
        !dir.path().join("bronze/velov_station_status").exists(),
        "nothing written"
    );
    // The rejected records are kept, with the failed attempt: they show what changed.
    let rejects = stdout(&orchestrate(
        dir.path(),
        &[
            "sql",
            "SELECT count(*) AS n FROM lakehouse.rejects WHERE pipeline = 'velov_station_status'",
            "--format",
            "csv",
        ],
    ));
    assert_eq!(rejects, "n\n3\n");
    // The default limit (10 %) lets the same list through.
    let default = orchestrate(dir.path(), &["run", "--select", "velov_station_status"]);
    assert!(default.status.success(), "{}", stderr(&default));
}

#[test]
fn sql_streams_any_result_and_draws_the_first_thousand_rows() {
    let dir = tempfile::tempdir().expect("dir");
    let ran = orchestrate(dir.path(), &["run", "--select", "crm_contacts"]);
    assert!(ran.status.success(), "{}", stderr(&ran));
    let query = "SELECT value FROM generate_series(1, 2500)";
    let grid = stdout(&orchestrate(dir.path(), &["sql", query]));
    assert!(
        grid.ends_with(
            "2500 row(s), the first 1000 shown (`--format csv` or `json` writes them all)\n"
        ),
        "{}",
        &grid[grid.len().saturating_sub(300)..]
    );
    assert!(grid.contains("│ 1000  │"), "the 1000th row is drawn");
    assert!(!grid.contains("│ 1001  │"), "the 1001st is not");
    let csv = stdout(&orchestrate(dir.path(), &["sql", query, "--format", "csv"]));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        (lines.len(), lines[0], lines[2500]),
        (2501, "value", "2500")
    );
}

#[test]
fn sigterm_stops_a_loop_like_ctrl_c() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().expect("dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_orchestrate"))
        .arg("--warehouse")
        .arg(dir.path())
        .args(["run", "--select", "crm_contacts", "--every", "1h"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the binary runs");
    // The first run's report is printed; the loop then waits an hour for the next.
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let report = lines
        .by_ref()
        .map(|line| line.expect("utf-8"))
        .find(|line| line.starts_with("Run r000001"))
        .expect("the first run's report");
    assert!(report.contains("1 succeeded"), "{report}");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = child.wait().expect("exits");
    assert_eq!(
        status.code(),
        Some(0),
        "stopped cleanly, not killed: {status:?}"
    );
}

#[test]
fn a_run_at_a_date_and_a_failed_run_says_how_to_resume() {
    let temp = tempfile::tempdir().expect("dir");
    let dir = temp.path().join("wh");
    let dated = orchestrate(
        &dir,
        &["run", "--select", "dim_date", "--run-at", "2026-11-01"],
    );
    assert!(dated.status.success(), "{}", stderr(&dated));
    assert!(
        stdout(&dated).contains("r000001-20261101T000000Z"),
        "{}",
        stdout(&dated)
    );
    // The run says where it writes, and that it created the warehouse.
    assert!(
        stdout(&dated).contains(&format!(
            "Warehouse: {} (new: this run creates it)",
            dir.display()
        )),
        "{}",
        stdout(&dated)
    );
    // The API unreachable, one attempt.
    let failed = orchestrate(
        &dir,
        &[
            "--live",
            "run",
            "--select",
            "velib_station_status",
            "--set",
            "velib.base_url=http://127.0.0.1:9/api/explore/v2.1/",
            "--set",
            "opendata.http.max_attempts=1",
        ],
    );
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    let printed = stdout(&failed);
    assert!(
        printed.contains(&format!("Warehouse: {}\n", dir.display())),
        "{printed}"
    );
    assert!(
        printed.contains("Once mended, `orchestrate resume r000002-")
            && printed.contains("runs the pipelines that did not succeed"),
        "{printed}"
    );
}

#[test]
fn an_option_and_a_set_giving_one_setting_two_values_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    for (args, said) in [
        (
            &["--live", "run", "--set", "opendata.mode=snapshot"][..],
            "`--live` and `--set opendata.mode=snapshot` ask for two modes: give one",
        ),
        (
            &["--opendata-dir", "/a", "check", "--set", "opendata.dir=/b"][..],
            "`--opendata-dir /a` and `--set opendata.dir=/b` name two directories: give one",
        ),
        (
            &["--live", "--opendata-dir", "/a", "run"][..],
            "`--live` reads the open-data APIs and would leave `--opendata-dir /a` unread: to \
             record their answers there, use `--set opendata.mode=record` instead of `--live`; \
             to read that snapshot, leave `--live` out",
        ),
        (
            &["--live", "run", "--set", "opendata.dir=/b"][..],
            "would leave `--set opendata.dir=/b` unread",
        ),
        (
            &["--opendata-dir", "/a", "run", "--set", "opendata.mode=live"][..],
            "`--set opendata.mode=live` reads the open-data APIs and would leave \
             `--opendata-dir /a` unread",
        ),
    ] {
        let refused = orchestrate(dir.path(), args);
        assert_eq!(refused.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&refused).contains(said),
            "{args:?}: {}",
            stderr(&refused)
        );
    }
    // Saying the same twice is no conflict, however the directory is written.
    // (Tests run in the package's directory: `../data/opendata` is the bundled snapshot.)
    let snapshot = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/opendata");
    let snapshot = std::fs::canonicalize(snapshot).expect("the bundled snapshot");
    let same_dir = format!("opendata.dir={}", snapshot.display());
    for args in [
        &[
            "--live",
            "run",
            "--select",
            "dim_date",
            "--set",
            "opendata.mode=live",
        ][..],
        &[
            "--opendata-dir",
            "../data/opendata",
            "run",
            "--select",
            "dim_date",
            "--set",
            &same_dir,
        ],
    ] {
        let same = orchestrate(dir.path(), args);
        assert!(same.status.success(), "{args:?}: {}", stderr(&same));
    }
}

#[test]
fn a_json_report_is_the_only_output_on_stdout() {
    let dir = tempfile::tempdir().expect("dir");
    let run = orchestrate(
        dir.path(),
        &["run", "--select", "dim_date", "--format", "json"],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let out = stdout(&run);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    let report: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON object");
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["sequence"], 1);
    assert_eq!(report["pipelines"][0]["pipeline"], "dim_date");
    assert_eq!(report["pipelines"][0]["table"], "gold.dim_date");
    // The plan and the warehouse go to stderr.
    assert!(
        stderr(&run).contains("Plan: 1 pipeline(s) in 1 group(s)"),
        "{}",
        stderr(&run)
    );
    assert!(stderr(&run).contains("Warehouse: "), "{}", stderr(&run));
}

#[test]
fn a_backfill_dry_run_lists_what_each_time_would_run() {
    let temp = tempfile::tempdir().expect("dir");
    let dir = temp.path().join("wh");
    let range = [
        "run",
        "--select",
        "dim_date",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-04",
    ];
    let dry = |extra: &[&str]| {
        let mut args = range.to_vec();
        args.extend_from_slice(extra);
        args.push("--dry-run");
        let output = orchestrate(&dir, &args);
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };
    // No warehouse yet: every time would run, and nothing is created.
    let fresh = dry(&[]);
    assert!(
        fresh.contains("backfill (dry run): 3 time(s) from 2026-11-01T00:00:00Z every 1day, 3 to run, 0 already done")
            && fresh.contains("  2026-11-03T00:00:00Z: dim_date"),
        "{fresh}"
    );
    assert!(!dir.exists(), "a dry run created the warehouse");
    // An existing directory holding no table yet: the same, as the backfill itself takes it.
    std::fs::create_dir(&dir).expect("dir");
    assert_eq!(dry(&[]), fresh);
    assert_eq!(
        std::fs::read_dir(&dir).expect("dir").count(),
        0,
        "the dry run wrote"
    );
    // The first day backfilled: it is done, the others would run; --rerun would run all.
    let first = orchestrate(
        &dir,
        &[
            "run",
            "--select",
            "dim_date",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-02",
        ],
    );
    assert!(first.status.success(), "{}", stderr(&first));
    let after = dry(&[]);
    assert!(
        after.contains("2 to run, 1 already done")
            && after.contains("  2026-11-01T00:00:00Z: already done")
            && after.contains("  2026-11-02T00:00:00Z: dim_date"),
        "{after}"
    );
    assert!(dry(&["--rerun"]).contains("3 to run, 0 already done"));
    // The preview is text: with JSON reports it is refused.
    let mut json = range.to_vec();
    json.extend_from_slice(&["--dry-run", "--format", "json"]);
    assert_eq!(orchestrate(&dir, &json).status.code(), Some(2));
    // Nothing ran: still one run in the ledger.
    let runs = stdout(&orchestrate(&dir, &["runs"]));
    assert!(
        runs.contains("r000001-") && !runs.contains("r000002-"),
        "{runs}"
    );
}

#[test]
fn a_relative_snapshot_directory_is_recorded_absolute_for_resume() {
    let dir = tempfile::tempdir().expect("dir");
    // In `dir`, with a warehouse `wh` there and the snapshot directory given as `how`.
    let run_in_dir = |how: [&str; 2]| {
        Command::new(env!("CARGO_BIN_EXE_orchestrate"))
            .args(["--warehouse", "wh"])
            .args(how)
            .args(["run", "--select", "dim_date"])
            .current_dir(dir.path())
            .env("RUST_LOG", "warn")
            .env_remove("LAKEHOUSE_WAREHOUSE")
            .output()
            .expect("the binary runs")
    };
    let run = run_in_dir(["--set", "opendata.dir=snapshots/nov"]);
    assert!(run.status.success(), "{}", stderr(&run));
    // Made absolute, it still counts as unread by the run (no pipeline of it reads open data).
    assert!(
        stderr(&run).contains("setting `opendata.dir` was not read by any pipeline of the run"),
        "{}",
        stderr(&run)
    );
    // The option is made absolute as the setting is: both runs recorded the same.
    let run = run_in_dir(["--opendata-dir", "snapshots/nov"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let recorded = stdout(&orchestrate(
        &dir.path().join("wh"),
        &[
            "sql",
            "SELECT DISTINCT settings FROM lakehouse.runs WHERE kind = 'run'",
            "--format",
            "csv",
        ],
    ));
    let absolute = dir.path().join("snapshots/nov");
    // CSV doubles the JSON's quotes.
    assert_eq!(
        recorded,
        format!(
            "settings\n\"{{\"\"opendata.dir\"\":\"\"{}\"\"}}\"\n",
            absolute.display()
        )
    );
}

#[test]
fn output_that_cannot_be_written_fails_the_command() {
    let dir = tempfile::tempdir().expect("dir");
    // A full disk, as /dev/full answers every write (a closed pipe is no failure: see
    // `a_reader_that_goes_away_fails_nothing`).
    let full = std::fs::File::options()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let output = Command::new(env!("CARGO_BIN_EXE_orchestrate"))
        .args(["--warehouse"])
        .arg(dir.path())
        .args(["graph", "--format", "dot"])
        .env("RUST_LOG", "warn")
        .stdout(full)
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(
            "error: the output could not all be written to stdout: No space left on device"
        ),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_local_webhook_is_posted_to_directly_whatever_the_proxy() {
    use std::io::{Read as _, Write as _};
    let dir = tempfile::tempdir().expect("dir");
    // The hook, on this machine: it answers one request, and keeps what it was sent.
    let hook = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hook_address = hook.local_addr().expect("address");
    let url = format!("http://{hook_address}/hook");
    let received = std::thread::spawn(move || {
        let (mut stream, _) = hook.accept().expect("a request");
        let mut request = Vec::new();
        let mut buffer = [0u8; 8192];
        // Headers, then the JSON body up to its end.
        while !String::from_utf8_lossy(&request).contains("\"run_id\"") || !request.ends_with(b"}")
        {
            let read = stream.read(&mut buffer).expect("read");
            if read == 0 {
                break;
            }
            request.extend_from_slice(&buffer[..read]);
        }
        // (The test's own empty connection, when the report never came, takes no answer.)
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        String::from_utf8_lossy(&request).into_owned()
    });
    // A proxy nothing listens on: a report sent through it would be lost (and in clear).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let proxy = format!("http://{}", closed.local_addr().expect("address"));
    drop(closed);
    let run = orchestrate_with(
        dir.path(),
        &[
            "run",
            "--select",
            "dim_date",
            "--notify",
            &url,
            "--notify-on",
            "always",
        ],
        &[
            ("HTTP_PROXY", &proxy),
            ("http_proxy", &proxy),
            ("ALL_PROXY", &proxy),
        ],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    // The run is over: had its report not come, an empty connection ends the hook's wait (a
    // failing test, not a hanging one).
    drop(std::net::TcpStream::connect(hook_address));
    let request = received.join().expect("the hook's thread");
    assert!(
        request.starts_with("POST /hook ") && request.contains("\"status\":\"succeeded\""),
        "{request}"
    );
}

#[test]
fn a_failures_log_lines_name_the_pipeline_at_any_level() {
    let dir = tempfile::tempdir().expect("dir");
    // `RUST_LOG=warn`, as production often runs: the lines still say whose they are.
    let failed = orchestrate(
        dir.path(),
        &[
            "--opendata-dir",
            "/nonexistent/snapshot",
            "run",
            "--select",
            "velov_station_info",
        ],
    );
    assert_eq!(failed.status.code(), Some(1));
    let logs = stderr(&failed);
    let failure = logs
        .lines()
        .find(|line| line.contains("ERROR") && line.contains("failed"))
        .unwrap_or_else(|| panic!("no error line:\n{logs}"));
    assert!(
        failure.contains("pipeline:") && failure.contains("name=\"velov_station_info\""),
        "{failure}"
    );
}

#[test]
fn describe_tells_files_without_a_row_count_from_empty_ones() {
    let dir = tempfile::tempdir().expect("dir");
    let run = orchestrate(dir.path(), &["run", "--select", "erp_sales_transactions"]);
    assert!(run.status.success(), "{}", stderr(&run));
    // Another engine's file, written without statistics: its add action has no row count.
    let log = dir.path().join("bronze/erp_sales_transactions/_delta_log");
    for entry in std::fs::read_dir(&log).expect("the log") {
        let path = entry.expect("an entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a commit");
        let lines: Vec<String> = text
            .lines()
            .map(|line| {
                let mut action: serde_json::Value = serde_json::from_str(line).expect("an action");
                if let Some(add) = action.get_mut("add").and_then(|a| a.as_object_mut()) {
                    add.remove("stats");
                }
                action.to_string()
            })
            .collect();
        std::fs::write(&path, lines.join("\n") + "\n").expect("rewritten");
    }
    let described = orchestrate(dir.path(), &["describe", "bronze.erp_sales_transactions"]);
    assert!(described.status.success(), "{}", stderr(&described));
    let text = stdout(&described);
    assert!(
        text.contains("at least 0 row(s) (1 file(s) without a row count in the log)"),
        "{text}"
    );
}

#[test]
fn a_past_version_whose_files_were_vacuumed_is_told_as_such() {
    let dir = tempfile::tempdir().expect("dir");
    for _ in 0..2 {
        let run = orchestrate(dir.path(), &["run", "--select", "erp_sales_transactions"]);
        assert!(run.status.success(), "{}", stderr(&run));
    }
    let table = "bronze.erp_sales_transactions";
    let optimized = orchestrate(dir.path(), &["optimize", table]);
    assert!(optimized.status.success(), "{}", stderr(&optimized));
    let vacuumed = orchestrate(
        dir.path(),
        &["vacuum", table, "--retention", "0s", "--force"],
    );
    assert!(vacuumed.status.success(), "{}", stderr(&vacuumed));
    let past = orchestrate(
        dir.path(),
        &[
            "sql",
            "SELECT count(*) FROM bronze.erp_sales_transactions WHERE order_id >= 0",
            "--as-of",
            &format!("{table}=1"),
        ],
    );
    assert_eq!(past.status.code(), Some(1));
    assert!(
        stderr(&past).contains(
            "a data file of bronze.erp_sales_transactions at the version asked is gone: \
             vacuumed since"
        ),
        "{}",
        stderr(&past)
    );
}
