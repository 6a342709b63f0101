//! Running injected code on the stopped call thread, and coming back.
//!
//! A function call gets a System V frame on reach's stack: integer
//! arguments in rdi, rsi, rdx, rcx, r8, r9, the rest on the stack; rsp
//! 16-byte aligned at the `call` it pretends to be (so ≡ 8 mod 16 on
//! entry); al = 0 for variadic callees; DF clear; the return address is
//! reach's restorer; `orig_rax = -1`, so the kernel's system-call restart
//! logic (arch/x86/kernel/signal.c, `arch_do_signal_or_restart`) leaves
//! the frame alone. A raw system call starts at reach's syscall stub,
//! which falls into the restorer. The restore frame is written first and
//! the registers last, so no instant exists at which reach's death leaves
//! a half-built call.
//!
//! The thread runs with every asynchronous signal blocked (they stay
//! pending and are delivered once, after the restore) and is resumed with
//! `PTRACE_SYSCALL`, so reach sees the restorer's `gettid` at its syscall
//! entry: that is completion. What the callee does to its own signal mask
//! (`rt_sigprocmask`) is carried out on a copy of the thread's own mask —
//! the callee sees that mask, and it is what the thread gets back — while
//! the real one keeps signals blocked until the restore. A fault in the callee (a signal the kernel
//! raised, `si_code > 0`), a timeout or Ctrl-C abandons the call; a
//! synchronous signal some process *sent* meanwhile is kept and sent again
//! after the restore, never taken for a crash.

use super::mapping::Mapping;
use super::window::Window;
use super::{Arg, EngineError, Limits, signal_name};
use crate::process::{Error, Result, procinfo};
use crate::sys::interrupt;
use crate::sys::memory;
use crate::sys::ptrace::{self, Stop, Tid};
use crate::sys::x86_64::{
    self as x86, ARG_REGS, EFLAGS_DF, EFLAGS_TF, Regs, SYSCALL_ARG_REGS, is_restart_code,
};
use nix::errno::Errno;
use std::time::{Duration, Instant};

/// Signals the kernel raises for what the thread itself did.
const SYNCHRONOUS: u64 = bit(libc::SIGSEGV)
    | bit(libc::SIGBUS)
    | bit(libc::SIGILL)
    | bit(libc::SIGFPE)
    | bit(libc::SIGTRAP)
    | bit(libc::SIGSYS);

const fn bit(sig: i32) -> u64 {
    1 << (sig - 1)
}

/// The mask injected code runs with: every signal blocked but the
/// synchronous ones the thread itself does not block. Blocking SIGSEGV
/// would make the kernel reset the target's handler to SIG_DFL if the
/// callee faulted (kernel/signal.c, `force_sig_info_to_task`); one the
/// thread already blocks stays blocked (a pending one sent with `kill`
/// must stay pending).
pub fn call_mask(saved: u64) -> u64 {
    !(SYNCHRONOUS & !saved)
}

/// Call the function at `addr` with `args`; rax.
pub fn function(
    win: &mut Window,
    map: &Mapping,
    what: &str,
    addr: u64,
    args: &[Arg],
    limits: &Limits,
) -> Result<u64> {
    prepare(win, map)?;
    let placed = map.place(win, args, limits)?;
    let values = &placed.values;
    let (in_regs, on_stack) = values.split_at(values.len().min(ARG_REGS));
    // The 7th argument on sits just above the return address.
    let args_at = (map.stack_top() - 8 * on_stack.len() as u64) & !15;
    let rsp = args_at - 8;
    let mut stack = Vec::with_capacity(8 * (on_stack.len() + 1));
    stack.extend_from_slice(&map.restorer().to_le_bytes());
    for v in on_stack {
        stack.extend_from_slice(&v.to_le_bytes());
    }
    write(win.pid, rsp, &stack)?;
    let mut r = win.saved()?.regs;
    for (i, v) in in_regs.iter().enumerate() {
        x86::set_call_arg(&mut r, i, *v);
    }
    r.rip = addr;
    r.rsp = rsp;
    r.rax = 0; // al: vector registers used by a variadic call
    r.orig_rax = u64::MAX;
    r.eflags &= !(EFLAGS_DF | EFLAGS_TF);
    let result = run(win, map, r, what, limits);
    // After an abandoned call the thread is stopped and restorable, so the
    // extra mapping can still go.
    let unplaced = match (&result, win.lost) {
        (Err(Error::TargetExited(_) | Error::TargetKilled { .. }), _) | (_, true) => Ok(()),
        _ => map.unplace(win, &placed, &cleanup_limits()),
    };
    let value = result?;
    unplaced?;
    Ok(value)
}

/// Make system call `nr` with `args` through the mapping's syscall stub;
/// the kernel's value (`-errno` on failure).
pub fn syscall(
    win: &mut Window,
    map: &Mapping,
    what: &str,
    nr: u64,
    args: &[Arg],
    limits: &Limits,
) -> Result<i64> {
    prepare(win, map)?;
    let placed = map.place(win, args, limits)?;
    let result = stub_syscall_values(win, map, what, nr, &placed.values, limits);
    if !win.lost {
        let _ = map.unplace(win, &placed, &cleanup_limits());
    }
    result
}

/// A system call through the stub, with integer arguments (reach's own:
/// the mapping's second half, its name, extra argument pages).
pub fn stub_syscall(
    win: &mut Window,
    map: &Mapping,
    what: &str,
    nr: u64,
    args: &[u64],
    limits: &Limits,
) -> Result<i64> {
    prepare(win, map)?;
    stub_syscall_values(win, map, what, nr, args, limits)
}

fn stub_syscall_values(
    win: &mut Window,
    map: &Mapping,
    what: &str,
    nr: u64,
    args: &[u64],
    limits: &Limits,
) -> Result<i64> {
    let mut r = win.saved()?.regs;
    for (i, v) in args.iter().take(SYSCALL_ARG_REGS).enumerate() {
        x86::set_syscall_arg(&mut r, i, *v);
    }
    r.rip = map.syscall_stub();
    r.rax = nr;
    r.rsp = map.stack_top();
    r.orig_rax = u64::MAX;
    r.eflags &= !(EFLAGS_DF | EFLAGS_TF);
    run(win, map, r, what, limits).map(|v| v as i64)
}

/// The thread is ready for injected code: options set, restore frame
/// written.
fn prepare(win: &mut Window, map: &Mapping) -> Result<()> {
    win.arm()?;
    map.write_frame(win)
}

/// Set the registers (the moment the thread becomes reach's), run until
/// the restorer's stop, and bring the thread to an interrupt stop from
/// which it can be restored. The value is what the restorer kept in rdi.
fn run(win: &mut Window, map: &Mapping, regs: Regs, what: &str, limits: &Limits) -> Result<u64> {
    let tid = win.call_tid();
    let saved_mask = win.saved()?.sigmask;
    let mut own_mask = win.own_mask.unwrap_or(saved_mask);
    ptrace::set_regs(tid, &regs).map_err(Error::from)?;
    ptrace::set_sigmask(tid, call_mask(saved_mask)).map_err(Error::from)?;
    ptrace::cont_syscall(tid, 0).map_err(Error::from)?;
    let _ticker = interrupt::Ticker::start(20);
    // A skipped rt_sigprocmask whose exit stop is next.
    let mut emulated = false;
    let value = loop {
        let stop = match ptrace::wait(tid) {
            Ok(stop) => stop,
            Err(e) if e.errno == Errno::EINTR => {
                win.reap_if_dying();
                if let Some(sig) = limits.interrupted() {
                    return Err(abandon(win, EngineError::Interrupted(sig).into(), false));
                }
                if Instant::now() >= limits.deadline {
                    let timeout = EngineError::Timeout {
                        what: what.to_string(),
                        secs: limits.timeout.as_secs_f64().ceil() as u64,
                    };
                    return Err(abandon(win, timeout.into(), false));
                }
                continue;
            }
            Err(e) => return Err(gone(win, e.into())),
        };
        match stop {
            Stop::Syscall => {
                let mut now = ptrace::get_regs(tid).map_err(Error::from)?;
                if now.rip == map.stop_rip() && now.orig_rax == libc::SYS_gettid as u64 {
                    break now.rdi;
                }
                if emulated {
                    // Its exit: the call succeeded.
                    emulated = false;
                    now.rax = 0;
                    ptrace::set_regs(tid, &now).map_err(Error::from)?;
                } else if now.orig_rax == libc::SYS_rt_sigprocmask as u64
                    && now.rax == ENOSYS_RET
                    && let Some(mask) = sigprocmask_on_copy(win.pid, &now, own_mask)
                {
                    own_mask = mask;
                    emulated = true;
                    now.orig_rax = u64::MAX; // skip the real one
                    ptrace::set_regs(tid, &now).map_err(Error::from)?;
                }
                ptrace::cont_syscall(tid, 0).map_err(Error::from)?;
            }
            Stop::Signal(sig) => match on_signal(win, tid, sig, what) {
                Ok(deliver) => ptrace::cont_syscall(tid, deliver).map_err(Error::from)?,
                Err(fault) => return Err(abandon(win, fault, true)),
            },
            Stop::Spawned => {
                adopt_child(win, tid, limits);
                ptrace::cont_syscall(tid, 0).map_err(Error::from)?;
            }
            Stop::Exec => {
                win.discard_saved();
                return Err(EngineError::Exec(what.to_string()).into());
            }
            Stop::Exited(_) | Stop::Killed(_) => return Err(gone_stop(win, tid, stop, what)),
            Stop::Interrupted | Stop::GroupStop(_) | Stop::Event(_) => {
                ptrace::cont_syscall(tid, 0).map_err(Error::from)?
            }
        }
    };
    win.own_mask = Some(own_mask);
    to_interrupt_stop(win, tid, what)?;
    Ok(value)
}

/// rax at a syscall-entry stop.
const ENOSYS_RET: u64 = (-libc::ENOSYS) as i64 as u64;

/// Carry out the `rt_sigprocmask(how, set, oldset, size)` the call thread
/// is entering (`regs`) on `mask`, the thread's own mask: write `mask` to
/// `oldset`, return the new mask. `None` when the kernel must answer
/// instead (a bad argument: it will say EINVAL or EFAULT).
fn sigprocmask_on_copy(pid: i32, regs: &Regs, mask: u64) -> Option<u64> {
    if regs.r10 != 8 {
        return None;
    }
    let new = if regs.rsi == 0 {
        mask
    } else {
        let mut b = [0u8; 8];
        memory::read(pid, regs.rsi, &mut b).ok()?;
        let set = u64::from_le_bytes(b);
        match regs.rdi as i32 {
            libc::SIG_BLOCK => mask | set,
            libc::SIG_UNBLOCK => mask & !set,
            libc::SIG_SETMASK => set,
            _ => return None,
        }
    };
    if regs.rdx != 0 {
        memory::write(pid, regs.rdx, &mask.to_le_bytes()).ok()?;
    }
    // SIGKILL and SIGSTOP cannot be blocked (kernel/signal.c).
    Some(new & !(bit(libc::SIGKILL) | bit(libc::SIGSTOP)))
}

/// What to do about signal `sig` at a signal-delivery-stop of the call
/// thread while injected code runs: `Ok(sig)` to deliver (0: none now),
/// `Err` for a fault of the injected code.
fn on_signal(win: &mut Window, tid: Tid, sig: i32, what: &str) -> Result<i32> {
    if matches!(
        sig,
        libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
    ) {
        // Job control passes through: the process stops after the window,
        // as it would have.
        return Ok(sig);
    }
    let info = ptrace::get_siginfo(tid).map_err(Error::from)?;
    if bit(sig) & SYNCHRONOUS == 0 {
        // Blocked while injected code runs: cannot arrive. (SIGKILL never
        // stops.)
        return Ok(sig);
    }
    if !info.is_fault() {
        // Sent by some process, not raised by the callee: keep it for the
        // thread, after the restore.
        win.deferred.push(sig);
        return Ok(0);
    }
    let pc = ptrace::get_regs(tid).map(|r| r.rip).unwrap_or(0);
    if sig == libc::SIGSYS && info.code == 1 {
        // SYS_SECCOMP: the filter refused a system call.
        let nr = info.syscall;
        let name = syscalls::Sysno::new(nr as usize)
            .map(|s| s.name().to_string())
            .unwrap_or_else(|| nr.to_string());
        return Err(EngineError::Fault {
            signal: "SIGSYS",
            function: what.to_string(),
            pc,
            detail: format!(" (the target's seccomp filter refused system call {name})"),
        }
        .into());
    }
    let detail = match sig {
        libc::SIGSEGV | libc::SIGBUS => format!(" (bad access to {:#x})", info.addr),
        _ => String::new(),
    };
    Err(EngineError::Fault {
        signal: signal_name(sig),
        function: what.to_string(),
        pc,
        detail,
    }
    .into())
}

/// From a syscall or signal stop, bring the call thread to an interrupt
/// stop (inside the kernel, before it runs any more user code): the only
/// kind of stop from which new registers resume through the kernel's
/// restart logic.
fn to_interrupt_stop(win: &mut Window, tid: Tid, what: &str) -> Result<()> {
    ptrace::interrupt(tid).map_err(Error::from)?;
    ptrace::cont(tid, 0).map_err(Error::from)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match ptrace::wait(tid) {
            Ok(Stop::Interrupted | Stop::GroupStop(_)) => return Ok(()),
            Ok(Stop::Signal(sig)) => {
                let deliver = on_signal(win, tid, sig, what).unwrap_or_default();
                ptrace::cont(tid, deliver).map_err(Error::from)?;
            }
            Ok(stop @ (Stop::Exited(_) | Stop::Killed(_))) => {
                return Err(gone_stop(win, tid, stop, what));
            }
            Ok(_) => ptrace::cont(tid, 0).map_err(Error::from)?,
            Err(e) if e.errno == Errno::EINTR && Instant::now() < deadline => {
                win.reap_if_dying();
            }
            Err(e) => return Err(gone(win, e.into())),
        }
    }
}

/// Take the call thread back from injected code, wherever it is, so the
/// window can restore it; `reason` is what the caller is told.
///
/// `PTRACE_INTERRUPT` of a thread resumed with `PTRACE_SYSCALL` and
/// sleeping in a system call is reported as a syscall-exit stop, not an
/// interrupt stop (ptrace(2)), and a signal-delivery-stop may come first:
/// at each such stop the interrupt is asked for again. A thread that
/// cannot be had back within a few seconds (a callee sleeping
/// uninterruptibly) is left running the function: reach's mapping stays,
/// and when the function returns the thread restores itself through the
/// frame, exactly as if reach had died.
fn abandon(win: &mut Window, reason: Error, stopped: bool) -> Error {
    let tid = win.call_tid();
    let deadline = Instant::now() + Duration::from_secs(5);
    let _ticker = interrupt::Ticker::start(20);
    let _ = ptrace::interrupt(tid);
    if stopped {
        // At a signal-delivery-stop (a fault) the resume discards the
        // signal; the pending interrupt then stops the thread before it
        // runs on.
        let _ = ptrace::cont(tid, 0);
    }
    loop {
        match ptrace::wait(tid) {
            Ok(Stop::Interrupted | Stop::GroupStop(_)) => return reason,
            Ok(stop @ (Stop::Exited(_) | Stop::Killed(_))) => {
                return gone_stop(win, tid, stop, "the call");
            }
            Ok(stop) => {
                let deliver = match stop {
                    Stop::Spawned => {
                        adopt_child(win, tid, &cleanup_limits());
                        0
                    }
                    Stop::Signal(sig) => on_signal(win, tid, sig, "").unwrap_or_default(),
                    _ => 0,
                };
                let _ = ptrace::interrupt(tid);
                let _ = ptrace::cont(tid, deliver);
            }
            Err(e) if e.errno == Errno::EINTR && Instant::now() < deadline => {
                win.reap_if_dying();
            }
            Err(e) if e.errno == Errno::EINTR => {
                win.lose_call_thread();
                return left_running(win.pid, tid, reason);
            }
            Err(e) => return gone(win, e.into()),
        }
    }
}

/// What to say of a call thread left running injected code: why reach
/// gave up, and where the thread is.
fn left_running(pid: i32, tid: Tid, reason: Error) -> Error {
    let cause = match reason {
        Error::Engine(EngineError::Timeout { what, secs }) => {
            format!("{what} timed out after {secs} s")
        }
        Error::Engine(EngineError::Interrupted(sig)) => {
            format!("interrupted by {}", signal_name(sig))
        }
        other => other.to_string(),
    };
    let wchan = procinfo::task_wchan(pid, tid);
    let state = match procinfo::task_state(pid, tid) {
        Some('D') => format!("in uninterruptible sleep in {wchan}"),
        Some(s) => format!("state {s} in {wchan}"),
        None => "gone".into(),
    };
    EngineError::LeftRunning { cause, state }.into()
}

/// The call thread stopped existing: say whether the process did too.
fn gone_stop(win: &mut Window, tid: Tid, stop: Stop, what: &str) -> Error {
    win.forget(tid);
    let pid = win.pid;
    if tid == pid || procinfo::all_gone(pid) {
        return match stop {
            Stop::Killed(sig) => Error::TargetKilled {
                pid,
                signal: signal_name(sig),
            },
            _ => Error::TargetExited(pid),
        };
    }
    EngineError::ThreadEnded(what.to_string()).into()
}

/// A wait or request failed on the call thread: ESRCH/ECHILD mean it is
/// gone.
fn gone(win: &mut Window, e: Error) -> Error {
    let tid = win.call_tid();
    match &e {
        Error::ThreadExited(_) => gone_stop(win, tid, Stop::Exited(0), "the call"),
        _ => e,
    }
}

/// A process or thread the injected code started (reported at a
/// fork/vfork/clone event stop): give it the thread's own signal mask
/// rather than reach's call-time one, and let it go. A forked child that
/// returns into the restorer ends there with `exit(0)` (its tid is not the
/// owner's).
fn adopt_child(win: &mut Window, tid: Tid, limits: &Limits) {
    let Ok(child) = ptrace::event_msg(tid) else {
        return;
    };
    let mask = match win.own_mask {
        Some(mask) => mask,
        None => win.saved().map_or(0, |s| s.sigmask),
    };
    // Its first stop comes right away; then it is ours to change.
    let _ticker = interrupt::Ticker::start(20);
    loop {
        match ptrace::wait(child) {
            Ok(s) if s.is_gone() => return,
            Ok(_) => break,
            Err(e) if e.errno == Errno::EINTR && Instant::now() < limits.deadline => continue,
            Err(_) => return,
        }
    }
    let _ = ptrace::set_sigmask(child, mask);
    let _ = ptrace::detach(child, 0);
}

/// Make a system call from a `syscall` instruction of the target's own
/// (`insn`, found in its vDSO), with integer arguments: only to create or
/// remove reach's mapping, which is when the mapping's own code cannot be
/// used. The thread's registers are put back as saved right after, before
/// anything else happens, to keep that moment short.
pub fn bare_syscall(
    win: &mut Window,
    insn: u64,
    nr: u64,
    args: &[u64],
    limits: &Limits,
) -> Result<i64> {
    let tid = win.call_tid();
    let saved = win.saved()?;
    let (base, mask) = (saved.regs, saved.sigmask);
    let mut r = base;
    for (i, v) in args.iter().enumerate() {
        x86::set_syscall_arg(&mut r, i, *v);
    }
    r.rip = insn;
    r.rax = nr;
    r.orig_rax = u64::MAX;
    r.eflags &= !(EFLAGS_DF | EFLAGS_TF);
    ptrace::set_regs(tid, &r).map_err(Error::from)?;
    ptrace::set_sigmask(tid, call_mask(mask)).map_err(Error::from)?;
    // Entry stop, then exit stop: the result is in rax. A stop signal
    // arriving meanwhile makes the kernel leave a restart code at the exit
    // stop and issue the call again once the thread goes on: follow it.
    ptrace::cont_syscall(tid, 0).map_err(Error::from)?;
    let _ticker = interrupt::Ticker::start(20);
    let mut entered = false;
    let value = loop {
        match ptrace::wait(tid) {
            Ok(Stop::Syscall) if !entered => entered = true,
            Ok(Stop::Syscall) => {
                entered = false;
                let now = ptrace::get_regs(tid).map_err(Error::from)?;
                if !is_restart_code(now.rax) {
                    break now.rax as i64;
                }
            }
            Ok(Stop::Signal(sig)) => match on_signal(win, tid, sig, "reach's mmap") {
                Ok(deliver) => {
                    ptrace::cont_syscall(tid, deliver).map_err(Error::from)?;
                    continue;
                }
                Err(fault) => return Err(abandon(win, fault, true)),
            },
            Ok(stop @ (Stop::Exited(_) | Stop::Killed(_))) => {
                return Err(gone_stop(win, tid, stop, "reach's mmap"));
            }
            Ok(_) => {}
            // Ctrl-C does not cut it short: one system call, which would
            // complete anyway, and whose result reach must know (an mmap
            // abandoned would leave a mapping nobody knows of). The
            // operation notices the signal right after.
            Err(e) if e.errno == Errno::EINTR => {
                win.reap_if_dying();
                if Instant::now() >= limits.deadline {
                    return Err(abandon(
                        win,
                        EngineError::Timeout {
                            what: "reach's own system call".into(),
                            secs: limits.timeout.as_secs_f64().ceil() as u64,
                        }
                        .into(),
                        false,
                    ));
                }
                continue;
            }
            Err(e) => return Err(gone(win, e.into())),
        }
        ptrace::cont_syscall(tid, 0).map_err(Error::from)?;
    };
    to_interrupt_stop(win, tid, "reach's mmap")?;
    ptrace::set_regs(tid, &base).map_err(Error::from)?;
    ptrace::set_sigmask(tid, mask).map_err(Error::from)?;
    Ok(value)
}

fn cleanup_limits() -> Limits {
    Limits::for_cleanup()
}

fn write(pid: i32, addr: u64, data: &[u8]) -> Result<()> {
    memory::write(pid, addr, data).map_err(|errno| Error::Write {
        pid,
        addr,
        len: data.len(),
        errno,
    })
}

pub fn read_i32(pid: i32, addr: u64) -> Option<i32> {
    let mut b = [0u8; 4];
    memory::read(pid, addr, &mut b).ok()?;
    Some(i32::from_le_bytes(b))
}

pub fn write_i32(pid: i32, addr: u64, value: i32) {
    let _ = memory::write(pid, addr, &value.to_le_bytes());
}

/// The address of errno for the thread whose thread pointer is `fs_base`,
/// read off `__errno_location`'s code when it is one of the two forms it
/// takes (no call needed):
///
/// - glibc: `mov errno@gottpoff(%rip),%rax; add %fs:0,%rax; ret`, the TLS
///   offset in the GOT;
/// - musl: `mov %fs:0,%rax; add $off,%rax; ret`, an offset in the thread
///   descriptor.
///
/// Either may start with `endbr64`. `%fs:0` holds the thread pointer.
pub fn errno_from_code(pid: i32, errno_fn: u64, fs_base: u64) -> Option<u64> {
    const ENDBR64: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa];
    const ADD_FS0_RAX: [u8; 9] = [0x64, 0x48, 0x03, 0x04, 0x25, 0, 0, 0, 0];
    const MOV_FS0_RAX: [u8; 9] = [0x64, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0];
    let mut code = [0u8; 32];
    memory::read(pid, errno_fn, &mut code).ok()?;
    let skip = if code[..4] == ENDBR64 { 4 } else { 0 };
    let c = &code[skip..];
    let start = errno_fn + skip as u64;
    let tp = {
        let mut b = [0u8; 8];
        memory::read(pid, fs_base, &mut b).ok()?;
        u64::from_le_bytes(b)
    };
    if c[..3] == [0x48, 0x8b, 0x05] && c[7..16] == ADD_FS0_RAX && c[16] == 0xc3 {
        let disp = i32::from_le_bytes(c[3..7].try_into().unwrap()) as i64;
        let got = (start as i64 + 7 + disp) as u64;
        let mut b = [0u8; 8];
        memory::read(pid, got, &mut b).ok()?;
        return Some(tp.wrapping_add(u64::from_le_bytes(b)));
    }
    if c[..9] == MOV_FS0_RAX {
        let rest = &c[9..];
        if rest[..3] == [0x48, 0x83, 0xc0] && rest[4] == 0xc3 {
            return Some(tp.wrapping_add(rest[3] as i8 as i64 as u64));
        }
        if rest[..2] == [0x48, 0x05] && rest[6] == 0xc3 {
            let imm = i32::from_le_bytes(rest[2..6].try_into().unwrap()) as i64;
            return Some(tp.wrapping_add(imm as u64));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_mask_leaves_only_unblocked_faults_deliverable() {
        let m = call_mask(0);
        assert_eq!(!m, SYNCHRONOUS);
        // A thread that blocks SIGBUS keeps it blocked.
        assert_ne!(call_mask(bit(libc::SIGBUS)) & bit(libc::SIGBUS), 0);
        assert_ne!(m & bit(libc::SIGUSR1), 0);
    }
}
