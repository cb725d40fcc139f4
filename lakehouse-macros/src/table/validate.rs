//! `TableInput` → `TableModel`: every rule a table must follow, all errors reported at once on
//! the token that breaks the rule.

use syn::{Ident, Lit, LitStr, Path, Type, Visibility};

use super::parse::{FieldInput, Keyed, TableAttrs, TableInput};
use crate::attr::is_safe_identifier;
use crate::errors::Errors;

/// How writes are applied to the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Append,
    Overwrite,
    Merge,
    Scd2,
}

/// What happens when the declared schema and the Delta table's schema differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Evolution {
    Merge,
    Overwrite,
    Keep,
}

/// What an overwrite replaces: the whole table, or the partitions the output has rows in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OverwriteScope {
    Table,
    Partitions,
}

/// What the runtime does with data-quality checks on the table's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Quality {
    Off,
    Warn,
    Blocking,
}

/// A validated column.
pub(crate) struct Column {
    pub ident: Ident,
    /// The column name: the field name without a raw-identifier `r#` prefix.
    pub name: String,
    pub ty: Type,
    pub doc: String,
    /// `Table::column` of a `#[column(references = ..)]`, split in two.
    pub references: Option<(Path, Ident)>,
}

/// A validated table, ready for code generation.
pub(crate) struct TableModel {
    pub ident: Ident,
    pub vis: Visibility,
    pub doc: String,
    pub schema: String,
    pub name: String,
    pub mode: Mode,
    pub evolution: Evolution,
    pub overwrite: OverwriteScope,
    pub quality: Quality,
    pub columns: Vec<Column>,
    pub key: Vec<String>,
    pub partition_by: Vec<String>,
    pub change_columns: Option<Vec<String>>,
    pub z_order: Vec<String>,
    pub target_file_size: Option<u64>,
    /// Seconds the table's latest write may age before `check` reports it stale.
    pub freshness_secs: Option<u64>,
    pub auto_compact: bool,
    pub checks: Vec<(String, String)>,
    pub expectations: Vec<Expectation>,
    pub properties: Vec<(String, String)>,
    /// A stand-in after an error (see `expand`): its items only, none of its checks, which
    /// would be errors of a declaration the user did not write.
    pub stand_in: bool,
}

/// A validated `expect(..)`.
pub(crate) struct Expectation {
    pub name: String,
    pub expr: String,
    /// `Warn`, `Drop` or `Fail`: the runtime's `OnFail` variant.
    pub on_fail: &'static str,
}

/// The schema of the run ledger's system tables, which user tables cannot use.
const RESERVED_SCHEMA: &str = "lakehouse";

/// The column holding the logical time of the run that wrote a row (never a change column).
const RUN_AT: &str = "run_at";

/// Whether the struct being derived belongs to the runtime itself, which declares the system
/// tables (cargo names the package being compiled; proc macros run inside that compilation).
fn declared_by_the_runtime() -> bool {
    std::env::var("CARGO_PKG_NAME").is_ok_and(|package| package == "lakehouse-runtime")
}

/// The columns every SCD2 table gets, in this order.
pub(crate) const SCD2_COLUMNS: [&str; 3] = ["valid_from", "valid_to", "is_current"];

/// Columns Delta's change data feed adds to what a reader of changes sees (and strips from
/// written files): a field of that name would be lost or confused with them.
const CHANGE_FEED_COLUMNS: [&str; 3] = ["_change_type", "_commit_version", "_commit_timestamp"];

/// The prefix of the runtime's own working columns (deletion marks, file names, references).
const RUNTIME_COLUMN_PREFIX: &str = "__lakehouse";

/// Checks the parsed struct, adding to the parse's `errors`, and returns every error at once.
pub(crate) fn validate((input, mut errors): (TableInput, Errors)) -> syn::Result<TableModel> {
    // A misspelled key is reported by the parse: no "missing" error for it too.
    let parsed_cleanly = input.attrs.parsed_cleanly;
    if !input.generics.params.is_empty() {
        errors.spanned(&input.generics, "a table cannot be generic");
    }
    let attrs = input.attrs;

    let schema = match &attrs.schema {
        Some(s) => {
            let schema = checked_identifier(&s.value, "schema", &mut errors);
            if schema == RESERVED_SCHEMA && !declared_by_the_runtime() {
                errors.spanned(
                    &s.value,
                    format!(
                        "schema `{RESERVED_SCHEMA}` is reserved for the run ledger's system tables \
                         (`lakehouse.runs`, `lakehouse.table_metrics`, ...): choose another, e.g. \
                         `silver` or `gold`"
                    ),
                );
            }
            schema
        }
        None => {
            if parsed_cleanly {
                errors.push(syn::Error::new(
                    input.ident.span(),
                    "missing `#[table(schema = \"..\")]`, e.g. `#[table(schema = \"silver\")]`",
                ));
            }
            String::new()
        }
    };
    let name = match &attrs.name {
        Some(n) => checked_identifier(&n.value, "table name", &mut errors),
        None => {
            let struct_name = column_name(&input.ident);
            let name = snake_case(&struct_name);
            // A name whose words are unclear (`HTTPLogs`: `http_logs` or `h_t_t_p_logs`?) is
            // asked for: the table's directory is named after it, and a guess that ever changed
            // would move the table.
            let earlier = one_word_per_capital(&struct_name);
            if name != earlier {
                errors.spanned(
                    &input.ident,
                    format!(
                        "`{struct_name}` has capitals in a row (or `_` before one), which make no \
                         clear table name: name it, e.g. `#[table(name = \"{name}\")]` (a table \
                         this struct made with an earlier version is stored as `{earlier}`: \
                         name it so to keep it)"
                    ),
                );
            } else if !is_safe_identifier(&name) {
                errors.spanned(
                    &input.ident,
                    format!(
                        "the table name `{name}` made from the struct's name is not a valid table \
                         name (lowercase letters, digits and `_`): name it with \
                         `#[table(name = \"..\")]`"
                    ),
                );
            }
            name
        }
    };

    // A mode that does not read, or that is unknown, is reported as such: the rules that depend
    // on the mode are then not applied (their errors would be the mode's).
    let mut mode_known = !attrs.mode_unreadable;
    let mode = match &attrs.mode {
        None => Mode::Append,
        Some(m) => match m.value.to_string().as_str() {
            "append" => Mode::Append,
            "overwrite" => Mode::Overwrite,
            "merge" => Mode::Merge,
            "scd2" => Mode::Scd2,
            other => {
                errors.spanned(
                    &m.value,
                    format!(
                        "unknown mode `{other}`; expected `append`, `overwrite`, `merge` or `scd2`"
                    ),
                );
                mode_known = false;
                Mode::Append
            }
        },
    };
    let evolution = match &attrs.evolution {
        None => Evolution::Merge,
        Some(e) => match e.value.to_string().as_str() {
            "merge" => Evolution::Merge,
            "overwrite" => Evolution::Overwrite,
            "keep" => Evolution::Keep,
            other => {
                errors.spanned(
                    &e.value,
                    format!("unknown evolution `{other}`; expected `merge`, `overwrite` or `keep`"),
                );
                Evolution::Merge
            }
        },
    };

    if evolution == Evolution::Overwrite && mode_known && mode != Mode::Overwrite {
        let span = attrs
            .evolution
            .as_ref()
            .map_or(input.ident.span(), |e| e.value.span());
        errors.push(syn::Error::new(
            span,
            "`evolution = overwrite` replaces the table's schema, which only a full rewrite can do: use it with `mode = overwrite`",
        ));
    }
    // The writes that replace the schema leave the table's constraints as they were: a check
    // added or changed later would never be applied.
    if evolution == Evolution::Overwrite
        && let Some(check) = attrs.checks.first()
    {
        errors.spanned(
            &check.key,
            "`check(..)` constraints are kept in step with the declaration by writes that keep \
             the schema, and `evolution = overwrite` replaces it: use `evolution = merge` (the \
             default), or an expectation (`expect(.., on_fail = fail)`)",
        );
    }
    let quality = match &attrs.quality {
        None => Quality::Off,
        Some(q) => match q.value.to_string().as_str() {
            "off" => Quality::Off,
            "warn" => Quality::Warn,
            "blocking" => Quality::Blocking,
            other => {
                errors.spanned(
                    &q.value,
                    format!("unknown quality `{other}`; expected `off`, `warn` or `blocking`"),
                );
                Quality::Off
            }
        },
    };

    let field_names: Vec<String> = input.fields.iter().map(|f| column_name(&f.ident)).collect();
    for (field, name) in input.fields.iter().zip(&field_names) {
        // A stand-in's fields are the user's, whatever their names: its handles keep their uses
        // from failing too. (A field an SCD2 table adds is still refused: it would be twice.)
        if input.stand_in {
            if mode == Mode::Scd2 && SCD2_COLUMNS.contains(&name.as_str()) {
                errors.spanned(&field.ident, "added by `mode = scd2`");
            }
            continue;
        }
        if !is_safe_identifier(name) {
            errors.spanned(
                &field.ident,
                format!("column `{name}` must be lowercase snake_case (`[a-z_][a-z0-9_]*`)"),
            );
        }
        if mode == Mode::Scd2 && SCD2_COLUMNS.contains(&name.as_str()) {
            errors.spanned(
                &field.ident,
                format!("`{name}` is added by `mode = scd2`; remove this field"),
            );
        }
        if CHANGE_FEED_COLUMNS.contains(&name.as_str()) {
            errors.spanned(
                &field.ident,
                format!(
                    "`{name}` is a column of Delta's change data feed, which readers of changes \
                     see beside the table's own (and writers strip from files): rename the field"
                ),
            );
        }
        if name.starts_with(RUNTIME_COLUMN_PREFIX) {
            errors.spanned(
                &field.ident,
                format!("columns starting with `{RUNTIME_COLUMN_PREFIX}` are the runtime's: rename `{name}`"),
            );
        }
    }

    let key = column_list(&attrs.key, &field_names, &mut errors);
    match (&attrs.key, mode) {
        // (Not when the attribute failed to parse: a malformed `key(..)` is reported as such.)
        (None, Mode::Merge | Mode::Scd2) if parsed_cleanly => {
            let span = attrs
                .mode
                .as_ref()
                .map_or(input.ident.span(), |m| m.value.span());
            errors.push(syn::Error::new(
                span,
                "`merge` and `scd2` tables need `key(..)`: the columns that identify a row",
            ));
        }
        (Some(k), _) if k.value.is_empty() => errors.spanned(&k.key, "`key(..)` names no column"),
        // Most likely a forgotten `mode = merge`: the default appends every row, key or not.
        // (Not when a key failed to parse: a misspelled `mode` is reported as such.)
        (Some(k), Mode::Append) if attrs.mode.is_none() && parsed_cleanly => errors.spanned(
            &k.key,
            "a table with `key(..)` and no `mode` appends every row, repeating keys: say \
             `mode = merge` to upsert on the key (or `mode = scd2` to keep its history), or \
             `mode = append` if a key may repeat",
        ),
        _ => {}
    }
    for (field, name) in input.fields.iter().zip(&field_names) {
        if key.contains(name) && option_inner(&field.ty).is_some() {
            errors.spanned(
                &field.ty,
                format!("key column `{name}` cannot be `Option<_>`: a key is never NULL"),
            );
        }
    }

    let partition_by = column_list(&attrs.partition_by, &field_names, &mut errors);
    // Partition values live in folder names, not in the data files: with every column there,
    // a file has no column to hold its rows (Spark refuses such a table too). An SCD2 table
    // keeps its history columns in its files.
    if let Some(declared) = &attrs.partition_by
        && mode != Mode::Scd2
        && !field_names.is_empty()
        && field_names.iter().all(|name| partition_by.contains(name))
    {
        errors.spanned(
            &declared.key,
            "a table partitioned by every one of its columns keeps no column in its data files \
             for its rows: leave at least one column out of `partition_by(..)`",
        );
    }
    let overwrite = overwrite_scope(
        &attrs,
        mode_known.then_some(mode),
        evolution,
        &partition_by,
        &mut errors,
    );
    // A key is unique in the table, and a write replacing some partitions checks it in the rows
    // it writes only: one key in two partitions would pass, written by two runs.
    if let Some(declared_key) = &attrs.key
        && overwrite == OverwriteScope::Partitions
        && !key.is_empty()
    {
        let outside: Vec<&str> = partition_by
            .iter()
            .filter(|column| !key.contains(column))
            .map(String::as_str)
            .collect();
        if !outside.is_empty() {
            // A key column is never NULL: a nullable partition column must stop being one.
            let nullable: Vec<String> = input
                .fields
                .iter()
                .zip(&field_names)
                .filter(|(field, name)| {
                    outside.contains(&name.as_str()) && option_inner(&field.ty).is_some()
                })
                .map(|(_, name)| format!("`{name}`"))
                .collect();
            let not_null = if nullable.is_empty() {
                String::new()
            } else {
                format!(
                    " (declared without `Option<_>`: {}, as a key column is never NULL)",
                    nullable.join(", ")
                )
            };
            errors.spanned(
                &declared_key.key,
                format!(
                    "with `overwrite = partitions`, a write checks the key in the partitions it \
                     replaces only: add the partition column(s) {} to the key{not_null}, so \
                     that one key lives in one partition",
                    outside
                        .iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }
    let change_columns = attrs.change_columns.as_ref().map(|list| {
        if mode_known && mode != Mode::Scd2 && mode != Mode::Merge {
            errors.spanned(
                &list.key,
                "`change_columns(..)` only applies to `mode = merge` and `mode = scd2`",
            );
        }
        if list.value.is_empty() {
            errors.spanned(
                &list.key,
                "`change_columns(..)` names no column: no change would ever update a row or open \
                 a version; leave it out to compare every non-key column",
            );
        }
        for ident in &list.value {
            if key.contains(&column_name(ident)) {
                errors.spanned(ident, "a key column cannot be a change column");
            }
            if column_name(ident) == RUN_AT {
                errors.spanned(
                    ident,
                    "`run_at` holds each run's time, so every row would change (be rewritten, or \
                     open a new version) at every run: leave it out of `change_columns(..)`",
                );
            }
        }
        column_list(&attrs.change_columns, &field_names, &mut errors)
    });
    let z_order = column_list(&attrs.z_order, &field_names, &mut errors);
    if let Some(z) = &attrs.z_order {
        for ident in &z.value {
            if partition_by.contains(&column_name(ident)) {
                errors.spanned(ident, "a partition column cannot be a Z-order column");
            }
        }
    }
    let target_file_size = attrs.target_file_size.as_ref().and_then(|t| {
        let size = match &t.value {
            // (A suffix such as `128MB` reaches the macro unchecked by rustc; an integer
            // type's, `134217728u64`, is only a type.)
            Lit::Int(int)
                if matches!(
                    int.suffix(),
                    "" | "u32" | "u64" | "u128" | "usize" | "i32" | "i64" | "i128" | "isize"
                ) =>
            {
                int.base10_parse::<u64>().ok()
            }
            Lit::Str(text) => byte_size(&text.value()),
            _ => None,
        };
        if !matches!(size, Some(1..)) {
            errors.spanned(
                &t.value,
                "`target_file_size` is a positive number of bytes (`134217728`) or a size with \
                 its unit as a string (`\"128MiB\"`, `\"1GB\"`; B, KB, MB, GB are powers of \
                 1000, KiB, MiB, GiB of 1024)",
            );
            return None;
        }
        size
    });
    let auto_compact = attrs.auto_compact.as_ref().is_none_or(|a| a.value.value);
    let freshness_secs = attrs.freshness.as_ref().and_then(|f| {
        let parsed = duration_secs(&f.value.value());
        if parsed.is_none() {
            errors.spanned(
                &f.value,
                "`freshness` is a duration such as \"30m\", \"26h\" or \"7d\" (units s, m, h, d)",
            );
        }
        parsed
    });

    let mut check_names = Vec::new();
    let checks = attrs
        .checks
        .iter()
        .map(|c| {
            let (name, expr) = &c.value;
            let checked = checked_identifier(name, "check name", &mut errors);
            // One constraint per name in Delta: a second would silently replace the first.
            if check_names.contains(&checked) {
                errors.spanned(name, format!("check `{checked}` is declared twice"));
            }
            check_names.push(checked.clone());
            if expr.value().trim().is_empty() {
                errors.spanned(expr, "a check needs a SQL expression");
            }
            (checked, expr.value())
        })
        .collect();
    let mut expectation_names = Vec::new();
    let expectations = attrs
        .expectations
        .iter()
        .map(|e| {
            let e = &e.value;
            let name = checked_identifier(&e.name, "expectation name", &mut errors);
            if expectation_names.contains(&name) {
                errors.spanned(&e.name, format!("expectation `{name}` is declared twice"));
            }
            expectation_names.push(name.clone());
            if e.expr.value().trim().is_empty() {
                errors.spanned(&e.expr, "an expectation needs a SQL expression");
            }
            let on_fail = match e.on_fail.as_ref().map(|i| i.to_string()).as_deref() {
                None | Some("warn") => "Warn",
                Some("drop") => "Drop",
                Some("fail") => "Fail",
                Some(other) => {
                    errors.spanned(
                        &e.on_fail,
                        format!(
                            "unknown `on_fail` `{other}`: expected `warn` (keep the rows, record them), \
                             `drop` (leave them out, record them) or `fail` (write nothing)"
                        ),
                    );
                    "Warn"
                }
            };
            Expectation {
                name,
                expr: e.expr.value(),
                on_fail,
            }
        })
        .collect();
    let properties = attrs
        .properties
        .iter()
        .map(|p| {
            let (key, value) = &p.value;
            if key.value().trim().is_empty() {
                errors.spanned(key, "a table property needs a key");
            }
            if key.value().starts_with("lakehouse.") {
                errors.spanned(
                    key,
                    "table properties starting with `lakehouse.` are the runtime's (the key, \
                     the CHECK declarations); choose another key",
                );
            }
            if key.value().starts_with("delta.")
                && !key.value().starts_with("delta.constraints.")
                && !DELTA_PROPERTIES.contains(&key.value().as_str())
            {
                let known: Vec<String> = DELTA_PROPERTIES.iter().map(|k| (*k).to_owned()).collect();
                let hint = closest(&key.value(), &known)
                    .map(|close| format!("did you mean `{close}`? "))
                    .unwrap_or_default();
                errors.spanned(
                    key,
                    format!(
                        "`{}` is no Delta table property the runtime's Delta library (delta-rs \
                         1.1) knows; {hint}its `delta.` properties are {}; a property of your \
                         own takes a key outside `delta.` (`owner`, `team.contact`)",
                        key.value(),
                        DELTA_PROPERTIES.join(", ")
                    ),
                );
            }
            if key.value() == "delta.columnMapping.mode"
                && !value.value().eq_ignore_ascii_case("none")
                && evolution == Evolution::Overwrite
            {
                errors.spanned(
                    key,
                    "a column-mapped table's schema is not replaced by delta-rs 1.1, and \
                     `evolution = overwrite` replaces it at every write: use `evolution = merge` \
                     (the default), or no column mapping",
                );
            }
            // Delta readers (the kernel's `parse_bool`) take booleans in lowercase only: a
            // `True` would be on for delta-rs's protocol setup, and off for what writes follow it.
            // (So are column mapping's modes.)
            let text = value.value();
            let lowercase_words: &[&str] = if key.value() == "delta.columnMapping.mode" {
                &["none", "name", "id"]
            } else {
                &["true", "false"]
            };
            if key.value().starts_with("delta.")
                && lowercase_words
                    .iter()
                    .any(|word| text.eq_ignore_ascii_case(word) && text != *word)
            {
                errors.spanned(
                    value,
                    format!(
                        "write `{}`: Delta reads this property's value in lowercase only",
                        text.to_ascii_lowercase()
                    ),
                );
            }
            if let Some(form) = unreadable_delta_value(&key.value(), &text) {
                errors.spanned(
                    value,
                    format!(
                        "`{}` = {text:?} is a value Delta cannot read (it would be taken as \
                         unset, or refused when the table is created): write {form}",
                        key.value()
                    ),
                );
            }
            if key.value().starts_with("delta.constraints.") {
                errors.spanned(
                    key,
                    "a CHECK constraint is declared with `check(name = \"..\", expr = \"..\")`, \
                     which adds, replaces and drops it as the declaration changes",
                );
            }
            if key.value() == "delta.appendOnly"
                && value.value().eq_ignore_ascii_case("true")
                && mode != Mode::Append
            {
                errors.spanned(
                    value,
                    "`delta.appendOnly` forbids removing files, which a `merge`, `scd2` or \
                     `overwrite` table does at every run: leave it to `mode = append` tables",
                );
            }
            (key.value(), value.value())
        })
        .collect::<Vec<(String, String)>>();
    for (index, p) in attrs.properties.iter().enumerate() {
        let key = p.value.0.value();
        if attrs.properties[..index]
            .iter()
            .any(|earlier| earlier.value.0.value() == key)
        {
            errors.spanned(&p.value.0, format!("table property `{key}` is set twice"));
        }
    }

    let columns = input
        .fields
        .into_iter()
        .zip(field_names)
        .map(|(field, name)| column(field, name, &input.ident, &mut errors))
        .collect();

    errors.finish()?;
    Ok(TableModel {
        stand_in: input.stand_in,
        ident: input.ident,
        vis: input.vis,
        doc: input.doc,
        schema,
        name,
        mode,
        evolution,
        overwrite,
        quality,
        columns,
        key,
        partition_by,
        change_columns,
        z_order,
        target_file_size,
        freshness_secs,
        auto_compact,
        checks,
        expectations,
        properties,
    })
}

fn column(field: FieldInput, name: String, table: &Ident, errors: &mut Errors) -> Column {
    let references = field
        .references
        .and_then(|path| split_column_path(&path, errors))
        .filter(|(target, _)| {
            // Its check reads the stored table, which the write's own rows are not in yet
            // (rustc would otherwise report a cycle in the table's constant).
            // `Employees`, `Self` or `self::Employees`: a longer path may name another module's
            // table of the same name (rustc reports a cycle if it is this one).
            let own = table.to_string();
            let names = |expected: &[&str]| {
                target.segments.len() == expected.len()
                    && target
                        .segments
                        .iter()
                        .zip(expected)
                        .all(|(segment, name)| segment.ident == name)
            };
            let itself = names(&[own.as_str()]) || names(&["Self"]) || names(&["self", &own]);
            if itself {
                errors.spanned(
                    target,
                    "a table cannot reference itself: the check reads the stored rows, not \
                     those of the write (a first load would refuse every reference); check \
                     such a hierarchy in a downstream pipeline",
                );
            }
            !itself
        });
    Column {
        ident: field.ident,
        name,
        ty: field.ty,
        doc: field.doc,
        references,
    }
}

/// `DimCustomer::customer_key` → (`DimCustomer`, `customer_key`).
fn split_column_path(path: &Path, errors: &mut Errors) -> Option<(Path, Ident)> {
    if path.segments.len() < 2 {
        errors.spanned(
            path,
            "expected `Table::column`, e.g. `DimCustomer::customer_key`",
        );
        return None;
    }
    let mut table = path.clone();
    let column = table.segments.pop()?.into_value().ident;
    // `pop` leaves the trailing `::`; rebuild the punctuation.
    table.segments = table.segments.into_iter().collect();
    Some((table, column))
}

/// Resolves a `key(..)`-style list against the struct's fields; an unknown name is an error on
/// that name, a repeated one too.
fn column_list(
    list: &Option<Keyed<Vec<Ident>>>,
    fields: &[String],
    errors: &mut Errors,
) -> Vec<String> {
    let Some(list) = list else { return Vec::new() };
    let mut out: Vec<String> = Vec::new();
    for ident in &list.value {
        let name = column_name(ident);
        if !fields.contains(&name) {
            let hint = closest(&name, fields)
                .map(|c| format!("; did you mean `{c}`?"))
                .unwrap_or_default();
            errors.spanned(
                ident,
                format!("`{}` names no field of this struct{hint}", list.key),
            );
            continue;
        }
        if out.contains(&name) {
            errors.spanned(ident, format!("`{name}` is listed twice"));
            continue;
        }
        out.push(name);
    }
    out
}

fn checked_identifier(lit: &LitStr, what: &str, errors: &mut Errors) -> String {
    let value = lit.value();
    if value.len() > 128 {
        errors.spanned(
            lit,
            format!(
                "invalid {what}: {} bytes, over the 128 a name may have",
                value.len()
            ),
        );
    } else if !is_safe_identifier(&value) {
        errors.spanned(
            lit,
            format!("invalid {what} {value:?}: use lowercase letters, digits and `_`, starting with a letter or `_`"),
        );
    } else if RESERVED_NAMES.contains(&value.as_str()) {
        errors.spanned(
            lit,
            format!(
                "{what} `{value}` is taken: `information_schema` is SQL's catalog of tables, \
                 `_delta_log` a Delta table's log folder; choose another"
            ),
        );
    }
    value
}

/// Schema and table names that would shadow SQL's catalog or sit in a Delta log's place.
const RESERVED_NAMES: [&str; 2] = ["information_schema", "_delta_log"];

/// The column name of a field: its identifier without `r#`.
pub(crate) fn column_name(ident: &Ident) -> String {
    let s = ident.to_string();
    s.strip_prefix("r#").map(str::to_owned).unwrap_or(s)
}

/// `SilverErpSales` → `silver_erp_sales`; a run of capitals is one word (`HTTPLogs` →
/// `http_logs`, `DimUS` → `dim_us`), and a digit ends none (`Top10Sales` → `top10_sales`).
pub(crate) fn snake_case(ident: &str) -> String {
    let chars: Vec<char> = ident.chars().collect();
    let mut out = String::new();
    for (i, &ch) in chars.iter().enumerate() {
        if ch.is_uppercase() && i > 0 {
            let previous = chars[i - 1];
            let next_is_lower = chars.get(i + 1).is_some_and(|c| c.is_lowercase());
            // A word starts after a lowercase letter or digit, or at the last capital of a run
            // followed by lowercase (`HTTPLogs`: the `L`).
            if previous.is_lowercase()
                || previous.is_ascii_digit()
                || (previous.is_uppercase() && next_is_lower)
            {
                out.push('_');
            }
        }
        out.extend(ch.to_lowercase());
    }
    out
}

/// `SilverErpSales` → `silver_erp_sales`, a `_` before every capital but the first
/// (`HTTPLogs` → `h_t_t_p_logs`): where it differs from [`snake_case`], the words are unclear.
fn one_word_per_capital(ident: &str) -> String {
    let mut out = String::new();
    for (i, ch) in ident.chars().enumerate() {
        if ch.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(ch.to_lowercase());
    }
    out
}

/// `Option<T>` → `T`.
pub(crate) fn option_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    let segment = path.path.segments.last()?;
    if segment.ident != "Option" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &segment.arguments else {
        return None;
    };
    match args.args.first()? {
        syn::GenericArgument::Type(inner) => Some(inner),
        _ => None,
    }
}

/// The `delta.` table properties delta-rs 1.1 accepts (`deltalake_core::TableProperty`): it
/// refuses others when they change on an existing table, so a misspelled one is stored at
/// creation and fails every later write of a new value.
const DELTA_PROPERTIES: &[&str] = &[
    "delta.appendOnly",
    "delta.autoOptimize.autoCompact",
    "delta.autoOptimize.optimizeWrite",
    "delta.checkpoint.writeStatsAsJson",
    "delta.checkpoint.writeStatsAsStruct",
    "delta.checkpointInterval",
    "delta.checkpointPolicy",
    "delta.columnMapping.mode",
    "delta.dataSkippingNumIndexedCols",
    "delta.dataSkippingStatsColumns",
    "delta.deletedFileRetentionDuration",
    "delta.enableChangeDataFeed",
    "delta.enableDeletionVectors",
    "delta.enableExpiredLogCleanup",
    "delta.isolationLevel",
    "delta.logRetentionDuration",
    "delta.minReaderVersion",
    "delta.minWriterVersion",
    "delta.randomPrefixLength",
    "delta.randomizeFilePrefixes",
    "delta.setTransactionRetentionDuration",
    "delta.targetFileSize",
    "delta.tuneFileSizesForRewrites",
];

/// The form Delta reads `key`'s value in, when `value` is not of it (as Delta's kernel and
/// delta-rs 1.1 parse them: a value they cannot read counts as unset, or fails the table's
/// creation). A boolean in another case is told apart (`write `true``).
fn unreadable_delta_value(key: &str, value: &str) -> Option<&'static str> {
    const BOOLEANS: &[&str] = &[
        "delta.appendOnly",
        "delta.autoOptimize.autoCompact",
        "delta.autoOptimize.optimizeWrite",
        "delta.checkpoint.writeStatsAsJson",
        "delta.checkpoint.writeStatsAsStruct",
        "delta.enableChangeDataFeed",
        "delta.enableDeletionVectors",
        "delta.enableExpiredLogCleanup",
        "delta.randomizeFilePrefixes",
        "delta.tuneFileSizesForRewrites",
    ];
    const INTERVALS: &[&str] = &[
        "delta.deletedFileRetentionDuration",
        "delta.logRetentionDuration",
        "delta.setTransactionRetentionDuration",
    ];
    const POSITIVE: &[&str] = &[
        "delta.checkpointInterval",
        "delta.randomPrefixLength",
        "delta.targetFileSize",
    ];
    let whole = |range: std::ops::RangeInclusive<i64>| {
        value.parse::<i64>().is_ok_and(|n| range.contains(&n))
    };
    let (readable, form) = match key {
        _ if BOOLEANS.contains(&key) => (
            value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false"),
            "`true` or `false`",
        ),
        _ if INTERVALS.contains(&key) => (
            is_interval(value),
            "`interval <n> <unit>`, lowercase, with a whole n and a unit from nanoseconds to \
             weeks (`interval 30 days`; months are not allowed)",
        ),
        _ if POSITIVE.contains(&key) => (whole(1..=i64::MAX), "a whole number above 0"),
        "delta.dataSkippingNumIndexedCols" => (
            whole(-1..=i64::MAX),
            "a whole number of columns (-1 for every one)",
        ),
        "delta.minReaderVersion" => (whole(1..=3), "a reader version from 1 to 3"),
        "delta.minWriterVersion" => (whole(2..=7), "a writer version from 2 to 7"),
        "delta.isolationLevel" => (
            matches!(
                value,
                "Serializable" | "WriteSerializable" | "SnapshotIsolation"
            ),
            "`Serializable`, `WriteSerializable` or `SnapshotIsolation`",
        ),
        "delta.checkpointPolicy" => (matches!(value, "classic" | "v2"), "`classic` or `v2`"),
        _ => (true, ""),
    };
    (!readable).then_some(form)
}

/// `interval <n> <unit>` as Delta's kernel reads it: a whole n ≥ 0, a unit from nanoseconds to
/// weeks.
fn is_interval(value: &str) -> bool {
    let mut words = value.split_whitespace();
    words.next() == Some("interval")
        && words
            .next()
            .is_some_and(|n| n.parse::<i64>().is_ok_and(|n| n >= 0))
        && words.next().is_some_and(|unit| {
            matches!(
                unit.strip_suffix('s').unwrap_or(unit),
                "nanosecond"
                    | "microsecond"
                    | "millisecond"
                    | "second"
                    | "minute"
                    | "hour"
                    | "day"
                    | "week"
            )
        })
}

/// The most similar candidate within a small edit distance, for "did you mean" hints.
pub(crate) fn closest<'a>(name: &str, candidates: &'a [String]) -> Option<&'a str> {
    candidates
        .iter()
        // A swap of two letters (`mdoe`) counts as one edit.
        .map(|c| (strsim::osa_distance(name, c), c))
        .filter(|(d, c)| *d <= (c.len().max(name.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

/// `overwrite = table | partitions`: `partitions` needs `mode = overwrite`, a `partition_by`, and
/// the table's schema kept (replacing it rewrites every partition). `mode`: `None` when it did
/// not read (reported as such).
fn overwrite_scope(
    attrs: &TableAttrs,
    mode: Option<Mode>,
    evolution: Evolution,
    partition_by: &[String],
    errors: &mut Errors,
) -> OverwriteScope {
    let Some(declared) = &attrs.overwrite else {
        return OverwriteScope::Table;
    };
    let scope = match declared.value.to_string().as_str() {
        "table" => OverwriteScope::Table,
        "partitions" => OverwriteScope::Partitions,
        other => {
            errors.spanned(
                &declared.value,
                format!("unknown overwrite `{other}`; expected `table` or `partitions`"),
            );
            return OverwriteScope::Table;
        }
    };
    let Some(mode) = mode else {
        return scope;
    };
    if mode != Mode::Overwrite {
        errors.spanned(
            &declared.key,
            "`overwrite = ..` says what `mode = overwrite` replaces: use it with `mode = overwrite`",
        );
    } else if scope == OverwriteScope::Partitions && partition_by.is_empty() {
        errors.spanned(
            &declared.value,
            "`overwrite = partitions` replaces the partitions the output has rows in: declare \
             them with `partition_by(..)`",
        );
    } else if scope == OverwriteScope::Partitions && evolution == Evolution::Overwrite {
        errors.spanned(
            &declared.value,
            "`evolution = overwrite` replaces the schema of every row, which replacing some \
             partitions cannot do: use one or the other",
        );
    }
    scope
}

/// The bytes of a size such as `128MiB`, `1 GB` or `4096`: a whole number and an optional unit
/// (B; KB, MB, GB, TB powers of 1000; KiB, MiB, GiB, TiB powers of 1024; case-insensitive).
pub(crate) fn byte_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// Seconds in `text`: one or more `<number><unit>` (units `s`, `m`, `h`, `d`), such as `1h30m`;
/// `None` when it is not one, or zero.
pub(crate) fn duration_secs(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return None,
        };
        let number: u64 = digits.parse().ok()?;
        total = total.checked_add(number.checked_mul(unit)?)?;
        digits.clear();
    }
    (digits.is_empty() && total > 0).then_some(total)
}
