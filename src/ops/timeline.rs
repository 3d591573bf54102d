//! `timeline` sink: prints a `predictions` table as an emotion timeline while it
//! arrives (one line per segment, as soon as the segment is scored), then per clip
//! a bounded summary; optionally writes the rows as JSON lines or CSV and draws
//! the timeline as a PNG. The summary and the picture are `crate::timeline`'s.
//!
//! ```toml
//! [sinks.timeline]
//! kind = "timeline"
//! input = "emotion"
//! out = "timeline.csv"     # optional: .parquet (one file), .jsonl or .csv
//! format = "jsonl"         # optional: when `out`'s name does not say (a pipe)
//! print = true             # the lines on stdout (default)
//! plot = "timeline.png"    # optional: the picture
//! ```
//! Line format: `00:00:03–00:00:06  angry  0.81` (the clip id leads when several
//! clips are printed). Summary of a short clip: its runs,
//! `00:00–00:09 neutral, 00:09–00:21 angry`; of a long one, two lines: time,
//! segments, each label's share of the speech time, silence and uncertain
//! counts, then the longest runs.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use arrow::array::AsArray;
use arrow::datatypes::{Float32Type, Float64Type, SchemaRef, UInt32Type};
use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::engine::{
    BatchStream, Component, ConfigContext, Frame, Operator, OperatorConfig, PlanInput, Problem,
    Role, TaskContext,
};
use crate::error::{Result, SermoError};
use crate::schema::require_inputs;
use crate::schema::{self, CLASSES_KEY, TableKind, col};
use crate::timeline::plot::{self, MAX_PANELS};
use crate::timeline::{ClipSummary, Track};

/// Config of the `timeline` sink.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimelineConfig {
    /// Also write the rows here: `.parquet` (one file), `.jsonl` or `.csv`.
    pub out: Option<String>,
    /// The format of `out` when its name does not say (`parquet`, `jsonl`, `csv`).
    pub format: Option<Format>,
    /// Print the timeline and the per-clip summary on standard output.
    #[serde(default = "d_true")]
    pub print: bool,
    /// Draw the timeline into this PNG when the input ends: per clip, class
    /// probabilities over time, silence and uncertain stretches, mm:ss axis.
    pub plot: Option<String>,
}

fn d_true() -> bool {
    true
}

impl Component for TimelineConfig {
    const KIND: &'static str = "timeline";
    const ROLE: Role = Role::Sink;
    const SUMMARY: &'static str = "print predictions as an emotion timeline with a per-clip summary; write .jsonl/.csv; draw a .png";
}

/// The file format of a timeline's `out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// One JSON object per line (`ndjson` is accepted as a synonym).
    #[serde(alias = "ndjson")]
    Jsonl,
    Csv,
    /// One Parquet file.
    Parquet,
}

impl TimelineConfig {
    fn out_format(&self) -> Option<Format> {
        match self.format {
            Some(f) => Some(f),
            None => self.out.as_deref().and_then(format_of),
        }
    }
}

fn format_of(path: &str) -> Option<Format> {
    if path.ends_with(".jsonl") || path.ends_with(".ndjson") {
        Some(Format::Jsonl)
    } else if path.ends_with(".csv") {
        Some(Format::Csv)
    } else if path.ends_with(".parquet") {
        Some(Format::Parquet)
    } else {
        None
    }
}

impl OperatorConfig for TimelineConfig {
    fn check(&self, _ctx: &ConfigContext) -> Vec<Problem> {
        let mut p = match &self.out {
            Some(o) if self.out_format().is_none() => vec![
                Problem::new("out", format!("`{o}` is not .parquet, .jsonl or .csv")).with_hint(
                    "for a crash-safe Parquet table, add a `parquet` sink on the same input",
                ),
            ],
            _ => Vec::new(),
        };
        if let Some(plot) = &self.plot
            && !plot.to_ascii_lowercase().ends_with(".png")
        {
            p.push(Problem::new(
                "plot",
                format!("`{plot}` is not a .png file name"),
            ));
        }
        p
    }

    fn plan(&self, inputs: &[PlanInput]) -> std::result::Result<SchemaRef, String> {
        require_inputs(inputs, &[TableKind::Predictions])?;
        Ok(schema::empty_schema())
    }

    fn output_path(&self, ctx: &ConfigContext) -> Option<PathBuf> {
        self.out.as_deref().map(|o| ctx.resolve(o))
    }

    fn build(&self, ctx: &ConfigContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(Timeline {
            cfg: self.clone(),
            out: self.out.as_deref().map(|o| ctx.resolve(o)),
            plot: self.plot.as_deref().map(|o| ctx.resolve(o)),
        }))
    }
}

/// `HH:MM:SS` of `s` seconds.
pub fn hms(s: f64) -> String {
    let t = s.max(0.0).round() as u64;
    format!("{:02}:{:02}:{:02}", t / 3600, (t / 60) % 60, t % 60)
}

/// One predicted segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    pub clip_id: String,
    pub segment: u32,
    pub start_s: f64,
    pub end_s: f64,
    pub label: String,
    pub confidence: f32,
    pub probs: Vec<f32>,
}

/// The segments of a predictions batch.
pub fn segments(b: &RecordBatch) -> std::result::Result<Vec<Segment>, String> {
    let s = |n: &str| {
        b.column_by_name(n)
            .and_then(|c| c.as_string_opt::<i32>().cloned())
            .ok_or_else(|| format!("predictions lack text column `{n}`"))
    };
    let (clip, label) = (s(col::CLIP_ID)?, s(col::LABEL)?);
    let f64c = |n: &str| {
        b.column_by_name(n)
            .and_then(|c| c.as_primitive_opt::<Float64Type>().cloned())
            .ok_or_else(|| format!("predictions lack `{n}`"))
    };
    let (start, end) = (f64c(col::START_S)?, f64c(col::END_S)?);
    let seg = b
        .column_by_name(col::SEGMENT)
        .and_then(|c| c.as_primitive_opt::<UInt32Type>().cloned())
        .ok_or("predictions lack `segment`")?;
    let conf = b
        .column_by_name("confidence")
        .and_then(|c| c.as_primitive_opt::<Float32Type>().cloned())
        .ok_or("predictions lack `confidence`")?;
    let probs = b
        .column_by_name("probs")
        .and_then(|c| c.as_list_opt::<i32>().cloned())
        .ok_or("predictions lack `probs`")?;
    Ok((0..b.num_rows())
        .map(|i| Segment {
            clip_id: clip.value(i).to_string(),
            segment: seg.value(i),
            start_s: start.value(i),
            end_s: end.value(i),
            label: label.value(i).to_string(),
            confidence: conf.value(i),
            probs: probs
                .value(i)
                .as_primitive_opt::<Float32Type>()
                .map(|p| p.values().to_vec())
                .unwrap_or_default(),
        })
        .collect())
}

struct Timeline {
    cfg: TimelineConfig,
    out: Option<PathBuf>,
    plot: Option<PathBuf>,
}

impl Operator for Timeline {
    fn prepare(&mut self, _ctx: &TaskContext) -> Result<crate::engine::Resume> {
        Ok(crate::engine::Resume::NeedsAll)
    }

    fn execute(self: Box<Self>, inputs: Vec<BatchStream>, ctx: TaskContext) -> BatchStream {
        let in_schema = inputs
            .first()
            .map(|s| s.schema())
            .unwrap_or_else(schema::empty_schema);
        let classes: Vec<String> = in_schema
            .metadata()
            .get(CLASSES_KEY)
            .map(|c| c.split(',').map(String::from).collect())
            .unwrap_or_default();
        let mut input = futures::stream::select_all(inputs);
        let rows = ctx.metrics.counter(&format!("sink.{}.rows", ctx.node_id));
        let stream = async_stream::stream! {
            let node = ctx.node_id.to_string();
            let fail = |m: String| SermoError::stage(&node, None, m);
            let mut file = match &self.out {
                None => None,
                Some(p) => match std::fs::File::create(p) {
                    Ok(f) => Some(std::io::BufWriter::new(f)),
                    Err(e) => {
                        let m = format!("cannot create: {e}"); yield Err(SermoError::stage(&node, Some(p.clone()), m));
                        return;
                    }
                },
            };
            let format = self.cfg.out_format();
            let mut pq = None;
            if format == Some(Format::Parquet)
                && let Some(f) = file.take()
            {
                match f.into_inner().map_err(|e| e.to_string()).and_then(|f| {
                    parquet::arrow::ArrowWriter::try_new(f, in_schema.clone(), None)
                        .map_err(|e| e.to_string())
                }) {
                    Ok(w) => pq = Some(w),
                    Err(e) => { let m = format!("cannot write Parquet: {e}"); yield Err(fail(m)); return; }
                }
            }
            if let (Some(f), Some(Format::Csv)) = (file.as_mut(), format) {
                let mut head = "clip_id,segment,start_s,end_s,label,confidence".to_string();
                for c in &classes {
                    head.push_str(&format!(",p_{c}"));
                }
                let written = writeln!(f, "{head}");
                if let Err(e) = written {
                    let m = format!("cannot write: {e}"); yield Err(fail(m));
                    return;
                }
            }
            // Per clip: the bounded summary, and the binned track for the picture
            // (the first MAX_PANELS clips).
            let mut per_clip: BTreeMap<String, ClipSummary> = BTreeMap::new();
            let mut tracks: BTreeMap<String, Track> = BTreeMap::new();
            let mut clips_seen: Vec<String> = Vec::new();
            let mut not_scored = 0usize;
            while let Some(item) = input.next().await {
                let b = match item {
                    Ok(Frame::Batch(b)) => b,
                    // Segments that were not scored (quarantined upstream) are
                    // said, so that a gap in the timeline has its reason.
                    Ok(Frame::Quarantine(q)) => {
                        not_scored += 1;
                        if not_scored <= 20 {
                            eprintln!("sermo: {}: not scored: {} ({}): {}", q.clip_id, q.reason, q.stage, q.message);
                        } else if not_scored == 21 {
                            eprintln!("sermo: more segments not scored; the run summary counts them");
                        }
                        continue;
                    }
                    Ok(_) => continue,
                    Err(e) => { yield Err(e); return; }
                };
                rows.add(b.num_rows() as u64);
                if let Some(w) = pq.as_mut()
                    && let Err(e) = w.write(&b)
                {
                    let m = format!("cannot write Parquet: {e}"); yield Err(fail(m));
                    return;
                }
                let segs = match segments(&b) {
                    Ok(s) => s,
                    Err(e) => { yield Err(fail(e)); return; }
                };
                for s in segs {
                    if !per_clip.contains_key(&s.clip_id) {
                        clips_seen.push(s.clip_id.clone());
                    }
                    if self.cfg.print {
                        let line = format!(
                            "{}{}–{}  {:<10} {:.2}",
                            if clips_seen.len() > 1 { format!("{}  ", s.clip_id) } else { String::new() },
                            hms(s.start_s),
                            hms(s.end_s),
                            s.label,
                            s.confidence
                        );
                        print_now(&line);
                    }
                    if let Some(f) = file.as_mut() {
                        let line = match format {
                            Some(Format::Csv) => {
                                let mut l = format!(
                                    "{},{},{:.3},{:.3},{},{:.6}",
                                    csv_field(&s.clip_id), s.segment, s.start_s, s.end_s, csv_field(&s.label), s.confidence
                                );
                                for p in &s.probs {
                                    l.push_str(&format!(",{p:.6}"));
                                }
                                l
                            }
                            _ => serde_json::to_string(&s).unwrap_or_default(),
                        };
                        let written = writeln!(f, "{line}");
                if let Err(e) = written {
                            let m = format!("cannot write: {e}"); yield Err(fail(m));
                            return;
                        }
                    }
                    per_clip.entry(s.clip_id.clone()).or_default().push(s.start_s, s.end_s, &s.label);
                    if self.plot.is_some()
                        && (tracks.contains_key(&s.clip_id) || tracks.len() < MAX_PANELS)
                    {
                        tracks
                            .entry(s.clip_id.clone())
                            .or_insert_with(|| Track::new(&classes, 0.5))
                            .push(s.start_s, s.end_s, &s.label, &s.probs);
                    }
                }
                // Readers of a pipe see each batch when it is scored.
                if let Some(f) = file.as_mut() {
                    let flushed = f.flush();
                    if let Err(e) = flushed {
                        let m = format!("cannot write: {e}");
                        yield Err(fail(m));
                        return;
                    }
                }
            }
            if let Some(w) = pq
                && let Err(e) = w.close()
            {
                let m = format!("cannot write Parquet: {e}"); yield Err(fail(m));
                return;
            }
            if let Some(mut f) = file
                && let Err(e) = f.flush()
            {
                let m = format!("cannot write: {e}"); yield Err(fail(m));
                return;
            }
            for v in per_clip.values_mut() {
                v.finish();
            }
            if self.cfg.print {
                for c in &clips_seen {
                    if let Some(v) = per_clip.get(c) {
                        println!("{c}: {}", v.render());
                    }
                }
            }
            if let Some(path) = &self.plot {
                let drawn: Vec<(String, &Track)> = clips_seen
                    .iter()
                    .filter_map(|c| tracks.get(c).map(|t| (c.clone(), t)))
                    .collect();
                if clips_seen.len() > drawn.len() {
                    eprintln!(
                        "sermo: {node}: the picture shows the first {} of {} clips",
                        drawn.len(),
                        clips_seen.len()
                    );
                }
                if let Err(e) = plot::draw(&drawn, path) {
                    yield Err(SermoError::stage(&node, Some(path.clone()), format!("cannot draw the timeline: {e}")));
                    return;
                }
            }
        };
        BatchStream::new(schema::empty_schema(), stream)
    }
}

/// One line on stdout, flushed at once (a pipe sees each segment when scored).
fn print_now(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_hours_minutes_seconds() {
        assert_eq!(hms(3725.0), "01:02:05");
        assert_eq!(hms(-1.0), "00:00:00");
    }
}
