//! What the operator and the target feel, side by side with gdb:
//!
//! 1. end to end: `reach -p PID -e 'call("getpid", [])'` against
//!    `gdb -p PID --batch -ex 'call (int)getpid()'`;
//! 2. the gap a spinning thread that is *not* the call thread feels: it
//!    reads the clock in a tight loop and records its longest gap, around
//!    one `reach -e` (or gdb) call, in targets with 4 to 4,000 threads
//!    (the others sleep in pause(); the main thread, blocked in read(), is
//!    the one reach runs on);
//! 3. the call thread's own pause: how long reach holds it, per window
//!    (`REACH_TIMING`): the first operation of a session (which also makes
//!    reach's mapping), a later call, and the release at exit (which
//!    removes the mapping).
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

    /// The longest gap (µs) the spinning thread saw while `f` ran.
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
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-fixtures");
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

/// `reach -p PID -e EXPR...`; its stderr (where `REACH_TIMING` reports).
fn reach(pid: u32, exprs: &[&str], timing: bool) -> String {
    let mut cmd = Command::new(REACH);
    cmd.args(["-p", &pid.to_string()]);
    for e in exprs {
        cmd.args(["-e", e]);
    }
    if timing {
        cmd.env("REACH_TIMING", "1");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), pid.to_string());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn reach_call(pid: u32) {
    reach(pid, &["call(\"getpid\", [])"], false);
}

/// The windows of one session making three calls: µs each one held its
/// thread (the first makes the mapping, the last removes it).
fn reach_windows(pid: u32) -> Vec<u64> {
    let call = "call(\"getpid\", [])";
    reach(pid, &[call, call, call], true)
        .lines()
        .filter_map(|l| l.strip_suffix(" us")?.rsplit(' ').next()?.parse().ok())
        .collect()
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
        "machine: {} cores, {cpu}; kernel {}; load average {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );

    // 1. End to end.
    let mut target = Gap::spawn(&exe, 4);
    let pid = target.pid();
    reach_call(pid); // warm the page cache
    let reach_e2e = median((0..30).map(|_| timed(|| reach_call(pid))).collect());
    println!("\n## End to end: call getpid() in a 4-thread target (median)\n");
    println!("| tool | time | ratio |\n| --- | --- | --- |");
    println!("| reach | {:.2} ms | 1× |", reach_e2e.as_secs_f64() * 1e3);
    if gdb {
        gdb_call(pid);
        let gdb_e2e = median((0..5).map(|_| timed(|| gdb_call(pid))).collect());
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

    // 2. What a thread reach does not run on feels.
    println!(
        "\n## Longest gap felt by a spinning thread that is not the call thread, \
         around one `reach -e` call (median of runs, µs)\n"
    );
    println!("| threads | idle (noise) | reach | gdb |\n| --- | --- | --- | --- |");
    for threads in [4usize, 64, 500, 4000] {
        let mut target = Gap::spawn(&exe, threads);
        let pid = target.pid();
        reach_call(pid);
        let idle = median(
            (0..10)
                .map(|_| target.gap_around(|| std::thread::sleep(Duration::from_millis(5))))
                .collect(),
        );
        let with_reach = median(
            (0..15)
                .map(|_| target.gap_around(|| reach_call(pid)))
                .collect(),
        );
        let with_gdb = if !gdb {
            "not installed".to_string()
        } else if threads > 500 {
            "(not run: minutes)".to_string()
        } else {
            let runs: Vec<u64> = (0..3)
                .map(|_| target.gap_around(|| gdb_call(pid)))
                .collect();
            format!("{}", median(runs))
        };
        println!("| {threads} | {idle} | {with_reach} | {with_gdb} |");
    }

    // 3. The call thread's own pause.
    println!(
        "\n## The call thread's own pause: how long reach holds it per window \
         (median of 15 sessions, µs)\n"
    );
    println!(
        "| threads | first call (+ making the mapping) | a later call | release (removing it) |\n\
         | --- | --- | --- | --- |"
    );
    for threads in [1usize, 500] {
        let target = Gap::spawn(&exe, threads);
        let pid = target.pid();
        reach_call(pid);
        let sessions: Vec<Vec<u64>> = (0..15).map(|_| reach_windows(pid)).collect();
        let col = |i: usize| median(sessions.iter().map(|w| w[i]).collect());
        println!("| {threads} | {} | {} | {} |", col(0), col(2), col(3));
        drop(target);
    }
}
