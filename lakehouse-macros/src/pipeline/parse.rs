//! Tokens → `PipelineArgs`: the arguments of `#[pipeline(..)]` as written.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Ident, LitInt, LitStr, Path, Token};

/// The arguments of `#[pipeline(..)]`.
#[derive(Default)]
pub(crate) struct PipelineArgs {
    pub depends_on: Vec<Path>,
    pub retries: Option<LitInt>,
    pub timeout: Option<LitStr>,
    pub tags: Vec<LitStr>,
    pub full_snapshot: bool,
}

const KEYS: &str =
    "`depends_on = [..]`, `retries = N`, `timeout = \"5m\"`, `tags = [\"..\"]` or `full_snapshot`";

pub(crate) fn parse_args(args: TokenStream) -> syn::Result<PipelineArgs> {
    let mut out = PipelineArgs::default();
    let mut seen: Vec<Ident> = Vec::new();
    let parser = syn::meta::parser(|meta| {
        let Some(key) = meta.path.get_ident().cloned() else {
            return Err(meta.error(format!("unknown `pipeline` argument; expected {KEYS}")));
        };
        if seen.contains(&key) {
            return Err(meta.error(format!("`{key}` is given twice")));
        }
        match key.to_string().as_str() {
            "depends_on" => {
                let content;
                let value = meta.value()?;
                syn::bracketed!(content in value);
                out.depends_on = Punctuated::<Path, Token![,]>::parse_terminated(&content)?
                    .into_iter()
                    .collect();
            }
            "retries" => out.retries = Some(meta.value()?.parse()?),
            // The output is the complete current set of rows: keys it lacks are deleted (merge)
            // or closed (SCD2).
            "full_snapshot" => out.full_snapshot = true,
            "timeout" => out.timeout = Some(meta.value()?.parse()?),
            "tags" => {
                let content;
                let value = meta.value()?;
                syn::bracketed!(content in value);
                out.tags = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?
                    .into_iter()
                    .collect();
            }
            other => {
                let names = ["depends_on", "retries", "timeout", "tags", "full_snapshot"]
                    .map(str::to_owned);
                let hint = crate::table::validate::closest(other, &names)
                    .map(|close| format!("did you mean `{close}`? "))
                    .unwrap_or_default();
                return Err(meta.error(format!(
                    "unknown `pipeline` argument `{key}`; {hint}expected {KEYS}"
                )));
            }
        }
        seen.push(key);
        Ok(())
    });
    parser.parse2(args)?;
    Ok(out)
}
