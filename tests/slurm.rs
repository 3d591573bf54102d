//! A real single-node Slurm on 127.0.0.1 (when `slurmctld` is installed; else the
//! test skips): munged, slurmctld and slurmd with every file under a temp dir, no
//! cgroups. `scripts/slurm/submit.sh` submits a 4-shard array over EmoDB (or
//! generated clips) and the dependent commit job; the committed table must hold
//! the rows of a single-machine run. Then a 2-fold CV training runs as a 2-task
//! array (one fold per task) and its commit must give the metrics of a
//! single-machine run. Every daemon is stopped by PID afterwards.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn find(bin: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.exists())
}

/// Daemons started by the test; killed (by PID) and reaped on drop.
struct Daemons(Vec<(String, Child)>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for (name, c) in self.0.iter_mut().rev() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if !matches!(c.try_wait(), Ok(Some(_))) {
                let _ = c.kill();
                let _ = c.wait();
            }
            eprintln!("stopped {name} (pid {})", c.id());
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn slurm(conf: &Path, bin: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin)
        .args(args)
        .env("SLURM_CONF", conf)
        .output()
        .unwrap()
}

fn table_rows(dir: &Path) -> Vec<String> {
    let mut rows = Vec::new();
    for (_, batches) in common::read_part_files(dir) {
        for b in batches {
            for i in 0..b.num_rows() {
                let mut s = String::new();
                for c in b.columns() {
                    s.push_str(&arrow::util::display::array_value_to_string(c, i).unwrap());
                    s.push('|');
                }
                rows.push(s);
            }
        }
    }
    rows.sort();
    rows
}

#[test]
fn four_shard_array_and_commit_on_a_local_slurm() {
    let (Some(ctld), Some(slurmd), Some(munged)) =
        (find("slurmctld"), find("slurmd"), find("munged"))
    else {
        common::skip_unless_ci(
            "four_shard_array_and_commit_on_a_local_slurm",
            "slurmctld/slurmd/munged not installed (apt install slurmctld slurmd slurm-client munge)",
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    for d in ["state", "spool", "munge", "jobs"] {
        std::fs::create_dir_all(t.join(d)).unwrap();
    }
    // munge: own key and socket.
    let key = t.join("munge/munge.key");
    let bytes: Vec<u8> = (0..1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&key, bytes).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
    std::fs::set_permissions(t.join("munge"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let sock = t.join("munge/munge.sock");
    let mut daemons = Daemons(Vec::new());
    let m = Command::new(&munged)
        .args(["-F", "-f"])
        .arg(format!("--socket={}", sock.display()))
        .arg(format!("--key-file={}", key.display()))
        .arg(format!(
            "--log-file={}",
            t.join("munge/munged.log").display()
        ))
        .arg(format!(
            "--pid-file={}",
            t.join("munge/munged.pid").display()
        ))
        .arg(format!(
            "--seed-file={}",
            t.join("munge/munged.seed").display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    daemons.0.push(("munged".into(), m));

    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let conf = t.join("slurm.conf");
    std::fs::write(
        &conf,
        format!(
            "ClusterName=sermotest\n\
             SlurmctldHost=localhost(127.0.0.1)\n\
             SlurmctldPort={ctld_port}\n\
             SlurmdPort={d_port}\n\
             AuthType=auth/munge\n\
             CredType=cred/munge\n\
             AuthInfo=socket={sock}\n\
             CommunicationParameters=NoCtldInAddrAny,NoInAddrAny\n\
             SchedulerParameters=sched_interval=2,bf_interval=2\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\n\
             JobAcctGatherType=jobacct_gather/none\n\
             AccountingStorageType=accounting_storage/none\n\
             JobCompType=jobcomp/none\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_CPU\n\
             MpiDefault=none\n\
             ReturnToService=2\n\
             SlurmUser=root\n\
             SlurmdUser=root\n\
             StateSaveLocation={t}/state\n\
             SlurmdSpoolDir={t}/spool\n\
             SlurmctldPidFile={t}/slurmctld.pid\n\
             SlurmdPidFile={t}/slurmd.pid\n\
             SlurmctldLogFile={t}/slurmctld.log\n\
             SlurmdLogFile={t}/slurmd.log\n\
             NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN\n\
             PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n",
            ctld_port = free_port(),
            d_port = free_port(),
            sock = sock.display(),
            t = t.display(),
        ),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    for (name, bin, args) in [
        ("slurmctld", &ctld, vec!["-D", "-c", "-i"]),
        ("slurmd", &slurmd, vec!["-D", "-N", "localhost"]),
    ] {
        let c = Command::new(bin)
            .args(&args)
            .arg("-f")
            .arg(&conf)
            .env("SLURM_CONF", &conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        daemons.0.push((name.to_string(), c));
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = |name: &str| std::fs::read_to_string(t.join(name)).unwrap_or_default();
    // Wait for the node to come up.
    let start = Instant::now();
    loop {
        let o = slurm(&conf, "sinfo", &["-h", "-o", "%T"]);
        let state = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if state.starts_with("idle") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "node not idle ({state}); slurmctld.log:\n{}\nslurmd.log:\n{}",
            log("slurmctld.log"),
            log("slurmd.log")
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // The pipeline: EmoDB when present, else generated clips.
    let glob = match common::corpora_or_skip("slurm (EmoDB)", "emodb/wav") {
        Some(c) => format!("{}/emodb/wav/*.wav", c.display()),
        None => {
            common::generated_corpus(&t.join("gen"), 40, 16000, 2.0);
            format!("{}/gen/*.wav", t.display())
        }
    };
    let pipeline = |dir: &Path| {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join("p.toml");
        std::fs::write(
            &p,
            format!(
                "[sources.c]\nkind = \"files\"\npaths = [\"{glob}\"]\n\
                 [stages.a]\nkind = \"decode\"\ninput = \"c\"\n\
                 [stages.r]\nkind = \"resample\"\ninput = \"a\"\nrate = 16000\n\
                 [stages.f]\nkind = \"features\"\ninput = \"r\"\nn_fft = 512\nhop_length = 160\n\
                 [stages.f.mfcc]\nn_mfcc = 13\n\
                 [sinks.t]\nkind = \"parquet\"\ninput = \"f\"\npath = \"out\"\n"
            ),
        )
        .unwrap();
        p
    };
    let single = pipeline(&t.join("single"));
    let o = Command::new(common::sermo_bin())
        .args(["run", "-q"])
        .arg(&single)
        .output()
        .unwrap();
    assert!(o.status.success());
    let want = table_rows(&t.join("single/out"));

    let p = pipeline(&t.join("cluster"));
    let out = t.join("cluster/out");
    submit_and_wait(&conf, t, &p, &out, 4, &out.join("_SUCCESS"));
    for i in 0..4 {
        assert!(out.join(format!("shard={i}/_SUCCESS")).exists());
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("_manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["shards"], 4);
    assert_eq!(manifest["rows"].as_u64().unwrap() as usize, want.len());
    assert_eq!(
        table_rows(&out),
        want,
        "the array gives the rows of one run"
    );

    // CV folds as array tasks: the demo clips' two speakers, one fold per task,
    // joined by the commit job into the metrics of a single-machine run.
    let cv = t.join("cv");
    std::fs::create_dir_all(&cv).unwrap();
    common::demo_features(&cv);
    let keys = "model = \"mlp\"\nfeatures = [\"stacked\"]\nepochs = 4\nbatch_size = 4\n\
                cv = { by = \"speaker\", folds = 2, valid = 0 }\nseed = 5\n";
    common::train_demo(&cv, "single", keys);
    let tp = common::train_pipeline(&cv, "array", keys);
    let run_dir = cv.join("array");
    submit_and_wait(&conf, t, &tp, &run_dir, 2, &run_dir.join("metrics.json"));
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    assert_eq!(
        read(&run_dir.join("metrics.json")),
        read(&cv.join("single/metrics.json")),
        "the CV array gives the metrics of one run"
    );
    for k in 0..2 {
        assert!(run_dir.join(format!("fold-{k}/model.mpk")).is_file());
    }
}

/// Submit `pipeline` as an `n`-task array plus its commit job with
/// `scripts/slurm/submit.sh` (sink or run folder `out`), and wait for `done`.
fn submit_and_wait(conf: &Path, t: &Path, pipeline: &Path, out: &Path, n: u32, done: &Path) {
    let log = |name: &str| std::fs::read_to_string(t.join(name)).unwrap_or_default();
    let submit = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm/submit.sh");
    let o = Command::new(&submit)
        .arg(pipeline)
        .arg(out)
        .arg(n.to_string())
        // The script asks for 4 CPUs per task; this node may have fewer.
        .args(["--", "--cpus-per-task=1"])
        .current_dir(t.join("jobs"))
        .env("SLURM_CONF", conf)
        .env("SERMO", common::sermo_bin())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("{said}");
    let start = Instant::now();
    while !done.exists() {
        let q = slurm(conf, "squeue", &["-h", "-o", "%i %T %r"]);
        let queue = String::from_utf8_lossy(&q.stdout).to_string();
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "jobs did not finish; squeue:\n{queue}\nslurmctld.log tail:\n{}",
            log("slurmctld.log")
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .join("\n")
        );
        if queue.trim().is_empty() && !done.exists() {
            std::thread::sleep(Duration::from_secs(1));
            if !done.exists() {
                let logs: Vec<String> = std::fs::read_dir(t.join("jobs"))
                    .unwrap()
                    .flatten()
                    .map(|e| {
                        format!(
                            "== {}\n{}",
                            e.path().display(),
                            std::fs::read_to_string(e.path()).unwrap_or_default()
                        )
                    })
                    .collect();
                panic!(
                    "queue empty but no {}; job logs:\n{}",
                    done.display(),
                    logs.join("\n")
                );
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
