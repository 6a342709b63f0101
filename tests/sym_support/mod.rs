//! What the symbol tests share: building C fixtures with `cc`, a target
//! process with a ready handshake that is killed and reaped on drop, and
//! running the real `reach` binary with a deadline.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

pub const DEADLINE: Duration = Duration::from_secs(30);

/// A fresh, empty directory for one test's build products.
pub fn workdir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("sym")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Run a compiler (`cc`, `musl-gcc`) with `args`; panic with its output.
pub fn compile(compiler: &str, args: &[&str]) {
    let out = Command::new(compiler)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{compiler}: {e}"));
    assert!(
        out.status.success(),
        "{compiler} {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `sym_host`, built into `dir`.
pub fn build_host(dir: &Path) -> PathBuf {
    let out = dir.join("sym_host");
    let src = fixture("sym_host.c");
    compile(
        "cc",
        &[
            "-O0",
            "-o",
            out.to_str().unwrap(),
            src.to_str().unwrap(),
            "-ldl",
        ],
    );
    out
}

/// A shared library `dir/file` whose `func()` returns `value`; `pad` puts
/// 8 KiB of code before it.
pub fn build_lib(dir: &Path, file: &str, func: &str, value: i64, pad: bool) -> PathBuf {
    let out = dir.join(file);
    let src = fixture("sym_lib.c");
    let func = format!("-DFUNC={func}");
    let value = format!("-DVALUE={value}");
    let mut args = vec![
        "-shared",
        "-fPIC",
        "-O1",
        &func,
        &value,
        "-o",
        out.to_str().unwrap(),
        src.to_str().unwrap(),
    ];
    if pad {
        args.push("-DPAD");
    }
    compile("cc", &args);
    out
}

/// A running fixture: its stdout lines arrive through a channel, so every
/// wait has a deadline. Killed and reaped on drop.
pub struct Target {
    child: std::process::Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Target {
    /// Start `cmd` and wait for its line starting with `ready`.
    pub fn start(mut cmd: Command) -> (Target, String) {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut target = Target {
            stdin: child.stdin.take(),
            child,
            lines: rx,
        };
        let ready = target.line();
        assert!(ready.starts_with("ready"), "expected ready, got {ready:?}");
        (target, ready)
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The next line the target prints, within the deadline.
    pub fn line(&mut self) -> String {
        self.lines
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|e| panic!("no line from the target: {e}"))
    }

    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `reach -p PID -e EXPR` (each of `exprs` in order) with a deadline.
pub fn reach(pid: i32, exprs: &[&str]) -> Output {
    reach_with(&[], pid, exprs)
}

/// The same, run through `wrapper` (say, `setpriv` to another user).
pub fn reach_with(wrapper: &[&str], pid: i32, exprs: &[&str]) -> Output {
    let mut cmd = match wrapper {
        [] => Command::new(env!("CARGO_BIN_EXE_reach")),
        [program, args @ ..] => {
            let mut cmd = Command::new(program);
            cmd.args(args).arg(env!("CARGO_BIN_EXE_reach"));
            cmd
        }
    };
    cmd.arg("-p").arg(pid.to_string());
    for e in exprs {
        cmd.arg("-e").arg(e);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = child.id() as i32;
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // Our own child, not yet reaped: its waiter is still in wait.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(id),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("reach -p {pid} {exprs:?} did not finish within {DEADLINE:?}");
        }
    }
}

/// `reach`'s stdout, trimmed; panics with its stderr if it failed.
pub fn reach_ok(pid: i32, exprs: &[&str]) -> String {
    let out = reach(pid, exprs);
    assert!(
        out.status.success(),
        "reach {exprs:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `reach`'s stderr; panics if it succeeded.
pub fn reach_err(pid: i32, exprs: &[&str]) -> String {
    let out = reach(pid, exprs);
    assert!(
        !out.status.success(),
        "reach {exprs:?} should have failed, printed {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// `count` libraries `dir/libmany_N.so`, each with `many_fn_N()` returning
/// N, built two at a time.
pub fn build_many(dir: &Path, count: usize) -> Vec<PathBuf> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let file = format!("libmany_{i}.so");
                    build_lib(dir, &file, &format!("many_fn_{i}"), i as i64, false);
                }
            });
        }
    });
    (0..count)
        .map(|i| dir.join(format!("libmany_{i}.so")))
        .collect()
}
