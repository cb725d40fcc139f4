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
