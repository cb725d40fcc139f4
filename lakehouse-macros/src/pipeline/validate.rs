//! `PipelineArgs` + the function → `PipelineModel`, with every signature rule checked at once.

use quote::ToTokens;
use syn::ext::IdentExt as _;
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, ItemFn, LitStr, Path, PathArguments, ReturnType, Type};

use super::parse::PipelineArgs;
use crate::attr::doc_comment;
use crate::errors::Errors;

/// One parameter of the pipeline function.
pub(crate) enum Param {
    /// `Frame<T>` or `Changes<T>`: an upstream table; the full parameter type.
    Input(Box<Type>),
    /// `&Ctx`; the span of its type, where a mismatch (an alias of another type) is reported.
    Ctx(proc_macro2::Span),
}

/// A validated pipeline.
pub(crate) struct PipelineModel {
    pub item: ItemFn,
    pub doc: String,
    pub deps: Vec<Path>,
    pub params: Vec<Param>,
    /// The `T` of the returned `Frame<T>`.
    pub output: Type,
    /// The span of the return type, for errors about it.
    pub output_span: proc_macro2::Span,
    pub retries: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub tags: Vec<String>,
    pub full_snapshot: bool,
}

const PARAM_HELP: &str = "pipeline parameters are `Frame<Table>` (an upstream table), \
    `Changes<Table>` (its rows new since this pipeline's last success) or `&Ctx`";

/// Checks the signature and the arguments, adding to `errors` (the arguments' own), and
/// returns every error at once.
pub(crate) fn validate(
    args: PipelineArgs,
    item: ItemFn,
    mut errors: Errors,
) -> syn::Result<PipelineModel> {
    let sig = &item.sig;
    // (A `where` clause alone has no tokens in `generics` to point at: it is pointed at itself.)
    let only_lifetimes = sig
        .generics
        .params
        .iter()
        .all(|param| matches!(param, syn::GenericParam::Lifetime(_)));
    if !sig.generics.params.is_empty() && only_lifetimes {
        errors.spanned(
            &sig.generics,
            "a pipeline takes no lifetime parameters: write `cx: &Ctx`, its lifetime elided",
        );
    } else if !sig.generics.params.is_empty() {
        errors.spanned(&sig.generics, "a pipeline cannot be generic");
    } else if let Some(clause) = &sig.generics.where_clause {
        errors.spanned(clause, "a pipeline cannot be generic");
    }
    if let Some(token) = &sig.constness {
        errors.spanned(token, "a pipeline cannot be a `const fn`");
    }
    if let Some(token) = &sig.unsafety {
        errors.spanned(token, "a pipeline cannot be `unsafe`");
    }
    if let Some(variadic) = &sig.variadic {
        errors.spanned(variadic, "a pipeline cannot be variadic");
    }
    if sig
        .ident
        .to_string()
        .starts_with(|c: char| c.is_ascii_uppercase())
    {
        // `depends_on` takes a CamelCase name for a table, and says so.
        errors.spanned(
            &sig.ident,
            "a pipeline is named in snake_case (it names its `depends_on` entries, where a \
             CamelCase name is taken for a table)",
        );
    }
    if sig.asyncness.is_none() {
        errors.spanned(
            sig.fn_token,
            "a pipeline is an `async fn` (its reads and writes are awaited, and its time limit \
             interrupts it at an `.await`): write `async fn`",
        );
    }

    let mut params = Vec::new();
    let mut ctx_seen = false;
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(receiver) => {
                errors.spanned(receiver, "a pipeline is a free function, not a method")
            }
            // The attribute sees the function before `cfg` removes the parameter: the call it
            // generates would pass one argument too many.
            FnArg::Typed(pat) if pat.attrs.iter().any(removes_the_parameter) => errors.spanned(
                pat,
                "a pipeline's parameters cannot be conditional: put the `#[cfg]` on the \
                     whole pipeline (a second `#[pipeline]` fn for the other configuration)",
            ),
            FnArg::Typed(pat) => match peeled(&pat.ty) {
                Type::Reference(r) if frame_like(&r.elem, &["Frame", "Changes"]).is_some() => {
                    let inner = r.elem.to_token_stream().to_string().replace(' ', "");
                    errors.spanned(
                        r,
                        format!("inputs are taken by value: write `{inner}`, without `&`"),
                    )
                }
                // The context is `&Ctx` (or an alias of it): shared, never `&mut`; a reference
                // to anything else that is plainly not it is refused here, on the parameter.
                Type::Reference(r) if !could_be_ctx(&r.elem) => errors.spanned(r, PARAM_HELP),
                Type::Reference(r) if r.mutability.is_some() => errors.spanned(
                    r,
                    "the context is borrowed shared: write `&Ctx`, without `mut`",
                ),
                Type::Reference(r) if !ctx_seen => {
                    ctx_seen = true;
                    params.push(Param::Ctx(r.span()));
                }
                Type::Reference(r) => errors.spanned(r, "`&Ctx` is given twice"),
                ty if frame_like(ty, &["Frame", "Changes"]).is_some() => {
                    params.push(Param::Input(Box::new(ty.clone())))
                }
                ty => errors.spanned(ty, PARAM_HELP),
            },
        }
    }

    let (output, output_span) = match &sig.output {
        ReturnType::Type(_, ty) => match find_frame(ty) {
            // `Frame<T>` alone, or inside another wrapper than `Result`, would fail in the
            // generated code, far from the signature.
            Some(table) if !returns_result(ty) => {
                errors.spanned(
                    ty,
                    format!(
                        "a pipeline returns `Result<Frame<{}>>` (the prelude's `Result`), so \
                         that it can fail",
                        table.to_token_stream().to_string().replace(' ', "")
                    ),
                );
                (Some(table.clone()), ty.span())
            }
            Some(table @ Type::ImplTrait(_)) => {
                errors.spanned(
                    table,
                    "a pipeline's output is a table type, `Frame<OutputTable>`, which names the \
                     table it writes: not `impl Table`",
                );
                (None, ty.span())
            }
            Some(table) => {
                if let Some(error_type) = result_error_type(ty) {
                    errors.spanned(
                        error_type,
                        format!(
                            "a pipeline returns the prelude's `Result<Frame<{}>>`, whose error is \
                             `lakehouse_runtime::Error`: drop the error type, and turn other \
                             errors into it with `.map_err(Error::other)` (or `Error::msg`)",
                            table.to_token_stream().to_string().replace(' ', "")
                        ),
                    );
                }
                (Some(table.clone()), ty.span())
            }
            None => {
                errors.spanned(ty, "a pipeline returns `Result<Frame<OutputTable>>`");
                (None, ty.span())
            }
        },
        ReturnType::Default => {
            errors.spanned(
                &sig.ident,
                "a pipeline returns `Result<Frame<OutputTable>>`; add the return type",
            );
            (None, sig.ident.span())
        }
    };

    // Reading the table it writes would make the pipeline its own upstream.
    if let Some(output) = &output {
        let written = output.to_token_stream().to_string();
        for param in &params {
            if let Param::Input(ty) = param
                && frame_like(ty, &["Frame", "Changes"])
                    .is_some_and(|read| read.to_token_stream().to_string() == written)
            {
                errors.spanned(
                    ty,
                    format!(
                        "a pipeline cannot read the table it writes (`{}`): read the upstream \
                         tables it is made from",
                        written.replace(' ', "")
                    ),
                );
            }
        }
    }

    // Pipeline names are unique in a registry: two entries ending in one name (`sales`,
    // `crate::sales`) are one pipeline, and an entry ending in this one's name is itself.
    let own_name = sig.ident.unraw().to_string();
    // (last name, path as written) of each entry so far.
    let mut seen: Vec<(String, String)> = Vec::new();
    for dep in &args.depends_on {
        let text = dep.to_token_stream().to_string();
        let last = dep.segments.last().map(|s| s.ident.unraw().to_string());
        // `sales` and `self::sales` are itself; `bronze::sales` from `silver::sales` is another
        // pipeline of the same name; `crate::..::sales` or `super::sales` may be either (the
        // macro does not know its module).
        let first = dep.segments.first().map(|s| s.ident.to_string());
        let itself = dep.segments.len() == 1
            || (dep.segments.len() == 2 && first.as_deref() == Some("self"));
        let unsure = matches!(first.as_deref(), Some("crate" | "super"));
        let shown = text.replace(' ', "");
        if last.as_deref() == Some(own_name.as_str()) && itself {
            errors.spanned(dep, "a pipeline cannot depend on itself");
        } else if last.as_deref() == Some(own_name.as_str()) && unsure {
            errors.spanned(
                dep,
                format!(
                    "`{shown}` names this pipeline, or another of its name, `{own_name}`: a \
                     pipeline cannot depend on itself, and pipeline names are unique in a \
                     lakehouse (rename one of the two)"
                ),
            );
        } else if last.as_deref() == Some(own_name.as_str()) {
            errors.spanned(
                dep,
                format!(
                    "`{shown}` has this pipeline's name, `{own_name}`: pipeline names are unique \
                     in a lakehouse (they name its runs' rows and selections), so rename one of \
                     the two"
                ),
            );
        } else if last
            .as_deref()
            .is_some_and(|name| name.starts_with(|c: char| c.is_ascii_uppercase()))
        {
            // Pipelines are functions, named in snake_case; a CamelCase name is a type.
            errors.spanned(
                dep,
                format!(
                    "`{}` looks like a table: `depends_on` lists the pipeline functions that write \
                     this pipeline's inputs (the `#[pipeline]` fn returning `Frame<{}>`)",
                    last.as_deref().unwrap_or_default(),
                    last.as_deref().unwrap_or_default()
                ),
            );
        } else if let Some((name, earlier)) = last
            .as_ref()
            .and_then(|name| seen.iter().find(|(seen, _)| seen == name))
        {
            let written = text.replace(' ', "");
            let message = if *earlier == written {
                format!("`{written}` is listed twice in `depends_on` (pipeline `{name}`)")
            } else {
                // Two paths to one name: one pipeline listed twice, or two pipelines the
                // registry would refuse (pipeline names are unique).
                format!(
                    "`{earlier}` and `{written}` both name a pipeline `{name}`: pipeline names are \
                     unique in a registry, so they are one pipeline listed twice, or two that \
                     need distinct names"
                )
            };
            errors.spanned(dep, message);
        } else if let Some(name) = last {
            seen.push((name, text.replace(' ', "")));
        }
    }

    let retries = args
        .retries
        .as_ref()
        .and_then(|lit| match lit.base10_parse::<u32>() {
            Ok(n) if n <= 100 => Some(n),
            _ => {
                errors.spanned(
                    lit,
                    "`retries` is a number of extra attempts, from 0 to 100",
                );
                None
            }
        });
    let timeout_ms = args
        .timeout
        .as_ref()
        .and_then(|lit| match parse_duration_ms(&lit.value()) {
            Some(ms) if ms > 0 => Some(ms),
            _ => {
                errors.spanned(
                    lit,
                    "`timeout` is a duration in `ms`, `s`, `m`, `h` or `d`, such as \"90s\", \"5m\", \"1h30m\" or \"500ms\"",
                );
                None
            }
        });
    let tags: Vec<String> = args
        .tags
        .iter()
        .map(|t| checked_tag(t, &mut errors))
        .collect();
    for (index, tag) in args.tags.iter().enumerate() {
        if tags[..index].contains(&tags[index]) {
            errors.spanned(tag, format!("tag `{}` is given twice", tags[index]));
        }
    }

    errors.finish()?;
    let output = output.ok_or_else(|| syn::Error::new(output_span, "missing output"))?;
    Ok(PipelineModel {
        doc: doc_comment(&item.attrs),
        item,
        deps: args.depends_on,
        params,
        output,
        output_span,
        retries,
        timeout_ms,
        tags,
        full_snapshot: args.full_snapshot,
    })
}

fn checked_tag(tag: &LitStr, errors: &mut Errors) -> String {
    let value = tag.value();
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !ok {
        errors.spanned(tag, "a tag uses lowercase letters, digits, `_` and `-`");
    }
    value
}

/// Whether `attr` may remove the parameter it is on: `#[cfg(..)]`, or a `#[cfg_attr(..)]`
/// that applies one.
fn removes_the_parameter(attr: &syn::Attribute) -> bool {
    if attr.path().is_ident("cfg") {
        return true;
    }
    if !attr.path().is_ident("cfg_attr") {
        return false;
    }
    let parsed = attr.parse_args_with(
        syn::punctuated::Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated,
    );
    // Unparsable: rustc reports it; assume the worst meanwhile.
    parsed.map_or(true, |metas| {
        metas.iter().skip(1).any(|meta| meta.path().is_ident("cfg"))
    })
}

/// `"1h30m"`, `"90s"`, `"500ms"` → milliseconds.
pub(crate) fn parse_duration_ms(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let factor = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(number.checked_mul(factor)?)?;
    }
    Some(total)
}

/// The `E` of `Result<Frame<T>, E>`, if the result names one that is plainly not the
/// runtime's `Error` (a path ending in `Error` may be it, or an alias of it: rustc tells).
fn result_error_type(ty: &Type) -> Option<&GenericArgument> {
    let Type::Path(path) = peeled(ty) else {
        return None;
    };
    let segment = path.path.segments.last()?;
    let PathArguments::AngleBracketed(args) = &segment.arguments else {
        return None;
    };
    let error = (segment.ident == "Result").then(|| args.args.iter().nth(1))??;
    let may_be_ours = matches!(
        error,
        GenericArgument::Type(Type::Path(error)) if error.path.segments.last().is_some_and(|s| s.ident == "Error")
    );
    (!may_be_ours).then_some(error)
}

/// Whether `ty` is `Result<Frame<T>, ..>` (any path ending in `Result`).
fn returns_result(ty: &Type) -> bool {
    let Type::Path(path) = peeled(ty) else {
        return false;
    };
    let Some(segment) = path.path.segments.last() else {
        return false;
    };
    let PathArguments::AngleBracketed(args) = &segment.arguments else {
        return false;
    };
    segment.ident == "Result"
        && matches!(args.args.first(), Some(GenericArgument::Type(inner)) if frame_like(inner, &["Frame"]).is_some())
}

/// Whether `ty` may name the context: `Ctx`, or a path that could be an alias of it (or a
/// macro's `$t:ty`); not `[T]`, a tuple, a primitive or a common std type such as `str`,
/// `String` or `Vec<T>`.
fn could_be_ctx(ty: &Type) -> bool {
    const NOT_CTX: &[&str] = &[
        "str", "String", "bool", "char", "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16",
        "u32", "u64", "u128", "usize", "f32", "f64", "Vec", "Option", "HashMap", "BTreeMap",
        "HashSet", "Path", "PathBuf", "Settings",
    ];
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|s| !NOT_CTX.iter().any(|n| s.ident == n)),
        Type::Group(group) => could_be_ctx(&group.elem),
        _ => false,
    }
}

/// `ty` without the invisible group a `macro_rules!` `$t:ty` wraps it in, or parentheses: a
/// pipeline written by a declarative macro has the same signature as one written out.
fn peeled(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => peeled(&group.elem),
        Type::Paren(paren) => peeled(&paren.elem),
        ty => ty,
    }
}

/// `Frame<T>` (or another wrapper named in `names`) → `T`.
pub(crate) fn frame_like<'a>(ty: &'a Type, names: &[&str]) -> Option<&'a Type> {
    let Type::Path(path) = peeled(ty) else {
        return None;
    };
    let segment = path.path.segments.last()?;
    if !names.iter().any(|n| segment.ident == n) {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &segment.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(inner) => Some(inner),
        _ => None,
    }
}

/// Finds the `T` of `Frame<T>` anywhere in `Result<Frame<T>>`.
pub(crate) fn find_frame(ty: &Type) -> Option<&Type> {
    if let Some(table) = frame_like(ty, &["Frame"]) {
        return Some(table);
    }
    let Type::Path(path) = peeled(ty) else {
        return None;
    };
    let PathArguments::AngleBracketed(args) = &path.path.segments.last()?.arguments else {
        return None;
    };
    args.args.iter().find_map(|arg| match arg {
        GenericArgument::Type(inner) => find_frame(inner),
        _ => None,
    })
}
