//! The engine: the one door through which anything runs inside a target.
//!
//! Owns the stop — one thread for an operation, every thread for
//! `freeze()` (`window.rs`) —, which thread to stop (`choose.rs`), reach's
//! own mapping in the target with its stack, arguments, code and restore
//! frame (`mapping.rs`), running a function or a system call there and
//! coming back (`run.rs`), and the kernel's system-call restart rules as
//! they apply to a stopped thread (`restart.rs`).
//!
//! Its verbs: [`Engine::call`], [`Engine::syscall`], [`Engine::freeze`],
//! [`Engine::thaw`] and [`Engine::release`]. Three rules hold for all of
//! them: reach writes nothing into the target's own stacks, heap or code;
//! an operation stops only the thread it runs on (`freeze` aside); and the
//! target survives reach's death at any instant of a call (see
//! `mapping.rs` for the two instants that remain: creating and removing
//! the mapping).
//!
//! Must never print and never resolve names: callers give it addresses,
//! and get values and typed errors back.

mod choose;
mod mapping;
mod restart;
mod run;
mod window;

use super::{Error, Result, procinfo};
use crate::sys::pidfd;
use crate::sys::ptrace::Tid;
use mapping::Mapping;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};
use window::Window;

pub use choose::Choice;
pub use window::{settle_lingering, tend_lingering, timing};

/// An argument to an injected call.
#[derive(Debug, Clone)]
pub enum Arg {
    Int(u64),
    /// Bytes copied into reach's mapping for the call; the callee gets
    /// their address. Strings arrive here already NUL-terminated.
    Bytes(Vec<u8>),
}

/// The most arguments reach passes (the System V ABI has no limit; this
/// keeps frames small and mistakes obvious).
pub const MAX_ARGS: usize = 16;

/// What can go wrong in the engine, beyond what the process layer knows.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{signal} in {function} at {pc:#x}{detail}; the thread was restored")]
    Fault {
        signal: &'static str,
        function: String,
        pc: u64,
        detail: String,
    },
    #[error(
        "{what} timed out after {secs} s: another thread may hold a lock it needs; the thread was restored"
    )]
    Timeout { what: String, secs: u64 },
    #[error("interrupted by {}: the target was restored and left running", signal_name(*.0))]
    Interrupted(i32),
    #[error("thread {tid} did not stop within {secs} s ({why}); nothing was changed, and {after}")]
    StopTimeout {
        tid: Tid,
        secs: u64,
        why: String,
        after: &'static str,
    },
    #[error("{0} arguments given; at most {MAX_ARGS} are supported")]
    TooManyArgs(usize),
    #[error("a system call takes at most 6 arguments, {0} given")]
    TooManySyscallArgs(usize),
    #[error("{0} bytes of string and blob arguments; at most {max} fit", max = mapping::ARGS_MAX)]
    ArgsTooLarge(usize),
    #[error("no syscall instruction found in pid {0} (its vDSO or code) to create reach's mapping")]
    NoSyscallInstruction(i32),
    #[error("could not create reach's memory in pid {pid}: {why}; nothing was changed")]
    Mapping { pid: i32, why: String },
    #[error(
        "{0} replaced the process image (execve): the new program runs on, nothing was restored"
    )]
    Exec(String),
    #[error(
        "{cause}, and the thread could not be taken back ({state}): it runs the function on and restores itself when it returns (reach's memory stays for it)"
    )]
    LeftRunning { cause: String, state: String },
    #[error("{0} ended its own thread; the rest of the process runs on")]
    ThreadEnded(String),
    #[error("pid {pid} runs under a seccomp filter (mode {mode}); {why}; nothing was changed")]
    Seccomp { pid: i32, mode: u32, why: String },
    #[error("pid {0} is a 32-bit process; reach calls into 64-bit processes only")]
    ThirtyTwoBit(i32),
    #[error("no thread of pid {0} can be stopped now: {1}")]
    NoThread(i32, String),
    #[error("thread {tid} is not a thread of pid {pid}")]
    NoSuchThread { pid: i32, tid: Tid },
}

impl EngineError {
    pub fn hint(&self) -> Option<String> {
        match self {
            EngineError::Timeout { .. } => Some(
                "hint: raise --timeout if the function is merely slow; look at threads() for a lock holder"
                    .into(),
            ),
            EngineError::Seccomp { .. } => Some(
                "hint: as root (CAP_SYS_ADMIN) reach suspends the filter for the thread it runs on"
                    .into(),
            ),
            _ => None,
        }
    }
}

pub fn signal_name(sig: i32) -> &'static str {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str())
        .unwrap_or("a real-time signal")
}

/// How one operation behaves.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Limit for the whole operation, stopping included.
    pub timeout: Duration,
    /// Which thread to run on.
    pub thread: Choice,
}

/// What unwinding one thread's stack starts from: its registers and a copy
/// of the top of its stack.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub ip: u64,
    pub sp: u64,
    /// `None` when it could not be had without a stop.
    pub bp: Option<u64>,
    /// Where `stack` starts in the target.
    pub stack_at: u64,
    pub stack: Vec<u8>,
}

/// Below the stack pointer: the x86-64 red zone, which a leaf function
/// may use without moving the stack pointer.
const RED_ZONE: u64 = 128;

impl Snapshot {
    /// Registers as given, and up to `len` bytes of the stack above `sp`
    /// (fewer where the mapping ends), read without a stop.
    pub fn copy(pid: i32, ip: u64, sp: u64, bp: Option<u64>, len: usize) -> Snapshot {
        let stack_at = sp.saturating_sub(RED_ZONE);
        Snapshot {
            ip,
            sp,
            bp,
            stack_at,
            stack: crate::sys::memory::read_prefix(pid, stack_at, len + RED_ZONE as usize),
        }
    }

    /// The 8 bytes at `addr`, if the copy holds them.
    pub fn word(&self, addr: u64) -> Option<u64> {
        let at = usize::try_from(addr.checked_sub(self.stack_at)?).ok()?;
        let bytes = self.stack.get(at..at.checked_add(8)?)?;
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }
}

/// Limits of one operation in progress.
pub(crate) struct Limits {
    pub deadline: Instant,
    pub timeout: Duration,
    /// Cleanup that must happen even after reach was asked to stop
    /// (removing its mapping as it exits): SIGINT/SIGTERM do not cut it
    /// short, only its own deadline does.
    pub cleanup: bool,
}

impl Limits {
    fn new(timeout: Duration) -> Limits {
        Limits {
            deadline: Instant::now() + timeout,
            timeout,
            cleanup: false,
        }
    }

    pub(crate) fn for_cleanup() -> Limits {
        Limits {
            cleanup: true,
            ..Limits::new(Duration::from_secs(2))
        }
    }

    /// The signal that asked reach to stop, unless this is cleanup.
    pub fn interrupted(&self) -> Option<i32> {
        crate::sys::interrupt::pending().filter(|_| !self.cleanup)
    }
}

/// A function call to make.
pub struct Call<'a> {
    /// How messages name it.
    pub what: &'a str,
    pub addr: u64,
    /// `addr` is an IFUNC resolver: call it first for the real function.
    pub ifunc: bool,
    pub args: &'a [Arg],
    /// `__errno_location`, when the caller wants the errno it left.
    pub errno_fn: Option<u64>,
}

/// What a call returned.
#[derive(Debug, Clone, Copy)]
pub struct Returned {
    /// rax, whole.
    pub value: u64,
    /// The thread's errno right after the call, if asked for and found.
    pub errno: Option<i32>,
}

/// One target's engine: reach's mapping in it and what reach learned about
/// it, kept across operations. Not `Send`: ptrace requests must come from
/// the thread that attached.
pub struct Engine {
    pid: i32,
    /// Names the process for its whole life: after a thread is stopped,
    /// it tells whether the pid still belongs to the process attached.
    pidfd: Option<OwnedFd>,
    mapping: Option<Mapping>,
    /// A `syscall` instruction of the target's own (its vDSO), used once,
    /// to create the mapping.
    borrowed_syscall: Option<u64>,
    /// Thread → address of its errno, and the IFUNC resolver → function
    /// answers: both die with the process image.
    errno_at: HashMap<Tid, u64>,
    ifuncs: HashMap<u64, u64>,
    frozen: Option<Window>,
    /// The program image all the above was learned in.
    image: Option<procinfo::Image>,
    /// The thread the last operation ran on: the first candidate for the
    /// next one.
    last_thread: Option<Tid>,
}

impl Engine {
    pub fn new(pid: i32, pidfd: Option<OwnedFd>) -> Engine {
        Engine {
            pid,
            pidfd,
            mapping: None,
            borrowed_syscall: None,
            errno_at: HashMap::new(),
            ifuncs: HashMap::new(),
            frozen: None,
            image: None,
            last_thread: None,
        }
    }

    /// Whether the process attached is still alive (so its pid is still
    /// its own).
    pub fn same_process(&self) -> bool {
        self.pidfd.as_ref().is_none_or(pidfd::is_alive)
    }

    /// Refuse, before anything stops, an operation whose signals reach
    /// could not re-send: a signal that arrives while a thread is held is
    /// deferred and re-sent with kill(2)'s permission, which a process of
    /// another user denies without CAP_KILL.
    fn check_may_signal(&self) -> Result<()> {
        match &self.pidfd {
            Some(fd) if !pidfd::may_signal(fd) => Err(Error::NotPermitted {
                pid: self.pid,
                access: crate::process::procinfo::Access::Call,
            }),
            _ => Ok(()),
        }
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen.is_some()
    }

    /// Forget everything learned about the process image (after an exec,
    /// or when reach's mapping is found gone).
    pub fn forget_image(&mut self) {
        self.mapping = None;
        self.borrowed_syscall = None;
        self.errno_at.clear();
        self.ifuncs.clear();
    }

    /// Forget the image if the process exec'd since the last operation
    /// (its address space is another), or if reach's mapping is no longer
    /// where it was made (the exec'd image has the same layout, or the
    /// program unmapped it).
    fn check_image(&mut self) {
        let now = procinfo::image(self.pid);
        if now != self.image {
            self.forget_image();
            self.image = now;
        }
        if let Some(m) = &self.mapping
            && !m.still_there(self.pid)
        {
            self.forget_image();
        }
    }

    /// Run `op` in a window on one thread (or in the frozen window), then
    /// restore the thread and, unless frozen, release it. `op`'s error wins
    /// over a restore error.
    fn in_window<T>(
        &mut self,
        opts: &Options,
        op: impl FnOnce(&mut Self, &mut Window, &Limits) -> Result<T>,
    ) -> Result<T> {
        self.in_window_with(opts, Limits::new(opts.timeout), op)
    }

    fn in_window_with<T>(
        &mut self,
        opts: &Options,
        limits: Limits,
        op: impl FnOnce(&mut Self, &mut Window, &Limits) -> Result<T>,
    ) -> Result<T> {
        self.check_may_signal()?;
        // One ticker for the whole operation (waits inside re-use it).
        let _ticker = crate::sys::interrupt::Ticker::start(20);
        window::tend_lingering();
        self.check_image();
        // Where the mapping will come from, found before anything stops.
        if self.mapping.is_none() && self.borrowed_syscall.is_none() {
            self.borrowed_syscall = Some(mapping::find_syscall_insn(self.pid)?);
        }
        if let Some(mut win) = self.frozen.take() {
            let result = win
                .select(opts.thread)
                .and_then(|()| op(self, &mut win, &limits));
            if win.lost {
                self.mapping = None;
            }
            let restored = win.restore();
            self.frozen = Some(win);
            let value = result?;
            restored?;
            return Ok(value);
        }
        let mut win = Window::open_one(self.pid, opts.thread, self.last_thread, &limits)?;
        // Only a thread reach picked itself is the one to try first next
        // time; a thread the operator named is theirs.
        self.last_thread = match opts.thread {
            Choice::Auto => Some(win.call_tid()),
            Choice::Thread(_) => self.last_thread,
        };
        // The pid may have been reused between the caller's check and the
        // stop: then the thread held is another process's, let go untouched.
        if !self.pidfd.as_ref().is_none_or(pidfd::exists) {
            drop(win);
            return Err(Error::PidReused(self.pid));
        }
        let result = op(self, &mut win, &limits);
        if win.lost {
            // The thread still runs on reach's mapping and will restore
            // itself from its frame: leave that mapping to it.
            self.mapping = None;
        }
        let closed = win.close();
        let value = result?;
        closed?;
        Ok(value)
    }

    /// Call the function `call.addr` with `call.args` on one thread.
    pub fn call(&mut self, call: &Call, opts: &Options) -> Result<Returned> {
        if call.args.len() > MAX_ARGS {
            return Err(EngineError::TooManyArgs(call.args.len()).into());
        }
        self.in_window(opts, |me, win, limits| {
            let map = me.mapping(win, limits)?;
            let addr = match call.ifunc {
                false => call.addr,
                true => match me.ifuncs.get(&call.addr) {
                    Some(&addr) => addr,
                    None => {
                        let what = format!("the IFUNC resolver of {}", call.what);
                        let addr = run::function(win, &map, &what, call.addr, &[], limits)?;
                        me.ifuncs.insert(call.addr, addr);
                        addr
                    }
                },
            };
            let errno_at = match call.errno_fn {
                Some(f) => me.errno_location(win, &map, f, limits),
                None => None,
            };
            let before = errno_at.and_then(|at| run::read_i32(me.pid, at));
            let value = run::function(win, &map, call.what, addr, call.args, limits)?;
            // The callee's errno for the caller; the thread's own back for
            // the thread (it may have been about to read it).
            let errno = errno_at.and_then(|at| run::read_i32(me.pid, at));
            if let (Some(at), Some(v)) = (errno_at, before) {
                run::write_i32(me.pid, at, v);
            }
            Ok(Returned { value, errno })
        })
    }

    /// Make system call `nr` with `args` on one thread; the kernel's value.
    pub fn syscall(&mut self, what: &str, nr: u64, args: &[Arg], opts: &Options) -> Result<i64> {
        if args.len() > crate::sys::x86_64::SYSCALL_ARG_REGS {
            return Err(EngineError::TooManySyscallArgs(args.len()).into());
        }
        self.in_window(opts, |me, win, limits| {
            let map = me.mapping(win, limits)?;
            run::syscall(win, &map, what, nr, args, limits)
        })
    }

    /// Stop thread `tid` alone, copy what unwinding its stack needs — its
    /// instruction, stack and frame pointers and up to `len` bytes from
    /// its stack pointer (the red zone below it included) — and let it
    /// go: the thread is held for the copy only, and given back as every
    /// window gives a thread back. In a frozen target the thread is read
    /// where it is held.
    pub fn snapshot(&mut self, tid: Tid, len: usize, opts: &Options) -> Result<Snapshot> {
        if let Some(win) = &self.frozen
            && win.holds(tid)
        {
            let regs = crate::sys::ptrace::get_regs(tid).map_err(Error::from)?;
            return Ok(Snapshot::copy(
                self.pid,
                regs.rip,
                regs.rsp,
                Some(regs.rbp),
                len,
            ));
        }
        self.check_may_signal()?;
        window::tend_lingering();
        let limits = Limits::new(opts.timeout);
        let win = Window::open_one(self.pid, Choice::Thread(tid), None, &limits)?;
        if win.call_tid() != tid {
            drop(win);
            return Err(Error::ThreadExited(tid));
        }
        // The registers as the thread stopped (not as saved to resume: a
        // system call the stop interrupted is set up there to restart).
        let regs = crate::sys::ptrace::get_regs(tid).map_err(Error::from)?;
        let snapshot = Snapshot::copy(self.pid, regs.rip, regs.rsp, Some(regs.rbp), len);
        win.close()?;
        Ok(snapshot)
    }

    /// Stop every thread and hold them until [`Engine::thaw`].
    pub fn freeze(&mut self, opts: &Options) -> Result<()> {
        if self.frozen.is_some() {
            return Ok(());
        }
        self.check_may_signal()?;
        window::tend_lingering();
        let limits = Limits::new(opts.timeout);
        let win = Window::open_all(self.pid, opts.thread, &limits)?;
        if !self.same_process() {
            drop(win);
            return Err(Error::PidReused(self.pid));
        }
        self.frozen = Some(win);
        Ok(())
    }

    /// Release a frozen target exactly as it was.
    pub fn thaw(&mut self) -> Result<()> {
        match self.frozen.take() {
            Some(win) => win.close(),
            None => Ok(()),
        }
    }

    /// Remove reach's mapping from the target and release it.
    pub fn release(&mut self, opts: &Options) -> Result<()> {
        self.check_image();
        let removed = match self.mapping.take() {
            Some(map) => self.in_window_with(opts, Limits::for_cleanup(), |_, win, limits| {
                map.remove(win, limits)
            }),
            None => Ok(()),
        };
        let thawed = self.thaw();
        window::tend_lingering();
        removed.and(thawed)
    }

    /// reach's mapping, created on first use (in this window).
    fn mapping(&mut self, win: &mut Window, limits: &Limits) -> Result<Mapping> {
        if let Some(m) = &self.mapping {
            return Ok(m.clone());
        }
        let insn = match self.borrowed_syscall {
            Some(insn) => insn,
            None => mapping::find_syscall_insn(self.pid)?,
        };
        let m = Mapping::create(win, insn, limits)?;
        self.mapping = Some(m.clone());
        Ok(m)
    }

    /// The address of the call thread's errno: computed from
    /// `__errno_location`'s code where it is one of the two known forms,
    /// else asked by calling it once per thread.
    fn errno_location(
        &mut self,
        win: &mut Window,
        map: &Mapping,
        errno_fn: u64,
        limits: &Limits,
    ) -> Option<u64> {
        let tid = win.call_tid();
        if let Some(&at) = self.errno_at.get(&tid) {
            return Some(at);
        }
        let at = match run::errno_from_code(self.pid, errno_fn, win.fs_base()) {
            Some(at) => at,
            None => run::function(win, map, "__errno_location", errno_fn, &[], limits).ok()?,
        };
        self.errno_at.insert(tid, at);
        Some(at)
    }
}
