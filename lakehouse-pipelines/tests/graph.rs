//! The whole graph: registration and the plan check on empty tables.

use lakehouse_pipelines as _;
use lakehouse_runtime::Registry;
use lakehouse_runtime::check::check_plans;

/// Every pipeline of the reference lakehouse, by (level, name).
const PIPELINES: &[(&str, usize)] = &[
    ("crm_contacts", 0),
    ("dim_date", 0),
    ("erp_sales_transactions", 0),
    ("velib_station_info", 0),
    ("velib_station_status", 0),
    ("velov_station_info", 0),
    ("velov_station_status", 0),
    ("silver_crm_contacts", 1),
    ("silver_erp_sales_transactions", 1),
    ("silver_velib_station_info", 1),
    ("silver_velib_station_status", 1),
    ("silver_velov_station_info", 1),
    ("silver_velov_station_status", 1),
    ("dim_bike_station", 2),
    ("dim_customer", 2),
    ("dim_product", 2),
    ("dim_promo", 2),
    ("dim_store", 2),
    ("fact_bike_status", 3),
    ("fact_sales", 3),
    ("agg_daily_store_sales", 4),
];

#[test]
fn the_registry_holds_every_pipeline_with_its_level() {
    let registry = Registry::from_inventory().expect("the reference graph is valid");
    let found: Vec<(&str, usize)> = registry
        .pipelines()
        .iter()
        .filter(|p| p.module_path.starts_with("lakehouse_pipelines"))
        .map(|p| (p.name, p.level))
        .collect();
    assert_eq!(found, PIPELINES);
    for p in registry.pipelines() {
        assert_eq!(
            registry.level(p.name),
            Some(p.level),
            "compile-time and run-time levels agree for {}",
            p.name
        );
    }
}

#[tokio::test]
async fn every_pipeline_plans_against_empty_tables_of_its_declared_schemas() {
    let registry = Registry::from_inventory().expect("the reference graph is valid");
    if let Err(failures) = check_plans(&registry).await {
        panic!("{failures}");
    }
}
