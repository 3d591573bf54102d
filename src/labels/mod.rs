//! Labels from file paths: `corpus`, `speaker` and `label` for an audio file.
//!
//! Emotion corpora encode their labels in different ways: in the file name
//! (RAVDESS, EmoDB, TESS, CREMA-D, SAVEE), in a side file next to the audio
//! (IEMOCAP's `EmoEvaluation` files), or in a spreadsheet shipped with the
//! corpus. This module turns the `labels = ...` value of a pipeline file (a
//! [`LabelSpec`]) into a [`Labeler`] that labels one file at a time from its
//! path, and provides the `merge` / `keep` post-processing ([`LabelFilter`]).
//!
//! It is pure: it knows nothing about the engine, only paths and strings.
//!
//! ```toml
//! labels = "ravdess"   # none | ravdess | emodb | tess | cremad | savee | iemocap
//! labels = { regex = '(?P<speaker>\w+)/(?P<label>[A-Z])\d+\.wav', map = { A = "angry" }, corpus = "mine" }
//! labels = { csv = "labels.csv", path_column = "file", label_column = "emotion", speaker_column = "speaker" }
//! ```
//!
//! Built-in schemes fill `corpus` with the scheme name, the speaker as the
//! corpus names it, and a label from [`CANONICAL`]. A file a scheme cannot
//! parse yields `Err(message)`; the caller quarantines it as `unlabeled`.
//!
//! | scheme  | example name                          | speaker  | label     |
//! |---------|---------------------------------------|----------|-----------|
//! | ravdess | `03-01-06-01-02-01-12.flac`           | `12`     | fearful   |
//! | emodb   | `03a01Fa.wav`                         | `03`     | happy     |
//! | tess    | `YAF_dog_pleasant_surprise.wav`       | `YAF`    | surprised |
//! | cremad  | `1001_DFA_ANG_XX.wav`                 | `1001`   | angry     |
//! | savee   | `DC_a01.wav`, `JE/n12.wav`            | `DC`     | angry     |
//! | iemocap | `Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M003.wav` | `Ses01M` | from `Session1/dialog/EmoEvaluation/Ses01F_impro01.txt` |
//!
//! The module is split by subject: the configuration ([`LabelSpec`]) and the
//! dispatch ([`Labeler`]) live here, the schemes in `corpus` (built-in
//! corpora), `regex` and `csv`, and the `merge` / `keep` filter in `filter`.

mod corpus;
mod csv;
mod filter;
mod regex;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use self::corpus::{IemocapCache, cremad, emodb, ravdess, savee, tess};
use self::csv::CsvTable;
use self::regex::RegexScheme;

pub use self::corpus::BuiltinScheme;
pub use self::csv::CsvSpec;
pub use self::filter::LabelFilter;
pub use self::regex::RegexSpec;

/// Canonical English emotion names used everywhere.
pub const CANONICAL: &[&str] = &[
    "neutral",
    "calm",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgust",
    "surprised",
    "boredom",
    "frustrated",
    "excited",
    "other",
];

/// The value of `labels = ...` in a pipeline file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
#[schemars(untagged)]
#[serde(untagged)] // serialization only (Deserialize is below): as written in a pipeline
pub enum LabelSpec {
    /// `labels = "ravdess"`: a built-in scheme.
    Builtin(BuiltinScheme),
    /// `labels = { regex = '...', map = { A = "angry" }, corpus = "x" }`.
    Regex(RegexSpec),
    /// `labels = { csv = "labels.csv", path_column = "file", label_column = "emotion" }`.
    Csv(CsvSpec),
}

impl<'de> Deserialize<'de> for LabelSpec {
    /// Dispatch on the shape so errors name the problem: a string is a built-in
    /// scheme, a table with `regex` or `csv` a generic one.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let v = toml::Value::deserialize(d)?;
        match v {
            toml::Value::String(name) => toml::Value::String(name.clone())
                .try_into::<BuiltinScheme>()
                .map(LabelSpec::Builtin)
                .map_err(|_| {
                    D::Error::custom(format!(
                        "unknown label scheme `{name}`, expected one of none, ravdess, emodb, tess, cremad, savee, iemocap, or a table with `regex` or `csv`"
                    ))
                }),
            toml::Value::Table(t) if t.contains_key("regex") => toml::Value::Table(t)
                .try_into::<RegexSpec>()
                .map(LabelSpec::Regex)
                .map_err(|e| D::Error::custom(format!("labels (regex): {}", e.message().trim()))),
            toml::Value::Table(t) if t.contains_key("csv") => toml::Value::Table(t)
                .try_into::<CsvSpec>()
                .map(LabelSpec::Csv)
                .map_err(|e| D::Error::custom(format!("labels (csv): {}", e.message().trim()))),
            toml::Value::Table(_) => Err(D::Error::custom(
                "a labels table needs `regex = '...'` or `csv = \"file.csv\"`",
            )),
            other => Err(D::Error::custom(format!(
                "labels must be a scheme name or a table, got {}",
                other.type_str()
            ))),
        }
    }
}

impl Default for LabelSpec {
    fn default() -> Self {
        LabelSpec::Builtin(BuiltinScheme::None)
    }
}

/// What a scheme says about one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    /// Corpus name (the scheme name for built-ins).
    pub corpus: Option<String>,
    /// Speaker identifier, as the corpus names it.
    pub speaker: Option<String>,
    /// Emotion label.
    pub label: Option<String>,
}

/// A compiled scheme, ready to label many files. `Send + Sync`.
#[derive(Debug)]
pub struct Labeler {
    scheme: Scheme,
}

#[derive(Debug)]
enum Scheme {
    None,
    Ravdess,
    Emodb,
    Tess,
    Cremad,
    Savee,
    Iemocap(IemocapCache),
    Regex(RegexScheme),
    Csv(CsvTable),
}

impl Labeler {
    /// Compiles `spec`. `base_dir` is the folder relative paths in the spec
    /// (the CSV path) resolve from.
    pub fn new(spec: &LabelSpec, base_dir: &Path) -> Result<Labeler, String> {
        let scheme = match spec {
            LabelSpec::Builtin(b) => match b {
                BuiltinScheme::None => Scheme::None,
                BuiltinScheme::Ravdess => Scheme::Ravdess,
                BuiltinScheme::Emodb => Scheme::Emodb,
                BuiltinScheme::Tess => Scheme::Tess,
                BuiltinScheme::Cremad => Scheme::Cremad,
                BuiltinScheme::Savee => Scheme::Savee,
                BuiltinScheme::Iemocap => Scheme::Iemocap(IemocapCache::default()),
            },
            LabelSpec::Regex(r) => {
                check_map(r.map.as_ref())?;
                Scheme::Regex(RegexScheme::new(r)?)
            }
            LabelSpec::Csv(c) => {
                check_map(c.map.as_ref())?;
                Scheme::Csv(CsvTable::load(c, base_dir)?)
            }
        };
        Ok(Labeler { scheme })
    }

    /// Labels one file. `rel` is the path relative to the glob base with `/`
    /// separators, `path` the full path on disk. `Err(message)` when the
    /// scheme cannot parse this file.
    pub fn label(&self, rel: &str, path: &Path) -> Result<Labels, String> {
        match &self.scheme {
            Scheme::None => Ok(Labels::default()),
            Scheme::Ravdess => ravdess(file_name(rel, path)),
            Scheme::Emodb => emodb(file_name(rel, path)),
            Scheme::Tess => tess(file_name(rel, path)),
            Scheme::Cremad => cremad(file_name(rel, path)),
            Scheme::Savee => savee(rel, path),
            Scheme::Iemocap(cache) => cache.label(rel, path),
            Scheme::Regex(r) => r.label(rel),
            Scheme::Csv(t) => t.label(rel, path),
        }
    }
}

// ---------------------------------------------------------------------------
// Helpers shared by the scheme submodules (visible to them as `super::...`)

/// The file name: last segment of `rel`, else of `path`.
fn file_name<'a>(rel: &'a str, path: &'a Path) -> &'a str {
    match rel.rsplit('/').next() {
        Some(n) if !n.is_empty() => n,
        _ => path.file_name().and_then(|n| n.to_str()).unwrap_or(""),
    }
}

/// Every value of a `map` is a label: an empty one would label files with the
/// class `""` (a `label` group or a CSV cell that is empty is refused too).
fn check_map(map: Option<&BTreeMap<String, String>>) -> Result<(), String> {
    match map.and_then(|m| m.iter().find(|(_, v)| v.trim().is_empty())) {
        Some((code, _)) => Err(format!(
            "labels map: code `{code}` maps to an empty label (give it a name)"
        )),
        None => Ok(()),
    }
}

/// Maps `code` through `map` when there is one.
fn apply_map(code: &str, map: Option<&BTreeMap<String, String>>) -> Result<String, String> {
    match map {
        None => Ok(code.to_string()),
        Some(m) => m.get(code).cloned().ok_or_else(|| {
            let known: Vec<&str> = m.keys().map(String::as_str).collect();
            format!(
                "label code `{code}` is not in the map (known codes: {})",
                known.join(", ")
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_to_an_empty_label_is_refused() {
        // Found by the fuzzer (fuzz/regressions/labels/map_to_empty_label.lbl):
        // `A = ""` labelled files with the class "".
        let map: BTreeMap<String, String> = [
            ("A".to_string(), "angry".to_string()),
            ("N".to_string(), " ".to_string()),
        ]
        .into_iter()
        .collect();
        let spec = LabelSpec::Regex(RegexSpec {
            regex: r"(?P<label>[A-Z])\.wav".to_string(),
            map: Some(map.clone()),
            corpus: None,
        });
        let e = Labeler::new(&spec, Path::new(".")).expect_err("empty label");
        assert!(e.contains("code `N` maps to an empty label"), "{e}");
        let spec = LabelSpec::Csv(CsvSpec {
            csv: "labels.csv".to_string(),
            path_column: "file".to_string(),
            label_column: "emotion".to_string(),
            speaker_column: None,
            corpus: None,
            map: Some(map),
        });
        let e = Labeler::new(&spec, Path::new(".")).expect_err("empty label");
        assert!(e.contains("maps to an empty label"), "{e}");
    }

    #[test]
    fn labeler_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<Labeler>();
        check::<LabelFilter>();
    }

    fn spec_from_toml(src: &str) -> Result<LabelSpec, String> {
        let table = toml::from_str::<toml::Table>(src).map_err(|e| e.to_string())?;
        let value = table.get("labels").cloned().ok_or("no labels key")?;
        value.try_into::<LabelSpec>().map_err(|e| e.to_string())
    }

    #[test]
    fn serde_forms() {
        assert_eq!(
            spec_from_toml(r#"labels = "ravdess""#),
            Ok(LabelSpec::Builtin(BuiltinScheme::Ravdess))
        );
        for (name, scheme) in [
            ("none", BuiltinScheme::None),
            ("emodb", BuiltinScheme::Emodb),
            ("tess", BuiltinScheme::Tess),
            ("cremad", BuiltinScheme::Cremad),
            ("savee", BuiltinScheme::Savee),
            ("iemocap", BuiltinScheme::Iemocap),
        ] {
            assert_eq!(
                spec_from_toml(&format!("labels = \"{name}\"")),
                Ok(LabelSpec::Builtin(scheme))
            );
            assert_eq!(scheme.name(), name);
        }
        assert_eq!(
            spec_from_toml(
                r#"labels = { regex = '(?P<label>[A-Z])\d+', map = { A = "angry" }, corpus = "x" }"#
            ),
            Ok(LabelSpec::Regex(RegexSpec {
                regex: r"(?P<label>[A-Z])\d+".to_string(),
                map: Some(
                    [("A".to_string(), "angry".to_string())]
                        .into_iter()
                        .collect()
                ),
                corpus: Some("x".to_string()),
            }))
        );
        assert_eq!(
            spec_from_toml("labels = { regex = '(?P<label>\\w+)' }"),
            Ok(LabelSpec::Regex(RegexSpec {
                regex: r"(?P<label>\w+)".to_string(),
                map: None,
                corpus: None,
            }))
        );
        assert_eq!(
            spec_from_toml(
                r#"labels = { csv = "labels.csv", path_column = "file", label_column = "emotion", speaker_column = "speaker" }"#
            ),
            Ok(LabelSpec::Csv(CsvSpec {
                csv: "labels.csv".to_string(),
                path_column: "file".to_string(),
                label_column: "emotion".to_string(),
                speaker_column: Some("speaker".to_string()),
                corpus: None,
                map: None,
            }))
        );
        // Table syntax works too.
        assert!(matches!(
            spec_from_toml(
                "[labels]\ncsv = 'l.csv'\npath_column = 'f'\nlabel_column = 'e'\nmap = { a = 'angry' }\ncorpus = 'c'"
            ),
            Ok(LabelSpec::Csv(_))
        ));
        // Errors: unknown key in the regex table, unknown scheme, missing column keys.
        assert!(
            spec_from_toml(r#"labels = { regex = '(?P<label>\w)', mapping = { A = "angry" } }"#)
                .is_err()
        );
        assert!(spec_from_toml(r#"labels = "emovo""#).is_err());
        assert!(spec_from_toml(r#"labels = "RAVDESS""#).is_err());
        assert!(spec_from_toml(r#"labels = { csv = "l.csv", path_column = "f" }"#).is_err());
    }
}
