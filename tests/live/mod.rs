//! Live processes for the REPL and playbook tests: a target guard with a
//! ready handshake (killed and reaped on drop), the real `reach` binary run
//! with a deadline, and the `/proc` facts the tests assert on.
//!
//! Nothing here sleeps for a fixed time: every wait is for a condition, with
//! a deadline.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// How long a target may take to say "ready", or to change state.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Wait `d` without a fixed sleep call: a receive on a channel nobody sends on.
pub fn pause(d: Duration) {
    let (_tx, rx) = mpsc::channel::<()>();
    let _ = rx.recv_timeout(d);
}

/// Poll `cond` until it holds or `timeout` passes; whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        pause(Duration::from_millis(10));
    }
}

/// A spawned target. Its stdout is read line by line on a helper thread;
/// its stdin stays open. Dropping it kills and reaps it.
pub struct Proc {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// The words after "ready" on the ready line.
    pub ready: Vec<String>,
    pub pid: i32,
}

impl Proc {
    /// Spawn `cmd` and wait for a line starting with "ready".
    pub fn spawn(cmd: Command) -> Proc {
        Proc::spawn_until(cmd, "ready")
    }

    /// One of the programs in `examples/`, run with python3; ready when it
    /// prints a line starting with `ready`.
    pub fn example(name: &str, args: &[&str], ready: &str) -> Proc {
        let mut cmd = Command::new("python3");
        cmd.arg("-u")
            .arg(manifest_dir().join("examples").join(name))
            .args(args);
        Proc::spawn_until(cmd, ready)
    }

    /// Spawn `cmd` and wait for a line starting with `ready`; the words of
    /// that line after it are kept in `self.ready`.
    pub fn spawn_until(mut cmd: Command, ready: &str) -> Proc {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        // If the test binary dies without running Drop, take the target along.
        // SAFETY: prctl only touches the child.
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
        let mut proc = Proc {
            stdin: child.stdin.take(),
            child,
            lines,
            ready: Vec::new(),
            pid,
        };
        let line = proc
            .line_matching(DEADLINE, |l| l.starts_with(ready))
            .unwrap_or_else(|| panic!("the target never said {ready:?}"));
        proc.ready = line[ready.len()..]
            .split_whitespace()
            .map(String::from)
            .collect();
        proc
    }

    /// A Python 3 program given as source.
    pub fn python(source: &str, args: &[&str]) -> Proc {
        let mut cmd = Command::new("python3");
        cmd.arg("-u").arg("-c").arg(source).args(args);
        Proc::spawn(cmd)
    }

    /// The next line of output matching `pred` within `timeout`.
    pub fn line_matching(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return Some(line),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Write a line to the target's stdin.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Has it exited? (Reaps it if so.) Its exit status or signal.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Wait for it to exit within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut status = None;
        wait_until(timeout, || {
            status = self.exited();
            status.is_some()
        });
        status
    }

    /// A field of `/proc/PID/status`, e.g. "TracerPid" or "SigIgn".
    pub fn status(&self, field: &str) -> String {
        status_field(self.pid, field).unwrap_or_default()
    }

    /// The one-letter state (`S`, `R`, `t`, `T`, `Z`, …).
    pub fn state(&self) -> char {
        self.status("State").chars().next().unwrap_or('?')
    }

    /// Running or sleeping, not stopped or traced, and nobody traces it.
    pub fn assert_untouched(&self) {
        let state = self.state();
        assert!(
            matches!(state, 'S' | 'R' | 'D'),
            "target is in state {state}"
        );
        assert_eq!(self.status("TracerPid"), "0", "target still traced");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn status_field(pid: i32, field: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

/// Whether signal `sig` is set in the hex mask of a `/proc/PID/status` field.
pub fn in_mask(mask: &str, sig: i32) -> bool {
    u64::from_str_radix(mask, 16).is_ok_and(|m| m & (1 << (sig - 1)) != 0)
}

pub fn reach_bin() -> &'static str {
    env!("CARGO_BIN_EXE_reach")
}

pub fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory unique to this call.
pub fn scratch(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{tag}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Run `reach ARGS` (stdin closed) and wait for it, at most a minute.
pub fn reach(args: &[&str]) -> Output {
    let child = Command::new(reach_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run reach");
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.expect("wait for reach"),
        Err(_) => {
            // SAFETY: our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("reach {args:?} did not finish within a minute");
        }
    }
}

pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Build `tests/fixtures/NAME.c` with `flags` (once per test binary) into
/// the test scratch area; the path of the program.
pub fn fixture(name: &str, flags: &[&str]) -> PathBuf {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let dir = scratch("fixtures");
    let out = dir.join(name);
    let result = Command::new("cc")
        .args(["-O1", "-Wall", "-o"])
        .arg(&out)
        .arg(manifest_dir().join(format!("tests/fixtures/{name}.c")))
        .args(flags)
        .output()
        .expect("run cc");
    assert!(
        result.status.success(),
        "building {name} failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    built.insert(name.to_string(), out.clone());
    out
}

/// The system call number `pid`'s main thread is blocked in, if any
/// (`/proc/PID/syscall`; see proc_pid_syscall(5)).
pub fn blocked_in(pid: i32) -> Option<i64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    text.split_whitespace()
        .next()?
        .parse()
        .ok()
        .filter(|nr| *nr >= 0)
}

/// How many of `pid`'s TCP sockets are in state `state` (the hex code of
/// `/proc/net/tcp`: 01 ESTABLISHED, 08 CLOSE_WAIT, 0A LISTEN), read from
/// its own network namespace.
pub fn tcp_count(pid: i32, state: &str) -> usize {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| {
                let link = std::fs::read_link(e.ok()?.path()).ok()?;
                let link = link.to_str()?;
                Some(
                    link.strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .to_string(),
                )
            })
            .collect()
        })
        .unwrap_or_default();
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|t| std::fs::read_to_string(format!("/proc/{pid}/net/{t}")).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        })
        .filter(|w| w.len() > 9 && w[3] == state && inodes.contains(&w[9]))
        .count()
}
