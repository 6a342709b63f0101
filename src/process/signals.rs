//! How a target treats each signal, from the masks in
//! `/proc/PID/status` and `/proc/PID/task/TID/status`. Never stops it.

use super::procinfo;
use super::{Error, Result};

/// The disposition and state of one signal in the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    pub number: i32,
    /// `SIGPIPE`, …; `SIGRTMIN+3` for real-time signals, as `kill -l`.
    pub name: String,
    /// Its handler is `SIG_IGN` (`SigIgn`).
    pub ignored: bool,
    /// It has a handler of the program's own (`SigCgt`).
    pub caught: bool,
    /// Blocked by every thread (`SigBlk` of each): it cannot be delivered
    /// until one unblocks it.
    pub blocked: bool,
    /// The threads that block it.
    pub blocked_in: Vec<i32>,
    /// Pending for the process (`ShdPnd`) or for one of its threads
    /// (`SigPnd`).
    pub pending: bool,
}

/// The masks of one `status` file.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Masks {
    pub pending: u64,
    pub shared_pending: u64,
    pub blocked: u64,
    pub ignored: u64,
    pub caught: u64,
}

impl From<&procinfo::Status> for Masks {
    fn from(s: &procinfo::Status) -> Masks {
        Masks {
            pending: s.sigpnd,
            shared_pending: s.shdpnd,
            blocked: s.sigblk,
            ignored: s.sigign,
            caught: s.sigcgt,
        }
    }
}

/// Signals 1 to 64 of `pid`.
pub fn list(pid: i32) -> Result<Vec<Signal>> {
    let status = procinfo::status_at(&format!("/proc/{pid}"))
        .ok_or_else(|| Error::NoSuchProcess(format!("pid {pid}")))?;
    let process = Masks::from(&status);
    let mut per_thread = Vec::new();
    for tid in procinfo::tasks(pid)? {
        // A thread that exits meanwhile blocks nothing.
        if let Some(s) = procinfo::task_status(pid, tid) {
            per_thread.push((tid, Masks::from(&s)));
        }
    }
    if per_thread.is_empty() {
        per_thread.push((pid, process));
    }
    Ok(combine(&process, &per_thread))
}

fn combine(process: &Masks, threads: &[(i32, Masks)]) -> Vec<Signal> {
    (1..=64)
        .map(|number| {
            let bit = 1u64 << (number - 1);
            let blocked_in: Vec<i32> = threads
                .iter()
                .filter(|(_, m)| m.blocked & bit != 0)
                .map(|(tid, _)| *tid)
                .collect();
            let pending = process.shared_pending & bit != 0
                || threads.iter().any(|(_, m)| m.pending & bit != 0);
            Signal {
                number,
                name: signal_name(number),
                ignored: process.ignored & bit != 0,
                caught: process.caught & bit != 0,
                blocked: !threads.is_empty() && blocked_in.len() == threads.len(),
                blocked_in,
                pending,
            }
        })
        .collect()
}

/// The name `kill -l` gives signal `number` on x86-64 Linux with glibc
/// (which keeps 32 and 33 for itself, so `SIGRTMIN` is 34).
pub fn signal_name(number: i32) -> String {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    match number {
        1..=31 => NAMES[number as usize - 1].to_string(),
        34 => "SIGRTMIN".into(),
        35..=49 => format!("SIGRTMIN+{}", number - 34),
        50..=63 => format!("SIGRTMAX-{}", 64 - number),
        64 => "SIGRTMAX".into(),
        _ => format!("SIG{number}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_by_signal() {
        let m = Masks {
            pending: 0,
            shared_pending: 0x100,
            blocked: 0x10000,
            ignored: 0x1000,
            caught: 0x1_8000_0002,
        };
        let sigs = combine(&m, &[(10, m)]);
        let by = |name: &str| sigs.iter().find(|s| s.name == name).unwrap().clone();
        assert!(by("SIGPIPE").ignored);
        assert!(!by("SIGPIPE").caught);
        assert!(by("SIGINT").caught);
        assert!(by("SIGKILL").pending);
        assert!(by("SIGCHLD").blocked);
        assert_eq!(by("SIGCHLD").blocked_in, vec![10]);
        assert!(!by("SIGTERM").blocked && !by("SIGTERM").pending);
        assert!(sigs[31].caught && sigs[32].caught); // glibc's 32 and 33
        assert_eq!(sigs.len(), 64);
    }

    #[test]
    fn blocked_means_blocked_everywhere() {
        let one = Masks {
            blocked: 1 << 12,
            ..Masks::default()
        };
        let sigs = combine(&one, &[(1, one), (2, Masks::default())]);
        assert!(!sigs[12].blocked);
        assert_eq!(sigs[12].blocked_in, vec![1]);
    }

    #[test]
    fn names_as_kill_l() {
        assert_eq!(signal_name(13), "SIGPIPE");
        assert_eq!(signal_name(34), "SIGRTMIN");
        assert_eq!(signal_name(40), "SIGRTMIN+6");
        assert_eq!(signal_name(60), "SIGRTMAX-4");
        assert_eq!(signal_name(64), "SIGRTMAX");
        assert_eq!(signal_name(32), "SIG32");
    }

    #[test]
    fn reads_own_signals() {
        let sigs = list(std::process::id() as i32).unwrap();
        assert_eq!(sigs.len(), 64);
    }
}
