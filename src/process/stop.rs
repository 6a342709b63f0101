//! The stop window: every thread of the target seized and stopped, and
//! given back exactly as it was.
//!
//! Opening a window seizes and interrupts each thread listed in
//! `/proc/PID/task`, re-listing until no new thread appears (a thread that
//! was cloning when interrupted finishes its clone first, so the new thread
//! shows up in the next listing). Closing it — explicitly with
//! [`StopWindow::close`], or by `Drop` on any error path — restores the
//! call thread's registers, vector state and signal mask and detaches every
//! thread. A process that was stopped (group-stop) stays stopped: the kernel
//! re-arms the group-stop on detach (`__ptrace_unlink`).

use super::procinfo;
use super::{Error, Result, ptrace_err};
use crate::sys::interrupt;
use crate::sys::ptrace::{self, Stop, Tid};
use crate::sys::regs_x86_64::Regs;
use nix::errno::Errno;
use std::time::{Duration, Instant};

/// `-EINTR` as the kernel leaves it in rax.
const EINTR_RET: u64 = (-libc::EINTR) as i64 as u64;
/// `-ERESTARTNOHAND` (include/linux/errno.h): "restart the system call if
/// no handler runs". The kernel turns it into a restart when the thread
/// resumes without a signal, and into EINTR when a real signal's handler
/// runs first — exactly the behaviour of an uninterrupted call.
const ERESTARTNOHAND_RET: u64 = (-514i64) as u64;

/// System calls that fail with a plain `-EINTR` (not a restart code) when
/// any stop interrupts them, and that are safe to issue again because
/// failing with EINTR means they did nothing. gdb leaves these failing;
/// reach re-issues them so the application never sees an EINTR it caused.
const REISSUE_ON_EINTR: &[i64] = &[
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_recvfrom,
    libc::SYS_recvmsg,
    libc::SYS_recvmmsg,
    libc::SYS_sendto,
    libc::SYS_sendmsg,
    libc::SYS_sendmmsg,
    libc::SYS_read,
    libc::SYS_readv,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_semtimedop,
    libc::SYS_semop,
    libc::SYS_msgrcv,
    libc::SYS_msgsnd,
    libc::SYS_mq_timedreceive,
    libc::SYS_mq_timedsend,
    libc::SYS_io_getevents,
    333, // io_pgetevents
    libc::SYS_wait4,
    libc::SYS_waitid,
];

/// One seized thread.
#[derive(Debug)]
pub struct Thread {
    pub tid: Tid,
    /// The process was in group-stop (`kill -STOP`) when seized.
    pub group_stopped: bool,
}

/// What the call thread looked like before reach touched it.
#[derive(Debug)]
pub struct Saved {
    pub regs: Regs,
    pub xstate: Vec<u8>,
    pub sigmask: u64,
}

/// A process with every thread stopped by reach.
#[derive(Debug)]
pub struct StopWindow {
    pub pid: i32,
    pub threads: Vec<Thread>,
    /// The thread injected calls run on (the main thread when possible).
    pub call_tid: Tid,
    /// The call thread's state, saved before the first change to it.
    saved: Option<Saved>,
    /// Processes forked by injected code and still attached (see
    /// `call.rs`, `tend_child`).
    pub children: Vec<Tid>,
    closed: bool,
}

impl StopWindow {
    /// Stop every thread of `pid`. `start_time` is checked once all are
    /// stopped, so a pid reused since `attach` is refused, not touched.
    pub fn open(pid: i32, start_time: u64, deadline: Instant) -> Result<StopWindow> {
        let mut win = StopWindow {
            pid,
            threads: Vec::new(),
            call_tid: pid,
            saved: None,
            children: Vec::new(),
            closed: false,
        };
        loop {
            let new: Vec<Tid> = procinfo::tasks(pid)?
                .into_iter()
                .filter(|tid| !win.threads.iter().any(|t| t.tid == *tid))
                .collect();
            if new.is_empty() {
                break;
            }
            let mut seized = Vec::with_capacity(new.len());
            for tid in new {
                match ptrace::seize(tid) {
                    Ok(()) => {
                        seized.push(tid);
                        ptrace::interrupt(tid).map_err(ptrace_err("PTRACE_INTERRUPT", tid))?;
                    }
                    // Exited meanwhile.
                    Err(Errno::ESRCH) => continue,
                    Err(Errno::EPERM) => {
                        win.release_all(&seized);
                        return Err(refusal(pid));
                    }
                    Err(e) => {
                        win.release_all(&seized);
                        return Err(ptrace_err("PTRACE_SEIZE", tid)(e));
                    }
                }
            }
            for tid in seized {
                match wait_for_stop(tid, deadline) {
                    Ok(Some(stop)) => win.threads.push(Thread {
                        tid,
                        group_stopped: matches!(stop, Stop::GroupStop(_)),
                    }),
                    Ok(None) => {} // exited while we waited
                    Err(e) => {
                        // Still attached: make Drop release it too.
                        win.threads.push(Thread {
                            tid,
                            group_stopped: false,
                        });
                        return Err(e);
                    }
                }
            }
        }
        if win.threads.is_empty() || procinfo::start_time(pid) != Some(start_time) {
            let reused = procinfo::start_time(pid).is_some();
            return Err(if reused {
                Error::PidReused(pid)
            } else {
                Error::TargetExited(pid)
            });
        }
        if !win.threads.iter().any(|t| t.tid == pid) {
            win.call_tid = win.threads[0].tid;
        }
        for t in &win.threads {
            reissue_if_interrupted(pid, t.tid)?;
        }
        Ok(win)
    }

    /// Save the call thread's state (once per window) and block its
    /// signals for the injected code. Returns the registers to build a call
    /// frame from.
    pub fn prepare(&mut self) -> Result<Regs> {
        if let Some(saved) = &self.saved {
            return Ok(saved.regs);
        }
        let tid = self.call_tid;
        let regs = ptrace::get_regs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
        let xstate = ptrace::get_xstate(tid).map_err(ptrace_err("PTRACE_GETREGSET", tid))?;
        let sigmask = ptrace::get_sigmask(tid).map_err(ptrace_err("PTRACE_GETSIGMASK", tid))?;
        self.saved = Some(Saved {
            regs,
            xstate,
            sigmask,
        });
        ptrace::set_sigmask(tid, CALL_SIGMASK).map_err(ptrace_err("PTRACE_SETSIGMASK", tid))?;
        Ok(regs)
    }

    /// Put the call thread back exactly as it was saved, keeping the window
    /// open.
    pub fn restore(&mut self) -> Result<()> {
        let Some(saved) = &self.saved else {
            return Ok(());
        };
        let tid = self.call_tid;
        ptrace::set_regs(tid, &saved.regs).map_err(ptrace_err("PTRACE_SETREGS", tid))?;
        ptrace::set_xstate(tid, &saved.xstate).map_err(ptrace_err("PTRACE_SETREGSET", tid))?;
        ptrace::set_sigmask(tid, saved.sigmask).map_err(ptrace_err("PTRACE_SETSIGMASK", tid))?;
        self.saved = None;
        Ok(())
    }

    /// Restore and release every thread. Errors are returned after every
    /// thread has been released.
    pub fn close(mut self) -> Result<()> {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        let restored = self.restore();
        let tids: Vec<Tid> = self.threads.iter().map(|t| t.tid).collect();
        self.release_all(&tids);
        let children = std::mem::take(&mut self.children);
        self.release_all(&children);
        restored
    }

    fn release_all(&self, tids: &[Tid]) {
        for &tid in tids {
            release(tid);
        }
    }

    /// The call thread replaced the process image (execve): there is
    /// nothing left to restore, and its old registers must not be written
    /// into the new program.
    pub fn discard_saved(&mut self) {
        self.saved = None;
    }

    /// Forget a thread that no longer exists.
    pub fn forget(&mut self, tid: Tid) {
        self.threads.retain(|t| t.tid != tid);
        if tid == self.call_tid {
            self.saved = None;
        }
    }
}

impl Drop for StopWindow {
    fn drop(&mut self) {
        if let Err(e) = self.close_inner() {
            // The process layer never prints; this is the one exception,
            // because the error would otherwise be lost with the guard.
            eprintln!("reach: warning: restoring pid {}: {e}", self.pid);
        }
    }
}

/// Signals the call thread blocks while injected code runs: all but the
/// synchronous ones. Blocking SIGSEGV/SIGBUS/SIGILL/SIGFPE/SIGTRAP/SIGSYS
/// would make the kernel reset the target's handler to SIG_DFL when one is
/// forced (kernel/signal.c, force_sig_info_to_task), and our return trap is
/// a forced SIGSEGV. SIGKILL and SIGSTOP cannot be blocked anyway.
const CALL_SIGMASK: u64 = !(bit(libc::SIGSEGV)
    | bit(libc::SIGBUS)
    | bit(libc::SIGILL)
    | bit(libc::SIGFPE)
    | bit(libc::SIGTRAP)
    | bit(libc::SIGSYS)
    | bit(libc::SIGKILL)
    | bit(libc::SIGSTOP));

const fn bit(sig: i32) -> u64 {
    1 << (sig - 1)
}

/// Wait until a freshly interrupted thread reports its stop. A signal that
/// was already on its way is delivered first, as it would have been
/// without reach; then the interrupt's stop follows. `None`: it exited.
fn wait_for_stop(tid: Tid, deadline: Instant) -> Result<Option<Stop>> {
    let _ticker = interrupt::Ticker::start(50);
    loop {
        match ptrace::wait(tid) {
            Ok(stop @ (Stop::Interrupted | Stop::GroupStop(_))) => return Ok(Some(stop)),
            Ok(Stop::Signal(sig)) => {
                ptrace::cont(tid, sig).map_err(ptrace_err("PTRACE_CONT", tid))?
            }
            Ok(Stop::Syscall | Stop::Event(_) | Stop::Exec) => {
                ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))?
            }
            Ok(Stop::Exited(_) | Stop::Killed(_)) | Err(Errno::ECHILD | Errno::ESRCH) => {
                return Ok(None);
            }
            Err(Errno::EINTR) => {
                if let Some(sig) = interrupt::pending() {
                    return Err(super::call::CallError::Interrupted(sig).into());
                }
                if Instant::now() >= deadline {
                    return Err(super::call::CallError::StopTimeout(tid).into());
                }
            }
            Err(e) => return Err(ptrace_err("waitpid", tid)(e)),
        }
    }
}

/// If our interrupt made `tid`'s system call fail with a plain EINTR, turn
/// the result into a restart code so it is re-issued when the thread goes
/// on (unless a real signal is also pending: then the EINTR is genuine).
fn reissue_if_interrupted(pid: i32, tid: Tid) -> Result<()> {
    let mut regs = ptrace::get_regs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
    let nr = regs.orig_rax as i64;
    if regs.rax == EINTR_RET
        && REISSUE_ON_EINTR.contains(&nr)
        && !procinfo::has_deliverable_signal(pid, tid)
    {
        regs.rax = ERESTARTNOHAND_RET;
        ptrace::set_regs(tid, &regs).map_err(ptrace_err("PTRACE_SETREGS", tid))?;
    }
    Ok(())
}

/// Why `PTRACE_SEIZE` said EPERM: another tracer, or no permission.
fn refusal(pid: i32) -> Error {
    match procinfo::check_traceable(pid) {
        Err(e @ Error::AlreadyTraced { .. }) => e,
        _ => Error::NotPermitted(pid),
    }
}

/// Detach `tid`, getting it stopped first if it is somehow running.
fn release(tid: Tid) {
    match ptrace::detach(tid, 0) {
        Ok(()) => {}
        Err(Errno::ESRCH) => {
            // Either gone, or running (detach needs a stopped tracee).
            if ptrace::interrupt(tid).is_ok() {
                let deadline = Instant::now() + Duration::from_secs(2);
                while Instant::now() < deadline {
                    match ptrace::try_wait(tid) {
                        Ok(Some(s)) if s.is_gone() => return,
                        Ok(Some(_)) => {
                            let _ = ptrace::detach(tid, 0);
                            return;
                        }
                        Ok(None) => std::thread::yield_now(),
                        Err(_) => return,
                    }
                }
            }
        }
        Err(_) => {}
    }
}
