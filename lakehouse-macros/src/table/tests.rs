//! Unit tests of `#[derive(Table)]` on token streams: parsing, validation and the generated items.

use quote::quote;

use super::validate::{Evolution, Mode, OverwriteScope, TableModel, snake_case};
use super::{expand, parse, validate};

fn model(input: proc_macro2::TokenStream) -> syn::Result<TableModel> {
    validate::validate(parse::parse(syn::parse2(input)?))
}

fn error_text(input: proc_macro2::TokenStream) -> String {
    match model(input) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e
            .into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

#[test]
fn parses_a_complete_table() {
    let m = model(quote! {
        /// Sales.
        #[table(schema = "silver", name = "sales", key(order_id, line), partition_by(day),
                mode = merge, evolution = keep, z_order(customer), target_file_size = 1048576,
                check(name = "positive", expr = "qty > 0"),
                property(key = "delta.appendOnly", value = "false"))]
        pub struct Sales {
            /// The order.
            pub order_id: i64,
            pub line: i32,
            pub day: Date,
            pub customer: Option<String>,
            pub qty: i32,
        }
    })
    .unwrap();
    assert_eq!(
        (m.schema.as_str(), m.name.as_str(), m.doc.as_str()),
        ("silver", "sales", "Sales.")
    );
    assert_eq!(m.mode, Mode::Merge);
    assert_eq!(m.evolution, Evolution::Keep);
    assert_eq!(m.key, ["order_id", "line"]);
    assert_eq!(m.partition_by, ["day"]);
    assert_eq!(m.z_order, ["customer"]);
    assert_eq!(m.target_file_size, Some(1_048_576));
    assert_eq!(m.checks, [("positive".to_owned(), "qty > 0".to_owned())]);
    assert_eq!(
        m.properties,
        [("delta.appendOnly".to_owned(), "false".to_owned())]
    );
    assert_eq!(m.columns[0].doc, "The order.");
}

#[test]
fn defaults() {
    let m = model(quote! {
        #[table(schema = "bronze")]
        struct RawCrmContacts { id: i64 }
    })
    .unwrap();
    assert_eq!(m.name, "raw_crm_contacts");
    assert_eq!(m.mode, Mode::Append);
    assert_eq!(m.evolution, Evolution::Merge);
    assert_eq!(m.overwrite, OverwriteScope::Table);
    assert!(m.auto_compact);
}

#[test]
fn auto_compaction_can_be_turned_off_with_a_boolean() {
    let m = model(quote! {
        #[table(schema = "bronze", auto_compact = false)]
        struct Events { id: i64 }
    })
    .unwrap();
    assert!(!m.auto_compact);
    let text = error_text(quote! {
        #[table(schema = "bronze", auto_compact = "no")]
        struct Events { id: i64 }
    });
    assert!(text.contains("expected boolean literal"), "{text}");
}

#[test]
fn reports_every_attribute_error_at_once() {
    let text = error_text(quote! {
        #[table(schema = "Silver/..", key(ordr_id, order_id, order_id), partition_by(nope),
                mode = upsert, change_columns(order_id))]
        struct S { order_id: i64, amount: f64 }
    });
    for expected in [
        "invalid schema \"Silver/..\"",
        "`key` names no field of this struct; did you mean `order_id`?",
        "`order_id` is listed twice",
        "`partition_by` names no field",
        "unknown mode `upsert`",
        "a key column cannot be a change column",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // The unknown mode is the mistake, not the `change_columns` a merge table takes.
    assert!(!text.contains("only applies to"), "{text}");
}

#[test]
fn a_value_that_does_not_read_is_reported_with_the_entries_after_it() {
    // Each entry's own mistake, however many; none of the rules that depend on the mode, which
    // did not read (before, the first bad value ended the attribute, and the mode's rules then
    // blamed `evolution` and `change_columns` for the quoted mode).
    let text = error_text(quote! {
        #[table(schema = silver, evolution = overwrite, mode = "overwrite", key(id),
                change_columns(name), quality = 3, freshness = 5, target_file_size = x,
                check(name = "c"), name = "events")]
        struct S { id: i64, name: String }
    });
    for expected in [
        "write `schema = \"silver\"`: the value is a quoted string",
        "write `mode = overwrite`, without quotes",
        "expected identifier",
        "write `freshness = \"5\"`",
        "expected literal",
        "expected `(name = \"..\", expr = \"..\")`",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    for unexpected in ["only applies to", "use it with `mode = overwrite`"] {
        assert!(!text.contains(unexpected), "{unexpected:?} in:\n{text}");
    }
    let errors = text.lines().count();
    assert!(errors >= 6, "each value's mistake is reported:\n{text}");
}

#[test]
fn a_sub_key_given_twice_is_an_error_not_the_last_one_silently() {
    for (attribute, expected) in [
        (
            quote!(expect(
                name = "a",
                expr = "x > 0",
                on_fail = drop,
                on_fail = fail
            )),
            "`on_fail` is given twice",
        ),
        (
            quote!(check(name = "b", name = "c", expr = "x > 0")),
            "`name` is given twice",
        ),
        (
            quote!(property(
                key = "delta.appendOnly",
                value = "true",
                value = "false"
            )),
            "`value` is given twice",
        ),
    ] {
        let text = error_text(quote! {
            #[table(schema = "silver", #attribute)]
            struct S { x: i64 }
        });
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn a_delta_property_value_delta_cannot_read_is_refused_naming_its_form() {
    for (key, value, form) in [
        (
            "delta.deletedFileRetentionDuration",
            "30 days",
            "write `interval <n> <unit>`",
        ),
        (
            "delta.logRetentionDuration",
            "interval 1 month",
            "months are not allowed",
        ),
        (
            "delta.enableChangeDataFeed",
            "yes",
            "write `true` or `false`",
        ),
        ("delta.appendOnly", "1", "write `true` or `false`"),
        (
            "delta.minWriterVersion",
            "8",
            "a writer version from 2 to 7",
        ),
        ("delta.targetFileSize", "128mb", "a whole number above 0"),
        ("delta.checkpointInterval", "0", "a whole number above 0"),
        ("delta.isolationLevel", "serializable", "`Serializable`"),
    ] {
        let text = error_text(quote! {
            #[table(schema = "silver", mode = append, property(key = #key, value = #value))]
            struct S { x: i64 }
        });
        assert!(
            text.contains(&format!("`{key}` = {value:?} is a value Delta cannot read"))
                && text.contains(form),
            "{key} = {value}: {text}"
        );
    }
    // What it reads passes.
    for (key, value) in [
        ("delta.deletedFileRetentionDuration", "interval 30 days"),
        ("delta.logRetentionDuration", "interval 1 week"),
        ("delta.enableChangeDataFeed", "true"),
        ("delta.dataSkippingNumIndexedCols", "-1"),
        ("delta.minWriterVersion", "7"),
        ("delta.checkpointPolicy", "v2"),
    ] {
        let parsed = model(quote! {
            #[table(schema = "silver", mode = append, property(key = #key, value = #value))]
            struct S { x: i64 }
        });
        assert!(parsed.is_ok(), "{key} = {value}");
    }
}

#[test]
fn a_table_partitioned_by_every_column_is_refused() {
    let text = error_text(quote! {
        #[table(schema = "silver", mode = append, partition_by(region, day))]
        struct S { region: String, day: Date }
    });
    assert!(
        text.contains("a table partitioned by every one of its columns keeps no column"),
        "{text}"
    );
    assert!(
        model(quote! {
            #[table(schema = "silver", mode = append, partition_by(region))]
            struct S { region: String, n: i64 }
        })
        .is_ok()
    );
}

#[test]
fn a_delta_boolean_property_is_lowercase() {
    let text = error_text(quote! {
        #[table(schema = "silver", property(key = "delta.enableChangeDataFeed", value = "True"))]
        struct S { x: i64 }
    });
    assert!(
        text.contains("write `true`: Delta reads this property's value in lowercase only"),
        "{text}"
    );
    let text = error_text(quote! {
        #[table(schema = "silver", evolution = merge,
                property(key = "delta.columnMapping.mode", value = "Name"))]
        struct S { x: i64 }
    });
    assert!(text.contains("write `name`"), "{text}");
}

#[test]
fn merge_and_scd2_need_a_non_null_key() {
    let text = error_text(quote! {
        #[table(schema = "gold", mode = scd2)]
        struct D { id: i64, is_current: bool }
    });
    assert!(text.contains("need `key(..)`"), "{text}");
    assert!(
        text.contains("`is_current` is added by `mode = scd2`"),
        "{text}"
    );
    let text = error_text(quote! {
        #[table(schema = "gold", mode = merge, key(id))]
        struct D { id: Option<i64> }
    });
    assert!(
        text.contains("key column `id` cannot be `Option<_>`"),
        "{text}"
    );
}

#[test]
fn a_key_without_a_mode_is_refused_and_an_explicit_append_is_not() {
    let text = error_text(quote! {
        #[table(schema = "gold", key(id))]
        struct D { id: i64 }
    });
    assert!(
        text.contains("a table with `key(..)` and no `mode` appends every row"),
        "{text}"
    );
    let append = model(quote! {
        #[table(schema = "gold", key(id), mode = append)]
        struct D { id: i64 }
    });
    assert!(
        append.is_ok(),
        "an append table may declare the key it deletes by"
    );
}

#[test]
fn quoted_words_and_twice_declared_checks_are_refused() {
    let text = error_text(quote! {
        #[table(schema = "gold", key(id), mode = "merge")]
        struct D { id: i64 }
    });
    assert!(
        text.contains("write `mode = merge`, without quotes"),
        "{text}"
    );
    let text = error_text(quote! {
        #[table(schema = "gold", expect(name = "e", expr = "id > 0", on_fail = "drop"))]
        struct D { id: i64 }
    });
    assert!(
        text.contains("write `on_fail = drop`, without quotes"),
        "{text}"
    );
    let text = error_text(quote! {
        #[table(schema = "gold", check(name = "positive", expr = "qty > 0"),
                check(name = "positive", expr = "price > 0"))]
        struct D { qty: i64, price: i64 }
    });
    assert!(
        text.contains("check `positive` is declared twice"),
        "{text}"
    );
    let text = error_text(quote! {
        #[table(schema = "gold", mode = overwrite, evolution = overwrite,
                check(name = "positive", expr = "qty > 0"))]
        struct D { qty: i64 }
    });
    assert!(
        text.contains("`check(..)` constraints are kept in step with the declaration"),
        "{text}"
    );
}

#[test]
fn rejects_non_structs_generics_and_missing_schema() {
    assert!(
        error_text(quote!(
            #[table(schema = "a")]
            enum E {
                A,
            }
        ))
        .contains("only supports structs")
    );
    assert!(
        error_text(quote!(
            #[table(schema = "a")]
            struct T(i64);
        ))
        .contains("named fields")
    );
    assert!(
        error_text(quote!(
            #[table(schema = "a")]
            struct T<X> {
                x: X,
            }
        ))
        .contains("cannot be generic")
    );
    assert!(
        error_text(quote!(
            struct T {
                x: i64,
            }
        ))
        .contains("missing `#[table(schema")
    );
    assert!(
        error_text(quote!(
            #[table(schema = "a", colour = "red")]
            struct T {
                x: i64,
            }
        ))
        .contains("unknown `table` attribute `colour`")
    );
}

#[test]
fn generates_handles_select_struct_and_scd2_columns() {
    let out = expand(quote! {
        #[table(schema = "gold", key(id), mode = scd2)]
        pub struct Dim { pub id: String, pub name: Option<String> }
    })
    .to_string();
    for expected in [
        "impl :: lakehouse_runtime :: __private :: Table for Dim",
        "pub const id : :: lakehouse_runtime :: __private :: Col < Dim , String >",
        "pub const valid_from",
        "pub const is_current",
        "pub struct DimSelect < id , name >",
        "id : :: lakehouse_runtime :: __private :: IntoColumn < String >",
        "SelectFor < Dim > for DimSelect < id , name >",
        "ColumnDef :: system (\"valid_to\"",
        "WriteMode :: Scd2",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

#[test]
fn select_type_parameters_avoid_type_names() {
    let out = expand(quote! {
        #[table(schema = "a")]
        pub struct T { pub bool: bool, pub x: Option<bool> }
    })
    .to_string();
    assert!(out.contains("pub struct TSelect < bool_ , x >"), "{out}");
}

#[test]
fn references_are_type_checked_in_dead_code() {
    let out = expand(quote! {
        #[table(schema = "gold")]
        pub struct Fact { #[column(references = DimCustomer::customer_key)] pub customer_key: Option<String> }
    })
    .to_string();
    assert!(out.contains("let _ : :: lakehouse_runtime :: __private :: Col < DimCustomer , < Option < String > as :: lakehouse_runtime :: __private :: ColumnType > :: NonNull > = :: lakehouse_runtime :: __private :: non_null (DimCustomer :: customer_key)"), "{out}");
}

#[test]
fn snake_case_names() {
    assert_eq!(snake_case("DimCustomer"), "dim_customer");
    assert_eq!(snake_case("Sales"), "sales");
    assert_eq!(snake_case("HTTPLogs"), "http_logs");
    assert_eq!(snake_case("DimUS"), "dim_us");
    assert_eq!(snake_case("Top10Sales"), "top10_sales");
    assert_eq!(snake_case("Sales2024"), "sales2024");
    assert_eq!(snake_case("ABTest"), "ab_test");
}

#[test]
fn a_struct_name_with_unclear_words_needs_a_table_name() {
    for (declaration, suggested) in [
        (
            quote!(
                pub struct HTTPLogs {
                    pub id: i64,
                }
            ),
            "http_logs",
        ),
        (
            quote!(
                pub struct Dim_Customer {
                    pub id: i64,
                }
            ),
            "dim_customer",
        ),
    ] {
        let text = error_text(quote! {
            #[table(schema = "silver")]
            #declaration
        });
        assert!(
            text.contains("which make no clear table name")
                && text.contains(&format!("`#[table(name = \"{suggested}\")]`")),
            "{text}"
        );
    }
    // Named, it is fine; so is a name of clear words, digits included.
    for declaration in [
        quote!(
            #[table(schema = "silver", name = "http_logs")]
            pub struct HTTPLogs {
                pub id: i64,
            }
        ),
        quote!(
            #[table(schema = "silver")]
            pub struct Top10Sales {
                pub id: i64,
            }
        ),
    ] {
        let out = expand(declaration).to_string();
        assert!(!out.contains("compile_error"), "{out}");
    }
}

#[test]
fn reports_every_attribute_mistake_at_once() {
    // Four mistakes (two misspelled keys, an unknown key column, a field name): before, the
    // parse stopped at the first.
    let text = error_text(quote! {
        #[table(shcema = "silver", mdoe = merge, key(idd))]
        pub struct A { pub Id: i64 }
    });
    for expected in [
        "unknown `table` attribute `shcema`; did you mean `schema`?",
        "unknown `table` attribute `mdoe`; did you mean `mode`?",
        "`key` names no field of this struct",
        "column `Id` must be lowercase snake_case",
    ] {
        assert!(text.contains(expected), "{expected}\n--\n{text}");
    }
    for cascade in [
        "missing `#[table(schema",
        "a table with `key(..)` and no `mode`",
    ] {
        assert!(!text.contains(cascade), "{text}");
    }
}

#[test]
fn a_fields_mistake_does_not_hide_the_tables_missing_keys() {
    // A misspelled `#[column(..)]` key said nothing of `#[table(..)]`: its missing schema and
    // its key without a mode were only told at the next build.
    let text = error_text(quote! {
        #[table(key(id))]
        pub struct A {
            #[column(refrences = B::id)]
            pub id: i64,
        }
    });
    for expected in [
        "missing `#[table(schema",
        "a table with `key(..)` and no `mode`",
        "unknown `column` attribute",
    ] {
        assert!(text.contains(expected), "{expected}\n--\n{text}");
    }
}

#[test]
fn a_table_has_named_columns() {
    for (declaration, expected) in [
        (
            quote!(
                pub struct A;
            ),
            "a table needs named fields, one per column",
        ),
        (
            quote!(
                pub struct A(i64);
            ),
            "a table needs named fields, one per column",
        ),
        (
            quote!(
                pub struct A {}
            ),
            "a table needs at least one column",
        ),
    ] {
        let text = error_text(quote! {
            #[table(schema = "silver")]
            #declaration
        });
        assert!(text.contains(expected), "{expected}\n--\n{text}");
    }
}

#[test]
fn the_ledgers_schema_is_reserved() {
    let text = error_text(quote! {
        #[table(schema = "lakehouse", name = "runs")]
        pub struct Runs { pub run_id: String }
    });
    assert!(
        text.contains("schema `lakehouse` is reserved for the run ledger's system tables"),
        "{text}"
    );
}

#[test]
fn run_at_is_never_a_change_column() {
    let text = error_text(quote! {
        #[table(schema = "gold", key(id), mode = scd2, change_columns(name, run_at))]
        pub struct Dim { pub id: i64, pub name: Option<String>, pub run_at: Timestamp }
    });
    assert!(
        text.contains("`run_at` holds each run's time, so every row would change"),
        "{text}"
    );
}

#[test]
fn a_misspelled_attribute_gets_a_suggestion() {
    let text = error_text(quote! {
        #[table(shcema = "gold")]
        pub struct Dim { pub id: i64 }
    });
    assert!(
        text.contains("unknown `table` attribute `shcema`; did you mean `schema`?"),
        "{text}"
    );
}

#[test]
fn a_struct_name_that_makes_no_table_name_is_refused() {
    let text = error_text(quote! {
        #[table(schema = "gold")]
        pub struct Données { pub id: i64 }
    });
    assert!(
        text.contains("the table name `données` made from the struct's name is not a valid"),
        "{text}"
    );
}

#[test]
fn an_error_keeps_the_tables_items_so_that_uses_do_not_fail_too() {
    let output = expand(quote! {
        #[table(schema = "Silver")]
        pub struct CleanSales { pub order_id: i64 }
    })
    .to_string();
    assert!(output.contains("compile_error"), "{output}");
    assert!(output.contains("invalid schema"), "{output}");
    assert!(output.contains("CleanSalesSelect"), "{output}");
    assert!(output.contains("order_id"), "{output}");
    // A field's own name refused: the items are still there, with that field.
    let output = expand(quote! {
        #[table(schema = "silver")]
        pub struct Stations { pub stationCode: String, pub name: String }
    })
    .to_string();
    assert!(output.contains("must be lowercase snake_case"), "{output}");
    assert!(output.contains("StationsSelect"), "{output}");
    assert!(output.contains("pub const stationCode"), "{output}");
    // A misspelled SCD2 key: the stand-in is still an SCD2 table, with its validity columns.
    let output = expand(quote! {
        #[table(schema = "gold", mode = scd2, key(custmer_id))]
        pub struct DimCustomer { pub customer_id: String, pub name: Option<String> }
    })
    .to_string();
    assert!(output.contains("`key` names no field"), "{output}");
    assert!(output.contains("pub const is_current"), "{output}");
    assert!(output.contains("pub const valid_from"), "{output}");
    // A merge table's stand-in: its readers of changes compile, and no check of the key it
    // was given in place of the user's (here a float) adds an error.
    let output = expand(quote! {
        #[table(schema = "silver", mode = merge, key(statin),
                property(key = "delta.enableChangeDataFeed", value = "true"))]
        pub struct Status { pub lat: f64, pub station: String }
    })
    .to_string();
    assert!(output.contains("`key` names no field"), "{output}");
    assert!(output.contains("RecordsChanges for Status"), "{output}");
    assert!(!output.contains("LogicalType :: Float64"), "{output}");
}

#[test]
fn a_table_referencing_itself_is_an_error() {
    for target in [
        quote!(Employees::id),
        quote!(Self::id),
        quote!(self::Employees::id),
    ] {
        let text = error_text(quote! {
            #[table(schema = "gold")]
            pub struct Employees {
                pub id: i64,
                #[column(references = #target)]
                pub manager_id: Option<i64>,
            }
        });
        assert!(text.contains("a table cannot reference itself"), "{text}");
    }
    let reserved = error_text(quote! {
        #[table(schema = "gold", property(key = "lakehouse.key", value = "id"))]
        pub struct Employees {
            pub id: i64,
        }
    });
    assert!(reserved.contains("are the runtime's"), "{reserved}");
    // Another module's table of the same name is no self-reference.
    assert!(
        model(quote! {
            #[table(schema = "silver")]
            pub struct Orders {
                pub id: i64,
                #[column(references = bronze::Orders::id)]
                pub source_id: Option<i64>,
            }
        })
        .is_ok()
    );
}

#[test]
fn helper_attributes_out_of_place_are_errors() {
    let text = error_text(quote! {
        #[table(schema = "gold")]
        #[column(references = Other::id)]
        pub struct Dim {
            #[table(name = "x")]
            pub id: i64,
        }
    });
    assert!(text.contains("`#[column(..)]` goes on a field"), "{text}");
    assert!(text.contains("`#[table(..)]` goes on the struct"), "{text}");
}

#[test]
fn expectations_are_validated() {
    let text = error_text(quote! {
        #[table(schema = "silver",
                expect(name = "positive", expr = "qty > 0", on_fail = skip),
                expect(name = "positive", expr = " "),
                expect(name = "no_expr"))]
        pub struct Orders { pub qty: i64 }
    });
    assert!(
        text.contains("expected `(name = \"..\", expr = \"..\")`"),
        "{text}"
    );
    let text = error_text(quote! {
        #[table(schema = "silver",
                expect(name = "positive", expr = "qty > 0", on_fail = skip),
                expect(name = "positive", expr = " "))]
        pub struct Orders { pub qty: i64 }
    });
    for expected in [
        "unknown `on_fail` `skip`: expected `warn`",
        "expectation `positive` is declared twice",
        "an expectation needs a SQL expression",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn expectations_reach_the_table_definition() {
    let tokens = expand(quote! {
        #[table(schema = "silver", expect(name = "positive", expr = "qty > 0", on_fail = drop))]
        pub struct Orders { pub qty: i64 }
    });
    let text = tokens.to_string();
    assert!(
        text.contains("name : \"positive\"")
            && text.contains("expr : \"qty > 0\"")
            && text.contains("OnFail :: Drop"),
        "{text}"
    );
}

#[test]
fn partition_overwrite_needs_overwrite_mode_partitions_and_the_schema_kept() {
    let m = model(quote! {
        #[table(schema = "gold", partition_by(day), mode = overwrite, overwrite = partitions)]
        pub struct Daily { pub day: Date, pub amount: i64 }
    })
    .unwrap();
    assert_eq!(m.overwrite, OverwriteScope::Partitions);
    let cases = [
        (
            quote! {
                #[table(schema = "gold", partition_by(day), mode = append, overwrite = partitions)]
                pub struct Daily { pub day: Date }
            },
            "`overwrite = ..` says what `mode = overwrite` replaces: use it with `mode = overwrite`",
        ),
        (
            quote! {
                #[table(schema = "gold", mode = overwrite, overwrite = partitions)]
                pub struct Daily { pub day: Date }
            },
            "declare them with `partition_by(..)`",
        ),
        (
            quote! {
                #[table(schema = "gold", partition_by(day), mode = overwrite,
                        overwrite = partitions, evolution = overwrite)]
                pub struct Daily { pub day: Date }
            },
            "`evolution = overwrite` replaces the schema of every row",
        ),
        (
            quote! {
                #[table(schema = "gold", partition_by(day), mode = overwrite, overwrite = rows)]
                pub struct Daily { pub day: Date }
            },
            "unknown overwrite `rows`; expected `table` or `partitions`",
        ),
        (
            quote! {
                #[table(schema = "gold", key(order_id), partition_by(day), mode = overwrite,
                        overwrite = partitions)]
                pub struct Daily { pub order_id: i64, pub day: Date }
            },
            "with `overwrite = partitions`, a write checks the key in the partitions it \
             replaces only: add the partition column(s) `day` to the key",
        ),
    ];
    // A nullable partition column: the advice says to make it NOT NULL too.
    let text = error_text(quote! {
        #[table(schema = "gold", key(order_id), partition_by(region), mode = overwrite,
                overwrite = partitions)]
        pub struct Regional { pub order_id: i64, pub region: Option<String> }
    });
    assert!(
        text.contains(
            "add the partition column(s) `region` to the key (declared without `Option<_>`: \
             `region`, as a key column is never NULL)"
        ),
        "{text}"
    );
    // A key holding the partition columns is one key in one partition.
    let keyed = model(quote! {
        #[table(schema = "gold", key(order_id, day), partition_by(day), mode = overwrite,
                overwrite = partitions)]
        pub struct Daily { pub order_id: i64, pub day: Date }
    });
    assert!(keyed.is_ok());
    for (input, expected) in cases {
        let text = error_text(input);
        assert!(text.contains(expected), "{text}");
    }
}

#[test]
fn freshness_is_a_duration() {
    use super::validate::duration_secs;
    assert_eq!(duration_secs("26h"), Some(93_600));
    assert_eq!(duration_secs("1h30m"), Some(5_400));
    assert_eq!(duration_secs("7d"), Some(604_800));
    for bad in ["", "0s", "10", "5x", "h", "1.5h"] {
        assert_eq!(duration_secs(bad), None, "{bad:?}");
    }
    let m = model(quote! {
        #[table(schema = "gold", freshness = "26h")]
        pub struct Daily { pub day: Date }
    })
    .unwrap();
    assert_eq!(m.freshness_secs, Some(93_600));
    let text = error_text(quote! {
        #[table(schema = "gold", freshness = "a day")]
        pub struct Daily { pub day: Date }
    });
    assert!(
        text.contains("`freshness` is a duration such as \"30m\", \"26h\" or \"7d\""),
        "{text}"
    );
}

#[test]
fn a_reference_to_a_raw_identifier_stores_the_column_name() {
    let out = expand(quote! {
        #[table(schema = "gold")]
        pub struct Fact { #[column(references = DimKind::r#type)] pub kind: String }
    })
    .to_string();
    assert!(out.contains("column : \"type\""), "{out}");
    assert!(!out.contains("\"r#type\""), "{out}");
}

#[test]
fn columns_of_the_change_feed_and_the_runtime_and_empty_change_columns_are_refused() {
    let text = error_text(quote! {
        #[table(schema = "gold", key(id), mode = merge, change_columns())]
        pub struct Dim {
            pub id: i64,
            pub _change_type: String,
            pub _commit_version: i64,
            pub __lakehouse_delete: bool,
        }
    });
    for expected in [
        "`change_columns(..)` names no column: no change would ever update a row",
        "`_change_type` is a column of Delta's change data feed",
        "`_commit_version` is a column of Delta's change data feed",
        "columns starting with `__lakehouse` are the runtime's: rename `__lakehouse_delete`",
    ] {
        assert!(text.contains(expected), "`{expected}` in:\n{text}");
    }
}

#[test]
fn a_column_mapped_table_whose_schema_each_write_replaces_is_refused() {
    let text = error_text(quote! {
        #[table(
            schema = "gold",
            mode = overwrite,
            evolution = overwrite,
            property(key = "delta.columnMapping.mode", value = "name"),
        )]
        pub struct Mapped { pub id: i64 }
    });
    assert!(
        text.contains("a column-mapped table's schema is not replaced by delta-rs 1.1"),
        "{text}"
    );
}

#[test]
fn taken_names_and_properties_that_fight_the_runtime_are_refused() {
    let text = error_text(quote! {
        #[table(
            schema = "information_schema",
            name = "_delta_log",
            key(id),
            mode = merge,
            property(key = "delta.appendOnly", value = "true"),
            property(key = "delta.constraints.positive", value = "id > 0"),
            property(key = "owner", value = "a"),
            property(key = "owner", value = "b"),
            property(key = "delta.enableChangDataFeed", value = "true"),
        )]
        pub struct Taken { pub id: i64 }
    });
    for expected in [
        "schema `information_schema` is taken",
        "table name `_delta_log` is taken",
        "`delta.appendOnly` forbids removing files",
        "a CHECK constraint is declared with `check(name",
        "table property `owner` is set twice",
        "`delta.enableChangDataFeed` is no Delta table property the runtime's Delta library \
         (delta-rs 1.1) knows; did you mean `delta.enableChangeDataFeed`?",
    ] {
        assert!(text.contains(expected), "`{expected}` in:\n{text}");
    }
    let long = "x".repeat(129);
    let text = error_text(quote! {
        #[table(schema = "silver", name = #long)]
        pub struct Long { pub id: i64 }
    });
    assert!(
        text.contains("129 bytes, over the 128 a name may have"),
        "{text}"
    );
}

#[test]
fn a_malformed_key_is_not_also_reported_missing() {
    let text = error_text(quote! {
        #[table(schema = "silver", mode = merge, key(order_id, "line"))]
        pub struct Lines { pub order_id: i64, pub line: i64 }
    });
    assert!(!text.contains("need `key(..)`"), "{text}");
}

#[test]
fn the_stand_in_of_a_mistaken_scd2_table_keeps_its_validity_columns() {
    let out = expand(quote! {
        #[table(schema = "gold", key(id), mode = scd2, chnage_columns(name))]
        pub struct DimX { pub id: i64, pub name: Option<String> }
    })
    .to_string();
    assert!(out.contains("compile_error"), "{out}");
    assert!(out.contains("pub const is_current"), "{out}");
}

#[test]
fn a_target_file_size_is_bytes_or_a_size_with_its_unit() {
    for (size, bytes) in [
        (quote!(4096), 4096),
        (quote!("128MiB"), 128 << 20),
        (quote!("1 GB"), 1_000_000_000),
        (quote!("64kib"), 64 << 10),
        (quote!(4096u64), 4096),
    ] {
        let m = model(quote! {
            #[table(schema = "silver", name = "sized", target_file_size = #size)]
            struct Sized { id: i64 }
        })
        .unwrap();
        assert_eq!(m.target_file_size, Some(bytes), "{size}");
    }
    // A suffix rustc lets through to the macro would have read `128MB` as 128 bytes.
    for size in [
        quote!(128MB),
        quote!("128 parsecs"),
        quote!(0),
        quote!("MiB"),
    ] {
        let text = error_text(quote! {
            #[table(schema = "silver", name = "sized", target_file_size = #size)]
            struct Sized { id: i64 }
        });
        assert_eq!(
            text,
            "`target_file_size` is a positive number of bytes (`134217728`) or a size with its \
             unit as a string (`\"128MiB\"`, `\"1GB\"`; B, KB, MB, GB are powers of 1000, KiB, \
             MiB, GiB of 1024)",
            "{size}"
        );
    }
}

#[test]
fn serde_settings_naming_other_columns_are_refused_on_a_table() {
    let text = error_text(quote! {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        #[table(schema = "silver", name = "renamed")]
        struct Renamed {
            #[serde(rename = "ID")]
            id: i64,
            #[serde(alias = "when", with = "some_module")]
            at: i64,
            #[serde(skip_serializing)]
            note: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            kept: Option<String>,
        }
    });
    // Renaming snake_case fields to snake_case changes nothing.
    assert!(
        model(quote! {
            #[serde(rename_all = "snake_case")]
            #[table(schema = "silver", name = "same")]
            struct Same { order_id: i64 }
        })
        .is_ok()
    );
    let errors: Vec<&str> = text.lines().collect();
    assert_eq!(errors.len(), 4, "{text}");
    for (error, setting) in errors
        .iter()
        .zip(["rename_all", "rename", "alias", "skip_serializing"])
    {
        assert!(
            error.starts_with(&format!("`#[serde({setting})]` on a table: ")),
            "{error}"
        );
    }
    assert!(
        errors[0].ends_with("rename the field (a raw identifier, `r#type`, for a Rust keyword)")
    );
    assert!(errors[3].ends_with("leave the column out of the struct"));
}
