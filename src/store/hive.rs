//! Hive-style partition folders (`corpus=ravdess/label=angry/`): the one parser
//! every reader of a table uses (the `parquet` source, `sermo query`/`stats`, model
//! evaluation), and the writer's side (escaping a value into a folder name).
//!
//! The parsing rules are the ones polars applies when it scans a hive dataset, so
//! `sermo query` (which lets polars read the folders) and the `parquet` source agree
//! on every table: a folder name is `key=value` with exactly one `=`, no `*` in the
//! value, and the value percent-decoded to valid UTF-8; any other folder is a plain
//! folder and gives no column.

use std::path::{Component, Path};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;

/// `key=value` of a hive-style folder name (the rules polars applies: exactly one
/// `=`, no `*` in the value, the value percent-decoded).
pub fn hive_pair(name: &str) -> Option<(String, String)> {
    let mut it = name.split('=');
    let key = it.next()?;
    let value = it.next()?;
    if it.next().is_some() || value.contains('*') {
        return None;
    }
    Some((key.to_string(), percent_decode(value)?))
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |j: usize| b.get(j).and_then(|c| (*c as char).to_digit(16));
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (hex(i + 1), hex(i + 2))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The hive keys of the folders of `rel` (a path relative to the table root, ending
/// in the file name), outermost first, with their values.
pub fn folder_pairs(rel: &Path) -> Vec<(String, String)> {
    let comps: Vec<&str> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect();
    let folders = comps.len().saturating_sub(1);
    comps[..folders]
        .iter()
        .filter_map(|c| hive_pair(c))
        .collect()
}

/// Hive's name for a null partition value.
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// Whether a column type can partition a table.
pub fn partitionable(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

/// Percent-encode a partition value for a folder name (as Hive and pyarrow's
/// `segment_encoding="uri"` do): everything but `A-Za-z0-9._-`.
pub fn escape_value(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    if s.is_empty() || s == "." || s == ".." {
        s = s.replace('.', "%2E");
        if s.is_empty() {
            return NULL_PARTITION.to_string();
        }
    }
    s
}

/// The value of row `i` of a partition column as text (None for null).
pub fn value_text(col: &ArrayRef, i: usize) -> Option<String> {
    use arrow::datatypes::*;
    if col.is_null(i) {
        return None;
    }
    Some(match col.data_type() {
        DataType::Utf8 => col.as_string::<i32>().value(i).to_string(),
        DataType::LargeUtf8 => col.as_string::<i64>().value(i).to_string(),
        DataType::Boolean => col.as_boolean().value(i).to_string(),
        DataType::Int8 => col.as_primitive::<Int8Type>().value(i).to_string(),
        DataType::Int16 => col.as_primitive::<Int16Type>().value(i).to_string(),
        DataType::Int32 => col.as_primitive::<Int32Type>().value(i).to_string(),
        DataType::Int64 => col.as_primitive::<Int64Type>().value(i).to_string(),
        DataType::UInt8 => col.as_primitive::<UInt8Type>().value(i).to_string(),
        DataType::UInt16 => col.as_primitive::<UInt16Type>().value(i).to_string(),
        DataType::UInt32 => col.as_primitive::<UInt32Type>().value(i).to_string(),
        DataType::UInt64 => col.as_primitive::<UInt64Type>().value(i).to_string(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_values_are_escaped() {
        assert_eq!(escape_value("angry"), "angry");
        assert_eq!(escape_value("a/b c"), "a%2Fb%20c");
        assert_eq!(escape_value(".."), "%2E%2E");
        assert_eq!(escape_value(""), NULL_PARTITION);
    }

    #[test]
    fn hive_pairs() {
        assert_eq!(
            hive_pair("label=angry"),
            Some(("label".into(), "angry".into()))
        );
        assert_eq!(
            hive_pair("label=a%20b"),
            Some(("label".into(), "a b".into()))
        );
        assert_eq!(
            hive_pair("label=a%2Fb%20c"),
            Some(("label".into(), "a/b c".into()))
        );
        assert_eq!(hive_pair("a=b=c"), None);
        assert_eq!(hive_pair("part-00000.parquet"), None);
        assert_eq!(hive_pair("x=*"), None);
        assert_eq!(hive_pair("x=100%"), Some(("x".into(), "100%".into())));
        // Percent escapes that decode to invalid UTF-8: not a partition folder.
        assert_eq!(hive_pair("x=%FF"), None);
    }

    #[test]
    fn escaped_values_parse_back() {
        for v in ["angry", "a/b c", "..", "x=y", "100%", "über*"] {
            let (k, back) = hive_pair(&format!("k={}", escape_value(v))).expect("a pair");
            assert_eq!((k.as_str(), back.as_str()), ("k", v));
        }
    }

    #[test]
    fn folder_pairs_skip_the_file_and_plain_folders() {
        let p = Path::new("shard=0/plain/corpus=emodb/part-00000.parquet");
        assert_eq!(
            folder_pairs(p),
            vec![
                ("shard".to_string(), "0".to_string()),
                ("corpus".to_string(), "emodb".to_string())
            ]
        );
    }
}
