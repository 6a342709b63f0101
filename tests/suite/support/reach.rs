//! The real `reach` binary, run with a deadline, and the assertions on
//! what it printed and what it left behind in the target.

use super::{REACH_DEADLINE, STATE_DEADLINE, Target, spawn, state, task_status, tids, wait_until};
use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

pub fn reach_bin() -> &'static str {
    env!("CARGO_BIN_EXE_reach")
}

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
    let mut cmd = Command::new(reach_bin());
    cmd.args(args);
    spawn_command(cmd, None)
}

/// Starts `cmd` (a reach command line, possibly behind a wrapper such as
/// `setpriv`), with `input` (if any) as its whole stdin.
pub fn spawn_command(mut cmd: Command, input: Option<&str>) -> RunningReach {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = spawn(&mut cmd).expect("spawn reach");
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
    let mut cmd = Command::new(reach_bin());
    cmd.args(args);
    spawn_command(cmd, Some(input)).finish(REACH_DEADLINE)
}

/// Runs `WRAPPER… reach ARGS…` (say, `setpriv` to another user).
pub fn reach_wrapped(wrapper: &[&str], args: &[&str]) -> ReachOutput {
    let mut cmd = Command::new(wrapper[0]);
    cmd.args(&wrapper[1..]).arg(reach_bin()).args(args);
    spawn_command(cmd, None).finish(REACH_DEADLINE)
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

/// Runs `reach -p PID --json -e EXPR`, requires success and returns the
/// value, parsed.
pub fn eval_json(pid: i32, expr: &str) -> serde_json::Value {
    let out = reach(&["-p", &pid.to_string(), "--json", "-e", expr]);
    assert_ok(&out);
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{expr}: not JSON ({e}): {}", out.stdout))
}

/// Runs `reach -p PID -e E1 -e E2 …`.
pub fn evals(pid: i32, exprs: &[&str]) -> ReachOutput {
    let pid = pid.to_string();
    let mut args = vec!["-p", pid.as_str()];
    for e in exprs {
        args.extend(["-e", e]);
    }
    reach(&args)
}

/// [`evals`], required to succeed; its stdout, trimmed.
pub fn evals_ok(pid: i32, exprs: &[&str]) -> String {
    let out = evals(pid, exprs);
    assert_ok(&out);
    out.stdout.trim().to_string()
}

/// [`evals`], required to fail; its stderr, trimmed.
pub fn evals_err(pid: i32, exprs: &[&str]) -> String {
    let out = evals(pid, exprs);
    assert_ne!(out.code(), Some(0), "should have failed: {out:#?}");
    assert_no_panic(&out);
    out.stderr.trim().to_string()
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
pub fn assert_untouched(t: &Target) {
    assert_running(t);
    assert_eq!(eval_ok(t.pid, r#"call("getpid", [])"#), t.pid.to_string());
    assert!(t.alive(), "pid {} died after a follow-up call", t.pid);
}

/// Alive, not stopped, and untraced in every thread. (A thread reach
/// seized just as it went to sleep stops when it wakes and is let go
/// then: a stop that ends on its own within the deadline is not one left
/// behind.)
pub fn assert_running(t: &Target) {
    assert!(t.alive(), "pid {} died", t.pid);
    let running = wait_until(STATE_DEADLINE, || {
        state(t.pid).is_some_and(|s| s != 'T' && s != 't')
    });
    let s = state(t.pid).unwrap_or('?');
    assert!(running, "pid {} left in state {s}", t.pid);
    assert_untraced(t.pid);
}

/// Every task of `pid` has TracerPid 0 (waiting a little: the kernel
/// finishes a detach asynchronously only in odd cases, so this is quick).
pub fn assert_untraced(pid: i32) {
    let ok = wait_until(STATE_DEADLINE, || {
        tids(pid)
            .iter()
            .all(|&tid| task_status(pid, tid, "TracerPid").as_deref() == Some("0"))
    });
    assert!(ok, "pid {pid} still traced: {:?}", super::tracers(pid));
}
