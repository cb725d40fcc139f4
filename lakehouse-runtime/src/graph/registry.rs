//! The registry: every pipeline of a binary, validated as a graph at run time too, so a registry
//! assembled by hand is as safe as one the macros checked.

use std::collections::BTreeMap;

use super::descriptor::PipelineDescriptor;
use crate::similar::closest;

/// Why a set of pipelines is not a valid graph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// No pipeline is registered.
    #[error(
        "no pipeline is registered in this binary. Pipelines register themselves when their crate \
         is linked: add `use my_pipelines as _;` (your pipelines crate) to the binary's main.rs"
    )]
    Empty,
    /// Two pipelines have the same name.
    #[error(
        "two pipelines are named `{name}` (in `{first}` and `{second}`): pipeline names must be unique"
    )]
    DuplicatePipeline {
        /// The name.
        name: String,
        /// Module of the first.
        first: String,
        /// Module of the second.
        second: String,
    },
    /// Two pipelines write the same table.
    #[error(
        "table `{table}` is written by two pipelines, `{first}` and `{second}` (two structs \
         declare it?): a table has one writer; give one of them another name, or write the rows \
         of both from one pipeline"
    )]
    DuplicateTable {
        /// The table.
        table: String,
        /// First writer.
        first: String,
        /// Second writer.
        second: String,
    },
    /// A `depends_on` entry names no pipeline.
    #[error("pipeline `{pipeline}` depends on `{dependency}`, which is not a registered pipeline{}", hint(.suggestion))]
    MissingDependency {
        /// The pipeline.
        pipeline: String,
        /// The unknown name.
        dependency: String,
        /// The closest registered name.
        suggestion: Option<String>,
    },
    /// An input table is written by no pipeline of the registry.
    #[error(
        "pipeline `{pipeline}` reads `{table}`, which no registered pipeline writes: link the \
         crate of the pipeline that writes it into this binary (`use my_pipelines as _;`), or \
         register that pipeline too"
    )]
    InputNotProduced {
        /// The pipeline.
        pipeline: String,
        /// The table.
        table: String,
    },
    /// An input's producer is not in `depends_on`.
    #[error(
        "pipeline `{pipeline}` reads `{table}`, written by `{producer}`, which is not in its `depends_on`"
    )]
    InputNotDeclared {
        /// The pipeline.
        pipeline: String,
        /// The table.
        table: String,
        /// Its writer.
        producer: String,
    },
    /// The dependencies form a cycle.
    #[error(
        "dependency cycle: {} (each depends on the next): remove one of these `depends_on` \
         entries",
        .path.join(" -> ")
    )]
    Cycle {
        /// The pipelines on the cycle, the first repeated at the end.
        path: Vec<String>,
    },
    /// A pipeline writes a table of the schema the run ledger keeps to itself.
    #[error(
        "pipeline `{pipeline}` writes `{table}`: the `lakehouse` schema holds the run ledger, \
         which only the runtime writes; declare the table in another schema"
    )]
    ReservedTable {
        /// The pipeline.
        pipeline: String,
        /// The table.
        table: String,
    },
    /// A pipeline reads the table it writes.
    #[error(
        "pipeline `{pipeline}` reads `{table}`, the table it writes: a pipeline would be its own \
         upstream; read the upstream tables it is made from"
    )]
    ReadsItsOutput {
        /// The pipeline.
        pipeline: String,
        /// The table.
        table: String,
    },
    /// A `#[column(references = ..)]` names a table no pipeline of the registry writes.
    #[error(
        "`{table}.{column}` references `{target}`, which no registered pipeline writes (pipeline \
         `{pipeline}`): its values could not be checked"
    )]
    ReferenceNotProduced {
        /// The pipeline writing the referencing table.
        pipeline: String,
        /// The referencing table.
        table: String,
        /// The referencing column.
        column: String,
        /// The referenced `schema.table`.
        target: String,
    },
    /// A referenced table is written by a pipeline that does not run before the referencing one.
    #[error(
        "`{table}.{column}` references `{target}`, written by `{producer}`, which is not upstream \
         of `{pipeline}`: add it to `depends_on`, so that the dimension is written before the rows \
         that reference it are checked"
    )]
    ReferenceNotUpstream {
        /// The pipeline writing the referencing table.
        pipeline: String,
        /// The referencing table.
        table: String,
        /// The referencing column.
        column: String,
        /// The referenced `schema.table`.
        target: String,
        /// Its writer.
        producer: String,
    },
}

fn hint(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

/// A validated set of pipelines, sorted by (level, name).
#[derive(Debug, Clone)]
pub struct Registry {
    pipelines: Vec<&'static PipelineDescriptor>,
    index: BTreeMap<&'static str, usize>,
    levels: Vec<usize>,
    downstream: Vec<Vec<usize>>,
}

impl Registry {
    /// Every pipeline linked into this binary by `#[pipeline]`.
    pub fn from_inventory() -> Result<Registry, GraphError> {
        Registry::new(inventory::iter::<PipelineDescriptor>)
    }

    /// A registry of the given pipelines, validated as the macros validate them: unique names
    /// and tables, no table of the ledger's schema written, known dependencies, declared inputs
    /// (not the pipeline's own output), no cycle, checked references written upstream, not
    /// empty.
    pub fn new(
        pipelines: impl IntoIterator<Item = &'static PipelineDescriptor>,
    ) -> Result<Registry, GraphError> {
        let mut pipelines: Vec<&'static PipelineDescriptor> = pipelines.into_iter().collect();
        if pipelines.is_empty() {
            return Err(GraphError::Empty);
        }
        // The module too: which of two pipelines of one name is told first does not depend on
        // the link order.
        pipelines.sort_by_key(|p| (p.name, p.module_path));
        check_unique(&pipelines)?;
        let index: BTreeMap<&'static str, usize> = pipelines
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name, i))
            .collect();
        check_edges(&pipelines, &index)?;
        let levels = levels(&pipelines, &index)?;
        check_references(&pipelines, &index)?;

        // Re-sort by (level, name) now that levels are known.
        let mut order: Vec<usize> = (0..pipelines.len()).collect();
        order.sort_by_key(|&i| (levels[i], pipelines[i].name));
        let pipelines: Vec<_> = order.iter().map(|&i| pipelines[i]).collect();
        let levels: Vec<_> = order.iter().map(|&i| levels[i]).collect();
        let index: BTreeMap<&'static str, usize> = pipelines
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name, i))
            .collect();
        let mut downstream = vec![Vec::new(); pipelines.len()];
        for (i, p) in pipelines.iter().enumerate() {
            for dep in p.depends_on {
                // A dependency listed twice is one edge.
                let listed = &mut downstream[index[dep]];
                if !listed.contains(&i) {
                    listed.push(i);
                }
            }
        }
        Ok(Registry {
            pipelines,
            index,
            levels,
            downstream,
        })
    }

    /// The pipelines, sorted by (level, name).
    pub fn pipelines(&self) -> &[&'static PipelineDescriptor] {
        &self.pipelines
    }

    /// Number of pipelines.
    pub fn len(&self) -> usize {
        self.pipelines.len()
    }

    /// Always false: an empty registry is an error.
    pub fn is_empty(&self) -> bool {
        self.pipelines.is_empty()
    }

    /// The pipeline named `name`.
    pub fn get(&self, name: &str) -> Option<&'static PipelineDescriptor> {
        self.index.get(name).map(|&i| self.pipelines[i])
    }

    /// Topological rank of `name`: 0 for a source, else 1 + the highest rank of its dependencies.
    pub fn level(&self, name: &str) -> Option<usize> {
        self.index.get(name).map(|&i| self.levels[i])
    }

    /// The pipelines that list `name` in their `depends_on`, by (level, name).
    pub fn downstream(&self, name: &str) -> Vec<&'static PipelineDescriptor> {
        self.index
            .get(name)
            .map(|&i| {
                self.downstream[i]
                    .iter()
                    .map(|&d| self.pipelines[d])
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The pipeline writing `schema.table`.
    pub fn producer(&self, qualified_table: &str) -> Option<&'static PipelineDescriptor> {
        self.pipelines
            .iter()
            .copied()
            .find(|p| p.output.qualified_name() == qualified_table)
    }

    /// Every edge `(upstream, downstream)`, sorted.
    pub fn edges(&self) -> Vec<(&'static str, &'static str)> {
        let mut edges: Vec<_> = self
            .pipelines
            .iter()
            .flat_map(|p| p.depends_on.iter().map(move |d| (*d, p.name)))
            .collect();
        edges.sort();
        edges.dedup();
        edges
    }

    /// The registered name closest to `name`, for "did you mean" hints.
    pub fn suggest(&self, name: &str) -> Option<&'static str> {
        closest(name, self.pipelines.iter().map(|p| p.name))
    }
}

fn check_unique(pipelines: &[&'static PipelineDescriptor]) -> Result<(), GraphError> {
    for pair in pipelines.windows(2) {
        if pair[0].name == pair[1].name {
            return Err(GraphError::DuplicatePipeline {
                name: pair[0].name.to_owned(),
                first: pair[0].module_path.to_owned(),
                second: pair[1].module_path.to_owned(),
            });
        }
    }
    let mut writers: BTreeMap<String, &str> = BTreeMap::new();
    for p in pipelines {
        if p.output.schema == crate::table::LEDGER_SCHEMA {
            return Err(GraphError::ReservedTable {
                pipeline: p.name.to_owned(),
                table: p.output.qualified_name(),
            });
        }
        if let Some(first) = writers.insert(p.output.qualified_name(), p.name) {
            return Err(GraphError::DuplicateTable {
                table: p.output.qualified_name(),
                first: first.to_owned(),
                second: p.name.to_owned(),
            });
        }
    }
    Ok(())
}

fn check_edges(
    pipelines: &[&'static PipelineDescriptor],
    index: &BTreeMap<&'static str, usize>,
) -> Result<(), GraphError> {
    for p in pipelines {
        for dep in p.depends_on {
            if !index.contains_key(dep) {
                return Err(GraphError::MissingDependency {
                    pipeline: p.name.to_owned(),
                    dependency: (*dep).to_owned(),
                    suggestion: closest(dep, pipelines.iter().map(|p| p.name)).map(str::to_owned),
                });
            }
        }
        for input in p.inputs {
            let table = input.table.qualified_name();
            if table == p.output.qualified_name() {
                return Err(GraphError::ReadsItsOutput {
                    pipeline: p.name.to_owned(),
                    table,
                });
            }
            let Some(producer) = pipelines
                .iter()
                .find(|q| q.output.qualified_name() == table)
            else {
                return Err(GraphError::InputNotProduced {
                    pipeline: p.name.to_owned(),
                    table,
                });
            };
            if !p.depends_on.contains(&producer.name) {
                return Err(GraphError::InputNotDeclared {
                    pipeline: p.name.to_owned(),
                    table,
                    producer: producer.name.to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// Every `references` target of a table with quality checks is written by an upstream pipeline
/// of the referencing table's writer (the graph is acyclic by now).
fn check_references(
    pipelines: &[&'static PipelineDescriptor],
    index: &BTreeMap<&'static str, usize>,
) -> Result<(), GraphError> {
    // Only checked references need their dimension complete before the facts.
    for p in pipelines
        .iter()
        .filter(|p| p.output.quality != crate::table::Quality::Off)
    {
        for column in p.output.data_columns() {
            let Some(target) = column.references else {
                continue;
            };
            let qualified = format!("{}.{}", target.schema, target.table);
            let error_fields = || {
                (
                    p.name.to_owned(),
                    p.output.qualified_name(),
                    column.name.to_owned(),
                    qualified.clone(),
                )
            };
            let Some(producer) = pipelines
                .iter()
                .find(|q| q.output.schema == target.schema && q.output.name == target.table)
            else {
                let (pipeline, table, column, target) = error_fields();
                return Err(GraphError::ReferenceNotProduced {
                    pipeline,
                    table,
                    column,
                    target,
                });
            };
            if producer.name != p.name && !is_upstream(producer.name, p, pipelines, index) {
                let (pipeline, table, column, target) = error_fields();
                return Err(GraphError::ReferenceNotUpstream {
                    pipeline,
                    table,
                    column,
                    target,
                    producer: producer.name.to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// Whether pipeline `name` is among `of`'s transitive dependencies.
fn is_upstream(
    name: &str,
    of: &'static PipelineDescriptor,
    pipelines: &[&'static PipelineDescriptor],
    index: &BTreeMap<&'static str, usize>,
) -> bool {
    let mut seen = vec![false; pipelines.len()];
    let mut stack: Vec<&'static str> = of.depends_on.to_vec();
    while let Some(dep) = stack.pop() {
        if dep == name {
            return true;
        }
        if let Some(&i) = index.get(dep)
            && !std::mem::replace(&mut seen[i], true)
        {
            stack.extend(pipelines[i].depends_on.iter().copied());
        }
    }
    false
}

/// ASAP levels by depth-first search; a back edge is a cycle, reported with its path.
fn levels(
    pipelines: &[&'static PipelineDescriptor],
    index: &BTreeMap<&'static str, usize>,
) -> Result<Vec<usize>, GraphError> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        Active,
        Done,
    }
    fn visit(
        node: usize,
        pipelines: &[&'static PipelineDescriptor],
        index: &BTreeMap<&'static str, usize>,
        state: &mut [State],
        levels: &mut [usize],
        stack: &mut Vec<usize>,
    ) -> Result<(), GraphError> {
        state[node] = State::Active;
        stack.push(node);
        let mut level = 0;
        for dep in pipelines[node].depends_on {
            let d = index[dep];
            match state[d] {
                State::Active => {
                    let start = stack.iter().position(|&n| n == d).unwrap_or(0);
                    let mut path: Vec<String> = stack[start..]
                        .iter()
                        .map(|&n| pipelines[n].name.to_owned())
                        .collect();
                    path.push(pipelines[d].name.to_owned());
                    return Err(GraphError::Cycle { path });
                }
                State::New => visit(d, pipelines, index, state, levels, stack)?,
                State::Done => {}
            }
            level = level.max(levels[d] + 1);
        }
        levels[node] = level;
        state[node] = State::Done;
        stack.pop();
        Ok(())
    }
    let mut state = vec![State::New; pipelines.len()];
    let mut levels = vec![0; pipelines.len()];
    let mut stack = Vec::new();
    for node in 0..pipelines.len() {
        if state[node] == State::New {
            visit(node, pipelines, index, &mut state, &mut levels, &mut stack)?;
        }
    }
    Ok(levels)
}
