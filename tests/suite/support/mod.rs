//! The one test harness: everything the integration tests share.
//!
//! - `target.rs`: a spawned target process, ready when it says so (a
//!   `ready …` line, or a JSON line), killed and reaped on drop;
//! - `reach.rs`: the real `reach` binary run with a deadline, and the
//!   assertions on what it printed and what it left behind;
//! - `build.rs`: C fixtures compiled once per test run, atomically;
//! - `procfs.rs`: the `/proc` facts tests assert on;
//! - `checks.rs`: what the reliability tests measure (registers checked by
//!   the target itself, signals counted, a deterministic PRNG).
//!
//! Two rules hold everywhere. Nothing sleeps for a fixed time: every wait
//! is for a condition, with a deadline ([`wait_until`]), so a loaded
//! machine only makes tests slower. And no descriptor of the test process
//! leaks into a child: every process is started through [`spawn`], which
//! excludes the moments ([`no_forks`]) when the test process holds a
//! descriptor that a child must not inherit even briefly (an executable
//! being written, a peer socket about to be reset, a pty before it is
//! marked close-on-exec).

#![allow(dead_code, unused_imports)]

mod build;
mod checks;
mod procfs;
mod reach;
mod target;

pub use build::*;
pub use checks::*;
pub use procfs::*;
pub use reach::*;
pub use target::*;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// How long a fixture may take to say it is ready.
pub const READY_DEADLINE: Duration = Duration::from_secs(30);
/// How long one `reach` run may take before the test kills it and fails.
pub const REACH_DEADLINE: Duration = Duration::from_secs(60);
/// How long to wait for a state change in the target (a thread blocking, a
/// counter advancing, a line of output).
pub const STATE_DEADLINE: Duration = Duration::from_secs(30);

/// Blocks the current thread for `d`: a receive with a timeout on a
/// channel nobody sends on. Only for polling loops; never as a wait for
/// an effect (use [`wait_until`]).
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

/// Held shared by every `fork`+`exec` of the test process, exclusively
/// while it holds a descriptor no child may inherit.
static FORKS: RwLock<()> = RwLock::new(());

/// Excludes every `fork` of the test process while the guard lives. A
/// child between `fork` and `exec` holds a copy of every descriptor, even
/// close-on-exec ones: a file open for writing makes `exec` of it fail
/// with ETXTBSY, and a socket closed meanwhile is not really closed (no
/// RST is sent) until that child execs.
pub fn no_forks() -> RwLockWriteGuard<'static, ()> {
    FORKS.write().unwrap_or_else(|e| e.into_inner())
}

fn forks_allowed() -> RwLockReadGuard<'static, ()> {
    FORKS.read().unwrap_or_else(|e| e.into_inner())
}

/// Starts `cmd` the way every test process is started: signal
/// dispositions the test runner may have inherited (a shell running it in
/// the background ignores SIGINT and SIGQUIT) are reset to their
/// defaults, and the child is killed if the test thread that started it
/// dies without cleaning up. `Command::spawn` returns once the child has
/// exec'd, so the fork lock covers the whole fork-to-exec stretch.
pub fn spawn(cmd: &mut Command) -> std::io::Result<Child> {
    // SAFETY: only async-signal-safe calls (sigaction, prctl) between
    // fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            for sig in 1..=64 {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let _forks = forks_allowed();
    cmd.spawn()
}

/// Runs `cmd` to completion (stdin closed, output captured), at most
/// `deadline`; kills it and fails the test after that.
pub fn output(cmd: &mut Command, deadline: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = spawn(cmd).unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(deadline) {
        Ok(out) => out.expect("wait for the child"),
        Err(_) => {
            // SAFETY: our own child, not yet reaped (its waiter still waits).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{cmd:?} did not finish within {deadline:?}");
        }
    }
}

/// Whether `program` is on the PATH.
pub fn have(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|dir| std::fs::metadata(dir.join(program)).is_ok_and(|m| m.is_file()))
    })
}

/// Whether `unshare -n` works here (root, or user namespaces allowed).
pub fn can_unshare_net() -> bool {
    have("unshare")
        && output(Command::new("unshare").args(["-n", "true"]), REACH_DEADLINE)
            .status
            .success()
}

/// Whether the tests run as root (most need it, or CAP_SYS_PTRACE).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
