//! The regex scheme: [`RegexSpec`] (`labels = { regex = '...' }`) and its
//! compiled form, which labels a file from named groups matched against its
//! relative path.

use std::collections::BTreeMap;

use regex::Regex;
use serde::Deserialize;

use super::{Labels, apply_map};

/// A regular expression over the relative path, with named groups `label`
/// (required), `speaker` and `corpus` (optional).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegexSpec {
    /// The pattern, matched (unanchored) against the relative path.
    pub regex: String,
    /// Optional code → label mapping applied to the `label` group.
    pub map: Option<BTreeMap<String, String>>,
    /// Corpus name used when the regex has no `corpus` group.
    pub corpus: Option<String>,
}

#[derive(Debug)]
pub(super) struct RegexScheme {
    re: Regex,
    map: Option<BTreeMap<String, String>>,
    corpus: Option<String>,
}

impl RegexScheme {
    pub(super) fn new(spec: &RegexSpec) -> Result<RegexScheme, String> {
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

    pub(super) fn label(&self, rel: &str) -> Result<Labels, String> {
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::labels::{LabelSpec, Labeler};

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
}
