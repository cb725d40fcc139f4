//! `#[pipeline(..)]`: parse → validate → codegen.

mod codegen;
mod parse;
mod validate;

use proc_macro2::TokenStream;
use syn::ItemFn;

use crate::errors;

/// Expands `#[pipeline(..)]`. On error the user's function is kept and a dummy of the generated
/// items is emitted, so one mistake gives one error (clap and tokio do the same).
pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let item: ItemFn = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            let error = syn::Error::new_spanned(&input, "`#[pipeline]` goes on an `async fn`");
            let error = error.into_compile_error();
            return quote::quote!(#input #error);
        }
    };
    // A second `#[pipeline]` would expand again: two modules and registrations of one name.
    if let Some(again) = item.attrs.iter().find(|attr| {
        attr.path()
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "pipeline")
    }) {
        let error = syn::Error::new_spanned(
            again,
            "`#[pipeline]` is given twice: put every argument in one \
             (`#[pipeline(depends_on = [..], retries = 3)]`)",
        );
        return codegen::dummy(&strip_pipeline_attributes(item), error);
    }
    let mut errors = errors::Errors::default();
    let result = match parse::parse_args(args, &mut errors) {
        Ok(args) => validate::validate(args, item.clone(), errors),
        // A malformed value: with the mistakes in the keys before it.
        Err(error) => Err(errors.ending_with(error)),
    };
    match result {
        Ok(model) => codegen::codegen(&model),
        Err(error) => codegen::dummy(&item, error),
    }
}

/// `item` without its `#[pipeline]` attributes, emitted once with the error.
fn strip_pipeline_attributes(mut item: ItemFn) -> ItemFn {
    item.attrs.retain(|attr| {
        attr.path()
            .segments
            .last()
            .is_none_or(|segment| segment.ident != "pipeline")
    });
    item
}

#[cfg(test)]
mod tests;
