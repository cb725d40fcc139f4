//! Writes the bundled open-data snapshot (`data/opendata/`) and the runtime's test fixtures
//! (`lakehouse-runtime/tests/fixtures/opendata/`) from the deterministic generator in
//! `generator.rs`: `cargo run -p lakehouse-pipelines --example generate_opendata`.
//!
//! Each output tree is emptied first (its `README.md` is kept), so no stale file remains.

mod generator;

use std::path::Path;

fn main() -> std::io::Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for root in generator::ROOTS {
        let root = workspace.join(root);
        if root.is_dir() {
            for entry in std::fs::read_dir(&root)? {
                let path = entry?.path();
                if path.file_name().is_some_and(|n| n == "README.md") {
                    continue;
                }
                if path.is_dir() {
                    std::fs::remove_dir_all(&path)?;
                } else {
                    std::fs::remove_file(&path)?;
                }
            }
        }
    }
    let files = generator::generate();
    for (path, contents) in &files {
        let path = workspace.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, contents)?;
    }
    eprintln!("wrote {} files", files.len());
    Ok(())
}
