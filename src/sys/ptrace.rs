//! ptrace requests on one thread, and what its stops mean.
//!
//! Threads are always attached with `PTRACE_SEIZE` (never `PTRACE_ATTACH`,
//! which sends a SIGSTOP the target could see) and never with
//! `PTRACE_O_EXITKILL`: if reach dies, the kernel detaches and the target
//! lives. Wait statuses are decoded by hand because nix's `WaitStatus`
//! cannot represent real-time signals or `PTRACE_EVENT_STOP` group-stops.

use super::regs_x86_64::Regs;
use nix::errno::Errno;
use std::mem::MaybeUninit;

pub type Tid = i32;

/// Why a traced thread is not running (or no longer exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// `PTRACE_EVENT_STOP` after our `PTRACE_INTERRUPT`.
    Interrupted,
    /// `PTRACE_EVENT_STOP` reporting a group-stop (the process is stopped
    /// by this job-control signal).
    GroupStop(i32),
    /// Signal-delivery-stop: the thread is about to receive this signal.
    Signal(i32),
    /// Syscall-entry or syscall-exit stop (`PTRACE_O_TRACESYSGOOD`).
    Syscall,
    /// `PTRACE_EVENT_EXEC`: the thread replaced the process image.
    Exec,
    /// Another `PTRACE_EVENT_*` stop (fork, vfork, …).
    Event(i32),
    /// The thread exited with this status.
    Exited(i32),
    /// The thread was killed by this signal.
    Killed(i32),
}

impl Stop {
    /// Decode a raw status from `waitpid(2)`; see ptrace(2), "Stopped states".
    pub fn from_raw(status: i32) -> Stop {
        let low = status & 0x7f;
        if low == 0 {
            return Stop::Exited((status >> 8) & 0xff);
        }
        if (status & 0xff) != 0x7f {
            return Stop::Killed(low);
        }
        let sig = (status >> 8) & 0xff;
        let event = status >> 16;
        if event == libc::PTRACE_EVENT_STOP {
            return match sig {
                libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU => {
                    Stop::GroupStop(sig)
                }
                _ => Stop::Interrupted,
            };
        }
        if event == libc::PTRACE_EVENT_EXEC {
            return Stop::Exec;
        }
        if event != 0 {
            return Stop::Event(event);
        }
        if sig == libc::SIGTRAP | 0x80 {
            return Stop::Syscall;
        }
        Stop::Signal(sig)
    }

    /// The thread no longer exists.
    pub fn is_gone(self) -> bool {
        matches!(self, Stop::Exited(_) | Stop::Killed(_))
    }
}

fn check(ret: libc::c_long) -> Result<libc::c_long, Errno> {
    if ret == -1 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

unsafe fn request(
    req: libc::c_uint,
    tid: Tid,
    addr: *mut libc::c_void,
    data: *mut libc::c_void,
) -> Result<libc::c_long, Errno> {
    Errno::clear();
    // SAFETY: the caller passes pointers valid for `req`.
    check(unsafe { libc::ptrace(req, tid, addr, data) })
}

/// Attach to `tid` without stopping it or sending it anything. Syscall
/// stops are marked (TRACESYSGOOD); an exec is reported (TRACEEXEC); a
/// process forked by injected code is attached too (TRACEFORK, TRACEVFORK),
/// so it can be kept from returning into reach's call frame.
const OPTIONS: i32 = libc::PTRACE_O_TRACESYSGOOD
    | libc::PTRACE_O_TRACEEXEC
    | libc::PTRACE_O_TRACEFORK
    | libc::PTRACE_O_TRACEVFORK;

pub fn seize(tid: Tid) -> Result<(), Errno> {
    let options = OPTIONS as usize;
    // SAFETY: PTRACE_SEIZE takes no pointers; options go in `data`.
    unsafe {
        request(
            libc::PTRACE_SEIZE,
            tid,
            std::ptr::null_mut(),
            options as *mut _,
        )
    }
    .map(drop)
}

/// Also attach threads that `tid` creates (`PTRACE_O_TRACECLONE`): set on
/// the call thread, so threads an injected call starts can be given the
/// target's own signal mask instead of reach's call-time one.
pub fn trace_clones(tid: Tid) -> Result<(), Errno> {
    let options = (OPTIONS | libc::PTRACE_O_TRACECLONE) as usize;
    // SAFETY: options go in `data`; no pointers.
    unsafe {
        request(
            libc::PTRACE_SETOPTIONS,
            tid,
            std::ptr::null_mut(),
            options as *mut _,
        )
    }
    .map(drop)
}

/// The pid of the new process or thread at a fork/vfork/clone event stop.
pub fn event_msg(tid: Tid) -> Result<i32, Errno> {
    let mut msg: libc::c_ulong = 0;
    // SAFETY: PTRACE_GETEVENTMSG writes one unsigned long at `data`.
    unsafe {
        request(
            libc::PTRACE_GETEVENTMSG,
            tid,
            std::ptr::null_mut(),
            (&mut msg as *mut libc::c_ulong).cast(),
        )?;
    }
    Ok(msg as i32)
}

/// Ask a seized thread to stop (`PTRACE_EVENT_STOP`), even inside a
/// blocking system call.
pub fn interrupt(tid: Tid) -> Result<(), Errno> {
    // SAFETY: no pointers.
    unsafe {
        request(
            libc::PTRACE_INTERRUPT,
            tid,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    }
    .map(drop)
}

fn resume(req: libc::c_uint, tid: Tid, sig: i32) -> Result<(), Errno> {
    // SAFETY: the signal number goes in `data`; no pointers.
    unsafe { request(req, tid, std::ptr::null_mut(), sig as usize as *mut _) }.map(drop)
}

/// Let the thread run, delivering `sig` if it is in a signal-delivery-stop
/// (0 suppresses the signal).
pub fn cont(tid: Tid, sig: i32) -> Result<(), Errno> {
    resume(libc::PTRACE_CONT, tid, sig)
}

/// Let the thread run until the next syscall entry or exit, delivering
/// `sig` as [`cont`] does.
pub fn cont_syscall(tid: Tid, sig: i32) -> Result<(), Errno> {
    resume(libc::PTRACE_SYSCALL, tid, sig)
}

/// Release the thread, delivering `sig` if it is in a signal-delivery-stop.
pub fn detach(tid: Tid, sig: i32) -> Result<(), Errno> {
    resume(libc::PTRACE_DETACH, tid, sig)
}

/// Wait for the next stop of `tid`. Returns `Err(EINTR)` when one of reach's
/// own signals (timer, SIGINT, SIGTERM) interrupts the wait.
pub fn wait(tid: Tid) -> Result<Stop, Errno> {
    wait_flags(tid, libc::__WALL).map(|s| s.expect("blocking wait returns a status"))
}

/// Wait for the next stop of any thread reach traces (reach starts no
/// child processes of its own, so every status is a tracee's).
pub fn wait_any() -> Result<(Tid, Stop), Errno> {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer.
    let ret = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
    if ret == -1 {
        return Err(Errno::last());
    }
    Ok((ret, Stop::from_raw(status)))
}

/// Like [`wait`], but return `None` at once if `tid` has not stopped.
pub fn try_wait(tid: Tid) -> Result<Option<Stop>, Errno> {
    wait_flags(tid, libc::__WALL | libc::WNOHANG)
}

fn wait_flags(tid: Tid, flags: i32) -> Result<Option<Stop>, Errno> {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer.
    let ret = unsafe { libc::waitpid(tid, &mut status, flags) };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(None),
        _ => Ok(Some(Stop::from_raw(status))),
    }
}

pub fn get_regs(tid: Tid) -> Result<Regs, Errno> {
    let mut regs = MaybeUninit::<Regs>::uninit();
    // SAFETY: PTRACE_GETREGS fills a user_regs_struct at `data`.
    unsafe {
        request(
            libc::PTRACE_GETREGS,
            tid,
            std::ptr::null_mut(),
            regs.as_mut_ptr().cast(),
        )?;
        Ok(regs.assume_init())
    }
}

pub fn set_regs(tid: Tid, regs: &Regs) -> Result<(), Errno> {
    // SAFETY: PTRACE_SETREGS reads a user_regs_struct from `data`.
    unsafe {
        request(
            libc::PTRACE_SETREGS,
            tid,
            std::ptr::null_mut(),
            (regs as *const Regs).cast_mut().cast(),
        )
    }
    .map(drop)
}

/// Largest XSAVE area we accept; AMX tile data makes it about 11 KiB today.
const XSTATE_MAX: usize = 64 * 1024;
const NT_X86_XSTATE: usize = 0x202;

/// The thread's full FPU/SSE/AVX(/AVX-512/AMX) state, in XSAVE layout.
pub fn get_xstate(tid: Tid) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; XSTATE_MAX];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: the kernel writes at most iov_len bytes and updates iov_len.
    unsafe {
        request(
            libc::PTRACE_GETREGSET,
            tid,
            NT_X86_XSTATE as *mut _,
            (&mut iov as *mut libc::iovec).cast(),
        )?;
    }
    buf.truncate(iov.iov_len);
    Ok(buf)
}

pub fn set_xstate(tid: Tid, xstate: &[u8]) -> Result<(), Errno> {
    let mut iov = libc::iovec {
        iov_base: xstate.as_ptr().cast_mut().cast(),
        iov_len: xstate.len(),
    };
    // SAFETY: the kernel reads iov_len bytes from iov_base.
    unsafe {
        request(
            libc::PTRACE_SETREGSET,
            tid,
            NT_X86_XSTATE as *mut _,
            (&mut iov as *mut libc::iovec).cast(),
        )
    }
    .map(drop)
}

// Not in the libc crate: include/uapi/linux/ptrace.h.
const PTRACE_GETSIGMASK: libc::c_uint = 0x420a;
const PTRACE_SETSIGMASK: libc::c_uint = 0x420b;
/// The kernel's sigset_t is 64 bits on x86-64; PTRACE_*SIGMASK insist.
const KERNEL_SIGSET_SIZE: usize = 8;

/// The thread's blocked-signal mask (bit `n - 1` is signal `n`).
pub fn get_sigmask(tid: Tid) -> Result<u64, Errno> {
    let mut mask = 0u64;
    // SAFETY: addr is the size of the set, data points at it.
    unsafe {
        request(
            PTRACE_GETSIGMASK,
            tid,
            KERNEL_SIGSET_SIZE as *mut _,
            (&mut mask as *mut u64).cast(),
        )?;
    }
    Ok(mask)
}

pub fn set_sigmask(tid: Tid, mask: u64) -> Result<(), Errno> {
    // SAFETY: addr is the size of the set, data points at it.
    unsafe {
        request(
            PTRACE_SETSIGMASK,
            tid,
            KERNEL_SIGSET_SIZE as *mut _,
            (&mask as *const u64).cast_mut().cast(),
        )
    }
    .map(drop)
}

/// What the kernel says about the signal a thread is stopped for.
#[derive(Debug, Clone, Copy)]
pub struct SigInfo {
    pub signo: i32,
    pub code: i32,
    /// The faulting address for SIGSEGV/SIGBUS/SIGILL/SIGFPE.
    pub addr: u64,
    /// For a seccomp SIGSYS: the system call that was refused.
    pub syscall: i32,
}

pub fn get_siginfo(tid: Tid) -> Result<SigInfo, Errno> {
    let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
    // SAFETY: PTRACE_GETSIGINFO fills a siginfo_t at `data`.
    let info = unsafe {
        request(
            libc::PTRACE_GETSIGINFO,
            tid,
            std::ptr::null_mut(),
            info.as_mut_ptr().cast(),
        )?;
        info.assume_init()
    };
    // For SIGSYS the union holds {void *call_addr; int syscall; ...} where
    // the fault address would be (asm-generic/siginfo.h, _sigsys).
    // SAFETY: reading plain integers out of the union is always defined.
    let (addr, syscall) = unsafe {
        let addr = info.si_addr() as u64;
        let words: &[i32; 32] = &*(&info as *const libc::siginfo_t).cast::<[i32; 32]>();
        (addr, words[6])
    };
    Ok(SigInfo {
        signo: info.si_signo,
        code: info.si_code,
        addr,
        syscall,
    })
}
