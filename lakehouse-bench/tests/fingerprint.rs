//! The generator reproduces the published landing zone: the fingerprint of WORKLOAD.md at
//! N = 100 000, seed 42.

use lakehouse_bench::generator::{fingerprint, r, write_landing};
use serde_json::json;

#[test]
fn landing_fingerprint_matches_workload_md() {
    let dir = tempfile::tempdir().expect("temp dir");
    let landing = dir.path().join("landing-n100000-s42");
    write_landing(&landing, 100_000, 42).expect("generate");
    assert!(landing.join("_DONE").is_file());
    let fp = fingerprint(&landing).expect("fingerprint");

    let b1 = &fp["sales_batch1"];
    assert_eq!(b1["rows"], 100_000);
    assert_eq!(b1["sum_quantity"], 548_546);
    assert_eq!(b1["sum_price_cents"], 2_512_153_540i64);
    assert_eq!(b1["null_customer_id"], 84);
    assert_eq!(b1["dirty_customer_id"], 758);
    assert_eq!(b1["zero_quantity"], 107);
    assert_eq!(b1["null_promo_id"], 69_925);
    // sum over i < N of 10 000 000 + i / 4.
    assert_eq!(
        b1["sum_order_id"],
        100_000 * 10_000_000i64 + 4 * (24_999 * 25_000 / 2)
    );
    assert_eq!(
        b1["first_row"],
        json!({"order_id": 10_000_000, "order_line": 1, "customer_id": "C000502",
               "product_id": "P00323", "store_id": "S009", "promo_id": null, "quantity": 1,
               "unit_price": "323.74", "order_date": "2023-06-27"})
    );
    assert_eq!(b1["min_order_date"], "2022-01-01");
    assert_eq!(b1["max_order_date"], "2024-12-31");

    let b2 = &fp["sales_batch2"];
    assert_eq!(b2["rows"], 10_000);
    assert_eq!(b2["sum_quantity"], 55_111);
    assert_eq!(b2["sum_price_cents"], 250_324_587);
    let first = &b2["first_row"];
    assert_eq!(first["order_id"], 10_000_001);
    assert_eq!(first["order_line"], 4);
    assert_eq!(first["customer_id"], "C008855");
    assert_eq!(first["quantity"], 1);
    assert_eq!(first["unit_price"], "3.50");
    assert_eq!(first["order_date"], "2024-04-17");
    // Batch 2 ends with the new orders: row N + N/20 - 1.
    assert_eq!(
        b2["last_row"]["order_id"],
        10_000_000 + (100_000 + 4_999) / 4
    );

    for (name, rows) in [
        ("customers", 10_000),
        ("products", 1_000),
        ("stores", 50),
        ("promos", 20),
    ] {
        assert_eq!(fp[name]["rows"], rows, "{name}");
    }
    // As `gen_landing.py` writes them (read from its own files at N = 10 000 000: the first row
    // of a dimension does not depend on N).
    assert_eq!(
        fp["customers"]["first_row"],
        json!({"customer_id": "C000000", "customer_name": "Customer 0", "city": "Reims",
               "segment": "Consumer"})
    );
    assert_eq!(
        fp["products"]["first_row"],
        json!({"product_id": "P00000", "product_name": "Product 0", "category": "Tools",
               "list_price": "184.18"})
    );
    assert_eq!(
        fp["stores"]["first_row"],
        json!({"store_id": "S000", "store_name": "Store 0", "region": "West"})
    );
    assert_eq!(
        fp["promos"]["first_row"],
        json!({"promo_id": "PR00", "promo_name": "Promo 0", "discount_pct": 5})
    );
}

#[test]
fn counter_based_draws_match_the_specification() {
    assert_eq!(r(42, 1, 0), 4_973_547_796_456_110_502);
    // Any row can be drawn alone: no state is carried from row to row.
    assert_eq!(r(42, 5, 1_000_000), r(42, 5, 1_000_000));
    assert_ne!(r(42, 5, 1), r(43, 5, 1));
}
