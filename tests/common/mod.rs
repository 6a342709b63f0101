//! Shared machinery for the integration tests: C fixtures built once per test
//! binary, a `Target` guard around a spawned fixture (ready handshake with a
//! deadline, killed and reaped on drop), a runner for the real `reach` binary
//! with a deadline, and readers for the `/proc` facts the tests assert on.
//!
//! Nothing here sleeps for a fixed time: every wait is for a condition, with
//! a deadline (`wait_until`), so a slow machine only makes tests slower.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a fixture may take to print its ready line.
pub const READY_DEADLINE: Duration = Duration::from_secs(10);
/// How long one `reach` run may take before the test kills it and fails.
pub const REACH_DEADLINE: Duration = Duration::from_secs(60);
/// How long to wait for a state change in the target (a thread blocking, a
/// counter advancing, a line of output).
pub const STATE_DEADLINE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------- waiting

/// Blocks the current thread for `d` without a fixed sleep call: a receive with
/// a timeout on a channel nobody sends on.
pub fn pause(d: Duration) {
    let (_tx, rx) = mpsc::channel::<()>();
    let _ = rx.recv_timeout(d);
}

/// Polls `cond` every few milliseconds until it holds or `timeout` passes;
/// returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        pause(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------- fixtures

/// Compiler flags for each fixture in `tests/fixtures/NAME.c`.
fn fixture_flags(name: &str) -> &'static [&'static str] {
    match name {
        "target" => &["-pthread", "-rdynamic"],
        "regs" => &["-pthread", "-O1", "-mno-red-zone"],
        "blocked" | "seccomp" => &["-pthread"],
        "static_accept" => &["-static", "-s"],
        "libanswer_v1" | "libanswer_v2" => &["-shared", "-fPIC"],
        "libuser" => &["-ldl"],
        "rel_stress" => &["-pthread", "-O1", "-mno-red-zone"],
        "rel_faults" => &["-pthread", "-rdynamic"],
        _ => &[],
    }
}

/// The directory where fixtures are built and scratch files live.
pub fn tmpdir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// Builds `tests/fixtures/NAME.c` (once per test binary) and returns the
/// path of the result (`NAME`, or `NAME.so` for a shared library). Each build
/// goes to a unique temporary name and is renamed into place, so test
/// binaries running in parallel never see a half-written file.
pub fn fixture(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let flags = fixture_flags(name);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{name}.c"));
    let dir = tmpdir().join("fixtures");
    fs::create_dir_all(&dir).unwrap();
    let file = if flags.contains(&"-shared") {
        format!("{name}.so")
    } else {
        name.to_string()
    };
    let out = dir.join(&file);
    let tmp = dir.join(format!(
        ".{file}.{}.{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    ));
    let result = Command::new("cc")
        .args(["-O1", "-g", "-Wall", "-o"])
        .arg(&tmp)
        .arg(&src)
        .args(flags)
        .output()
        .expect("run cc");
    assert!(
        result.status.success(),
        "building fixture {name} failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    fs::rename(&tmp, &out).unwrap();
    built.insert(name.to_string(), out.clone());
    out
}

/// A fresh, empty scratch directory unique to this call.
pub fn scratch_dir(tag: &str) -> PathBuf {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let dir = tmpdir().join(format!(
        "scratch-{tag}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

// ---------------------------------------------------------------- targets

/// A spawned target process. Its stdout is read line by line on a helper
/// thread; its stdin stays open for commands. Dropping it kills and reaps it.
pub struct Target {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// The `key=value` fields of the ready line.
    pub ready: HashMap<String, String>,
    pub pid: i32,
}

impl Target {
    /// Spawns a built fixture with `args` and waits for its ready line.
    pub fn fixture(name: &str, args: &[&str]) -> Target {
        let mut cmd = Command::new(fixture(name));
        cmd.args(args);
        Target::spawn(cmd)
    }

    /// Spawns `cmd` (stdin and stdout piped) and waits for a line starting
    /// with "ready"; fails the test if none comes within `READY_DEADLINE`.
    pub fn spawn(mut cmd: Command) -> Target {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        // If the test binary dies without running Drop, take the target along.
        // SAFETY: prctl is async-signal-safe and touches only the child.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn target");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let pid = child.id() as i32;
        let mut target = Target {
            stdin: child.stdin.take(),
            child,
            lines,
            ready: HashMap::new(),
            pid,
        };
        let line = target.line_matching(READY_DEADLINE, |l| l.starts_with("ready"));
        target.ready = line
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        target
    }

    /// A field of the ready line, as a string.
    pub fn field(&self, key: &str) -> &str {
        self.ready
            .get(key)
            .unwrap_or_else(|| panic!("ready line has no {key}: {:?}", self.ready))
    }

    /// A field of the ready line as a number (decimal, or hex with 0x).
    pub fn num(&self, key: &str) -> u64 {
        parse_num(self.field(key))
    }

    /// Next line of output, waiting at most `timeout`.
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Skips output until a line satisfying `pred`; fails the test after
    /// `timeout` or when the target's stdout closes first.
    pub fn line_matching(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(line) => seen.push(line),
                Err(e) => panic!(
                    "pid {}: no expected line within {timeout:?} ({e:?}); got {seen:?}",
                    self.pid
                ),
            }
        }
    }

    /// Writes one line to the target's stdin.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to target stdin");
        stdin.flush().unwrap();
    }

    /// Sends `cmd` and returns the first line of the answer.
    pub fn ask(&mut self, cmd: &str) -> String {
        self.send(cmd);
        self.next_line(STATE_DEADLINE)
            .unwrap_or_else(|| panic!("pid {}: no answer to {cmd:?}", self.pid))
    }

    /// Whether the process still exists and is not a zombie.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None)) && state(self.pid).is_some_and(|s| s != 'Z')
    }

    /// Waits for the process to exit; fails the test after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut status = None;
        let exited = wait_until(timeout, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        assert!(exited, "pid {} did not exit within {timeout:?}", self.pid);
        status.unwrap()
    }

    /// Sends `sig` to the target.
    pub fn signal(&self, sig: i32) {
        // SAFETY: plain syscall on a pid we own (not yet reaped).
        assert_eq!(
            unsafe { libc::kill(self.pid, sig) },
            0,
            "kill({}, {sig})",
            self.pid
        );
    }

    /// The u64 at `addr` in the target, read through /proc/PID/mem.
    pub fn read_u64(&self, addr: u64) -> u64 {
        read_u64(self.pid, addr)
    }

    /// Waits until the u64 at `addr` grows by more than `by`: the process is
    /// running its own code.
    pub fn assert_advances(&self, addr: u64, by: u64) {
        let start = self.read_u64(addr);
        assert!(
            wait_until(STATE_DEADLINE, || self.read_u64(addr) > start + by),
            "pid {}: counter at {addr:#x} stuck at {}",
            self.pid,
            self.read_u64(addr)
        );
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn parse_num(s: &str) -> u64 {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    }
    .unwrap_or_else(|e| panic!("not a number: {s:?}: {e}"))
}

// ---------------------------------------------------------------- reach

/// What one run of `reach` did.
#[derive(Debug)]
pub struct ReachOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl ReachOutput {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// A `reach` process still running (for tests that signal it mid-call).
pub struct RunningReach {
    child: Child,
    out: Receiver<(String, String)>,
}

impl RunningReach {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Whether reach has exited (without reaping it).
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for reach to finish; kills it and fails the test after
    /// `timeout`. Always checks that it did not panic.
    pub fn finish(mut self, timeout: Duration) -> ReachOutput {
        let mut status = None;
        let done = wait_until(timeout, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        if !done {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let (stdout, stderr) = self.out.recv_timeout(STATE_DEADLINE).unwrap_or_default();
            panic!("reach took longer than {timeout:?}\nstdout: {stdout}\nstderr: {stderr}");
        }
        let (stdout, stderr) = self
            .out
            .recv_timeout(STATE_DEADLINE)
            .expect("reach output after exit");
        let out = ReachOutput {
            status: status.unwrap(),
            stdout,
            stderr,
        };
        assert_no_panic(&out);
        out
    }
}

impl Drop for RunningReach {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `reach ARGS...` with stdin closed, collecting its output.
pub fn spawn_reach(args: &[&str]) -> RunningReach {
    spawn_reach_with_input(args, None)
}

/// Starts `reach ARGS...` with `input` (if any) as its whole stdin.
fn spawn_reach_with_input(args: &[&str], input: Option<&str>) -> RunningReach {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reach"))
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn reach");
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        let input = input.to_string();
        std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
    }
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, out) = mpsc::channel();
    std::thread::spawn(move || {
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let mut o = String::new();
        let _ = stdout.read_to_string(&mut o);
        let e = err.join().unwrap_or_default();
        let _ = tx.send((o, e));
    });
    RunningReach { child, out }
}

/// Runs `reach ARGS...` to completion (at most `REACH_DEADLINE`).
pub fn reach(args: &[&str]) -> ReachOutput {
    spawn_reach(args).finish(REACH_DEADLINE)
}

/// Runs `reach ARGS...` with `input` as the script on its stdin.
pub fn reach_with_stdin(args: &[&str], input: &str) -> ReachOutput {
    spawn_reach_with_input(args, Some(input)).finish(REACH_DEADLINE)
}

/// Runs `reach -p PID -e EXPR`.
pub fn eval(pid: i32, expr: &str) -> ReachOutput {
    reach(&["-p", &pid.to_string(), "-e", expr])
}

/// Runs `reach -p PID -e EXPR`, requires success and returns stdout trimmed.
pub fn eval_ok(pid: i32, expr: &str) -> String {
    let out = eval(pid, expr);
    assert_ok(&out);
    out.stdout.trim().to_string()
}

pub fn assert_no_panic(out: &ReachOutput) {
    assert!(
        !out.stderr.contains("panicked") && !out.stderr.contains("RUST_BACKTRACE"),
        "reach panicked: {out:#?}"
    );
}

/// Requires exit status 0.
pub fn assert_ok(out: &ReachOutput) {
    assert_eq!(out.code(), Some(0), "reach failed: {out:#?}");
    assert_no_panic(out);
}

/// Requires exit status `code`, an error of one line starting "reach: "
/// (optionally followed by one "hint" line), containing every word of
/// `words` (case-insensitive).
pub fn assert_error(out: &ReachOutput, code: i32, words: &[&str]) {
    assert_eq!(out.code(), Some(code), "unexpected exit status: {out:#?}");
    assert_no_panic(out);
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(!lines.is_empty(), "no error message: {out:#?}");
    assert!(
        lines[0].starts_with("reach: "),
        "error does not start with 'reach: ': {out:#?}"
    );
    let extra_ok = lines.len() == 1
        || (lines.len() == 2 && lines[1].trim_start().to_lowercase().starts_with("hint"));
    assert!(extra_ok, "error is not one line (plus a hint): {out:#?}");
    let lower = out.stderr.to_lowercase();
    for w in words {
        assert!(
            lower.contains(&w.to_lowercase()),
            "error does not mention {w:?}: {out:#?}"
        );
    }
}

/// The target is as reach should leave it: alive, running (not stopped),
/// untraced in every thread, and still accepts a call.
pub fn assert_untouched(t: &mut Target) {
    assert!(t.alive(), "pid {} died", t.pid);
    let s = state(t.pid).unwrap();
    assert!(s != 'T' && s != 't', "pid {} left in state {s}", t.pid);
    assert_untraced(t.pid);
    assert_eq!(eval_ok(t.pid, r#"call("getpid", [])"#), t.pid.to_string());
    assert!(t.alive(), "pid {} died after a follow-up call", t.pid);
}

/// Every task of `pid` has TracerPid 0 (waiting a little: the kernel
/// finishes a detach asynchronously only in odd cases, so this is quick).
pub fn assert_untraced(pid: i32) {
    let ok = wait_until(STATE_DEADLINE, || {
        tids(pid)
            .iter()
            .all(|&tid| task_status(pid, tid, "TracerPid").as_deref() == Some("0"))
    });
    assert!(ok, "pid {pid} still traced: {:?}", tracers(pid));
}

// ---------------------------------------------------------------- /proc

/// A field of /proc/PID/status (value after the colon, trimmed).
pub fn status_field(pid: i32, field: &str) -> Option<String> {
    proc_field(&format!("/proc/{pid}/status"), field)
}

/// A field of /proc/PID/task/TID/status.
pub fn task_status(pid: i32, tid: i32, field: &str) -> Option<String> {
    proc_field(&format!("/proc/{pid}/task/{tid}/status"), field)
}

fn proc_field(path: &str, field: &str) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

/// The state letter (R, S, D, T, t, Z, ...) of the process.
pub fn state(pid: i32) -> Option<char> {
    status_field(pid, "State")?.chars().next()
}

/// The state letter of one thread.
pub fn task_state(pid: i32, tid: i32) -> Option<char> {
    task_status(pid, tid, "State")?.chars().next()
}

pub fn tracer_pid(pid: i32) -> i32 {
    status_field(pid, "TracerPid").map_or(0, |v| v.parse().unwrap())
}

/// (tid, TracerPid) of every thread.
pub fn tracers(pid: i32) -> Vec<(i32, String)> {
    tids(pid)
        .into_iter()
        .map(|tid| (tid, task_status(pid, tid, "TracerPid").unwrap_or_default()))
        .collect()
}

/// A signal set field (SigIgn, SigPnd, ShdPnd, SigBlk, SigCgt) as a mask.
pub fn sigset(pid: i32, field: &str) -> u64 {
    u64::from_str_radix(&status_field(pid, field).unwrap(), 16).unwrap()
}

/// The bit a signal occupies in a /proc signal mask.
pub fn sigbit(sig: i32) -> u64 {
    1u64 << (sig - 1)
}

/// Thread ids of the process.
pub fn tids(pid: i32) -> Vec<i32> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The system call number a thread is blocked in, from
/// /proc/PID/task/TID/syscall (None when it is running or unreadable).
pub fn task_syscall(pid: i32, tid: i32) -> Option<i64> {
    let text = fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// /proc/PID/maps.
pub fn maps(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default()
}

/// The u64 at `addr` in process `pid`, through /proc/PID/mem.
pub fn read_u64(pid: i32, addr: u64) -> u64 {
    let mem = fs::File::open(format!("/proc/{pid}/mem")).expect("open /proc/PID/mem");
    let mut buf = [0u8; 8];
    mem.read_exact_at(&mut buf, addr)
        .unwrap_or_else(|e| panic!("read {addr:#x} in {pid}: {e}"));
    u64::from_ne_bytes(buf)
}

/// Waits until `pid` is in a ptrace stop under some tracer (reach has
/// started an operation on it).
pub fn wait_traced(pid: i32, timeout: Duration) -> bool {
    wait_until(timeout, || tracer_pid(pid) != 0)
}

/// Exit status as "code N" or "signal N", for messages.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("code {c}"),
        (_, Some(s)) => format!("signal {s}"),
        _ => "unknown".into(),
    }
}

// ---------------------------------------------------------------- reliability

/// A count from the environment (`REACH_STRESS_OPS=10000` runs a suite's
/// full form), or `default` (the short form CI runs).
pub fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a count: {e}")),
        Err(_) => default,
    }
}

/// A small deterministic PRNG (SplitMix64): the same seed gives the same
/// sequence, so a failing case can be replayed by its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// One element of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// (iterations, mismatches) of each checker thread of a fixture that
/// prints `stats=ADDR threads=N` (`regs`, `rel_stress`).
pub fn checker_stats(t: &Target) -> Vec<(u64, u64)> {
    let base = t.num("stats");
    (0..t.num("threads"))
        .map(|i| (t.read_u64(base + 16 * i), t.read_u64(base + 16 * i + 8)))
        .collect()
}

/// Every checker thread is still running its own code (each completes a
/// few more rounds) and none has ever seen a changed register or red zone.
pub fn assert_registers_intact(t: &Target) {
    let then = checker_stats(t);
    assert!(
        wait_until(STATE_DEADLINE, || {
            checker_stats(t)
                .iter()
                .zip(&then)
                .all(|(now, then)| now.0 > then.0 + 2)
        }),
        "checker threads stopped advancing: {then:?} -> {:?}",
        checker_stats(t)
    );
    let stats = checker_stats(t);
    assert!(
        stats.iter().all(|&(_, bad)| bad == 0),
        "register or red zone mismatches per thread (iterations, mismatches): {stats:?}"
    );
}

/// VmRSS of the process in KiB.
pub fn vm_rss_kib(pid: i32) -> u64 {
    let v = status_field(pid, "VmRSS").expect("VmRSS");
    v.trim_end_matches("kB").trim().parse().unwrap()
}

/// How many mappings the process has (lines of /proc/PID/maps).
pub fn map_count(pid: i32) -> usize {
    maps(pid).lines().count()
}

/// CLOCK_MONOTONIC in nanoseconds: the same clock in every process.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// sigqueue(3): send `sig` to process `pid` with `value` in si_value, through
/// rt_sigqueueinfo (the libc crate has no sigqueue). Returns the errno on
/// failure (EAGAIN: the target's queue of real-time signals is full).
pub fn sigqueue(pid: i32, sig: i32, value: i32) -> Result<(), i32> {
    // siginfo_t on x86-64: si_signo, si_errno, si_code, padding, then the
    // _rt member of the union at offset 16: si_pid, si_uid, si_value.
    #[repr(C, align(8))]
    struct SigInfo([i32; 32]);
    let mut info = SigInfo([0; 32]);
    info.0[0] = sig;
    info.0[2] = -1; // SI_QUEUE, which the kernel allows from another process
    info.0[4] = std::process::id() as i32;
    // SAFETY: getuid has no preconditions.
    info.0[5] = unsafe { libc::getuid() } as i32;
    info.0[6] = value;
    // SAFETY: a 128-byte siginfo that outlives the call.
    let r = unsafe { libc::syscall(libc::SYS_rt_sigqueueinfo, pid, sig, &info as *const SigInfo) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// Lets every thread of the `blocked` fixture finish (writes its stdin,
/// connects to its port) and returns each thread's result fields
/// ("ret", "errno", "ms") by thread name, once it prints "done".
pub fn blocked_results(t: &mut Target) -> HashMap<String, HashMap<String, i64>> {
    t.send("x");
    let port = t.field("port").to_string();
    let _conn = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    let mut results = HashMap::new();
    while results.len() < 6 {
        let line = t.line_matching(STATE_DEADLINE, |l| l.starts_with("result "));
        let mut words = line.split_whitespace().skip(1);
        let name = words.next().unwrap().to_string();
        let fields = words
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.parse::<i64>().unwrap()))
            .collect();
        results.insert(name, fields);
    }
    t.line_matching(STATE_DEADLINE, |l| l == "done");
    results
}
