//! The layers of docs/architecture.md, kept by a test: which module of `src/` may
//! name which. A change that makes a library module reach up into an operator, or
//! the engine into pipeline files or audio, fails here with the file and line.
//!
//! The rules (a module is the first path component under `src/`):
//! - only `ops/` itself, `registry.rs` and the CLI (`cli.rs`, `main.rs`) name `ops`;
//! - `engine/` names nothing of the crate but `error` (it knows no pipeline files,
//!   no registry, no table kinds, no audio);
//! - `dsp/` names only `dsp` (pure DSP, no I/O, no engine); `limits.rs` names nothing;
//! - the library modules beneath the operators (`store`, `frontend`, `train`,
//!   `audio`, `rows`, `schema`, `labels`, `analysis`, `timeline`) name neither `ops`, `config`,
//!   `registry` nor the CLI.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The crate modules a piece of Rust source names through `crate::` (also inside
/// `use crate::{a, b::c}` groups), with the line of each mention. Comments are
/// skipped.
fn named_modules(src: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in src.lines().enumerate() {
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                // A `use crate::{...}` group: the names at depth 0, possibly on
                // the following lines.
                let mut text = group.to_string();
                for more in src.lines().skip(n + 1) {
                    if balanced(&text) {
                        break;
                    }
                    text.push('\n');
                    text.push_str(more);
                }
                let mut depth = 0;
                let mut item = String::new();
                for c in text.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            push_head(&mut out, n + 1, &item);
                            item.clear();
                            continue;
                        }
                        _ => {}
                    }
                    item.push(c);
                }
                push_head(&mut out, n + 1, &item);
            } else {
                push_head(&mut out, n + 1, after);
            }
            rest = after;
        }
    }
    out
}

/// Whether the `{`-opened group in `text` is closed.
fn balanced(text: &str) -> bool {
    let mut depth = 1i32;
    for c in text.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            return true;
        }
    }
    false
}

fn push_head(out: &mut Vec<(usize, String)>, line: usize, item: &str) {
    let head: String = item
        .trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if !head.is_empty() && head != "self" {
        out.push((line, head));
    }
}

/// The module a file under `src/` belongs to (`ops`, `engine`, `cli`, ...).
fn module_of(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .unwrap_or_default();
    first.trim_end_matches(".rs").to_string()
}

/// Every module of `src/` that a rule can name.
const MODULES: [&str; 23] = [
    "analysis",
    "audio",
    "charts",
    "cli",
    "config",
    "dsp",
    "encoders",
    "engine",
    "error",
    "frontend",
    "infer_cli",
    "labels",
    "limits",
    "ops",
    "registry",
    "rows",
    "schema",
    "serve",
    "shards",
    "store",
    "timeline",
    "train",
    "main",
];

/// Every module but `allowed`.
fn all_but(allowed: &[&str]) -> Vec<&'static str> {
    MODULES
        .into_iter()
        .filter(|m| !allowed.contains(m))
        .collect()
}

/// The modules `module` may not name, and why.
fn forbidden(module: &str) -> (Vec<&'static str>, &'static str) {
    const CLI: [&str; 4] = ["cli", "main", "serve", "infer_cli"];
    match module {
        "ops" | "registry" | "cli" | "main" | "lib" => (vec![], ""),
        "engine" => (
            all_but(&["engine", "error"]),
            "the engine runtime knows no pipeline files, registry, table kinds or audio",
        ),
        "limits" => (
            all_but(&["limits"]),
            "limits.rs holds bounds every layer uses: it names nothing of the crate",
        ),
        "dsp" => (
            all_but(&["dsp"]),
            "dsp/ is pure DSP: no I/O, no engine, no tables",
        ),
        "serve" | "infer_cli" => (
            vec!["ops"],
            "commands use library modules; only the registry and cli.rs name operators",
        ),
        "config" | "shards" => (
            [vec!["ops"], CLI.to_vec()].concat(),
            "only the registry and the CLI name operators",
        ),
        _ => (
            [vec!["ops", "config", "registry"], CLI.to_vec()].concat(),
            "library modules sit beneath the operators and the pipeline compiler",
        ),
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every violation in `src` of file `rel`, as `file:line: names X (why)`.
fn violations(rel: &Path, src: &str) -> Vec<String> {
    let module = module_of(rel);
    let (banned, why) = forbidden(&module);
    let mut out = Vec::new();
    for (line, name) in named_modules(src) {
        if banned.contains(&name.as_str()) {
            out.push(format!(
                "src/{}:{line}: `{module}` names `crate::{name}` ({why})",
                rel.display()
            ));
        }
    }
    // `super::ops` from a top-level file is the same as `crate::ops`.
    if module != "ops" && rel.components().count() == 1 {
        for (n, line) in src.lines().enumerate() {
            if line.split("//").next().unwrap_or("").contains("super::ops") {
                out.push(format!(
                    "src/{}:{}: names `super::ops`",
                    rel.display(),
                    n + 1
                ));
            }
        }
    }
    out
}

#[test]
fn modules_keep_their_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(
        files.len() > 50,
        "found only {} files under src/",
        files.len()
    );
    let mut all = Vec::new();
    let mut seen = BTreeSet::new();
    for f in &files {
        let rel = f.strip_prefix(&root).unwrap_or(f);
        seen.insert(module_of(rel));
        let src = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        all.extend(violations(rel, &src));
    }
    for m in [
        "ops", "engine", "dsp", "store", "frontend", "train", "config",
    ] {
        assert!(
            seen.contains(m),
            "no module `{m}` under src/: update this test"
        );
    }
    assert!(
        all.is_empty(),
        "{} layering violation(s) (docs/architecture.md, \"Layers\"):\n{}",
        all.len(),
        all.join("\n")
    );
}

#[test]
fn the_checker_sees_every_form_of_a_path() {
    // Plain paths, groups over several lines, nested groups; comments ignored.
    let src = "use crate::error::Result;\n\
               use crate::{\n    schema::col,\n    ops::files::{A, B},\n};\n\
               // crate::config in a comment does not count\n\
               let x = crate::registry::Registry::builtin();\n";
    let names: Vec<String> = named_modules(src).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, vec!["error", "schema", "ops", "registry"]);
    let v = violations(Path::new("engine/mod.rs"), src);
    assert_eq!(v.len(), 3, "{v:?}");
    assert!(
        v[0].contains("src/engine/mod.rs:2: `engine` names `crate::schema`"),
        "{v:?}"
    );
    let v = violations(
        Path::new("store/part.rs"),
        "use crate::ops::parquet::Mode;\n",
    );
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(violations(Path::new("registry.rs"), "use crate::ops;\n").is_empty());
    assert_eq!(
        violations(Path::new("shards.rs"), "use super::ops::parquet;\n").len(),
        1
    );
}
