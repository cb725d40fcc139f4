use lakehouse_runtime::prelude::*;

/// Raw events, column-mapped.
#[derive(Table)]
#[table(
    schema = "bronze",
    mode = append,
    property(key = "delta.columnMapping.mode", value = "name")
)]
pub struct RawEvents { pub id: i64 }

#[pipeline]
pub async fn raw_events(_cx: &Ctx) -> Result<Frame<RawEvents>> {
    todo!()
}

#[derive(Table)]
#[table(schema = "silver")]
pub struct Events { pub id: i64 }

/// Reads the rows each run added: from the feed delta-rs cannot read on a mapped table.
#[pipeline(depends_on = [raw_events])]
pub async fn events(raw: Changes<RawEvents>) -> Result<Frame<Events>> {
    let _ = raw;
    todo!()
}

fn main() {}
