//! Small parsing helpers shared by both macros.

use quote::ToTokens as _;
use syn::parse::ParseStream;
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, ExprLit, Ident, Lit, LitStr, Meta, Token};

/// The text of the `///` doc comments in `attrs`, lines joined with `\n`, trimmed.
pub(crate) fn doc_comment(attrs: &[Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .map(|line| {
            line.strip_prefix(' ')
                .unwrap_or(&line)
                .trim_end()
                .to_owned()
        })
        .collect();
    lines.join("\n").trim().to_owned()
}

/// Parses `(a, b, c)` after an attribute key into identifiers. A list that does not parse is
/// read to its end, so that its error is the only one.
fn parenthesized_idents(input: ParseStream) -> syn::Result<Vec<Ident>> {
    let content;
    syn::parenthesized!(content in input);
    match Punctuated::<Ident, Token![,]>::parse_terminated(&content) {
        Ok(list) => Ok(list.into_iter().collect()),
        Err(error) => {
            let _ = content.parse::<proc_macro2::TokenStream>();
            Err(error)
        }
    }
}

/// Parses the column list of `key(a, b)`; one written as a value (`key = id`, `key = "a, b"`,
/// `key = [a, b]`, up to the next entry) is consumed and told how to write it, so the entries after it are read; a
/// key with no list (`key`) is told too.
pub(crate) fn field_list(meta: &syn::meta::ParseNestedMeta) -> syn::Result<Vec<Ident>> {
    let key = quote::ToTokens::to_token_stream(&meta.path)
        .to_string()
        .replace(' ', "");
    if meta.input.peek(syn::token::Paren) {
        return parenthesized_idents(meta.input);
    }
    if !meta.input.peek(Token![=]) {
        return Err(meta.error(format!(
            "write `{key}(column, ..)`: the columns are listed in parentheses"
        )));
    }
    // The value read as tokens up to the next entry (it need not be an expression).
    let value = meta.value()?;
    let mut tokens = proc_macro2::TokenStream::new();
    while !value.is_empty() && !value.peek(Token![,]) {
        tokens.extend([value.parse::<proc_macro2::TokenTree>()?]);
    }
    let mut names = Vec::new();
    column_names(tokens.clone(), &mut names);
    let names = if names.is_empty() {
        "column, ..".to_owned()
    } else {
        names.join(", ")
    };
    let message =
        format!("write `{key}({names})`: the columns are listed in parentheses, without `=`");
    Err(if tokens.is_empty() {
        meta.error(message)
    } else {
        syn::Error::new_spanned(&tokens, message)
    })
}

/// The names in a column list written as a value: its identifiers, and the words of its
/// strings (`"a, b"`).
fn column_names(tokens: proc_macro2::TokenStream, names: &mut Vec<String>) {
    for token in tokens {
        match token {
            proc_macro2::TokenTree::Ident(ident) => names.push(ident.to_string()),
            proc_macro2::TokenTree::Group(group) => column_names(group.stream(), names),
            proc_macro2::TokenTree::Literal(literal) => {
                if let Ok(text) = syn::parse2::<LitStr>(literal.into_token_stream()) {
                    names.extend(
                        text.value()
                            .split([',', ' '])
                            .filter(|word| !word.is_empty())
                            .map(str::to_owned),
                    );
                }
            }
            proc_macro2::TokenTree::Punct(_) => {}
        }
    }
}

/// True when `s` is a lowercase SQL-safe identifier: `[a-z_][a-z0-9_]*`, at most 128 bytes.
///
/// Table and schema names become directory names under the warehouse, so nothing else is
/// accepted (no `.`, `/`, `%` or uppercase that object stores and SQL treat differently).
pub(crate) fn is_safe_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && s.len() <= 128
}

/// Parses `= "text"`; a value written without its quotes (`schema = silver`) is told how to
/// write it.
pub(crate) fn string_value(meta: &syn::meta::ParseNestedMeta) -> syn::Result<LitStr> {
    let value = meta.value()?;
    if value.peek(LitStr) {
        return value.parse();
    }
    let expr: Expr = value.parse()?;
    let key = quote::ToTokens::to_token_stream(&meta.path)
        .to_string()
        .replace(' ', "");
    let shown = quote::ToTokens::to_token_stream(&expr)
        .to_string()
        .replace(' ', "");
    Err(syn::Error::new_spanned(
        &expr,
        format!("write `{key} = \"{shown}\"`: the value is a quoted string"),
    ))
}

/// Consumes the value of a `#[..(key ..)]` entry that is not used (`= expr`, or a parenthesised
/// list), so that a mistake in one key is reported with the entries after it.
pub(crate) fn skip_value(meta: &syn::meta::ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        content.parse::<proc_macro2::TokenStream>()?;
    }
    Ok(())
}

/// Consumes what is left of an entry whose value did not read (up to the next `,`), so that
/// the entries after it are still read.
pub(crate) fn skip_rest(meta: &syn::meta::ParseNestedMeta) -> syn::Result<()> {
    if meta.input.is_empty() || meta.input.peek(syn::Token![,]) {
        return Ok(());
    }
    if meta.input.peek(syn::Token![=]) {
        meta.input.parse::<syn::Token![=]>()?;
    }
    meta.input.parse::<syn::Expr>()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_identifiers() {
        for ok in ["sales", "_x", "dim_customer_2"] {
            assert!(is_safe_identifier(ok), "{ok}");
        }
        for bad in ["", "Sales", "../x", "a/b", "a.b", "%2e", "9x", "a-b", "a\0"] {
            assert!(!is_safe_identifier(bad), "{bad:?}");
        }
    }

    #[test]
    fn an_unquoted_value_is_told_how_to_write_it() {
        let attr: syn::Attribute = syn::parse_quote!(#[table(schema = silver)]);
        let error = attr
            .parse_nested_meta(|meta| string_value(&meta).map(drop))
            .expect_err("unquoted");
        assert_eq!(
            error.to_string(),
            "write `schema = \"silver\"`: the value is a quoted string"
        );
        let attr: syn::Attribute = syn::parse_quote!(#[table(schema = "silver")]);
        attr.parse_nested_meta(|meta| string_value(&meta).map(drop))
            .expect("quoted");
    }

    #[test]
    fn a_field_list_written_as_a_value_is_told_how_to_write_it() {
        for (attr, told) in [
            (
                syn::parse_quote!(#[table(key = id)]),
                "write `key(id)`: the columns are listed in parentheses, without `=`",
            ),
            (
                syn::parse_quote!(#[table(key = "a, b")]),
                "write `key(a, b)`: the columns are listed in parentheses, without `=`",
            ),
            (
                syn::parse_quote!(#[table(partition_by = [day, shop])]),
                "write `partition_by(day, shop)`: the columns are listed in parentheses, \
                 without `=`",
            ),
            (
                syn::parse_quote!(#[table(z_order = (a, b))]),
                "write `z_order(a, b)`: the columns are listed in parentheses, without `=`",
            ),
        ] {
            let attr: syn::Attribute = attr;
            let error = attr
                .parse_nested_meta(|meta| field_list(&meta).map(drop))
                .expect_err("a value, not a list");
            assert_eq!(error.to_string(), told);
        }
        let attr: syn::Attribute = syn::parse_quote!(#[table(key)]);
        let error = attr
            .parse_nested_meta(|meta| field_list(&meta).map(drop))
            .expect_err("no list");
        assert_eq!(
            error.to_string(),
            "write `key(column, ..)`: the columns are listed in parentheses"
        );
        let attr: syn::Attribute = syn::parse_quote!(#[table(key(a, b))]);
        attr.parse_nested_meta(|meta| {
            assert_eq!(field_list(&meta)?.len(), 2);
            Ok(())
        })
        .expect("a list");
    }

    #[test]
    fn doc_comment_joins_lines() {
        let item: syn::ItemStruct = syn::parse_quote! {
            /// First line.
            ///   indented
            struct S;
        };
        assert_eq!(doc_comment(&item.attrs), "First line.\n  indented");
    }
}
