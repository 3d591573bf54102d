//! The `merge` / `keep` post-processing of labels ([`LabelFilter`]).

use std::collections::{BTreeMap, HashMap};

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
    /// Builds the filter. Errors when a group's name is empty, when a label
    /// appears in two merge groups (a group's own name counts as part of it),
    /// when `keep` is empty, or when `keep` names a label that `merge` renames
    /// away.
    pub fn new(
        merge: &BTreeMap<String, Vec<String>>,
        keep: Option<&[String]>,
    ) -> Result<LabelFilter, String> {
        let mut owner: HashMap<&str, &str> = HashMap::new();
        if merge.keys().any(|k| k.trim().is_empty()) {
            return Err("a merge group has an empty name (it would be the label)".to_string());
        }
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

        // A group without a name would be the label "".
        let mut bad = merge.clone();
        bad.insert(String::new(), vec!["sad".to_string()]);
        let e = LabelFilter::new(&bad, None).expect_err("empty group name");
        assert!(e.contains("empty name"), "{e}");

        // keep names a merged-away label; empty keep.
        let keep = vec!["excited".to_string()];
        assert!(LabelFilter::new(&merge, Some(&keep)).is_err());
        assert!(LabelFilter::new(&merge, Some(&[])).is_err());
    }
}
