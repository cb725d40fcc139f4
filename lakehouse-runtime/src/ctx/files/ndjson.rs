//! NDJSON files' keys, checked against the table's columns before the scan (which ignores
//! the keys it does not know).

use crate::error::{Error, Result};

/// How much of each NDJSON file [`refuse_json_keys_not_declared`] reads.
const JSON_SAMPLE_BYTES: usize = 64 * 1024;

/// Refuses NDJSON files (local ones, each sampled: its first [`JSON_SAMPLE_BYTES`]) that have
/// none of `table`'s columns (a stray manifest: rows of NULLs), an object whose key names one
/// of them otherwise (`Amount` for `amount`), or that lack a NOT NULL one: all the files of a
/// folder are one scan with the table's columns, where such a key was ignored and its column
/// NULL (one file's `Amount` went unseen beside another's `amount`), and a NOT NULL column
/// failed later as a NULL the pipeline made. Each error names its file.
pub(super) fn refuse_json_keys_not_declared(
    table: &crate::table::TableDef,
    files: &[String],
) -> Result<()> {
    for file in files {
        // An object store's files are not sampled.
        if let Some(objects) = sampled_json_objects(file) {
            refuse_json_keys_of_file(table, &format!("`{file}`"), &objects)?;
        }
    }
    Ok(())
}

/// The keys of each object in the first [`JSON_SAMPLE_BYTES`] of the local NDJSON `file`
/// (`None` when it cannot be read, or has no object there: the reader tells what is wrong).
fn sampled_json_objects(file: &str) -> Option<Vec<Vec<String>>> {
    use std::io::Read as _;
    let handle = std::fs::File::open(file).ok()?;
    let mut start = Vec::with_capacity(JSON_SAMPLE_BYTES.min(8 * 1024));
    handle
        .take(JSON_SAMPLE_BYTES as u64)
        .read_to_end(&mut start)
        .ok()?;
    let whole = start.len() < JSON_SAMPLE_BYTES;
    let mut lines: Vec<&[u8]> = start.split(|byte| *byte == b'\n').collect();
    if !whole {
        // The last line may be cut by the sample.
        lines.pop();
    }
    let objects: Vec<Vec<String>> = lines
        .into_iter()
        .filter_map(|line| match serde_json::from_slice(line) {
            Ok(serde_json::Value::Object(object)) => Some(object.keys().cloned().collect()),
            _ => None,
        })
        .collect();
    (!objects.is_empty()).then_some(objects)
}

/// [`refuse_json_keys_not_declared`] for the sampled `objects` (their keys) of the file `named`.
fn refuse_json_keys_of_file(
    table: &crate::table::TableDef,
    named: &str,
    objects: &[Vec<String>],
) -> Result<()> {
    let qualified = table.qualified_name();
    let keys: std::collections::BTreeSet<&str> =
        objects.iter().flatten().map(String::as_str).collect();
    let near = |key: &str, name: &str| key != name && key.trim().to_lowercase() == name;
    for column in table.data_columns().filter(|c| c.name != "run_at") {
        // Object by object: `Amount` in one is a mistake, even when another has `amount`.
        let misnamed = objects.iter().find_map(|object| {
            if object.iter().any(|k| k == column.name) {
                return None;
            }
            object.iter().find(|k| near(k, column.name))
        });
        if let Some(misnamed) = misnamed {
            return Err(Error::schema(
                &qualified,
                format!(
                    "the file {named} has a key `{misnamed}`, not `{}`: keys are matched by \
                     their exact name; rename it where the file is written, or read it under \
                     its own name and rename it in the pipeline",
                    column.name
                ),
            ));
        }
    }
    let found = || {
        keys.iter()
            .map(|key| format!("`{key}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let declared: Vec<&str> = table
        .data_columns()
        .map(|c| c.name)
        .filter(|name| *name != "run_at")
        .collect();
    if !declared.is_empty() && !declared.iter().any(|name| keys.contains(name)) {
        return Err(Error::schema(
            &qualified,
            format!(
                "the file {named} has none of the table's columns ({}): its objects have {}; \
                 is it a data file of this table?",
                declared.join(", "),
                found()
            ),
        ));
    }
    if let Some(missing) = table
        .data_columns()
        .find(|c| !c.nullable && c.name != "run_at" && !keys.contains(c.name))
    {
        return Err(Error::schema(
            &qualified,
            format!(
                "the file {named} has no key `{}`, which is NOT NULL (its objects have {}); \
                 declare it `Option<_>`, or fill it in the pipeline",
                missing.name,
                found()
            ),
        ));
    }
    Ok(())
}
