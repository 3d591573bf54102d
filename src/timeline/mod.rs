//! Emotion timelines, kept bounded whatever the recording's length: the per-clip
//! summary of a stream of scored segments ([`ClipSummary`]: time per label, the
//! longest runs, counts of `silence` and `uncertain` segments), the time-binned
//! track a picture is drawn from ([`Track`]: at most [`MAX_BINS`] bins, merged
//! pairwise as the recording grows) and the picture itself ([`plot`]).
//!
//! Nothing here reads or writes tables: the `timeline` sink (`ops/timeline.rs`)
//! feeds segments in and prints or draws what comes out.

pub mod plot;

use std::collections::BTreeMap;

/// The label of a stretch the speech detector found no speech in (not classified).
pub const SILENCE: &str = "silence";
/// The label of a segment whose top class probability is under `min_confidence`.
pub const UNCERTAIN: &str = "uncertain";

/// Labels that are not classes.
pub fn is_class(label: &str) -> bool {
    label != SILENCE && label != UNCERTAIN
}

/// `MM:SS` (or `H:MM:SS` past an hour) of `s` seconds.
pub fn mm_ss(s: f64) -> String {
    let t = s.max(0.0).round() as u64;
    if t >= 3600 {
        format!("{}:{:02}:{:02}", t / 3600, (t / 60) % 60, t % 60)
    } else {
        format!("{:02}:{:02}", t / 60, t % 60)
    }
}

/// A run of consecutive segments with the same label.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub start_s: f64,
    pub end_s: f64,
    pub label: String,
}

impl Run {
    fn len(&self) -> f64 {
        self.end_s - self.start_s
    }
}

/// Runs listed in full while a clip has at most this many; past it the summary
/// gives shares and the longest runs only.
pub const LIST_RUNS: usize = 8;
/// Longest runs kept per clip.
pub const LONGEST: usize = 3;

/// The summary of one clip's segments, fed in time order, in memory bounded by
/// the number of labels (never by the recording's length).
///
/// A segment owns the time from its start to the next segment's start (or its
/// end, if that comes first), so overlapping segments (`hop` < `length`) are
/// not counted twice.
#[derive(Debug, Default, Clone)]
pub struct ClipSummary {
    /// The last segment, whose owned time is known when the next one arrives.
    pending: Option<Run>,
    first_s: Option<f64>,
    end_s: f64,
    /// Seconds and segments per label.
    time: BTreeMap<String, f64>,
    count: BTreeMap<String, u64>,
    run: Option<Run>,
    /// The first runs (at most `LIST_RUNS + 1`, to know when there are more).
    first_runs: Vec<Run>,
    /// The longest finished class runs (at most `LONGEST`).
    longest: Vec<Run>,
}

impl ClipSummary {
    /// One more segment `[start_s, end_s)` labelled `label`.
    pub fn push(&mut self, start_s: f64, end_s: f64, label: &str) {
        if let Some(p) = self.pending.take() {
            let end = if start_s >= p.start_s {
                p.end_s.min(start_s)
            } else {
                p.end_s
            };
            self.close(p.start_s, end, p.label);
        }
        self.first_s = Some(self.first_s.map_or(start_s, |f| f.min(start_s)));
        self.end_s = self.end_s.max(end_s);
        self.pending = Some(Run {
            start_s,
            end_s,
            label: label.to_string(),
        });
    }

    fn close(&mut self, a: f64, b: f64, label: String) {
        let len = (b - a).max(0.0);
        *self.time.entry(label.clone()).or_default() += len;
        *self.count.entry(label.clone()).or_default() += 1;
        match &mut self.run {
            // Contiguous (to a millisecond) and the same label: the run goes on.
            Some(r) if r.label == label && a <= r.end_s + 1e-3 => r.end_s = r.end_s.max(b),
            _ => {
                let next = Run {
                    start_s: a,
                    end_s: b,
                    label,
                };
                if let Some(done) = self.run.replace(next) {
                    self.finish_run(done);
                }
            }
        }
    }

    fn finish_run(&mut self, r: Run) {
        if self.first_runs.len() <= LIST_RUNS {
            self.first_runs.push(r.clone());
        }
        if !is_class(&r.label) {
            return;
        }
        self.longest.push(r);
        // Longest first; the earlier of two equal runs first.
        self.longest.sort_by(|x, y| {
            y.len()
                .total_cmp(&x.len())
                .then(x.start_s.total_cmp(&y.start_s))
        });
        self.longest.truncate(LONGEST);
    }

    /// Close the last segment and run; the summary is then complete.
    pub fn finish(&mut self) {
        if let Some(p) = self.pending.take() {
            self.close(p.start_s, p.end_s, p.label);
        }
        if let Some(r) = self.run.take() {
            self.finish_run(r);
        }
    }

    /// Segments seen.
    pub fn segments(&self) -> u64 {
        self.count.values().sum::<u64>() + u64::from(self.pending.is_some())
    }

    /// Segments labelled `label` (after [`finish`](Self::finish)).
    pub fn segments_of(&self, label: &str) -> u64 {
        self.count.get(label).copied().unwrap_or(0)
    }

    /// Seconds labelled `label` (after [`finish`](Self::finish)).
    pub fn seconds_of(&self, label: &str) -> f64 {
        self.time.get(label).copied().unwrap_or(0.0)
    }

    /// Seconds of speech (everything but `silence`), after `finish`.
    pub fn speech_s(&self) -> f64 {
        self.time
            .iter()
            .filter(|(l, _)| l.as_str() != SILENCE)
            .map(|(_, s)| s)
            .sum()
    }

    /// The longest class runs, longest first (after `finish`).
    pub fn longest(&self) -> &[Run] {
        &self.longest
    }

    /// Every run, when there are at most [`LIST_RUNS`] (after `finish`).
    pub fn runs(&self) -> Option<&[Run]> {
        (self.first_runs.len() <= LIST_RUNS).then_some(self.first_runs.as_slice())
    }

    /// Shares of speech time per label (classes and `uncertain`), largest first.
    pub fn shares(&self) -> Vec<(String, f64)> {
        let speech = self.speech_s();
        let mut v: Vec<(String, f64)> = self
            .time
            .iter()
            .filter(|(l, _)| l.as_str() != SILENCE)
            .map(|(l, s)| (l.clone(), if speech > 0.0 { s / speech } else { 0.0 }))
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    /// The summary as text (after `finish`): one line of totals and shares, then
    /// the runs (all of them when few, else the longest).
    ///
    /// `00:00–00:12 angry, 00:12–00:18 neutral` for a short clip;
    /// `01:00:00 in 1200 segments; speech 52:10: neutral 41%, angry 30%, …;
    /// silence 156 segments (07:50); uncertain 40 segments` and
    /// `  longest: 12:03–14:30 angry, …` for a long one.
    pub fn render(&self) -> String {
        let runs_text = |runs: &[Run]| {
            runs.iter()
                .map(|r| format!("{}–{} {}", mm_ss(r.start_s), mm_ss(r.end_s), r.label))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(runs) = self.runs() {
            let mut s = runs_text(runs);
            let uncertain = self.segments_of(UNCERTAIN);
            if uncertain > 0 {
                s.push_str(&format!(
                    " ({} uncertain)",
                    crate::error::count(uncertain, "segment")
                ));
            }
            return s;
        }
        let total = self.end_s - self.first_s.unwrap_or(0.0);
        let speech = self.speech_s();
        let mut s = format!("{} in {} segments; ", mm_ss(total), self.segments_of_all());
        if speech > 0.0 {
            let shares: Vec<String> = self
                .shares()
                .iter()
                .map(|(l, f)| format!("{l} {:.0}%", 100.0 * f))
                .collect();
            s.push_str(&format!("speech {}: {}", mm_ss(speech), shares.join(", ")));
        } else {
            s.push_str("no speech");
        }
        let silence = self.segments_of(SILENCE);
        if silence > 0 {
            s.push_str(&format!(
                "; silence {} ({})",
                crate::error::count(silence, "segment"),
                mm_ss(self.seconds_of(SILENCE))
            ));
        }
        let uncertain = self.segments_of(UNCERTAIN);
        if uncertain > 0 {
            s.push_str(&format!(
                "; uncertain {}",
                crate::error::count(uncertain, "segment")
            ));
        }
        if !self.longest.is_empty() {
            s.push_str(&format!("\n  longest: {}", runs_text(&self.longest)));
        }
        s
    }

    fn segments_of_all(&self) -> u64 {
        self.count.values().sum()
    }
}

/// Bins a picture can hold; past it, neighbouring bins are merged in pairs.
pub const MAX_BINS: usize = 1024;

/// One bin of a [`Track`].
#[derive(Debug, Clone)]
pub struct Bin {
    /// Probability × seconds per class, over the scored (non-silence) time.
    pub prob_s: Vec<f32>,
    /// Seconds per decided label: the classes, then `silence`, then `uncertain`.
    pub label_s: Vec<f32>,
}

impl Bin {
    fn new(classes: usize) -> Bin {
        Bin {
            prob_s: vec![0.0; classes],
            label_s: vec![0.0; classes + 2],
        }
    }

    /// Seconds of this bin covered by any segment.
    pub fn covered_s(&self) -> f32 {
        self.label_s.iter().sum()
    }

    fn merge(&mut self, o: &Bin) {
        for (a, b) in self.prob_s.iter_mut().zip(&o.prob_s) {
            *a += b;
        }
        for (a, b) in self.label_s.iter_mut().zip(&o.label_s) {
            *a += b;
        }
    }
}

/// A clip's timeline in time bins for drawing: class probabilities and decided
/// labels per bin. Its memory is bounded by [`MAX_BINS`] × the number of classes;
/// a longer recording gets wider bins.
#[derive(Debug, Clone)]
pub struct Track {
    pub classes: Vec<String>,
    /// Seconds per bin.
    pub bin_s: f64,
    pub bins: Vec<Bin>,
    /// Where the last pushed segment's owned time ends (segments overlapping the
    /// previous one only add the time after it).
    covered_to: f64,
    pub end_s: f64,
}

impl Track {
    /// An empty track for `classes` starting with bins of `bin_s` seconds.
    pub fn new(classes: &[String], bin_s: f64) -> Track {
        Track {
            classes: classes.to_vec(),
            bin_s: if bin_s.is_finite() && bin_s > 0.0 {
                bin_s
            } else {
                0.5
            },
            bins: Vec::new(),
            covered_to: 0.0,
            end_s: 0.0,
        }
    }

    /// One scored segment: `label` is a class, `silence` or `uncertain`; `probs`
    /// (one per class) may be empty for `silence`.
    pub fn push(&mut self, start_s: f64, end_s: f64, label: &str, probs: &[f32]) {
        if !(start_s.is_finite() && end_s.is_finite()) || end_s <= start_s {
            return;
        }
        let k = self.classes.len();
        let slot = match label {
            SILENCE => k,
            UNCERTAIN => k + 1,
            l => match self.classes.iter().position(|c| c == l) {
                Some(i) => i,
                None => return,
            },
        };
        // Only the part not already covered by the previous segment.
        let a = start_s.max(self.covered_to.min(end_s)).max(0.0);
        let b = end_s;
        self.covered_to = self.covered_to.max(b);
        self.end_s = self.end_s.max(b);
        while b > self.bin_s * MAX_BINS as f64 {
            self.halve();
        }
        let first = (a / self.bin_s).floor() as usize;
        let last = ((b / self.bin_s).ceil() as usize).max(first + 1);
        if self.bins.len() < last {
            self.bins.resize(last, Bin::new(k));
        }
        for i in first..last {
            let lo = a.max(i as f64 * self.bin_s);
            let hi = b.min((i + 1) as f64 * self.bin_s);
            if hi <= lo {
                continue;
            }
            let t = (hi - lo) as f32;
            let bin = &mut self.bins[i];
            bin.label_s[slot] += t;
            if label != SILENCE && probs.len() == k {
                for (p, q) in bin.prob_s.iter_mut().zip(probs) {
                    *p += q * t;
                }
            }
        }
    }

    /// Twice as wide bins, half as many.
    fn halve(&mut self) {
        let mut merged = Vec::with_capacity(self.bins.len().div_ceil(2));
        for pair in self.bins.chunks(2) {
            let mut b = pair[0].clone();
            if let Some(o) = pair.get(1) {
                b.merge(o);
            }
            merged.push(b);
        }
        self.bins = merged;
        self.bin_s *= 2.0;
    }

    /// The decided label of bin `i` (the label with the most seconds), if covered.
    pub fn decided(&self, i: usize) -> Option<&str> {
        let b = self.bins.get(i)?;
        let (j, t) = b
            .label_s
            .iter()
            .enumerate()
            .max_by(|x, y| x.1.total_cmp(y.1).then(y.0.cmp(&x.0)))?;
        if *t <= 0.0 {
            return None;
        }
        let k = self.classes.len();
        Some(match j {
            j if j < k => self.classes[j].as_str(),
            j if j == k => SILENCE,
            _ => UNCERTAIN,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(segs: &[(f64, f64, &str)]) -> ClipSummary {
        let mut s = ClipSummary::default();
        for (a, b, l) in segs {
            s.push(*a, *b, l);
        }
        s.finish();
        s
    }

    #[test]
    fn a_short_clip_lists_its_runs() {
        let s = summary(&[
            (0.0, 3.0, "neutral"),
            (3.0, 6.0, "neutral"),
            (6.0, 9.0, "angry"),
            (9.0, 12.0, "neutral"),
        ]);
        assert_eq!(
            s.render(),
            "00:00–00:06 neutral, 00:06–00:09 angry, 00:09–00:12 neutral"
        );
    }

    #[test]
    fn a_long_recording_gives_shares_and_the_longest_runs_in_two_lines() {
        // Ten hours of 3-s segments alternating in runs of growing length, with
        // silence and uncertain segments between.
        let mut s = ClipSummary::default();
        let mut t = 0.0;
        let labels = ["angry", "neutral", "silence", "sad", "uncertain"];
        let mut i = 0usize;
        while t < 36_000.0 {
            let l = labels[(i / 6) % labels.len()];
            s.push(t, t + 3.0, l);
            t += 3.0;
            i += 1;
        }
        s.finish();
        let text = s.render();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.len() < 400, "{text}");
        assert!(
            text.starts_with("10:00:00 in 12000 segments; speech 8:00:00"),
            "{text}"
        );
        assert!(text.contains("angry 25%"), "{text}");
        assert!(text.contains("silence 2400 segments (2:00:00)"), "{text}");
        assert!(text.contains("uncertain 2400 segments"), "{text}");
        // Every class run is 18 s; the earliest three are the longest.
        assert_eq!(s.longest().len(), LONGEST);
        assert_eq!(s.longest()[0].start_s, 0.0);
        assert_eq!(s.longest()[0].len(), 18.0);
        assert!(
            text.ends_with("longest: 00:00–00:18 angry, 00:18–00:36 neutral, 00:54–01:12 sad"),
            "{text}"
        );
        let shares: f64 = s.shares().iter().map(|x| x.1).sum();
        assert!((shares - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_short_clip_counts_its_uncertain_segments() {
        let s = summary(&[
            (0.0, 3.0, "neutral"),
            (3.0, 6.0, "uncertain"),
            (6.0, 9.0, "uncertain"),
            (9.0, 12.0, "neutral"),
        ]);
        assert_eq!(
            s.render(),
            "00:00–00:03 neutral, 00:03–00:09 uncertain, 00:09–00:12 neutral (2 segments uncertain)"
        );
    }

    #[test]
    fn overlapping_segments_are_not_counted_twice() {
        // 3-s segments every 1.5 s over 9 s: 9 s of audio, not 15.
        let s = summary(&[
            (0.0, 3.0, "sad"),
            (1.5, 4.5, "sad"),
            (3.0, 6.0, "sad"),
            (4.5, 7.5, "happy"),
            (6.0, 9.0, "happy"),
        ]);
        assert_eq!(s.seconds_of("sad"), 4.5);
        assert_eq!(s.seconds_of("happy"), 4.5);
        assert_eq!(s.render(), "00:00–00:05 sad, 00:05–00:09 happy");
    }

    #[test]
    fn a_track_stays_bounded_and_keeps_the_time() {
        let classes = vec!["angry".to_string(), "sad".to_string()];
        let mut tr = Track::new(&classes, 0.5);
        let mut t = 0.0;
        let mut n = 0usize;
        while t < 36_000.0 {
            let (l, p) = match n % 4 {
                0 => ("angry", [0.9, 0.1]),
                1 => ("sad", [0.2, 0.8]),
                2 => (SILENCE, [0.0, 0.0]),
                _ => (UNCERTAIN, [0.5, 0.5]),
            };
            tr.push(t, t + 3.0, l, &p);
            t += 3.0;
            n += 1;
        }
        assert!(tr.bins.len() <= MAX_BINS, "{}", tr.bins.len());
        let covered: f64 = tr.bins.iter().map(|b| b.covered_s() as f64).sum();
        assert!((covered - 36_000.0).abs() < 1.0, "{covered}");
        let silence: f64 = tr.bins.iter().map(|b| b.label_s[2] as f64).sum();
        assert!((silence - 9_000.0).abs() < 1.0, "{silence}");
        // Probability mass only over scored time: 0.9·3 + 0.2·3 + 0.5·3 per 12 s.
        let angry: f64 = tr.bins.iter().map(|b| b.prob_s[0] as f64).sum();
        assert!((angry - 3000.0 * 4.8).abs() < 5.0, "{angry}");
        assert_eq!(tr.end_s, 36_000.0);
    }

    #[test]
    fn a_short_track_decides_each_bin() {
        let classes = vec!["angry".to_string(), "sad".to_string()];
        let mut tr = Track::new(&classes, 1.0);
        tr.push(0.0, 3.0, "sad", &[0.3, 0.7]);
        tr.push(3.0, 4.0, SILENCE, &[]);
        tr.push(4.0, 6.0, UNCERTAIN, &[0.5, 0.5]);
        assert_eq!(tr.bins.len(), 6);
        assert_eq!(tr.decided(0), Some("sad"));
        assert_eq!(tr.decided(3), Some(SILENCE));
        assert_eq!(tr.decided(5), Some(UNCERTAIN));
        assert_eq!(tr.decided(9), None);
    }
}
