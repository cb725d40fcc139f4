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

/// The model of `input` stripped of its table and column attributes, when that is valid. Its
/// `mode` and `key(..)` are kept when they read: an SCD2 table's stand-in has the validity
/// columns its readers name (a typo elsewhere is then one error, not one per reader).
fn stand_in(input: TokenStream) -> Option<validate::TableModel> {
    let helper =
        |attr: &syn::Attribute| attr.path().is_ident("table") || attr.path().is_ident("column");
    let mut input: syn::DeriveInput = syn::parse2(input).ok()?;
    let (mode, key) = mode_and_key(&input.attrs);
    input.attrs.retain(|attr| !helper(attr));
    if let syn::Data::Struct(data) = &mut input.data {
        for field in data.fields.iter_mut() {
            field.attrs.retain(|attr| !helper(attr));
        }
    }
    let declared = |attr: syn::Attribute| {
        let mut input = input.clone();
        input.attrs.push(attr);
        let (mut parsed, errors) = parse::parse(input);
        parsed.stand_in = true;
        validate::validate((parsed, errors)).ok()
    };
    let with_mode = |key: &TokenStream| {
        let mode = mode.as_ref()?;
        declared(
            syn::parse_quote!(#[table(schema = "error", name = "error", mode = #mode, key(#key))]),
        )
    };
    // The key as given; else (a misspelled or nullable key) the first NOT NULL field, so the
    // mode's own columns (an SCD2 table's `is_current`..) are still there for its readers.
    let first_not_null = match &input.data {
        syn::Data::Struct(data) => data
            .fields
            .iter()
            .find(|field| !is_option(&field.ty))
            .and_then(|field| field.ident.as_ref())
            .map(|ident| quote::quote!(#ident)),
        _ => None,
    };
    key.as_ref()
        .and_then(with_mode)
        .or_else(|| first_not_null.as_ref().and_then(with_mode))
        .or_else(|| declared(syn::parse_quote!(#[table(schema = "error", name = "error")])))
}

/// Whether `ty` is spelled `Option<..>`.
fn is_option(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(path)
        if path.path.segments.last().is_some_and(|segment| segment.ident == "Option"))
}

/// The `mode = ..` and `key(..)` of `#[table(..)]` attributes, as far as they read.
fn mode_and_key(attrs: &[syn::Attribute]) -> (Option<syn::Ident>, Option<TokenStream>) {
    let (mut mode, mut key) = (None, None);
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("table")) {
        // A malformed entry ends the reading: what was read before it is kept.
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("mode") {
                mode = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("key") {
                // A key written otherwise (`key = id`) is read past: a `mode` after it counts.
                if let Ok(columns) = crate::attr::field_list(&meta) {
                    key = Some(quote::quote!(#(#columns),*));
                }
            } else {
                crate::attr::skip_value(&meta)?;
            }
            Ok(())
        });
    }
    (mode, key)
}

#[cfg(test)]
mod tests;
