//! A non-trivial valid graph spread over two modules compiles, and its registry holds exactly the
//! expected pipelines, levels and edges.

use lakehouse_runtime::Registry;

mod staging {
    use lakehouse_runtime::prelude::*;
    pub use lakehouse_tests::{BronzeCustomers, BronzeSales, customers, sales};

    /// Clean sales.
    #[derive(Table)]
    #[table(schema = "silver", name = "sales", key(order_id), mode = merge)]
    pub struct SilverSales {
        pub order_id: i64,
        pub customer_id: String,
        pub amount: f64,
    }

    /// Keeps sales with a customer.
    #[pipeline(depends_on = [sales], retries = 2, timeout = "90s", tags = ["sales"])]
    pub async fn silver_sales(raw: Frame<BronzeSales>) -> Result<Frame<SilverSales>> {
        let _ = raw;
        todo!()
    }
}

mod marts {
    use lakehouse_runtime::prelude::*;

    use super::staging::{BronzeCustomers, SilverSales, customers};
    // A dependency imported under another name is still named by its own.
    use super::staging::silver_sales as clean_sales;

    /// Customers.
    #[derive(Table)]
    #[table(schema = "gold", name = "dim_customer", key(customer_key), mode = scd2)]
    pub struct DimCustomer {
        pub customer_key: String,
        pub name: Option<String>,
    }

    /// Sales facts.
    #[derive(Table)]
    #[table(schema = "gold", name = "fact_sales")]
    pub struct FactSales {
        pub order_id: i64,
        #[column(references = DimCustomer::customer_key)]
        pub customer_key: Option<String>,
    }

    #[pipeline(depends_on = [customers])]
    pub async fn dim_customer(c: Frame<BronzeCustomers>) -> Result<Frame<DimCustomer>> {
        let _ = c;
        todo!()
    }

    /// Joins sales with customers.
    #[pipeline(depends_on = [clean_sales, dim_customer])]
    pub async fn fact_sales(
        s: Frame<SilverSales>,
        d: Frame<DimCustomer>,
        cx: &Ctx,
    ) -> Result<Frame<FactSales>> {
        let _ = (
            s,
            d,
            cx,
            on(SilverSales::customer_id, DimCustomer::customer_key),
        );
        todo!()
    }
}

/// Columns named by keywords (`type`, `match`), as raw identifiers.
mod keywords {
    use lakehouse_runtime::prelude::*;

    /// Events.
    #[derive(Table)]
    #[table(schema = "silver", name = "events", key(r#type), mode = merge)]
    pub struct Events {
        pub id: i64,
        pub r#type: String,
        pub r#match: bool,
        pub r#gen: i64,
    }

    /// Kinds of events, referenced through a keyword column.
    #[derive(Table)]
    #[table(schema = "silver", name = "tagged")]
    pub struct Tagged {
        pub id: i64,
        #[column(references = Events::r#type)]
        pub kind: String,
    }

    /// A projection names the columns as the struct does.
    pub fn copy(events: Frame<Events>) -> Result<Frame<Events>> {
        events.select_into(EventsSelect {
            id: Events::id,
            r#type: Events::r#type,
            r#match: Events::r#match,
            r#gen: Events::r#gen,
        })
    }
}

/// Tables and pipelines that are not `pub`, pipelines named like the generated code's own
/// items (`run`, `cx`) or by a keyword, and a reference through an alias of `Option`.
mod private {
    use lakehouse_runtime::prelude::*;

    /// An optional id, by another name.
    type MaybeId = Option<i64>;

    /// A table private to its module.
    #[derive(Table)]
    #[table(schema = "silver", name = "private_rows")]
    struct PrivateRows {
        id: i64,
        #[column(references = CrateRows::id)]
        crate_id: MaybeId,
    }

    /// A table visible in the crate.
    #[derive(Table)]
    #[table(schema = "silver", name = "crate_rows", key(id), mode = merge)]
    pub(crate) struct CrateRows {
        pub(crate) id: i64,
    }

    /// Another private table.
    #[derive(Table)]
    #[table(schema = "silver", name = "keyword_rows")]
    struct KeywordRows {
        id: i64,
    }

    /// Named as the generated run shim was.
    #[pipeline]
    async fn run(_cx: &Ctx) -> Result<Frame<CrateRows>> {
        todo!()
    }

    /// Named as the generated shim's context argument was.
    #[pipeline(depends_on = [run])]
    async fn cx(rows: Frame<CrateRows>, cx: &Ctx) -> Result<Frame<PrivateRows>> {
        let _ = (rows, cx);
        todo!()
    }

    /// Named by a keyword.
    #[pipeline(depends_on = [cx])]
    async fn r#match(rows: Frame<PrivateRows>) -> Result<Frame<KeywordRows>> {
        let _ = rows;
        todo!()
    }

    /// Yet another private table.
    #[derive(Table)]
    #[table(schema = "silver", name = "primitive_rows")]
    struct PrimitiveRows {
        id: i64,
    }

    /// Named as a primitive type, which the generated module's own items name.
    #[pipeline(depends_on = [r#match])]
    #[allow(non_camel_case_types)]
    async fn str(rows: Frame<KeywordRows>) -> Result<Frame<PrimitiveRows>> {
        let _ = rows;
        todo!()
    }
}

#[test]
fn keyword_columns_are_named_without_their_raw_prefix() {
    use lakehouse_runtime::Table as _;
    let _ = keywords::copy;
    let columns: Vec<&str> = keywords::Events::DEF
        .columns
        .iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(columns, ["id", "type", "match", "gen"]);
    let kind = keywords::Tagged::DEF
        .column("kind")
        .and_then(|c| c.references);
    assert_eq!(kind.map(|r| r.column), Some("type"));
}

#[test]
fn the_registry_holds_the_graph() {
    let registry = Registry::from_inventory().expect("valid graph");
    let pipelines: Vec<(&str, usize, &str)> = registry
        .pipelines()
        .iter()
        .map(|p| (p.name, p.level, p.module_path))
        .collect();
    assert_eq!(
        pipelines,
        [
            ("customers", 0, "lakehouse_tests"),
            ("run", 0, "main::pass::private"),
            ("sales", 0, "lakehouse_tests"),
            ("cx", 1, "main::pass::private"),
            ("dim_customer", 1, "main::pass::marts"),
            ("silver_sales", 1, "main::pass::staging"),
            ("fact_sales", 2, "main::pass::marts"),
            ("match", 2, "main::pass::private"),
            ("str", 3, "main::pass::private"),
        ]
    );
    assert_eq!(
        registry.edges(),
        [
            ("customers", "dim_customer"),
            ("cx", "match"),
            ("dim_customer", "fact_sales"),
            ("match", "str"),
            ("run", "cx"),
            ("sales", "silver_sales"),
            ("silver_sales", "fact_sales"),
        ]
    );
    let private = registry.get("cx").expect("registered").output;
    let crate_id = private.column("crate_id").expect("declared");
    assert!(crate_id.nullable, "an alias of `Option` is nullable");
    assert_eq!(
        crate_id.references.map(|r| r.table),
        Some("crate_rows"),
        "a reference through an alias"
    );
    let silver = registry.get("silver_sales").expect("registered");
    assert_eq!(
        (silver.retries, silver.timeout_ms, silver.tags),
        (Some(2), Some(90_000), &["sales"][..])
    );
    assert_eq!(silver.output.qualified_name(), "silver.sales");
    assert_eq!(silver.inputs.len(), 1);
    assert_eq!(silver.inputs[0].table.qualified_name(), "bronze.sales");
    let fact = registry.get("fact_sales").expect("registered");
    assert_eq!(fact.description, "Joins sales with customers.");
    let fk = fact
        .output
        .column("customer_key")
        .and_then(|c| c.references)
        .expect("a foreign key");
    assert_eq!(
        (fk.schema, fk.table, fk.column),
        ("gold", "dim_customer", "customer_key")
    );
    let dim = registry.get("dim_customer").expect("registered").output;
    let columns: Vec<&str> = dim.columns.iter().map(|c| c.name).collect();
    assert_eq!(
        columns,
        [
            "customer_key",
            "name",
            "valid_from",
            "valid_to",
            "is_current"
        ]
    );
    assert_eq!(registry.downstream("sales")[0].name, "silver_sales");
    assert_eq!(registry.suggest("silver_sale"), Some("silver_sales"));
}
