//! What `/proc` says about a process: identity, state, threads, tracer —
//! the one reader of a target's `/proc` files. `stat` and `status` are
//! parsed by the procfs crate into typed values ([`task_stat`],
//! [`task_status`]); the reads are reach's own (one or two `read`s of a
//! 16 KiB buffer, [`read_proc`]).

use super::{Error, Result};
use procfs::FromRead;
pub use procfs::process::{Stat, Status};

/// `PF_KTHREAD` in `/proc/PID/stat`'s flags (include/linux/sched.h).
const PF_KTHREAD: u64 = 0x0020_0000;

/// Who a pid is right now.
#[derive(Debug, Clone)]
pub struct Identity {
    pub pid: i32,
    pub name: String,
    /// Start time in clock ticks since boot: with the pid, names one process.
    pub start_time: u64,
}

/// Check that `pid` is a live 64-bit user-space process other than reach
/// itself. (Whether another tracer holds it is found when an operation
/// needs one of its threads: it may hold only some, or only for a moment.)
pub fn check_traceable(pid: i32) -> Result<Identity> {
    if pid == std::process::id() as i32 {
        return Err(Error::OwnProcess(pid));
    }
    if pid <= 0 {
        return Err(Error::NoSuchProcess(format!("pid {pid}")));
    }
    let stat = task_stat(pid, pid).ok_or_else(|| Error::NoSuchProcess(format!("pid {pid}")))?;
    // A thread id: /proc/TID exists for threads too, but is not listed.
    match tgid(pid) {
        Some(tgid) if tgid != pid => {
            return Err(Error::NoSuchProcess(format!(
                "{pid} (a thread of {tgid}; use that pid)"
            )));
        }
        _ => {}
    }
    if u64::from(stat.flags) & PF_KTHREAD != 0 {
        return Err(Error::KernelThread(pid));
    }
    // A zombie main thread with live threads is a main thread that called
    // pthread_exit: the process lives on.
    if matches!(stat.state, 'Z' | 'X') && all_gone(pid) {
        return Err(Error::Zombie(pid));
    }
    if is_32_bit(pid) {
        return Err(super::engine::EngineError::ThirtyTwoBit(pid).into());
    }
    Ok(Identity {
        pid,
        name: stat.comm,
        start_time: stat.starttime,
    })
}

/// Whether `pid` runs a 32-bit program (the ELF class of its executable,
/// byte 4 of the header: 1). Unreadable: assume not; the registers tell
/// once a thread is stopped.
fn is_32_bit(pid: i32) -> bool {
    use std::io::Read;
    let mut header = [0u8; 5];
    std::fs::File::open(format!("{}/exe", dir(pid)))
        .and_then(|mut f| f.read_exact(&mut header))
        .is_ok_and(|()| header[..4] == *b"\x7fELF" && header[4] == 1)
}

/// What tells one program image of a process from the next: an exec
/// keeps the pid and start time but makes a new address space, whose
/// layout `stat` shows (start and end of code and data, the stack, the
/// heap, the arguments and environment: fields 26–28 and 45–50).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Image([u64; 9]);

/// The image `pid` runs now, from a live thread's `stat` (a zombie main
/// thread shows no address space); `None` if no thread is left.
pub fn image(pid: i32) -> Option<Image> {
    let mut stat = task_stat(pid, pid)?;
    if matches!(stat.state, 'Z' | 'X') {
        let tid = tasks(pid).ok()?.into_iter().find(|&t| !is_gone(pid, t))?;
        stat = task_stat(pid, tid)?;
    }
    Some(Image([
        stat.startcode,
        stat.endcode,
        stat.startstack,
        stat.start_data.unwrap_or(0),
        stat.end_data.unwrap_or(0),
        stat.start_brk.unwrap_or(0),
        stat.arg_start.unwrap_or(0),
        stat.arg_end.unwrap_or(0),
        stat.env_start.unwrap_or(0),
    ]))
}

/// The start time of `pid`, if it exists (field 22 of its `stat`).
pub fn start_time(pid: i32) -> Option<u64> {
    Some(task_stat(pid, pid)?.starttime)
}

/// The `/proc` directory that shows `pid`'s memory, descriptors and
/// namespaces: `/proc/PID`, unless its main thread has exited
/// (`pthread_exit`) while other threads run on — a zombie leader shows
/// empty maps and no descriptors, so then it is a live thread's
/// `/proc/PID/task/TID`, which shows the same process-wide things.
pub fn dir(pid: i32) -> String {
    let leader_gone = task_state(pid, pid).is_none_or(|s| matches!(s, 'Z' | 'X'));
    if leader_gone
        && let Ok(tids) = tasks(pid)
        && let Some(tid) = tids.into_iter().find(|&t| !is_gone(pid, t))
    {
        return format!("/proc/{pid}/task/{tid}");
    }
    format!("/proc/{pid}")
}

/// A whole `/proc` file. `/proc` files report size 0, so a plain
/// `read_to_string` starts with a 32-byte read and doubles: a dozen
/// system calls for a `status` file. Reads of 16 KiB get most of them in
/// one (a short read is not the end: seq_file never splits a line).
pub fn read_proc(path: &str) -> std::io::Result<String> {
    read_proc_bytes(path).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// [`read_proc`], as bytes.
pub fn read_proc_bytes(path: &str) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    const CHUNK: usize = 16 * 1024;
    let mut file = std::fs::File::open(path)?;
    let mut buf = Vec::with_capacity(CHUNK);
    loop {
        let at = buf.len();
        buf.resize(at + CHUNK, 0);
        let n = file.read(&mut buf[at..])?;
        buf.truncate(at + n);
        if n == 0 {
            break;
        }
    }
    Ok(buf)
}

/// `op` on `/proc/PID`, and, if that fails because the main thread has
/// exited, on [`dir`]: the common case costs nothing more.
pub fn in_dir<T>(pid: i32, op: impl Fn(&str) -> std::io::Result<T>) -> std::io::Result<T> {
    let main = format!("/proc/{pid}");
    match op(&main) {
        Ok(v) => Ok(v),
        Err(e) => match dir(pid) {
            d if d != main => op(&d),
            _ => Err(e),
        },
    }
}

/// `/proc/PID/FILE` of a per-process file that is never empty in a live
/// process (`maps`, `auxv`): read from [`dir`] when the main thread's is
/// empty or gone, which costs nothing more in the common case.
pub fn read_process_file(pid: i32, file: &str) -> std::io::Result<Vec<u8>> {
    match read_proc_bytes(&format!("/proc/{pid}/{file}")) {
        Ok(bytes) if !bytes.is_empty() => Ok(bytes),
        first => match dir(pid) {
            d if d != format!("/proc/{pid}") => read_proc_bytes(&format!("{d}/{file}")),
            _ => first,
        },
    }
}

pub fn comm(pid: i32) -> Option<String> {
    let s = read_proc(&format!("/proc/{pid}/comm")).ok()?;
    Some(s.trim_end().to_string())
}

/// The `Key: value` lines of `/proc/PID/status`, in order (see proc(5)).
pub fn status_fields(pid: i32) -> Result<Vec<(String, String)>> {
    let text = read_proc(&format!("/proc/{pid}/status")).map_err(|_| Error::TargetExited(pid))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect())
}

/// Thread ids of `pid` in directory order.
pub fn tasks(pid: i32) -> Result<Vec<i32>> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task")).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NoSuchProcess(format!("pid {pid}")),
        std::io::ErrorKind::PermissionDenied => Error::NotPermitted {
            pid,
            access: Access::ThreadState,
        },
        _ => Error::Proc {
            pid,
            msg: e.to_string(),
        },
    })?;
    Ok(dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect())
}

/// `/proc/PID/task/TID/stat`, parsed. (The command name in it may hold
/// anything, parentheses included: procfs splits after its last `)`.)
pub fn task_stat(pid: i32, tid: i32) -> Option<Stat> {
    let bytes = read_proc_bytes(&format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    Stat::from_read(&bytes[..]).ok()
}

/// The `status` file in the `/proc` directory `dir` ([`dir`]), parsed.
pub fn status_at(dir: &str) -> Option<Status> {
    let bytes = read_proc_bytes(&format!("{dir}/status")).ok()?;
    Status::from_read(&bytes[..]).ok()
}

/// `/proc/PID/task/TID/status`, parsed.
pub fn task_status(pid: i32, tid: i32) -> Option<Status> {
    let bytes = read_proc_bytes(&format!("/proc/{pid}/task/{tid}/status")).ok()?;
    Status::from_read(&bytes[..]).ok()
}

/// The state letter of one thread (`R`, `S`, `D`, `T`, `t`, `Z`, …).
pub fn task_state(pid: i32, tid: i32) -> Option<char> {
    Some(task_stat(pid, tid)?.state)
}

/// `PF_IO_WORKER` (include/linux/sched.h): an io_uring worker, a thread of
/// the process that runs only kernel code and cannot be traced.
const PF_IO_WORKER: u64 = 0x10;

/// The state letter of one thread, unless it is an io_uring worker.
pub fn user_task_state(pid: i32, tid: i32) -> Option<char> {
    let stat = task_stat(pid, tid)?;
    (u64::from(stat.flags) & PF_IO_WORKER == 0).then_some(stat.state)
}

/// Thread `tid` of `pid` no longer runs: gone, or a zombie.
pub fn is_gone(pid: i32, tid: i32) -> bool {
    task_state(pid, tid).is_none_or(|s| matches!(s, 'Z' | 'X'))
}

/// The process (thread group) `tid` belongs to.
pub fn tgid(tid: i32) -> Option<i32> {
    Some(task_status(tid, tid)?.tgid)
}

/// No thread of `pid` runs any more (cheap when the leader does).
pub fn all_gone(pid: i32) -> bool {
    exiting(pid, pid) && tasks(pid).is_ok_and(|tids| tids.iter().all(|&t| exiting(pid, t)))
}

/// `PF_EXITING` (include/linux/sched.h): set as a thread starts to exit,
/// before it shows as a zombie.
const PF_EXITING: u64 = 0x4;

/// Thread `tid` of `pid` is gone, a zombie, or on its way out.
pub fn exiting(pid: i32, tid: i32) -> bool {
    task_stat(pid, tid)
        .is_none_or(|s| matches!(s.state, 'Z' | 'X') || u64::from(s.flags) & PF_EXITING != 0)
}

/// The seccomp mode of thread `tid` of `pid` (0 none, 1 strict, 2
/// filter), from its `status`.
pub fn task_seccomp(pid: i32, tid: i32) -> u32 {
    task_status(pid, tid).and_then(|s| s.seccomp).unwrap_or(0)
}

/// CAP_SYS_ADMIN's bit in the capability sets (linux/capability.h).
const CAP_SYS_ADMIN: u32 = 21;

/// Whether reach itself holds CAP_SYS_ADMIN (in `CapEff`).
pub fn has_cap_sys_admin() -> bool {
    let me = std::process::id() as i32;
    task_status(me, me).is_some_and(|s| s.capeff & (1 << CAP_SYS_ADMIN) != 0)
}

/// The kernel function thread `tid` of `pid` waits in (`wchan`), or "?".
pub fn task_wchan(pid: i32, tid: i32) -> String {
    wchan(pid, tid).unwrap_or_else(|| "?".into())
}

/// The kernel function thread `tid` of `pid` waits in, if it waits.
pub fn wchan(pid: i32, tid: i32) -> Option<String> {
    let w = read_proc(&format!("/proc/{pid}/task/{tid}/wchan")).ok()?;
    let w = w.trim();
    (!w.is_empty() && w != "0").then(|| w.to_string())
}

/// The pid tracing thread `tid` of `pid` (0: none).
pub fn task_tracer(pid: i32, tid: i32) -> i32 {
    task_status(pid, tid).map_or(0, |s| s.tracerpid)
}

/// Whether thread `tid` has a signal pending that it does not block: such
/// a signal, not reach, is what interrupted its system call.
pub fn has_deliverable_signal(pid: i32, tid: i32) -> bool {
    task_status(pid, tid).is_some_and(|s| (s.sigpnd | s.shdpnd) & !s.sigblk != 0)
}

/// Yama's `kernel.yama.ptrace_scope`, where Yama is enabled.
pub fn ptrace_scope() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
}

/// What an operation asks of a process that is not reach's own user's:
/// each needs CAP_SYS_PTRACE over it, and some a DAC capability for the
/// `/proc` files the kernel guards by owner. README.md ("Permissions")
/// lists the same table; `tests/suite/permissions.rs` checks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Attach with ptrace (calls, system calls, freeze).
    Trace,
    /// Read its maps and memory (maps(), sym(), read()).
    ReadMemory,
    /// List its descriptors (`/proc/PID/fd`, mode 0500).
    ReadFds,
    /// Read what its threads are doing (`/proc/PID/task/TID/syscall`, 0400).
    ThreadState,
    /// Write its memory through `/proc/PID/mem` (0600).
    WriteMemory,
    /// Call into it: trace it, write reach's memory into it, and re-send
    /// the signals that arrive during the call (kill(2)'s permission).
    Call,
    /// Take a copy of one of its descriptors (`pidfd_getfd`).
    TakeFd,
}

const CAP_DAC_OVERRIDE: u32 = 1;
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_KILL: u32 = 5;
const CAP_SYS_PTRACE: u32 = 19;

impl Access {
    /// "list the descriptors of", as in "not permitted to … pid N".
    pub fn doing(self) -> &'static str {
        match self {
            Access::Trace => "trace",
            Access::ReadMemory => "read the memory of",
            Access::ReadFds => "list the descriptors of",
            Access::ThreadState => "see the system calls of the threads of",
            Access::WriteMemory => "write the memory of",
            Access::Call => "call into",
            Access::TakeFd => "take a descriptor of",
        }
    }

    /// The capabilities it needs over a process of another user.
    fn needs(self) -> &'static [(u32, &'static str)] {
        const PTRACE: (u32, &str) = (CAP_SYS_PTRACE, "cap_sys_ptrace");
        match self {
            Access::Trace | Access::ReadMemory | Access::TakeFd => &[PTRACE],
            Access::ReadFds | Access::ThreadState => {
                &[PTRACE, (CAP_DAC_READ_SEARCH, "cap_dac_read_search")]
            }
            Access::WriteMemory => &[PTRACE, (CAP_DAC_OVERRIDE, "cap_dac_override")],
            Access::Call => &[
                PTRACE,
                (CAP_DAC_OVERRIDE, "cap_dac_override"),
                (CAP_KILL, "cap_kill"),
            ],
        }
    }
}

/// Is opening `path` refused for want of permission?
pub fn denied(path: &str) -> bool {
    matches!(std::fs::File::open(path), Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied)
}

/// reach's effective capabilities (CapEff of /proc/self/status).
fn effective_caps() -> u64 {
    status_at("/proc/self").map_or(0, |s| s.capeff)
}

/// Why `access` to a process was refused, and what to do about it: the
/// capabilities reach lacks, else what else refuses (Yama, a process that
/// made itself non-dumpable, another user namespace).
pub fn permission_hint(access: Access) -> String {
    let caps = effective_caps();
    let needs = access.needs();
    let names: Vec<&str> = needs.iter().map(|(_, n)| *n).collect();
    let missing: Vec<&str> = needs
        .iter()
        .filter(|(bit, _)| caps & (1 << bit) == 0)
        .map(|(_, n)| *n)
        .collect();
    let doing = access.doing();
    if !missing.is_empty() {
        return format!(
            "hint: to {doing} another user's process reach needs {}; it lacks {}: run it as root, or `setcap {}+ep` on the reach binary",
            names.join(", "),
            missing.join(", "),
            names.join(","),
        );
    }
    let mut hint = format!("hint: reach has {} yet was refused: ", names.join(", "));
    match ptrace_scope() {
        Some(3) => hint.push_str("kernel.yama.ptrace_scope is 3 (no process may be traced until reboot); "),
        Some(n @ 1..) if caps & (1 << CAP_SYS_PTRACE) == 0 => hint.push_str(&format!(
            "kernel.yama.ptrace_scope is {n} (only CAP_SYS_PTRACE may trace non-descendants; sysctl kernel.yama.ptrace_scope=0 relaxes it); "
        )),
        _ => {}
    }
    hint.push_str("a process that made itself non-dumpable (prctl PR_SET_DUMPABLE, setuid programs), or one in another user namespace, needs CAP_SYS_PTRACE in its namespace");
    hint
}

/// Every process but reach itself and the processes it runs under (its
/// shell, sudo: their command lines hold reach's own arguments), as
/// (pid, comm, command line with NULs), in pid order.
fn other_processes() -> impl Iterator<Item = (i32, String, Vec<u8>)> {
    let me = std::process::id() as i32;
    let mut ancestors = Vec::new();
    let mut pid = me;
    while pid > 1 && ancestors.len() < 64 {
        let Some(stat) = task_stat(pid, pid) else {
            break;
        };
        pid = stat.ppid;
        ancestors.push(pid);
    }
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me && !ancestors.contains(pid))
        .collect();
    pids.sort_unstable();
    pids.into_iter().filter_map(|pid| {
        let name = comm(pid)?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        Some((pid, name, cmdline))
    })
}

/// How `-p NAME` picks processes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Matching {
    /// The exact name: `comm`, or the file name of argv[0].
    Name,
    /// A substring of the command line, as `pgrep -f` (or the exact name).
    CommandLine,
}

/// A process that matched, with its command line as one line of text.
#[derive(Clone, Debug)]
pub struct Match {
    pub pid: i32,
    pub cmdline: String,
}

impl std::fmt::Display for Match {
    /// `1234 (python3 leaky.py)`: the command line cut at 100 characters.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text: String = self.cmdline.chars().take(100).collect();
        if self.cmdline.chars().nth(100).is_some() {
            text.push('…');
        }
        write!(f, "{} ({text})", self.pid)
    }
}

/// Every process `pattern` matches, in pid order, reach and its ancestors
/// excluded.
pub fn matching(pattern: &str, how: Matching) -> Vec<Match> {
    let basename = |s: &str| s.rsplit('/').next().unwrap_or(s).to_string();
    other_processes()
        .filter_map(|(pid, comm, cmdline)| {
            let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
            let argv0 = String::from_utf8_lossy(argv0);
            let line = String::from_utf8_lossy(&cmdline)
                .trim_end_matches('\0')
                .replace('\0', " ");
            let named = comm == pattern || (!argv0.is_empty() && basename(&argv0) == pattern);
            let hit = named || (how == Matching::CommandLine && line.contains(pattern));
            hit.then(|| Match {
                pid,
                cmdline: if line.is_empty() {
                    format!("[{comm}]")
                } else {
                    line
                },
            })
        })
        .collect()
}

/// Every process whose name or command line matches `pattern` (a substring
/// of the command line, or the exact name), reach itself excluded.
pub fn pgrep(pattern: &str) -> Vec<i32> {
    matching(pattern, Matching::CommandLine)
        .into_iter()
        .map(|m| m.pid)
        .collect()
}

/// `a (cmd), b (cmd), …`: at most ten, escaped for a terminal.
pub fn listed(matches: &[Match]) -> String {
    let mut text = matches
        .iter()
        .take(10)
        .map(|m| crate::script::output::escape_controls(&m.to_string()).into_owned())
        .collect::<Vec<_>>()
        .join(", ");
    if matches.len() > 10 {
        text.push_str(&format!(", and {} more", matches.len() - 10));
    }
    text
}

/// The one process `pattern` matches (see [`Matching`]).
pub fn find_one(pattern: &str, how: Matching) -> Result<i32> {
    let matches = matching(pattern, how);
    match matches.as_slice() {
        [] if how == Matching::Name => {
            let near = matching(pattern, Matching::CommandLine);
            Err(Error::NoSuchProcess(if near.is_empty() {
                format!("no process is named {pattern:?}")
            } else {
                format!(
                    "no process is named {pattern:?}, but command lines contain it: {}; -f matches command lines",
                    listed(&near)
                )
            }))
        }
        [] => Err(Error::NoSuchProcess(format!(
            "no process's name or command line contains {pattern:?}"
        ))),
        [one] => Ok(one.pid),
        many => Err(Error::AmbiguousName(
            many.len(),
            pattern.to_string(),
            listed(many),
        )),
    }
}

/// The one process called exactly `name` (its `comm`, or the file name of
/// its executable or argv[0]).
pub fn find_by_name(name: &str) -> Result<i32> {
    find_one(name, Matching::Name)
}
