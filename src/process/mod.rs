//! Targets, their symbols and the calls made into them, as plain data and
//! operations.
//!
//! Owns: what a target is (`target.rs`), the engine that stops a thread
//! and runs calls and system calls on it (`engine/`), name → address
//! (`symbols/`), the memory map (`maps.rs`), what `/proc` says about a
//! process (`procinfo.rs`), its descriptors and sockets (`fds.rs`),
//! threads (`threads.rs`) and signal dispositions (`signals.rs`).
//! Must never print and never know about Rhai: it returns typed errors and
//! values, and `script/` decides how they look.

pub mod engine;
pub mod fds;
pub mod maps;
pub mod procinfo;
pub mod signals;
pub mod stacks;
pub mod symbols;
pub mod target;
pub mod threads;

use crate::sys::ptrace::PtraceError;
use nix::errno::Errno;

pub use engine::{Arg, Choice};
pub use target::{Settings, Target};

/// Everything that can go wrong while operating on a target.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no such process: {0}")]
    NoSuchProcess(String),
    #[error("{0} processes match {1:?}: {2}; pass one pid with -p, or --all for every one")]
    AmbiguousName(usize, String, String),
    #[error("pid {0} is a zombie: it has exited and waits for its parent to reap it")]
    Zombie(i32),
    #[error("pid {0} is reach itself")]
    OwnProcess(i32),
    #[error("pid {0} is a kernel thread: it has no user space to call into")]
    KernelThread(i32),
    #[error(
        "pid {pid} is already traced by pid {tracer} ({tracer_name}); detach that debugger first"
    )]
    AlreadyTraced {
        pid: i32,
        tracer: i32,
        tracer_name: String,
    },
    #[error(
        "pid {0} was already traced by another debugger at that moment (it has let go since): try again"
    )]
    TracedMeanwhile(i32),
    #[error("not permitted to {} pid {pid}", access.doing())]
    NotPermitted { pid: i32, access: procinfo::Access },
    #[error("target {0} exited")]
    TargetExited(i32),
    #[error("target {pid} was killed by {signal} during the operation")]
    TargetKilled { pid: i32, signal: &'static str },
    #[error("thread {0} of the target exited")]
    ThreadExited(i32),
    #[error("pid {0} now belongs to another process: the target exited and its pid was reused")]
    PidReused(i32),
    #[error("no target: give one with -p PID or attach(pid)")]
    NoTarget,
    #[error(transparent)]
    Ptrace(PtraceError),
    #[error("cannot read {len} bytes at {addr:#x} in pid {pid}: {}", memory_reason(*.errno))]
    Read {
        pid: i32,
        addr: u64,
        len: usize,
        errno: Errno,
    },
    #[error("cannot write {len} bytes at {addr:#x} in pid {pid}: {}", memory_reason(*.errno))]
    Write {
        pid: i32,
        addr: u64,
        len: usize,
        errno: Errno,
    },
    #[error("cannot read /proc/{pid}: {msg}")]
    Proc { pid: i32, msg: String },
    #[error(transparent)]
    Symbol(#[from] symbols::SymbolError),
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    #[error(transparent)]
    Fd(#[from] fds::FdError),
}

impl Error {
    /// A second line telling the operator what to do, where one helps.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::NotPermitted { access, .. } => Some(procinfo::permission_hint(*access)),
            Error::Read {
                errno: Errno::EPERM | Errno::EACCES,
                ..
            } => Some(procinfo::permission_hint(procinfo::Access::ReadMemory)),
            Error::Write {
                errno: Errno::EPERM | Errno::EACCES,
                ..
            } => Some(procinfo::permission_hint(procinfo::Access::WriteMemory)),
            Error::Symbol(e) => e.hint(),
            Error::Engine(e) => e.hint(),
            _ => None,
        }
    }
}

fn memory_reason(errno: Errno) -> String {
    match errno {
        Errno::EIO | Errno::EFAULT => "the address is not mapped (or not accessible)".into(),
        Errno::ESRCH => "the process is gone".into(),
        e => e.to_string(),
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed ptrace request: ESRCH (or ECHILD from a wait) means the
/// thread is gone (the target layer turns that into "target exited" when
/// the whole process is).
impl From<PtraceError> for Error {
    fn from(e: PtraceError) -> Error {
        match e.errno {
            Errno::ESRCH | Errno::ECHILD => Error::ThreadExited(e.tid),
            _ => Error::Ptrace(e),
        }
    }
}

/// A warning that cannot be returned (from a `Drop`): to stderr, and
/// never a panic if stderr is closed. The process layer prints nothing
/// else.
pub(crate) fn warn(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "reach: warning: {msg}");
}
