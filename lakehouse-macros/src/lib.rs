//! Procedural macros of Lakehouse: `#[derive(Table)]` and `#[pipeline]`.
//!
//! Use them through `lakehouse_runtime` (its `prelude` re-exports both); the generated code names
//! only `::lakehouse_runtime::__private` paths. Each macro is split into `parse` (tokens to a
//! model), `validate` (every mistake reported at once, on the user's token) and `codegen`, all on
//! `proc_macro2` types so they are unit-tested without a compiler.

use proc_macro::TokenStream;

mod attr;
mod errors;
mod pipeline;
mod table;

/// Derives `lakehouse_runtime::Table` for a struct: schema, keys, write mode, typed column
/// handles and the `<Name>Select` output projection. Its `#[table(..)]` and `#[column(..)]`
/// attributes are listed in the README's "Tables and pipelines" section, in the table after
/// "The attributes, in full".
#[proc_macro_derive(Table, attributes(table, column))]
pub fn derive_table(input: TokenStream) -> TokenStream {
    table::expand(input.into()).into()
}

/// Declares an `async fn` as a pipeline writing one table. Its arguments (`depends_on`,
/// `retries`, `timeout`, `tags`, `full_snapshot`) are described in the README's "Tables and
/// pipelines" section, in the table after "The attributes, in full".
#[proc_macro_attribute]
pub fn pipeline(args: TokenStream, input: TokenStream) -> TokenStream {
    pipeline::expand(args.into(), input.into()).into()
}
