//! Speech detection on streamed audio, in bounded state (nothing grows with the
//! recording's length).
//!
//! Three layers:
//! - **frame scores** ([`Scorer`]): a speech probability per 16-ms frame (256
//!   samples) of 16-kHz mono audio, from one of two detectors:
//!   - `energy` (the default): frame energy against a tracked noise floor — the floor follows
//!     the energy down at once and rises by [`FLOOR_RISE_DB_PER_S`] (a running
//!     minimum, as in minimum-statistics noise estimation), and the probability is
//!     a logistic of the energy's height above the floor (0.5 at
//!     [`ENERGY_MARGIN_DB`], slope [`ENERGY_SLOPE_DB`]). Any loud sound is
//!     "speech" to it;
//!   - `earshot`: the neural detector of the `earshot` crate (pure Rust, MIT OR
//!     Apache-2.0; a 1024-point spectrum and a small network per frame), 15 times
//!     slower. Neither tells music from speech (docs/performance.md).
//! - **the gate** ([`Gate`]): probabilities → speech regions with hysteresis, the
//!   rules of Silero VAD's `get_speech_timestamps` applied as the frames arrive:
//!   speech starts at a frame ≥ `threshold` (default 0.7), ends after `min_silence_s` of frames
//!   under `threshold − 0.15`; regions shorter than `min_speech_s` are dropped;
//!   each region is widened by `pad_s` on both sides (never over its neighbour).
//! - **the cutter** ([`Cutter`]): regions → the rows of a timeline that covers the
//!   whole recording, in the clip's own samples: speech cut into segments of
//!   `min_s`..`max_s` (long regions split every `max_s − overlap_s`, a region
//!   shorter than `min_s` widened around its centre) and the stretches between as
//!   silence rows of at most `max_s`, each emitted as soon as it is certain.
//!
//! [`Vad`] joins the first two for a clip at any rate (it resamples to 16 kHz).

use std::collections::VecDeque;

use super::resample::{Quality, StreamResampler};

/// The detectors' sample rate.
pub const VAD_RATE: u32 = 16_000;
/// Samples per frame at [`VAD_RATE`] (16 ms).
pub const FRAME: usize = 256;
/// Seconds per frame.
pub const FRAME_S: f64 = FRAME as f64 / VAD_RATE as f64;
/// How fast the `energy` detector's noise floor may rise, in dB per second.
pub const FLOOR_RISE_DB_PER_S: f32 = 1.0;
/// Height above the noise floor where the `energy` detector says 0.5.
pub const ENERGY_MARGIN_DB: f32 = 3.0;
/// dB per unit of the logistic's argument.
pub const ENERGY_SLOPE_DB: f32 = 1.5;
/// Floor of frame energies (dBFS): digital silence counts as this.
const MIN_DB: f32 = -100.0;

/// Which frame detector scores the frames.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The `earshot` crate's neural detector (better at 5 dB SNR, 15 times slower).
    Earshot,
    /// Energy above a tracked noise floor (the default: the most accurate at 10–20
    /// dB SNR of white noise, ~30,000× real time; loud non-speech counts as speech).
    #[default]
    Energy,
}

/// The gate's settings (seconds and probabilities).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateSettings {
    /// Speech starts at a frame with at least this probability.
    pub threshold: f32,
    /// Regions shorter than this are dropped.
    pub min_speech_s: f64,
    /// Speech ends after this long under `threshold − 0.15`.
    pub min_silence_s: f64,
    /// Added before and after each region.
    pub pad_s: f64,
}

impl Default for GateSettings {
    fn default() -> Self {
        // 0.7, not Silero's 0.5: earshot's probabilities sit higher in noise
        // (F1 on the test recording at 20 / 10 / 5 dB SNR: 0.92 / 0.92 / 0.91
        // at 0.7 against 0.90 / 0.85 / 0.75 at 0.5; docs/performance.md).
        GateSettings {
            threshold: 0.7,
            min_speech_s: 0.25,
            min_silence_s: 0.3,
            pad_s: 0.1,
        }
    }
}

/// The `energy` detector's state: the tracked noise floor.
#[derive(Debug, Clone, Default)]
pub struct EnergyScorer {
    floor_db: Option<f32>,
}

impl EnergyScorer {
    /// The speech probability of one frame.
    pub fn score(&mut self, frame: &[f32]) -> f32 {
        let mut sum = 0f32;
        for x in frame {
            sum += x * x;
        }
        let mean = sum / frame.len().max(1) as f32;
        let db = if mean > 0.0 {
            (10.0 * mean.log10()).max(MIN_DB)
        } else {
            MIN_DB
        };
        let rise = FLOOR_RISE_DB_PER_S * FRAME_S as f32;
        let floor = match self.floor_db {
            Some(f) if db >= f => f + rise,
            _ => db,
        };
        self.floor_db = Some(floor);
        let z = (db - floor - ENERGY_MARGIN_DB) / ENERGY_SLOPE_DB;
        1.0 / (1.0 + (-z).exp())
    }
}

/// A frame detector.
pub enum Scorer {
    Earshot(Box<earshot::Detector>),
    Energy(EnergyScorer),
}

impl Scorer {
    pub fn new(method: Method) -> Scorer {
        match method {
            Method::Earshot => Scorer::Earshot(earshot::Detector::default_boxed()),
            Method::Energy => Scorer::Energy(EnergyScorer::default()),
        }
    }

    /// The speech probability of one frame of [`FRAME`] samples at 16 kHz in
    /// [-1, 1] (louder samples are clipped first, as the detector requires).
    pub fn score(&mut self, frame: &[f32; FRAME]) -> f32 {
        match self {
            Scorer::Earshot(d) => {
                let mut f = *frame;
                for x in &mut f {
                    *x = if x.is_finite() {
                        x.clamp(-1.0, 1.0)
                    } else {
                        0.0
                    };
                }
                d.predict_f32(&f).clamp(0.0, 1.0)
            }
            Scorer::Energy(e) => e.score(frame),
        }
    }
}

/// A speech region in frames: `[start, end)`, padding applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
}

/// What the gate says after a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateEvent {
    /// A region is certain (it has lasted `min_speech_s`) and began at this frame
    /// (padding applied).
    Start(u64),
    /// The open region ended at this frame (padding applied).
    End(u64),
}

/// Probabilities → speech regions with hysteresis, one frame at a time.
#[derive(Debug, Clone)]
pub struct Gate {
    on: f32,
    off: f32,
    min_speech: u64,
    min_silence: u64,
    pad: u64,
    /// Frames seen.
    frames: u64,
    /// A candidate or open region's first frame (unpadded).
    start: Option<u64>,
    /// Whether `Start` was said for it.
    started: bool,
    /// Where its silence began (first frame under `off`), if it is in one.
    quiet_since: Option<u64>,
    /// The padded end of the last region (the next may not start before it).
    last_end: u64,
}

impl Gate {
    pub fn new(s: &GateSettings) -> Gate {
        let frames = |sec: f64| (sec.max(0.0) / FRAME_S).round() as u64;
        Gate {
            on: s.threshold,
            off: (s.threshold - 0.15).max(0.01),
            min_speech: frames(s.min_speech_s).max(1),
            min_silence: frames(s.min_silence_s).max(1),
            pad: frames(s.pad_s),
            frames: 0,
            start: None,
            started: false,
            quiet_since: None,
            last_end: 0,
        }
    }

    /// Frames before this one can no longer become speech: the padded start of
    /// any region still to come (or of the candidate) is at or after it.
    pub fn settled(&self) -> u64 {
        match self.start {
            Some(s) if !self.started => s.saturating_sub(self.pad).max(self.last_end),
            Some(_) => self.last_end,
            None => self.frames.saturating_sub(self.pad).max(self.last_end),
        }
    }

    /// Whether a region is open (its `Start` said, its `End` not yet).
    pub fn in_speech(&self) -> bool {
        self.started
    }

    /// The open region lasts at least to this frame: its `End`, when it comes,
    /// is not before it.
    pub fn speech_until(&self) -> u64 {
        self.quiet_since.unwrap_or(self.frames)
    }

    /// Frames seen.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The next frame's probability.
    pub fn push(&mut self, p: f32, out: &mut Vec<GateEvent>) {
        let i = self.frames;
        self.frames += 1;
        let p = if p.is_finite() { p } else { 0.0 };
        if p >= self.on {
            self.quiet_since = None;
            if self.start.is_none() {
                self.start = Some(i);
            }
        } else if p < self.off
            && let Some(s) = self.start
        {
            let q = *self.quiet_since.get_or_insert(i);
            if i + 1 - q >= self.min_silence {
                // The region ended at `q`.
                if self.started {
                    let end = (q + self.pad).min(self.frames);
                    self.last_end = end;
                    out.push(GateEvent::End(end));
                } else if q - s >= self.min_speech {
                    // Confirmed only now (it ended before lasting min_speech in
                    // the open; cannot happen as Start comes first, kept for
                    // safety).
                    let start = s.saturating_sub(self.pad).max(self.last_end);
                    out.push(GateEvent::Start(start));
                    let end = (q + self.pad).min(self.frames);
                    self.last_end = end;
                    out.push(GateEvent::End(end));
                }
                self.start = None;
                self.started = false;
                self.quiet_since = None;
                return;
            }
        }
        if let Some(s) = self.start
            && !self.started
            && self.quiet_since.is_none()
            && self.frames - s >= self.min_speech
        {
            self.started = true;
            out.push(GateEvent::Start(
                s.saturating_sub(self.pad).max(self.last_end),
            ));
        }
    }

    /// End of the recording: close an open region at the last frame.
    pub fn finish(&mut self, out: &mut Vec<GateEvent>) {
        if let Some(s) = self.start.take() {
            let end = self
                .quiet_since
                .map_or(self.frames, |q| (q + self.pad).min(self.frames));
            if self.started {
                out.push(GateEvent::End(end));
            } else if end - s >= self.min_speech && self.quiet_since.is_none() {
                out.push(GateEvent::Start(
                    s.saturating_sub(self.pad).max(self.last_end),
                ));
                out.push(GateEvent::End(end));
            }
            self.last_end = end;
        }
        self.started = false;
        self.quiet_since = None;
    }
}

/// A clip's detector at any sample rate: mono samples in, gate events (in
/// frames of [`FRAME_S`]) out. Holds one frame, the resampler's block and the
/// gate: bounded whatever the length.
pub struct Vad {
    resampler: Option<StreamResampler>,
    scorer: Scorer,
    gate: Gate,
    frame: Vec<f32>,
    /// Every frame's probability, when asked for (`keep_probs`).
    probs: Option<Vec<f32>>,
}

impl Vad {
    /// A detector for mono audio at `rate` Hz.
    pub fn new(rate: u32, method: Method, gate: &GateSettings) -> Result<Vad, String> {
        let resampler = if rate == VAD_RATE {
            None
        } else {
            Some(
                StreamResampler::new(rate, VAD_RATE, 1, Quality::Fast)
                    .map_err(|e| e.to_string())?,
            )
        };
        Ok(Vad {
            resampler,
            scorer: Scorer::new(method),
            gate: Gate::new(gate),
            frame: Vec::with_capacity(FRAME),
            probs: None,
        })
    }

    /// Keep every frame's probability (for measurements; grows with the input).
    pub fn keep_probs(mut self) -> Vad {
        self.probs = Some(Vec::new());
        self
    }

    /// The probabilities kept by [`keep_probs`](Self::keep_probs).
    pub fn probs(&self) -> &[f32] {
        self.probs.as_deref().unwrap_or(&[])
    }

    /// The gate (its `settled` frame, whether speech is open).
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    fn feed16(&mut self, x: &[f32], out: &mut Vec<GateEvent>) {
        for &v in x {
            self.frame.push(v);
            if self.frame.len() == FRAME {
                let mut f = [0f32; FRAME];
                f.copy_from_slice(&self.frame);
                self.frame.clear();
                let p = self.scorer.score(&f);
                if let Some(ps) = self.probs.as_mut() {
                    ps.push(p);
                }
                self.gate.push(p, out);
            }
        }
    }

    /// The next mono samples; the gate's events so far.
    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<GateEvent>, String> {
        let mut out = Vec::new();
        match self.resampler.as_mut() {
            None => self.feed16(samples, &mut out),
            Some(r) => {
                let y = r.push(&[samples]).map_err(|e| e.to_string())?;
                if let Some(y) = y.into_iter().next() {
                    self.feed16(&y, &mut out);
                }
            }
        }
        Ok(out)
    }

    /// End of the clip: the remaining events (a last partial frame is scored
    /// zero-padded).
    pub fn finish(&mut self) -> Result<Vec<GateEvent>, String> {
        let mut out = Vec::new();
        if let Some(r) = self.resampler.as_mut() {
            let y = r.finish().map_err(|e| e.to_string())?;
            if let Some(y) = y.into_iter().next() {
                self.feed16(&y, &mut out);
            }
        }
        if !self.frame.is_empty() {
            let pad = FRAME - self.frame.len();
            self.feed16(&vec![0.0; pad], &mut out);
        }
        self.gate.finish(&mut out);
        Ok(out)
    }
}

/// How speech regions are cut into segments (in seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CutSettings {
    /// Shortest segment: a shorter region is widened around its centre.
    pub min_s: f64,
    /// Longest segment (and longest silence row).
    pub max_s: f64,
    /// Overlap of consecutive segments of a long region.
    pub overlap_s: f64,
}

/// A row of the timeline, in samples of the clip: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub start: u64,
    pub end: u64,
    pub speech: bool,
}

/// Gate events → the rows of a timeline covering the whole clip, emitted as soon
/// as each is certain. Works in the clip's samples (`rate`); frames of the gate
/// are converted exactly. The rows depend only on the audio, never on the
/// pieces it arrives in: a region shorter than `min` waits for the audio it
/// widens into, and the rows after it wait for it.
#[derive(Debug, Clone)]
pub struct Cutter {
    rate: u32,
    min: u64,
    max: u64,
    hop: u64,
    /// The timeline is complete up to here (speech rows may overlap it).
    done: u64,
    /// The open region: its start and the start of its next segment.
    open: Option<(u64, u64)>,
    /// Whether any segment of the open region was emitted.
    emitted: bool,
    /// Closed regions not yet emitted, in order.
    closed: VecDeque<(u64, u64)>,
}

impl Cutter {
    pub fn new(rate: u32, s: &CutSettings) -> Cutter {
        let n = |sec: f64| ((sec.max(0.0) * rate as f64).round() as u64).max(1);
        let max = n(s.max_s);
        let min = n(s.min_s).min(max);
        let hop = max.saturating_sub(n(s.overlap_s).min(max - 1)).max(1);
        Cutter {
            rate,
            min,
            max,
            hop,
            done: 0,
            open: None,
            emitted: false,
            closed: VecDeque::new(),
        }
    }

    /// The clip sample where gate frame `f` begins.
    pub fn sample_of(&self, f: u64) -> u64 {
        u64::try_from(f as u128 * FRAME as u128 * self.rate as u128 / VAD_RATE as u128)
            .unwrap_or(u64::MAX)
    }

    /// The earliest sample a later row can still need (audio before it may go).
    pub fn needed_from(&self) -> u64 {
        // A region's last segment ends at its end and is at least `min` long;
        // a short region widens by less than `min` to either side.
        let mut from = self.done;
        if let Some((s, _)) = self.closed.front() {
            from = from.min(s.saturating_sub(self.min));
        }
        if let Some((s, next)) = self.open {
            from = from.min(next.saturating_sub(self.min).max(s));
        }
        from
    }

    /// `[s, e)` widened around its centre to `min`, ending by `end` (the clip's
    /// end, when known).
    fn widen(&self, s: u64, e: u64, end: u64) -> (u64, u64) {
        if e - s >= self.min {
            return (s, e);
        }
        let a = s.saturating_sub((self.min - (e - s)) / 2);
        let b = a + self.min;
        if b > end {
            (end.saturating_sub(self.min), end)
        } else {
            (a, b)
        }
    }

    /// Silence rows for `[done, to)`, at most `max` each (only whole ones unless
    /// `all`).
    fn silence(&mut self, to: u64, all: bool, out: &mut Vec<Cut>) {
        while self.done < to && (all || to - self.done >= self.max) {
            let end = (self.done + self.max).min(to);
            out.push(Cut {
                start: self.done,
                end,
                speech: false,
            });
            self.done = end;
        }
    }

    /// The rest `[a, e)` of the region starting at `s`, as segments of at most
    /// `max` every `hop`; the last ends at `e` and is at least `min` long (it
    /// may reach back before `a`, never before `s`).
    fn segments(&mut self, s: u64, mut a: u64, e: u64, out: &mut Vec<Cut>) {
        while e > a {
            if e - a <= self.max {
                let start = if e - a >= self.min {
                    a
                } else {
                    e.saturating_sub(self.min).max(s)
                };
                out.push(Cut {
                    start,
                    end: e,
                    speech: true,
                });
                break;
            }
            out.push(Cut {
                start: a,
                end: a + self.max,
                speech: true,
            });
            a += self.hop;
        }
        self.done = self.done.max(e);
    }

    /// Rows now certain, given the gate's events of this step, the samples of the
    /// clip seen so far (`total`), the gate's settled frame and the frame its open
    /// region surely lasts to ([`Gate::settled`], [`Gate::speech_until`]).
    pub fn step(
        &mut self,
        events: &[GateEvent],
        total: u64,
        settled_frame: u64,
        until_frame: u64,
        out: &mut Vec<Cut>,
    ) {
        for ev in events {
            match *ev {
                GateEvent::Start(f) => {
                    let s = self.sample_of(f).max(self.done).min(total);
                    self.open = Some((s, s));
                    self.emitted = false;
                }
                GateEvent::End(f) => {
                    if let Some((s, next)) = self.open.take() {
                        let e = self.sample_of(f).min(total).max(s);
                        if self.emitted {
                            // Its earlier segments are out (nothing was waiting).
                            if e > self.done {
                                self.segments(s, next, e, out);
                            }
                        } else if e > s {
                            self.closed.push_back((s, e));
                        }
                        self.emitted = false;
                    }
                }
            }
        }
        let until = self.sample_of(until_frame).min(total);
        self.drain(until, None, out);
        if self.closed.is_empty() && self.open.is_none() {
            let settled = self.sample_of(settled_frame).min(total);
            self.silence(settled, false, out);
        }
    }

    /// Emit the closed regions whose audio is here (all when the clip `end` is
    /// known), then the segments of the open region that end before `total`
    /// (strictly: the same segments as if the region were cut whole).
    fn drain(&mut self, total: u64, end: Option<u64>, out: &mut Vec<Cut>) {
        while let Some(&(s, e)) = self.closed.front() {
            let (a, b) = self.widen(s, e, end.unwrap_or(u64::MAX));
            if end.is_none() && b > total {
                return;
            }
            self.closed.pop_front();
            self.silence(s, true, out);
            if e - s >= self.min {
                self.segments(s, s, e, out);
            } else if b > a {
                out.push(Cut {
                    start: a,
                    end: b,
                    speech: true,
                });
                self.done = self.done.max(b);
            }
        }
        if let Some((s, mut next)) = self.open {
            self.silence(s, true, out);
            while total > next + self.max {
                out.push(Cut {
                    start: next,
                    end: next + self.max,
                    speech: true,
                });
                self.done = self.done.max(next + self.max);
                next += self.hop;
                self.emitted = true;
            }
            self.open = Some((s, next));
        }
    }

    /// End of the clip at `total` samples, after the gate's last events.
    pub fn finish(&mut self, events: &[GateEvent], total: u64, out: &mut Vec<Cut>) {
        self.step(events, total, 0, 0, out);
        if let Some((s, next)) = self.open.take() {
            if self.emitted {
                if total > self.done {
                    self.segments(s, next, total, out);
                }
            } else if total > s {
                self.closed.push_back((s, total));
            }
        }
        self.drain(total, Some(total), out);
        self.silence(total, true, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_gate(probs: &[f32], s: &GateSettings) -> Vec<Region> {
        let mut g = Gate::new(s);
        let mut ev = Vec::new();
        for &p in probs {
            g.push(p, &mut ev);
        }
        g.finish(&mut ev);
        let mut out = Vec::new();
        let mut open = None;
        for e in ev {
            match e {
                GateEvent::Start(f) => open = Some(f),
                GateEvent::End(f) => out.push(Region {
                    start: open.take().expect("End after Start"),
                    end: f,
                }),
            }
        }
        out
    }

    fn frames(sec: f64) -> usize {
        (sec / FRAME_S).round() as usize
    }

    #[test]
    fn the_gate_finds_regions_with_hysteresis_and_padding() {
        let s = GateSettings {
            threshold: 0.5,
            ..GateSettings::default()
        };
        // (probability, frames): speech from frame 60 to 210.
        let parts = [
            (0.0f32, 60usize),
            (0.9, 60),
            (0.4, 12), // between the thresholds: still speech
            (0.9, 30),
            (0.1, 12), // a pause shorter than min_silence_s: bridged
            (0.9, 36),
            (0.0, 60),
            (0.9, 6), // shorter than min_speech_s: dropped
            (0.0, 60),
        ];
        let p: Vec<f32> = parts
            .iter()
            .flat_map(|&(v, n)| std::iter::repeat_n(v, n))
            .collect();
        let r = run_gate(&p, &s);
        assert_eq!(r.len(), 1, "{r:?}");
        let pad = frames(0.1) as u64;
        assert_eq!(r[0].start, 60 - pad);
        assert_eq!(r[0].end, 210 + pad);
    }

    #[test]
    fn a_region_open_at_the_end_is_closed_there() {
        let mut p = vec![0.0f32; 100];
        p.extend(vec![1.0; 100]);
        let r = run_gate(&p, &GateSettings::default());
        assert_eq!(
            r,
            vec![Region {
                start: 100 - 6,
                end: 200
            }]
        );
    }

    /// Cut a clip whose gate probabilities are `probs` (one per frame) at `rate`.
    /// The audio arrives in pieces of `steps[0]`, `steps[1]`, ... frames (cycled).
    fn cut(probs: &[f32], rate: u32, cs: &CutSettings, steps: &[usize]) -> Vec<Cut> {
        let mut g = Gate::new(&GateSettings::default());
        let mut c = Cutter::new(rate, cs);
        let mut out = Vec::new();
        let total_at = |f: usize| f as u64 * FRAME as u64 * rate as u64 / VAD_RATE as u64;
        let mut at = 0usize;
        let mut k = 0usize;
        while at < probs.len() {
            let n = steps[k % steps.len()].max(1).min(probs.len() - at);
            k += 1;
            let mut ev = Vec::new();
            for &p in &probs[at..at + n] {
                g.push(p, &mut ev);
            }
            at += n;
            c.step(&ev, total_at(at), g.settled(), g.speech_until(), &mut out);
        }
        let mut ev = Vec::new();
        g.finish(&mut ev);
        c.finish(&ev, total_at(probs.len()), &mut out);
        out
    }

    fn check_cover(cuts: &[Cut], total: u64, cs: &CutSettings, rate: u32) {
        // Rows come in order of their ends, cover [0, total) without a gap, and
        // have lengths within the limits.
        let mut covered = 0u64;
        let max = (cs.max_s * rate as f64).round() as u64;
        let min = (cs.min_s * rate as f64).round() as u64;
        for c in cuts {
            assert!(
                c.start <= covered,
                "gap before {c:?} (covered to {covered})"
            );
            assert!(c.end > c.start, "{c:?}");
            assert!(c.end - c.start <= max, "{c:?} longer than {max}");
            if c.speech {
                assert!(
                    c.end - c.start >= min.min(total),
                    "{c:?} shorter than {min}"
                );
            }
            covered = covered.max(c.end);
        }
        assert_eq!(covered, total, "{cuts:?}");
    }

    #[test]
    fn the_cutter_covers_the_recording_whatever_the_steps() {
        let cs = CutSettings {
            min_s: 1.0,
            max_s: 3.0,
            overlap_s: 0.5,
        };
        let mut p = vec![0.0f32; frames(7.0)]; // silence: rows of 3 s
        p.extend(vec![0.9; frames(10.0)]); // long speech: split
        p.extend(vec![0.0; frames(2.0)]);
        p.extend(vec![0.9; frames(0.4)]); // short speech: widened to 1 s
        p.extend(vec![0.0; frames(2.0)]);
        p.extend(vec![0.9; frames(1.5)]); // one segment
        p.extend(vec![0.0; frames(0.5)]);
        for rate in [16_000u32, 22_050, 48_000] {
            let total = p.len() as u64 * FRAME as u64 * rate as u64 / VAD_RATE as u64;
            let mut first = None;
            for steps in [
                &[1usize][..],
                &[7],
                &[64],
                &[10_000],
                &[50, 2000],
                &[3, 700, 1],
            ] {
                let cuts = cut(&p, rate, &cs, steps);
                check_cover(&cuts, total, &cs, rate);
                // The same rows however the audio arrived.
                match &first {
                    None => first = Some(cuts),
                    Some(f) => assert_eq!(&cuts, f, "rate {rate} steps {steps:?}"),
                }
            }
            let cuts = first.unwrap_or_default();
            let speech: Vec<&Cut> = cuts.iter().filter(|c| c.speech).collect();
            let sec = |x: u64| x as f64 / rate as f64;
            // 10 s + pads split every 2.5 s; the short region widened to 1 s.
            assert!(speech.len() >= 5, "{speech:?}");
            assert!(sec(speech[0].start) > 6.8 && sec(speech[0].start) < 7.0);
            let widened = speech
                .iter()
                .find(|c| sec(c.start) > 18.0 && sec(c.start) < 20.0)
                .expect("the short region");
            assert!((sec(widened.end - widened.start) - 1.0).abs() < 1e-3);
            // Silence rows at most 3 s and only where there is no speech.
            assert!(
                cuts.iter()
                    .filter(|c| !c.speech)
                    .all(|c| c.end - c.start <= 3 * rate as u64)
            );
        }
    }

    #[test]
    fn all_silence_and_all_speech_are_covered() {
        let cs = CutSettings {
            min_s: 1.0,
            max_s: 3.0,
            overlap_s: 0.0,
        };
        for p in [
            vec![0.0f32; frames(10.0)],
            vec![1.0f32; frames(10.0)],
            vec![1.0f32; 3],
        ] {
            let cuts = cut(&p, 16_000, &cs, &[13]);
            let total = p.len() as u64 * FRAME as u64;
            let mut covered = 0;
            for c in &cuts {
                assert!(c.start <= covered);
                covered = covered.max(c.end);
            }
            assert_eq!(covered, total, "{cuts:?}");
        }
    }

    #[test]
    fn the_energy_detector_tracks_the_noise_floor() {
        let mut e = EnergyScorer::default();
        let mut rng = 12345u64;
        let mut noise = |a: f32| {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            a * (((rng >> 33) as f32 / (1u64 << 31) as f32) - 0.5)
        };
        let mut frame = [0f32; FRAME];
        for _ in 0..100 {
            frame.iter_mut().for_each(|x| *x = noise(0.01));
            assert!(e.score(&frame) < 0.5);
        }
        for (i, x) in frame.iter_mut().enumerate() {
            *x = 0.3 * (i as f32 * 0.2).sin() + noise(0.01);
        }
        assert!(e.score(&frame) > 0.9);
    }

    #[test]
    fn vad_at_48k_gives_frames_of_16k() {
        let mut v = Vad::new(48_000, Method::Energy, &GateSettings::default())
            .unwrap()
            .keep_probs();
        let x = vec![0.0f32; 48_000];
        v.push(&x[..10_000]).unwrap();
        v.push(&x[10_000..]).unwrap();
        v.finish().unwrap();
        assert_eq!(v.probs().len(), 16_000usize.div_ceil(FRAME));
    }
}
