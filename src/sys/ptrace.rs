//! ptrace requests on one thread, what its stops mean, and errors that
//! carry the request that failed.
//!
//! Threads are always attached with `PTRACE_SEIZE` (never `PTRACE_ATTACH`,
//! which sends a SIGSTOP the target could see) and never with
//! `PTRACE_O_EXITKILL`: if reach dies, the kernel detaches and the target
//! lives. Wait statuses are decoded by hand because nix's `WaitStatus`
//! cannot represent real-time signals or `PTRACE_EVENT_STOP` group-stops.
//! Every wait names the thread it waits for (`waitpid(tid)`): the kernel
//! finds that one tracee directly, so waiting for N threads costs O(N).

use super::x86_64::Regs;
use nix::errno::Errno;
use std::mem::MaybeUninit;

pub type Tid = i32;

/// A ptrace request (or the wait that goes with them), named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Seize,
    Interrupt,
    Cont,
    Syscall,
    Detach,
    SetOptions,
    GetEventMsg,
    GetRegs,
    SetRegs,
    GetXstate,
    SetXstate,
    GetSigmask,
    SetSigmask,
    GetSiginfo,
    GetRseqConfiguration,
    Wait,
}

impl Request {
    pub fn name(self) -> &'static str {
        match self {
            Request::Seize => "PTRACE_SEIZE",
            Request::Interrupt => "PTRACE_INTERRUPT",
            Request::Cont => "PTRACE_CONT",
            Request::Syscall => "PTRACE_SYSCALL",
            Request::Detach => "PTRACE_DETACH",
            Request::SetOptions => "PTRACE_SETOPTIONS",
            Request::GetEventMsg => "PTRACE_GETEVENTMSG",
            Request::GetRegs => "PTRACE_GETREGS",
            Request::SetRegs => "PTRACE_SETREGS",
            Request::GetXstate => "PTRACE_GETREGSET(NT_X86_XSTATE)",
            Request::SetXstate => "PTRACE_SETREGSET(NT_X86_XSTATE)",
            Request::GetSigmask => "PTRACE_GETSIGMASK",
            Request::SetSigmask => "PTRACE_SETSIGMASK",
            Request::GetSiginfo => "PTRACE_GETSIGINFO",
            Request::GetRseqConfiguration => "PTRACE_GET_RSEQ_CONFIGURATION",
            Request::Wait => "waitpid",
        }
    }
}

/// A ptrace request that failed: which, on which thread, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} on thread {tid} failed: {errno}", request.name())]
pub struct PtraceError {
    pub request: Request,
    pub tid: Tid,
    pub errno: Errno,
}

pub type Result<T> = std::result::Result<T, PtraceError>;

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
    /// `PTRACE_EVENT_FORK`, `_VFORK` or `_CLONE`: it started a process or
    /// thread (its id is in [`event_msg`]).
    Spawned,
    /// Another `PTRACE_EVENT_*` stop.
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
        match status >> 16 {
            0 if sig == libc::SIGTRAP | 0x80 => Stop::Syscall,
            0 => Stop::Signal(sig),
            libc::PTRACE_EVENT_STOP => match sig {
                libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU => {
                    Stop::GroupStop(sig)
                }
                _ => Stop::Interrupted,
            },
            libc::PTRACE_EVENT_EXEC => Stop::Exec,
            libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK | libc::PTRACE_EVENT_CLONE => {
                Stop::Spawned
            }
            event => Stop::Event(event),
        }
    }

    /// The thread no longer exists.
    pub fn is_gone(self) -> bool {
        matches!(self, Stop::Exited(_) | Stop::Killed(_))
    }
}

/// Options every seized thread gets: syscall stops are marked
/// (TRACESYSGOOD) and an exec is reported (TRACEEXEC).
pub const OPT_BASE: i32 = libc::PTRACE_O_TRACESYSGOOD | libc::PTRACE_O_TRACEEXEC;
/// Options of the thread running injected code, set only once it is
/// stopped and about to run it: processes and threads that the injected
/// code starts are attached too, so reach can give them the target's own
/// signal mask and let them go. (Set at seize time they would also catch
/// a fork the thread makes on its own before it stops.)
pub const OPT_CHILDREN: i32 =
    libc::PTRACE_O_TRACEFORK | libc::PTRACE_O_TRACEVFORK | libc::PTRACE_O_TRACECLONE;
/// `PTRACE_O_SUSPEND_SECCOMP` (include/uapi/linux/ptrace.h): the thread's
/// seccomp filter is not applied while it is traced with this option.
/// Needs CAP_SYS_ADMIN, and a tracer that is not itself under seccomp.
pub const OPT_SUSPEND_SECCOMP: i32 = 1 << 21;

fn check(ret: libc::c_long) -> std::result::Result<libc::c_long, Errno> {
    if ret == -1 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// One ptrace request; failures carry `req` and `tid`.
///
/// # Safety
/// `addr` and `data` must be what `req` expects (see ptrace(2)).
unsafe fn request(
    req: Request,
    raw: libc::c_uint,
    tid: Tid,
    addr: *mut libc::c_void,
    data: *mut libc::c_void,
) -> Result<libc::c_long> {
    Errno::clear();
    // SAFETY: the caller passes pointers valid for `raw`.
    check(unsafe { libc::ptrace(raw, tid, addr, data) }).map_err(|errno| PtraceError {
        request: req,
        tid,
        errno,
    })
}

/// A request whose `data` is an integer.
fn request_int(req: Request, raw: libc::c_uint, tid: Tid, data: usize) -> Result<()> {
    // SAFETY: no pointers: `data` is passed as an integer.
    unsafe { request(req, raw, tid, std::ptr::null_mut(), data as *mut _) }.map(drop)
}

/// Attach to `tid` without stopping it or sending it anything.
pub fn seize(tid: Tid, options: i32) -> Result<()> {
    request_int(Request::Seize, libc::PTRACE_SEIZE, tid, options as usize)
}

/// Change the options of a stopped tracee.
pub fn set_options(tid: Tid, options: i32) -> Result<()> {
    request_int(
        Request::SetOptions,
        libc::PTRACE_SETOPTIONS,
        tid,
        options as usize,
    )
}

/// The pid of the new process or thread at a fork/vfork/clone event stop.
pub fn event_msg(tid: Tid) -> Result<i32> {
    let mut msg: libc::c_ulong = 0;
    // SAFETY: PTRACE_GETEVENTMSG writes one unsigned long at `data`.
    unsafe {
        request(
            Request::GetEventMsg,
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
pub fn interrupt(tid: Tid) -> Result<()> {
    request_int(Request::Interrupt, libc::PTRACE_INTERRUPT, tid, 0)
}

/// Let the thread run, delivering `sig` if it is in a signal-delivery-stop
/// (0 suppresses the signal).
pub fn cont(tid: Tid, sig: i32) -> Result<()> {
    request_int(Request::Cont, libc::PTRACE_CONT, tid, sig as usize)
}

/// Let the thread run until its next syscall entry or exit, delivering
/// `sig` as [`cont`] does.
pub fn cont_syscall(tid: Tid, sig: i32) -> Result<()> {
    request_int(Request::Syscall, libc::PTRACE_SYSCALL, tid, sig as usize)
}

/// Release the thread, delivering `sig` if it is in a signal-delivery-stop.
pub fn detach(tid: Tid, sig: i32) -> Result<()> {
    request_int(Request::Detach, libc::PTRACE_DETACH, tid, sig as usize)
}

/// Wait for the next stop of `tid`. `EINTR` when one of reach's own
/// signals (the ticker, SIGINT, SIGTERM) interrupts the wait.
pub fn wait(tid: Tid) -> Result<Stop> {
    wait_flags(tid, libc::__WALL).map(|s| s.expect("a blocking wait returns a status"))
}

/// Like [`wait`], but `None` at once if `tid` has not stopped.
pub fn try_wait(tid: Tid) -> Result<Option<Stop>> {
    wait_flags(tid, libc::__WALL | libc::WNOHANG)
}

fn wait_flags(tid: Tid, flags: i32) -> Result<Option<Stop>> {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer.
    let ret = unsafe { libc::waitpid(tid, &mut status, flags) };
    match ret {
        -1 => Err(PtraceError {
            request: Request::Wait,
            tid,
            errno: Errno::last(),
        }),
        0 => Ok(None),
        _ => Ok(Some(Stop::from_raw(status))),
    }
}

pub fn get_regs(tid: Tid) -> Result<Regs> {
    let mut regs = MaybeUninit::<Regs>::uninit();
    // SAFETY: PTRACE_GETREGS fills a user_regs_struct at `data`.
    unsafe {
        request(
            Request::GetRegs,
            libc::PTRACE_GETREGS,
            tid,
            std::ptr::null_mut(),
            regs.as_mut_ptr().cast(),
        )?;
        Ok(regs.assume_init())
    }
}

pub fn set_regs(tid: Tid, regs: &Regs) -> Result<()> {
    // SAFETY: PTRACE_SETREGS reads a user_regs_struct from `data`.
    unsafe {
        request(
            Request::SetRegs,
            libc::PTRACE_SETREGS,
            tid,
            std::ptr::null_mut(),
            (regs as *const Regs).cast_mut().cast(),
        )
    }
    .map(drop)
}

/// Largest XSAVE area accepted; AMX tile data makes it about 11 KiB today.
const XSTATE_MAX: usize = 64 * 1024;
const NT_X86_XSTATE: usize = 0x202;

/// The thread's full FPU/SSE/AVX(/AVX-512/AMX) state, in the standard
/// (non-compacted) XSAVE layout.
pub fn get_xstate(tid: Tid) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; XSTATE_MAX];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: the kernel writes at most iov_len bytes and updates iov_len.
    unsafe {
        request(
            Request::GetXstate,
            libc::PTRACE_GETREGSET,
            tid,
            NT_X86_XSTATE as *mut _,
            (&mut iov as *mut libc::iovec).cast(),
        )?;
    }
    buf.truncate(iov.iov_len);
    Ok(buf)
}

pub fn set_xstate(tid: Tid, xstate: &[u8]) -> Result<()> {
    let mut iov = libc::iovec {
        iov_base: xstate.as_ptr().cast_mut().cast(),
        iov_len: xstate.len(),
    };
    // SAFETY: the kernel reads iov_len bytes from iov_base.
    unsafe {
        request(
            Request::SetXstate,
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
const PTRACE_GET_RSEQ_CONFIGURATION: libc::c_uint = 0x420f;
/// The kernel's sigset_t is 64 bits on x86-64; PTRACE_*SIGMASK insist.
const KERNEL_SIGSET_SIZE: usize = 8;

/// The thread's blocked-signal mask (bit `n - 1` is signal `n`).
pub fn get_sigmask(tid: Tid) -> Result<u64> {
    let mut mask = 0u64;
    // SAFETY: addr is the size of the set, data points at it.
    unsafe {
        request(
            Request::GetSigmask,
            PTRACE_GETSIGMASK,
            tid,
            KERNEL_SIGSET_SIZE as *mut _,
            (&mut mask as *mut u64).cast(),
        )?;
    }
    Ok(mask)
}

pub fn set_sigmask(tid: Tid, mask: u64) -> Result<()> {
    // SAFETY: addr is the size of the set, data points at it.
    unsafe {
        request(
            Request::SetSigmask,
            PTRACE_SETSIGMASK,
            tid,
            KERNEL_SIGSET_SIZE as *mut _,
            (&mask as *const u64).cast_mut().cast(),
        )
    }
    .map(drop)
}

/// Where a thread's rseq area is (`struct ptrace_rseq_configuration`,
/// Linux 5.13).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct RseqConfig {
    pub abi_pointer: u64,
    pub abi_size: u32,
    pub signature: u32,
    pub flags: u32,
    pad: u32,
}

/// The thread's rseq registration; `None` if it has none (or the kernel
/// predates the request).
pub fn rseq_config(tid: Tid) -> Option<RseqConfig> {
    let mut conf = RseqConfig::default();
    // SAFETY: addr is the size of the struct, data points at it.
    let got = unsafe {
        request(
            Request::GetRseqConfiguration,
            PTRACE_GET_RSEQ_CONFIGURATION,
            tid,
            size_of::<RseqConfig>() as *mut _,
            (&mut conf as *mut RseqConfig).cast(),
        )
    };
    match got {
        Ok(_) if conf.abi_pointer != 0 => Some(conf),
        _ => None,
    }
}

/// What the kernel says about the signal a thread is stopped for.
#[derive(Debug, Clone, Copy)]
pub struct SigInfo {
    pub signo: i32,
    /// `si_code`: > 0 for a fault the kernel raised, <= 0 for a signal
    /// some process sent (SI_USER 0, SI_QUEUE -1, SI_TKILL -6, ...).
    pub code: i32,
    /// The faulting address for SIGSEGV/SIGBUS/SIGILL/SIGFPE.
    pub addr: u64,
    /// For a seccomp SIGSYS: the system call that was refused.
    pub syscall: i32,
}

impl SigInfo {
    /// Raised by the kernel for what the thread did (a fault, a trap),
    /// not sent by a process.
    pub fn is_fault(&self) -> bool {
        self.code > 0
    }
}

pub fn get_siginfo(tid: Tid) -> Result<SigInfo> {
    let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
    // SAFETY: PTRACE_GETSIGINFO fills a siginfo_t at `data`.
    let info = unsafe {
        request(
            Request::GetSiginfo,
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

/// Send `sig` to thread `tid` of process `pid` (tgkill(2)).
pub fn tgkill(pid: i32, tid: Tid, sig: i32) -> std::result::Result<(), Errno> {
    // SAFETY: three integers.
    let ret = unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, sig) };
    check(ret).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_wait_statuses() {
        assert_eq!(Stop::from_raw(0x0300), Stop::Exited(3));
        assert_eq!(Stop::from_raw(9), Stop::Killed(9));
        assert_eq!(Stop::from_raw(0x857f), Stop::Syscall);
        assert_eq!(Stop::from_raw(0x0b7f), Stop::Signal(11));
        assert_eq!(Stop::from_raw(0x227f), Stop::Signal(34));
        let event = |e: i32, sig: i32| (e << 16) | (sig << 8) | 0x7f;
        assert_eq!(Stop::from_raw(event(128, 5)), Stop::Interrupted);
        assert_eq!(Stop::from_raw(event(128, 19)), Stop::GroupStop(19));
        assert_eq!(Stop::from_raw(event(4, 5)), Stop::Exec);
        assert_eq!(Stop::from_raw(event(1, 5)), Stop::Spawned);
        assert_eq!(Stop::from_raw(event(2, 5)), Stop::Spawned);
        assert_eq!(Stop::from_raw(event(3, 5)), Stop::Spawned);
    }
}
