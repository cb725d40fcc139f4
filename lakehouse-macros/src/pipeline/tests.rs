//! Unit tests of `#[pipeline]` on token streams: parsing, validation and the generated items.

use quote::quote;

use super::expand;
use super::parse::parse_args;
use super::validate::{Param, parse_duration_ms, validate};

fn model(
    args: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<super::validate::PipelineModel> {
    let mut errors = crate::errors::Errors::default();
    let args = parse_args(args, &mut errors)?;
    validate(args, syn::parse2(item)?, errors)
}

fn error_text(args: proc_macro2::TokenStream, item: proc_macro2::TokenStream) -> String {
    match model(args, item) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e
            .into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

#[test]
fn parses_every_argument() {
    let mut errors = crate::errors::Errors::default();
    let args = parse_args(
        quote!(
            depends_on = [a, m::b],
            retries = 3,
            timeout = "1h30m",
            tags = ["x", "y-z"]
        ),
        &mut errors,
    )
    .unwrap();
    assert!(errors.finish().is_ok());
    assert_eq!(args.depends_on.len(), 2);
    assert_eq!(args.retries.unwrap().base10_parse::<u32>().unwrap(), 3);
    assert_eq!(args.timeout.unwrap().value(), "1h30m");
    assert_eq!(args.tags.len(), 2);
}

#[test]
fn rejects_unknown_and_repeated_arguments() {
    let err = error_text(
        quote!(dependson = [a]),
        quote!(
            async fn b() {}
        ),
    );
    assert!(
        err.contains("unknown `pipeline` argument `dependson`; did you mean `depends_on`?"),
        "{err}"
    );
    let err = error_text(
        quote!(retries = 1, retries = 2),
        quote!(
            async fn b() {}
        ),
    );
    assert!(err.contains("`retries` is given twice"), "{err}");
}

#[test]
fn reports_argument_and_signature_mistakes_at_once() {
    // Four mistakes: before, only the first was reported.
    let err = error_text(
        quote!(depnds_on = [x], retries = 1000, tgas("x")),
        quote!(
            pub fn b(v: Vec<i64>) -> Result<Frame<B>> {
                todo!()
            }
        ),
    );
    for expected in [
        "unknown `pipeline` argument `depnds_on`; did you mean `depends_on`?",
        "`retries` is a number of extra attempts, from 0 to 100",
        "unknown `pipeline` argument `tgas`",
        "a pipeline is an `async fn`",
        "pipeline parameters are `Frame<Table>`",
    ] {
        assert!(err.contains(expected), "{expected}\n--\n{err}");
    }
}

#[test]
fn a_malformed_value_is_reported_with_the_other_mistakes() {
    // Before, the first malformed value was the only error: the one after it, and the
    // signature's, came one build at a time.
    let err = error_text(
        quote!(
            depends_on = sales,
            retries = "3",
            full_snapshot = true,
            tags = ["x"]
        ),
        quote!(
            pub fn b(v: Vec<i64>) -> Result<Frame<B>> {
                todo!()
            }
        ),
    );
    for expected in [
        "`depends_on` takes a list of upstream pipeline functions",
        "`retries` takes a number of extra attempts: `retries = 3`",
        "`full_snapshot` takes no value: write it alone",
        "a pipeline is an `async fn`",
        "pipeline parameters are `Frame<Table>`",
    ] {
        assert!(err.contains(expected), "{expected}\n--\n{err}");
    }
}

#[test]
fn a_signature_written_by_a_declarative_macro_reads_the_same() {
    // `$t:ty` fragments reach the attribute wrapped in invisible groups.
    let group = |tokens: proc_macro2::TokenStream| {
        proc_macro2::TokenTree::Group(proc_macro2::Group::new(
            proc_macro2::Delimiter::None,
            tokens,
        ))
    };
    let (input, ctx, output) = (
        group(quote!(Frame<A>)),
        group(quote!(Ctx)),
        group(quote!(Result<Frame<C>>)),
    );
    let m = model(
        quote!(depends_on = [a]),
        quote!(
            async fn c(x: #input, cx: &#ctx) -> #output {
                todo!()
            }
        ),
    )
    .expect("the same signature as one written out");
    assert_eq!(m.params.len(), 2);
    assert!(matches!(m.params[0], Param::Input(_)));
    let output = &m.output;
    assert_eq!(quote!(#output).to_string(), "C");
}

#[test]
fn classifies_parameters_and_finds_the_output() {
    let m = model(
        quote!(depends_on = [a, b]),
        quote!(
            async fn c(x: Frame<A>, cx: &Ctx, y: Changes<B>) -> Result<Frame<C>> {
                todo!()
            }
        ),
    )
    .unwrap();
    let kinds: Vec<&str> = m
        .params
        .iter()
        .map(|p| match p {
            Param::Input(_) => "input",
            Param::Ctx(_) => "ctx",
        })
        .collect();
    assert_eq!(kinds, ["input", "ctx", "input"]);
    let output = &m.output;
    assert_eq!(quote!(#output).to_string(), "C");
}

#[test]
fn two_paths_to_one_pipeline_name_are_told_as_such() {
    let text = error_text(
        quote!(depends_on = [erp::load, crm::load]),
        quote!(
            async fn c(cx: &Ctx) -> Result<Frame<C>> {
                todo!()
            }
        ),
    );
    assert!(
        text.contains(
            "`erp::load` and `crm::load` both name a pipeline `load`: pipeline names are unique"
        ),
        "{text}"
    );
}

#[test]
fn reports_every_signature_error_at_once() {
    let text = error_text(
        quote!(depends_on = [d, d, e]),
        quote!(
            fn e<T>(x: Vec<i64>, a: &Ctx, b: &Ctx) {}
        ),
    );
    for expected in [
        "a pipeline cannot be generic",
        "pipeline parameters are `Frame<Table>`",
        "`&Ctx` is given twice",
        "add the return type",
        "`d` is listed twice in `depends_on`",
        "a pipeline cannot depend on itself",
        "a pipeline is an `async fn`",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn a_dependency_of_the_same_name_in_another_module_is_told_as_a_name_clash() {
    let text = error_text(
        quote!(depends_on = [bronze::sales]),
        quote!(
            async fn sales(raw: Frame<A>) -> Result<Frame<B>> {
                todo!()
            }
        ),
    );
    assert!(
        text.contains(
            "`bronze::sales` has this pipeline's name, `sales`: pipeline names are unique"
        ),
        "{text}"
    );
    assert!(!text.contains("cannot depend on itself"), "{text}");
    for (path, said) in [
        (quote!(self::sales), "a pipeline cannot depend on itself"),
        (
            quote!(crate::silver::sales),
            "`crate::silver::sales` names this pipeline, or another of its name",
        ),
        (
            quote!(super::sales),
            "`super::sales` names this pipeline, or another of its name",
        ),
    ] {
        let text = error_text(
            quote!(depends_on = [#path]),
            quote!(
                async fn sales(raw: Frame<A>) -> Result<Frame<B>> {
                    todo!()
                }
            ),
        );
        assert!(text.contains(said), "{text}");
    }
}

#[test]
fn a_lifetime_parameter_is_refused_with_what_to_write() {
    let text = error_text(
        quote!(),
        quote!(
            async fn a<'a>(cx: &'a Ctx) -> Result<Frame<A>> {
                todo!()
            }
        ),
    );
    assert!(
        text.contains("a pipeline takes no lifetime parameters: write `cx: &Ctx`"),
        "{text}"
    );
    assert!(!text.contains("cannot be generic"), "{text}");
}

#[test]
fn validates_retries_timeout_and_tags() {
    let text = error_text(
        quote!(
            retries = 1000,
            timeout = "soon",
            tags = ["Bad Tag", "erp", "erp"]
        ),
        quote!(
            async fn a() -> Result<Frame<A>> {
                todo!()
            }
        ),
    );
    assert!(
        text.contains("`retries` is a number of extra attempts"),
        "{text}"
    );
    assert!(text.contains("`timeout` is a duration"), "{text}");
    assert!(text.contains("a tag uses lowercase letters"), "{text}");
    assert!(text.contains("tag `erp` is given twice"), "{text}");
}

#[test]
fn durations() {
    assert_eq!(parse_duration_ms("90s"), Some(90_000));
    assert_eq!(parse_duration_ms("1h30m"), Some(5_400_000));
    assert_eq!(parse_duration_ms("250ms"), Some(250));
    assert_eq!(parse_duration_ms("1d"), Some(86_400_000));
    assert_eq!(parse_duration_ms("5"), None);
    assert_eq!(parse_duration_ms("5 minutes"), None);
    assert_eq!(parse_duration_ms(""), None);
}

#[test]
fn generates_the_graph_facts_and_the_registration() {
    let out = expand(
        quote!(depends_on = [a, crate::m::b]),
        quote!(
            pub async fn c(x: Frame<A>) -> Result<Frame<C>> {
                todo!()
            }
        ),
    )
    .to_string();
    for expected in [
        "pub mod c",
        "use self :: a :: { self as __c_dependency_0__declare_pipelines_at_module_level_not_in_a_fn } ;",
        "use crate :: m :: b :: { self as __c_dependency_1__declare_pipelines_at_module_level_not_in_a_fn } ;",
        "pub const LEVEL : :: core :: primitive :: usize = 1 + :: lakehouse_runtime :: __private :: max_level (& [super :: __c_dependency_0__declare_pipelines_at_module_level_not_in_a_fn :: LEVEL , super :: __c_dependency_1__declare_pipelines_at_module_level_not_in_a_fn :: LEVEL])",
        "impl :: lakehouse_runtime :: __private :: Produced for C",
        "impl :: lakehouse_runtime :: __private :: DependsOn < __c_dependency_0__declare_pipelines_at_module_level_not_in_a_fn :: Marker > for c :: Marker",
        "inventory :: submit !",
        "depends_on : & [__c_dependency_0__declare_pipelines_at_module_level_not_in_a_fn :: NAME , __c_dependency_1__declare_pipelines_at_module_level_not_in_a_fn :: NAME]",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

#[test]
fn a_source_has_level_zero() {
    let out = expand(
        quote!(),
        quote!(
            async fn s(cx: &Ctx) -> Result<Frame<S>> {
                todo!()
            }
        ),
    )
    .to_string();
    assert!(
        out.contains("pub const LEVEL : :: core :: primitive :: usize = 0"),
        "{out}"
    );
}

#[test]
fn an_error_keeps_the_function_and_emits_a_dummy() {
    let out = expand(
        quote!(depends_on = [x, x]),
        quote!(
            async fn y() -> Result<Frame<Y>> {
                todo!()
            }
        ),
    )
    .to_string();
    assert!(out.contains("compile_error !"), "{out}");
    assert!(
        out.contains("async fn y ()"),
        "the user's function is kept: {out}"
    );
    assert!(out.contains("mod y"), "a dummy module is emitted: {out}");
    assert!(
        out.contains("impl :: lakehouse_runtime :: __private :: Produced for Y"),
        "{out}"
    );
}

#[test]
fn not_a_function() {
    let out = expand(
        quote!(),
        quote!(
            struct S;
        ),
    )
    .to_string();
    assert!(out.contains("`#[pipeline]` goes on an `async fn`"), "{out}");
}

#[test]
fn inputs_are_by_value_and_never_the_output() {
    let text = error_text(
        quote!(depends_on = [a]),
        quote!(
            async fn b(x: &Frame<A>, own: Changes<B>, cx: &Ctx) -> Result<Frame<B>> {
                todo!()
            }
        ),
    );
    for expected in [
        "inputs are taken by value: write `Frame<A>`, without `&`",
        "a pipeline cannot read the table it writes (`B`)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("given twice"), "{text}");
}

#[test]
fn a_pipeline_is_named_in_snake_case() {
    let text = error_text(
        quote!(),
        quote!(
            async fn SapOrders() -> Result<Frame<A>> {
                todo!()
            }
        ),
    );
    assert!(text.contains("a pipeline is named in snake_case"), "{text}");
}

#[test]
fn the_context_may_be_named_by_an_alias_but_not_borrowed_mutably() {
    let aliased = model(
        quote!(depends_on = [a]),
        quote!(
            async fn p(raw: Frame<A>, cx: &Context) -> Result<Frame<B>> {}
        ),
    )
    .expect("an alias of Ctx is a context");
    assert!(matches!(
        aliased.params.as_slice(),
        [Param::Input(_), Param::Ctx(_)]
    ));
    let text = error_text(
        quote!(depends_on = [a]),
        quote!(
            async fn p(raw: Frame<A>, cx: &mut Ctx) -> Frame<B> {}
        ),
    );
    assert!(text.contains("write `&Ctx`, without `mut`"), "{text}");
    assert!(
        text.contains("a pipeline returns `Result<Frame<B>>`"),
        "{text}"
    );
    // References to what is plainly not the context are refused on the parameter.
    let others = error_text(
        quote!(depends_on = [a]),
        quote!(
            async fn p(
                raw: Frame<A>,
                cx: &Ctx,
                name: &str,
                rows: &mut Vec<i64>,
            ) -> Result<Frame<B>> {
            }
        ),
    );
    assert_eq!(
        others
            .matches("pipeline parameters are `Frame<Table>`")
            .count(),
        2,
        "{others}"
    );
    assert!(
        !others.contains("given twice") && !others.contains("without `mut`"),
        "{others}"
    );
}

#[test]
fn the_runtime_error_type_may_be_named_and_cfg_attr_may_stay() {
    for output in [
        quote!(Result<Frame<B>, Error>),
        quote!(std::result::Result<Frame<B>, lakehouse_runtime::Error>),
    ] {
        model(
            quote!(),
            quote!(
                async fn b(_cx: &Ctx) -> #output {
                    todo!()
                }
            ),
        )
        .unwrap_or_else(|e| panic!("{output}: {e}"));
    }
    let err = error_text(
        quote!(),
        quote!(
            async fn b(_cx: &Ctx) -> Result<Frame<B>, String> {
                todo!()
            }
        ),
    );
    assert!(
        err.contains("whose error is `lakehouse_runtime::Error`"),
        "{err}"
    );
    model(
        quote!(),
        quote!(
            async fn b(#[cfg_attr(test, allow(unused))] _cx: &Ctx) -> Result<Frame<B>> {
                todo!()
            }
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let err = error_text(
        quote!(),
        quote!(
            async fn b(#[cfg_attr(test, cfg(any()))] _cx: &Ctx) -> Result<Frame<B>> {
                todo!()
            }
        ),
    );
    assert!(err.contains("cannot be conditional"), "{err}");
}

#[test]
fn a_second_pipeline_attribute_is_one_clear_error() {
    let out = expand(
        quote!(depends_on = [a]),
        quote!(
            #[pipeline(retries = 3)]
            pub async fn b(x: Frame<A>) -> Result<Frame<B>> {
                todo!()
            }
        ),
    )
    .to_string();
    assert!(
        out.contains("`#[pipeline]` is given twice: put every argument in one"),
        "{out}"
    );
    // The function is kept once, without the attribute that would expand it again.
    assert_eq!(out.matches("async fn b").count(), 1, "{out}");
    assert!(!out.contains("# [pipeline"), "{out}");
}

#[test]
fn a_malformed_value_says_how_it_is_written() {
    for (args, expected) in [
        (
            quote!(depends_on = a),
            "`depends_on` takes a list of upstream pipeline functions",
        ),
        (quote!(tags = "erp"), "`tags` takes a list of texts"),
        (
            quote!(retries = "3"),
            "`retries` takes a number of extra attempts",
        ),
        (quote!(timeout = 300), "`timeout` takes a duration as text"),
        (
            quote!(full_snapshot = true),
            "`full_snapshot` takes no value: write it alone",
        ),
    ] {
        let text = error_text(
            args.clone(),
            quote!(
                async fn a(cx: &Ctx) -> Result<Frame<A>> {
                    todo!()
                }
            ),
        );
        assert!(text.contains(expected), "{args}: {text}");
    }
}
