//! `orchestrate sql`: a read-only query over the tables, streamed as a grid, CSV or JSON lines.

use std::process::ExitCode;

use comfy_table::{ContentArrangement, Table as Grid, presets};
use futures::StreamExt as _;

use super::args::{GlobalArgs, OutputFormat};
use super::commands::{all_tables, existing_warehouse};
use crate::error::{Error, Result};
use crate::graph::Registry;
use crate::table::TableDef;

pub(super) async fn sql(
    registry: &Registry,
    global: &GlobalArgs,
    query: &str,
    as_of: &[(&'static TableDef, crate::store::AsOf)],
    format: OutputFormat,
) -> Result<ExitCode> {
    let warehouse = existing_warehouse(global)?;
    super::commands::refuse_unwritten_object_store(&warehouse, registry, global).await?;
    let tables = all_tables(registry);
    let df = with_unique_names(warehouse.sql_as_of(&tables, query, as_of).await?)?;
    let schema = df.schema().inner().clone();
    // Streamed: a result of any size is written batch by batch, never held whole.
    let failed = |e: datafusion::error::DataFusionError| {
        let text = Error::from(e).to_string();
        // A data file of a past version, gone: vacuumed since.
        let vacuumed = as_of.iter().find(|(table, _)| {
            text.contains("not found")
                && !text.contains("/_delta_log/")
                && text.contains(&format!("/{}/{}/", table.schema, table.name))
        });
        match vacuumed {
            Some((table, _)) => Error::msg(format!(
                "query failed: a data file of {} at the version asked is gone: vacuumed since \
                 (vacuum keeps the files of its retention period only), or deleted; ask for a \
                 later version (`orchestrate history {}` lists them) ({text})",
                table.qualified_name(),
                table.qualified_name()
            )),
            None => Error::msg(format!("query failed: {text}")),
        }
    };
    // Told before any row is written (the writer fails at the first batch, the header out).
    if format == OutputFormat::Csv
        && let Some(nested) = schema.fields().iter().find(|f| f.data_type().is_nested())
    {
        return Err(Error::msg(format!(
            "column `{}` is {}, which CSV cannot hold: use `--format json`, or make it text \
             in the query (`array_to_string(..)`, `CAST(.. AS VARCHAR)`)",
            nested.name(),
            nested.data_type()
        )));
    }
    if format == OutputFormat::Json {
        super::json::refuse_unwritable(&schema)?;
    }
    let mut stream = df.execute_stream().await.map_err(failed)?;
    match format {
        OutputFormat::Table => {
            let (mut shown, mut rows) = (Vec::new(), 0);
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(failed)?;
                let room = GRID_ROWS.saturating_sub(rows);
                if room > 0 {
                    shown.push(batch.slice(0, room.min(batch.num_rows())));
                }
                rows += batch.num_rows();
            }
            let grid = grid_of(&schema, &shown)?;
            if rows > GRID_ROWS {
                say!(
                    "{grid}\n{rows} row(s), the first {GRID_ROWS} shown (`--format csv` or \
                     `json` writes them all)"
                );
            } else {
                say!("{grid}\n{rows} row(s)");
            }
        }
        OutputFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(std::io::stdout());
            let mut written = false;
            while let Some(batch) = stream.next().await {
                written = true;
                if quiet_if_reader_gone(writer.write(&batch.map_err(failed)?))?.is_none() {
                    break;
                }
            }
            // The header is written with the first batch: an empty result still has one.
            if !written {
                let empty = arrow::array::RecordBatch::new_empty(schema);
                quiet_if_reader_gone(writer.write(&empty))?;
            }
        }
        OutputFormat::Json => {
            // NULLs as `null`, not left out: a column NULL in every row would vanish; NaN and
            // the infinities as text, not `null` as a NULL is.
            let mut writer = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .with_encoder_factory(super::json::encoders())
                .build::<_, arrow::json::writer::LineDelimited>(std::io::stdout());
            let mut open = true;
            while let Some(batch) = stream.next().await {
                if quiet_if_reader_gone(writer.write(&batch.map_err(failed)?))?.is_none() {
                    open = false;
                    break;
                }
            }
            if open {
                quiet_if_reader_gone(writer.finish())?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `df` with each column named once: a name two columns share (`f.run_at`, `s.run_at` of a
/// join's `SELECT *`) is qualified by its table or alias, as a JSON object keeps one of two
/// equal keys and a CSV reader one of two equal headers.
fn with_unique_names(
    df: datafusion::dataframe::DataFrame,
) -> Result<datafusion::dataframe::DataFrame> {
    use datafusion::common::Column;
    use datafusion::logical_expr::Expr;
    let schema = df.schema().clone();
    let shared = |name: &str| schema.fields().iter().filter(|f| f.name() == name).count() > 1;
    if !schema.fields().iter().any(|f| shared(f.name())) {
        return Ok(df);
    }
    let mut taken: std::collections::HashSet<String> = std::collections::HashSet::new();
    let columns: Vec<Expr> = schema
        .iter()
        .map(|(qualifier, field)| {
            let column = Expr::Column(Column::new(qualifier.cloned(), field.name()));
            let mut name = match qualifier {
                Some(qualifier) if shared(field.name()) => format!("{qualifier}.{}", field.name()),
                _ => field.name().clone(),
            };
            // Still taken (the same column twice, unqualified): numbered.
            let base = name.clone();
            let mut number = 2;
            while !taken.insert(name.clone()) {
                name = format!("{base}_{number}");
                number += 1;
            }
            column.alias(name)
        })
        .collect();
    Ok(df.select(columns)?)
}

/// Rows `sql` draws in its table; the count covers them all.
const GRID_ROWS: usize = 1_000;

/// Query results of `schema` as a table drawn like the other commands' (NULL spelled out).
fn grid_of(
    schema: &arrow::datatypes::Schema,
    batches: &[arrow::array::RecordBatch],
) -> Result<Grid> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let mut grid = Grid::new();
    grid.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    grid.set_header(schema.fields().iter().map(|f| f.name().clone()));
    let options = FormatOptions::default().with_null("NULL");
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            grid.add_row(formatters.iter().map(|f| f.value(row).to_string()));
        }
    }
    Ok(grid)
}

/// `written`, `None` when the reader is gone (`orchestrate sql .. | head`), which is no error.
fn quiet_if_reader_gone(
    written: Result<(), arrow::error::ArrowError>,
) -> Result<Option<()>, arrow::error::ArrowError> {
    match written {
        Ok(()) => Ok(Some(())),
        Err(error) if super::is_broken_pipe(&error) => Ok(None),
        Err(error) => Err(error),
    }
}
