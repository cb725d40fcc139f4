//! A table's declared CHECK constraints brought to its Delta table: added (the stored rows
//! validated first), replaced, dropped, and their declarations recorded; another tool's kept.

use std::collections::HashMap;

use datafusion::prelude::DataFrame;
use deltalake::DeltaTable;

use super::Warehouse;
use super::create::configuration;
use crate::error::{Error, Result};
use crate::table::TableDef;

impl Warehouse {
    /// Brings `delta`'s CHECK constraints to `table`'s declaration: a constraint the declaration
    /// no longer has, or has with another expression, is dropped (one commit each); the declared
    /// ones `delta` lacks are then added in one commit that first validates the existing rows.
    /// A constraint that could not be added (existing rows violate it, or its expression names
    /// no column) fails every write until it can, rather than leaving the table unchecked.
    pub(crate) async fn add_declared_checks(
        &self,
        table: &'static TableDef,
        mut delta: DeltaTable,
    ) -> Result<DeltaTable> {
        let qualified = table.qualified_name();
        for (name, expr) in foreign_checks(table, &delta)? {
            tracing::warn!(
                table = %qualified,
                constraint = %name,
                "the table has a CHECK constraint `{name}` ({expr}) its declaration does not: \
                 kept, as another tool added it, and every write must pass it (declare it with \
                 `check(name = \"{name}\", expr = ..)` to manage it here)"
            );
        }
        let stale = checks_to_drop(table, &delta)?;
        // A constraint whose expression changed is dropped, then added anew: the stored rows are
        // checked against the new one first, so that a failure leaves the old one in place
        // rather than the table without any.
        self.refuse_violated_replacements(table, &delta, &stale)
            .await?;
        for name in stale {
            tracing::info!(table = %qualified, constraint = %name, "dropping a CHECK constraint the declaration changed or no longer has");
            let applied = delta
                .drop_constraints()
                .with_constraint(name.clone())
                .with_raise_if_not_exists(false)
                .await;
            delta = self
                .settle(table, applied, |reloaded| {
                    Ok(!checks_to_drop(table, reloaded)?.contains(&name))
                })
                .await?
                .map_err(|error| Error::delta(&qualified, error))?;
        }
        let missing = checks_to_add(table, &delta)?;
        if !missing.is_empty() {
            delta = self.add_checks(table, delta, missing).await?;
        }
        // What each constraint was declared as: delta-rs stores its own rewriting of the
        // expression, which a declaration cannot be compared with.
        let mut unrecorded = declarations_to_record(table, &delta)?;
        unrecorded.extend(records_to_forget(table, &delta)?);
        if unrecorded.is_empty() {
            return Ok(delta);
        }
        // Not Delta properties: delta-rs refuses keys it does not know unless told not to.
        let applied = delta
            .set_tbl_properties()
            .with_properties(unrecorded)
            .with_raise_if_not_exists(false)
            .await;
        self.settle(table, applied, |reloaded| {
            Ok(declarations_to_record(table, reloaded)?.is_empty())
        })
        .await?
        .map_err(|error| Error::delta(&qualified, error))
    }

    /// [`Warehouse::add_declared_checks`] before a write that replaces every row of `table`
    /// with `output`: a declared constraint the table lacks and its stored rows fail (they are
    /// about to go) is added after the write instead (`true`: add them then), once no row of
    /// `output` fails it — counted here, as delta-rs checks only the constraints the table
    /// holds. Otherwise, and for a constraint whose expression changed (its old one is kept and
    /// enforced until it can be replaced), the error stands.
    pub(crate) async fn declared_checks_before_replacing(
        &self,
        table: &'static TableDef,
        delta: DeltaTable,
        output: &DataFrame,
    ) -> Result<(DeltaTable, bool)> {
        let refused = match self.add_declared_checks(table, delta).await {
            Ok(delta) => return Ok((delta, false)),
            Err(error) => error,
        };
        // (Constraints may have been dropped before the addition failed.)
        let Some(delta) = self.load(table).await? else {
            return Err(refused);
        };
        let missing = checks_to_add(table, &delta)?;
        if missing.is_empty() || !checks_to_drop(table, &delta)?.is_empty() {
            return Err(refused);
        }
        let checks: Vec<_> = table
            .checks
            .iter()
            .filter(|check| missing.contains_key(check.name))
            .collect();
        let counts = crate::quality::rows_failing_checks(output, table, &checks).await?;
        for (check, failing) in checks.into_iter().zip(counts) {
            // An expression the output cannot evaluate: the error stands.
            let Ok(failing) = failing else {
                return Err(refused);
            };
            if failing > 0 {
                return Err(Error::schema(
                    table.qualified_name(),
                    format!(
                        "{refused}; and {failing} row(s) of the output replacing them fail \
                         `{}` too (a NULL fails a CHECK)",
                        check.name
                    ),
                ));
            }
        }
        tracing::info!(
            table = %table.qualified_name(),
            "the stored rows fail a declared CHECK constraint, and the output replacing them \
             passes it: it is added after the write"
        );
        Ok((delta, true))
    }

    /// An error if a stored row fails the new expression of one of the `stale` constraints
    /// the declaration still has (as Delta evaluates it: a NULL fails), or the expression
    /// cannot be evaluated over the table.
    async fn refuse_violated_replacements(
        &self,
        table: &'static TableDef,
        delta: &DeltaTable,
        stale: &[String],
    ) -> Result<()> {
        let replaced: Vec<_> = table
            .checks
            .iter()
            .filter(|check| stale.iter().any(|name| name == check.name))
            .collect();
        let has_rows = delta
            .snapshot()
            .map(|s| s.log_data().num_files() > 0)
            .unwrap_or(true);
        if replaced.is_empty() || !has_rows {
            return Ok(());
        }
        let qualified = table.qualified_name();
        let session = self.session();
        let rows = self.read(&session, table).await?;
        for check in replaced {
            let refuse = |why: String| {
                Error::schema(
                    &qualified,
                    format!(
                        "cannot change the CHECK constraint `{}` to `{}`: {why}; the table keeps \
                         the old one (mend the rows, or declare the old expression again)",
                        check.name, check.expr
                    ),
                )
            };
            // Parsed alone, as the plan check parses it (names as written; a `--` comment
            // ending it would have swallowed a text appended to it).
            let failing = crate::quality::check_condition(&rows, table, check)
                .map_err(|e| refuse(format!("it cannot be evaluated over the table ({e})")))?
                .is_not_true();
            let count = rows.clone().filter(failing)?.count().await?;
            if count > 0 {
                return Err(refuse(format!(
                    "{count} stored row(s) fail it (a NULL fails a CHECK)"
                )));
            }
        }
        Ok(())
    }

    /// Adds the CHECK constraints `missing` (name → expression) to `delta` in one commit that
    /// first validates the existing rows.
    async fn add_checks(
        &self,
        table: &'static TableDef,
        delta: DeltaTable,
        missing: HashMap<&'static str, &'static str>,
    ) -> Result<DeltaTable> {
        let qualified = table.qualified_name();
        let names: Vec<&str> = missing.keys().copied().collect();
        tracing::info!(table = %qualified, constraints = ?names, "adding declared CHECK constraints");
        let applied = delta.add_constraint().with_constraints(missing).await;
        self.settle(table, applied, |reloaded| {
            Ok(checks_to_add(table, reloaded)?.is_empty())
        })
        .await?
        .map_err(|error| {
            Error::schema(
                &qualified,
                format!(
                    "cannot add the declared CHECK constraint(s) {}: {error} (the table's rows \
                     must satisfy it, and its expression must name the table's columns)",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
    }
}

/// The CHECK constraints `table` declares whose names `delta` does not hold, name → expression.
fn checks_to_add(
    table: &TableDef,
    delta: &DeltaTable,
) -> Result<HashMap<&'static str, &'static str>> {
    let stored = configuration(table, delta)?;
    Ok(table
        .checks
        .iter()
        .filter(|c| !stored.contains_key(&format!("delta.constraints.{}", c.name)))
        .map(|c| (c.name, c.expr))
        .collect())
}

/// The declared CHECK constraints the next write of `table` adds to `delta`, each with whether
/// it replaces a stored one of its name (declared since with another expression): what
/// `orchestrate check` validates the stored rows against.
pub(crate) fn checks_to_apply(
    table: &'static TableDef,
    delta: &DeltaTable,
) -> Result<Vec<(&'static crate::table::CheckConstraint, bool)>> {
    let missing = checks_to_add(table, delta)?;
    let stale = checks_to_drop(table, delta)?;
    Ok(table
        .checks
        .iter()
        .filter_map(|check| {
            let replaces = stale.iter().any(|name| name == check.name);
            (replaces || missing.contains_key(check.name)).then_some((check, replaces))
        })
        .collect())
}

/// The table property recording the expression a CHECK constraint was declared with.
fn declared_check_key(name: &str) -> String {
    format!("lakehouse.constraints.{name}")
}

/// The CHECK constraints `delta` holds that `table` declared once (their declaration is
/// recorded) and no longer does, or declares with another expression than the one recorded when
/// it was added (or, without a record, than the one stored). A constraint the table never
/// declared is another tool's: kept, see [`foreign_checks`].
fn checks_to_drop(table: &TableDef, delta: &DeltaTable) -> Result<Vec<String>> {
    let stored = configuration(table, delta)?;
    let mut stale: Vec<String> = stored
        .keys()
        .filter_map(|key| {
            let name = key.strip_prefix("delta.constraints.")?;
            let declared = table.checks.iter().find(|c| c.name == name);
            let recorded = stored
                .get(&declared_check_key(name))
                .filter(|expr| !expr.is_empty());
            // Without a record (added before declarations were recorded), delta-rs's rewriting
            // is all there is: a mismatch, perhaps only of form, costs one drop and re-add.
            let compared = recorded.unwrap_or(stored.get(key)?);
            match declared {
                None => recorded.map(|_| name.to_owned()),
                Some(check) if compared.trim() != check.expr.trim() => Some(name.to_owned()),
                Some(_) => None,
            }
        })
        .collect();
    stale.sort();
    Ok(stale)
}

/// The CHECK constraints `delta` holds that `table` does not declare and never did (no
/// declaration of it is recorded): another tool's (Spark's `ADD CONSTRAINT`), which writes must
/// pass too. `(name, expression)`, by name.
pub(crate) fn foreign_checks(
    table: &TableDef,
    delta: &DeltaTable,
) -> Result<Vec<(String, String)>> {
    let stored = configuration(table, delta)?;
    let mut foreign: Vec<(String, String)> = stored
        .iter()
        .filter_map(|(key, expr)| {
            let name = key.strip_prefix("delta.constraints.")?;
            let declared = table.checks.iter().any(|c| c.name == name);
            let recorded = stored
                .get(&declared_check_key(name))
                .is_some_and(|expr| !expr.is_empty());
            (!declared && !recorded).then(|| (name.to_owned(), expr.clone()))
        })
        .collect();
    foreign.sort();
    Ok(foreign)
}

/// The records of declarations of constraints `table` no longer declares and `delta` no longer
/// holds (dropped, by this write or an earlier one that then failed), each to be emptied: Delta
/// keeps no way to unset a property, and another tool's constraint of that name later must not
/// be taken for ours.
fn records_to_forget(table: &TableDef, delta: &DeltaTable) -> Result<HashMap<String, String>> {
    let stored = configuration(table, delta)?;
    Ok(stored
        .iter()
        .filter_map(|(key, expr)| {
            let name = key.strip_prefix("lakehouse.constraints.")?;
            let forgotten = !expr.is_empty()
                && !table.checks.iter().any(|c| c.name == name)
                && !stored.contains_key(&format!("delta.constraints.{name}"));
            forgotten.then(|| (key.clone(), String::new()))
        })
        .collect())
}

/// The declared CHECK constraints whose declared expression `delta` does not record yet,
/// property → expression.
fn declarations_to_record(table: &TableDef, delta: &DeltaTable) -> Result<HashMap<String, String>> {
    let stored = configuration(table, delta)?;
    Ok(table
        .checks
        .iter()
        .map(|check| (declared_check_key(check.name), check.expr.trim().to_owned()))
        .filter(|(key, expr)| stored.get(key) != Some(expr))
        .collect())
}
