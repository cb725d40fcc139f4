//! `#[derive(Table)]`: parse → validate → codegen.

mod codegen;
mod parse;
pub(crate) mod validate;

use proc_macro2::TokenStream;

/// Expands `#[derive(Table)]`; every error becomes a `compile_error!` on the user's token.
/// With an error, the items of a stand-in declaration are emitted too (the same struct, with
/// none of its `#[table]`/`#[column]` attributes), so that the column handles, the `Select`
/// struct and the `Table` impl exist: one mistake gives its own error, not one more at every
/// use of the table.
pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let result = syn::parse2(input.clone())
        .map(parse::parse)
        .and_then(validate::validate);
    match result {
        Ok(model) => codegen::codegen(&model),
        Err(error) => {
            let mut output = error.into_compile_error();
            if let Some(model) = stand_in(input) {
                output.extend(codegen::codegen(&model));
            }
            output
        }
    }
}

/// The model of `input` stripped of its table and column attributes, when that is valid.
fn stand_in(input: TokenStream) -> Option<validate::TableModel> {
    let helper =
        |attr: &syn::Attribute| attr.path().is_ident("table") || attr.path().is_ident("column");
    let mut input: syn::DeriveInput = syn::parse2(input).ok()?;
    input.attrs.retain(|attr| !helper(attr));
    input
        .attrs
        .push(syn::parse_quote!(#[table(schema = "error", name = "error")]));
    if let syn::Data::Struct(data) = &mut input.data {
        for field in data.fields.iter_mut() {
            field.attrs.retain(|attr| !helper(attr));
        }
    }
    validate::validate(parse::parse(input)).ok()
}

#[cfg(test)]
mod tests;
