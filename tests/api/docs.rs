//! The documentation stays true to the code: every environment variable the code reads is in
//! docs/configuration.md, and every variable documented there is read somewhere.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "node_modules" && name != "target" && name != "fixtures" {
                files(&path, out);
            }
        } else if [".rs", ".sh", ".mjs"].iter().any(|ext| name.ends_with(ext)) {
            out.push(path);
        }
    }
}

/// Whether a quoted upper-case string is the name of a setting (rather than, say, a constant).
fn is_setting(name: &str) -> bool {
    // Prefixes and suffixes alone (`"THREADLINE_"` in a `starts_with`) name no variable.
    if name.starts_with('_') || name.ends_with('_') {
        return false;
    }
    name.starts_with("THREADLINE_")
        || name.ends_with("_API_KEY")
        || name.ends_with("_BASE_URL")
        || name.ends_with("_DATABASE_URL")
        || name.starts_with("POLAR_")
        || name.starts_with("STRIPE_")
        || [
            "DATABASE_URL",
            "RUST_LOG",
            "NO_COLOR",
            "TEST_LOG",
            "CARGO_TARGET_DIR",
        ]
        .contains(&name)
}

/// The setting names the code, scripts and test clients mention as quoted strings or shell
/// variables.
fn read_by_code(root: &Path) -> BTreeSet<String> {
    let mut paths = Vec::new();
    for dir in ["src", "tests", "benches", "scripts", "clients"] {
        files(&root.join(dir), &mut paths);
    }
    let mut names = BTreeSet::new();
    for path in paths {
        // This file names variables to test the rule, not to read them.
        if path.ends_with("tests/api/docs.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let is_name = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_';
            if !is_name(chars[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < chars.len() && is_name(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let before = |n: usize| start.checked_sub(n).map(|j| chars[j]);
            // `"NAME"` (Rust, JavaScript), `$NAME` / `${NAME` (shell), `env.NAME` (Node).
            let quoted = before(1) == Some('"') && chars.get(i) == Some(&'"');
            let shell =
                before(1) == Some('$') || (before(1) == Some('{') && before(2) == Some('$'));
            let node = start >= 4 && chars[start - 4..start].iter().collect::<String>() == "env.";
            if (quoted || shell || node) && is_setting(&word) {
                names.insert(word);
            }
        }
    }
    names
}

/// The variables docs/configuration.md documents (first column of its tables, outside the
/// "Planned, not read yet" section).
fn documented(root: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(root.join("docs/configuration.md")).unwrap();
    let mut planned = false;
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("## ") {
            planned = line.contains("not read yet");
        }
        let Some(first) = line.strip_prefix("| `").and_then(|l| l.split('`').next()) else {
            continue;
        };
        if !planned && is_setting(first) {
            names.insert(first.to_owned());
        }
    }
    names
}

#[test]
fn every_variable_the_code_reads_is_documented_and_every_documented_one_is_read() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = read_by_code(root);
    let documented = documented(root);
    let undocumented: Vec<_> = read.difference(&documented).collect();
    let unread: Vec<_> = documented.difference(&read).collect();
    assert!(
        undocumented.is_empty(),
        "read by the code but missing from docs/configuration.md: {undocumented:?}"
    );
    assert!(
        unread.is_empty(),
        "documented in docs/configuration.md but read nowhere: {unread:?}"
    );
}
