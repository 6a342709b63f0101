//! Remote function calls and remote system calls, inside a stop window.
//!
//! A call borrows the window's call thread: its saved registers become a
//! System V call frame (arguments in rdi, rsi, rdx, rcx, r8, r9, the rest
//! on the stack; strings and blobs below the red zone; rsp 16-byte aligned
//! at the call; al = 0 for variadic callees; DF clear), with return address
//! 0. The function's `ret` then faults at exactly pc 0 with rsp one slot
//! above the frame: that SIGSEGV is completion, any other signal is a crash
//! in the callee. `orig_rax = -1` keeps the kernel's syscall-restart logic
//! (arch/x86/kernel/signal.c, arch_do_signal_or_restart) away from the
//! frame. After each operation the thread is put back exactly as saved.

use super::procinfo;
use super::stop::StopWindow;
use super::{Error, Result, ptrace_err};
use crate::sys::interrupt;
use crate::sys::memory;
use crate::sys::ptrace::{self, Stop, Tid};
use crate::sys::regs_x86_64::{
    self as regs, ARG_REGS, EFLAGS_DF, EFLAGS_TF, RED_ZONE, Regs, SYSCALL_ARG_REGS,
};
use nix::errno::Errno;
use std::time::{Duration, Instant};

/// An argument to an injected call.
#[derive(Debug, Clone)]
pub enum Arg {
    Int(u64),
    /// Bytes copied into target memory for the call; the callee gets their
    /// address. Strings arrive here already NUL-terminated.
    Bytes(Vec<u8>),
}

/// The most arguments reach passes (the System V ABI has no limit; this
/// keeps frames small and mistakes obvious).
pub const MAX_ARGS: usize = 16;
/// Beyond this many bytes of strings and blobs, they go to a scratch
/// mapping instead of the stack (thread stacks can be small).
const STACK_BYTES_MAX: usize = 64 * 1024;
/// The return address of every injected call: never mapped.
const RETURN_ADDR: u64 = 0;

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{signal} in {function} at {pc:#x}{detail}")]
    Fault {
        signal: &'static str,
        function: String,
        pc: u64,
        detail: String,
    },
    #[error("{what} was refused by the target's seccomp filter (SIGSYS on system call {syscall})")]
    Seccomp { what: String, syscall: String },
    #[error("{what} timed out after {secs} s: another thread may hold a lock it needs")]
    Timeout { what: String, secs: u64 },
    #[error("interrupted by {}: the target was restored and left running", signal_name(*.0))]
    Interrupted(i32),
    #[error("thread {0} did not stop in time (in uninterruptible sleep?); nothing was changed")]
    StopTimeout(i32),
    #[error("{0} arguments given; at most {MAX_ARGS} are supported")]
    TooManyArgs(usize),
    #[error("a system call takes at most 6 arguments, {0} given")]
    TooManySyscallArgs(usize),
    #[error("no syscall instruction found in any executable mapping of pid {0}")]
    NoSyscallInstruction(i32),
    #[error(
        "{0} replaced the process image (execve): the new program runs on, nothing was restored"
    )]
    Exec(String),
    #[error("could not make room for arguments in the target: {0}")]
    Scratch(String),
}

impl CallError {
    pub fn hint(&self) -> Option<String> {
        match self {
            CallError::Timeout { .. } => Some(
                "hint: raise --timeout if the function is merely slow; look at threads() for a lock holder"
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

/// How to let the call thread go on.
#[derive(Clone, Copy)]
enum Resume {
    /// Run until a signal (the return trap, a fault).
    Cont,
    /// Run until the next syscall entry or exit.
    Syscall,
    /// Run until the pending interrupt stops it; a group-stop (the process
    /// is `kill -STOP`ped) answers the interrupt too.
    ToStop,
}

/// Limits of one operation.
pub struct Limits {
    pub deadline: Instant,
    pub timeout: Duration,
    /// Cleanup that must happen even after reach was asked to stop (the
    /// scratch mapping's munmap): a SIGINT/SIGTERM does not abandon it.
    pub cleanup: bool,
}

impl Limits {
    pub fn new(timeout: Duration) -> Limits {
        Limits {
            deadline: Instant::now() + timeout,
            timeout,
            cleanup: false,
        }
    }

    fn for_cleanup() -> Limits {
        Limits {
            cleanup: true,
            ..Limits::new(Duration::from_secs(2))
        }
    }
}

/// Call the function at `addr` (named `what` in messages) with `args`.
/// Returns rax.
pub fn call_function(
    win: &mut StopWindow,
    what: &str,
    addr: u64,
    args: &[Arg],
    limits: &Limits,
    scratch_mmap: Option<u64>,
) -> Result<u64> {
    if args.len() > MAX_ARGS {
        return Err(CallError::TooManyArgs(args.len()).into());
    }
    let base = win.prepare()?;
    let placed = Placement::new(win, base.rsp, args, limits, scratch_mmap)?;
    let result = run_function(win, what, addr, &base, &placed, limits);
    settle_children(win, limits);
    let unmapped = placed.release(win);
    let value = result?;
    unmapped?;
    Ok(value)
}

fn run_function(
    win: &mut StopWindow,
    what: &str,
    addr: u64,
    base: &Regs,
    placed: &Placement,
    limits: &Limits,
) -> Result<u64> {
    let tid = win.call_tid;
    let (in_regs, on_stack) = placed.values.split_at(placed.values.len().min(ARG_REGS));
    // Return address, then the 7th argument on: rsp is 16-byte aligned at
    // the `call` the frame pretends to have been made with, so rsp ≡ 8
    // (mod 16) on entry.
    let args_at = (placed.stack_top - 8 * on_stack.len() as u64) & !15;
    let rsp = args_at - 8;
    let mut frame = Vec::with_capacity(8 * (on_stack.len() + 1));
    frame.extend_from_slice(&RETURN_ADDR.to_le_bytes());
    for v in on_stack {
        frame.extend_from_slice(&v.to_le_bytes());
    }
    write(win.pid, rsp, &frame)?;

    let mut r = *base;
    for (i, v) in in_regs.iter().enumerate() {
        regs::set_call_arg(&mut r, i, *v);
    }
    r.rip = addr;
    r.rsp = rsp;
    r.rax = 0; // al: number of vector registers used by a variadic call
    r.orig_rax = u64::MAX; // not in a system call: no restart logic
    r.eflags &= !(EFLAGS_DF | EFLAGS_TF);
    ptrace::set_regs(tid, &r).map_err(ptrace_err("PTRACE_SETREGS", tid))?;

    loop {
        match step(win, Resume::Cont, what, limits)? {
            Stop::Signal(sig) => {
                let now = ptrace::get_regs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
                if sig == libc::SIGSEGV && now.rip == RETURN_ADDR && now.rsp == rsp + 8 {
                    return Ok(now.rax);
                }
                return Err(fault(tid, sig, what, &now));
            }
            // A stray interrupt or syscall stop: keep going.
            _ => continue,
        }
    }
}

/// Make system call `nr` with `args` from a `syscall` instruction at
/// `insn`. Returns the kernel's value (`-errno` on failure).
pub fn raw_syscall(
    win: &mut StopWindow,
    what: &str,
    nr: u64,
    args: &[Arg],
    insn: u64,
    limits: &Limits,
) -> Result<i64> {
    if args.len() > SYSCALL_ARG_REGS {
        return Err(CallError::TooManySyscallArgs(args.len()).into());
    }
    let base = win.prepare()?;
    let placed = Placement::new(win, base.rsp, args, limits, None)?;
    let result = run_syscall(win, what, nr, &placed.values, insn, &base, limits);
    let unmapped = placed.release(win);
    let value = result?;
    unmapped?;
    Ok(value)
}

fn run_syscall(
    win: &mut StopWindow,
    what: &str,
    nr: u64,
    values: &[u64],
    insn: u64,
    base: &Regs,
    limits: &Limits,
) -> Result<i64> {
    let tid = win.call_tid;
    let mut r = *base;
    for (i, v) in values.iter().enumerate() {
        regs::set_syscall_arg(&mut r, i, *v);
    }
    r.rip = insn;
    r.rax = nr;
    r.orig_rax = u64::MAX;
    r.rsp = base.rsp - RED_ZONE;
    r.eflags &= !(EFLAGS_DF | EFLAGS_TF);
    ptrace::set_regs(tid, &r).map_err(ptrace_err("PTRACE_SETREGS", tid))?;

    // Entry stop, then exit stop: the result is in rax. A stop signal
    // arriving meanwhile makes the kernel leave a restart code (-512 to
    // -516, never seen by programs) at the exit stop and issue the call
    // again once the process is continued: follow it to the real result.
    let mut entered = false;
    let result = loop {
        match step(win, Resume::Syscall, what, limits)? {
            Stop::Syscall if !entered => entered = true,
            Stop::Syscall => {
                entered = false;
                let now = ptrace::get_regs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
                let ret = now.rax as i64;
                if !(-516..=-512).contains(&ret) {
                    break ret;
                }
            }
            Stop::Signal(sig) => {
                let now = ptrace::get_regs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
                return Err(fault(tid, sig, what, &now));
            }
            _ => continue,
        }
    };
    // A syscall-exit stop returns straight to user space without passing
    // the restart logic, so restoring the interrupted thread there would
    // leak a raw -ERESTARTSYS into it. Bring it to a signal-handling stop
    // first (one with no user code run in between).
    ptrace::interrupt(tid).map_err(ptrace_err("PTRACE_INTERRUPT", tid))?;
    loop {
        match step(win, Resume::ToStop, what, limits)? {
            Stop::Interrupted | Stop::GroupStop(_) => return Ok(result),
            // A seccomp SIGSYS is delivered after the exit stop.
            Stop::Signal(sig) => {
                let now = ptrace::get_regs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
                return Err(fault(tid, sig, what, &now));
            }
            _ => continue,
        }
    }
}

/// Resume the call thread and wait for a stop worth looking at. Job
/// control passes through (a SIGSTOP sent meanwhile stops the process after
/// the window, as it would have); a deadline, or SIGINT/SIGTERM to reach,
/// abandons the operation with the thread stopped and ready to restore.
fn step(win: &mut StopWindow, resume: Resume, what: &str, limits: &Limits) -> Result<Stop> {
    let tid = win.call_tid;
    let go = |sig: i32| match resume {
        Resume::Cont | Resume::ToStop => ptrace::cont(tid, sig),
        Resume::Syscall => ptrace::cont_syscall(tid, sig),
    };
    go(0).map_err(ptrace_err("PTRACE_CONT", tid))?;
    let _ticker = interrupt::Ticker::start(50);
    loop {
        match next_stop(win) {
            Ok(stop @ Stop::GroupStop(_)) if matches!(resume, Resume::ToStop) => return Ok(stop),
            Ok(Stop::GroupStop(_)) => go(0).map_err(ptrace_err("PTRACE_CONT", tid))?,
            Ok(Stop::Event(event)) => {
                // fork, vfork, clone: hold on to the new process or thread
                // from the start, or it may outlive the window unnoticed.
                if matches!(
                    event,
                    libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK | libc::PTRACE_EVENT_CLONE
                ) && let Ok(child) = ptrace::event_msg(tid)
                {
                    win.adopt_later(child);
                }
                go(0).map_err(ptrace_err("PTRACE_CONT", tid))?
            }
            Ok(Stop::Signal(libc::SIGSTOP)) => {
                go(libc::SIGSTOP).map_err(ptrace_err("PTRACE_CONT", tid))?
            }
            Ok(Stop::Exited(_) | Stop::Killed(_)) | Err(Errno::ECHILD | Errno::ESRCH) => {
                win.forget(tid);
                return Err(Error::TargetExited(win.pid));
            }
            Ok(Stop::Exec) => {
                win.discard_saved();
                return Err(CallError::Exec(what.to_string()).into());
            }
            Ok(stop) => return Ok(stop),
            Err(Errno::EINTR) => {
                let reason = if let Some(sig) = interrupt::pending().filter(|_| !limits.cleanup) {
                    CallError::Interrupted(sig)
                } else if Instant::now() >= limits.deadline {
                    CallError::Timeout {
                        what: what.to_string(),
                        secs: limits.timeout.as_secs_f64().ceil() as u64,
                    }
                } else {
                    continue;
                };
                return Err(abandon(win, reason));
            }
            Err(e) => return Err(ptrace_err("waitpid", tid)(e)),
        }
    }
}

/// The next stop of the call thread. Other threads of a dying process exit
/// meanwhile, and must be reaped (a traced thread stays a zombie until its
/// tracer waits for it, and the group leader's own exit is reported only
/// after that), so wait for any thread and forget those that are gone.
fn next_stop(win: &mut StopWindow) -> std::result::Result<Stop, Errno> {
    loop {
        let (tid, stop) = ptrace::wait_any()?;
        if tid == win.call_tid {
            return Ok(stop);
        }
        route_other(win, tid, stop);
    }
}

/// A stop of some tracee other than the call thread.
fn route_other(win: &mut StopWindow, tid: Tid, stop: Stop) {
    if win.threads.iter().any(|t| t.tid == tid) {
        if stop.is_gone() {
            win.forget(tid);
        }
    } else {
        tend_child(win, tid, stop);
    }
}

/// A process or thread started by the injected code, attached by the
/// kernel (`PTRACE_O_TRACEFORK`/`TRACEVFORK`/`TRACECLONE`). It inherited
/// reach's call-time signal mask: give it the target's own first. A thread
/// is part of the target: release it. A forked process is a copy of the
/// call thread, so when it returns from the call it would crash at reach's
/// return address 0: let it run until it execs (then release it: `system()`
/// and `posix_spawn` work) or comes back to that address (then make it
/// `_exit(0)` instead).
fn tend_child(win: &mut StopWindow, tid: Tid, stop: Stop) {
    if stop.is_gone() {
        win.drop_child(tid);
        return;
    }
    if win.adopt(tid)
        && let Some(mask) = win.original_sigmask()
    {
        let _ = ptrace::set_sigmask(tid, mask);
    }
    if procinfo::tgid(tid) == Some(win.pid) {
        let sig = match stop {
            Stop::Signal(sig) => sig,
            _ => 0,
        };
        let _ = ptrace::detach(tid, sig);
        win.drop_child(tid);
        return;
    }
    let done = match stop {
        Stop::Exec => {
            let _ = ptrace::detach(tid, 0);
            true
        }
        Stop::Signal(libc::SIGSEGV) => match ptrace::get_regs(tid) {
            Ok(r) if r.rip == RETURN_ADDR => {
                exit_quietly(tid, r);
                true
            }
            _ => ptrace::cont(tid, libc::SIGSEGV).is_err(),
        },
        Stop::Signal(sig) => ptrace::cont(tid, sig).is_err(),
        _ => ptrace::cont(tid, 0).is_err(),
    };
    if done {
        win.drop_child(tid);
    }
}

/// Turn a stopped forked child into one that makes `exit_group(0)`.
fn exit_quietly(tid: Tid, mut r: Regs) {
    let Ok(insn) = find_syscall_insn(tid) else {
        // SAFETY-free fallback: a child reach cannot steer is ended.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(tid), nix::sys::signal::SIGKILL);
        let _ = ptrace::detach(tid, 0);
        return;
    };
    r.rip = insn;
    r.rax = libc::SYS_exit_group as u64;
    r.rdi = 0;
    r.orig_rax = u64::MAX;
    if ptrace::set_regs(tid, &r).is_ok() {
        let _ = ptrace::detach(tid, 0);
    }
}

/// After a call: give children it forked until the deadline to exec or
/// exit; any still running then are released as they are.
fn settle_children(win: &mut StopWindow, limits: &Limits) {
    let _ticker = interrupt::Ticker::start(50);
    while win.has_children() && Instant::now() < limits.deadline {
        match ptrace::wait_any() {
            Ok((tid, stop)) => route_other(win, tid, stop),
            Err(Errno::EINTR) if interrupt::pending().is_none() => continue,
            Err(_) => break,
        }
    }
}

/// Take the call thread back from the injected code, wherever it is, so
/// the window can restore it.
fn abandon(win: &mut StopWindow, reason: CallError) -> Error {
    let tid = win.call_tid;
    if ptrace::interrupt(tid).is_err() {
        return reason.into();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match next_stop(win) {
            Ok(Stop::Interrupted | Stop::GroupStop(_)) => return reason.into(),
            Ok(s) if s.is_gone() => {
                win.forget(tid);
                return Error::TargetExited(win.pid);
            }
            // Finished or crashed meanwhile: let the interrupt stop follow.
            Ok(_) => {
                if ptrace::cont(tid, 0).is_err() {
                    return reason.into();
                }
            }
            Err(Errno::EINTR) if Instant::now() < deadline => continue,
            Err(_) => return reason.into(),
        }
    }
}

fn fault(tid: i32, sig: i32, what: &str, now: &Regs) -> Error {
    let info = ptrace::get_siginfo(tid).ok();
    if sig == libc::SIGSYS && info.is_some_and(|i| i.code == 1 /* SYS_SECCOMP */) {
        let nr = info.map(|i| i.syscall).unwrap_or(-1);
        let syscall = syscalls::Sysno::new(nr as usize)
            .map(|s| s.name().to_string())
            .unwrap_or_else(|| nr.to_string());
        return CallError::Seccomp {
            what: what.to_string(),
            syscall,
        }
        .into();
    }
    let detail = match (sig, info) {
        (libc::SIGSEGV | libc::SIGBUS, Some(i)) => format!(" (bad access to {:#x})", i.addr),
        _ => String::new(),
    };
    CallError::Fault {
        signal: signal_name(sig),
        function: what.to_string(),
        pc: now.rip,
        detail,
    }
    .into()
}

fn write(pid: i32, addr: u64, data: &[u8]) -> Result<()> {
    memory::write(pid, addr, data).map_err(|errno| Error::Write {
        pid,
        addr,
        len: data.len(),
        errno,
    })
}

/// Where an operation's arguments went: their register values, the top of
/// the stack below them, and any scratch mapping to unmap afterwards.
struct Placement {
    values: Vec<u64>,
    stack_top: u64,
    mapping: Option<(u64, u64, u64)>, // (addr, len, munmap syscall insn)
}

impl Placement {
    /// Copy strings and blobs into memory reach owns for the window — the
    /// thread's stack below its red zone, or a fresh anonymous mapping for
    /// large data — never the target's heap.
    fn new(
        win: &mut StopWindow,
        rsp: u64,
        args: &[Arg],
        limits: &Limits,
        scratch_insn: Option<u64>,
    ) -> Result<Placement> {
        let mut top = (rsp - RED_ZONE) & !15;
        let bytes: usize = args
            .iter()
            .map(|a| match a {
                Arg::Bytes(b) => (b.len() + 15) & !15,
                Arg::Int(_) => 0,
            })
            .sum();
        let mut mapping = None;
        let mut cursor = if bytes > STACK_BYTES_MAX {
            let insn = scratch_insn.ok_or_else(|| {
                CallError::Scratch(format!(
                    "{bytes} bytes of arguments need a scratch mapping, and no syscall instruction was found"
                ))
            })?;
            let len = (bytes as u64 + 4095) & !4095;
            let addr = map_scratch(win, len, insn, limits)?;
            mapping = Some((addr, len, insn));
            addr
        } else {
            top -= bytes as u64;
            top
        };
        let mut values = Vec::with_capacity(args.len());
        for arg in args {
            match arg {
                Arg::Int(v) => values.push(*v),
                Arg::Bytes(b) => {
                    write(win.pid, cursor, b)?;
                    values.push(cursor);
                    cursor += (b.len() as u64 + 15) & !15;
                }
            }
        }
        Ok(Placement {
            values,
            stack_top: top,
            mapping,
        })
    }

    /// Unmap the scratch mapping, even when the call failed or reach was
    /// interrupted (then with a short deadline of its own).
    fn release(&self, win: &mut StopWindow) -> Result<()> {
        let Some((addr, len, insn)) = self.mapping else {
            return Ok(());
        };
        let args = [Arg::Int(addr), Arg::Int(len)];
        let limits = Limits::for_cleanup();
        raw_syscall(win, "munmap", libc::SYS_munmap as u64, &args, insn, &limits).map(drop)
    }
}

fn map_scratch(win: &mut StopWindow, len: u64, insn: u64, limits: &Limits) -> Result<u64> {
    let args = [
        Arg::Int(0),
        Arg::Int(len),
        Arg::Int((libc::PROT_READ | libc::PROT_WRITE) as u64),
        Arg::Int((libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64),
        Arg::Int(u64::MAX),
        Arg::Int(0),
    ];
    let addr = raw_syscall(win, "mmap", libc::SYS_mmap as u64, &args, insn, limits)?;
    if (-4095..0).contains(&addr) {
        return Err(
            CallError::Scratch(format!("mmap failed: {}", Errno::from_raw(-addr as i32))).into(),
        );
    }
    Ok(addr as u64)
}

/// Find the bytes `0f 05` (`syscall`) in an executable mapping of `pid`,
/// the vDSO first. Any occurrence will do, aligned or not: the CPU decodes
/// from wherever rip points. Nothing is ever written into code.
pub fn find_syscall_insn(pid: i32) -> Result<u64> {
    for (start, end, _) in super::symbols::executable_mappings(pid)? {
        let mut addr = start;
        while addr < end {
            let len = ((end - addr) as usize).min(1 << 20);
            let mut buf = vec![0u8; len];
            if memory::read(pid, addr, &mut buf).is_err() {
                break;
            }
            if let Some(i) = buf.windows(2).position(|w| w == [0x0f, 0x05]) {
                return Ok(addr + i as u64);
            }
            if addr + len as u64 >= end {
                break;
            }
            // Overlap by one byte: the two bytes may straddle chunks.
            addr += len as u64 - 1;
        }
    }
    Err(CallError::NoSyscallInstruction(pid).into())
}
