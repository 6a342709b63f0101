//! A thread's registers and the top of its stack.
//!
//! A thread blocked in a system call is not running user code: its
//! instruction and stack pointers are in `/proc/PID/task/TID/syscall`, and
//! its stack does not move until it returns. That is read with no stop,
//! and checked: the syscall line and the thread's count of context
//! switches read again after the copy must be unchanged (had it run in
//! between, it would have been switched out again to block). Its frame
//! pointer cannot be had that way; where the walk needs it, the caller
//! stops the thread instead ([`stopped`]).

use super::super::engine::{Engine, Options, Snapshot};
use super::super::{Result, procinfo};

/// How much of a blocked thread's stack is copied: most stacks fit; a walk
/// reads what lies beyond from the live process, which does not move while
/// the thread stays blocked.
const COPY: usize = 16 << 10;
/// Copied while the thread is held: the stop lasts as long as the copy.
/// Deeper frames, read after it is let go, are its callers', which do not
/// change while it runs in the frames inside them.
const COPY_STOPPED: usize = 32 << 10;

/// The `(sp, pc)` of a thread blocked in a system call, and the line they
/// came from; `None` if it is running or not in one.
fn blocked_at(pid: i32, tid: i32) -> Option<(u64, u64, String)> {
    let line = procinfo::read_proc(&format!("/proc/{pid}/task/{tid}/syscall")).ok()?;
    let words: Vec<&str> = line.split_ascii_whitespace().collect();
    // `NR ARG1 … ARG6 SP PC`; `-1 SP PC` is a thread stopped outside a
    // system call, which may be resumed at any moment by another tracer.
    if words.len() != 9 || words[0].starts_with('-') {
        return None;
    }
    let hex = |w: &str| u64::from_str_radix(w.strip_prefix("0x")?, 16).ok();
    Some((hex(words[7])?, hex(words[8])?, line))
}

/// Voluntary and involuntary context switches of a thread so far.
fn switches(pid: i32, tid: i32) -> Option<(u64, u64)> {
    let status = procinfo::task_status(pid, tid)?;
    Some((
        status.voluntary_ctxt_switches?,
        status.nonvoluntary_ctxt_switches?,
    ))
}

/// A consistent copy of a blocked thread's stack, taken with no stop.
pub fn without_stop(pid: i32, tid: i32) -> Option<Snapshot> {
    for _ in 0..2 {
        let before = switches(pid, tid)?;
        let (sp, pc, line) = blocked_at(pid, tid)?;
        let snapshot = Snapshot::copy(pid, pc, sp, None, COPY);
        let still = blocked_at(pid, tid).is_some_and(|(_, _, again)| again == line);
        if still && switches(pid, tid) == Some(before) {
            return Some(snapshot);
        }
    }
    None
}

/// The thread stopped alone for the copy, then let go (see
/// [`Engine::snapshot`]).
pub fn stopped(engine: &mut Engine, tid: i32, opts: &Options) -> Result<Snapshot> {
    engine.snapshot(tid, COPY_STOPPED, opts)
}
