//! What the operator and the target feel, side by side with gdb:
//!
//! 1. end to end: `reach -p PID -e 'call("getpid", [])'` against
//!    `gdb -p PID --batch -ex 'call (int)getpid()'`;
//! 2. the stop window as the target feels it: a thread of the target reads
//!    the clock in a tight loop and records its longest gap, around one
//!    call, for targets with 1, 4, 8, 64 and 500 threads.
//!
//! Run: `cargo bench --bench call` (as root). gdb columns are skipped with a
//! note when gdb is not installed. Medians of repeated runs.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

const REACH: &str = env!("CARGO_BIN_EXE_reach");

struct Gap {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Gap {
    fn spawn(exe: &PathBuf, threads: usize) -> Gap {
        let mut child = Command::new(exe)
            .arg(threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the gap target");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        Gap {
            child,
            stdin,
            stdout,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn ask(&mut self, what: &str) -> String {
        writeln!(self.stdin, "{what}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim().to_string()
    }

    /// The longest gap (µs) the target saw while `f` ran.
    fn gap_around(&mut self, f: impl FnOnce()) -> u64 {
        self.ask("reset");
        f();
        self.ask("report").parse().unwrap()
    }
}

impl Drop for Gap {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn build_fixture() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-fixtures");
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("gap");
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/fixtures/gap.c");
    let ok = Command::new("cc")
        .args(["-O2", "-pthread", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("run cc");
    assert!(ok.success(), "cc failed");
    exe
}

fn reach_call(pid: u32) {
    let out = Command::new(REACH)
        .args(["-p", &pid.to_string(), "-e", "call(\"getpid\", [])"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), pid.to_string());
}

fn gdb_call(pid: u32) {
    let out = Command::new("gdb")
        .args([
            "-nx",
            "-p",
            &pid.to_string(),
            "--batch",
            "-ex",
            "call (int)getpid()",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
}

fn have_gdb() -> bool {
    Command::new("gdb")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn median<T: Copy + Ord>(mut v: Vec<T>) -> T {
    v.sort();
    v[v.len() / 2]
}

fn timed(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn main() {
    let exe = build_fixture();
    let gdb = have_gdb();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    println!(
        "machine: {} cores, {cpu}; kernel {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );

    // 1. End to end.
    let mut target = Gap::spawn(&exe, 4);
    let pid = target.pid();
    reach_call(pid); // warm the page cache
    let reach_runs: Vec<Duration> = (0..30).map(|_| timed(|| reach_call(pid))).collect();
    let reach_e2e = median(reach_runs);
    println!("\n## End to end: call getpid() in a 4-thread target (median)\n");
    println!("| tool | time | ratio |\n| --- | --- | --- |");
    println!("| reach | {:.2} ms | 1× |", reach_e2e.as_secs_f64() * 1e3);
    if gdb {
        gdb_call(pid);
        let gdb_runs: Vec<Duration> = (0..5).map(|_| timed(|| gdb_call(pid))).collect();
        let gdb_e2e = median(gdb_runs);
        println!(
            "| gdb --batch | {:.2} ms | {:.0}× slower |",
            gdb_e2e.as_secs_f64() * 1e3,
            gdb_e2e.as_secs_f64() / reach_e2e.as_secs_f64()
        );
    } else {
        println!("| gdb | not installed | |");
    }
    let _ = target.gap_around(|| {});
    drop(target);

    // 2. Stop window as the target feels it.
    println!("\n## Stop window: longest gap seen by a thread of the target (median of runs, µs)\n");
    println!("| threads | idle (noise) | reach call | gdb call |\n| --- | --- | --- | --- |");
    for threads in [1usize, 4, 8, 64, 500] {
        let mut target = Gap::spawn(&exe, threads);
        let pid = target.pid();
        reach_call(pid);
        let idle = median(
            (0..10)
                .map(|_| target.gap_around(|| std::thread::sleep(Duration::from_millis(10))))
                .collect(),
        );
        let with_reach = median(
            (0..15)
                .map(|_| target.gap_around(|| reach_call(pid)))
                .collect(),
        );
        let with_gdb = if gdb {
            let runs: Vec<u64> = (0..3)
                .map(|_| target.gap_around(|| gdb_call(pid)))
                .collect();
            format!("{}", median(runs))
        } else {
            "gdb not installed".into()
        };
        println!("| {threads} | {idle} | {with_reach} | {with_gdb} |");
    }
}
