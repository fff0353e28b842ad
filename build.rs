//! Embeds the web app (`web/index.html` and everything under `web/assets/`) into the binary:
//! generates `$OUT_DIR/web_assets.rs`, a table of `(url path, bytes, etag)` that
//! `src/routes/app.rs` serves. Tests, node modules and tooling files under `web/` stay out.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    println!("cargo:rerun-if-changed=web/index.html");
    println!("cargo:rerun-if-changed=web/assets");
    let mut files = Vec::new();
    if root.join("index.html").is_file() {
        files.push(root.join("index.html"));
    }
    collect(&root.join("assets"), &mut files);
    files.sort();
    let mut table = String::from("&[\n");
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let Ok(bytes) = std::fs::read(file) else {
            continue;
        };
        let Ok(relative) = file.strip_prefix(&root) else {
            continue;
        };
        let url = format!("/{}", relative.to_string_lossy().replace('\\', "/"));
        let _ = writeln!(
            table,
            "    ({url:?}, include_bytes!({:?}), \"\\\"{:016x}\\\"\"),",
            file.display().to_string(),
            fnv1a(&bytes)
        );
    }
    table.push(']');
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("web_assets.rs");
    if let Err(e) = std::fs::write(&out, table) {
        println!("cargo:warning=cannot write {}: {e}", out.display());
    }
}

/// Every file under `dir`, recursively (directories named by `cargo:rerun-if-changed` too, so
/// a new file triggers a rebuild).
fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    println!("cargo:rerun-if-changed={}", dir.display());
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.is_file() {
            files.push(path);
        }
    }
}

/// The content hash that names a file's version in its `ETag` (FNV-1a, 64 bits: no
/// dependency, and collisions only cost a stale cache entry of one's own build).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
