//! Selecting pipelines and ordering them into groups.

use std::collections::{BTreeMap, BTreeSet};

use crate::graph::{PipelineDescriptor, Registry};
use crate::similar::closest;

/// Which neighbours of a plainly named target are selected with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The target and everything it depends on, transitively.
    Upstream,
    /// The target and everything that depends on it, transitively.
    Downstream,
    /// Both.
    All,
    /// The target alone.
    #[default]
    None,
}

impl std::fmt::Display for Direction {
    /// As `--direction` spells it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Direction::Upstream => "upstream",
            Direction::Downstream => "downstream",
            Direction::All => "all",
            Direction::None => "none",
        })
    }
}

/// How selected pipelines are grouped, and when they start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Order {
    /// As soon as possible: a pipeline is in the group after its last upstream, and starts as
    /// soon as its upstreams in the run have ended.
    #[default]
    ProcessFirst,
    /// As late as possible: a pipeline is in the group just before its first downstream, and
    /// starts once every earlier group has ended.
    ProcessLast,
}

/// Why a selection cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    /// A name that is no pipeline.
    #[error("no pipeline is named `{name}`{}", hint(.suggestion))]
    UnknownPipeline {
        /// The name given.
        name: String,
        /// The closest pipeline name.
        suggestion: Option<String>,
    },
    /// A `tag:` with no pipeline.
    #[error("no pipeline has tag `{tag}`{}", hint(.suggestion))]
    UnknownTag {
        /// The tag given.
        tag: String,
        /// The closest tag.
        suggestion: Option<String>,
    },
    /// `--direction` with no plain name to apply to.
    #[error(
        "the direction `{direction}` applies to plain pipeline names, and no target is one \
         (`+name`, `name+`, `tag:` and `layer:` say their own extent): drop it, or name a pipeline"
    )]
    DirectionUnused {
        /// The direction given.
        direction: Direction,
    },
    /// Exclusions that leave nothing of the selection.
    #[error("the exclusions leave no pipeline of the selection to run")]
    NothingLeft,
    /// A `layer:` with no pipeline.
    #[error("no pipeline writes to layer `{layer}`{}", hint(.suggestion))]
    UnknownLayer {
        /// The layer given.
        layer: String,
        /// The closest layer.
        suggestion: Option<String>,
    },
}

fn hint(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

/// Pipelines to run, in groups: every pipeline's upstreams in the plan are in earlier groups.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The groups, in execution order.
    pub groups: Vec<Vec<&'static PipelineDescriptor>>,
    /// Each planned pipeline's nearest planned upstreams, through pipelines left out.
    upstreams: BTreeMap<&'static str, BTreeSet<&'static str>>,
    /// How the groups were made: as soon as possible, or as late as possible.
    order: Order,
}

impl Plan {
    /// Every planned pipeline, group after group.
    pub fn pipelines(&self) -> impl Iterator<Item = &'static PipelineDescriptor> + '_ {
        self.groups.iter().flatten().copied()
    }

    /// The planned pipelines upstream of `name` nearest to it: its dependencies in the plan,
    /// and through each one left out (by `--exclude`, or not selected), the nearest planned
    /// ones above it.
    pub fn upstreams_of(&self, name: &str) -> impl Iterator<Item = &'static str> + '_ {
        self.upstreams.get(name).into_iter().flatten().copied()
    }

    /// The planned pipelines `name` starts after: its nearest planned upstreams (as soon as
    /// possible, the default order), or every pipeline of the groups before its own (as late
    /// as possible: a pipeline is held back to just before its first downstream).
    pub fn starts_after(&self, name: &str) -> Vec<&'static str> {
        match self.order {
            Order::ProcessFirst => self.upstreams_of(name).collect(),
            Order::ProcessLast => self
                .groups
                .iter()
                .take_while(|group| group.iter().all(|p| p.name != name))
                .flatten()
                .map(|p| p.name)
                .collect(),
        }
    }

    /// Whether `name` is planned.
    pub fn contains(&self, name: &str) -> bool {
        self.pipelines().any(|p| p.name == name)
    }

    /// The names in each group.
    pub fn names(&self) -> Vec<Vec<&'static str>> {
        self.groups
            .iter()
            .map(|g| g.iter().map(|p| p.name).collect())
            .collect()
    }
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total: usize = self.groups.iter().map(Vec::len).sum();
        writeln!(
            f,
            "Plan: {total} pipeline(s) in {} group(s)",
            self.groups.len()
        )?;
        for (i, group) in self.groups.iter().enumerate() {
            let names: Vec<String> = group
                .iter()
                .map(|p| format!("{} → {}", p.name, p.output.qualified_name()))
                .collect();
            writeln!(f, "  {:>2}. {}", i + 1, names.join(", "))?;
        }
        Ok(())
    }
}

/// Selects pipelines of `registry` by `targets` (all when empty) and groups them by `order`.
///
/// A target is a pipeline name (extended by `direction`), `+name` (with its upstreams),
/// `name+` (with its downstreams), `+name+` (both), `tag:<tag>` or `layer:<schema>`.
pub fn plan(
    registry: &Registry,
    targets: &[String],
    direction: Direction,
    order: Order,
) -> Result<Plan, SelectionError> {
    plan_excluding(registry, targets, &[], direction, order)
}

/// [`plan`] without the pipelines `exclude` selects (the same syntax; `direction` does not
/// extend them: `+name` excludes a pipeline with its upstreams). The pipelines left run on the
/// excluded ones' current tables, as dbt's `--exclude` does.
pub fn plan_excluding(
    registry: &Registry,
    targets: &[String],
    exclude: &[String],
    direction: Direction,
    order: Order,
) -> Result<Plan, SelectionError> {
    let mut selected = select(registry, targets, direction)?;
    if !exclude.is_empty() {
        let excluded = select(registry, exclude, Direction::None)?;
        selected.retain(|name| !excluded.contains(name));
        if selected.is_empty() {
            return Err(SelectionError::NothingLeft);
        }
    }
    Ok(group(registry, &selected, order))
}

/// The names selected by `targets`.
pub fn select(
    registry: &Registry,
    targets: &[String],
    direction: Direction,
) -> Result<BTreeSet<&'static str>, SelectionError> {
    if targets.is_empty() {
        // Every pipeline: a direction has nothing to extend, and would be silently ignored.
        if direction != Direction::None {
            return Err(SelectionError::DirectionUnused { direction });
        }
        return Ok(registry.pipelines().iter().map(|p| p.name).collect());
    }
    let mut selected = BTreeSet::new();
    for target in targets {
        let target = target.trim();
        if let Some(tag) = target.strip_prefix("tag:") {
            let matching: Vec<_> = registry
                .pipelines()
                .iter()
                .filter(|p| p.tags.contains(&tag))
                .collect();
            if matching.is_empty() {
                let tags: BTreeSet<&str> = registry
                    .pipelines()
                    .iter()
                    .flat_map(|p| p.tags.iter().copied())
                    .collect();
                return Err(SelectionError::UnknownTag {
                    tag: tag.to_owned(),
                    suggestion: closest(tag, tags).map(str::to_owned),
                });
            }
            selected.extend(matching.iter().map(|p| p.name));
            continue;
        }
        if let Some(layer) = target.strip_prefix("layer:") {
            let matching: Vec<_> = registry
                .pipelines()
                .iter()
                .filter(|p| p.layer() == layer)
                .collect();
            if matching.is_empty() {
                let layers: BTreeSet<&str> =
                    registry.pipelines().iter().map(|p| p.layer()).collect();
                return Err(SelectionError::UnknownLayer {
                    layer: layer.to_owned(),
                    suggestion: closest(layer, layers).map(str::to_owned),
                });
            }
            selected.extend(matching.iter().map(|p| p.name));
            continue;
        }
        let (up, rest) = match target.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, target),
        };
        let (down, name) = match rest.strip_suffix('+') {
            Some(name) => (true, name),
            None => (false, rest),
        };
        let explicit = up || down;
        let Some(pipeline) = registry.get(name) else {
            return Err(SelectionError::UnknownPipeline {
                name: name.to_owned(),
                suggestion: registry.suggest(name).map(str::to_owned),
            });
        };
        selected.insert(pipeline.name);
        let (up, down) = if explicit {
            (up, down)
        } else {
            match direction {
                Direction::Upstream => (true, false),
                Direction::Downstream => (false, true),
                Direction::All => (true, true),
                Direction::None => (false, false),
            }
        };
        if up {
            selected.extend(upstream_closure(registry, pipeline.name));
        }
        if down {
            selected.extend(downstream_closure(registry, pipeline.name));
        }
    }
    let plain = |target: &String| {
        let target = target.trim();
        !(target.starts_with("tag:")
            || target.starts_with("layer:")
            || target.starts_with('+')
            || target.ends_with('+'))
    };
    if direction != Direction::None && !targets.iter().any(plain) {
        return Err(SelectionError::DirectionUnused { direction });
    }
    Ok(selected)
}

fn upstream_closure(registry: &Registry, name: &str) -> BTreeSet<&'static str> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<&'static str> = registry
        .get(name)
        .map(|p| p.depends_on.to_vec())
        .unwrap_or_default();
    while let Some(next) = stack.pop() {
        if seen.insert(next)
            && let Some(p) = registry.get(next)
        {
            stack.extend(p.depends_on.iter().copied());
        }
    }
    seen
}

fn downstream_closure(registry: &Registry, name: &str) -> BTreeSet<&'static str> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<&'static str> = registry.downstream(name).iter().map(|p| p.name).collect();
    while let Some(next) = stack.pop() {
        if seen.insert(next) {
            stack.extend(registry.downstream(next).iter().map(|p| p.name));
        }
    }
    seen
}

/// Groups `selected` by levels computed within the selection, so no group is empty.
fn group(registry: &Registry, selected: &BTreeSet<&'static str>, order: Order) -> Plan {
    // Registry order is (level, name): every upstream comes before its downstreams.
    let members: Vec<&'static PipelineDescriptor> = registry
        .pipelines()
        .iter()
        .copied()
        .filter(|p| selected.contains(p.name))
        .collect();
    // Ordering goes through pipelines left out of the selection (`--exclude`, or between two
    // selected ones): a selected pipeline runs after every selected one upstream of it, however
    // far. `above[p]`: the highest level among the selected pipelines at or above `p`.
    let mut above: BTreeMap<&str, Option<usize>> = BTreeMap::new();
    let mut asap: BTreeMap<&str, usize> = BTreeMap::new();
    for p in registry.pipelines() {
        let upstream = p
            .depends_on
            .iter()
            .filter_map(|d| above.get(d).copied().flatten())
            .max();
        if selected.contains(p.name) {
            let level = upstream.map_or(0, |l| l + 1);
            asap.insert(p.name, level);
            above.insert(p.name, Some(level));
        } else {
            above.insert(p.name, upstream);
        }
    }
    let levels: BTreeMap<&str, usize> = match order {
        Order::ProcessFirst => asap,
        Order::ProcessLast => {
            let last = asap.values().copied().max().unwrap_or(0);
            // `below[p]`: the lowest level among the selected pipelines at or below `p`.
            let mut below: BTreeMap<&str, Option<usize>> = BTreeMap::new();
            let mut alap: BTreeMap<&str, usize> = BTreeMap::new();
            for p in registry.pipelines().iter().rev() {
                let downstream = registry
                    .downstream(p.name)
                    .iter()
                    .filter_map(|d| below.get(d.name).copied().flatten())
                    .min();
                if selected.contains(p.name) {
                    let level = downstream.map_or(last, |l| l.saturating_sub(1));
                    alap.insert(p.name, level);
                    below.insert(p.name, Some(level));
                } else {
                    below.insert(p.name, downstream);
                }
            }
            alap
        }
    };
    let count = levels.values().copied().max().map_or(0, |m| m + 1);
    let mut groups: Vec<Vec<&'static PipelineDescriptor>> = vec![Vec::new(); count];
    for p in members {
        groups[levels[p.name]].push(p);
    }
    groups.retain(|g| !g.is_empty());
    for group in &mut groups {
        group.sort_by_key(|p| p.name);
    }
    // In registry order, every pipeline's nearest selected upstreams are known before its own.
    let mut nearest: BTreeMap<&'static str, BTreeSet<&'static str>> = BTreeMap::new();
    for p in registry.pipelines() {
        let mut found = BTreeSet::new();
        for d in p.depends_on {
            if selected.contains(d) {
                found.insert(*d);
            } else if let Some(above) = nearest.get(d) {
                found.extend(above.iter().copied());
            }
        }
        nearest.insert(p.name, found);
    }
    nearest.retain(|name, _| selected.contains(name));
    Plan {
        groups,
        upstreams: nearest,
        order,
    }
}
