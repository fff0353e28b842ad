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
    // Words shaped like variables that are not: Exa's error tag (the mock upstream answers it).
    if ["INVALID_API_KEY"].contains(&name) {
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

/// The top-level modules of `src/` each file of `src/` uses (`crate::x`), test modules and
/// comments left out.
fn module_uses(root: &Path) -> std::collections::BTreeMap<String, BTreeSet<String>> {
    let mut paths = Vec::new();
    files(&root.join("src"), &mut paths);
    let mut uses: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for path in paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
    {
        let rel = path
            .strip_prefix(root.join("src"))
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let module = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_owned();
        let text = std::fs::read_to_string(path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        let entry = uses.entry(module.clone()).or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for part in line.split("crate::").skip(1) {
                let used: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !used.is_empty() && used != module {
                    entry.insert(used);
                }
            }
        }
    }
    uses
}

#[test]
fn module_dependencies_point_one_way() {
    let uses = module_uses(Path::new(env!("CARGO_MANIFEST_DIR")));
    for (module, used) in &uses {
        assert!(
            !used.contains("routes") || module == "startup",
            "{module} uses routes: only startup may"
        );
    }
    // Depth-first search for a cycle.
    fn visit<'a>(
        module: &'a str,
        uses: &'a std::collections::BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(at) = path.iter().position(|m| *m == module) {
            panic!(
                "an import cycle: {}",
                path[at..].join(" -> ") + " -> " + module
            );
        }
        if done.contains(module) {
            return;
        }
        path.push(module);
        for next in uses.get(module).into_iter().flatten() {
            visit(next, uses, path, done);
        }
        path.pop();
        done.insert(module);
    }
    let mut done = BTreeSet::new();
    for module in uses.keys() {
        visit(module, &uses, &mut Vec::new(), &mut done);
    }
}
