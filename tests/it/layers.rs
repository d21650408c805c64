//! The library's layers point one way (issue 11): every `crate::…` path in
//! `src/` (and every `kore_sync::…` path in `main.rs`) names a module the
//! file's own layer may import. The order is the one ARCHITECTURE.md gives;
//! a new module must be placed in it here. This is a test: it fails
//! `cargo test`, not the build.

use crate::common::rust_files;
use std::collections::BTreeSet;
use std::path::Path;

/// Layers from the top; a module may import from any layer below its own,
/// never from its own layer's other modules or from above.
const LAYERS: &[&[&str]] = &[
    &["cmd"],
    &["config"],
    &["schedule"],
    &["sync"],
    &["api", "store"],
    &["ops"],
    &["model", "secret", "privacy"],
];

/// Modules outside the stack, with what each may import.
const APART: &[(&str, &[&str])] = &[
    // The binary: parses the CLI, sets up logging, calls `cmd::run`.
    ("main", &["cli", "cmd", "config"]),
    // The argument definitions: imported by `main.rs` and `cmd`.
    ("cli", &[]),
    // The simulated API: its own wire shapes; its tests check its records
    // with the client's parser.
    ("sim", &["api", "model"]),
    // The benchmark harness: drives the library as a command would, with
    // the simulator's records (it names no wire field itself).
    ("bench", &["cli", "config", "sim", "store", "sync"]),
];

/// What `module` may import.
fn allowed(module: &str) -> BTreeSet<&'static str> {
    if let Some((_, may)) = APART.iter().find(|(m, _)| *m == module) {
        return may.iter().copied().collect();
    }
    let rank = LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| panic!("module `{module}` is in no layer: add it to LAYERS or APART"));
    let mut may: BTreeSet<&str> = LAYERS[rank + 1..]
        .iter()
        .flat_map(|l| l.iter().copied())
        .collect();
    if module == "cmd" {
        may.extend(["cli", "sim", "bench"]);
    }
    may
}

/// The top-level modules a source text names with `crate::…`, including
/// inside `use crate::{a::b, c}`.
fn imports(text: &str) -> BTreeSet<String> {
    imports_through(text, "crate::")
}

/// The same for paths that start with `root` (`kore_sync::` in `main.rs`).
fn imports_through(text: &str, root: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in text.match_indices(root) {
        // Skip `$crate::` in macros, and names that merely end in the root.
        if text[..i].ends_with(|c: char| c == '$' || c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[i + root.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut part_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => part_start = true,
                    c if part_start && !c.is_whitespace() => {
                        found.insert(ident(&group[j..]));
                        part_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found.retain(|m| !m.is_empty());
    found
}

#[test]
fn issue_11_no_module_imports_from_a_layer_above_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    let mut n_checked = 0;
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let module = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if module == "lib" {
            continue;
        }
        let may = allowed(&module);
        let text = std::fs::read_to_string(file).unwrap();
        let found = if module == "main" {
            imports_through(&text, "kore_sync::")
        } else {
            imports(&text)
        };
        for imported in found {
            n_checked += 1;
            if imported != module && !may.contains(imported.as_str()) {
                wrong.push(format!("{} imports crate::{imported}", rel.display()));
            }
        }
    }
    assert!(
        n_checked > 50,
        "the scan found too few imports ({n_checked}) to mean anything"
    );
    assert!(
        wrong.is_empty(),
        "imports against the layer order:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_import_scan_reads_grouped_and_nested_paths() {
    let text = "use crate::model::{A, B};\nuse crate::{api::{x, y}, store::S};\nlet _ = crate::ops::metrics();";
    let got: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(got, ["api", "model", "ops", "store"]);
    assert!(allowed("sync").contains("store"));
    assert!(
        !allowed("bench").contains("api"),
        "bench builds no wire records itself"
    );
    let main = "use kore_sync::cli::{Cli};\nuse kore_sync::cmd;\nkore_sync::sync::run_pass();";
    let got: Vec<String> = imports_through(main, "kore_sync::").into_iter().collect();
    assert_eq!(got, ["cli", "cmd", "sync"]);
    assert!(!allowed("main").contains("sync"), "main calls only cmd");
    assert!(!allowed("store").contains("api"));
    assert!(!allowed("ops").contains("sync"));
}
