//! Collects every error of one macro invocation so the user sees all of them at once.

use std::fmt::Display;

use quote::ToTokens;

/// An accumulator of `syn::Error`s (serde_derive's `Ctxt`, without the drop check).
#[derive(Default)]
pub(crate) struct Errors {
    errors: Vec<syn::Error>,
}

impl Errors {
    /// Records an error spanning `tokens`.
    pub(crate) fn spanned(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.errors.push(syn::Error::new_spanned(tokens, message));
    }

    /// Whether no error was recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Records an already built error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        self.errors.push(error);
    }

    /// Records the error of `result`, if any, and returns its value.
    pub(crate) fn ok<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }

    /// All the errors, `last` after them, combined into one.
    pub(crate) fn ending_with(self, last: syn::Error) -> syn::Error {
        let mut errors = self.errors.into_iter();
        let Some(mut first) = errors.next() else {
            return last;
        };
        for error in errors.chain(std::iter::once(last)) {
            first.combine(error);
        }
        first
    }

    /// All the errors combined into one, or `Ok` when there were none.
    pub(crate) fn finish(self) -> syn::Result<()> {
        let mut errors = self.errors.into_iter();
        let Some(mut first) = errors.next() else {
            return Ok(());
        };
        for error in errors {
            first.combine(error);
        }
        Err(first)
    }
}
