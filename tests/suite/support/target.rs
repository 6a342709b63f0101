//! A spawned target process. It is ready when it says so: a line starting
//! with `ready` (C fixtures print `ready key=value …`) or, for the Python
//! fixture, a JSON object. Its stdout is read line by line on a helper
//! thread, so every wait has a deadline; its stdin stays open for
//! commands. Dropping it kills and reaps it.

use super::{READY_DEADLINE, STATE_DEADLINE, fixture, manifest_dir, read_u64, spawn, wait_until};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

pub struct Target {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// The ready line, whole.
    pub ready: String,
    pub pid: i32,
}

impl Target {
    /// Builds the C fixture `tests/fixtures/NAME.c` (once per run), starts
    /// it with `args` and waits for its ready line.
    pub fn fixture(name: &str, args: &[&str]) -> Target {
        let mut cmd = Command::new(fixture(name));
        cmd.args(args);
        Target::spawn(cmd)
    }

    /// `python3 tests/fixtures/fds.py ARGS…` behind `prefix` (say,
    /// `unshare -n`): a process holding every kind of descriptor, whose
    /// ready line is JSON ([`Target::json`]) and which answers commands
    /// with JSON lines ([`Target::ask_json`]). Its pid is its own report:
    /// `unshare` execs it in the same process.
    pub fn fds_fixture(prefix: &[&str], args: &[&str]) -> Target {
        let script = manifest_dir().join("tests/fixtures/fds.py");
        let mut argv: Vec<&str> = prefix.to_vec();
        argv.push("python3");
        argv.push(script.to_str().unwrap());
        argv.extend_from_slice(args);
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..]);
        let mut t = Target::spawn_until(cmd, "{");
        t.pid = t.json()["pid"]
            .as_i64()
            .expect("the fixture reports its pid") as i32;
        t
    }

    /// A Python 3 program given as source, ready when it prints `ready`.
    pub fn python(source: &str, args: &[&str]) -> Target {
        let mut cmd = Command::new("python3");
        cmd.arg("-u").arg("-c").arg(source).args(args);
        Target::spawn(cmd)
    }

    /// One of the programs in `examples/`, run with python3; ready when it
    /// prints a line starting with `ready`.
    pub fn example(name: &str, args: &[&str], ready: &str) -> Target {
        let mut cmd = Command::new("python3");
        cmd.arg("-u")
            .arg(manifest_dir().join("examples").join(name))
            .args(args);
        Target::spawn_until(cmd, ready)
    }

    /// Starts `cmd` and waits for a line starting with `ready`.
    pub fn spawn(cmd: Command) -> Target {
        Target::spawn_until(cmd, "ready")
    }

    /// Starts `cmd` (stdin, stdout and stderr piped) and waits for a line
    /// starting with `prefix`; fails the test if none comes within
    /// [`READY_DEADLINE`]. Its stderr is passed on to the test's, a line at
    /// a time: never the test process's own stderr, a file other tests
    /// write to, whose position would change under `fds()`.
    pub fn spawn_until(mut cmd: Command, prefix: &str) -> Target {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn(&mut cmd).unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let stderr = child.stderr.take().unwrap();
        let pid = child.id();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[target {pid}] {line}");
            }
        });
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
            ready: String::new(),
            pid,
        };
        target.ready = target.line_matching(READY_DEADLINE, |l| l.starts_with(prefix));
        target
    }

    /// The `key=value` fields of the ready line.
    pub fn fields(&self) -> HashMap<&str, &str> {
        self.ready
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .collect()
    }

    /// A field of the ready line, as a string.
    pub fn field(&self, key: &str) -> &str {
        self.fields()
            .get(key)
            .copied()
            .unwrap_or_else(|| panic!("the ready line has no {key}: {:?}", self.ready))
    }

    /// A field of the ready line as a number (decimal, or hex with 0x).
    pub fn num(&self, key: &str) -> u64 {
        parse_num(self.field(key))
    }

    /// The words of the ready line after its first.
    pub fn words(&self) -> Vec<&str> {
        self.ready.split_whitespace().skip(1).collect()
    }

    /// The ready line as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.ready)
            .unwrap_or_else(|e| panic!("ready line {:?} is not JSON: {e}", self.ready))
    }

    /// A number the JSON ready line holds at `pointer` (`/listen/fd`).
    pub fn json_num(&self, pointer: &str) -> i64 {
        self.json()
            .pointer(pointer)
            .and_then(Value::as_i64)
            .unwrap_or_else(|| panic!("the ready line has no {pointer}: {}", self.ready))
    }

    /// A descriptor number the JSON ready line holds at `pointer`.
    pub fn json_fd(&self, pointer: &str) -> i32 {
        self.json_num(pointer) as i32
    }

    /// Next line of output, waiting at most `timeout`.
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// The next line of output; fails the test after [`STATE_DEADLINE`].
    pub fn line(&self) -> String {
        self.next_line(STATE_DEADLINE)
            .unwrap_or_else(|| panic!("pid {}: no line within {STATE_DEADLINE:?}", self.pid))
    }

    /// The next line, parsed as JSON; fails the test after
    /// [`STATE_DEADLINE`].
    pub fn next_json(&self) -> Value {
        let line = self.line();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("line {line:?}: {e}"))
    }

    /// Skips output until a line satisfying `pred`, or `None` after
    /// `timeout` or when the target's stdout closes first.
    pub fn find_line(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return Some(line),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
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
        writeln!(stdin, "{line}").expect("write to the target's stdin");
        stdin.flush().unwrap();
    }

    /// Sends `cmd` and returns the first line of the answer.
    pub fn ask(&mut self, cmd: &str) -> String {
        self.send(cmd);
        self.next_line(STATE_DEADLINE)
            .unwrap_or_else(|| panic!("pid {}: no answer to {cmd:?}", self.pid))
    }

    /// Sends `cmd` and returns the answer, a JSON line.
    pub fn ask_json(&mut self, cmd: &str) -> Value {
        self.send(cmd);
        self.next_json()
    }

    /// Closes the target's stdin (EOF ends most fixtures).
    pub fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// Whether the process still exists and is not a zombie (it is reaped
    /// only by [`Target::exited`], [`Target::wait_exit`] and drop).
    pub fn alive(&self) -> bool {
        super::state(self.pid).is_some_and(|s| !matches!(s, 'Z' | 'X'))
    }

    /// Its exit status if it has exited (reaping it).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
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

    /// A field of its `/proc/PID/status` ("" if it cannot be read).
    pub fn status(&self, field: &str) -> String {
        super::status_field(self.pid, field).unwrap_or_default()
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
        drop(self.stdin.take());
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
