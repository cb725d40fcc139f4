//! `#[derive(Table)]`: parse → validate → codegen.

mod codegen;
mod parse;
pub(crate) mod validate;

use proc_macro2::TokenStream;

/// Expands `#[derive(Table)]`; every error becomes a `compile_error!` on the user's token.
pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let result = syn::parse2(input)
        .and_then(parse::parse)
        .and_then(validate::validate);
    match result {
        Ok(model) => codegen::codegen(&model),
        Err(error) => error.into_compile_error(),
    }
}

#[cfg(test)]
mod tests;
