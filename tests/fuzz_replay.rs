//! Replays the fuzz corpora and the regressions (inputs that once crashed a
//! target, fixed since) through the same targets as the fuzzer
//! (`examples/fuzz/targets.rs`): no input may panic. Takes seconds; fuzzing
//! itself is `cargo run --example fuzz` (fuzz/README.md).

// The fuzzer's own helpers (input sizes, finding signatures) are unused here.
#[allow(dead_code)]
#[path = "../examples/fuzz/targets.rs"]
mod targets;

use std::path::Path;

use targets::{Scratch, Target};

#[test]
fn fuzz_corpora_and_regressions_replay_without_panics() {
    targets::install_panic_hook();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let dir = tempfile::tempdir().expect("tempdir");
    let scratch = Scratch::new(dir.path());
    let mut failures = Vec::new();
    let mut counts = Vec::new();
    for t in Target::ALL {
        let mut n = 0;
        for sub in ["corpus", "regressions"] {
            for f in targets::corpus_files(&root.join(sub).join(t.name())) {
                let input = std::fs::read(&f).expect("read a corpus file");
                n += 1;
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    targets::run(t, &input, &scratch)
                }));
                if r.is_err() {
                    let site = targets::take_panic()
                        .map(|s| format!("{} at {}:{}: {}", s.owner(), s.file, s.line, s.message))
                        .unwrap_or_default();
                    failures.push(format!("{} ({}): panic in {site}", f.display(), t.name()));
                }
            }
        }
        counts.push((t.name(), n));
    }
    // Every target has seeds (a corpus folder emptied by mistake fails here).
    for (name, n) in &counts {
        assert!(*n > 0, "no corpus files for target `{name}`");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
