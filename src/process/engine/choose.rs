//! Which thread an operation stops and runs on.
//!
//! The one the operator named, else a thread sleeping in an interruptible
//! system call (`S`), the main thread first: it stops at once, and its
//! system call resumes unchanged afterwards. Never a thread in
//! uninterruptible sleep (`D`, which includes a parent waiting for its
//! vfork child): it cannot stop until the kernel lets it go. A running
//! thread (`R`) only when no sleeping one is left: it stops at its next
//! return to user space. In a stopped process (`T`, every thread in
//! group-stop) the main thread. The main thread is looked at alone first,
//! so a process with thousands of threads costs one `/proc` read.
//!
//! Before all of these comes the thread the previous operation ran on, if
//! it is sleeping or running: right after reach let it go it is briefly
//! running on its way back into its system call, and operations made back
//! to back would otherwise wake a different, idle thread each time.

use crate::process::{Result, procinfo};
use crate::sys::ptrace::Tid;

/// The thread to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Choice {
    /// reach picks (see the module's rules).
    #[default]
    Auto,
    /// This thread, or nothing.
    Thread(Tid),
}

/// The threads to try, best first; `last` is the thread the previous
/// operation ran on.
pub fn candidates(pid: i32, choice: Choice, last: Option<Tid>) -> Result<Candidates> {
    let pending = match choice {
        Choice::Thread(tid) => {
            if procinfo::tgid(tid) != Some(pid) {
                return Err(super::EngineError::NoSuchThread { pid, tid }.into());
            }
            vec![tid]
        }
        Choice::Auto => {
            let last =
                last.filter(|&tid| matches!(procinfo::task_state(pid, tid), Some('S' | 'R')));
            match (last, procinfo::task_state(pid, pid)) {
                (Some(tid), _) => vec![tid],
                (None, Some('S')) => vec![pid],
                _ => Vec::new(),
            }
        }
    };
    Ok(Candidates {
        pid,
        scanned: matches!(choice, Choice::Thread(_)),
        pending,
        tried: Vec::new(),
    })
}

pub struct Candidates {
    pid: i32,
    scanned: bool,
    pending: Vec<Tid>,
    tried: Vec<Tid>,
}

impl Iterator for Candidates {
    type Item = Tid;

    fn next(&mut self) -> Option<Tid> {
        if self.pending.is_empty() && !self.scanned {
            self.scanned = true;
            self.pending = self.by_state();
        }
        if self.pending.is_empty() {
            return None;
        }
        let tid = self.pending.remove(0);
        self.tried.push(tid);
        Some(tid)
    }
}

impl Candidates {
    /// Every other usable thread, sleeping ones first, then running ones,
    /// then (a stopped process) stopped ones.
    fn by_state(&self) -> Vec<Tid> {
        let Ok(tids) = procinfo::tasks(self.pid) else {
            return Vec::new();
        };
        let mut ranked: Vec<(u8, bool, Tid)> = tids
            .into_iter()
            .filter(|t| !self.tried.contains(t))
            .filter_map(|tid| {
                // (io_uring workers run no user code and cannot be traced.)
                let rank = match procinfo::user_task_state(self.pid, tid)? {
                    'S' => 0,
                    'R' => 1,
                    'T' => 2,
                    // Held by another tracer: its refusal names the tracer.
                    't' => 3,
                    // D (and vfork waits), zombies, dead.
                    _ => return None,
                };
                Some((rank, tid != self.pid, tid))
            })
            .collect();
        ranked.sort_unstable();
        ranked.into_iter().map(|(_, _, tid)| tid).collect()
    }
}
