//! ARCHITECTURE.md stays true (issue 20, rust-analyzer's `tidy` habit):
//! every path it names exists, every `module::Item` it names is defined
//! where it says, and every file under `src/` appears in its code map — so a
//! rename or a new module that forgets the document fails `cargo test`.

use crate::common::rust_files;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn architecture() -> String {
    std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md")
}

/// The text between single backticks, outside fenced code blocks.
fn spans(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let parts: Vec<&str> = line.split('`').collect();
        out.extend(parts.iter().skip(1).step_by(2).map(|s| (*s).to_owned()));
    }
    out
}

/// A span that names a file or folder of the repository.
fn is_path(span: &str) -> bool {
    span.contains('/')
        && !span.contains("://")
        && span
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
}

/// Whether `span` names something that exists, from the repository's root
/// or from `src/`.
fn path_exists(span: &str) -> bool {
    root().join(span).exists() || root().join("src").join(span).exists()
}

/// A span that names a Rust path (`a::b`, `Type::method`).
fn is_rust_path(span: &str) -> bool {
    span.contains("::")
        && span
            .split("::")
            .all(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// The source of a module: its file, or every file of its folder (items are
/// often re-exported from a folder's `mod.rs`).
fn module_files(dir: &Path, name: &str) -> Option<Vec<PathBuf>> {
    let file = dir.join(format!("{name}.rs"));
    let folder = dir.join(name);
    if folder.join("mod.rs").exists() {
        let mut files = Vec::new();
        rust_files(&folder, &mut files);
        return Some(files);
    }
    file.exists().then(|| vec![file])
}

fn defines(text: &str, item: &str) -> bool {
    [
        "fn", "struct", "enum", "trait", "type", "const", "static", "mod",
    ]
    .iter()
    .any(|kw| {
        text.match_indices(&format!("{kw} {item}"))
            .any(|(i, m)| !is_ident_char(text[i + m.len()..].chars().next()))
    })
}

/// Whether `text` defines `member` of a type: a method (`fn member`) or a
/// variant or field (a line that starts with it).
fn defines_member(text: &str, member: &str) -> bool {
    defines(text, member)
        || text.lines().any(|l| {
            l.trim_start()
                .strip_prefix(member)
                .is_some_and(|rest| rest.starts_with([' ', '{', '(', ',', ':']))
        })
}

fn is_ident_char(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn mentions(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, m)| {
        !is_ident_char(text[..i].chars().next_back())
            && !is_ident_char(text[i + m.len()..].chars().next())
    })
}

/// Why a Rust path the document names does not resolve, if it does not.
/// Leading segments are modules under `src/`; the first item after them
/// must be defined in that module, and any further segment (a method, a
/// variant) must appear in the files that define it. A path that starts
/// with a type (`SessionStore::open_async`) is looked up in the whole crate;
/// one that starts with neither (`anyhow::Result`) is another crate's.
fn unresolved(path: &str, all: &[(PathBuf, String)]) -> Option<String> {
    let segs: Vec<&str> = path.split("::").collect();
    let mut dir = root().join("src");
    let mut files: Option<Vec<PathBuf>> = None;
    let mut i = 0;
    while i < segs.len() {
        match module_files(&dir, segs[i]) {
            Some(found) => {
                dir = dir.join(segs[i]);
                files = Some(found);
                i += 1;
            }
            None => break,
        }
    }
    let texts: Vec<&String> = match &files {
        Some(fs) => all
            .iter()
            .filter(|(p, _)| fs.contains(p))
            .map(|(_, t)| t)
            .collect(),
        None if segs[0].starts_with(char::is_uppercase) => all.iter().map(|(_, t)| t).collect(),
        None => return None,
    };
    let item = segs.get(i)?;
    let owners: Vec<&&String> = texts
        .iter()
        .filter(|t| {
            defines(t, item) || (files.is_some() && t.contains("pub use") && mentions(t, item))
        })
        .collect();
    if owners.is_empty() {
        return Some(format!(
            "`{item}` is not defined in `{}`",
            segs[..i].join("::")
        ));
    }
    for member in &segs[i + 1..] {
        // A method or variant: in the defining files, or (for an item
        // re-exported from elsewhere) anywhere in its module.
        let found = owners.iter().any(|t| defines_member(t, member))
            || texts.iter().any(|t| defines(t, member));
        if !found {
            return Some(format!("`{member}` is not a member of `{item}`"));
        }
    }
    None
}

/// Every problem with the document against the tree.
fn problems(doc: &str) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let all: Vec<(PathBuf, String)> = files
        .iter()
        .map(|p| (p.clone(), std::fs::read_to_string(p).unwrap()))
        .collect();
    let mut out = Vec::new();
    for span in spans(doc) {
        if is_path(&span) && !path_exists(&span) {
            out.push(format!("`{span}` names no file or folder"));
        }
        if is_rust_path(&span)
            && let Some(why) = unresolved(&span, &all)
        {
            out.push(format!("`{span}`: {why}"));
        }
    }
    out.extend(unmapped(doc, &files));
    out
}

/// Files under `src/` the code map does not name: each folder has a bullet
/// starting with its path that names each of its files (`mod.rs` stands for
/// the folder), and each top-level file has a bullet of its own.
fn unmapped(doc: &str, files: &[PathBuf]) -> Vec<String> {
    let map = doc
        .split("## Code map")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .unwrap_or_default();
    let bullets: Vec<String> = map
        .split("\n- ")
        .skip(1)
        .map(|b| b.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let mut out = BTreeSet::new();
    for file in files {
        let rel = file
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let folder = format!("{}/", Path::new(&rel).parent().unwrap().display());
        let named = if folder == "src/" {
            bullets.iter().any(|b| b.starts_with(&format!("`{rel}`")))
        } else {
            bullets.iter().any(|b| {
                b.starts_with(&format!("`{folder}`"))
                    && (name == "mod.rs" || b.contains(&format!("`{name}`")))
            })
        };
        if !named {
            out.insert(format!("`{rel}` is not in the code map"));
        }
    }
    out.into_iter().collect()
}

#[test]
fn issue_20_architecture_names_only_what_exists_and_maps_every_file() {
    let doc = architecture();
    let n_named = spans(&doc)
        .iter()
        .filter(|s| is_path(s) || is_rust_path(s))
        .count();
    assert!(
        n_named > 80,
        "too few names were checked ({n_named}) to mean anything"
    );
    let found = problems(&doc);
    assert!(
        found.is_empty(),
        "ARCHITECTURE.md disagrees with the tree:\n{}",
        found.join("\n")
    );
}

#[test]
fn issue_20_the_check_catches_a_renamed_path_item_member_and_a_missing_file() {
    let doc = architecture();
    for (from, to) in [
        ("`tests/it/common.rs`", "`tests/it/helpers.rs`"),
        (
            "`store::window_group::commit_windows`",
            "`store::window_group::commit_the_windows`",
        ),
        ("`cmd::daemon::Daemon::pass`", "`cmd::daemon::Daemon::tick`"),
        (
            "`SessionStore::export_parquet`",
            "`SessionStore::export_lake`",
        ),
    ] {
        assert!(doc.contains(from), "the document no longer names {from}");
        let broken = doc.replace(from, to);
        assert!(
            !problems(&broken).is_empty(),
            "renaming {from} went unnoticed"
        );
    }
    let without = doc.replace("`store_pipe.rs`", "the store pipe");
    assert!(
        problems(&without)
            .iter()
            .any(|p| p.contains("src/sync/store_pipe.rs")),
        "a file left out of the code map went unnoticed"
    );
    assert!(!is_rust_path("anyhow::Result<Outcome>"));
    assert!(
        unresolved("anyhow::Error", &[]).is_none(),
        "another crate's path is not ours to check"
    );
}
