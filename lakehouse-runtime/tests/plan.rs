//! Planning on synthetic registries: directions, orders with their exact groups, selectors, and
//! the errors for unknown names. Also the run-time graph validation.

use lakehouse_runtime::graph::{BoxFuture, GraphError, InputSpec};
use lakehouse_runtime::orchestrator::{Direction, Order, SelectionError, plan, plan_excluding};
use lakehouse_runtime::{
    Ctx, Inputs, PipelineDescriptor, Registry, Result, SchemaEvolution, TableDef, UntypedFrame,
    WriteMode,
};

fn never<'a>(_cx: &'a Ctx, _inputs: Inputs) -> BoxFuture<'a, Result<UntypedFrame>> {
    Box::pin(async { Err(lakehouse_runtime::Error::msg("not run in planning tests")) })
}

fn leak<T>(value: T) -> &'static T {
    Box::leak(Box::new(value))
}

fn table(schema: &str, name: &str) -> &'static TableDef {
    leak(TableDef {
        schema: leak(schema.to_owned()).as_str(),
        name: leak(name.to_owned()).as_str(),
        rust_type: "Synthetic",
        description: "",
        columns: &[],
        key: &[],
        partition_by: &[],
        mode: WriteMode::Append,
        change_columns: None,
        evolution: SchemaEvolution::Merge,
        overwrite: lakehouse_runtime::OverwriteScope::Table,
        quality: lakehouse_runtime::table::Quality::Off,
        z_order: &[],
        target_file_size: None,
        auto_compact: true,
        freshness_secs: None,
        checks: &[],
        expectations: &[],
        properties: &[],
    })
}

/// `(name, layer, depends_on, tags)`; each pipeline writes `layer.name` and reads its deps' tables.
fn registry(spec: &[(&str, &str, &[&str], &[&str])]) -> Result<Registry, GraphError> {
    let outputs: Vec<(&str, &'static TableDef)> =
        spec.iter().map(|(n, l, _, _)| (*n, table(l, n))).collect();
    let descriptors = spec.iter().map(|(name, layer, deps, tags)| {
        let inputs: Vec<InputSpec> = deps
            .iter()
            .filter_map(|d| {
                outputs
                    .iter()
                    .find(|(n, _)| n == d)
                    .map(|(_, t)| InputSpec {
                        table: t,
                        incremental: false,
                    })
            })
            .collect();
        let depends: Vec<&'static str> =
            deps.iter().map(|d| leak(d.to_string()).as_str()).collect();
        let pipeline: &'static PipelineDescriptor = leak(PipelineDescriptor {
            name: leak(name.to_string()).as_str(),
            level: 0,
            depends_on: leak(depends).as_slice(),
            inputs: leak(inputs).as_slice(),
            output: table(layer, name),
            description: "",
            module_path: "synthetic",
            tags: leak(
                tags.iter()
                    .map(|t| leak(t.to_string()).as_str())
                    .collect::<Vec<&'static str>>(),
            )
            .as_slice(),
            retries: None,
            timeout_ms: None,
            full_snapshot: false,
            run: never,
        });
        pipeline
    });
    Registry::new(descriptors)
}

/// a → c, b → c, c → d, c → e, f (isolated), g → e.
fn sample() -> Registry {
    registry(&[
        ("a", "bronze", &[], &["erp"]),
        ("b", "bronze", &[], &["crm"]),
        ("c", "silver", &["a", "b"], &["erp", "crm"]),
        ("d", "gold", &["c"], &[]),
        ("e", "gold", &["c", "g"], &[]),
        ("f", "bronze", &[], &[]),
        ("g", "silver", &[], &[]),
    ])
    .expect("valid")
}

fn groups(targets: &[&str], direction: Direction, order: Order) -> Vec<Vec<&'static str>> {
    let targets: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
    plan(&sample(), &targets, direction, order)
        .expect("plannable")
        .names()
}

#[test]
fn everything_process_first_and_last() {
    assert_eq!(
        groups(&[], Direction::None, Order::ProcessFirst),
        vec![vec!["a", "b", "f", "g"], vec!["c"], vec!["d", "e"]]
    );
    assert_eq!(
        groups(&[], Direction::None, Order::ProcessLast),
        vec![vec!["a", "b"], vec!["c", "g"], vec!["d", "e", "f"]]
    );
}

#[test]
fn directions() {
    assert_eq!(
        groups(&["c"], Direction::None, Order::ProcessFirst),
        vec![vec!["c"]]
    );
    assert_eq!(
        groups(&["c"], Direction::Upstream, Order::ProcessFirst),
        vec![vec!["a", "b"], vec!["c"]]
    );
    assert_eq!(
        groups(&["c"], Direction::Downstream, Order::ProcessFirst),
        vec![vec!["c"], vec!["d", "e"]]
    );
    assert_eq!(
        groups(&["c"], Direction::All, Order::ProcessFirst),
        vec![vec!["a", "b"], vec!["c"], vec!["d", "e"]]
    );
    assert_eq!(
        groups(&["e"], Direction::Upstream, Order::ProcessLast),
        vec![vec!["a", "b"], vec!["c", "g"], vec!["e"]]
    );
    assert_eq!(
        groups(&["e"], Direction::Upstream, Order::ProcessFirst),
        vec![vec!["a", "b", "g"], vec!["c"], vec!["e"]]
    );
}

#[test]
fn selectors() {
    assert_eq!(
        groups(&["+d"], Direction::None, Order::ProcessFirst),
        vec![vec!["a", "b"], vec!["c"], vec!["d"]]
    );
    assert_eq!(
        groups(&["a+"], Direction::None, Order::ProcessFirst),
        vec![vec!["a"], vec!["c"], vec!["d", "e"]]
    );
    assert_eq!(
        groups(&["+c+"], Direction::None, Order::ProcessFirst),
        vec![vec!["a", "b"], vec!["c"], vec!["d", "e"]]
    );
    assert_eq!(
        groups(&["tag:crm"], Direction::None, Order::ProcessFirst),
        vec![vec!["b"], vec!["c"]]
    );
    assert_eq!(
        groups(&["layer:gold"], Direction::None, Order::ProcessFirst),
        vec![vec!["d", "e"]]
    );
    assert_eq!(
        groups(
            &["f", "layer:gold"],
            Direction::Downstream,
            Order::ProcessFirst
        ),
        vec![vec!["d", "e", "f"]]
    );
    // Explicit `+` overrides the direction, which applies to the plain names.
    assert_eq!(
        groups(&["d+", "c"], Direction::Upstream, Order::ProcessFirst),
        vec![vec!["a", "b"], vec!["c"], vec!["d"]]
    );
    // With no plain name, a direction would be silently ignored.
    let unused = plan(
        &sample(),
        &["d+".to_owned(), "tag:erp".to_owned()],
        Direction::Upstream,
        Order::ProcessFirst,
    )
    .unwrap_err()
    .to_string();
    assert!(
        unused.starts_with(
            "the direction `upstream` applies to plain pipeline names, and no target is one"
        ),
        "{unused}"
    );
    // Nor with no target at all (every pipeline).
    let everything = plan(&sample(), &[], Direction::Downstream, Order::ProcessFirst)
        .unwrap_err()
        .to_string();
    assert!(
        everything.starts_with("the direction `downstream` applies to plain pipeline names"),
        "{everything}"
    );
}

#[test]
fn exclusions_leave_pipelines_out_of_the_selection() {
    let exclude = |targets: &[&str], exclude: &[&str], direction| {
        let owned = |names: &[&str]| names.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        plan_excluding(
            &sample(),
            &owned(targets),
            &owned(exclude),
            direction,
            Order::ProcessFirst,
        )
        .map(|plan| plan.names())
    };
    // Everything but the crm tag: `d` and `e` still run after `a`, upstream of them through
    // `c`, which is left out (as dbt orders a selection); the rest of `+e` but `g`.
    assert_eq!(
        exclude(&[], &["tag:crm"], Direction::None),
        Ok(vec![vec!["a", "f", "g"], vec!["d", "e"]])
    );
    // The same in the other order: as late as the selection allows.
    assert_eq!(
        plan_excluding(
            &sample(),
            &[],
            &["tag:crm".to_owned()],
            Direction::None,
            Order::ProcessLast,
        )
        .map(|plan| plan.names()),
        Ok(vec![vec!["a", "g"], vec!["d", "e", "f"]])
    );
    // Through `c`, left out: `d` and `e` count `a` as their upstream (and `e` its own `g`).
    let through = plan_excluding(
        &sample(),
        &[],
        &["tag:crm".to_owned()],
        Direction::None,
        Order::ProcessFirst,
    )
    .expect("plannable");
    let upstreams = |name| through.upstreams_of(name).collect::<Vec<_>>();
    assert_eq!(
        (upstreams("d"), upstreams("e"), upstreams("a")),
        (vec!["a"], vec!["a", "g"], vec![])
    );
    assert_eq!(
        exclude(&["e"], &["g"], Direction::Upstream),
        Ok(vec![vec!["a", "b"], vec!["c"], vec!["e"]])
    );
    // `+name` excludes the upstreams too; the direction does not extend an exclusion.
    assert_eq!(
        exclude(&["d", "e"], &["+c"], Direction::Upstream),
        Ok(vec![vec!["d", "g"], vec!["e"]])
    );
    assert_eq!(
        exclude(&["c"], &["c"], Direction::None),
        Err(SelectionError::NothingLeft)
    );
    let unknown = exclude(&[], &["cc"], Direction::None)
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("no pipeline is named `cc`"), "{unknown}");
}

#[test]
fn unknown_names_suggest_the_closest() {
    let error = |target: &str| {
        plan(
            &sample(),
            &[target.to_owned()],
            Direction::None,
            Order::ProcessFirst,
        )
        .unwrap_err()
        .to_string()
    };
    assert_eq!(error("dd"), "no pipeline is named `dd`; did you mean `d`?");
    assert_eq!(error("zzzz"), "no pipeline is named `zzzz`");
    assert_eq!(
        error("tag:erpp"),
        "no pipeline has tag `erpp`; did you mean `erp`?"
    );
    assert_eq!(
        error("layer:silverr"),
        "no pipeline writes to layer `silverr`; did you mean `silver`?"
    );
    assert_eq!(error("+nope+"), "no pipeline is named `nope`");
    assert_eq!(error("DD"), "no pipeline is named `DD`; did you mean `d`?");
    // A misspelled selector is reported as such, even with a direction it makes unused.
    let misspelled = plan(
        &sample(),
        &["tag:erpp".to_owned()],
        Direction::Upstream,
        Order::ProcessFirst,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        misspelled,
        "no pipeline has tag `erpp`; did you mean `erp`?"
    );
}

#[test]
fn plans_print_as_numbered_groups() {
    let printed = plan(
        &sample(),
        &["+d".to_owned()],
        Direction::None,
        Order::ProcessFirst,
    )
    .expect("plan")
    .to_string();
    assert_eq!(
        printed,
        "Plan: 4 pipeline(s) in 3 group(s)\n   1. a → bronze.a, b → bronze.b\n   2. c → silver.c\n   3. d → gold.d\n"
    );
}

#[test]
fn the_run_time_validation_catches_what_the_compiler_would() {
    let cycle = registry(&[
        ("a", "s", &["c"], &[]),
        ("b", "s", &["a"], &[]),
        ("c", "s", &["b"], &[]),
    ])
    .unwrap_err();
    assert_eq!(
        cycle.to_string(),
        "dependency cycle: a -> c -> b -> a (each depends on the next): remove one of these \
         `depends_on` entries"
    );
    let missing = registry(&[("a", "s", &[], &[]), ("b", "s", &["aa"], &[])]).unwrap_err();
    assert_eq!(
        missing.to_string(),
        "pipeline `b` depends on `aa`, which is not a registered pipeline; did you mean `a`?"
    );
    let duplicate = registry(&[("a", "s", &[], &[]), ("a", "t", &[], &[])]).unwrap_err();
    assert!(
        duplicate
            .to_string()
            .starts_with("two pipelines are named `a`"),
        "{duplicate}"
    );
    // Which of the two is named first does not depend on the order they are given in.
    let first = writer("same", table("s", "one"), &[]);
    let second = leak(PipelineDescriptor {
        module_path: "another",
        output: table("s", "two"),
        ..*writer("same", table("s", "two"), &[])
    });
    for given in [[first, second], [second, first]] {
        assert_eq!(
            Registry::new(given).unwrap_err().to_string(),
            "two pipelines are named `same` (in `another` and `synthetic`): pipeline names must \
             be unique"
        );
    }
    let two_writers = Registry::new([
        writer("one", table("s", "t"), &[]),
        writer("two", table("s", "t"), &[]),
    ])
    .unwrap_err();
    assert!(
        two_writers
            .to_string()
            .starts_with("table `s.t` is written by two pipelines, `one` and `two`"),
        "{two_writers}"
    );
    // The run ledger's schema is the runtime's.
    let ledger = Registry::new([writer("runs", table("lakehouse", "runs"), &[])]).unwrap_err();
    assert_eq!(
        ledger.to_string(),
        "pipeline `runs` writes `lakehouse.runs`: the `lakehouse` schema holds the run ledger, \
         which only the runtime writes; declare the table in another schema"
    );
    // A pipeline reading its own output.
    let own = table("s", "own");
    let itself = Registry::new([leak(PipelineDescriptor {
        inputs: leak([InputSpec {
            table: own,
            incremental: false,
        }]),
        ..*writer("own", own, &[])
    })])
    .unwrap_err();
    assert!(
        itself
            .to_string()
            .starts_with("pipeline `own` reads `s.own`, the table it writes"),
        "{itself}"
    );
    let unproduced = Registry::new([leak(PipelineDescriptor {
        inputs: leak([InputSpec {
            table: table("s", "elsewhere"),
            incremental: false,
        }]),
        ..*writer("reader", table("s", "reader"), &[])
    })])
    .unwrap_err();
    assert!(
        unproduced
            .to_string()
            .contains("which no registered pipeline writes: link the crate"),
        "{unproduced}"
    );
    // A dependency listed twice is one edge.
    let twice = registry(&[("a", "s", &[], &[]), ("b", "s", &["a", "a"], &[])]).expect("valid");
    assert_eq!(twice.downstream("a").len(), 1);
    assert_eq!(twice.edges(), [("a", "b")]);
    let empty = Registry::new(std::iter::empty()).unwrap_err();
    assert!(
        empty.to_string().contains("use my_pipelines as _;"),
        "{empty}"
    );
}

mod referenced {
    use lakehouse_runtime::prelude::*;

    /// A dimension.
    #[derive(Table)]
    #[table(schema = "gold", name = "ref_dim", key(id), mode = merge)]
    pub struct Dim {
        pub id: i64,
    }

    /// Facts pointing at it, checked.
    #[derive(Table)]
    #[table(schema = "gold", name = "ref_fact", quality = warn)]
    pub struct Fact {
        #[column(references = Dim::id)]
        pub dim_id: Option<i64>,
    }

    /// The same, unchecked: the reference is documentation only.
    #[derive(Table)]
    #[table(schema = "gold", name = "ref_fact_unchecked")]
    pub struct Unchecked {
        #[column(references = Dim::id)]
        pub dim_id: Option<i64>,
    }
}

/// A pipeline `name` writing `output` after `depends_on`, reading nothing.
fn writer(
    name: &'static str,
    output: &'static TableDef,
    depends_on: &'static [&'static str],
) -> &'static PipelineDescriptor {
    leak(PipelineDescriptor {
        name,
        level: 0,
        depends_on,
        inputs: &[],
        output,
        description: "",
        module_path: "synthetic",
        tags: &[],
        retries: None,
        timeout_ms: None,
        full_snapshot: false,
        run: never,
    })
}

#[test]
fn a_referenced_table_is_written_upstream() {
    use lakehouse_runtime::Table as _;
    let dim = writer("dim", referenced::Dim::DEF, &[]);
    let middle = writer("middle", table("silver", "middle"), &["dim"]);
    let not_produced = Registry::new([writer("fact", referenced::Fact::DEF, &[])]).unwrap_err();
    assert_eq!(
        not_produced.to_string(),
        "`gold.ref_fact.dim_id` references `gold.ref_dim`, which no registered pipeline writes \
         (pipeline `fact`): its values could not be checked"
    );
    let not_upstream =
        Registry::new([dim, writer("fact", referenced::Fact::DEF, &[])]).unwrap_err();
    assert_eq!(
        not_upstream.to_string(),
        "`gold.ref_fact.dim_id` references `gold.ref_dim`, written by `dim`, which is not \
         upstream of `fact`: add it to `depends_on`, so that the dimension is written before the \
         rows that reference it are checked"
    );
    // Without checks, nothing reads the dimension for the facts.
    Registry::new([writer("fact", referenced::Unchecked::DEF, &[])]).expect("unchecked");
    // Upstream through another pipeline is enough.
    Registry::new([
        dim,
        middle,
        writer("fact", referenced::Fact::DEF, &["middle"]),
    ])
    .expect("dim runs before fact");
}
