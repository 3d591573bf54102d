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

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use regex::Regex;
use serde::Deserialize;

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
#[derive(Debug, Clone, PartialEq)]
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

/// Built-in corpus naming schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuiltinScheme {
    /// No labels: every field is `None`.
    None,
    /// RAVDESS: `MM-VV-EE-II-SS-RR-AA.ext`.
    Ravdess,
    /// Berlin EmoDB: `03a01Fa.wav`.
    Emodb,
    /// Toronto emotional speech set: `OAF_back_angry.wav`.
    Tess,
    /// CREMA-D: `1001_DFA_ANG_XX.wav`.
    Cremad,
    /// SAVEE: `DC_a01.wav` or `DC/a01.wav`.
    Savee,
    /// IEMOCAP: labels from `SessionN/dialog/EmoEvaluation/<dialog>.txt`.
    Iemocap,
}

impl BuiltinScheme {
    /// The scheme's name as written in pipeline files (also the `corpus` value).
    pub fn name(self) -> &'static str {
        match self {
            BuiltinScheme::None => "none",
            BuiltinScheme::Ravdess => "ravdess",
            BuiltinScheme::Emodb => "emodb",
            BuiltinScheme::Tess => "tess",
            BuiltinScheme::Cremad => "cremad",
            BuiltinScheme::Savee => "savee",
            BuiltinScheme::Iemocap => "iemocap",
        }
    }
}

/// A regular expression over the relative path, with named groups `label`
/// (required), `speaker` and `corpus` (optional).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexSpec {
    /// The pattern, matched (unanchored) against the relative path.
    pub regex: String,
    /// Optional code → label mapping applied to the `label` group.
    pub map: Option<BTreeMap<String, String>>,
    /// Corpus name used when the regex has no `corpus` group.
    pub corpus: Option<String>,
}

/// A CSV (or TSV) table listing files and their labels.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvSpec {
    /// Path of the table, relative to the pipeline's base folder.
    pub csv: String,
    /// Column holding the file: relative path, file name or full path.
    pub path_column: String,
    /// Column holding the label (or a code, see `map`).
    pub label_column: String,
    /// Optional column holding the speaker.
    pub speaker_column: Option<String>,
    /// Corpus name given to every file.
    pub corpus: Option<String>,
    /// Optional code → label mapping applied to the label column.
    pub map: Option<BTreeMap<String, String>>,
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

/// Parsed EmoEvaluation files (utterance → emotion code), keyed by file path.
/// A file that could not be read is cached as its error message.
type EmoEvaluation = Result<Arc<HashMap<String, String>>, String>;

#[derive(Debug, Default)]
struct IemocapCache {
    files: Mutex<HashMap<PathBuf, EmoEvaluation>>,
}

#[derive(Debug)]
struct RegexScheme {
    re: Regex,
    map: Option<BTreeMap<String, String>>,
    corpus: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct CsvEntry {
    label: String,
    speaker: Option<String>,
}

#[derive(Debug)]
struct CsvTable {
    source: String,
    /// Normalised path value → entry.
    rows: HashMap<String, CsvEntry>,
    /// File name → path key; `None` when several rows share the file name.
    by_name: HashMap<String, Option<String>>,
    map: Option<BTreeMap<String, String>>,
    corpus: Option<String>,
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
            LabelSpec::Regex(r) => Scheme::Regex(RegexScheme::new(r)?),
            LabelSpec::Csv(c) => Scheme::Csv(CsvTable::load(c, base_dir)?),
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
// Helpers

/// The file name: last segment of `rel`, else of `path`.
fn file_name<'a>(rel: &'a str, path: &'a Path) -> &'a str {
    match rel.rsplit('/').next() {
        Some(n) if !n.is_empty() => n,
        _ => path.file_name().and_then(|n| n.to_str()).unwrap_or(""),
    }
}

/// The file name without its (last) extension.
fn stem(name: &str) -> &str {
    match name.rfind('.') {
        Some(i) if i > 0 => &name[..i],
        _ => name,
    }
}

fn all_digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

fn builtin(scheme: BuiltinScheme, speaker: &str, label: &str) -> Labels {
    Labels {
        corpus: Some(scheme.name().to_string()),
        speaker: Some(speaker.to_string()),
        label: Some(label.to_string()),
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

// ---------------------------------------------------------------------------
// Built-in schemes

fn ravdess(name: &str) -> Result<Labels, String> {
    let fields: Vec<&str> = stem(name).split('-').collect();
    if fields.len() != 7 || !fields.iter().all(|f| all_digits(f, 2)) {
        return Err(format!(
            "`{name}` is not a RAVDESS name (expected MM-VV-EE-II-SS-RR-AA.ext, 7 two-digit fields)"
        ));
    }
    let label = match fields[2] {
        "01" => "neutral",
        "02" => "calm",
        "03" => "happy",
        "04" => "sad",
        "05" => "angry",
        "06" => "fearful",
        "07" => "disgust",
        "08" => "surprised",
        code => {
            return Err(format!(
                "`{name}`: unknown RAVDESS emotion code `{code}` (expected 01..08)"
            ));
        }
    };
    if fields[6] == "00" {
        return Err(format!("`{name}`: RAVDESS actor `00` does not exist"));
    }
    Ok(builtin(BuiltinScheme::Ravdess, fields[6], label))
}

fn emodb(name: &str) -> Result<Labels, String> {
    let s = stem(name);
    let b = s.as_bytes();
    let shape_ok = b.len() == 7
        && b[0].is_ascii_digit()
        && b[1].is_ascii_digit()
        && b[2].is_ascii_lowercase()
        && b[3].is_ascii_digit()
        && b[4].is_ascii_digit()
        && b[6].is_ascii_lowercase();
    if !shape_ok {
        return Err(format!(
            "`{name}` is not an EmoDB name (expected e.g. 03a01Fa.wav: speaker, text, emotion, version)"
        ));
    }
    let label = match b[5] {
        b'W' => "angry",
        b'L' => "boredom",
        b'E' => "disgust",
        b'A' => "fearful",
        b'F' => "happy",
        b'T' => "sad",
        b'N' => "neutral",
        c => {
            return Err(format!(
                "`{name}`: unknown EmoDB emotion code `{}` (expected one of W L E A F T N)",
                char::from(c)
            ));
        }
    };
    Ok(builtin(BuiltinScheme::Emodb, &s[..2], label))
}

fn tess(name: &str) -> Result<Labels, String> {
    let lower = stem(name).to_ascii_lowercase();
    let fields: Vec<&str> = lower.split('_').collect();
    if fields.len() < 3 || fields.iter().any(|f| f.is_empty()) {
        return Err(format!(
            "`{name}` is not a TESS name (expected SPEAKER_word_emotion.wav, e.g. OAF_back_angry.wav)"
        ));
    }
    let speaker = fields[0].to_ascii_uppercase();
    if speaker != "OAF" && speaker != "YAF" {
        return Err(format!(
            "`{name}`: unknown TESS speaker `{}` (expected OAF or YAF)",
            fields[0]
        ));
    }
    let emotion = fields[2..].join("_");
    let label = match emotion.as_str() {
        "angry" => "angry",
        "disgust" => "disgust",
        "fear" | "fearful" => "fearful",
        "happy" => "happy",
        "neutral" => "neutral",
        "sad" => "sad",
        "ps" | "pleasant_surprise" | "pleasant_surprised" => "surprised",
        other => {
            return Err(format!(
                "`{name}`: unknown TESS emotion `{other}` (expected angry, disgust, fear, happy, neutral, sad, ps or pleasant_surprise)"
            ));
        }
    };
    Ok(builtin(BuiltinScheme::Tess, &speaker, label))
}

fn cremad(name: &str) -> Result<Labels, String> {
    let fields: Vec<&str> = stem(name).split('_').collect();
    if fields.len() != 4
        || !all_digits(fields[0], 4)
        || fields[1].is_empty()
        || fields[3].is_empty()
    {
        return Err(format!(
            "`{name}` is not a CREMA-D name (expected ACTOR_SENTENCE_EMOTION_LEVEL.wav, e.g. 1001_DFA_ANG_XX.wav)"
        ));
    }
    let label = match fields[2].to_ascii_uppercase().as_str() {
        "ANG" => "angry",
        "DIS" => "disgust",
        "FEA" => "fearful",
        "HAP" => "happy",
        "NEU" => "neutral",
        "SAD" => "sad",
        _ => {
            return Err(format!(
                "`{name}`: unknown CREMA-D emotion code `{}` (expected ANG, DIS, FEA, HAP, NEU or SAD)",
                fields[2]
            ));
        }
    };
    Ok(builtin(BuiltinScheme::Cremad, fields[0], label))
}

const SAVEE_SPEAKERS: &[&str] = &["DC", "JE", "JK", "KL"];

fn savee(rel: &str, path: &Path) -> Result<Labels, String> {
    let name = file_name(rel, path);
    let s = stem(name);
    let (speaker, utt) = match s.split_once('_') {
        Some((prefix, utt)) => {
            let sp = prefix.to_ascii_uppercase();
            if !SAVEE_SPEAKERS.contains(&sp.as_str()) {
                return Err(format!(
                    "`{name}`: unknown SAVEE speaker `{prefix}` (expected DC, JE, JK or KL)"
                ));
            }
            (sp, utt)
        }
        None => {
            // Speaker from the parent folder of `rel` (e.g. `DC/a01.wav`).
            let parent = rel
                .rsplit('/')
                .nth(1)
                .map(str::to_string)
                .or_else(|| {
                    path.parent()
                        .and_then(|p| p.file_name())
                        .and_then(|n| n.to_str())
                        .map(str::to_string)
                })
                .unwrap_or_default();
            let sp = parent.to_ascii_uppercase();
            if !SAVEE_SPEAKERS.contains(&sp.as_str()) {
                return Err(format!(
                    "`{rel}`: cannot tell the SAVEE speaker (expected a DC_/JE_/JK_/KL_ prefix or a DC, JE, JK or KL folder)"
                ));
            }
            (sp, s)
        }
    };
    let split = utt
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(utt.len());
    let (code, digits) = utt.split_at(split);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{name}` is not a SAVEE name (expected e.g. DC_a01.wav: emotion code then digits)"
        ));
    }
    let label = match code.to_ascii_lowercase().as_str() {
        "a" => "angry",
        "d" => "disgust",
        "f" => "fearful",
        "h" => "happy",
        "n" => "neutral",
        "sa" => "sad",
        "su" => "surprised",
        _ => {
            return Err(format!(
                "`{name}`: unknown SAVEE emotion code `{code}` (expected a, d, f, h, n, sa or su)"
            ));
        }
    };
    Ok(builtin(BuiltinScheme::Savee, &speaker, label))
}

// ---------------------------------------------------------------------------
// IEMOCAP

/// Parses an IEMOCAP utterance name (`Ses01F_impro01_M003`) into
/// (dialog, speaker): (`Ses01F_impro01`, `Ses01M`).
fn iemocap_utterance(utt: &str) -> Option<(&str, String)> {
    let (dialog, last) = utt.rsplit_once('_')?;
    let session = dialog.get(..5)?;
    let ok_session = session.starts_with("Ses") && all_digits(&session[3..], 2);
    let lb = last.as_bytes();
    let ok_last =
        lb.len() == 4 && matches!(lb[0], b'F' | b'M') && lb[1..].iter().all(u8::is_ascii_digit);
    let ok_dialog = dialog.len() > 6 && matches!(dialog.as_bytes()[5], b'F' | b'M');
    if !(ok_session && ok_last && ok_dialog) {
        return None;
    }
    Some((dialog, format!("{session}{}", char::from(lb[0]))))
}

fn is_session_dir(name: &str) -> bool {
    name.strip_prefix("Session")
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

fn iemocap_label(code: &str) -> Result<&'static str, String> {
    Ok(match code {
        "neu" => "neutral",
        "fru" => "frustrated",
        "ang" => "angry",
        "sad" => "sad",
        "hap" => "happy",
        "exc" => "excited",
        "sur" => "surprised",
        "fea" => "fearful",
        "dis" => "disgust",
        "oth" => "other",
        "xxx" => return Err("no agreed label (xxx)".to_string()),
        other => return Err(format!("unknown IEMOCAP emotion code `{other}`")),
    })
}

/// Parses an EmoEvaluation file: lines
/// `[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]`.
fn parse_emo_evaluation(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim_start();
        if !line.starts_with('[') {
            continue;
        }
        let Some(close) = line.find(']') else {
            continue;
        };
        let mut rest = line[close + 1..].split_whitespace();
        if let (Some(turn), Some(code)) = (rest.next(), rest.next()) {
            out.insert(turn.to_string(), code.to_string());
        }
    }
    out
}

impl IemocapCache {
    fn label(&self, rel: &str, path: &Path) -> Result<Labels, String> {
        let name = file_name(rel, path);
        let utt = stem(name);
        let (dialog, speaker) = iemocap_utterance(utt).ok_or_else(|| {
            format!(
                "`{name}` is not an IEMOCAP utterance name (expected e.g. Ses01F_impro01_F000.wav)"
            )
        })?;
        let session = path
            .ancestors()
            .skip(1)
            .find(|a| {
                a.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(is_session_dir)
            })
            .ok_or_else(|| {
                format!(
                    "`{}`: no SessionN folder above this file (IEMOCAP labels are read from SessionN/dialog/EmoEvaluation)",
                    path.display()
                )
            })?;
        let eval_path = session
            .join("dialog")
            .join("EmoEvaluation")
            .join(format!("{dialog}.txt"));
        let table = self.evaluation(&eval_path)?;
        let code = table
            .get(utt)
            .ok_or_else(|| format!("`{utt}` is not listed in `{}`", eval_path.display()))?;
        let label = iemocap_label(code).map_err(|e| format!("`{utt}`: {e}"))?;
        Ok(builtin(BuiltinScheme::Iemocap, &speaker, label))
    }

    /// The parsed EmoEvaluation file, read once and cached.
    fn evaluation(&self, eval_path: &Path) -> EmoEvaluation {
        {
            let files = self.files.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(hit) = files.get(eval_path) {
                return hit.clone();
            }
        }
        // Parsed outside the lock; a concurrent duplicate parse is harmless.
        let parsed = std::fs::read(eval_path)
            .map(|bytes| Arc::new(parse_emo_evaluation(&String::from_utf8_lossy(&bytes))))
            .map_err(|e| {
                format!(
                    "cannot read IEMOCAP EmoEvaluation file `{}`: {e}",
                    eval_path.display()
                )
            });
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        files
            .entry(eval_path.to_path_buf())
            .or_insert(parsed)
            .clone()
    }
}

// ---------------------------------------------------------------------------
// Regex scheme

impl RegexScheme {
    fn new(spec: &RegexSpec) -> Result<RegexScheme, String> {
        let re = Regex::new(&spec.regex)
            .map_err(|e| format!("bad label regex `{}`: {e}", spec.regex))?;
        if !re.capture_names().any(|n| n == Some("label")) {
            return Err(format!(
                "label regex `{}` has no `label` named group (write e.g. `(?P<label>[A-Z]+)`)",
                spec.regex
            ));
        }
        Ok(RegexScheme {
            re,
            map: spec.map.clone(),
            corpus: spec.corpus.clone(),
        })
    }

    fn label(&self, rel: &str) -> Result<Labels, String> {
        let caps = self
            .re
            .captures(rel)
            .ok_or_else(|| format!("`{rel}` does not match the regex `{}`", self.re.as_str()))?;
        let code = caps
            .name("label")
            .map(|m| m.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("`{rel}`: the regex matched but the `label` group is empty"))?;
        let label = apply_map(code, self.map.as_ref()).map_err(|e| format!("`{rel}`: {e}"))?;
        let group = |g: &str| {
            caps.name(g)
                .map(|m| m.as_str().to_string())
                .filter(|s| !s.is_empty())
        };
        Ok(Labels {
            corpus: group("corpus").or_else(|| self.corpus.clone()),
            speaker: group("speaker"),
            label: Some(label),
        })
    }
}

// ---------------------------------------------------------------------------
// CSV scheme

/// Normalises a path value: `\` → `/`, no leading `./`.
fn normalise(p: &str) -> String {
    let p = p.replace('\\', "/");
    let mut s = p.as_str();
    while let Some(rest) = s.strip_prefix("./") {
        s = rest;
    }
    s.to_string()
}

impl CsvTable {
    fn load(spec: &CsvSpec, base_dir: &Path) -> Result<CsvTable, String> {
        let file = base_dir.join(&spec.csv);
        let source = file.display().to_string();
        let is_tsv = file
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("tsv"));
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(if is_tsv { b'\t' } else { b',' })
            .trim(csv::Trim::All)
            .from_path(&file)
            .map_err(|e| format!("cannot read label CSV `{source}`: {e}"))?;
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| format!("cannot read the header of label CSV `{source}`: {e}"))?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').to_string())
            .collect();
        let column = |name: &str| {
            headers.iter().position(|h| h == name).ok_or_else(|| {
                format!(
                    "label CSV `{source}` has no column `{name}` (columns: {})",
                    headers.join(", ")
                )
            })
        };
        let path_col = column(&spec.path_column)?;
        let label_col = column(&spec.label_column)?;
        let speaker_col = spec.speaker_column.as_deref().map(column).transpose()?;

        let mut rows: HashMap<String, CsvEntry> = HashMap::new();
        for (i, record) in reader.records().enumerate() {
            let line = i + 2;
            let record = record.map_err(|e| format!("label CSV `{source}`, line {line}: {e}"))?;
            let key = normalise(record.get(path_col).unwrap_or(""));
            if key.is_empty() {
                return Err(format!(
                    "label CSV `{source}`, line {line}: empty `{}` value",
                    spec.path_column
                ));
            }
            let entry = CsvEntry {
                label: record.get(label_col).unwrap_or("").to_string(),
                speaker: speaker_col
                    .and_then(|c| record.get(c))
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            };
            match rows.get(&key) {
                Some(prev) if *prev != entry => {
                    return Err(format!(
                        "label CSV `{source}`, line {line}: `{key}` is listed twice with different values (label `{}` vs `{}`, speaker {:?} vs {:?})",
                        prev.label, entry.label, prev.speaker, entry.speaker
                    ));
                }
                Some(_) => {}
                None => {
                    rows.insert(key, entry);
                }
            }
        }

        let mut by_name: HashMap<String, Option<String>> = HashMap::new();
        for key in rows.keys() {
            let name = key.rsplit('/').next().unwrap_or(key).to_string();
            by_name
                .entry(name)
                .and_modify(|v| *v = None)
                .or_insert_with(|| Some(key.clone()));
        }

        Ok(CsvTable {
            source,
            rows,
            by_name,
            map: spec.map.clone(),
            corpus: spec.corpus.clone(),
        })
    }

    fn find(&self, rel: &str, path: &Path) -> Option<&CsvEntry> {
        if let Some(e) = self.rows.get(&normalise(rel)) {
            return Some(e);
        }
        let by_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| self.by_name.get(n))
            .and_then(|k| k.as_ref())
            .and_then(|k| self.rows.get(k));
        if by_name.is_some() {
            return by_name;
        }
        self.rows.get(&normalise(&path.to_string_lossy()))
    }

    fn label(&self, rel: &str, path: &Path) -> Result<Labels, String> {
        let entry = self
            .find(rel, path)
            .ok_or_else(|| format!("`{rel}` is not listed in label CSV `{}`", self.source))?;
        if entry.label.is_empty() {
            return Err(format!(
                "`{rel}` has an empty label in label CSV `{}`",
                self.source
            ));
        }
        let label =
            apply_map(&entry.label, self.map.as_ref()).map_err(|e| format!("`{rel}`: {e}"))?;
        Ok(Labels {
            corpus: self.corpus.clone(),
            speaker: entry.speaker.clone(),
            label: Some(label),
        })
    }
}

// ---------------------------------------------------------------------------
// merge / keep

/// `merge = { happy = ["happy", "excited"] }` and `keep = [...]`
/// post-processing of labels.
#[derive(Debug, Clone, Default)]
pub struct LabelFilter {
    /// Source label → merged label.
    merge: HashMap<String, String>,
    /// Labels to keep (after merging); `None` keeps everything.
    keep: Option<Vec<String>>,
}

impl LabelFilter {
    /// Builds the filter. Errors when a label appears in two merge groups (a
    /// group's own name counts as part of it), when `keep` is empty, or when
    /// `keep` names a label that `merge` renames away.
    pub fn new(
        merge: &BTreeMap<String, Vec<String>>,
        keep: Option<&[String]>,
    ) -> Result<LabelFilter, String> {
        let mut owner: HashMap<&str, &str> = HashMap::new();
        for (target, sources) in merge {
            let members = std::iter::once(target).chain(sources.iter());
            for label in members {
                match owner.get(label.as_str()) {
                    Some(prev) if *prev != target.as_str() => {
                        return Err(format!(
                            "label `{label}` appears in two merge groups (`{prev}` and `{target}`)"
                        ));
                    }
                    _ => {
                        owner.insert(label, target);
                    }
                }
            }
        }
        let merge: HashMap<String, String> = owner
            .iter()
            .filter(|(label, target)| label != target)
            .map(|(label, target)| (label.to_string(), target.to_string()))
            .collect();
        if let Some(keep) = keep {
            if keep.is_empty() {
                return Err("`keep` is empty: every file would be dropped".to_string());
            }
            if let Some(k) = keep.iter().find(|k| merge.contains_key(k.as_str())) {
                return Err(format!(
                    "`keep` lists `{k}`, but merge renames it to `{}`",
                    merge[k.as_str()]
                ));
            }
        }
        Ok(LabelFilter {
            merge,
            keep: keep.map(<[String]>::to_vec),
        })
    }

    /// `Some(final_label)` to keep the file, `None` to drop it. Files with no
    /// label are kept unchanged when `keep` is not set, dropped when it is.
    pub fn apply(&self, label: Option<&str>) -> Option<Option<String>> {
        let Some(label) = label else {
            return match self.keep {
                Some(_) => None,
                None => Some(None),
            };
        };
        let merged = self.merge.get(label).map_or(label, String::as_str);
        match &self.keep {
            Some(keep) if !keep.iter().any(|k| k == merged) => None,
            _ => Some(Some(merged.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lab(scheme: BuiltinScheme, rel: &str) -> Result<Labels, String> {
        let l = Labeler::new(&LabelSpec::Builtin(scheme), Path::new("."))
            .expect("builtin schemes compile");
        l.label(rel, &Path::new("/data").join(rel))
    }

    fn ok(scheme: BuiltinScheme, rel: &str) -> (String, String) {
        let l = lab(scheme, rel).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(l.corpus.as_deref(), Some(scheme.name()));
        let label = l.label.expect("label");
        assert!(CANONICAL.contains(&label.as_str()), "{label} not canonical");
        (l.speaker.expect("speaker"), label)
    }

    fn pair(s: &str, l: &str) -> (String, String) {
        (s.to_string(), l.to_string())
    }

    #[test]
    fn labeler_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<Labeler>();
        check::<LabelFilter>();
    }

    #[test]
    fn none_scheme() {
        let l = lab(BuiltinScheme::None, "x/y.wav").expect("ok");
        assert_eq!(l, Labels::default());
        assert_eq!(
            LabelSpec::default(),
            LabelSpec::Builtin(BuiltinScheme::None)
        );
    }

    #[test]
    fn ravdess_names() {
        use BuiltinScheme::Ravdess as R;
        assert_eq!(
            ok(R, "Actor_01/03-01-01-01-01-01-01.flac"),
            pair("01", "neutral")
        );
        assert_eq!(
            ok(R, "Actor_24/03-01-08-02-02-02-24.flac"),
            pair("24", "surprised")
        );
        assert_eq!(ok(R, "03-01-06-01-02-01-12.flac"), pair("12", "fearful"));
        assert_eq!(
            ok(R, "Actor_05/03-01-05-01-01-01-05.wav"),
            pair("05", "angry")
        );
        assert_eq!(ok(R, "03-02-02-02-01-02-07.wav"), pair("07", "calm"));
        assert_eq!(ok(R, "03-01-07-01-01-01-10.wav"), pair("10", "disgust"));
        // Malformed.
        for bad in [
            "03-01-09-01-01-01-01.flac", // emotion code 09
            "03-01-00-01-01-01-01.flac", // emotion code 00
            "03-01-01-01-01-01.flac",    // 6 fields
            "03-01-01-01-01-01-01-01.flac",
            "03-01-1-01-01-01-01.flac",
            "03-01-ab-01-01-01-01.flac",
            "03a01Fa.wav",
            "",
        ] {
            assert!(lab(R, bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn emodb_names() {
        use BuiltinScheme::Emodb as E;
        assert_eq!(ok(E, "wav/03a01Fa.wav"), pair("03", "happy"));
        assert_eq!(ok(E, "16b10Td.wav"), pair("16", "sad"));
        assert_eq!(ok(E, "08a02La.wav"), pair("08", "boredom"));
        assert_eq!(ok(E, "13a05Ea.wav"), pair("13", "disgust"));
        assert_eq!(ok(E, "10b03Wb.wav"), pair("10", "angry"));
        assert_eq!(ok(E, "11a04Ac.wav"), pair("11", "fearful"));
        assert_eq!(ok(E, "15a01Nb.wav"), pair("15", "neutral"));
        for bad in [
            "03a01Xa.wav",
            "03a01Fa1.wav",
            "3a01Fa.wav",
            "03a01fa.wav",
            "OAF_back_angry.wav",
        ] {
            assert!(lab(E, bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn tess_names() {
        use BuiltinScheme::Tess as T;
        assert_eq!(ok(T, "OAF_angry/OAF_back_angry.wav"), pair("OAF", "angry"));
        assert_eq!(ok(T, "YAF_dog_ps.wav"), pair("YAF", "surprised"));
        assert_eq!(
            ok(T, "OAF_beg_pleasant_surprise.wav"),
            pair("OAF", "surprised")
        );
        assert_eq!(
            ok(T, "YAF_pleasant_surprised/YAF_bite_pleasant_surprised.wav"),
            pair("YAF", "surprised")
        );
        assert_eq!(ok(T, "YAF_chalk_fear.wav"), pair("YAF", "fearful"));
        assert_eq!(ok(T, "yaf_Chalk_Disgust.WAV"), pair("YAF", "disgust"));
        assert_eq!(ok(T, "OAF_bite_neutral.wav"), pair("OAF", "neutral"));
        for bad in [
            "OAF_back.wav",
            "XAF_back_angry.wav",
            "OAF_back_bored.wav",
            "OAF__angry.wav",
            "03a01Fa.wav",
        ] {
            assert!(lab(T, bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn cremad_names() {
        use BuiltinScheme::Cremad as C;
        assert_eq!(ok(C, "AudioWAV/1001_DFA_ANG_XX.wav"), pair("1001", "angry"));
        assert_eq!(ok(C, "1091_WSI_SAD_LO.wav"), pair("1091", "sad"));
        assert_eq!(ok(C, "1012_IEO_HAP_HI.wav"), pair("1012", "happy"));
        assert_eq!(ok(C, "1050_TIE_FEA_XX.wav"), pair("1050", "fearful"));
        assert_eq!(ok(C, "1033_IWL_NEU_XX.wav"), pair("1033", "neutral"));
        assert_eq!(ok(C, "1077_ITH_DIS_MD.wav"), pair("1077", "disgust"));
        for bad in [
            "1001_DFA_XYZ_XX.wav",
            "1001_DFA_ANG.wav",
            "101_DFA_ANG_XX.wav",
            "1001_DFA_ANG_XX_1.wav",
        ] {
            assert!(lab(C, bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn savee_names() {
        use BuiltinScheme::Savee as S;
        assert_eq!(ok(S, "ALL/DC_a01.wav"), pair("DC", "angry"));
        assert_eq!(ok(S, "JK_sa15.wav"), pair("JK", "sad"));
        assert_eq!(ok(S, "KL_su03.wav"), pair("KL", "surprised"));
        assert_eq!(ok(S, "JE/n12.wav"), pair("JE", "neutral"));
        assert_eq!(ok(S, "AudioData/DC/h05.wav"), pair("DC", "happy"));
        assert_eq!(ok(S, "JE_d10.wav"), pair("JE", "disgust"));
        assert_eq!(ok(S, "KL_f07.wav"), pair("KL", "fearful"));
        for bad in [
            "DC_x01.wav", // unknown code
            "DC_a.wav",   // no digits
            "XX_a01.wav", // unknown speaker
            "a01.wav",    // no speaker at all
            "misc/a01.wav",
            "DC_s01.wav",
        ] {
            assert!(lab(S, bad).is_err(), "{bad} should fail");
        }
    }

    const EMO_EVAL: &str = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\
\n\
[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]\n\
C-E2:\tNeutral;\t()\n\
C-E3:\tNeutral;\t()\n\
A-E3:\tval 3; act 2; dom  2;\t()\n\
\n\
[10.0100 - 11.3925]\tSes01F_impro01_F001\tneu\t[2.5000, 2.5000, 2.5000]\n\
\n\
[14.8872 - 18.0175]\tSes01F_impro01_F002\tfru\t[2.0000, 3.0000, 3.5000]\n\
\n\
[19.2900 - 20.7875]\tSes01F_impro01_M000\txxx\t[2.5000, 2.5000, 2.5000]\n\
\n\
[21.3257 - 24.7400]\tSes01F_impro01_M001\tang\t[1.5000, 3.5000, 4.0000]\n";

    fn iemocap_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let eval = dir.path().join("IEMOCAP/Session1/dialog/EmoEvaluation");
        std::fs::create_dir_all(&eval).expect("mkdir");
        std::fs::write(eval.join("Ses01F_impro01.txt"), EMO_EVAL).expect("write");
        std::fs::create_dir_all(
            dir.path()
                .join("IEMOCAP/Session1/sentences/wav/Ses01F_impro01"),
        )
        .expect("mkdir");
        dir
    }

    #[test]
    fn iemocap_labels() {
        let dir = iemocap_tree();
        let base = dir.path().join("IEMOCAP");
        let l = Labeler::new(&LabelSpec::Builtin(BuiltinScheme::Iemocap), &base).expect("new");
        let get = |utt: &str| {
            let rel = format!("Session1/sentences/wav/Ses01F_impro01/{utt}.wav");
            l.label(&rel, &base.join(&rel))
        };
        let f000 = get("Ses01F_impro01_F000").expect("F000");
        assert_eq!(
            f000,
            Labels {
                corpus: Some("iemocap".into()),
                speaker: Some("Ses01F".into()),
                label: Some("neutral".into()),
            }
        );
        let f002 = get("Ses01F_impro01_F002").expect("F002");
        assert_eq!(f002.label.as_deref(), Some("frustrated"));
        let m001 = get("Ses01F_impro01_M001").expect("M001");
        assert_eq!(m001.speaker.as_deref(), Some("Ses01M"));
        assert_eq!(m001.label.as_deref(), Some("angry"));
        let xxx = get("Ses01F_impro01_M000").expect_err("xxx");
        assert!(xxx.contains("no agreed label (xxx)"), "{xxx}");
        let missing = get("Ses01F_impro01_F099").expect_err("not listed");
        assert!(missing.contains("not listed"), "{missing}");
        // Cached: one parsed file for all those lookups.
        match &l.scheme {
            Scheme::Iemocap(c) => assert_eq!(c.files.lock().expect("lock").len(), 1),
            _ => panic!("wrong scheme"),
        }
        // Missing EmoEvaluation file.
        let rel = "Session1/sentences/wav/Ses01F_impro02/Ses01F_impro02_F000.wav";
        let e = l.label(rel, &base.join(rel)).expect_err("no eval file");
        assert!(e.contains("EmoEvaluation"), "{e}");
        // Not under a SessionN folder.
        let e = l
            .label(
                "Ses01F_impro01_F000.wav",
                &dir.path().join("Ses01F_impro01_F000.wav"),
            )
            .expect_err("no session");
        assert!(e.contains("SessionN"), "{e}");
        // Malformed names.
        for bad in [
            "Ses01F_impro01.wav",
            "Ses01F_impro01_X000.wav",
            "Sesxx_impro01_F000.wav",
            "foo.wav",
        ] {
            let rel = format!("Session1/sentences/wav/Ses01F_impro01/{bad}");
            assert!(
                l.label(&rel, &base.join(&rel)).is_err(),
                "{bad} should fail"
            );
        }
    }

    #[test]
    fn iemocap_utterance_names() {
        assert_eq!(
            iemocap_utterance("Ses01F_impro01_M003"),
            Some(("Ses01F_impro01", "Ses01M".to_string()))
        );
        assert_eq!(
            iemocap_utterance("Ses05M_script02_2_F014"),
            Some(("Ses05M_script02_2", "Ses05F".to_string()))
        );
        assert_eq!(iemocap_utterance("Ses01F_impro01_F00"), None);
    }

    fn regex_spec(re: &str, map: Option<&[(&str, &str)]>) -> LabelSpec {
        LabelSpec::Regex(RegexSpec {
            regex: re.to_string(),
            map: map.map(|m| {
                m.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
            corpus: Some("mine".to_string()),
        })
    }

    #[test]
    fn regex_scheme() {
        let spec = regex_spec(
            r"(?P<speaker>spk\d+)/(?P<label>[A-Z])\d+\.wav$",
            Some(&[("A", "angry"), ("H", "happy")]),
        );
        let l = Labeler::new(&spec, Path::new(".")).expect("new");
        let p = Path::new("/x");
        assert_eq!(
            l.label("spk01/A003.wav", p).expect("ok"),
            Labels {
                corpus: Some("mine".into()),
                speaker: Some("spk01".into()),
                label: Some("angry".into()),
            }
        );
        let e = l.label("spk01/Z003.wav", p).expect_err("unmapped");
        assert!(e.contains("`Z`") && e.contains("A, H"), "{e}");
        let e = l.label("other/A003.wav", p).expect_err("no match");
        assert!(e.contains("does not match the regex"), "{e}");

        // No map: raw code; corpus group wins over spec.corpus.
        let spec = regex_spec(r"(?P<corpus>[a-z]+)/(?P<label>[a-z]+)_\d+", None);
        let l = Labeler::new(&spec, Path::new(".")).expect("new");
        let got = l.label("emovo/gioia_01.wav", p).expect("ok");
        assert_eq!(got.corpus.as_deref(), Some("emovo"));
        assert_eq!(got.label.as_deref(), Some("gioia"));
        assert_eq!(got.speaker, None);

        // Errors at new().
        let e = Labeler::new(&regex_spec(r"(?P<emo>\w+)", None), Path::new("."))
            .expect_err("no label group");
        assert!(e.contains("`label`"), "{e}");
        let e =
            Labeler::new(&regex_spec(r"(?P<label>[", None), Path::new(".")).expect_err("bad regex");
        assert!(e.contains("bad label regex"), "{e}");
    }

    fn csv_spec(file: &str) -> LabelSpec {
        LabelSpec::Csv(CsvSpec {
            csv: file.to_string(),
            path_column: "file".to_string(),
            label_column: "emotion".to_string(),
            speaker_column: Some("speaker".to_string()),
            corpus: Some("shemo".to_string()),
            map: Some(
                [("A", "angry"), ("N", "neutral"), ("S", "sad")]
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        })
    }

    fn write(dir: &Path, name: &str, text: &str) {
        let mut f = std::fs::File::create(dir.join(name)).expect("create");
        f.write_all(text.as_bytes()).expect("write");
    }

    #[test]
    fn csv_scheme() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "labels.csv",
            "\u{feff}file,speaker,emotion\n\
             female/F01A01.wav,F01,A\n\
             M02N05.wav, M02 ,N\n\
             ./male/M03S02.wav,M03,S\n\
             male/M03S02.wav,M03,S\n\
             male/M04X01.wav,M04,X\n",
        );
        let l = Labeler::new(&csv_spec("labels.csv"), dir.path()).expect("new");
        // By rel.
        let got = l
            .label("female/F01A01.wav", Path::new("/corpus/female/F01A01.wav"))
            .expect("by rel");
        assert_eq!(
            got,
            Labels {
                corpus: Some("shemo".into()),
                speaker: Some("F01".into()),
                label: Some("angry".into()),
            }
        );
        // By file name.
        let got = l
            .label("male/M02N05.wav", Path::new("/corpus/male/M02N05.wav"))
            .expect("by name");
        assert_eq!(got.label.as_deref(), Some("neutral"));
        assert_eq!(got.speaker.as_deref(), Some("M02"));
        // `./` prefix normalised.
        let got = l
            .label("male/M03S02.wav", Path::new("/corpus/male/M03S02.wav"))
            .expect("dotslash");
        assert_eq!(got.label.as_deref(), Some("sad"));
        // Missing file.
        let e = l
            .label("male/M09A01.wav", Path::new("/corpus/male/M09A01.wav"))
            .expect_err("missing");
        assert!(e.contains("not listed"), "{e}");
        // Unmapped code.
        let e = l
            .label("male/M04X01.wav", Path::new("/corpus/male/M04X01.wav"))
            .expect_err("unmapped");
        assert!(e.contains("`X`"), "{e}");
    }

    #[test]
    fn csv_scheme_by_full_path_and_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "full.csv",
            "file,emotion,speaker\n/a/x.wav,A,s1\n/b/x.wav,S,s2\n",
        );
        let l = Labeler::new(&csv_spec("full.csv"), dir.path()).expect("new");
        // Same file name twice: matched by full path only.
        let got = l.label("x.wav", Path::new("/b/x.wav")).expect("full path");
        assert_eq!(got.label.as_deref(), Some("sad"));

        write(
            dir.path(),
            "dup.csv",
            "file,emotion,speaker\na.wav,A,s1\na.wav,N,s1\n",
        );
        let e = Labeler::new(&csv_spec("dup.csv"), dir.path()).expect_err("conflict");
        assert!(e.contains("listed twice"), "{e}");

        write(dir.path(), "cols.csv", "path,emotion\na.wav,A\n");
        let e = Labeler::new(&csv_spec("cols.csv"), dir.path()).expect_err("column");
        assert!(e.contains("no column `file`"), "{e}");

        let e = Labeler::new(&csv_spec("nope.csv"), dir.path()).expect_err("missing csv");
        assert!(e.contains("cannot read label CSV"), "{e}");
    }

    #[test]
    fn label_filter_iemocap_four_class() {
        let merge: BTreeMap<String, Vec<String>> = [(
            "happy".to_string(),
            vec!["happy".to_string(), "excited".to_string()],
        )]
        .into_iter()
        .collect();
        let keep: Vec<String> = ["angry", "happy", "neutral", "sad"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let f = LabelFilter::new(&merge, Some(&keep)).expect("filter");
        assert_eq!(f.apply(Some("excited")), Some(Some("happy".to_string())));
        assert_eq!(f.apply(Some("happy")), Some(Some("happy".to_string())));
        assert_eq!(f.apply(Some("sad")), Some(Some("sad".to_string())));
        assert_eq!(f.apply(Some("frustrated")), None);
        assert_eq!(f.apply(None), None);

        // Merge only: unlabeled files pass unchanged.
        let f = LabelFilter::new(&merge, None).expect("filter");
        assert_eq!(f.apply(None), Some(None));
        assert_eq!(f.apply(Some("excited")), Some(Some("happy".to_string())));
        assert_eq!(f.apply(Some("other")), Some(Some("other".to_string())));

        // A label in two groups.
        let mut bad = merge.clone();
        bad.insert("positive".to_string(), vec!["excited".to_string()]);
        let e = LabelFilter::new(&bad, None).expect_err("two groups");
        assert!(e.contains("excited"), "{e}");

        // keep names a merged-away label; empty keep.
        let keep = vec!["excited".to_string()];
        assert!(LabelFilter::new(&merge, Some(&keep)).is_err());
        assert!(LabelFilter::new(&merge, Some(&[])).is_err());
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
