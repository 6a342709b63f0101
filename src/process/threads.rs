//! The threads of a target and what each is blocked in, from
//! `/proc/PID/task/TID/{stat,syscall,wchan}`, and the descriptors each
//! waits on: the one a `read` or `recv` names, every descriptor of a
//! `poll` array or `select` set (read from the thread's memory at the
//! addresses its `syscall` file gives), every descriptor an epoll instance
//! watches (its `fdinfo`). Never stops the target: reading `syscall` only
//! waits for the thread to be off its CPU (fs/proc/base.c,
//! `proc_pid_syscall` → `task_current_syscall`).

use super::Result;
use super::procinfo;
use syscalls::Sysno;

/// One thread of the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    pub tid: i32,
    /// Its `comm` (what `pthread_setname_np` set, at most 15 bytes).
    pub name: String,
    /// The state letter from `stat`: `R`, `S`, `D`, `T`, `t`, `Z`, …
    pub state: char,
    /// Where it sleeps in the kernel (`/proc/…/wchan`), if it does.
    pub wchan: Option<String>,
    pub syscall: Syscall,
    /// The descriptors whose readiness would end its system call (see
    /// [`waited_fds`]).
    pub waits_on: Vec<i32>,
}

/// What `/proc/PID/task/TID/syscall` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Syscall {
    /// On a CPU: no system call to report.
    Running,
    /// Off-CPU but not in a system call (stopped or preempted in user space).
    NotInSyscall,
    /// Blocked in system call `nr` with these six arguments.
    In { nr: i64, args: [u64; 6] },
    /// Unreadable (thread gone, no permission) or unparseable.
    Unknown,
}

impl Syscall {
    /// Parse the one line of `/proc/PID/task/TID/syscall`: `running`, or
    /// `-1 SP PC`, or `NR ARG1 … ARG6 SP PC` (fs/proc/base.c,
    /// `proc_pid_syscall`).
    pub fn parse(text: &str) -> Syscall {
        let text = text.trim();
        if text == "running" {
            return Syscall::Running;
        }
        let mut words = text.split_ascii_whitespace();
        let Some(Ok(nr)) = words.next().map(str::parse::<i64>) else {
            return Syscall::Unknown;
        };
        if nr < 0 {
            return Syscall::NotInSyscall;
        }
        let mut args = [0u64; 6];
        for arg in &mut args {
            let parsed = words
                .next()
                .and_then(|w| w.strip_prefix("0x"))
                .and_then(|w| u64::from_str_radix(w, 16).ok());
            match parsed {
                Some(v) => *arg = v,
                None => return Syscall::Unknown,
            }
        }
        Syscall::In { nr, args }
    }

    /// The system call's name (`read`, `recvfrom`, `epoll_wait`, …), or
    /// `syscall_N` for a number this build does not know.
    pub fn name(&self) -> Option<String> {
        match self {
            Syscall::In { nr, .. } => Some(syscall_name(*nr)),
            _ => None,
        }
    }

    /// The descriptor it waits on, for system calls whose first argument
    /// is one.
    pub fn fd(&self) -> Option<i32> {
        match self {
            Syscall::In { nr, args } if takes_fd_first(*nr) => {
                // An int argument: the upper half of the register is junk.
                let fd = args[0] as u32 as i32;
                (fd >= 0).then_some(fd)
            }
            _ => None,
        }
    }
}

pub fn syscall_name(nr: i64) -> String {
    usize::try_from(nr)
        .ok()
        .and_then(Sysno::new)
        .map(|s| s.name().to_string())
        .unwrap_or_else(|| format!("syscall_{nr}"))
}

/// System calls whose first argument is a file descriptor the caller may
/// block on (or act on). `*at` calls are left out: their first argument is
/// a directory to resolve a path against, often `AT_FDCWD`.
fn takes_fd_first(nr: i64) -> bool {
    let Some(sys) = usize::try_from(nr).ok().and_then(Sysno::new) else {
        return false;
    };
    use Sysno::*;
    matches!(
        sys,
        read | write
            | pread64
            | pwrite64
            | readv
            | writev
            | preadv
            | pwritev
            | preadv2
            | pwritev2
            | recvfrom
            | sendto
            | recvmsg
            | sendmsg
            | recvmmsg
            | sendmmsg
            | accept
            | accept4
            | connect
            | shutdown
            | bind
            | listen
            | getsockopt
            | setsockopt
            | getsockname
            | getpeername
            | ioctl
            | fcntl
            | flock
            | fsync
            | fdatasync
            | syncfs
            | sync_file_range
            | ftruncate
            | fallocate
            | lseek
            | fstat
            | fstatfs
            | getdents64
            | epoll_wait
            | epoll_pwait
            | epoll_pwait2
            | epoll_ctl
            | sendfile
            | splice
            | tee
            | vmsplice
            | copy_file_range
            | io_uring_enter
            | mq_timedreceive
            | mq_timedsend
            | close
    )
}

/// The most descriptors read from one `poll` array or `select` set (the
/// numbers come from the target's registers: a bound, not a trust).
const MAX_WAITED: u64 = 1 << 16;

/// The descriptors a thread blocked in `syscall` waits on: the one the
/// call names (`read`, `recv`, `accept`, …); every descriptor of its
/// `poll`/`ppoll` array or of its `select`/`pselect6` sets, read from its
/// memory (no stop: `process_vm_readv`); for `epoll_wait`, every
/// descriptor its epoll instance watches (the `tfd:` lines of the epoll
/// descriptor's fdinfo). Ascending, without repeats; empty when it waits
/// on none, or when what it waits on cannot be read.
pub fn waited_fds(pid: i32, syscall: &Syscall) -> Vec<i32> {
    let Syscall::In { nr, args } = syscall else {
        return Vec::new();
    };
    let mut fds = match usize::try_from(*nr).ok().and_then(Sysno::new) {
        Some(Sysno::poll | Sysno::ppoll) => poll_fds(pid, args[0], args[1]),
        Some(Sysno::select | Sysno::pselect6) => select_fds(pid, args[0], &args[1..4]),
        Some(Sysno::epoll_wait | Sysno::epoll_pwait | Sysno::epoll_pwait2) => {
            epoll_fds(pid, args[0] as u32 as i32)
        }
        _ => syscall.fd().into_iter().collect(),
    };
    fds.sort_unstable();
    fds.dedup();
    fds
}

/// The descriptors of `nfds` `struct pollfd` (int fd; short events;
/// short revents) at `at`; negative ones are ignored by poll, and here.
fn poll_fds(pid: i32, at: u64, nfds: u64) -> Vec<i32> {
    let n = nfds.min(MAX_WAITED) as usize;
    let mut raw = vec![0u8; n * 8];
    if n == 0 || crate::sys::memory::read(pid, at, &mut raw).is_err() {
        return Vec::new();
    }
    raw.chunks_exact(8)
        .map(|p| i32::from_ne_bytes(p[..4].try_into().unwrap()))
        .filter(|&fd| fd >= 0)
        .collect()
}

/// The descriptors set in the read, write and except `fd_set`s at `sets`
/// (a null pointer: no set), each `nfds` bits long.
fn select_fds(pid: i32, nfds: u64, sets: &[u64]) -> Vec<i32> {
    let bits = nfds.min(MAX_WAITED) as usize;
    let mut raw = vec![0u8; bits.div_ceil(64) * 8];
    let mut fds = Vec::new();
    for &set in sets.iter().filter(|&&s| s != 0) {
        if crate::sys::memory::read(pid, set, &mut raw).is_err() {
            continue;
        }
        fds.extend(
            (0..bits)
                .filter(|&i| raw[i / 8] & (1 << (i % 8)) != 0)
                .map(|i| i as i32),
        );
    }
    fds
}

/// The descriptors epoll instance `epfd` of `pid` watches.
fn epoll_fds(pid: i32, epfd: i32) -> Vec<i32> {
    let path = format!("{}/fdinfo/{epfd}", procinfo::dir(pid));
    let Ok(info) = procinfo::read_proc(&path) else {
        return Vec::new();
    };
    parse_epoll_fdinfo(&info)
}

/// `tfd:        5 events:       19 data: …` lines (fs/eventpoll.c,
/// `ep_show_fdinfo`).
fn parse_epoll_fdinfo(info: &str) -> Vec<i32> {
    info.lines()
        .filter_map(|l| {
            l.strip_prefix("tfd:")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// What one thread is doing in the kernel right now.
pub fn current_syscall(pid: i32, tid: i32) -> Syscall {
    match procinfo::read_proc(&format!("/proc/{pid}/task/{tid}/syscall")) {
        Ok(text) => Syscall::parse(&text),
        Err(_) => Syscall::Unknown,
    }
}

/// Every thread of `pid`. A thread that exits while listed is left out.
pub fn list(pid: i32) -> Result<Vec<Thread>> {
    let mut threads = list_states(pid)?;
    for t in &mut threads {
        t.wchan = procinfo::wchan(pid, t.tid);
        t.waits_on = waited_fds(pid, &t.syscall);
    }
    Ok(threads)
}

/// Every thread of `pid` with its name, state and system call only (no
/// wchan, no waited descriptors: nothing read from its memory).
pub fn list_states(pid: i32) -> Result<Vec<Thread>> {
    let mut threads = Vec::new();
    for tid in procinfo::tasks(pid)? {
        let Some(stat) = procinfo::task_stat(pid, tid) else {
            continue;
        };
        let syscall = current_syscall(pid, tid);
        // Unreadable only for want of privilege (it is 0400, its owner's):
        // say so rather than show every thread's call as unknown.
        if syscall == Syscall::Unknown
            && procinfo::denied(&format!("/proc/{pid}/task/{tid}/syscall"))
        {
            return Err(super::Error::NotPermitted {
                pid,
                access: procinfo::Access::ThreadState,
            });
        }
        threads.push(Thread {
            tid,
            name: stat.comm,
            state: stat.state,
            wchan: None,
            waits_on: Vec::new(),
            syscall,
        });
    }
    Ok(threads)
}

/// The long name of a state letter, as `ps` and `/proc/PID/status` say it.
pub fn state_name(state: char) -> &'static str {
    match state {
        'R' => "running",
        'S' => "sleeping",
        'D' => "disk sleep",
        'T' => "stopped",
        't' => "tracing stop",
        'X' => "dead",
        'Z' => "zombie",
        'P' => "parked",
        'I' => "idle",
        _ => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_blocked_read() {
        let s = Syscall::parse("0 0x5 0x7ffd1000 0x100 0x0 0x0 0x0 0x7ffd0ff8 0x7f00001234\n");
        assert_eq!(s.name().as_deref(), Some("read"));
        assert_eq!(s.fd(), Some(5));
    }

    #[test]
    fn parses_running_and_user_space() {
        assert_eq!(Syscall::parse("running\n"), Syscall::Running);
        assert_eq!(
            Syscall::parse("-1 0x7ffd0ff8 0x401000\n"),
            Syscall::NotInSyscall
        );
        assert_eq!(Syscall::parse("garbage"), Syscall::Unknown);
        assert_eq!(Syscall::parse("0 0x5"), Syscall::Unknown);
    }

    #[test]
    fn fd_only_for_fd_taking_calls() {
        // nanosleep(req, rem): the first argument is a pointer.
        let s = Syscall::parse("35 0x7ffd1000 0x0 0x0 0x0 0x0 0x0 0x1 0x2");
        assert_eq!(s.name().as_deref(), Some("nanosleep"));
        assert_eq!(s.fd(), None);
        // epoll_wait on epoll fd 3.
        let s = Syscall::parse("232 0x3 0x7ffd1000 0x10 0xffffffff 0x0 0x0 0x1 0x2");
        assert_eq!(s.fd(), Some(3));
        // The upper half of an int argument is ignored.
        let s = Syscall::parse("45 0xdeadbeef00000007 0x1 0x2 0x0 0x0 0x0 0x1 0x2");
        assert_eq!(s.name().as_deref(), Some("recvfrom"));
        assert_eq!(s.fd(), Some(7));
    }

    #[test]
    fn epoll_fdinfo_lists_the_watched_descriptors() {
        let info = "pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1057\n\
                    tfd:        5 events:       19 data:                5  pos:0 ino:1a mnt_id:8\n\
                    tfd:       12 events:       19 data:                c  pos:0 ino:2b mnt_id:8\n";
        assert_eq!(parse_epoll_fdinfo(info), vec![5, 12]);
    }

    #[test]
    fn a_thread_of_this_process_blocked_in_poll_and_select() {
        use std::os::fd::AsRawFd;
        let (a, _a2) = std::os::unix::net::UnixStream::pair().unwrap();
        let (b, _b2) = std::os::unix::net::UnixStream::pair().unwrap();
        let me = std::process::id() as i32;
        let (fa, fb) = (a.as_raw_fd(), b.as_raw_fd());
        // What a blocked poll([fa, -1, fb]) and select(fb + 1, {fa, fb}) name.
        let pollfds: [libc::pollfd; 3] = [fa, -1, fb].map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        let args = [pollfds.as_ptr() as u64, 3, 0, 0, 0, 0];
        let poll = Syscall::In {
            nr: libc::SYS_poll,
            args,
        };
        assert_eq!(waited_fds(me, &poll), vec![fa.min(fb), fa.max(fb)]);
        let mut set = [0u64; 16];
        for fd in [fa, fb] {
            set[fd as usize / 64] |= 1 << (fd % 64);
        }
        let select = Syscall::In {
            nr: libc::SYS_select,
            args: [fb.max(fa) as u64 + 1, set.as_ptr() as u64, 0, 0, 0, 0],
        };
        assert_eq!(waited_fds(me, &select), vec![fa.min(fb), fa.max(fb)]);
    }

    #[test]
    fn unknown_numbers_get_a_name() {
        assert_eq!(syscall_name(100_000), "syscall_100000");
    }

    #[test]
    fn lists_own_threads() {
        let me = std::process::id() as i32;
        let threads = list(me).unwrap();
        assert!(threads.iter().any(|t| t.tid == me));
    }
}
