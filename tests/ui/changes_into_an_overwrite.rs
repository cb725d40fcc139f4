use lakehouse_runtime::prelude::*;
use lakehouse_tests::*;

/// Replaced whole by every run.
#[derive(Table)]
#[table(schema = "silver", mode = overwrite)]
pub struct LatestSales {
    pub order_id: i64,
}

/// Each run would keep only the sales new since the last one.
#[pipeline(depends_on = [sales])]
pub async fn latest_sales(_raw: Changes<BronzeSales>) -> Result<Frame<LatestSales>> {
    todo!()
}

/// Replaced a day at a time.
#[derive(Table)]
#[table(schema = "silver", mode = overwrite, overwrite = partitions, partition_by(day))]
pub struct DailySales {
    pub order_id: i64,
    pub day: Date,
}

/// A day whose sales arrive in two runs would keep only the second run's.
#[pipeline(depends_on = [sales])]
pub async fn daily_sales(_raw: Changes<BronzeSales>) -> Result<Frame<DailySales>> {
    todo!()
}

/// Replaced a day at a time, from all the sales of the days new sales reach: allowed.
#[derive(Table)]
#[table(schema = "gold", mode = overwrite, overwrite = partitions, partition_by(day))]
pub struct DailyTotals {
    pub order_id: i64,
    pub day: Date,
}

#[pipeline(depends_on = [sales])]
pub async fn daily_totals(
    _new: Changes<BronzeSales>,
    _all: Frame<lakehouse_tests::BronzeSales>,
) -> Result<Frame<DailyTotals>> {
    todo!()
}

fn main() {}
