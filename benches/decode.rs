//! Decode throughput: `files → decode → parquet` over a corpus, at 1 and 2 worker
//! threads, in x-real-time.
//!
//! ```sh
//! cargo bench --bench decode                 # ../shared/corpora when present, else demo clips
//! SERMO_BENCH_GLOB='/data/ravdess/Actor_*/*.flac' cargo bench --bench decode
//! ```

use std::path::Path;
use std::time::Instant;

use sermo::config::PipelineFile;
use sermo::engine::{Metrics, RunOptions};
use sermo::registry::Registry;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let default = root.join("../shared/corpora/ravdess");
    let glob = std::env::var("SERMO_BENCH_GLOB").unwrap_or_else(|_| {
        if default.is_dir() {
            format!("{}/Actor_*/*.flac", default.display())
        } else {
            eprintln!("../shared/corpora absent: benchmarking the demo clips");
            format!("{}/examples/audio/*/*.*", root.display())
        }
    });
    let out = std::env::temp_dir().join(format!("sermo-bench-decode-{}", std::process::id()));
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start tokio: {e}");
            return;
        }
    };
    println!("corpus: {glob}");
    println!(
        "{:>8} {:>10} {:>12} {:>14}",
        "threads", "wall s", "audio h", "x real time"
    );
    for threads in [1usize, 2] {
        let text = format!(
            "[sources.clips]\nkind = \"files\"\npaths = [\"{glob}\"]\n\
             [stages.audio]\nkind = \"decode\"\ninput = \"clips\"\n\
             [sinks.table]\nkind = \"parquet\"\ninput = \"audio\"\npath = \"{}\"\n",
            out.display()
        );
        let plan = match PipelineFile::parse(&text, root, &[])
            .and_then(|f| f.compile(&Registry::builtin()))
        {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{e}");
                return;
            }
        };
        let metrics = Metrics::default();
        let start = Instant::now();
        let r = rt.block_on(plan.run(RunOptions {
            metrics: metrics.clone(),
            threads: Some(threads),
            ..Default::default()
        }));
        let wall = start.elapsed().as_secs_f64();
        if let Err(e) = r {
            eprintln!("{e}");
            return;
        }
        let audio = metrics.get("audio.micros") as f64 / 1e6;
        println!(
            "{threads:>8} {wall:>10.2} {:>12.3} {:>14.0}",
            audio / 3600.0,
            audio / wall
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}
