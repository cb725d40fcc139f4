//! The date dimension: one row per day from 1970-01-01 through 2099-12-31.

use chrono::{Datelike, NaiveDate, Weekday};
use lakehouse_runtime::prelude::*;
use serde::Serialize;

/// Calendar days.
#[derive(Table, Serialize)]
#[table(schema = "gold", name = "dim_date", key(date_key), mode = overwrite, quality = blocking)]
pub struct DimDate {
    /// The date as `yyyyMMdd`
    pub date_key: String,
    /// The date
    pub date: Date,
    /// Calendar year
    pub year: i32,
    /// Quarter, 1 to 4
    pub quarter: i32,
    /// Month, 1 to 12
    pub month: i32,
    /// Day of the month
    pub day: i32,
    /// ISO 8601 week number, 1 to 53
    pub iso_week: i32,
    /// The year the ISO week belongs to (differs from `year` around New Year)
    pub iso_year: i32,
    /// ISO day of the week: 1 = Monday … 7 = Sunday
    pub day_of_week: i32,
    /// Saturday or Sunday
    pub is_weekend: bool,
    /// Logical time of the run that wrote the row
    pub run_at: Timestamp,
}

/// The last year of the calendar, unless a run is later still.
const LAST_YEAR: i32 = 2099;

/// The `date_key` of `date` (a `Date` expression), NULL outside the days the calendar always
/// holds (1970 through 2099): a fact dated outside would name a day the dimension lacks, and
/// its foreign-key check would block every write of the facts from then on.
pub fn calendar_date_key(date: Expr) -> Result<Typed<Option<String>>> {
    let day = |text: &str| cast(lit(text), DataType::Date32);
    let within = date
        .clone()
        .gt_eq(day("1970-01-01"))
        .and(date.clone().lt_eq(day(&format!("{LAST_YEAR}-12-31"))));
    let key = when(within, to_char(date, lit("%Y%m%d"))).end()?;
    Ok(typed::<Option<String>>(key))
}

/// The days from 1970-01-01 through 2099-12-31 (or December 31st of the year after `run_at`'s,
/// if later). A fixed end: ending at the run's next year, a backfill of a past day would shrink
/// the table under the facts of later days, whose date keys would then resolve nowhere.
pub fn calendar(run_at: Timestamp) -> Vec<DimDate> {
    let today = chrono::DateTime::from_timestamp_micros(run_at.0).map(|t| t.date_naive());
    let last_year = today.map_or(LAST_YEAR, |d| (d.year() + 1).max(LAST_YEAR));
    let (Some(first), Some(last)) = (
        NaiveDate::from_ymd_opt(1970, 1, 1),
        NaiveDate::from_ymd_opt(last_year, 12, 31),
    ) else {
        return Vec::new();
    };
    first
        .iter_days()
        .take_while(|d| *d <= last)
        .map(|d| {
            let week = d.iso_week();
            DimDate {
                date_key: d.format("%Y%m%d").to_string(),
                date: Date((d - first).num_days() as i32),
                year: d.year(),
                quarter: (d.month0() / 3 + 1) as i32,
                month: d.month() as i32,
                day: d.day() as i32,
                iso_week: week.week() as i32,
                iso_year: week.year(),
                day_of_week: d.weekday().number_from_monday() as i32,
                is_weekend: matches!(d.weekday(), Weekday::Sat | Weekday::Sun),
                run_at,
            }
        })
        .collect()
}

/// Rebuilds the calendar (fixes the original's: it ended yesterday and its weekend was Friday
/// and Saturday).
#[pipeline]
pub async fn dim_date(cx: &Ctx) -> Result<Frame<DimDate>> {
    if cx.is_dry_run() {
        return cx.empty();
    }
    cx.frame_from_rows(&calendar(cx.run_at()))
}
