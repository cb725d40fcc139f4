//! The README's "add a pipeline" walkthrough, done for real: `dim_category.rs` is the one file
//! the README shows, added next to the reference lakehouse; this test runs it.

mod dim_category;

use lakehouse_runtime::Warehouse;
use lakehouse_runtime::orchestrator::{Orchestrator, RunConfig};

#[test]
fn the_readme_shows_this_exact_file() {
    let readme = include_str!("../../../README.md");
    let file = include_str!("dim_category.rs");
    assert!(
        readme.contains(file),
        "README.md must show tests/walkthrough/dim_category.rs verbatim"
    );
}

#[tokio::test]
async fn the_new_dimension_runs_with_its_upstreams() {
    let dir = tempfile::tempdir().expect("dir");
    let warehouse = Warehouse::open(dir.path().to_str().expect("utf-8")).expect("warehouse");
    let registry = lakehouse_runtime::Registry::from_inventory().expect("graph");
    assert_eq!(registry.level("dim_category"), Some(2));
    let orchestrator = Orchestrator::new(registry, warehouse.clone());
    let report = orchestrator
        .run(&RunConfig {
            targets: vec!["+dim_category".into()],
            ..RunConfig::default()
        })
        .await
        .expect("run");
    assert!(report.succeeded(), "{}", report.render(false));
    let order: Vec<&str> = report.results.iter().map(|r| r.pipeline).collect();
    assert_eq!(
        order,
        [
            "erp_sales_transactions",
            "silver_erp_sales_transactions",
            "dim_category"
        ]
    );
    let batches = warehouse
        .sql(
            &[<dim_category::DimCategory as lakehouse_runtime::Table>::DEF],
            "SELECT category FROM gold.dim_category ORDER BY category",
        )
        .await
        .expect("query")
        .collect()
        .await
        .expect("rows");
    let text = arrow::util::pretty::pretty_format_batches(&batches)
        .expect("format")
        .to_string();
    for category in ["Accessory", "Display", "Main Device"] {
        assert!(text.contains(category), "{text}");
    }
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
}

/// A silver sale with only the columns the dimension reads (the others are NULL).
#[derive(serde::Serialize)]
struct Sale {
    order_id: i64,
    order_line: i32,
    category: Option<&'static str>,
    run_at: lakehouse_runtime::Timestamp,
}

/// A row of the dimension, as the test reads it back.
#[derive(serde::Deserialize, Debug, PartialEq)]
struct Category {
    category_key: String,
    category: String,
    run_at: lakehouse_runtime::Timestamp,
}

/// The README's unit test of the new dimension: the pipeline function called on rows.
#[tokio::test]
async fn the_new_dimension_unit_tested_on_rows() {
    use dim_category::dim_category;
    use lakehouse_pipelines::ingestion::erp::SilverErpSales;
    use lakehouse_runtime::testing::{TEST_RUN_AT, TestContext, rows};

    let test = TestContext::new("dim_category").expect("context"); // .with_run_at(..), .with_setting(..)
    let sale = |order_id, category| Sale {
        order_id,
        order_line: 1,
        category,
        run_at: TEST_RUN_AT,
    };
    let sales = test
        .frame::<SilverErpSales, _>(&[sale(1, Some("Toys")), sale(2, Some("Books")), sale(3, None)])
        .expect("sales");
    let output = dim_category(sales, test.ctx()).await.expect("the pipeline");
    let mut categories: Vec<Category> = rows(output).await.expect("rows");
    // The README shows these lines.
    let readme = include_str!("../../../README.md");
    let shown = &readme[readme.find("### Testing it").expect("the section")..];
    let shown = &shown[shown.find("```rust").expect("the example")..];
    let file = include_str!("mod.rs");
    for line in shown.lines().skip(1).take_while(|l| !l.starts_with("```")) {
        assert!(
            file.contains(line.trim()),
            "mod.rs lacks the README's line {line:?}"
        );
    }
    categories.sort_by(|a, b| a.category.cmp(&b.category));
    let names: Vec<&str> = categories.iter().map(|c| c.category.as_str()).collect();
    assert_eq!(
        names,
        ["Books", "Toys"],
        "one row per category, NULL left out"
    );
    assert!(categories.iter().all(|c| c.run_at == TEST_RUN_AT));
    // SHA-256 of "Toys".
    assert_eq!(
        categories[1].category_key,
        "fd16c1f32fde488dcf063ec7d1d22e9e410e2748242e6db165c2b982fd0cdebd"
    );
}
