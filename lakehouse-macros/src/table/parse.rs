//! Tokens → `TableInput`: the struct and its `#[table(..)]` / `#[column(..)]` attributes, as
//! written. Only syntax is checked here; meaning is checked in `validate`.

use syn::spanned::Spanned;
use syn::{
    Data, DeriveInput, Fields, Generics, Ident, Lit, LitBool, LitStr, Path, Type, Visibility,
};

use crate::attr::{doc_comment, field_list, skip_rest, skip_value, string_value};
use crate::errors::Errors;

/// The struct as the user wrote it.
pub(crate) struct TableInput {
    pub ident: Ident,
    pub vis: Visibility,
    pub generics: Generics,
    pub doc: String,
    pub attrs: TableAttrs,
    pub fields: Vec<FieldInput>,
    /// A stand-in after an error (see `expand`): its field names are not checked, only used.
    pub stand_in: bool,
}

/// A `key = value` or `key(..)` entry, with the span of its key for errors.
pub(crate) struct Keyed<T> {
    pub key: Ident,
    pub value: T,
}

/// The contents of `#[table(..)]`.
#[derive(Default)]
pub(crate) struct TableAttrs {
    pub schema: Option<Keyed<LitStr>>,
    pub name: Option<Keyed<LitStr>>,
    pub key: Option<Keyed<Vec<Ident>>>,
    pub partition_by: Option<Keyed<Vec<Ident>>>,
    pub mode: Option<Keyed<Ident>>,
    pub change_columns: Option<Keyed<Vec<Ident>>>,
    pub evolution: Option<Keyed<Ident>>,
    pub overwrite: Option<Keyed<Ident>>,
    pub quality: Option<Keyed<Ident>>,
    pub z_order: Option<Keyed<Vec<Ident>>>,
    /// A number of bytes, or a size with its unit as a string.
    pub target_file_size: Option<Keyed<Lit>>,
    pub freshness: Option<Keyed<LitStr>>,
    pub auto_compact: Option<Keyed<LitBool>>,
    pub checks: Vec<Keyed<(LitStr, LitStr)>>,
    pub expectations: Vec<Keyed<ExpectInput>>,
    pub properties: Vec<Keyed<(LitStr, LitStr)>>,
    /// Whether `#[table(..)]` parsed without an error: a misspelled key is reported as such,
    /// and not as missing too (a field's mistake says nothing of the table's keys).
    pub parsed_cleanly: bool,
    /// Whether `mode` was given with a value that does not read (`mode = "merge"`): the rules
    /// that depend on the mode are not applied (their errors would be the mode's).
    pub mode_unreadable: bool,
}

/// `expect(name = "..", expr = "..", on_fail = drop)`.
pub(crate) struct ExpectInput {
    pub name: LitStr,
    pub expr: LitStr,
    pub on_fail: Option<Ident>,
}

/// One named field.
pub(crate) struct FieldInput {
    pub ident: Ident,
    pub ty: Type,
    pub doc: String,
    pub references: Option<Path>,
}

const TABLE_KEYS: &str = "`schema`, `name`, `key(..)`, `partition_by(..)`, `mode`, \
    `change_columns(..)`, `evolution`, `overwrite`, `quality`, `z_order(..)`, `target_file_size`, `auto_compact`, `freshness`, `check(..)`, \
    `expect(..)`, `property(..)`";

/// The names of the `#[table(..)]` keys, for "did you mean" hints.
fn table_key_names() -> Vec<String> {
    [
        "schema",
        "name",
        "key",
        "partition_by",
        "mode",
        "change_columns",
        "evolution",
        "overwrite",
        "quality",
        "z_order",
        "target_file_size",
        "freshness",
        "auto_compact",
        "check",
        "expect",
        "property",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The struct as written, and the syntax errors found (validation goes on with what parsed, so
/// that every mistake is reported at once).
pub(crate) fn parse(input: DeriveInput) -> (TableInput, Errors) {
    let mut errors = Errors::default();
    let mut attrs = parse_table_attrs(&input, &mut errors);
    attrs.parsed_cleanly = errors.is_empty();
    refuse_serde_naming(&input.attrs, false, &mut errors);
    // Each helper attribute has one place; elsewhere it would be silently ignored.
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("column")) {
        errors.spanned(
            attr,
            "`#[column(..)]` goes on a field; the struct takes `#[table(..)]`",
        );
    }
    let fields = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) if named.named.is_empty() => {
                errors.spanned(named, "a table needs at least one column (a named field)");
                Vec::new()
            }
            Fields::Named(named) => named
                .named
                .iter()
                .map(|f| parse_field(f, &mut errors))
                .collect(),
            Fields::Unnamed(unnamed) => {
                errors.spanned(unnamed, "a table needs named fields, one per column");
                Vec::new()
            }
            // No tokens to point at: the struct's name.
            Fields::Unit => {
                errors.push(syn::Error::new(
                    input.ident.span(),
                    "a table needs named fields, one per column",
                ));
                Vec::new()
            }
        },
        Data::Enum(e) => {
            errors.push(syn::Error::new(
                e.enum_token.span,
                "`#[derive(Table)]` only supports structs",
            ));
            Vec::new()
        }
        Data::Union(u) => {
            errors.push(syn::Error::new(
                u.union_token.span,
                "`#[derive(Table)]` only supports structs",
            ));
            Vec::new()
        }
    };
    let parsed = TableInput {
        doc: doc_comment(&input.attrs),
        ident: input.ident,
        vis: input.vis,
        generics: input.generics,
        attrs,
        fields,
        stand_in: false,
    };
    (parsed, errors)
}

fn parse_table_attrs(input: &DeriveInput, errors: &mut Errors) -> TableAttrs {
    let mut out = TableAttrs::default();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("table")) {
        let result = attr.parse_nested_meta(|meta| {
            // A mistake in a key is recorded and the next keys are parsed: all are reported.
            let Some(key) = meta.path.get_ident().cloned() else {
                errors.push(meta.error(format!(
                    "unknown `table` attribute; expected one of {TABLE_KEYS}"
                )));
                return skip_value(&meta);
            };
            macro_rules! once {
                ($slot:expr, $value:expr) => {{
                    if $slot.is_some() {
                        errors.push(meta.error(format!("`{key}` is given twice")));
                        return skip_value(&meta);
                    }
                    let value = $value;
                    $slot = Some(Keyed { key, value });
                }};
            }
            // A list written as a value is reported, and the keys after it are still read.
            macro_rules! list {
                ($slot:expr) => {
                    match field_list(&meta) {
                        Ok(columns) => once!($slot, columns),
                        Err(error) => errors.push(error),
                    }
                };
            }
            // A value that does not read is reported, and the keys after it are still read.
            macro_rules! value {
                ($result:expr) => {
                    match $result {
                        Ok(value) => value,
                        Err(error) => {
                            errors.push(error);
                            return skip_rest(&meta);
                        }
                    }
                };
            }
            match key.to_string().as_str() {
                "schema" => once!(out.schema, value!(string_value(&meta))),
                "name" => once!(out.name, value!(string_value(&meta))),
                "key" => list!(out.key),
                "partition_by" => list!(out.partition_by),
                "mode" => {
                    let mode = word_value(&meta, "mode");
                    out.mode_unreadable |= mode.is_err();
                    once!(out.mode, value!(mode))
                }
                "change_columns" => list!(out.change_columns),
                "evolution" => once!(out.evolution, value!(word_value(&meta, "evolution"))),
                "overwrite" => once!(out.overwrite, value!(word_value(&meta, "overwrite"))),
                "quality" => once!(out.quality, value!(word_value(&meta, "quality"))),
                "z_order" => list!(out.z_order),
                "target_file_size" => {
                    once!(out.target_file_size, value!(parsed_value::<Lit>(&meta)))
                }
                "freshness" => once!(out.freshness, value!(string_value(&meta))),
                "auto_compact" => {
                    once!(out.auto_compact, value!(parsed_value::<LitBool>(&meta)))
                }
                "check" => {
                    let pair = value!(name_value_pair(&meta, "name", "expr"));
                    out.checks.push(Keyed { key, value: pair });
                }
                "expect" => {
                    let expectation = value!(expect_input(&meta));
                    out.expectations.push(Keyed {
                        key,
                        value: expectation,
                    });
                }
                "property" => {
                    let pair = value!(name_value_pair(&meta, "key", "value"));
                    out.properties.push(Keyed { key, value: pair });
                }
                other => {
                    let hint = crate::table::validate::closest(other, &table_key_names())
                        .map(|close| format!("did you mean `{close}`? "))
                        .unwrap_or_default();
                    errors.push(meta.error(format!(
                        "unknown `table` attribute `{key}`; {hint}expected one of {TABLE_KEYS}"
                    )));
                    return skip_value(&meta);
                }
            }
            Ok(())
        });
        if let Err(error) = result {
            errors.push(error);
        }
    }
    out
}

/// The `= value` of an entry, parsed as `T`.
fn parsed_value<T: syn::parse::Parse>(meta: &syn::meta::ParseNestedMeta) -> syn::Result<T> {
    meta.value()?.parse::<T>()
}

/// An error on `inner` when `value` is given already: the last would otherwise win unseen.
fn given_once<T>(
    value: &Option<T>,
    inner: &syn::meta::ParseNestedMeta,
    name: &str,
) -> syn::Result<()> {
    match value {
        Some(_) => Err(inner.error(format!("`{name}` is given twice"))),
        None => Ok(()),
    }
}

/// Parses `(first = "..", second = "..")`, both required.
fn name_value_pair(
    meta: &syn::meta::ParseNestedMeta,
    first: &str,
    second: &str,
) -> syn::Result<(LitStr, LitStr)> {
    let mut a = None;
    let mut b = None;
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident(first) {
            given_once(&a, &inner, first)?;
            a = Some(string_value(&inner)?);
        } else if inner.path.is_ident(second) {
            given_once(&b, &inner, second)?;
            b = Some(string_value(&inner)?);
        } else {
            return Err(inner.error(format!(
                "expected `{first} = \"..\"` or `{second} = \"..\"`"
            )));
        }
        Ok(())
    })?;
    match (a, b) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(meta.error(format!("expected `({first} = \"..\", {second} = \"..\")`"))),
    }
}

/// `(name = "..", expr = "..", on_fail = drop)`, `on_fail` optional.
fn expect_input(meta: &syn::meta::ParseNestedMeta) -> syn::Result<ExpectInput> {
    let (mut name, mut expr, mut on_fail) = (None, None, None);
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("name") {
            given_once(&name, &inner, "name")?;
            name = Some(string_value(&inner)?);
        } else if inner.path.is_ident("expr") {
            given_once(&expr, &inner, "expr")?;
            expr = Some(string_value(&inner)?);
        } else if inner.path.is_ident("on_fail") {
            given_once(&on_fail, &inner, "on_fail")?;
            on_fail = Some(word_value(&inner, "on_fail")?);
        } else {
            return Err(inner.error(
                "expected `name = \"..\"`, `expr = \"..\"` or `on_fail = warn | drop | fail`",
            ));
        }
        Ok(())
    })?;
    match (name, expr) {
        (Some(name), Some(expr)) => Ok(ExpectInput {
            name,
            expr,
            on_fail,
        }),
        _ => Err(meta.error(
            "expected `(name = \"..\", expr = \"..\")`, and optionally `on_fail = warn | drop | fail`",
        )),
    }
}

fn parse_field(field: &syn::Field, errors: &mut Errors) -> FieldInput {
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("table")) {
        errors.spanned(
            attr,
            "`#[table(..)]` goes on the struct; a field takes `#[column(..)]`",
        );
    }
    refuse_serde_naming(&field.attrs, true, errors);
    let mut references = None;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("column")) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("references") {
                if references.is_some() {
                    return Err(meta.error("`references` is given twice"));
                }
                references = Some(meta.value()?.parse::<Path>()?);
                Ok(())
            } else {
                Err(meta.error("unknown `column` attribute; expected `references = Table::column`"))
            }
        });
        errors.ok(result);
    }
    FieldInput {
        // Named fields always have an ident; a tuple struct is rejected before this is used.
        ident: field
            .ident
            .clone()
            .unwrap_or_else(|| Ident::new("_", field.span())),
        ty: field.ty.clone(),
        doc: doc_comment(&field.attrs),
        references,
    }
}

/// Why a serde setting naming a column otherwise than its field is refused.
const RENAMED: &str = "a table's columns are named by its fields, and serde would name this \
                       column otherwise in the rows it makes and reads: rename the field (a raw \
                       identifier, `r#type`, for a Rust keyword)";

/// Errors on the `#[serde(..)]` settings that would make a table's rows name other columns
/// than its fields (`rename`, `alias`, `rename_all`), or leave a column out of them (`skip*`,
/// `flatten`): rows made and read by serde (`frame_from_rows`, `rows`) would then fail on a
/// column the table lacks, or read and write NULL. `on_field`: the attributes of a field, else of
/// the struct. Settings of the value's format (`with`, `default`, ...) are left to serde.
fn refuse_serde_naming(attrs: &[syn::Attribute], on_field: bool, errors: &mut Errors) {
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        // (Syntax serde refuses is left for serde to report.)
        let _ = attr.parse_nested_meta(|meta| {
            let Some(setting) = meta.path.get_ident().map(Ident::to_string) else {
                return skip_value(&meta);
            };
            // (Fields are snake_case already: renaming them so changes nothing.)
            if !on_field && setting == "rename_all" && meta.input.peek(syn::Token![=]) {
                let case: LitStr = meta.value()?.parse()?;
                if case.value() == "snake_case" {
                    return Ok(());
                }
                errors.spanned(
                    &meta.path,
                    format!("`#[serde({setting})]` on a table: {RENAMED}"),
                );
                return Ok(());
            }
            let why = match (on_field, setting.as_str()) {
                (true, "rename" | "alias") | (false, "rename_all") => Some(RENAMED),
                (true, "skip" | "skip_serializing" | "skip_deserializing") => Some(
                    "every field of a table is a column, which serde would leave out of the \
                     rows it makes (a NULL) or reads: leave the column out of the struct",
                ),
                (true, "flatten") => Some(
                    "every field of a table is one column, and serde would read and write this \
                     one as several",
                ),
                _ => None,
            };
            if let Some(why) = why {
                errors.spanned(
                    &meta.path,
                    format!("`#[serde({setting})]` on a table: {why}"),
                );
            }
            skip_value(&meta)
        });
    }
}

/// The identifier after `key =`; a quoted one (`mode = "merge"`) is an error saying to drop
/// the quotes (`schema` and `name` take strings, these words do not).
fn word_value(meta: &syn::meta::ParseNestedMeta, key: &str) -> syn::Result<Ident> {
    let value = meta.value()?;
    if value.peek(LitStr) {
        let quoted: LitStr = value.parse()?;
        return Err(syn::Error::new(
            quoted.span(),
            format!("write `{key} = {}`, without quotes", quoted.value()),
        ));
    }
    value.parse::<Ident>()
}
