//! The CSV scheme: [`CsvSpec`] (`labels = { csv = "labels.csv", ... }`) and
//! the loaded table, which labels a file by its relative path, file name or
//! full path.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;

use super::{Labels, apply_map};

/// A CSV (or TSV) table listing files and their labels.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize, schemars::JsonSchema)]
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

#[derive(Debug, Clone, PartialEq, Eq)]
struct CsvEntry {
    label: String,
    speaker: Option<String>,
}

#[derive(Debug)]
pub(super) struct CsvTable {
    source: String,
    /// Normalised path value → entry.
    rows: HashMap<String, CsvEntry>,
    /// File name → path key; `None` when several rows share the file name.
    by_name: HashMap<String, Option<String>>,
    map: Option<BTreeMap<String, String>>,
    corpus: Option<String>,
}

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
    pub(super) fn load(spec: &CsvSpec, base_dir: &Path) -> Result<CsvTable, String> {
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

    pub(super) fn label(&self, rel: &str, path: &Path) -> Result<Labels, String> {
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::labels::{LabelSpec, Labeler};

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
}
