//! Idempotent commits, failed writes that change nothing, time travel, maintenance.

use std::time::Duration;

use lakehouse_runtime::prelude::*;
use lakehouse_runtime::store::{BlockedBy, WriteOptions};
use serde::Serialize;

use crate::common::{TempWarehouse, contents, lines, write};

mod v1 {
    use lakehouse_runtime::prelude::*;

    /// Orders.
    #[derive(Table)]
    #[table(schema = "silver", name = "orders", key(id), mode = merge, check(name = "positive_amount", expr = "amount IS NULL OR amount > 0"))]
    pub struct Orders {
        pub id: i64,
        /// Amount in cents
        pub amount: Option<i64>,
    }
}

mod strict {
    use lakehouse_runtime::prelude::*;

    /// Orders, every amount required.
    #[derive(Table)]
    #[table(schema = "silver", name = "orders", key(id), mode = merge)]
    pub struct Orders {
        pub id: i64,
        pub amount: i64,
    }
}

mod stricter {
    use lakehouse_runtime::prelude::*;

    /// Orders, the CHECK made stricter than the stored rows allow.
    #[derive(Table)]
    #[table(schema = "silver", name = "orders", key(id), mode = merge, check(name = "positive_amount", expr = "amount > 100"))]
    pub struct Orders {
        pub id: i64,
        pub amount: Option<i64>,
    }
}

mod commented_check {
    use lakehouse_runtime::prelude::*;

    /// Orders, the CHECK changed to an expression ending with a comment.
    #[derive(Table)]
    #[table(schema = "silver", name = "orders", key(id), mode = merge, check(name = "positive_amount", expr = "amount >= 0 -- not negative"))]
    pub struct Orders {
        pub id: i64,
        pub amount: Option<i64>,
    }
}

mod swapped_check {
    use lakehouse_runtime::prelude::*;

    /// Orders, `positive_amount` swapped for a check the stored rows fail.
    #[derive(Table)]
    #[table(schema = "silver", name = "orders", key(id), mode = merge, check(name = "big_amount", expr = "amount > 100"))]
    pub struct Orders {
        pub id: i64,
        pub amount: Option<i64>,
    }
}

mod v2 {
    use lakehouse_runtime::prelude::*;

    /// Orders, with the amount's type changed.
    #[derive(Table)]
    #[table(schema = "silver", name = "orders", key(id), mode = merge)]
    pub struct Orders {
        pub id: i64,
        pub amount: Option<String>,
    }
}

mod v3 {
    use lakehouse_runtime::prelude::*;

    /// Orders, with a new required column.
    #[derive(Table)]
    #[table(schema = "silver", name = "orders", key(id), mode = merge)]
    pub struct Orders {
        pub id: i64,
        pub amount: Option<i64>,
        pub region: String,
    }
}

mod v4 {
    use lakehouse_runtime::prelude::*;

    /// Orders, with a new optional column.
    #[derive(Table)]
    #[table(schema = "silver", name = "orders", key(id), mode = merge)]
    pub struct Orders {
        pub id: i64,
        pub amount: Option<i64>,
        pub region: Option<String>,
    }
}

mod unchecked {
    use lakehouse_runtime::prelude::*;

    /// Orders, before the declaration gained its CHECK constraint.
    #[derive(Table)]
    #[table(schema = "silver", name = "orders", key(id), mode = merge)]
    pub struct Orders {
        pub id: i64,
        pub amount: Option<i64>,
    }
}

mod loosened {
    use lakehouse_runtime::prelude::*;

    /// Orders, the CHECK's expression changed under the same name.
    #[derive(Table)]
    #[table(schema = "silver", name = "orders", key(id), mode = merge, check(name = "positive_amount", expr = "amount is null   or amount >= 0"))]
    pub struct Orders {
        pub id: i64,
        pub amount: Option<i64>,
    }
}

mod with_discount {
    use lakehouse_runtime::prelude::*;

    /// Orders, gaining a column and a CHECK on it.
    #[derive(Table)]
    #[table(schema = "silver", name = "orders", key(id), mode = merge, check(name = "discount_not_negative", expr = "discount IS NULL OR discount >= 0"))]
    pub struct Orders {
        pub id: i64,
        pub amount: Option<i64>,
        pub discount: Option<i64>,
    }
}

mod checkpointed {
    use lakehouse_runtime::prelude::*;

    /// Events, checkpointed after every second version.
    #[derive(Table)]
    #[table(
        schema = "bronze",
        name = "events",
        property(key = "delta.checkpointInterval", value = "2")
    )]
    pub struct Events {
        pub id: i64,
    }
}

mod checkpointed_merge {
    use lakehouse_runtime::prelude::*;

    /// Events by id, checkpointed after every second version.
    #[derive(Table)]
    #[table(schema = "silver", name = "events", key(id), mode = merge, property(key = "delta.checkpointInterval", value = "2"))]
    pub struct Events {
        pub id: i64,
        pub n: i64,
    }
}

mod checkpointed_scd2 {
    use lakehouse_runtime::prelude::*;

    /// Events with history, checkpointed after every second version.
    #[derive(Table)]
    #[table(schema = "gold", name = "events", key(id), mode = scd2, property(key = "delta.checkpointInterval", value = "2"))]
    pub struct Events {
        pub id: i64,
        pub n: i64,
    }
}

mod mistyped_check {
    use lakehouse_runtime::prelude::*;

    /// Orders, with a CHECK naming no column.
    #[derive(Table)]
    #[table(schema = "silver", name = "orders", key(id), mode = merge, check(name = "positive", expr = "amout > 0"))]
    pub struct Orders {
        pub id: i64,
        pub amount: Option<i64>,
    }
}

mod dividing_check {
    use lakehouse_runtime::prelude::*;

    /// Orders, with a CHECK that divides by zero on an amount of 10.
    #[derive(Table)]
    #[table(schema = "silver", name = "orders", key(id), mode = merge, check(name = "positive_amount", expr = "amount > 0"), check(name = "ratio", expr = "100 / (amount - 10) > 0"))]
    pub struct Orders {
        pub id: i64,
        pub amount: Option<i64>,
    }
}

mod kept_discount {
    use lakehouse_runtime::prelude::*;

    /// Orders, gaining a CHECK on a column the table never gets (`evolution = keep`).
    #[derive(Table)]
    #[table(schema = "silver", name = "orders", key(id), mode = merge, evolution = keep, check(name = "discount_not_negative", expr = "discount IS NULL OR discount >= 0"))]
    pub struct Orders {
        pub id: i64,
        pub amount: Option<i64>,
        pub discount: Option<i64>,
    }
}

mod stock_v1 {
    use lakehouse_runtime::prelude::*;

    /// Stock, replaced whole at each write.
    #[derive(Table)]
    #[table(schema = "gold", name = "stock", mode = overwrite)]
    pub struct Stock {
        pub id: i64,
        pub qty: i64,
    }
}

mod stock_checked {
    use lakehouse_runtime::prelude::*;

    /// Stock, gaining a CHECK.
    #[derive(Table)]
    #[table(schema = "gold", name = "stock", mode = overwrite, check(name = "positive", expr = "qty > 0"))]
    pub struct Stock {
        pub id: i64,
        pub qty: i64,
    }
}

mod levels_v1 {
    use lakehouse_runtime::prelude::*;

    /// Stock levels, merged by item.
    #[derive(Table)]
    #[table(schema = "gold", name = "stock_levels", key(id), mode = merge)]
    pub struct Stock {
        pub id: i64,
        pub qty: i64,
    }
}

mod levels_checked {
    use lakehouse_runtime::prelude::*;

    /// Stock levels, gaining a CHECK.
    #[derive(Table)]
    #[table(schema = "gold", name = "stock_levels", key(id), mode = merge, check(name = "positive", expr = "qty > 0"))]
    pub struct Stock {
        pub id: i64,
        pub qty: i64,
    }
}

mod stock_v2 {
    use lakehouse_runtime::prelude::*;

    /// Stock, gaining a required column (its old rows are replaced whole) and a CHECK.
    #[derive(Table)]
    #[table(schema = "gold", name = "stock", mode = overwrite, check(name = "positive", expr = "qty > 0"))]
    pub struct Stock {
        pub id: i64,
        pub qty: i64,
        pub site: String,
    }
}

#[derive(Serialize)]
struct RegionOrder {
    id: i64,
    amount: Option<i64>,
    region: String,
}

#[derive(Serialize)]
struct Order {
    id: i64,
    amount: Option<i64>,
}

#[derive(Serialize)]
struct TextOrder {
    id: i64,
    amount: Option<String>,
}

fn txn(version: i64) -> WriteOptions {
    WriteOptions {
        transaction: Some(("orders_pipeline".to_owned(), version)),
        ..WriteOptions::default()
    }
}

const ORDERS: &lakehouse_runtime::TableDef = <v1::Orders as lakehouse_runtime::Table>::DEF;

#[tokio::test]
async fn a_table_folder_with_files_but_no_log_is_not_taken_over() {
    let wh = TempWarehouse::new();
    // The log lost, a data file left.
    let folder = wh.dir.path().join("warehouse/silver/orders");
    std::fs::create_dir_all(&folder).expect("folder");
    std::fs::write(folder.join("part-0.parquet"), b"PAR1").expect("file");
    let row = [Order {
        id: 1,
        amount: Some(5),
    }];
    let error = write(&wh.warehouse, v1::Orders::DEF, &row, txn(1))
        .await
        .expect_err("not a table");
    let message = error.to_string();
    assert!(
        message.contains("silver.orders: its folder")
            && message.contains("holds files (`part-0.parquet`, ...) but no Delta log"),
        "{message}"
    );
    assert!(folder.join("part-0.parquet").is_file());
    assert!(!folder.join("_delta_log").exists());
    // Nor is it read as a table never written: its readers got no rows, and an overwrite
    // downstream of it wrote its own table empty.
    let session = wh.warehouse.session();
    let Err(error) = wh.warehouse.read(&session, v1::Orders::DEF).await else {
        panic!("read as empty");
    };
    assert!(
        error
            .to_string()
            .contains("holds files (`part-0.parquet`, ...) but no Delta log"),
        "{error}"
    );
    // Nor with an empty log folder beside them (delta-rs then finds no table).
    std::fs::create_dir(folder.join("_delta_log")).expect("an empty log");
    let Err(error) = wh.warehouse.read(&session, v1::Orders::DEF).await else {
        panic!("read as empty");
    };
    assert!(
        error
            .to_string()
            .contains("holds files (`part-0.parquet`, ...) but no Delta log"),
        "{error}"
    );
    std::fs::remove_dir(folder.join("_delta_log")).expect("removed");
    // An empty folder (a table created by hand, say) is fine.
    std::fs::remove_file(folder.join("part-0.parquet")).expect("remove");
    write(&wh.warehouse, v1::Orders::DEF, &row, txn(1))
        .await
        .expect("created");
}

#[tokio::test]
async fn replaying_a_transaction_changes_nothing() {
    let wh = TempWarehouse::new();
    let rows = [Order {
        id: 1,
        amount: Some(10),
    }];
    let first = write(&wh.warehouse, ORDERS, &rows, txn(7))
        .await
        .expect("write");
    assert!(first.committed);
    let version = wh.warehouse.version(ORDERS).await.expect("version");
    let replay = write(
        &wh.warehouse,
        ORDERS,
        &[Order {
            id: 2,
            amount: Some(20),
        }],
        txn(7),
    )
    .await
    .expect("replay");
    assert!(!replay.committed, "same (app id, version): skipped");
    let older = write(
        &wh.warehouse,
        ORDERS,
        &[Order {
            id: 3,
            amount: Some(30),
        }],
        txn(6),
    )
    .await
    .expect("older");
    assert!(
        !older.committed,
        "an older version of the same app: skipped"
    );
    assert_eq!(
        wh.warehouse.version(ORDERS).await.expect("version"),
        version
    );
    assert_eq!(contents(&wh.warehouse, ORDERS).await, lines(&["1|10"]));
    let next = write(
        &wh.warehouse,
        ORDERS,
        &[Order {
            id: 2,
            amount: Some(20),
        }],
        txn(8),
    )
    .await
    .expect("next");
    assert!(next.committed);
    assert_eq!(
        contents(&wh.warehouse, ORDERS).await,
        lines(&["1|10", "2|20"])
    );
}

#[tokio::test]
async fn an_incompatible_type_change_fails_and_leaves_the_table_as_it_was() {
    let wh = TempWarehouse::new();
    write(
        &wh.warehouse,
        ORDERS,
        &[Order {
            id: 1,
            amount: Some(10),
        }],
        WriteOptions::default(),
    )
    .await
    .expect("write");
    let version = wh.warehouse.version(ORDERS).await.expect("version");
    let changed = <v2::Orders as lakehouse_runtime::Table>::DEF;
    let error = write(
        &wh.warehouse,
        changed,
        &[TextOrder {
            id: 2,
            amount: Some("x".into()),
        }],
        WriteOptions::default(),
    )
    .await
    .expect_err("type change");
    let message = error.to_string();
    for part in [
        "silver.orders",
        "amount",
        "declared STRING",
        "stores BIGINT",
        "not compatible",
    ] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
    assert_eq!(
        wh.warehouse.version(ORDERS).await.expect("version"),
        version
    );
    assert_eq!(contents(&wh.warehouse, ORDERS).await, lines(&["1|10"]));
}

#[tokio::test]
async fn a_field_made_optional_drops_the_stored_not_null() {
    let wh = TempWarehouse::new();
    let required = <strict::Orders as lakehouse_runtime::Table>::DEF;
    let row = Order {
        id: 1,
        amount: Some(10),
    };
    write(&wh.warehouse, required, &[&row], WriteOptions::default())
        .await
        .expect("write");
    // Declared `Option<i64>` now: a NULL amount is written.
    write(
        &wh.warehouse,
        ORDERS,
        &[Order {
            id: 2,
            amount: None,
        }],
        WriteOptions::default(),
    )
    .await
    .expect("the column is nullable now");
    assert_eq!(
        contents(&wh.warehouse, ORDERS).await,
        lines(&["1|10", "2|∅"])
    );
    let drift = wh.warehouse.drift(ORDERS).await.expect("drift");
    assert!(drift.is_empty(), "{drift:?}");
}

#[tokio::test]
async fn a_stored_null_in_a_column_made_not_null_is_named_as_stored() {
    let wh = TempWarehouse::new();
    let row = Order {
        id: 1,
        amount: None,
    };
    write(&wh.warehouse, ORDERS, &[row], WriteOptions::default())
        .await
        .expect("write");
    let required = <strict::Orders as lakehouse_runtime::Table>::DEF;
    let session = wh.warehouse.session();
    let error = wh
        .warehouse
        .read(&session, required)
        .await
        .expect("the plan")
        .collect()
        .await
        .expect_err("a stored NULL");
    let message = error.to_string();
    assert!(
        message.contains(
            "column `silver.orders.amount` is declared NOT NULL, but the stored table holds a \
             NULL in it"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn a_new_not_null_column_is_refused_on_a_table_with_rows() {
    let wh = TempWarehouse::new();
    write(
        &wh.warehouse,
        ORDERS,
        &[Order {
            id: 1,
            amount: Some(10),
        }],
        WriteOptions::default(),
    )
    .await
    .expect("write");
    let version = wh.warehouse.version(ORDERS).await.expect("version");
    let row = RegionOrder {
        id: 2,
        amount: Some(20),
        region: "eu".into(),
    };
    let required = <v3::Orders as lakehouse_runtime::Table>::DEF;
    let error = write(&wh.warehouse, required, &[&row], WriteOptions::default())
        .await
        .expect_err("the existing row has no region");
    let message = error.to_string();
    for part in [
        "silver.orders",
        "column `region` is new and declared NOT NULL (STRING)",
        "declare it as an `Option<_>`",
    ] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
    // `orchestrate check` knows it beforehand: the drift is incompatible.
    let drift = crate::common::incompatible_drift(&wh.warehouse, required).await;
    assert!(
        drift.to_string().ends_with(
            "declared NOT NULL, and the table's rows have no value for it: writes will fail \
             (declare it as an `Option<_>`, or rebuild the table)"
        ),
        "{drift}"
    );
    assert_eq!(
        wh.warehouse.version(ORDERS).await.expect("version"),
        version
    );
    // Declared optional, it is added, and the old row reads with NULL.
    let optional = <v4::Orders as lakehouse_runtime::Table>::DEF;
    write(&wh.warehouse, optional, &[&row], WriteOptions::default())
        .await
        .expect("optional column added");
    assert_eq!(
        contents(&wh.warehouse, optional).await,
        lines(&["1|10|∅", "2|20|eu"])
    );
}

#[tokio::test]
async fn a_dropped_checks_record_is_forgotten_even_after_a_failed_write() {
    let wh = TempWarehouse::new();
    let order = |id, amount| Order {
        id,
        amount: Some(amount),
    };
    write(
        &wh.warehouse,
        ORDERS,
        &[order(1, 10)],
        WriteOptions::default(),
    )
    .await
    .expect("with positive_amount");
    // `positive_amount` dropped, `big_amount` refused (the stored 10 fails it): the write fails.
    let swapped = <swapped_check::Orders as lakehouse_runtime::Table>::DEF;
    write(
        &wh.warehouse,
        swapped,
        &[order(2, 200)],
        WriteOptions::default(),
    )
    .await
    .expect_err("big_amount cannot be added");
    // A later write forgets `positive_amount`'s record, so another tool's constraint of that
    // name is its own, and kept.
    let unchecked = <unchecked::Orders as lakehouse_runtime::Table>::DEF;
    write(
        &wh.warehouse,
        unchecked,
        &[order(3, 30)],
        WriteOptions::default(),
    )
    .await
    .expect("no checks");
    let delta = wh
        .warehouse
        .load(unchecked)
        .await
        .expect("load")
        .expect("table");
    delta
        .add_constraint()
        .with_constraint("positive_amount", "amount < 1000")
        .await
        .expect("added by another tool");
    write(
        &wh.warehouse,
        unchecked,
        &[order(4, 40)],
        WriteOptions::default(),
    )
    .await
    .expect("passes it");
    let delta = wh
        .warehouse
        .load(unchecked)
        .await
        .expect("load")
        .expect("table");
    assert!(
        delta
            .snapshot()
            .expect("loaded")
            .metadata()
            .configuration()
            .contains_key("delta.constraints.positive_amount"),
        "the other tool's constraint is kept"
    );
}

#[tokio::test]
async fn a_check_another_tool_added_is_kept_and_named_when_rows_fail_it() {
    let wh = TempWarehouse::new();
    let unchecked = <unchecked::Orders as lakehouse_runtime::Table>::DEF;
    let order = |id, amount| Order {
        id,
        amount: Some(amount),
    };
    write(
        &wh.warehouse,
        unchecked,
        &[order(1, 10)],
        WriteOptions::default(),
    )
    .await
    .expect("write");
    // Spark's `ALTER TABLE .. ADD CONSTRAINT`: the declaration never had it.
    let delta = wh
        .warehouse
        .load(unchecked)
        .await
        .expect("load")
        .expect("table");
    delta
        .add_constraint()
        .with_constraint("spark_positive", "amount > 0")
        .await
        .expect("added by another tool");

    write(
        &wh.warehouse,
        unchecked,
        &[order(2, 5)],
        WriteOptions::default(),
    )
    .await
    .expect("the rows pass it");
    let delta = wh
        .warehouse
        .load(unchecked)
        .await
        .expect("load")
        .expect("table");
    let configuration = delta
        .snapshot()
        .expect("loaded")
        .metadata()
        .configuration()
        .clone();
    assert!(
        configuration.contains_key("delta.constraints.spark_positive"),
        "kept: {configuration:?}"
    );
    let error = write(
        &wh.warehouse,
        unchecked,
        &[order(3, -1)],
        WriteOptions::default(),
    )
    .await
    .expect_err("fails the other tool's constraint");
    assert!(
        matches!(error, lakehouse_runtime::Error::Quality(_))
            && error
                .to_string()
                .contains("`spark_positive` (amount > 0, added by another tool: not declared)"),
        "{error}"
    );
    assert_eq!(
        contents(&wh.warehouse, unchecked).await,
        lines(&["1|10", "2|5"])
    );
}

#[tokio::test]
async fn a_check_violation_fails_and_leaves_the_table_as_it_was() {
    let wh = TempWarehouse::new();
    write(
        &wh.warehouse,
        ORDERS,
        &[Order {
            id: 1,
            amount: Some(10),
        }],
        WriteOptions::default(),
    )
    .await
    .expect("write");
    let version = wh.warehouse.version(ORDERS).await.expect("version");
    let error = write(
        &wh.warehouse,
        ORDERS,
        &[Order {
            id: 2,
            amount: Some(-5),
        }],
        WriteOptions::default(),
    )
    .await
    .expect_err("violates the CHECK");
    assert!(
        matches!(error, lakehouse_runtime::Error::Quality(_))
            && error.to_string().starts_with(
                "silver.orders: at least 1 row(s) of the write fail its CHECK constraints \
                 `positive_amount` (amount IS NULL OR amount > 0) or a NOT NULL column"
            ),
        "{error}"
    );
    // The rows themselves stay out of the error (it reaches the ledger and the webhook).
    assert!(!error.to_string().contains("-5"), "{error}");
    assert_eq!(
        wh.warehouse.version(ORDERS).await.expect("version"),
        version
    );
    assert_eq!(contents(&wh.warehouse, ORDERS).await, lines(&["1|10"]));
}

#[tokio::test]
async fn a_check_added_to_the_declaration_reaches_the_existing_table() {
    let wh = TempWarehouse::new();
    let order = |id, amount| Order {
        id,
        amount: Some(amount),
    };
    let unchecked = <unchecked::Orders as lakehouse_runtime::Table>::DEF;
    write(
        &wh.warehouse,
        unchecked,
        &[order(1, 10)],
        WriteOptions::default(),
    )
    .await
    .expect("write");
    // The declaration gains `positive_amount`: the next write adds it, then obeys it.
    let error = write(
        &wh.warehouse,
        ORDERS,
        &[order(2, -5)],
        WriteOptions::default(),
    )
    .await
    .expect_err("violates the new CHECK");
    assert!(error.to_string().contains("silver.orders"), "{error}");
    write(
        &wh.warehouse,
        ORDERS,
        &[order(3, 30)],
        WriteOptions::default(),
    )
    .await
    .expect("satisfies it");
    assert_eq!(
        contents(&wh.warehouse, ORDERS).await,
        lines(&["1|10", "3|30"])
    );
}

#[tokio::test]
async fn a_check_on_a_new_column_is_added_with_the_column() {
    #[derive(Serialize)]
    struct Discounted {
        id: i64,
        amount: Option<i64>,
        discount: Option<i64>,
    }
    let wh = TempWarehouse::new();
    let unchecked = <unchecked::Orders as lakehouse_runtime::Table>::DEF;
    let order = Order {
        id: 1,
        amount: Some(10),
    };
    write(&wh.warehouse, unchecked, &[order], WriteOptions::default())
        .await
        .expect("write");
    let discounted = <with_discount::Orders as lakehouse_runtime::Table>::DEF;
    let row = |id, discount| Discounted {
        id,
        amount: Some(10),
        discount: Some(discount),
    };
    write(
        &wh.warehouse,
        discounted,
        &[row(2, 3)],
        WriteOptions::default(),
    )
    .await
    .expect("the column, then its CHECK");
    let error = write(
        &wh.warehouse,
        discounted,
        &[row(3, -1)],
        WriteOptions::default(),
    )
    .await
    .expect_err("violates the new CHECK");
    assert!(error.to_string().contains("silver.orders"), "{error}");
    assert_eq!(
        contents(&wh.warehouse, discounted).await,
        lines(&["1|10|∅", "2|10|3"])
    );
}

#[tokio::test]
async fn a_check_changed_so_that_stored_rows_fail_it_keeps_the_old_one() {
    let wh = TempWarehouse::new();
    let row = |id, amount| Order {
        id,
        amount: Some(amount),
    };
    write(
        &wh.warehouse,
        ORDERS,
        &[row(1, 10)],
        WriteOptions::default(),
    )
    .await
    .expect("write");
    let stricter = <stricter::Orders as lakehouse_runtime::Table>::DEF;
    let error = write(
        &wh.warehouse,
        stricter,
        &[row(2, 200)],
        WriteOptions::default(),
    )
    .await
    .expect_err("the stored row fails the new expression");
    assert!(
        error.to_string().contains(
            "cannot change the CHECK constraint `positive_amount` to `amount > 100`: 1 stored \
             row(s) fail it"
        ),
        "{error}"
    );
    // The old constraint still holds.
    let negative = write(
        &wh.warehouse,
        ORDERS,
        &[row(3, -1)],
        WriteOptions::default(),
    )
    .await
    .expect_err("the old constraint");
    assert!(
        negative.to_string().contains("positive_amount"),
        "{negative}"
    );
    assert_eq!(contents(&wh.warehouse, ORDERS).await, lines(&["1|10"]));
}

#[tokio::test]
async fn a_check_changed_to_an_expression_ending_with_a_comment_replaces_the_old_one() {
    let wh = TempWarehouse::new();
    let row = |id, amount| Order {
        id,
        amount: Some(amount),
    };
    write(
        &wh.warehouse,
        ORDERS,
        &[row(1, 10)],
        WriteOptions::default(),
    )
    .await
    .expect("write");
    // The comment swallowed the text the stored rows were counted with: every write failed.
    let commented = <commented_check::Orders as lakehouse_runtime::Table>::DEF;
    write(
        &wh.warehouse,
        commented,
        &[row(2, 0)],
        WriteOptions::default(),
    )
    .await
    .expect("the stored row passes the new expression");
    let negative = write(
        &wh.warehouse,
        commented,
        &[row(3, -1)],
        WriteOptions::default(),
    )
    .await
    .expect_err("the new constraint");
    assert!(
        negative.to_string().contains("positive_amount"),
        "{negative}"
    );
    assert_eq!(
        contents(&wh.warehouse, commented).await,
        lines(&["1|10", "2|0"])
    );
}

#[tokio::test]
async fn a_check_that_cannot_be_added_fails_every_write() {
    let wh = TempWarehouse::new();
    let mistyped = <mistyped_check::Orders as lakehouse_runtime::Table>::DEF;
    for attempt in 1..=2 {
        let error = write(
            &wh.warehouse,
            mistyped,
            &[Order {
                id: attempt,
                amount: Some(-1),
            }],
            WriteOptions::default(),
        )
        .await
        .expect_err("the constraint cannot be added");
        let message = error.to_string();
        assert!(
            message.contains("silver.orders")
                && message.contains("cannot add the declared CHECK constraint(s) `positive`"),
            "attempt {attempt}: {message}"
        );
    }
    assert!(contents(&wh.warehouse, mistyped).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_creating_a_table_at_once_make_one_table() {
    // Two warehouses on one folder stand for two processes' first runs.
    let events = <checkpointed::Events as lakehouse_runtime::Table>::DEF;
    for round in 0..8 {
        let wh = TempWarehouse::new();
        let root = wh.dir.path().join("warehouse");
        let other = lakehouse_runtime::store::Warehouse::open(root.to_str().expect("utf-8"))
            .expect("the same warehouse");
        let (first, second) = tokio::join!(
            tokio::spawn({
                let warehouse = wh.warehouse.clone();
                async move { warehouse.ensure(events).await }
            }),
            tokio::spawn(async move { other.ensure(events).await })
        );
        let first = first.expect("task").expect("created or found");
        let second = second.expect("task").expect("created or found");
        // One CREATE: a second would commit version 1 with a new table id.
        assert_eq!(
            wh.warehouse.version(events).await.expect("version"),
            Some(0),
            "round {round}"
        );
        let id = |delta: &lakehouse_runtime::deltalake::DeltaTable| {
            delta.snapshot().expect("loaded").metadata().id().to_owned()
        };
        assert_eq!(id(&first), id(&second), "round {round}");
    }
}

#[tokio::test]
async fn an_error_after_the_commit_is_not_a_failed_write() {
    #[derive(Serialize)]
    struct Event {
        id: i64,
    }
    let wh = TempWarehouse::new();
    let events = <checkpointed::Events as lakehouse_runtime::Table>::DEF;
    // Version 0 creates the table; the checkpoint after version 1 cannot be written.
    wh.warehouse.ensure(events).await.expect("created");
    let log = crate::common::table_folder(&wh.warehouse, events).join("_delta_log");
    std::fs::create_dir_all(log.join("00000000000000000001.checkpoint.parquet"))
        .expect("blocking directory");
    let outcome = write(
        &wh.warehouse,
        events,
        &[Event { id: 1 }],
        WriteOptions::default(),
    )
    .await
    .expect("the rows were committed: the write succeeded");
    assert!(outcome.committed);
    assert_eq!(contents(&wh.warehouse, events).await, lines(&["1"]));
}

#[tokio::test]
async fn an_error_after_a_merge_or_scd2_commit_is_not_a_failed_write() {
    #[derive(Serialize)]
    struct Event {
        id: i64,
        n: i64,
    }
    // The third write's rows (inserted, updated): before, an error after the commit gave 0.
    for (table, third) in [
        (
            <checkpointed_merge::Events as lakehouse_runtime::Table>::DEF,
            (0, 1),
        ),
        (
            <checkpointed_scd2::Events as lakehouse_runtime::Table>::DEF,
            (1, 1),
        ),
    ] {
        let wh = TempWarehouse::new();
        wh.warehouse.ensure(table).await.expect("created");
        // The checkpoint after version 3 (the third write: an update) cannot be written.
        let log = crate::common::table_folder(&wh.warehouse, table).join("_delta_log");
        std::fs::create_dir_all(log.join("00000000000000000003.checkpoint.parquet"))
            .expect("blocking directory");
        for n in 1..=3 {
            let options = WriteOptions {
                run_at: Some(Timestamp(n * 86_400_000_000)),
                ..WriteOptions::default()
            };
            let outcome = write(&wh.warehouse, table, &[Event { id: 1, n }], options)
                .await
                .unwrap_or_else(|e| panic!("{}: write {n} committed: {e}", table.qualified_name()));
            assert!(outcome.committed);
            assert_eq!(
                outcome.version,
                Some(n as u64),
                "{}",
                table.qualified_name()
            );
            if n == 3 {
                assert_eq!(
                    (outcome.rows_inserted, outcome.rows_updated),
                    third,
                    "{}",
                    table.qualified_name()
                );
            }
        }
        assert_eq!(
            wh.warehouse.version(table).await.expect("version"),
            Some(3),
            "{}: no write twice",
            table.qualified_name()
        );
    }
}

#[tokio::test]
async fn time_travel_reads_an_older_version() {
    let wh = TempWarehouse::new();
    write(
        &wh.warehouse,
        ORDERS,
        &[Order {
            id: 1,
            amount: Some(10),
        }],
        WriteOptions::default(),
    )
    .await
    .expect("write");
    let before = wh
        .warehouse
        .version(ORDERS)
        .await
        .expect("version")
        .expect("exists");
    write(
        &wh.warehouse,
        ORDERS,
        &[Order {
            id: 1,
            amount: Some(11),
        }],
        WriteOptions::default(),
    )
    .await
    .expect("write");
    let session = wh.warehouse.session();
    let old = wh
        .warehouse
        .read_version(&session, ORDERS, before)
        .await
        .expect("time travel");
    assert_eq!(crate::common::render(old).await, lines(&["1|10"]));
    assert_eq!(contents(&wh.warehouse, ORDERS).await, lines(&["1|11"]));
}

#[tokio::test]
async fn a_table_never_written_reads_as_empty_with_its_schema() {
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let df = wh.warehouse.read(&session, ORDERS).await.expect("read");
    let names: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["id", "amount"]);
    assert_eq!(df.count().await.expect("count"), 0);
    assert!(
        wh.warehouse
            .local_root()
            .expect("local")
            .join("silver")
            .read_dir()
            .is_err(),
        "reading creates nothing"
    );
}

#[tokio::test]
async fn optimize_compacts_and_vacuum_refuses_short_retention() {
    let wh = TempWarehouse::new();
    for id in 0..3 {
        write(
            &wh.warehouse,
            ORDERS,
            &[Order {
                id,
                amount: Some(1),
            }],
            WriteOptions::default(),
        )
        .await
        .expect("write");
    }
    let report = wh.warehouse.optimize(ORDERS).await.expect("optimize");
    assert!(report.files_removed >= 3, "{report:?}");
    assert_eq!(report.files_added, 1);
    assert_eq!(
        contents(&wh.warehouse, ORDERS).await,
        lines(&["0|1", "1|1", "2|1"])
    );
    let refused = wh
        .warehouse
        .vacuum(ORDERS, Some(Duration::from_secs(3600)), true, false)
        .await;
    let refused = refused.expect_err("short retention").to_string();
    assert!(
        refused.contains(
            "a retention of 1h is under the table's `delta.deletedFileRetentionDuration` of 7days"
        ),
        "{refused}"
    );
    // By default, the table's own retention: the files replaced just now stay.
    let kept = wh
        .warehouse
        .vacuum(ORDERS, None, true, false)
        .await
        .expect("default retention");
    assert!(kept.files.is_empty(), "{kept:?}");
    let dry = wh
        .warehouse
        .vacuum(ORDERS, Some(Duration::ZERO), true, true)
        .await
        .expect("forced dry run");
    assert!(dry.dry_run);
    assert!(!dry.files.is_empty(), "the compacted files are vacuumable");
    let done = wh
        .warehouse
        .vacuum(ORDERS, Some(Duration::ZERO), false, true)
        .await
        .expect("vacuum");
    assert_eq!(done.files.len(), dry.files.len());
    assert_eq!(
        contents(&wh.warehouse, ORDERS).await,
        lines(&["0|1", "1|1", "2|1"])
    );
    // Vacuumed again: the removals stay in the log until a checkpoint, but their files are
    // gone, and nothing is reported, or committed (delta-rs counted them as deleted each time,
    // in two commits).
    let version = wh.warehouse.version(ORDERS).await.expect("version");
    for dry_run in [true, false] {
        let again = wh
            .warehouse
            .vacuum(ORDERS, Some(Duration::ZERO), dry_run, true)
            .await
            .expect("vacuum again");
        assert!(again.files.is_empty(), "{again:?}");
    }
    assert_eq!(
        wh.warehouse.version(ORDERS).await.expect("version"),
        version
    );
}

#[tokio::test]
async fn vacuum_does_not_follow_a_symbolic_link_out_of_the_table() {
    let wh = TempWarehouse::new();
    let row = [Order {
        id: 1,
        amount: Some(1),
    }];
    write(&wh.warehouse, ORDERS, &row, WriteOptions::default())
        .await
        .expect("write");
    // A folder outside the warehouse, linked from inside the table's, with an old file.
    let outside = wh.dir.path().join("outside");
    std::fs::create_dir(&outside).expect("dir");
    std::fs::write(outside.join("precious.parquet"), b"PAR1").expect("file");
    let link = wh.dir.path().join("warehouse/silver/orders/linked");
    std::os::unix::fs::symlink(&outside, &link).expect("symlink");
    let error = wh
        .warehouse
        .vacuum(ORDERS, Some(Duration::ZERO), false, true)
        .await
        .expect_err("a link in the table");
    let message = error.to_string();
    assert!(
        message.contains("orders/linked is a symbolic link, which vacuum would follow"),
        "{message}"
    );
    assert!(outside.join("precious.parquet").is_file());
    assert_eq!(contents(&wh.warehouse, ORDERS).await, lines(&["1|1"]));
    // A dry run lists what would go, behind the link too, as the refused vacuum would delete.
    let listed = wh
        .warehouse
        .vacuum(ORDERS, Some(Duration::ZERO), true, true)
        .await
        .expect("a dry run lists");
    assert!(
        listed.files.iter().any(|f| f.contains("precious.parquet")),
        "{:?}",
        listed.files
    );
    assert!(
        listed
            .refused
            .iter()
            .any(|reason| reason.contains("orders/linked is a symbolic link")),
        "a dry run says the vacuum would be refused: {:?}",
        listed.refused
    );
    // The table's folder itself a link: refused too.
    std::fs::remove_file(&link).expect("unlinked");
    let table = wh.dir.path().join("warehouse/silver/orders");
    let moved = wh.dir.path().join("orders_elsewhere");
    std::fs::rename(&table, &moved).expect("moved");
    std::os::unix::fs::symlink(&moved, &table).expect("symlink");
    let error = wh
        .warehouse
        .vacuum(ORDERS, Some(Duration::ZERO), false, true)
        .await
        .expect_err("a linked table folder");
    assert!(
        error
            .to_string()
            .contains("silver/orders is a symbolic link"),
        "{error}"
    );
}

#[tokio::test]
async fn tables_carry_comments_properties_and_not_null() {
    let wh = TempWarehouse::new();
    write(
        &wh.warehouse,
        ORDERS,
        &[Order {
            id: 1,
            amount: None,
        }],
        WriteOptions::default(),
    )
    .await
    .expect("write");
    let drift = wh.warehouse.drift(ORDERS).await.expect("drift");
    assert!(drift.is_empty(), "{drift:?}");
    let log = std::fs::read_to_string(
        wh.warehouse
            .local_root()
            .expect("local")
            .join("silver/orders/_delta_log/00000000000000000000.json"),
    )
    .expect("first commit");
    for part in ["Orders.", "Amount in cents", "\\\"nullable\\\":false"] {
        assert!(
            log.contains(part),
            "{part:?} missing from the first commit: {log}"
        );
    }
    let _ = Timestamp(0);
}

#[tokio::test]
async fn delete_by_key_removes_rows_or_closes_versions() {
    let wh = TempWarehouse::new();
    write(
        &wh.warehouse,
        ORDERS,
        &[
            Order {
                id: 1,
                amount: Some(10),
            },
            Order {
                id: 2,
                amount: Some(20),
            },
            Order {
                id: 3,
                amount: None,
            },
        ],
        WriteOptions::default(),
    )
    .await
    .expect("write");
    let session = wh.warehouse.session();
    let keys = session
        .sql("SELECT CAST(2 AS BIGINT) AS id UNION ALL SELECT CAST(9 AS BIGINT)")
        .await
        .expect("keys");
    let deleted = wh
        .warehouse
        .delete_keys(
            &session,
            ORDERS,
            keys,
            Timestamp(0),
            Some(("cleanup".into(), 1)),
        )
        .await
        .expect("delete");
    assert_eq!(deleted.rows_deleted, 1);
    assert_eq!(
        contents(&wh.warehouse, ORDERS).await,
        lines(&["1|10", "3|∅"])
    );
    let version = wh.warehouse.version(ORDERS).await.expect("version");
    let keys = session
        .sql("SELECT CAST(1 AS BIGINT) AS id")
        .await
        .expect("keys");
    let replay = wh
        .warehouse
        .delete_keys(
            &session,
            ORDERS,
            keys,
            Timestamp(0),
            Some(("cleanup".into(), 1)),
        )
        .await
        .expect("replay");
    assert!(!replay.committed);
    assert_eq!(
        wh.warehouse.version(ORDERS).await.expect("version"),
        version
    );
    assert_eq!(
        replay.version, version,
        "the table's version, as a skipped write says"
    );
    assert_eq!(
        contents(&wh.warehouse, ORDERS).await,
        lines(&["1|10", "3|∅"])
    );
    // A delete matching no row commits nothing, and says so.
    let keys = session
        .sql("SELECT CAST(42 AS BIGINT) AS id")
        .await
        .expect("keys");
    let nothing = wh
        .warehouse
        .delete_keys(
            &session,
            ORDERS,
            keys,
            Timestamp(0),
            Some(("cleanup".into(), 2)),
        )
        .await
        .expect("delete");
    assert_eq!((nothing.committed, nothing.rows_deleted), (false, 0));
    assert_eq!(
        wh.warehouse.version(ORDERS).await.expect("version"),
        version
    );
    // Keys of another type would match after a conversion (text as a number: "1.0" is 1):
    // refused, naming both types.
    for keys in ["SELECT '1.0' AS id", "SELECT CAST(1.9 AS DOUBLE) AS id"] {
        let keys = session.sql(keys).await.expect("keys");
        let error = wh
            .warehouse
            .delete_keys(&session, ORDERS, keys, Timestamp(0), None)
            .await
            .expect_err("another type")
            .to_string();
        assert!(
            error.contains("cannot delete by key: key column `id` of the keys is")
                && error.contains("the table's is BIGINT; cast the keys to BIGINT"),
            "{error}"
        );
    }
    // An `i32` for an `i64` key is the same value: taken.
    let keys = session
        .sql("SELECT CAST(3 AS INT) AS id")
        .await
        .expect("keys");
    let widened = wh
        .warehouse
        .delete_keys(&session, ORDERS, keys, Timestamp(0), None)
        .await
        .expect("an exact widening");
    assert_eq!(widened.rows_deleted, 1);
    let keys = session.sql("SELECT 1 AS other").await.expect("keys");
    let error = wh
        .warehouse
        .delete_keys(&session, ORDERS, keys, Timestamp(0), None)
        .await
        .expect_err("no key column")
        .to_string();
    assert!(error.contains("the keys have no column `id`"), "{error}");
    assert_eq!(contents(&wh.warehouse, ORDERS).await, lines(&["1|10"]));
}

/// `silver.orders` keyed by its amount instead.
mod keyed_by_amount {
    use lakehouse_runtime::prelude::*;

    /// Orders.
    #[derive(Table)]
    #[table(schema = "silver", name = "orders", key(amount), mode = merge)]
    pub struct Orders {
        pub id: i64,
        pub amount: i64,
    }
}

/// The error of deleting the keys `keys` (a query) from `table`, which must be refused.
async fn refused_delete(
    wh: &TempWarehouse,
    table: &'static lakehouse_runtime::TableDef,
    keys: &str,
) -> String {
    let session = wh.warehouse.session();
    let keys = session.sql(keys).await.expect("keys");
    wh.warehouse
        .delete_keys(&session, table, keys, Timestamp(0), None)
        .await
        .expect_err("the stored key differs")
        .to_string()
}

/// Order lines, appended, keyed by order and line.
mod lines_by_line {
    use lakehouse_runtime::prelude::*;

    /// Order lines.
    #[derive(Table, serde::Serialize)]
    #[table(schema = "silver", name = "order_lines", key(order_id, line), mode = append)]
    pub struct OrderLines {
        pub order_id: i64,
        pub line: i64,
    }
}

/// The same lines, append-only (`delta.appendOnly`).
mod append_only_lines {
    use lakehouse_runtime::prelude::*;

    /// Order lines.
    #[derive(Table, serde::Serialize)]
    #[table(schema = "silver", name = "order_lines", key(order_id, line), mode = append, property(key = "delta.appendOnly", value = "true"))]
    pub struct OrderLines {
        pub order_id: i64,
        pub line: i64,
    }
}

#[tokio::test]
async fn delete_by_key_from_an_append_only_table_is_refused_before_any_rewrite() {
    let wh = TempWarehouse::new();
    let table = <append_only_lines::OrderLines as lakehouse_runtime::Table>::DEF;
    let rows =
        [(1, 1), (2, 1)].map(|(order_id, line)| append_only_lines::OrderLines { order_id, line });
    write(&wh.warehouse, table, &rows, WriteOptions::default())
        .await
        .expect("write");
    let files = || {
        std::fs::read_dir(crate::common::table_folder(&wh.warehouse, table))
            .expect("table folder")
            .filter(|entry| {
                let path = entry.as_ref().expect("entry").path();
                path.extension().is_some_and(|e| e == "parquet")
            })
            .count()
    };
    let before = files();
    let refused = refused_delete(
        &wh,
        table,
        "SELECT CAST(1 AS BIGINT) AS order_id, CAST(1 AS BIGINT) AS line",
    )
    .await;
    assert!(
        refused.contains(
            "cannot delete by key from silver.order_lines: it is append-only (`delta.appendOnly`)"
        ),
        "{refused}"
    );
    assert!(refused.contains("(1 match the keys)"), "{refused}");
    // No file rewritten and left behind.
    assert_eq!(files(), before);
    assert_eq!(contents(&wh.warehouse, table).await, lines(&["1|1", "2|1"]));
    // Keys it does not hold delete nothing, and are no error (an erasure sweep over every
    // table passes it).
    let session = wh.warehouse.session();
    let absent = session
        .sql("SELECT CAST(9 AS BIGINT) AS order_id, CAST(1 AS BIGINT) AS line")
        .await
        .expect("keys");
    let outcome = wh
        .warehouse
        .delete_keys(&session, table, absent, Timestamp(0), None)
        .await
        .expect("nothing to delete");
    assert!(
        !outcome.committed && outcome.rows_deleted == 0,
        "{outcome:?}"
    );
    assert_eq!(files(), before);
}

/// The same lines, keyed by order alone.
mod lines_by_order {
    use lakehouse_runtime::prelude::*;

    /// Order lines.
    #[derive(Table)]
    #[table(schema = "silver", name = "order_lines", key(order_id), mode = append)]
    pub struct OrderLines {
        pub order_id: i64,
        pub line: i64,
    }
}

#[tokio::test]
async fn delete_by_key_from_an_append_table_refuses_a_narrower_key() {
    let wh = TempWarehouse::new();
    let by_line = <lines_by_line::OrderLines as lakehouse_runtime::Table>::DEF;
    let rows =
        [(1, 1), (1, 2)].map(|(order_id, line)| lines_by_line::OrderLines { order_id, line });
    write(&wh.warehouse, by_line, &rows, WriteOptions::default())
        .await
        .expect("write");
    let refused = refused_delete(
        &wh,
        <lines_by_order::OrderLines as lakehouse_runtime::Table>::DEF,
        "SELECT CAST(1 AS BIGINT) AS order_id",
    )
    .await;
    assert!(
        refused.contains(
            "cannot delete by key (order_id): the table was written with key (order_id, line)"
        ),
        "{refused}"
    );
    assert_eq!(
        contents(&wh.warehouse, by_line).await,
        lines(&["1|1", "1|2"])
    );
}

#[tokio::test]
async fn a_write_deleting_keys_of_an_append_table_is_refused() {
    let wh = TempWarehouse::new();
    let by_line = <lines_by_line::OrderLines as lakehouse_runtime::Table>::DEF;
    let rows = [lines_by_line::OrderLines {
        order_id: 1,
        line: 1,
    }];
    write(&wh.warehouse, by_line, &rows, WriteOptions::default())
        .await
        .expect("write");
    let session = wh.warehouse.session();
    let keys = session
        .sql("SELECT CAST(1 AS BIGINT) AS order_id, CAST(1 AS BIGINT) AS line")
        .await
        .expect("keys");
    let more = [lines_by_line::OrderLines {
        order_id: 2,
        line: 1,
    }];
    // It appended the rows and deleted nothing, saying so in no way.
    let refused = write(
        &wh.warehouse,
        by_line,
        &more,
        WriteOptions {
            deletions: lakehouse_runtime::store::Deletions::Keys(keys),
            ..WriteOptions::default()
        },
    )
    .await
    .expect_err("an append deletes nothing")
    .to_string();
    assert!(
        refused.contains(
            "silver.order_lines is an `append` table: a write deletes keys only from `merge` and \
             `scd2` tables; delete its rows with `Warehouse::delete_keys`"
        ),
        "{refused}"
    );
    // Nor does a full snapshot's: its missing keys stay.
    let refused = write(
        &wh.warehouse,
        by_line,
        &more,
        WriteOptions {
            deletions: lakehouse_runtime::store::Deletions::MissingFromSource,
            ..WriteOptions::default()
        },
    )
    .await
    .expect_err("an append deletes nothing")
    .to_string();
    assert!(refused.contains("is an `append` table"), "{refused}");
    assert_eq!(contents(&wh.warehouse, by_line).await, lines(&["1|1"]));
}

#[tokio::test]
async fn delete_by_key_refuses_a_key_other_than_the_stored_one() {
    let wh = TempWarehouse::new();
    write(
        &wh.warehouse,
        ORDERS,
        &[
            Order {
                id: 1,
                amount: Some(10),
            },
            Order {
                id: 2,
                amount: Some(10),
            },
        ],
        WriteOptions::default(),
    )
    .await
    .expect("write");
    let refused = refused_delete(
        &wh,
        <keyed_by_amount::Orders as lakehouse_runtime::Table>::DEF,
        "SELECT CAST(10 AS BIGINT) AS amount",
    )
    .await;
    assert!(refused.contains("cannot delete by key"), "{refused}");
    assert_eq!(
        contents(&wh.warehouse, ORDERS).await,
        lines(&["1|10", "2|10"])
    );
}

mod zordered {
    use lakehouse_runtime::prelude::*;

    /// Events Z-ordered by user and time, in small target files.
    #[derive(Table)]
    #[table(
        schema = "silver",
        name = "events",
        z_order(user_id, at),
        target_file_size = 1048576
    )]
    pub struct Events {
        pub user_id: i64,
        pub at: i64,
    }
}

#[derive(Serialize)]
struct Event {
    user_id: i64,
    at: i64,
}

#[tokio::test]
async fn optimize_z_orders_declared_columns() {
    let wh = TempWarehouse::new();
    let events = <zordered::Events as lakehouse_runtime::Table>::DEF;
    for batch in 0..3 {
        let rows: Vec<Event> = (0..50)
            .map(|i| Event {
                user_id: (i * 7 + batch) % 13,
                at: i,
            })
            .collect();
        write(&wh.warehouse, events, &rows, WriteOptions::default())
            .await
            .expect("write");
    }
    let report = wh.warehouse.optimize(events).await.expect("optimize");
    assert_eq!(
        (report.files_removed, report.files_added),
        (3, 1),
        "{report:?}"
    );
    let history = std::fs::read_to_string(wh.warehouse.local_root().expect("local").join(format!(
        "silver/events/_delta_log/{:020}.json",
        report.version.expect("version")
    )))
    .expect("the optimize commit");
    assert!(
        history.contains(r#""plannerStrategy":"zOrder""#),
        "{history}"
    );
    let session = wh.warehouse.session();
    assert_eq!(
        wh.warehouse
            .read(&session, events)
            .await
            .expect("read")
            .count()
            .await
            .expect("count"),
        150
    );
    // Unchanged since: nothing to do, nothing committed.
    let again = wh.warehouse.optimize(events).await.expect("optimize again");
    assert_eq!(
        (again.files_removed, again.files_added, again.version),
        (0, 0, report.version),
        "{again:?}"
    );
    // A new write: Z-ordered again.
    write(
        &wh.warehouse,
        events,
        &[Event { user_id: 1, at: 99 }],
        WriteOptions::default(),
    )
    .await
    .expect("write");
    let after_write = wh.warehouse.optimize(events).await.expect("optimize");
    assert_eq!(
        (after_write.files_removed, after_write.files_added),
        (2, 1),
        "{after_write:?}"
    );
}

#[tokio::test]
async fn a_changed_or_removed_check_is_replaced_or_dropped() {
    let wh = TempWarehouse::new();
    let order = |id, amount| Order {
        id,
        amount: Some(amount),
    };
    write(
        &wh.warehouse,
        ORDERS,
        &[order(1, 10)],
        WriteOptions::default(),
    )
    .await
    .expect("write");
    // `positive_amount` now allows zero: the table takes the new expression.
    let loosened = <loosened::Orders as lakehouse_runtime::Table>::DEF;
    write(
        &wh.warehouse,
        loosened,
        &[order(2, 0)],
        WriteOptions::default(),
    )
    .await
    .expect("zero is allowed now");
    // delta-rs stores its own rewriting of the expression; the declaration is unchanged, so the
    // next write commits its rows and nothing else.
    let before = wh.warehouse.version(loosened).await.expect("version");
    write(
        &wh.warehouse,
        loosened,
        &[order(5, 0)],
        WriteOptions::default(),
    )
    .await
    .expect("zero again");
    assert_eq!(
        wh.warehouse.version(loosened).await.expect("version"),
        before.map(|v| v + 1)
    );
    write(
        &wh.warehouse,
        loosened,
        &[order(3, -1)],
        WriteOptions::default(),
    )
    .await
    .expect_err("still no negative amount");
    // The declaration drops it: nothing checks amounts any more.
    let unchecked = <unchecked::Orders as lakehouse_runtime::Table>::DEF;
    write(
        &wh.warehouse,
        unchecked,
        &[order(4, -4)],
        WriteOptions::default(),
    )
    .await
    .expect("no CHECK left");
    assert_eq!(
        contents(&wh.warehouse, ORDERS).await,
        lines(&["1|10", "2|0", "4|-4", "5|0"])
    );
    // Back to the original: the rows violate it, so every write fails until they are fixed.
    let error = write(
        &wh.warehouse,
        ORDERS,
        &[order(5, 5)],
        WriteOptions::default(),
    )
    .await
    .expect_err("row 4 violates positive_amount");
    assert!(
        error
            .to_string()
            .contains("cannot add the declared CHECK constraint(s) `positive_amount`"),
        "{error}"
    );
    // Its record went with it: another tool's constraint of that name later is kept.
    let delta = wh
        .warehouse
        .load(unchecked)
        .await
        .expect("load")
        .expect("table");
    delta
        .add_constraint()
        .with_constraint("positive_amount", "amount < 1000")
        .await
        .expect("added by another tool");
    write(
        &wh.warehouse,
        unchecked,
        &[order(6, 6)],
        WriteOptions::default(),
    )
    .await
    .expect("passes it");
    let delta = wh
        .warehouse
        .load(unchecked)
        .await
        .expect("load")
        .expect("table");
    assert!(
        delta
            .snapshot()
            .expect("loaded")
            .metadata()
            .configuration()
            .contains_key("delta.constraints.positive_amount"),
        "the other tool's constraint is kept"
    );
}

/// Orders declared with a NOT NULL column the table lacks, keeping the table's columns.
mod kept_channel {
    use lakehouse_runtime::prelude::*;

    /// Orders.
    #[derive(Table)]
    #[table(schema = "silver", name = "orders", key(id), mode = merge, evolution = keep, check(name = "positive_amount", expr = "amount IS NULL OR amount > 0"))]
    pub struct Orders {
        pub id: i64,
        /// Amount in cents
        pub amount: Option<i64>,
        pub channel: String,
    }
}

#[tokio::test]
async fn keep_refuses_a_declared_not_null_column_the_table_lacks() {
    // `evolution = keep` never adds it: the writes dropped it and succeeded, and every read of
    // the table failed on it, while `check` called the drift compatible.
    let wh = TempWarehouse::new();
    let row = [Order {
        id: 1,
        amount: Some(5),
    }];
    write(&wh.warehouse, v1::Orders::DEF, &row, txn(1))
        .await
        .expect("v1");
    let kept = <kept_channel::Orders as lakehouse_runtime::Table>::DEF;
    let drift = wh.warehouse.drift(kept).await.expect("drift");
    assert!(
        drift.iter().any(|d| d.column == "channel"
            && d.is_incompatible()
            && d.to_string()
                .contains("the table keeps its columns (`evolution = keep`)")),
        "{drift:?}"
    );
    let error = write(
        &wh.warehouse,
        kept,
        &[serde_json::json!({"id": 2, "amount": 3, "channel": "web"})],
        txn(2),
    )
    .await
    .expect_err("refused")
    .to_string();
    assert!(
        error.contains("column `channel` is declared NOT NULL but the table has no such column, and `evolution = keep` does not add it"),
        "{error}"
    );
    assert_eq!(
        contents(&wh.warehouse, v1::Orders::DEF).await,
        lines(&["1|5"])
    );
}

#[tokio::test]
async fn a_table_whose_protocol_delta_rs_cannot_write_is_reported() {
    // Another engine turned on a writer feature delta-rs 1.1 lacks: every write fails, and
    // `check` said nothing of it.
    let wh = TempWarehouse::new();
    let row = [Order {
        id: 1,
        amount: Some(5),
    }];
    write(&wh.warehouse, v1::Orders::DEF, &row, txn(1))
        .await
        .expect("written");
    assert_eq!(
        wh.warehouse
            .unwritable(v1::Orders::DEF)
            .await
            .expect("read"),
        None
    );
    let version = wh
        .warehouse
        .version(v1::Orders::DEF)
        .await
        .expect("version")
        .expect("written");
    let log = wh.dir.path().join("warehouse/silver/orders/_delta_log");
    std::fs::write(
        log.join(format!("{:020}.json", version + 1)),
        concat!(
            r#"{"commitInfo":{"timestamp":1764547200000,"operation":"SET TBLPROPERTIES"}}"#,
            "\n",
            r#"{"protocol":{"minReaderVersion":1,"minWriterVersion":7,"writerFeatures":["identityColumns"]}}"#,
            "\n"
        ),
    )
    .expect("a commit of another engine");
    let why = wh
        .warehouse
        .unwritable(v1::Orders::DEF)
        .await
        .expect("read")
        .expect("unwritable");
    assert_eq!(
        why,
        "Unsupported table features required: [IdentityColumns]"
    );
}

#[tokio::test]
async fn check_names_a_declared_check_the_stored_rows_fail_as_writes_would() {
    let wh = TempWarehouse::new();
    let unchecked = <unchecked::Orders as lakehouse_runtime::Table>::DEF;
    let stricter = <stricter::Orders as lakehouse_runtime::Table>::DEF;
    let rows = [(1, Some(10)), (2, Some(-5)), (3, None)].map(|(id, amount)| Order { id, amount });
    write(&wh.warehouse, unchecked, &rows, WriteOptions::default())
        .await
        .expect("written without a CHECK");
    let blocked = |table| blocked_checks(&wh.warehouse, table);
    // Declared since and not added yet: the stored -5 fails it, and every row the stricter one
    // (a NULL fails a CHECK).
    assert_eq!(blocked(ORDERS).await, ["positive_amount|false|1"]);
    assert_eq!(blocked(stricter).await, ["positive_amount|false|3"]);
    let health = wh.warehouse.health(ORDERS).await.expect("health");
    assert_eq!(
        health.blocked_checks[0].to_string(),
        "silver.orders: the declared CHECK constraint `positive_amount` (amount IS NULL OR \
         amount > 0) is not on the Delta table yet, and 1 stored row(s) fail it (a NULL fails a \
         CHECK): every write fails until it can be added; fix or delete those rows with the \
         engine that wrote them, change the declaration, or rebuild the table (move its folder \
         away and run its pipeline with --full-refresh)"
    );
    // As the write does.
    let error = write(
        &wh.warehouse,
        ORDERS,
        &[Order {
            id: 4,
            amount: Some(4),
        }],
        WriteOptions::default(),
    )
    .await
    .expect_err("the stored row fails the declared CHECK");
    assert!(
        error
            .to_string()
            .contains("cannot add the declared CHECK constraint(s) `positive_amount`"),
        "{error}"
    );
    // A check on a column the table lacks is counted with the column NULL, as the write adds it.
    let discounted = <with_discount::Orders as lakehouse_runtime::Table>::DEF;
    assert!(blocked(discounted).await.is_empty());

    // Held under another expression: the replacement is counted.
    let wh = TempWarehouse::new();
    let rows = [(1, Some(10)), (2, Some(200)), (3, None)].map(|(id, amount)| Order { id, amount });
    write(&wh.warehouse, ORDERS, &rows, WriteOptions::default())
        .await
        .expect("written with its CHECK");
    let health = wh.warehouse.health(ORDERS).await.expect("health");
    assert!(
        health.blocked_checks.is_empty(),
        "{:?}",
        health.blocked_checks
    );
    assert_eq!(
        blocked_checks(&wh.warehouse, stricter).await,
        ["positive_amount|true|2"]
    );
    let health = wh.warehouse.health(stricter).await.expect("health");
    assert!(
        health.blocked_checks[0]
            .to_string()
            .contains("would replace the table's constraint of that name, and 2 stored row(s)"),
        "{}",
        health.blocked_checks[0]
    );
}

#[tokio::test]
async fn a_check_failing_on_a_stored_value_is_named_and_the_others_counted() {
    let wh = TempWarehouse::new();
    let rows = [(1, Some(10)), (2, Some(20))].map(|(id, amount)| Order { id, amount });
    write(&wh.warehouse, ORDERS, &rows, WriteOptions::default())
        .await
        .expect("written with its CHECK");
    // 100 / (10 - 10): the count of every check failed with the division, naming none.
    let dividing = <dividing_check::Orders as lakehouse_runtime::Table>::DEF;
    let blocked = blocked_checks(&wh.warehouse, dividing).await;
    assert_eq!(blocked.len(), 1, "{blocked:?}");
    assert!(
        blocked[0].starts_with("ratio|false|")
            && blocked[0]
                .contains("check `ratio`: `100 / (amount - 10) > 0` fails on a stored value")
            && blocked[0].contains("Divide by zero"),
        "{blocked:?}"
    );
}

/// `table`'s blocked CHECK constraints as `name|replaces|failing rows`.
async fn blocked_checks(
    warehouse: &lakehouse_runtime::store::Warehouse,
    table: &'static lakehouse_runtime::TableDef,
) -> Vec<String> {
    let health = warehouse.health(table).await.expect("health");
    health
        .blocked_checks
        .iter()
        .map(|b| {
            let blocked_by = match &b.blocked_by {
                BlockedBy::FailingRows(rows) => rows.to_string(),
                BlockedBy::Unevaluable(why) => why.clone(),
            };
            format!("{}|{}|{blocked_by}", b.name, b.replaces)
        })
        .collect()
}

#[tokio::test]
async fn check_counts_a_declared_check_over_the_rows_as_the_write_validates_them() {
    #[derive(Serialize)]
    struct Stock {
        id: i64,
        qty: i64,
    }
    #[derive(Serialize)]
    struct SitedStock {
        id: i64,
        qty: i64,
        site: String,
    }
    // A whole-table overwrite gaining a required column: the stored rows are read without it
    // (they were refused as unreadable), and the CHECK counted over them.
    let v1 = <stock_v1::Stock as lakehouse_runtime::Table>::DEF;
    let v2 = <stock_v2::Stock as lakehouse_runtime::Table>::DEF;
    let wh = TempWarehouse::new();
    write(
        &wh.warehouse,
        v1,
        &[Stock { id: 1, qty: 5 }],
        WriteOptions::default(),
    )
    .await
    .expect("written");
    assert!(blocked_checks(&wh.warehouse, v2).await.is_empty());
    let wh = TempWarehouse::new();
    write(
        &wh.warehouse,
        v1,
        &[Stock { id: 1, qty: -5 }],
        WriteOptions::default(),
    )
    .await
    .expect("written");
    // The stored row fails the CHECK, but every write replaces it: nothing blocks the next
    // write, which adds the constraint after replacing the rows, as `check` says.
    assert!(blocked_checks(&wh.warehouse, v2).await.is_empty());
    let row = SitedStock {
        id: 2,
        qty: 3,
        site: "Lyon".to_owned(),
    };
    write(&wh.warehouse, v2, &[row], WriteOptions::default())
        .await
        .expect("the stored row replaced");
    assert_eq!(contents(&wh.warehouse, v2).await, lines(&["2|3|Lyon"]));

    // Under `keep` the table never gains the column: the CHECK cannot be added at all.
    let wh = TempWarehouse::new();
    let unchecked = <unchecked::Orders as lakehouse_runtime::Table>::DEF;
    let kept = <kept_discount::Orders as lakehouse_runtime::Table>::DEF;
    let order = Order {
        id: 1,
        amount: Some(10),
    };
    write(&wh.warehouse, unchecked, &[order], WriteOptions::default())
        .await
        .expect("written");
    let health = wh.warehouse.health(kept).await.expect("health");
    let [blocked] = health.blocked_checks.as_slice() else {
        panic!("{:?}", health.blocked_checks);
    };
    assert!(
        matches!(&blocked.blocked_by, BlockedBy::Unevaluable(why) if why.contains("discount")),
        "{blocked:?}"
    );
    let text = blocked.to_string();
    assert!(
        text.contains(
            "check `discount_not_negative`: `discount IS NULL OR discount >= 0` is not a \
             condition over the table's columns"
        ) && text.ends_with(
            "; it is not on the Delta table yet, and every write fails until it can be added: \
             change the declaration"
        ),
        "{text}"
    );
    let order = Order {
        id: 2,
        amount: Some(20),
    };
    write(&wh.warehouse, kept, &[order], WriteOptions::default())
        .await
        .expect_err("the CHECK cannot be added");
    // So is it of a table without rows: delta-rs reads the expression before any row.
    let wh = TempWarehouse::new();
    let none: [Order; 0] = [];
    write(&wh.warehouse, unchecked, &none, WriteOptions::default())
        .await
        .expect("written empty");
    let health = wh.warehouse.health(kept).await.expect("health");
    assert_eq!(
        health.blocked_checks.len(),
        1,
        "{:?}",
        health.blocked_checks
    );

    // A data file gone: reported as such, the CHECK not counted over it.
    let wh = TempWarehouse::new();
    let order = Order {
        id: 1,
        amount: Some(-10),
    };
    write(&wh.warehouse, unchecked, &[order], WriteOptions::default())
        .await
        .expect("written");
    let folder = crate::common::table_folder(&wh.warehouse, unchecked);
    for entry in std::fs::read_dir(&folder).expect("table folder") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "parquet") {
            std::fs::remove_file(&path).expect("removed");
        }
    }
    let health = wh.warehouse.health(ORDERS).await.expect("health");
    assert_eq!(health.missing_files.len(), 1);
    assert!(
        health.blocked_checks.is_empty(),
        "{:?}",
        health.blocked_checks
    );
}

/// Writes `(id, qty)` rows into `table`, one of the stock tables.
async fn write_stock(
    wh: &TempWarehouse,
    table: &'static lakehouse_runtime::TableDef,
    rows: &[(i64, i64)],
) -> lakehouse_runtime::Result<lakehouse_runtime::store::WriteOutcome> {
    #[derive(Serialize)]
    struct Stock {
        id: i64,
        qty: i64,
    }
    let rows: Vec<Stock> = rows.iter().map(|&(id, qty)| Stock { id, qty }).collect();
    write(&wh.warehouse, table, &rows, WriteOptions::default()).await
}

#[tokio::test]
async fn a_table_replaced_whole_gains_a_check_only_its_old_rows_fail() {
    let wh = TempWarehouse::new();
    let v1 = <stock_v1::Stock as lakehouse_runtime::Table>::DEF;
    let checked = <stock_checked::Stock as lakehouse_runtime::Table>::DEF;
    write_stock(&wh, v1, &[(1, -1)])
        .await
        .expect("written before the CHECK");
    let constrained = |wh: &TempWarehouse| {
        let warehouse = wh.warehouse.clone();
        async move {
            let delta = warehouse.load(checked).await.expect("load").expect("table");
            delta
                .snapshot()
                .expect("loaded")
                .metadata()
                .configuration()
                .contains_key("delta.constraints.positive")
        }
    };

    // An output failing it too is refused: the table is left as it was.
    let refused = write_stock(&wh, checked, &[(1, 0), (2, 3)])
        .await
        .expect_err("the output fails the CHECK");
    let text = refused.to_string();
    assert!(
        text.contains("cannot add the declared CHECK constraint(s) `positive`")
            && text.ends_with(
                "; and 1 row(s) of the output replacing them fail `positive` too (a NULL fails \
                 a CHECK)"
            ),
        "{text}"
    );
    assert_eq!(contents(&wh.warehouse, checked).await, lines(&["1|-1"]));
    assert!(!constrained(&wh).await);

    // Rows that pass it replace the old ones, and the constraint is added after.
    write_stock(&wh, checked, &[(1, 2)])
        .await
        .expect("the old rows replaced");
    assert_eq!(contents(&wh.warehouse, checked).await, lines(&["1|2"]));
    assert!(constrained(&wh).await, "added after the write");
    // And held from then on.
    let held = write_stock(&wh, checked, &[(1, -5)])
        .await
        .expect_err("the constraint holds");
    assert!(held.to_string().contains("positive"), "{held}");
    assert_eq!(contents(&wh.warehouse, checked).await, lines(&["1|2"]));
}

#[tokio::test]
async fn a_restore_to_rows_a_declared_check_refuses_is_refused() {
    use lakehouse_runtime::store::AsOf;
    let wh = TempWarehouse::new();
    // (A table replaced whole at each write gains the constraint past such rows: see
    // `a_table_replaced_whole_gains_a_check_only_its_old_rows_fail`.)
    let v1 = <levels_v1::Stock as lakehouse_runtime::Table>::DEF;
    let checked = <levels_checked::Stock as lakehouse_runtime::Table>::DEF;
    write_stock(&wh, v1, &[(1, -1)])
        .await
        .expect("written before the CHECK");
    let first = wh
        .warehouse
        .version(v1)
        .await
        .expect("version")
        .expect("written");
    write_stock(&wh, v1, &[(1, 2)])
        .await
        .expect("the row mended");
    write_stock(&wh, checked, &[(1, 5)])
        .await
        .expect("the CHECK added over the new rows");
    let latest = wh.warehouse.version(checked).await.expect("version");
    // The first version has neither the constraint nor rows passing it: once restored, every
    // write would fail adding it.
    for dry_run in [true, false] {
        let refused = match dry_run {
            true => {
                wh.warehouse
                    .restore_dry_run(checked, AsOf::Version(first), false)
                    .await
            }
            false => wh.warehouse.restore(checked, AsOf::Version(first)).await,
        }
        .expect_err("writes would fail");
        let text = refused.to_string();
        assert!(
            text.contains("gold.stock_levels cannot be restored to version")
                && text.contains("1 of its row(s) fail the declared CHECK constraint `positive` (qty > 0), which its metadata lacks: every write would fail adding it")
                && text.contains("--allow-schema-drift"),
            "{text}"
        );
    }
    assert_eq!(
        wh.warehouse.version(checked).await.expect("version"),
        latest
    );
    // Knowingly, it is restored.
    wh.warehouse
        .restore_allowing_drift(checked, AsOf::Version(first), true)
        .await
        .expect("restored");
    assert_eq!(contents(&wh.warehouse, checked).await, lines(&["1|-1"]));
}

/// The same lines, with a new NOT NULL column.
mod lines_with_sku {
    use lakehouse_runtime::prelude::*;

    /// Order lines.
    #[derive(Table, serde::Serialize)]
    #[table(schema = "silver", name = "order_lines", key(order_id, line), mode = append)]
    pub struct OrderLines {
        pub order_id: i64,
        pub line: i64,
        pub sku: String,
    }
}

#[tokio::test]
async fn a_new_not_null_column_is_added_by_a_rebuild_which_replaces_every_row() {
    let wh = TempWarehouse::new();
    let table = <lines_by_line::OrderLines as lakehouse_runtime::Table>::DEF;
    let rows =
        [(1, 1), (2, 1)].map(|(order_id, line)| lines_by_line::OrderLines { order_id, line });
    write(&wh.warehouse, table, &rows, WriteOptions::default())
        .await
        .expect("write");
    let with_sku = <lines_with_sku::OrderLines as lakehouse_runtime::Table>::DEF;
    let rebuilt = [(1, 1), (2, 1), (3, 1)].map(|(order_id, line)| lines_with_sku::OrderLines {
        order_id,
        line,
        sku: format!("sku-{order_id}"),
    });
    // Appended, the stored rows would have no sku: refused, the table untouched.
    let version = wh.warehouse.version(table).await.expect("version");
    let error = write(&wh.warehouse, with_sku, &rebuilt, WriteOptions::default())
        .await
        .expect_err("the stored rows have no sku");
    assert!(
        error.to_string().contains(
            "column `sku` is new and declared NOT NULL (STRING), but the table's existing rows \
             have no value for it: declare it as an `Option<_>` (existing rows then read as \
             NULL), or build the table anew with it: `orchestrate run --rebuild --select` its \
             pipeline replaces every row when it reads `Changes<T>` or new files"
        ),
        "{error}"
    );
    assert_eq!(wh.warehouse.version(table).await.expect("version"), version);
    // A rebuild replaces them all: written, every row with its sku.
    let replace = WriteOptions {
        replace: true,
        ..WriteOptions::default()
    };
    write(&wh.warehouse, with_sku, &rebuilt, replace)
        .await
        .expect("every row replaced");
    assert_eq!(
        contents(&wh.warehouse, with_sku).await,
        lines(&["1|1|sku-1", "2|1|sku-2", "3|1|sku-3"])
    );
}
