//! Typed joins: the joined frame is the hash table, its carried string columns travel through
//! later joins (dictionary-encoded) and come out as the declared strings, NULLs included.

use lakehouse_runtime::prelude::*;
use serde::Serialize;

use datafusion::execution::context::SessionContext;

use crate::common::{TempWarehouse, frame_of, render};

/// A sale at a store.
#[derive(Table, Serialize)]
#[table(schema = "joins", name = "sales", mode = append)]
pub struct Sale {
    pub id: i64,
    pub store_id: String,
}

/// A store, in a region.
#[derive(Table, Serialize)]
#[table(schema = "joins", name = "stores", key(store_id), mode = merge)]
pub struct Store {
    pub store_id: String,
    pub store_name: Option<String>,
    pub region_code: String,
}

/// A region.
#[derive(Table, Serialize)]
#[table(schema = "joins", name = "regions", key(region_code), mode = merge)]
pub struct Region {
    pub region_code: String,
    pub region_name: String,
}

/// Sale `id` at store `store_id`.
fn sale(id: i64, store_id: &str) -> Sale {
    Sale {
        id,
        store_id: store_id.into(),
    }
}

/// Store `store_id`, unnamed, in region `region_code`.
fn store(store_id: &str, region_code: &str) -> Store {
    Store {
        store_id: store_id.into(),
        store_name: None,
        region_code: region_code.into(),
    }
}

/// Each sale with its store's and region's names.
#[derive(Table)]
#[table(schema = "joins", name = "enriched", mode = overwrite)]
pub struct Enriched {
    pub id: i64,
    pub store_name: Option<String>,
    pub region_code: Option<String>,
    pub region_name: Option<String>,
}

#[tokio::test]
async fn carried_strings_survive_later_joins_and_null_padding() {
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let sales = [(1, "S1"), (2, "S2"), (3, "S9"), (4, "S1")].map(|(id, store)| Sale {
        id,
        store_id: store.into(),
    });
    let stores = [
        Store {
            store_id: "S1".into(),
            store_name: Some("Lyon Part-Dieu".into()),
            region_code: "ARA".into(),
        },
        store("S2", "IDF"),
    ];
    let regions =
        [("ARA", "Auvergne-Rhône-Alpes"), ("IDF", "Île-de-France")].map(|(code, name)| Region {
            region_code: code.into(),
            region_name: name.into(),
        });
    let sales = frame_of::<Sale, _>(&session, &sales);
    let stores = frame_of::<Store, _>(&session, &stores);
    let regions = frame_of::<Region, _>(&session, &regions);

    let joined = sales
        .join(
            stores,
            JoinType::Left,
            [on(Sale::store_id, Store::store_id)],
        )
        .expect("join stores")
        // The store's region code was carried from the first join: now it is a key.
        .join(
            regions,
            JoinType::Left,
            [on(Store::region_code, Region::region_code)],
        )
        .expect("join regions");
    let enriched = joined
        .select_into(EnrichedSelect {
            id: Sale::id,
            store_name: Store::store_name,
            region_code: Store::region_code,
            region_name: Region::region_name,
        })
        .expect("select");

    let schema = enriched.dataframe().schema().clone();
    for name in ["store_name", "region_code", "region_name"] {
        let field = schema
            .field_with_unqualified_name(name)
            .expect("declared column");
        assert_eq!(
            field.data_type(),
            &DataType::Utf8,
            "{name} is a plain string"
        );
    }
    assert_eq!(
        render(enriched.into_dataframe()).await,
        vec![
            "1|Lyon Part-Dieu|ARA|Auvergne-Rhône-Alpes",
            "2|∅|IDF|Île-de-France",
            "3|∅|∅|∅",
            "4|Lyon Part-Dieu|ARA|Auvergne-Rhône-Alpes",
        ]
    );
}

/// A sale whose store is known by number.
#[derive(Table, Serialize)]
#[table(schema = "joins", name = "numbered_sales", mode = append)]
pub struct NumberedSale {
    pub id: i64,
    pub store_number: i32,
}

/// A store, numbered as text by its source.
#[derive(Table, Serialize)]
#[table(schema = "joins", name = "numbered_stores", key(store_number), mode = merge)]
pub struct NumberedStore {
    pub store_number: i64,
    pub store_name: String,
}

/// Each numbered sale with its store's name.
#[derive(Table)]
#[table(schema = "joins", name = "named_sales", mode = overwrite)]
pub struct NamedSale {
    pub id: i64,
    pub store_name: Option<String>,
}

#[tokio::test]
async fn keys_of_different_types_join_on_converted_values() {
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let sales = [(1, 7), (2, 8)].map(|(id, store_number)| NumberedSale { id, store_number });
    let stores = [NumberedStore {
        store_number: 7,
        store_name: "Lyon Part-Dieu".into(),
    }];
    let sales = frame_of::<NumberedSale, _>(&session, &sales);
    let stores = frame_of::<NumberedStore, _>(&session, &stores);
    let named = sales
        .join(
            stores,
            JoinType::Left,
            [on_values(
                typed::<i64>(cast(NumberedSale::store_number.expr(), DataType::Int64)),
                typed::<i64>(NumberedStore::store_number.expr()),
            )],
        )
        .expect("join")
        .select_into(NamedSaleSelect {
            id: NumberedSale::id,
            store_name: NumberedStore::store_name,
        })
        .expect("select");
    assert_eq!(
        render(named.into_dataframe()).await,
        ["1|Lyon Part-Dieu", "2|∅"]
    );
}

#[tokio::test]
async fn semi_and_anti_joins_keep_the_rows_asked_for_with_the_joined_frame_as_hash_table() {
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let sales = [(1, "S1"), (2, "S2"), (3, "S9")].map(|(id, store)| Sale {
        id,
        store_id: store.into(),
    });
    let stores = ["S1", "S2", "S7"].map(|id| Store {
        store_id: id.into(),
        store_name: None,
        region_code: "ARA".into(),
    });
    let sales = || frame_of::<Sale, _>(&session, &sales);
    let stores = || frame_of::<Store, _>(&session, &stores);
    let joined = |kind| {
        sales()
            .join(stores(), kind, [on(Sale::store_id, Store::store_id)])
            .expect("join")
            .into_dataframe()
    };
    assert_eq!(render(joined(JoinType::LeftSemi)).await, ["1|S1", "2|S2"]);
    assert_eq!(render(joined(JoinType::LeftAnti)).await, ["3|S9"]);
    assert_eq!(
        render(joined(JoinType::RightSemi)).await,
        ["S1|∅|ARA", "S2|∅|ARA"]
    );
    assert_eq!(render(joined(JoinType::RightAnti)).await, ["S7|∅|ARA"]);
    // The stores (joined onto the sales) are the hash table: the build, left, input of
    // DataFusion's join, which the semi join keeps the right one of.
    let plan = joined(JoinType::LeftSemi)
        .into_optimized_plan()
        .expect("plan")
        .display_indent()
        .to_string();
    assert!(plan.contains("RightSemi Join"), "{plan}");
}

/// Each sale with its store's region, required.
#[derive(Table)]
#[table(schema = "joins", name = "regional_sales", mode = overwrite)]
pub struct RegionalSale {
    pub id: i64,
    pub region_code: String,
}

#[tokio::test]
async fn an_outer_joins_unmatched_side_cannot_fill_a_not_null_column() {
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let sales = [(1, "S1"), (2, "S9")].map(|(id, store)| Sale {
        id,
        store_id: store.into(),
    });
    let stores = [store("S1", "ARA")];
    let project = |kind| {
        frame_of::<Sale, _>(&session, &sales)
            .join(
                frame_of::<Store, _>(&session, &stores),
                kind,
                [on(Sale::store_id, Store::store_id)],
            )
            .expect("join")
            .select_into(RegionalSaleSelect {
                id: Sale::id,
                region_code: Store::region_code,
            })
    };
    // Sale 2's store is unknown: a left join gives it no region.
    let error = project(JoinType::Left)
        .err()
        .expect("the store's region is NULL for unmatched sales")
        .to_string();
    assert!(
        error.contains(
            "column `region_code` is NOT NULL and filled with `joins.stores.region_code`, which \
             is NULL here for the rows of an outer join that find no match"
        ),
        "{error}"
    );
    // An inner join keeps only sales with a store: NOT NULL holds.
    let inner = project(JoinType::Inner).expect("inner join");
    assert_eq!(render(inner.into_dataframe()).await, ["1|ARA"]);
    // The left side of a left join is never NULL.
    let ids = frame_of::<Sale, _>(&session, &sales)
        .join(
            frame_of::<Store, _>(&session, &stores),
            JoinType::Left,
            [on(Sale::store_id, Store::store_id)],
        )
        .expect("join")
        .select_into(RegionalSaleSelect {
            id: Sale::id,
            region_code: Sale::store_id,
        })
        .expect("the sales' own columns");
    assert_eq!(render(ids.into_dataframe()).await, ["1|S1", "2|S9"]);
    // Grouped by it: the unmatched sales' group has a NULL key all the same.
    let grouped = |kind| {
        frame_of::<Sale, _>(&session, &sales)
            .join(
                frame_of::<Store, _>(&session, &stores),
                kind,
                [on(Sale::store_id, Store::store_id)],
            )
            .expect("join")
            .group_by([Store::region_code.expr()])
            .select_into(RegionSalesSelect {
                region_code: Store::region_code,
                sales: count_rows(),
            })
    };
    let error = grouped(JoinType::Left)
        .err()
        .expect("a NULL group key")
        .to_string();
    assert!(
        error.contains(
            "column `region_code` is NOT NULL and filled with `joins.stores.region_code`"
        ),
        "{error}"
    );
    let inner = grouped(JoinType::Inner).expect("inner join");
    assert_eq!(render(inner.into_dataframe()).await, ["ARA|1"]);
}

/// Sales per region.
#[derive(Table)]
#[table(schema = "joins", name = "region_sales", mode = overwrite)]
pub struct RegionSales {
    pub region_code: String,
    pub sales: i64,
}

#[tokio::test]
async fn a_table_joined_twice_is_refused_with_the_way_round() {
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let stores = || frame_of::<Store, _>(&session, &[store("S1", "ARA")]);
    let error = stores()
        .join(
            stores(),
            JoinType::Inner,
            [on(Store::store_id, Store::store_id)],
        )
        .err()
        .expect("a self-join")
        .to_string();
    assert!(
        error.contains(
            "join with `joins.stores`: the frame holds `joins.stores`'s columns already (a table \
             joined with itself, or a dimension in two roles), which column handles cannot tell \
             apart; join the second copy in a role of its own: `.join_as(frame, \
             Role::new(\"..\"), kind, keys)`, its columns read as `role.col(Store::column)`"
        ),
        "{error}"
    );
}

/// A transfer of stock between two stores.
#[derive(Table, Serialize)]
#[table(schema = "joins", name = "transfers", mode = append)]
pub struct Transfer {
    pub id: i64,
    pub from_store: String,
    pub to_store: String,
}

/// Each transfer with both stores' names: the store dimension in two roles.
#[derive(Table)]
#[table(schema = "joins", name = "transfer_names", mode = overwrite)]
pub struct TransferNames {
    pub id: i64,
    pub from_name: Option<String>,
    pub from_region: String,
    pub to_name: Option<String>,
    pub to_region: Option<String>,
}

/// The store a transfer goes to.
const DESTINATION: Role<Store> = Role::new("destination");

fn transfers_and_stores(session: &SessionContext) -> (Frame<Transfer>, Frame<Store>) {
    let transfers =
        [(1, "S1", "S2"), (2, "S2", "S1"), (3, "S1", "S9")].map(|(id, from, to)| Transfer {
            id,
            from_store: from.into(),
            to_store: to.into(),
        });
    let stores =
        [("S1", Some("Lyon Part-Dieu"), "ARA"), ("S2", None, "IDF")].map(|(id, name, region)| {
            Store {
                store_id: id.into(),
                store_name: name.map(Into::into),
                region_code: region.into(),
            }
        });
    (
        frame_of::<Transfer, _>(session, &transfers),
        frame_of::<Store, _>(session, &stores),
    )
}

#[tokio::test]
async fn a_dimension_joins_twice_in_two_roles() {
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let (transfers, stores) = transfers_and_stores(&session);
    let named = transfers
        .join(
            stores.clone(),
            JoinType::Inner,
            [on(Transfer::from_store, Store::store_id)],
        )
        .expect("join the origin")
        .join_as(
            stores,
            DESTINATION,
            JoinType::Left,
            [on(Transfer::to_store, DESTINATION.col(Store::store_id))],
        )
        .expect("join the destination")
        .select_into(TransferNamesSelect {
            id: Transfer::id,
            from_name: Store::store_name,
            from_region: Store::region_code,
            to_name: DESTINATION.col(Store::store_name),
            to_region: DESTINATION.col(Store::region_code),
        })
        .expect("both roles' columns");
    assert_eq!(
        render(named.into_dataframe()).await,
        [
            "1|Lyon Part-Dieu|ARA|∅|IDF",
            "2|∅|IDF|Lyon Part-Dieu|ARA",
            "3|Lyon Part-Dieu|ARA|∅|∅",
        ]
    );

    // A role's columns filter and group as the table's do.
    let (transfers, stores) = transfers_and_stores(&session);
    let into_idf = transfers
        .join_as(
            stores,
            DESTINATION,
            JoinType::Inner,
            [on(Transfer::to_store, DESTINATION.col(Store::store_id))],
        )
        .expect("join the destination")
        .filter(DESTINATION.col(Store::region_code).expr().eq(lit("IDF")))
        .expect("a filter on the role")
        .select_into(TransferSelect {
            id: Transfer::id,
            from_store: Transfer::from_store,
            to_store: DESTINATION.col(Store::store_id),
        })
        .expect("the transfers into IDF");
    assert_eq!(render(into_idf.into_dataframe()).await, ["1|S1|S2"]);

    let (transfers, stores) = transfers_and_stores(&session);
    let by_region = transfers
        .join_as(
            stores,
            DESTINATION,
            JoinType::Inner,
            [on(Transfer::to_store, DESTINATION.col(Store::store_id))],
        )
        .expect("join the destination")
        .group_by([DESTINATION.col(Store::region_code).expr()])
        .select_into(TransfersIntoSelect {
            region_code: DESTINATION.col(Store::region_code),
            transfers: count_rows(),
            last_id: max(Transfer::id),
        })
        .expect("grouped by the role's column");
    assert_eq!(
        render(by_region.into_dataframe()).await,
        ["ARA|1|2", "IDF|1|1"]
    );
}

/// Transfers by the region they go to.
#[derive(Table)]
#[table(schema = "joins", name = "transfers_into", mode = overwrite)]
pub struct TransfersInto {
    pub region_code: String,
    pub transfers: i64,
    pub last_id: Option<i64>,
}

/// A store and the store that supplies it: the table joined with itself.
#[derive(Table)]
#[table(schema = "joins", name = "supplied_stores", mode = overwrite)]
pub struct SuppliedStore {
    pub store_id: String,
    pub supplier_region: String,
}

#[tokio::test]
async fn a_role_column_from_an_outer_join_cannot_fill_a_not_null_column() {
    const SUPPLIER: Role<Store> = Role::new("supplier");
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let (_, stores) = transfers_and_stores(&session);
    let supplied = |kind| {
        stores.clone().join_as(
            stores.clone(),
            SUPPLIER,
            kind,
            // Each store is supplied by the store of its own region (itself, here).
            [on(Store::region_code, SUPPLIER.col(Store::region_code))],
        )
    };
    let error = supplied(JoinType::Left)
        .expect("a self-join")
        .select_into(SuppliedStoreSelect {
            store_id: Store::store_id,
            supplier_region: SUPPLIER.col(Store::region_code),
        })
        .err()
        .expect("the supplier may be missing")
        .to_string();
    assert!(
        error.contains(
            "column `supplier_region` is NOT NULL and filled with `supplier.region_code`, which \
             is NULL here for the rows of an outer join that find no match"
        ),
        "{error}"
    );
    let inner = supplied(JoinType::Inner)
        .expect("a self-join")
        .select_into(SuppliedStoreSelect {
            store_id: Store::store_id,
            supplier_region: SUPPLIER.col(Store::region_code),
        })
        .expect("an inner join always finds its supplier");
    assert_eq!(render(inner.into_dataframe()).await, ["S1|ARA", "S2|IDF"]);
}

#[tokio::test]
async fn roles_that_cannot_be_told_apart_are_refused() {
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let refusal =
        |result: lakehouse_runtime::Result<View>| result.err().expect("a refusal").to_string();

    let (transfers, stores) = transfers_and_stores(&session);
    let error = refusal(transfers.join_as(
        stores,
        Role::new("ship to"),
        JoinType::Inner,
        [on(Transfer::to_store, Store::store_id)],
    ));
    assert!(
        error.contains(
            "role `ship to` of `joins.stores`: a role's name is letters, digits and `_`, not \
             starting with a digit"
        ),
        "{error}"
    );

    // A role named as a table of the frame: DataFusion would resolve its columns to either.
    let (transfers, stores) = transfers_and_stores(&session);
    let error = refusal(transfers.join_as(
        stores,
        Role::new("transfers"),
        JoinType::Inner,
        [on(Transfer::to_store, Store::store_id)],
    ));
    assert!(
        error.contains(
            "role `transfers` of `joins.stores`: the frame holds `joins.transfers` already, \
             whose columns the role's would be confused with; name the role differently"
        ),
        "{error}"
    );

    // The same role twice.
    let (transfers, stores) = transfers_and_stores(&session);
    let error = refusal(
        transfers
            .join_as(
                stores.clone(),
                DESTINATION,
                JoinType::Inner,
                [on(Transfer::to_store, DESTINATION.col(Store::store_id))],
            )
            .expect("the first copy")
            .join_as(
                stores,
                DESTINATION,
                JoinType::Inner,
                [on(Transfer::from_store, DESTINATION.col(Store::store_id))],
            ),
    );
    assert!(
        error.contains("role `destination` of `joins.stores`: the frame holds `destination`"),
        "{error}"
    );

    // A role's column read before the role is joined.
    let (transfers, _) = transfers_and_stores(&session);
    let error = transfers
        .filter(DESTINATION.col(Store::region_code).expr().eq(lit("IDF")))
        .err()
        .expect("no destination joined")
        .to_string();
    assert!(
        error.contains(
            "the filter reads `destination.region_code`, but `destination` is not in this frame \
             (it holds joins.transfers): join it first"
        ),
        "{error}"
    );
}

#[tokio::test]
async fn a_column_of_a_table_not_joined_is_named() {
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let sales = [sale(1, "S1")];
    let error = frame_of::<Sale, _>(&session, &sales)
        .select_into(RegionalSaleSelect {
            id: Sale::id,
            region_code: Store::region_code,
        })
        .err()
        .expect("the stores are not joined")
        .to_string();
    assert!(
        error.contains(
            "table `joins.regional_sales`: column `region_code` reads \
             `joins.stores.region_code`, but `joins.stores` is not in this frame (it holds \
             joins.sales): join it first"
        ),
        "{error}"
    );
    // So are the keys and orders of `latest_by`, `latest_only` and `sort`.
    let frame = || frame_of::<Sale, _>(&session, &sales);
    let refusals = [
        frame()
            .latest_by([Store::region_code.expr()], [Sale::id.expr()])
            .err(),
        frame().latest_only(Store::region_code).err(),
        frame()
            .sort(vec![Store::region_code.expr().sort(true, false)])
            .err(),
    ];
    for (refusal, what) in refusals
        .into_iter()
        .zip(["`latest_by`", "`latest_only`", "the sort"])
    {
        let error = refusal.expect("the stores are not joined").to_string();
        assert!(
            error.starts_with(&format!(
                "{what} reads `joins.stores.region_code`, but `joins.stores` is not in this frame"
            )),
            "{error}"
        );
    }
}

#[tokio::test]
async fn filters_and_join_keys_name_a_table_not_in_the_frame() {
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let sales = || frame_of::<Sale, _>(&session, &[sale(1, "S1")]);
    let regions = || {
        frame_of::<Region, _>(
            &session,
            &[Region {
                region_code: "ARA".into(),
                region_name: "Auvergne-Rhône-Alpes".into(),
            }],
        )
    };
    let filtered = sales()
        .filter(Store::region_code.expr().eq(lit("ARA")))
        .err()
        .expect("no stores in the frame")
        .to_string();
    assert!(
        filtered.contains(
            "the filter reads `joins.stores.region_code`, but `joins.stores` is not in this \
             frame (it holds joins.sales): join it first"
        ),
        "{filtered}"
    );
    let joined = sales()
        .join(
            regions(),
            JoinType::Inner,
            [on(Store::region_code, Region::region_code)],
        )
        .err()
        .expect("the key is of neither side")
        .to_string();
    assert!(
        joined.contains("a key of the join with `joins.regions` reads `joins.stores.region_code`"),
        "{joined}"
    );
    // A key pair may name the joined table first, as SQL's ON does.
    let stores = frame_of::<Store, _>(&session, &[store("S1", "ARA")]);
    sales()
        .join(
            stores,
            JoinType::Inner,
            [on(Store::store_id, Sale::store_id)],
        )
        .expect("either order");
}

#[tokio::test]
async fn a_key_that_does_not_link_the_two_sides_is_refused() {
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let sales = || frame_of::<Sale, _>(&session, &[sale(1, "S1"), sale(2, "S2")]);
    let stores = || frame_of::<Store, _>(&session, &[store("S1", "ARA")]);
    // Both sides of the pair read the sales (a copy-paste slip): every sale with every store.
    let error = sales()
        .join(
            stores(),
            JoinType::Inner,
            [on(Sale::store_id, Sale::store_id)],
        )
        .err()
        .expect("a key of one side only")
        .to_string();
    assert!(
        error.contains(
            "the join with `joins.stores` on `joins.sales.store_id = joins.sales.store_id` does \
             not compare a column of the frame with a column of `joins.stores`: it would pair \
             every row with every row"
        ),
        "{error}"
    );
    // Two literals link nothing either, even beside a real key.
    let error = sales()
        .join(
            stores(),
            JoinType::Left,
            [
                on(Sale::store_id, Store::store_id),
                on_values(typed::<i64>(lit(1i64)), typed::<i64>(lit(1i64))),
            ],
        )
        .err()
        .expect("a key of literals")
        .to_string();
    assert!(
        error.contains("does not compare a column of the frame")
            && error.contains("filter a side before the join"),
        "{error}"
    );
}
