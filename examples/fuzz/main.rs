//! A mutation fuzzer for sermo's input parsers that runs on stable Rust
//! (cargo-fuzz needs nightly). fuzz/README.md has the details.
//!
//! ```text
//! cargo run --example fuzz -- <target|all> [--minutes M | --seconds S] [--seed N]
//!                             [--timeout-s 10] [--mem-mb 2048]
//! cargo run --example fuzz -- replay <target> <file or folder>...
//! cargo run --example fuzz -- minimize <target> <file> [--seconds S]
//! ```
//! Targets: decode, pipeline, stdin, where, labels (`targets.rs`).
//!
//! How findings are caught:
//! - The fuzzing runs in a **child process** (this program with `--worker`); the
//!   parent only supervises. Before each input runs, the child writes it to a
//!   file in its work folder (one `pwrite`), so whatever kills the child, the
//!   parent knows the input that did it.
//! - A **panic** is caught in the child (`catch_unwind`), its site recorded by a
//!   panic hook, and the input saved under `fuzz/crashes/<target>/`; the child
//!   goes on. Sites are told apart by owner (sermo's `src/`, symphonia, other
//!   crates).
//! - An **abort** (a stack overflow, a failed allocation: Rust aborts on both) or
//!   any other death by signal ends the child; the parent saves the input with
//!   the child's stderr and starts a new child (next generation, new seed).
//! - A **hang**: a watchdog thread in the child ends it with exit code 86 when
//!   one input runs longer than `--timeout-s` (default 10 s); the parent also
//!   kills a child that stops reporting.
//! - **Memory**: the child's address space is limited (`RLIMIT_AS`) to what it
//!   had mapped at start plus `--mem-mb` (default 2048), so an absurd allocation
//!   fails (and aborts, attributed as above) instead of taking the machine; its
//!   peak resident size (`ru_maxrss`) is checked after every input, and one over
//!   `--mem-mb` is saved as a finding (exit code 87).
//!
//! Without coverage instrumentation the fuzzer steers by *outcome*: an input
//! whose outcome (see `targets.rs`, numbers blanked) is new joins the corpus.

mod mutate;
mod targets;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mutate::Rng;
use targets::{Scratch, Target};

const EXIT_HANG: i32 = 86;
const EXIT_RSS: i32 = 87;
/// Corpus entries kept in memory (seeds + inputs with new outcomes).
const MAX_CORPUS: usize = 4096;
/// Distinct outcomes remembered.
const MAX_OUTCOMES: usize = 100_000;

fn usage() -> ExitCode {
    eprintln!(
        "usage:\n  fuzz <target|all> [--minutes M | --seconds S] [--seed N] [--timeout-s S] [--mem-mb MB]\n  \
         fuzz replay <target> <file or folder>...\n  fuzz minimize <target> <file> [--seconds S]\n\
         targets: decode, pipeline, stdin, where, labels"
    );
    ExitCode::from(2)
}

/// Options shared by every mode.
#[derive(Clone)]
struct Opts {
    seconds: f64,
    seed: u64,
    timeout_s: u64,
    mem_mb: u64,
    /// Where findings go (default `fuzz/crashes`).
    out: PathBuf,
    /// Seed folders (default `fuzz/corpus/<target>` and `fuzz/regressions/<target>`).
    corpus: Option<PathBuf>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = Opts {
        seconds: 60.0,
        seed: 1,
        timeout_s: 10,
        mem_mb: 2048,
        out: root().join("fuzz/crashes"),
        corpus: None,
    };
    let mut free: Vec<String> = Vec::new();
    let mut worker: Option<(u64, u64, PathBuf)> = None; // (gen, until_ms, work)
    let mut check = false;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let mut val = || {
            i += 1;
            args.get(i).cloned().unwrap_or_default()
        };
        match a {
            "--minutes" => opts.seconds = val().parse::<f64>().unwrap_or(1.0) * 60.0,
            "--seconds" => opts.seconds = val().parse().unwrap_or(60.0),
            "--seed" => opts.seed = val().parse().unwrap_or(1),
            "--timeout-s" => opts.timeout_s = val().parse().unwrap_or(10),
            "--mem-mb" => opts.mem_mb = val().parse().unwrap_or(2048),
            "--out" => opts.out = PathBuf::from(val()),
            "--corpus" => opts.corpus = Some(PathBuf::from(val())),
            "--worker" => {
                let gen_ = val().parse().unwrap_or(0);
                let until = val().parse().unwrap_or(0);
                worker = Some((gen_, until, PathBuf::from(val())));
            }
            "--check" => check = true,
            _ => free.push(a.to_string()),
        }
        i += 1;
    }
    let Some(first) = free.first().cloned() else {
        return usage();
    };
    if let Some((gen_, until, work)) = worker {
        let Some(t) = Target::from_name(&first) else {
            return usage();
        };
        return worker_main(
            t,
            &opts,
            gen_,
            until,
            &work,
            check.then(|| free[1..].to_vec()),
        );
    }
    match first.as_str() {
        "replay" => {
            let Some(t) = free.get(1).and_then(|n| Target::from_name(n)) else {
                return usage();
            };
            replay(t, &free[2..])
        }
        "minimize" => {
            let (Some(t), Some(file)) =
                (free.get(1).and_then(|n| Target::from_name(n)), free.get(2))
            else {
                return usage();
            };
            minimize(t, Path::new(file), &opts)
        }
        "all" => {
            let mut code = ExitCode::SUCCESS;
            for t in Target::ALL {
                if supervise(t, &opts) != 0 {
                    code = ExitCode::FAILURE;
                }
            }
            code
        }
        name => match Target::from_name(name) {
            Some(t) => {
                if supervise(t, &opts) == 0 {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            None => usage(),
        },
    }
}

// ---------------------------------------------------------------------------
// Files

/// Every file of `dir` (not `*.txt`, `*.md`, not hidden), sorted by name.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    targets::corpus_files(dir)
}

/// The seeds of `t`: its corpus and its regressions (or the files of `corpus`).
fn seeds(t: Target, corpus: Option<&Path>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let dirs = match corpus {
        Some(c) => vec![c.to_path_buf()],
        None => ["corpus", "regressions"]
            .iter()
            .map(|sub| root().join("fuzz").join(sub).join(t.name()))
            .collect(),
    };
    for d in dirs {
        for p in files_in(&d) {
            if let Ok(b) = std::fs::read(&p) {
                out.push(b);
            }
        }
    }
    out
}

/// A private folder for one process (on tmpfs when there is one).
fn work_dir(tag: &str) -> std::io::Result<PathBuf> {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let d = base.join(format!("sermo-fuzz-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

fn hash_hex(b: &[u8]) -> String {
    blake3::hash(b).to_hex()[..16].to_string()
}

/// Findings already saved for a target: signature → (file stem, input size).
fn known_findings(dir: &Path) -> BTreeMap<String, (String, usize)> {
    let mut out = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "txt") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
        };
        if let (Some(sig), Some(stem)) = (
            field("signature:"),
            p.file_stem().and_then(|s| s.to_str()).map(str::to_string),
        ) {
            let size = std::fs::metadata(dir.join(&stem)).map_or(usize::MAX, |m| m.len() as usize);
            out.insert(sig, (stem, size));
        }
    }
    out
}

/// Save `input` as a finding of `t` unless an input as small or smaller is
/// saved for the same signature. Returns whether it was saved.
fn record_finding(
    out: &Path,
    t: Target,
    known: &mut BTreeMap<String, (String, usize)>,
    signature: &str,
    details: &str,
    input: &[u8],
) -> bool {
    if let Some((_, size)) = known.get(signature)
        && *size <= input.len()
    {
        return false;
    }
    let dir = out.join(t.name());
    if std::fs::create_dir_all(&dir).is_err() {
        return false;
    }
    if let Some((old, _)) = known.get(signature) {
        let _ = std::fs::remove_file(dir.join(old));
        let _ = std::fs::remove_file(dir.join(format!("{old}.txt")));
    }
    let stem = hash_hex(input);
    let file = dir.join(&stem);
    let note = format!(
        "target: {}\nsignature: {signature}\ninput: {} bytes\n{details}\nreplay: cargo run --example fuzz -- replay {} {}\n",
        t.name(),
        input.len(),
        t.name(),
        file.display()
    );
    let ok = std::fs::write(&file, input).is_ok()
        && std::fs::write(dir.join(format!("{stem}.txt")), note).is_ok();
    if ok {
        known.insert(signature.to_string(), (stem, input.len()));
    }
    ok
}

// ---------------------------------------------------------------------------
// Worker: the fuzzing loop (in a child process)

static INPUT_STARTED_MS: AtomicU64 = AtomicU64::new(0);

fn proc_status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(key)
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse().ok())
            })
        })
        .unwrap_or(0)
}

fn max_rss_kb() -> u64 {
    // SAFETY: getrusage writes the struct it is given.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut u) == 0 {
            u.ru_maxrss as u64
        } else {
            0
        }
    }
}

/// Limit the address space to what is mapped now plus `mem_mb`.
fn limit_memory(mem_mb: u64) -> u64 {
    let base = proc_status_kb("VmSize:") * 1024;
    let limit = base + mem_mb * (1 << 20);
    let r = libc::rlimit {
        rlim_cur: limit as libc::rlim_t,
        rlim_max: limit as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct it is given.
    unsafe {
        libc::setrlimit(libc::RLIMIT_AS, &r);
    }
    limit
}

fn start_watchdog(timeout_s: u64, work: PathBuf) {
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let s = INPUT_STARTED_MS.load(Ordering::SeqCst);
            if s != 0 && now_ms().saturating_sub(s) > timeout_s * 1000 {
                let _ = std::fs::write(
                    work.join("hang.txt"),
                    format!("one input ran longer than {timeout_s} s"),
                );
                // SAFETY: ends the process at once; nothing is left to clean up
                // that the parent does not handle.
                unsafe { libc::_exit(EXIT_HANG) };
            }
        }
    });
}

/// The words of the seeds (identifiers, numbers), for text targets.
fn dictionary(t: Target, seeds: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let fixed: &[&str] = match t {
        Target::Pipeline => &[
            "[sources.",
            "[stages.",
            "[sinks.",
            "[pipeline]",
            "kind",
            "inputs",
            " = ",
            "\"",
            "'",
            "[",
            "]",
            "{",
            "}",
            ",",
            "\n",
            "\"\"\"",
            "'''",
            "#set ",
            "true",
            "false",
            "files",
            "stdin",
            "parquet",
            "decode",
            "resample",
            "augment",
            "window",
            "features",
            "embed",
            "infer",
            "train",
            "timeline",
            "discard",
            "labels",
            "regex",
            "csv",
            "path_column",
            "label_column",
            "map",
            "chunk_s",
            "rate",
            "channels",
            "n_fft",
            "hop_length",
            "win_length",
            "n_mels",
            "n_mfcc",
            "batch_size",
            "epochs",
            "channel_capacity",
            "row_group_rows",
            "where",
            "columns",
            "path",
            "paths",
            "mode",
            "seed",
            "model",
            "sources.a.kind=files",
            "stages.d.chunk_s=1e9",
            "[[",
            "]]",
            "=",
            ".",
            "\\u0000",
            "\\",
            "\r\n",
            "\t",
            "1979-05-27T07:32:00Z",
            "inf",
            "nan",
        ],
        Target::Where => &[
            " AND ",
            " OR ",
            "NOT ",
            " IN ",
            " BETWEEN ",
            " LIKE ",
            " ILIKE ",
            " IS ",
            " NULL",
            " NOT NULL",
            "TRUE",
            "FALSE",
            "(",
            ")",
            "'",
            "\"",
            "`",
            ",",
            " = ",
            " != ",
            " <> ",
            " < ",
            " <= ",
            " > ",
            " >= ",
            "-",
            ".",
            "%",
            "_",
            "\\",
            " ESCAPE ",
            " ANY ",
            "::",
            "CAST(",
            " AS ",
            "[",
            "]",
            "clip_id",
            "corpus",
            "speaker",
            "label",
            "segment",
            "start_s",
            "duration_s",
            "source_channels",
            "n",
            "last_chunk",
            "samples",
            "mfcc",
            "fold",
            "1e309",
            "-9223372036854775808",
            "18446744073709551616",
            "0x10",
            "1.5e-3",
            "x'00'",
            "E'\\n'",
            "$$",
            "@",
            "?",
            "/*",
            "*/",
            "--",
        ],
        Target::Labels => &[
            "(?P<label>",
            "(?P<speaker>",
            "(?P<corpus>",
            "(?<label>",
            ")",
            "\\d+",
            "\\w+",
            "\\.",
            "[A-Z]",
            "[^/]",
            "{2}",
            "{1000}",
            "{0,65535}",
            "*",
            "+",
            "?",
            "|",
            "^",
            "$",
            "\\",
            "(?i)",
            "(?x)",
            "\\p{L}",
            "\\b",
            ".*",
            "/",
            "\n--\n",
            "regex",
            "csv",
            "tsv",
            "builtin",
            "ravdess",
            "emodb",
            "tess",
            "cremad",
            "savee",
            "iemocap",
            "none",
            ",",
            "\"",
            "\n",
            "\r\n",
            "\t",
            "\u{feff}",
            "./",
            "../",
            "=",
            "file",
            "emotion",
            "speaker",
            ".wav",
            "03-01-06-01-02-01-12.wav",
            "03a01Fa.wav",
            "OAF_back_angry.wav",
            "1001_DFA_ANG_XX.wav",
            "DC_a01.wav",
            "Ses01F_impro01_M003.wav",
        ],
        Target::Decode | Target::Stdin => &[],
    };
    let mut out: BTreeSet<Vec<u8>> = fixed.iter().map(|w| w.as_bytes().to_vec()).collect();
    if t.is_text() {
        for s in seeds {
            for w in s.split(|c| !(c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.')) {
                if (2..=32).contains(&w.len()) && out.len() < 2048 {
                    out.insert(w.to_vec());
                }
            }
        }
    } else {
        out.extend(mutate::BINARY_DICT.iter().map(|w| w.to_vec()));
    }
    out.into_iter().collect()
}

struct Worker {
    t: Target,
    scratch: Scratch,
    cur: std::fs::File,
    known: BTreeMap<String, (String, usize)>,
    out: PathBuf,
    mem_mb: u64,
    work: PathBuf,
    corpus: Option<PathBuf>,
    /// `SERMO_FUZZ_SELFTEST`: inputs naming a failure fail that way.
    selftest: bool,
    execs: u64,
    panics: u64,
    saved: u64,
    /// Dependency panics sermo contains ([`targets::CONTAINED`] outcomes).
    contained: u64,
}

impl Worker {
    /// Run one input; `Some(signature)` when it panicked.
    fn exec(&mut self, input: &[u8]) -> Result<String, targets::PanicSite> {
        // The input first, so the parent finds it whatever happens next.
        let mut rec = (input.len() as u64).to_le_bytes().to_vec();
        rec.extend_from_slice(&(self.execs + 1).to_le_bytes());
        rec.extend_from_slice(input);
        let _ = self.cur.write_all_at(&rec, 0);
        INPUT_STARTED_MS.store(now_ms(), Ordering::SeqCst);
        let (t, s) = (self.t, &self.scratch);
        let selftest = self.selftest;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if selftest {
                misbehave(input);
            }
            targets::run(t, input, s)
        }));
        INPUT_STARTED_MS.store(0, Ordering::SeqCst);
        self.execs += 1;
        if self.execs.is_multiple_of(16) && max_rss_kb() > self.mem_mb * 1024 {
            let _ = std::fs::write(
                self.work.join("rss.txt"),
                format!(
                    "resident memory reached {} MB (limit {} MB)",
                    max_rss_kb() / 1024,
                    self.mem_mb
                ),
            );
            std::process::exit(EXIT_RSS);
        }
        r.map_err(|_| {
            targets::take_panic().unwrap_or(targets::PanicSite {
                file: "?".into(),
                line: 0,
                message: "(no panic site recorded)".into(),
            })
        })
    }

    fn on_panic(&mut self, site: &targets::PanicSite, input: &[u8], how: &str) {
        self.panics += 1;
        let details = format!(
            "kind: panic\nowner: {}\nsite: {}:{}\nmessage: {}\nfound: {how}",
            site.owner(),
            site.file,
            site.line,
            site.message.replace('\n', "\n  ")
        );
        if record_finding(
            &self.out,
            self.t,
            &mut self.known,
            &site.signature(),
            &details,
            input,
        ) {
            self.saved += 1;
        }
    }
}

/// The harness's self-test (`SERMO_FUZZ_SELFTEST=1` and an input holding
/// `SELFTEST-<PANIC|ABORT|HANG|OOM|STACK>`): fail the way the input says, to
/// check that each failure is caught and attributed.
fn misbehave(input: &[u8]) {
    let has = |w: &[u8]| input.windows(w.len()).any(|x| x == w);
    if has(b"SELFTEST-PANIC") {
        panic!("self-test panic");
    }
    if has(b"SELFTEST-ABORT") {
        std::process::abort();
    }
    if has(b"SELFTEST-HANG") {
        std::thread::sleep(Duration::from_secs(3600));
    }
    if has(b"SELFTEST-OOM") {
        let v: Vec<u8> = vec![1; 8 << 30];
        std::hint::black_box(&v);
    }
    if has(b"SELFTEST-STACK") {
        fn deep(n: u64) -> u64 {
            let pad = std::hint::black_box([n; 64]);
            if n == 0 { pad[0] } else { deep(n - 1) + pad[1] }
        }
        std::hint::black_box(deep(u64::MAX));
    }
}

fn worker_main(
    t: Target,
    opts: &Opts,
    gen_: u64,
    until_ms: u64,
    work: &Path,
    check: Option<Vec<String>>,
) -> ExitCode {
    targets::install_panic_hook();
    let scratch_dir = work.join("scratch");
    let _ = std::fs::create_dir_all(&scratch_dir);
    let cur = match std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(work.join("cur"))
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cannot open the work file: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut w = Worker {
        t,
        scratch: Scratch::new(&scratch_dir),
        cur,
        known: known_findings(&opts.out.join(t.name())),
        out: opts.out.clone(),
        mem_mb: opts.mem_mb,
        work: work.to_path_buf(),
        corpus: opts.corpus.clone(),
        selftest: std::env::var_os("SERMO_FUZZ_SELFTEST").is_some(),
        execs: 0,
        panics: 0,
        saved: 0,
        contained: 0,
    };
    let timeout_s = opts.timeout_s;
    let stack = t.stack_size();
    let work2 = work.to_path_buf();
    let seed = opts.seed;
    let mem_mb = opts.mem_mb;
    // The target runs on a thread of the size sermo runs it on.
    let h = std::thread::Builder::new()
        .name(format!("fuzz-{}", t.name()))
        .stack_size(stack)
        .spawn(move || {
            start_watchdog(timeout_s, work2);
            limit_memory(mem_mb);
            if let Some(files) = check {
                // `--check`: run the given files, print each outcome.
                for f in files {
                    let Ok(input) = std::fs::read(&f) else {
                        println!("RESULT io");
                        continue;
                    };
                    match w.exec(&input) {
                        Ok(o) => println!("RESULT ok {o}"),
                        Err(site) => println!("RESULT {}", site.signature()),
                    }
                }
                return;
            }
            fuzz_loop(&mut w, seed, gen_, until_ms);
        });
    match h.map(|h| h.join()) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

fn fuzz_loop(w: &mut Worker, seed: u64, gen_: u64, until_ms: u64) {
    let t = w.t;
    let verbose = std::env::var_os("SERMO_FUZZ_VERBOSE").is_some();
    let seeds = {
        let s = seeds(t, w.corpus.as_deref());
        if s.is_empty() { vec![Vec::new()] } else { s }
    };
    let dict = dictionary(t, &seeds);
    let mut corpus: Vec<Vec<u8>> = seeds.clone();
    let mut outcomes: BTreeSet<String> = BTreeSet::new();
    let mut rng = Rng::new(seed.wrapping_mul(0x100_0000_01B3) ^ gen_.wrapping_mul(0x9E37_79B9));
    let stdout = std::io::stdout();
    let mut last_stat = Instant::now();
    let report = |w: &Worker, corpus: usize, outcomes: usize, last: bool| {
        let mut o = stdout.lock();
        let _ = writeln!(
            o,
            "{} execs={} panics={} saved={} contained={} corpus={} outcomes={} rss_kb={} hwm_kb={}",
            if last { "final" } else { "stat" },
            w.execs,
            w.panics,
            w.saved,
            w.contained,
            corpus,
            outcomes,
            proc_status_kb("VmRSS:"),
            proc_status_kb("VmHWM:").max(max_rss_kb()),
        );
        let _ = o.flush();
    };
    // The seeds as they are (first generation only: later ones restart after a
    // crash and go straight to mutating).
    if gen_ == 0 {
        for s in &seeds {
            match w.exec(s) {
                Ok(o) => {
                    outcomes.insert(o);
                }
                Err(site) => w.on_panic(&site, s, "a seed, unmutated"),
            }
        }
    }
    while now_ms() < until_ms {
        let base = if rng.chance(8) {
            rng.pick(&seeds).clone()
        } else {
            rng.pick(&corpus).clone()
        };
        let input = mutate::mutate(&mut rng, &base, &corpus, &dict, t.is_text(), t.max_len());
        match w.exec(&input) {
            Ok(o) => {
                if o.starts_with(targets::CONTAINED) {
                    w.contained += 1;
                }
                // (Bounded: a target whose outcomes echo the input would
                // otherwise fill the memory with them.)
                if outcomes.len() < MAX_OUTCOMES && !outcomes.contains(&o) {
                    if verbose {
                        eprintln!("new outcome: {o}");
                    }
                    outcomes.insert(o);
                    if corpus.len() < MAX_CORPUS {
                        corpus.push(input);
                    } else {
                        let i = seeds.len() + rng.below(corpus.len() - seeds.len());
                        corpus[i] = input;
                    }
                }
            }
            Err(site) => {
                let how = format!("seed {seed}, generation {gen_}, exec {}", w.execs);
                w.on_panic(&site, &input, &how);
            }
        }
        if last_stat.elapsed() >= Duration::from_secs(1) {
            last_stat = Instant::now();
            report(w, corpus.len(), outcomes.len(), false);
        }
    }
    report(w, corpus.len(), outcomes.len(), true);
}

// ---------------------------------------------------------------------------
// Supervisor: runs workers, attributes their deaths

#[derive(Default)]
struct Totals {
    execs: u64,
    panics: u64,
    contained: u64,
    saved: u64,
    aborts: u64,
    hangs: u64,
    ooms: u64,
    peak_kb: u64,
    corpus: u64,
    outcomes: u64,
    generations: u64,
}

impl Totals {
    /// The counts after `secs` seconds, as `key=value` words (progress lines
    /// and the final summary).
    fn line(&self, secs: f64) -> String {
        format!(
            "seconds={secs:.0} execs={} execs_per_s={:.0} corpus={} outcomes={} panics={} findings_saved={} contained_dependency_panics={} aborts={} hangs={} ooms={} peak_rss_mb={} workers={}",
            self.execs,
            self.execs as f64 / secs.max(1e-9),
            self.corpus,
            self.outcomes,
            self.panics,
            self.saved,
            self.contained,
            self.aborts,
            self.hangs,
            self.ooms,
            self.peak_kb / 1024,
            self.generations
        )
    }
}

fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The input the worker was running and how many it had run with it (`cur`:
/// the input's length, the count, the bytes).
fn read_cur(work: &Path) -> (Vec<u8>, u64) {
    let Ok(b) = std::fs::read(work.join("cur")) else {
        return (Vec::new(), 0);
    };
    if b.len() < 16 {
        return (Vec::new(), 0);
    }
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let n = (word(0) as usize).min(b.len() - 16);
    (b[16..16 + n].to_vec(), word(8))
}

/// What a dead worker's stderr says: (kind, signature, message).
fn classify_death(
    code: Option<i32>,
    signal: Option<i32>,
    stderr: &str,
    work: &Path,
) -> (String, String, String) {
    let tail: String = {
        let lines: Vec<&str> = stderr.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };
    if code == Some(EXIT_HANG) {
        let m = std::fs::read_to_string(work.join("hang.txt")).unwrap_or_default();
        return ("hang".into(), "hang".into(), m);
    }
    if code == Some(EXIT_RSS) {
        let m = std::fs::read_to_string(work.join("rss.txt")).unwrap_or_default();
        return ("memory".into(), "memory:rss".into(), m);
    }
    let how = match (code, signal) {
        (_, Some(s)) => format!("killed by signal {s}"),
        (Some(c), _) => format!("exit code {c}"),
        _ => "ended".to_string(),
    };
    if stderr.contains("memory allocation of") {
        return (
            "oom".into(),
            "oom:allocation-failed".into(),
            format!("{how}\n{tail}"),
        );
    }
    if stderr.contains("has overflowed its stack") {
        return (
            "stack-overflow".into(),
            "abort:stack-overflow".into(),
            format!("{how}\n{tail}"),
        );
    }
    let first = tail
        .lines()
        .find(|l| !l.trim().is_empty())
        .map(targets::shape)
        .unwrap_or_default();
    (
        "abort".into(),
        format!("abort:{how}:{first}"),
        format!("{how}\n{tail}"),
    )
}

fn supervise(t: Target, opts: &Opts) -> i32 {
    let work = match work_dir(t.name()) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("cannot make a work folder: {e}");
            return 2;
        }
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot find this program: {e}");
            return 2;
        }
    };
    let start = Instant::now();
    let until = now_ms() + (opts.seconds * 1000.0) as u64;
    let mut tot = Totals::default();
    let mut known = known_findings(&opts.out.join(t.name()));
    eprintln!(
        "fuzzing `{}` for {:.0} s, seed {}, input timeout {} s, memory {} MB; findings go to {}",
        t.name(),
        opts.seconds,
        opts.seed,
        opts.timeout_s,
        opts.mem_mb,
        opts.out.join(t.name()).display()
    );
    let mut last_print = Instant::now();
    while now_ms() < until && tot.generations < 10_000 {
        let stderr_path = work.join("stderr");
        let Ok(stderr_file) = std::fs::File::create(&stderr_path) else {
            return 2;
        };
        let _ = std::fs::remove_file(work.join("hang.txt"));
        let child = Command::new(&exe)
            .arg(t.name())
            .args(["--seed", &opts.seed.to_string()])
            .args(["--timeout-s", &opts.timeout_s.to_string()])
            .args(["--mem-mb", &opts.mem_mb.to_string()])
            .arg("--out")
            .arg(&opts.out)
            .args(
                opts.corpus
                    .iter()
                    .flat_map(|c| [std::ffi::OsStr::new("--corpus"), c.as_os_str()]),
            )
            .args(["--worker", &tot.generations.to_string(), &until.to_string()])
            .arg(&work)
            .current_dir(work.as_path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr_file)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                eprintln!("cannot start a worker: {e}");
                return 2;
            }
        };
        // Lines from the worker on a thread; the supervisor waits with a
        // deadline (a worker that stops reporting is stuck).
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
            });
        }
        let base_execs = tot.execs;
        let (base_panics, base_saved, base_contained) = (tot.panics, tot.saved, tot.contained);
        let mut last_line = String::new();
        let mut killed = false;
        loop {
            match rx.recv_timeout(Duration::from_secs(opts.timeout_s + 60)) {
                Ok(l) => {
                    tot.execs = base_execs + field(&l, "execs");
                    tot.panics = base_panics + field(&l, "panics");
                    tot.saved = base_saved + field(&l, "saved");
                    tot.contained = base_contained + field(&l, "contained");
                    tot.peak_kb = tot.peak_kb.max(field(&l, "hwm_kb"));
                    tot.corpus = field(&l, "corpus");
                    tot.outcomes = field(&l, "outcomes");
                    last_line = l;
                    if last_print.elapsed() >= Duration::from_secs(30) {
                        last_print = Instant::now();
                        let s = start.elapsed().as_secs_f64();
                        eprintln!("[{}] {}", t.name(), tot.line(s));
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    killed = true;
                    break;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let status = child.wait();
        tot.generations += 1;
        let (code, signal) = match &status {
            Ok(s) => {
                use std::os::unix::process::ExitStatusExt;
                (s.code(), s.signal())
            }
            Err(_) => (None, None),
        };
        if !killed && code == Some(0) && last_line.starts_with("final") {
            break; // time is up
        }
        let mut stderr = String::new();
        if let Ok(mut f) = std::fs::File::open(&stderr_path) {
            let _ = f.read_to_string(&mut stderr);
        }
        let (kind, sig, msg) = if killed {
            (
                "hang".to_string(),
                "hang".to_string(),
                format!(
                    "the worker stopped reporting for {} s and was killed",
                    opts.timeout_s + 60
                ),
            )
        } else {
            classify_death(code, signal, &stderr, &work)
        };
        match kind.as_str() {
            "hang" => tot.hangs += 1,
            "oom" | "memory" => tot.ooms += 1,
            _ => tot.aborts += 1,
        }
        let (input, execs) = read_cur(&work);
        tot.execs = tot.execs.max(base_execs + execs);
        let details = format!(
            "kind: {kind}\nmessage: {}\nfound: seed {}, generation {}",
            msg.replace('\n', "\n  "),
            opts.seed,
            tot.generations - 1
        );
        let saved = record_finding(&opts.out, t, &mut known, &sig, &details, &input);
        eprintln!(
            "[{}] worker died ({kind}: {}){}",
            t.name(),
            msg.lines().next().unwrap_or(""),
            if saved { "; input saved" } else { "" }
        );
        if saved {
            tot.saved += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!("summary: target={} {}", t.name(), tot.line(secs));
    let _ = std::fs::remove_dir_all(&work);
    i32::from(tot.panics + tot.aborts + tot.hangs + tot.ooms > 0)
}

// ---------------------------------------------------------------------------
// Replay and minimize

fn replay(t: Target, paths: &[String]) -> ExitCode {
    targets::install_panic_hook();
    let dir = match work_dir("replay") {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cannot make a work folder: {e}");
            return ExitCode::FAILURE;
        }
    };
    let s = Scratch::new(&dir);
    let mut files = Vec::new();
    for p in paths {
        let p = PathBuf::from(p);
        if p.is_dir() {
            files.extend(files_in(&p));
        } else {
            files.push(p);
        }
    }
    let mut bad = 0;
    for f in files {
        let Ok(input) = std::fs::read(&f) else {
            println!("{}: cannot read", f.display());
            bad += 1;
            continue;
        };
        let t0 = Instant::now();
        let r = std::panic::catch_unwind(|| targets::run(t, &input, &s));
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        match r {
            Ok(o) => println!("{}: {o} ({ms:.1} ms)", f.display()),
            Err(_) => {
                bad += 1;
                let site = targets::take_panic();
                match site {
                    Some(site) => println!(
                        "{}: PANIC in {} at {}:{}: {}",
                        f.display(),
                        site.owner(),
                        site.file,
                        site.line,
                        site.message
                    ),
                    None => println!("{}: PANIC", f.display()),
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// What one input does, run in a child process: `ok ...`, a panic signature,
/// or how the child died.
fn run_in_child(t: Target, exe: &Path, work: &Path, input: &[u8], opts: &Opts) -> String {
    let file = work.join("candidate");
    if std::fs::write(&file, input).is_err() {
        return "io".into();
    }
    let out = Command::new(exe)
        .arg(t.name())
        .args(["--timeout-s", &opts.timeout_s.to_string()])
        .args(["--mem-mb", &opts.mem_mb.to_string()])
        .args(["--worker", "0", "0"])
        .arg(work)
        .arg("--check")
        .arg(&file)
        .current_dir(work)
        .stdin(Stdio::null())
        .output();
    let Ok(out) = out else {
        return "spawn".into();
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    if let Some(r) = stdout.lines().find_map(|l| l.strip_prefix("RESULT ")) {
        return if r.starts_with("ok") {
            "ok".into()
        } else {
            r.to_string()
        };
    }
    use std::os::unix::process::ExitStatusExt;
    classify_death(
        out.status.code(),
        out.status.signal(),
        &String::from_utf8_lossy(&out.stderr),
        work,
    )
    .1
}

fn minimize(t: Target, file: &Path, opts: &Opts) -> ExitCode {
    let Ok(mut best) = std::fs::read(file) else {
        eprintln!("cannot read {}", file.display());
        return ExitCode::FAILURE;
    };
    let (Ok(exe), Ok(work)) = (std::env::current_exe(), work_dir("min")) else {
        return ExitCode::FAILURE;
    };
    let sig = run_in_child(t, &exe, &work, &best, opts);
    eprintln!("{}: {} bytes, {sig}", file.display(), best.len());
    if sig == "ok" {
        eprintln!("the input does not fail: nothing to minimize");
        let _ = std::fs::remove_dir_all(&work);
        return ExitCode::FAILURE;
    }
    let start = Instant::now();
    let budget = Duration::from_secs_f64(opts.seconds);
    let mut chunk = best.len().div_ceil(2).max(1);
    let mut runs = 0;
    'outer: loop {
        let mut i = 0;
        while i < best.len() {
            if start.elapsed() > budget {
                break 'outer;
            }
            let mut cand = best.clone();
            cand.drain(i..(i + chunk).min(best.len()));
            runs += 1;
            if run_in_child(t, &exe, &work, &cand, opts) == sig {
                best = cand;
            } else {
                i += chunk;
            }
        }
        if chunk == 1 {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    let out = file.with_extension("min");
    let _ = std::fs::remove_dir_all(&work);
    match std::fs::write(&out, &best) {
        Ok(()) => {
            eprintln!(
                "{} bytes after {runs} runs, same {sig}: {}",
                best.len(),
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot write {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}
