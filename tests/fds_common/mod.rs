//! Fixtures for the fds tests: `fixture.py` beside this file, run as a
//! child that prints a JSON line when its descriptors are set up (the
//! ready handshake) and answers commands on stdin. The guard kills and
//! reaps it on drop. Every wait has a deadline; nothing sleeps.

#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn fixture_path() -> String {
    format!("{}/tests/fds_common/fixture.py", env!("CARGO_MANIFEST_DIR"))
}

pub fn reach_bin() -> &'static str {
    env!("CARGO_BIN_EXE_reach")
}

pub struct Fixture {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// What the fixture said when it was ready.
    pub info: Value,
    /// The target's pid (the fixture's own report: under `unshare` it is
    /// the same process, exec'ed).
    pub pid: i32,
}

impl Fixture {
    /// `python3 fixture.py ARGS…`, optionally behind a prefix such as
    /// `unshare -n`.
    pub fn spawn(prefix: &[&str], args: &[&str]) -> Fixture {
        let fixture = fixture_path();
        let mut argv: Vec<&str> = prefix.to_vec();
        argv.push("python3");
        argv.push(&fixture);
        argv.extend_from_slice(args);
        let mut child = Command::new(argv[0])
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut f = Fixture {
            child,
            stdin,
            lines,
            info: Value::Null,
            pid: 0,
        };
        f.info = f.next_line();
        f.pid = f.info["pid"].as_i64().expect("fixture reports its pid") as i32;
        f
    }

    /// The next JSON line from the fixture, within the deadline.
    pub fn next_line(&mut self) -> Value {
        let line = match self.lines.recv_timeout(DEADLINE) {
            Ok(line) => line,
            Err(e) => {
                let status = self.child.try_wait();
                panic!("fixture said nothing within {DEADLINE:?} ({e}); status {status:?}")
            }
        };
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("fixture line {line:?}: {e}"))
    }

    /// Send a command, return its answer.
    pub fn ask(&mut self, command: &str) -> Value {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
        self.next_line()
    }

    /// An fd number the fixture reported at `pointer` (`/listen/fd`).
    pub fn fd(&self, pointer: &str) -> i32 {
        self.info
            .pointer(pointer)
            .and_then(Value::as_i64)
            .unwrap_or_else(|| panic!("fixture info has no {pointer}: {}", self.info))
            as i32
    }

    pub fn tracer_pid(&self) -> i32 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("TracerPid:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `reach ARGS…` with a deadline; (status, stdout, stderr).
pub fn reach(args: &[&str]) -> (i32, String, String) {
    let child = Command::new(reach_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run reach");
    let pid = child.id() as i32;
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(DEADLINE) {
        Ok(out) => out.expect("reach output"),
        Err(_) => {
            // Kill the reach this test started, by its pid.
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("reach {args:?} did not finish within {DEADLINE:?}");
        }
    };
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether `unshare -n` works here (root, or user namespaces allowed).
pub fn can_unshare_net() -> bool {
    Command::new("unshare")
        .args(["-n", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
