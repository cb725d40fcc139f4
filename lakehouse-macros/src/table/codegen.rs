//! `TableModel` → tokens: the `Table` impl, typed column handles, the `<Name>Select` projection and
//! the dead code that makes rustc check `references` types.

use std::collections::HashSet;

use proc_macro2::{Ident, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::validate::{Column, Evolution, Mode, OverwriteScope, Quality, TableModel};

pub(crate) fn codegen(model: &TableModel) -> TokenStream {
    let table_impl = table_impl(model);
    let handles = column_handles(model);
    let select = select_struct(model);
    // A stand-in's key and `run_at` are not the user's: their checks would be errors of their
    // own. Nor is its lack of properties: whether readers may take its changes is not known,
    // and they are let.
    let (key_checks, run_at_check) = if model.stand_in {
        (TokenStream::new(), TokenStream::new())
    } else {
        (key_checks(model), run_at_check(model))
    };
    let reference_checks = reference_checks(model);
    let partition_checks = partition_checks(model);
    let ident = &model.ident;
    // Append tables record their new rows; a merge table its inserts and updates, once its
    // change data feed is on.
    let change_feed_on = model.stand_in
        || model.properties.iter().any(|(key, value)| {
            key == "delta.enableChangeDataFeed" && value.eq_ignore_ascii_case("true")
        });
    let records_changes = (model.mode == Mode::Append
        || (model.mode == Mode::Merge && change_feed_on))
        .then(|| quote!(impl ::lakehouse_runtime::__private::RecordsChanges for #ident {}));
    let fields = model.columns.iter().map(|c| &c.ident);
    quote! {
        // Rows are usually built by DataFusion, never by Rust code: this impl reads the fields so
        // a table declared in a binary does not warn about them.
        impl ::lakehouse_runtime::__private::TableFields for #ident {
            fn read_fields(&self) {
                let _ = (#(&self.#fields,)*);
            }
        }
        #table_impl
        #records_changes
        #handles
        #select
        #reference_checks
        #key_checks
        #run_at_check
        #partition_checks
    }
}

/// A partition column's type, through any alias, is not a float: its values become folder
/// names, which round, and an equal value may not name the same partition.
fn partition_checks(model: &TableModel) -> TokenStream {
    model
        .columns
        .iter()
        .filter(|c| model.partition_by.contains(&c.name))
        .map(|c| {
            let ty = &c.ty;
            let message = format!(
                "partition column `{}` is a float: its values become folder names, which round; \
                 partition by a whole number, a date or a text",
                c.name
            );
            quote_spanned! {ty.span()=>
                const _: () = ::core::assert!(
                    !::core::matches!(
                        <#ty as ::lakehouse_runtime::__private::ColumnType>::LOGICAL,
                        ::lakehouse_runtime::__private::LogicalType::Float64
                    ),
                    #message
                );
            }
        })
        .collect()
}

/// A `run_at` column holds the run's logical time, which the runtime fills (new files) and
/// orders versions by (merges): its type, through any alias, is a `Timestamp`.
fn run_at_check(model: &TableModel) -> TokenStream {
    model
        .columns
        .iter()
        .filter(|c| c.name == "run_at")
        .map(|c| {
            let ty = &c.ty;
            quote_spanned! {ty.span()=>
                const _: () = ::core::assert!(
                    ::core::matches!(
                        <#ty as ::lakehouse_runtime::__private::ColumnType>::LOGICAL,
                        ::lakehouse_runtime::__private::LogicalType::Timestamp
                    ),
                    "column `run_at` holds the run's logical time, which the runtime fills and \
                     orders rows by: declare it `Timestamp` (or `Option<Timestamp>`), or name \
                     the field otherwise"
                );
            }
        })
        .collect()
}

/// A key column's type, through any alias, is not an `Option` (a plain `Option<_>` is refused
/// while validating; an alias of one only the compiler sees through), nor a float: rows are
/// matched by their key's value, and a computed float that prints the same may not be equal
/// (`0.1 + 0.2` and `0.3`), nor NaN equal to itself.
fn key_checks(model: &TableModel) -> TokenStream {
    model
        .columns
        .iter()
        .filter(|c| model.key.contains(&c.name))
        .map(|c| {
            let ty = &c.ty;
            let nullable = format!(
                "key column `{}` cannot be nullable (its type is an `Option<_>`): a key is never NULL",
                c.name
            );
            let float = format!(
                "key column `{}` is a float: rows are matched by their key, and floats that look \
                 equal may not be (0.1 + 0.2 and 0.3, NaN); key by a whole number, a decimal, a \
                 date or a text",
                c.name
            );
            quote_spanned! {ty.span()=>
                const _: () = ::core::assert!(
                    !<#ty as ::lakehouse_runtime::__private::ColumnType>::NULLABLE,
                    #nullable
                );
                const _: () = ::core::assert!(
                    !::core::matches!(
                        <#ty as ::lakehouse_runtime::__private::ColumnType>::LOGICAL,
                        ::lakehouse_runtime::__private::LogicalType::Float64
                    ),
                    #float
                );
            }
        })
        .collect()
}

fn table_impl(model: &TableModel) -> TokenStream {
    let ident = &model.ident;
    let schema = &model.schema;
    let name = &model.name;
    let doc = &model.doc;
    let rust_type = ident.to_string();
    let columns = model.columns.iter().map(column_def);
    let scd2_columns = (model.mode == Mode::Scd2).then(|| {
        quote! {
            ::lakehouse_runtime::__private::ColumnDef::system(
                "valid_from",
                ::lakehouse_runtime::__private::LogicalType::Timestamp,
                false,
                "When this version of the row became current (the run's `run_at`).",
            ),
            ::lakehouse_runtime::__private::ColumnDef::system(
                "valid_to",
                ::lakehouse_runtime::__private::LogicalType::Timestamp,
                true,
                "When this version stopped being current; NULL while it is current.",
            ),
            ::lakehouse_runtime::__private::ColumnDef::system(
                "is_current",
                ::lakehouse_runtime::__private::LogicalType::Boolean,
                false,
                "True for the current version of the row.",
            ),
        }
    });
    let mode = match model.mode {
        Mode::Append => quote!(Append),
        Mode::Overwrite => quote!(Overwrite),
        Mode::Merge => quote!(Merge),
        Mode::Scd2 => quote!(Scd2),
    };
    let evolution = match model.evolution {
        Evolution::Merge => quote!(Merge),
        Evolution::Overwrite => quote!(Overwrite),
        Evolution::Keep => quote!(Keep),
    };
    let overwrite = match model.overwrite {
        OverwriteScope::Table => quote!(Table),
        OverwriteScope::Partitions => quote!(Partitions),
    };
    let quality = match model.quality {
        Quality::Off => quote!(Off),
        Quality::Warn => quote!(Warn),
        Quality::Blocking => quote!(Blocking),
    };
    let key = &model.key;
    let partition_by = &model.partition_by;
    let z_order = &model.z_order;
    let change_columns = match &model.change_columns {
        Some(list) => quote!(::core::option::Option::Some(&[#(#list),*])),
        None => quote!(::core::option::Option::None),
    };
    let target_file_size = match model.target_file_size {
        Some(size) => quote!(::core::option::Option::Some(#size)),
        None => quote!(::core::option::Option::None),
    };
    let auto_compact = model.auto_compact;
    let freshness_secs = match model.freshness_secs {
        Some(secs) => quote!(::core::option::Option::Some(#secs)),
        None => quote!(::core::option::Option::None),
    };
    let checks = model.checks.iter().map(|(name, expr)| {
        quote!(::lakehouse_runtime::__private::CheckConstraint { name: #name, expr: #expr })
    });
    let expectations = model.expectations.iter().map(|e| {
        let (name, expr) = (&e.name, &e.expr);
        let on_fail = format_ident!("{}", e.on_fail);
        quote!(::lakehouse_runtime::__private::Expectation {
            name: #name,
            expr: #expr,
            on_fail: ::lakehouse_runtime::__private::OnFail::#on_fail,
        })
    });
    let properties = model.properties.iter().map(|(k, v)| quote!((#k, #v)));
    quote! {
        impl ::lakehouse_runtime::__private::Table for #ident {
            const DEF: &'static ::lakehouse_runtime::__private::TableDef =
                &::lakehouse_runtime::__private::TableDef {
                    schema: #schema,
                    name: #name,
                    rust_type: #rust_type,
                    description: #doc,
                    columns: &[#(#columns,)* #scd2_columns],
                    key: &[#(#key),*],
                    partition_by: &[#(#partition_by),*],
                    mode: ::lakehouse_runtime::__private::WriteMode::#mode,
                    change_columns: #change_columns,
                    evolution: ::lakehouse_runtime::__private::SchemaEvolution::#evolution,
                    overwrite: ::lakehouse_runtime::__private::OverwriteScope::#overwrite,
                    quality: ::lakehouse_runtime::__private::Quality::#quality,
                    z_order: &[#(#z_order),*],
                    target_file_size: #target_file_size,
                    auto_compact: #auto_compact,
                    freshness_secs: #freshness_secs,
                    checks: &[#(#checks),*],
                    expectations: &[#(#expectations),*],
                    properties: &[#(#properties),*],
                };
        }
    }
}

fn column_def(column: &Column) -> TokenStream {
    let name = &column.name;
    let ty = &column.ty;
    let doc = &column.doc;
    let references = match &column.references {
        Some((table, target)) => {
            // The stored name: `r#type` is the column `type`.
            let target = super::validate::column_name(target);
            quote! {
                ::core::option::Option::Some(::lakehouse_runtime::__private::ColumnRef {
                    schema: <#table as ::lakehouse_runtime::__private::Table>::DEF.schema,
                    table: <#table as ::lakehouse_runtime::__private::Table>::DEF.name,
                    column: #target,
                })
            }
        }
        None => quote!(::core::option::Option::None),
    };
    // Spanned on the field type: an unsupported type is reported there (E0277).
    let logical =
        quote_spanned!(ty.span()=> <#ty as ::lakehouse_runtime::__private::ColumnType>::LOGICAL);
    let nullable =
        quote_spanned!(ty.span()=> <#ty as ::lakehouse_runtime::__private::ColumnType>::NULLABLE);
    quote! {
        ::lakehouse_runtime::__private::ColumnDef {
            name: #name,
            data_type: #logical,
            nullable: #nullable,
            description: #doc,
            role: ::lakehouse_runtime::__private::ColumnRole::Data,
            references: #references,
        }
    }
}

fn column_handles(model: &TableModel) -> TokenStream {
    let ident = &model.ident;
    let vis = &model.vis;
    let handles = model.columns.iter().map(|c| {
        let field = &c.ident;
        let name = &c.name;
        let ty = &c.ty;
        let doc = if c.doc.is_empty() {
            format!("Column `{name}`.")
        } else {
            c.doc.clone()
        };
        quote! {
            #[doc = #doc]
            #vis const #field: ::lakehouse_runtime::__private::Col<#ident, #ty> =
                ::lakehouse_runtime::__private::Col::new(#name);
        }
    });
    let scd2 = (model.mode == Mode::Scd2).then(|| {
        quote! {
            /// When this version of the row became current.
            #vis const valid_from: ::lakehouse_runtime::__private::Col<#ident, ::lakehouse_runtime::__private::Timestamp> =
                ::lakehouse_runtime::__private::Col::new("valid_from");
            /// When this version stopped being current; NULL while it is current.
            #vis const valid_to: ::lakehouse_runtime::__private::Col<#ident, ::core::option::Option<::lakehouse_runtime::__private::Timestamp>> =
                ::lakehouse_runtime::__private::Col::new("valid_to");
            /// True for the current version of the row.
            #vis const is_current: ::lakehouse_runtime::__private::Col<#ident, bool> =
                ::lakehouse_runtime::__private::Col::new("is_current");
        }
    });
    quote! {
        #[allow(non_upper_case_globals)]
        impl #ident {
            #(#handles)*
            #scd2
        }
    }
}

/// `<Name>Select<a, b>`: one generic field per data column. `SelectFor<Name>` is implemented only
/// when each field's expression has the column's type, so a wrong type is an error on that field,
/// a missing column is E0063 and an unknown one E0560.
fn select_struct(model: &TableModel) -> TokenStream {
    let ident = &model.ident;
    let vis = &model.vis;
    let select = format_ident!("{}Select", ident);
    let doc = format!(
        "The output projection of [`{ident}`]: one field per column, each an expression of that \
         column's type. Pass it to `Frame::select_into`."
    );
    let taken: HashSet<String> = model
        .columns
        .iter()
        .flat_map(|c| idents_in(c.ty.to_token_stream()))
        .collect();
    let params: Vec<Ident> = model
        .columns
        .iter()
        .map(|c| {
            let mut param = c.name.clone();
            while taken.contains(&param) {
                param.push('_');
            }
            // A keyword column (`r#type`, `r#gen`) needs a raw parameter name too.
            if c.ident.to_string().starts_with("r#") {
                Ident::new_raw(&param, c.ident.span())
            } else {
                Ident::new(&param, c.ident.span())
            }
        })
        .collect();
    let fields = model.columns.iter().zip(&params).map(|(c, p)| {
        let field = &c.ident;
        let field_doc = format!("Expression for column `{}`.", c.name);
        quote!(#[doc = #field_doc] pub #field: #p)
    });
    let bounds = model.columns.iter().zip(&params).map(|(c, p)| {
        let ty = &c.ty;
        quote!(#p: ::lakehouse_runtime::__private::IntoColumn<#ty>)
    });
    let conversions = model.columns.iter().map(|c| {
        let field = &c.ident;
        let ty = &c.ty;
        let name = &c.name;
        quote! {
            <_ as ::lakehouse_runtime::__private::IntoColumn<#ty>>::into_column(self.#field, #name)
        }
    });
    quote! {
        #[doc = #doc]
        #[allow(non_camel_case_types)]
        #vis struct #select<#(#params),*> {
            #(#fields,)*
        }

        #[allow(non_camel_case_types)]
        impl<#(#bounds),*> ::lakehouse_runtime::__private::SelectFor<#ident> for #select<#(#params),*> {
            fn into_columns(self) -> ::std::vec::Vec<::lakehouse_runtime::__private::SelectedColumn> {
                ::std::vec![#(#conversions),*]
            }
        }
    }
}

/// Dead code that only type-checks: a `references` target must exist (E0599), hold the same
/// value type as the referencing column, NULL-ability aside (E0308), and be its table's key (a
/// const assertion, E0080).
fn reference_checks(model: &TableModel) -> TokenStream {
    let checks: Vec<TokenStream> = model
        .columns
        .iter()
        .filter_map(|c| {
            let (table, target) = c.references.as_ref()?;
            let ty = &c.ty;
            // Through the trait, so that an alias of an `Option` is unwrapped too.
            let value = quote!(<#ty as ::lakehouse_runtime::__private::ColumnType>::NonNull);
            let span = table
                .span()
                .join(target.span())
                .unwrap_or_else(|| target.span());
            // The stored name: `r#type` is the column `type`.
            let name = super::validate::column_name(target);
            Some(quote_spanned! {span=>
                let _: ::lakehouse_runtime::__private::Col<#table, #value> =
                    ::lakehouse_runtime::__private::non_null(#table::#target);
                const _: () = ::lakehouse_runtime::__private::assert_references_key::<#table>(#name);
            })
        })
        .collect();
    if checks.is_empty() {
        return TokenStream::new();
    }
    quote! {
        const _: () = {
            #[allow(dead_code, clippy::all)]
            fn references_name_a_key_of_the_same_type() {
                #(#checks)*
            }
        };
    }
}

fn idents_in(tokens: TokenStream) -> Vec<String> {
    tokens
        .into_iter()
        .flat_map(|tt| match tt {
            TokenTree::Ident(i) => vec![i.to_string()],
            TokenTree::Group(g) => idents_in(g.stream()),
            _ => Vec::new(),
        })
        .collect()
}
