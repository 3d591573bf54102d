//! The default model: `models/default` of the repository (trained by
//! `pipelines/default_features.toml` + `pipelines/default_model.toml`, see
//! `models/default/README.md`), built into the binary so that `sermo infer FILE`
//! and `sermo serve` work without `--model` wherever the binary is installed.
//!
//! A model is a folder (`config.json` + `model.mpk`) for every reader of models,
//! so the built-in copy is written once into the user's cache folder
//! (`$XDG_CACHE_HOME/sermo`, else `~/.cache/sermo`, else the temporary folder),
//! under a name that carries the hash of its bytes; an existing copy is used only
//! when its bytes are exactly the built-in ones, and a copy is written to a
//! temporary name and renamed, so two processes starting at once never read half
//! a file.

use std::path::{Path, PathBuf};

/// The files of the default model, as built into the binary.
const FILES: &[(&str, &[u8])] = &[
    (
        "config.json",
        include_bytes!("../../models/default/config.json"),
    ),
    (
        "model.mpk",
        include_bytes!("../../models/default/model.mpk"),
    ),
];

/// How the default model is named in messages: `models/default` of the sermo
/// version that built this binary.
pub fn name() -> String {
    format!("models/default of sermo {}", env!("CARGO_PKG_VERSION"))
}

/// The built-in files (name, bytes): `tests/default_model.rs` checks that they
/// equal the committed folder.
pub fn files() -> &'static [(&'static str, &'static [u8])] {
    FILES
}

/// Short hash of the built-in files (names and bytes), naming the cached copy.
pub fn fingerprint() -> String {
    let mut h = blake3::Hasher::new();
    for (name, bytes) in FILES {
        h.update(name.as_bytes());
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    h.finalize().to_hex()[..16].to_string()
}

fn cache_root() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("sermo");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h).join(".cache").join("sermo");
    }
    std::env::temp_dir().join("sermo")
}

/// True when `dir` holds exactly the built-in files.
fn is_intact(dir: &Path) -> bool {
    FILES
        .iter()
        .all(|(name, bytes)| std::fs::read(dir.join(name)).is_ok_and(|b| b == *bytes))
}

/// Write the built-in files into `<root>/models/<fingerprint>/default` (once) and
/// return that folder.
fn materialize_under(root: &Path) -> Result<PathBuf, String> {
    let parent = root.join("models").join(fingerprint());
    let dir = parent.join("default");
    if is_intact(&dir) {
        return Ok(dir);
    }
    std::fs::create_dir_all(&parent)
        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let tmp = parent.join(format!("default.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    for (name, bytes) in FILES {
        let p = tmp.join(name);
        std::fs::write(&p, bytes).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }
    // A damaged copy (a disk that filled up, an edited file) is replaced.
    if dir.exists() && !is_intact(&dir) {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another process may have put the same files there first.
        if !is_intact(&dir) {
            return Err(format!("cannot write {}: {e}", dir.display()));
        }
    }
    Ok(dir)
}

/// The default model as a folder every model reader takes (written into the
/// cache folder the first time). Falls back to the temporary folder when the
/// cache folder is not writable.
pub fn folder() -> Result<PathBuf, String> {
    let root = cache_root();
    match materialize_under(&root) {
        Ok(d) => Ok(d),
        Err(first) => materialize_under(&std::env::temp_dir().join("sermo")).map_err(|e| {
            format!(
                "the built-in default model cannot be written to disk ({first}; {e}); give a model folder with --model"
            )
        }),
    }
}

/// `given`, or the default model with a notice on stderr naming it (`who`:
/// `infer`, `serve`).
pub fn resolve(given: Option<&Path>, who: &str) -> Result<PathBuf, String> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    let dir = folder()?;
    let what = crate::train::inference::read_artifact(&dir)
        .map(|a| {
            format!(
                "{}, {}: {}",
                a.model.kind().name(),
                crate::error::count_as(a.labels.len(), "class", "classes"),
                a.labels.join(", ")
            )
        })
        .unwrap_or_else(|e| e);
    eprintln!(
        "sermo: {who}: no --model given: using the default model ({}; {what}; trained on acted EmoDB + RAVDESS speech, see models/default/README.md)",
        name()
    );
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_is_written_once_and_repaired_when_damaged() {
        let root = std::env::temp_dir().join(format!("sermo-default-model-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = materialize_under(&root).expect("written");
        assert!(is_intact(&dir));
        assert_eq!(dir.file_name().and_then(|n| n.to_str()), Some("default"));
        // Same folder the second time.
        assert_eq!(materialize_under(&root).expect("again"), dir);
        // A damaged copy is replaced by the built-in bytes.
        std::fs::write(dir.join("model.mpk"), b"garbage").expect("damage");
        assert!(!is_intact(&dir));
        let again = materialize_under(&root).expect("repaired");
        assert!(is_intact(&again));
        crate::train::inference::read_artifact(&again).expect("a model folder");
        let _ = std::fs::remove_dir_all(&root);
    }
}
