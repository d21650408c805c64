//! The library's layers point one way (issue 11): every `crate::…` path in
//! `src/` names a module the file's own layer may import. The order is the
//! one ARCHITECTURE.md gives; a new module must be placed in it here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

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
    // The argument definitions: imported by `main.rs` and `cmd`.
    ("cli", &[]),
    // The simulated API: its own wire shapes; its tests check its records
    // with the client's parser.
    ("sim", &["api", "model"]),
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
        may.extend(APART.iter().map(|(m, _)| *m));
    }
    may
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a source text names with `crate::…`, including
/// inside `use crate::{a::b, c}`.
fn imports(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in text.match_indices("crate::") {
        // `kore_sync::crate::` does not occur; skip `$crate::` in macros.
        if text[..i].ends_with('$') {
            continue;
        }
        let rest = &text[i + "crate::".len()..];
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
        if module == "lib" || module == "main" {
            continue;
        }
        let may = allowed(&module);
        for imported in imports(&std::fs::read_to_string(file).unwrap()) {
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
    assert!(!allowed("store").contains("api"));
    assert!(!allowed("ops").contains("sync"));
}
