//! Built-in corpus schemes: [`BuiltinScheme`] and the parsers that read
//! RAVDESS, EmoDB, TESS, CREMA-D and SAVEE labels from file names, and IEMOCAP
//! labels from its `EmoEvaluation` side files (`IemocapCache`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use super::{Labels, file_name};

/// Built-in corpus naming schemes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
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

/// Parsed EmoEvaluation files (utterance → emotion code), keyed by file path.
/// A file that could not be read is cached as its error message.
type EmoEvaluation = Result<Arc<HashMap<String, String>>, String>;

#[derive(Debug, Default)]
pub(super) struct IemocapCache {
    files: Mutex<HashMap<PathBuf, EmoEvaluation>>,
}

// ---------------------------------------------------------------------------
// Helpers

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

// ---------------------------------------------------------------------------
// Built-in schemes

pub(super) fn ravdess(name: &str) -> Result<Labels, String> {
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

pub(super) fn emodb(name: &str) -> Result<Labels, String> {
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

pub(super) fn tess(name: &str) -> Result<Labels, String> {
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

pub(super) fn cremad(name: &str) -> Result<Labels, String> {
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

pub(super) fn savee(rel: &str, path: &Path) -> Result<Labels, String> {
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
    pub(super) fn label(&self, rel: &str, path: &Path) -> Result<Labels, String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::{CANONICAL, LabelSpec, Labeler, Scheme};

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
}
