//! Tokens → `PipelineArgs`: the arguments of `#[pipeline(..)]` as written.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Ident, LitInt, LitStr, Path, Token};

use crate::attr::{skip_rest, skip_value};
use crate::errors::Errors;

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

/// The arguments as written. A mistake (an unknown key, a key given twice, a malformed value)
/// is recorded in `errors` and parsing goes on, so that it is reported with the other keys' and
/// the signature's mistakes (any mistake makes the expansion a stand-in, without the graph's
/// checks, which a misread `depends_on` would fail).
pub(crate) fn parse_args(args: TokenStream, errors: &mut Errors) -> syn::Result<PipelineArgs> {
    let mut out = PipelineArgs::default();
    let mut seen: Vec<Ident> = Vec::new();
    let parser = syn::meta::parser(|meta| {
        let Some(key) = meta.path.get_ident().cloned() else {
            errors.push(meta.error(format!("unknown `pipeline` argument; expected {KEYS}")));
            return skip_value(&meta);
        };
        if seen.contains(&key) {
            errors.push(meta.error(format!("`{key}` is given twice")));
            return skip_value(&meta);
        }
        // A value that does not read is reported, and the arguments after it are still read.
        macro_rules! value {
            ($result:expr, $how:expr) => {
                match $result {
                    Ok(value) => value,
                    Err(error) => {
                        errors.push(expected(error, $how));
                        seen.push(key);
                        return skip_rest(&meta);
                    }
                }
            };
        }
        match key.to_string().as_str() {
            "depends_on" => {
                let how = "`depends_on` takes a list of upstream pipeline functions: \
                           `depends_on = [silver_sales, dim_customer]`";
                let parsed = (|| {
                    let content;
                    let value = meta.value()?;
                    syn::bracketed!(content in value);
                    Punctuated::<Path, Token![,]>::parse_terminated(&content)
                })();
                out.depends_on = value!(parsed, how).into_iter().collect();
            }
            "retries" => {
                let how = "`retries` takes a number of extra attempts: `retries = 3`";
                let value = meta.value().and_then(|value| value.parse());
                out.retries = Some(value!(value, how));
            }
            // The output is the complete current set of rows: keys it lacks are deleted (merge)
            // or closed (SCD2).
            "full_snapshot" => {
                if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
                    errors.push(meta.error("`full_snapshot` takes no value: write it alone"));
                    seen.push(key);
                    return skip_rest(&meta);
                }
                out.full_snapshot = true;
            }
            "timeout" => {
                let how = "`timeout` takes a duration as text: `timeout = \"5m\"`";
                let value = meta.value().and_then(|value| value.parse());
                out.timeout = Some(value!(value, how));
            }
            "tags" => {
                let how = "`tags` takes a list of texts: `tags = [\"erp\", \"daily\"]`";
                let parsed = (|| {
                    let content;
                    let value = meta.value()?;
                    syn::bracketed!(content in value);
                    Punctuated::<LitStr, Token![,]>::parse_terminated(&content)
                })();
                out.tags = value!(parsed, how).into_iter().collect();
            }
            other => {
                let names = ["depends_on", "retries", "timeout", "tags", "full_snapshot"]
                    .map(str::to_owned);
                let hint = crate::table::validate::closest(other, &names)
                    .map(|close| format!("did you mean `{close}`? "))
                    .unwrap_or_default();
                errors.push(meta.error(format!(
                    "unknown `pipeline` argument `{key}`; {hint}expected {KEYS}"
                )));
                return skip_value(&meta);
            }
        }
        seen.push(key);
        Ok(())
    });
    parser.parse2(args)?;
    Ok(out)
}

/// `error` (where a value does not parse), saying how the value is written.
fn expected(error: syn::Error, how: &str) -> syn::Error {
    syn::Error::new(error.span(), how)
}
