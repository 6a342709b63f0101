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

use super::call::CallError;
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
    /// Processes and threads started by injected code and still attached
    /// (see `call.rs`, `tend_child`), and whether each got the target's
    /// signal mask back.
    children: Vec<(Tid, bool)>,
    /// Children already let go of: a fork event read after the child's own
    /// stops must not bring one back.
    released_children: Vec<Tid>,
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
            released_children: Vec::new(),
            closed: false,
        };
        // Threads that are exiting (and so cannot be seized): not new again.
        let mut skipped: Vec<Tid> = Vec::new();
        loop {
            let new: Vec<Tid> = procinfo::tasks(pid)?
                .into_iter()
                .filter(|tid| !win.threads.iter().any(|t| t.tid == *tid) && !skipped.contains(tid))
                .collect();
            if new.is_empty() {
                break;
            }
            let mut seized = Vec::with_capacity(new.len());
            let mut refused = None;
            for tid in new {
                match seize(tid) {
                    Ok(()) => {
                        seized.push(tid);
                        // ESRCH: it is exiting; its exit is reaped below.
                        let _ = ptrace::interrupt(tid);
                    }
                    // Exited meanwhile.
                    Err(Errno::ESRCH) => skipped.push(tid),
                    Err(Errno::EPERM) => match refusal(pid, tid) {
                        None => skipped.push(tid),
                        Some(e) => {
                            refused = Some(e);
                            break;
                        }
                    },
                    Err(e) => {
                        refused = Some(ptrace_err("PTRACE_SEIZE", tid)(e));
                        break;
                    }
                }
            }
            // Even when refusing: the threads already interrupted must
            // stop, and have their system calls fixed up, before release.
            let waited = win.wait_for_stops(seized, deadline);
            if let Some(e) = refused {
                return Err(e);
            }
            waited?;
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
        ptrace::trace_clones(tid).map_err(ptrace_err("PTRACE_SETOPTIONS", tid))?;
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
        let children: Vec<Tid> = self.children.drain(..).map(|(tid, _)| tid).collect();
        self.release_all(&children);
        restored
    }

    /// Wait until every thread in `pending` (seized and interrupted)
    /// reports its stop, and record it. A signal already on its way is
    /// delivered first, as it would have been without reach; then the
    /// interrupt's stop follows. Waiting on all of them at once matters: a
    /// dying process's leader reports its exit only after the others are
    /// reaped. On error the threads still running are recorded too, so that
    /// closing the window releases them.
    fn wait_for_stops(&mut self, mut pending: Vec<Tid>, deadline: Instant) -> Result<()> {
        let _ticker = interrupt::Ticker::start(50);
        while !pending.is_empty() {
            let (tid, stop) = match ptrace::wait_any() {
                Ok(event) => event,
                Err(Errno::EINTR) => {
                    let error = if let Some(sig) = interrupt::pending() {
                        CallError::Interrupted(sig)
                    } else if Instant::now() >= deadline {
                        CallError::StopTimeout(pending[0])
                    } else {
                        continue;
                    };
                    self.threads.extend(pending.iter().map(|&tid| Thread {
                        tid,
                        group_stopped: false,
                    }));
                    return Err(error.into());
                }
                Err(Errno::ECHILD) => break,
                Err(e) => return Err(ptrace_err("waitpid", self.pid)(e)),
            };
            if !pending.contains(&tid) {
                if stop.is_gone() {
                    self.forget(tid);
                }
                continue;
            }
            match stop {
                Stop::Interrupted | Stop::GroupStop(_) => {
                    pending.retain(|t| *t != tid);
                    reissue_if_interrupted(self.pid, tid);
                    self.threads.push(Thread {
                        tid,
                        group_stopped: matches!(stop, Stop::GroupStop(_)),
                    });
                }
                Stop::Signal(sig) => {
                    let _ = ptrace::cont(tid, sig);
                }
                Stop::Syscall | Stop::Event(_) | Stop::Exec => {
                    let _ = ptrace::cont(tid, 0);
                }
                Stop::Exited(_) | Stop::Killed(_) => pending.retain(|t| *t != tid),
            }
        }
        Ok(())
    }

    fn release_all(&self, tids: &[Tid]) {
        for &tid in tids {
            release(tid);
        }
    }

    /// The call thread replaced the process image (execve): its old
    /// registers must not be written into the new program, but the signal
    /// mask survives execve, so the new program gets the target's own.
    pub fn discard_saved(&mut self) {
        if let Some(saved) = self.saved.take() {
            let _ = ptrace::set_sigmask(self.call_tid, saved.sigmask);
        }
    }

    /// Note a process or thread started by injected code. True the first
    /// time it is seen this way: then it still has reach's call-time signal
    /// mask, and should get the target's own.
    pub fn adopt(&mut self, tid: Tid) -> bool {
        match self.children.iter_mut().find(|c| c.0 == tid) {
            Some(child) => !std::mem::replace(&mut child.1, true),
            None => {
                self.children.push((tid, true));
                true
            }
        }
    }

    /// Note a child announced by a fork/vfork/clone event, before its first
    /// stop is seen.
    pub fn adopt_later(&mut self, tid: Tid) {
        // Already gone (and reaped through `tend_child`): nothing to hold.
        if !self.children.iter().any(|c| c.0 == tid)
            && !self.released_children.contains(&tid)
            && !procinfo::is_gone(tid, tid)
        {
            self.children.push((tid, false));
        }
    }

    /// A child reach no longer holds (it exited, exec'd or was released).
    pub fn drop_child(&mut self, tid: Tid) {
        self.children.retain(|c| c.0 != tid);
        self.released_children.push(tid);
    }

    pub fn has_children(&self) -> bool {
        !self.children.is_empty()
    }

    /// The call thread's own signal mask, while reach holds it changed.
    pub fn original_sigmask(&self) -> Option<u64> {
        self.saved.as_ref().map(|s| s.sigmask)
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

/// If our interrupt made `tid`'s system call fail with a plain EINTR, turn
/// the result into a restart code so it is re-issued when the thread goes
/// on (unless a real signal is also pending: then the EINTR is genuine).
fn reissue_if_interrupted(pid: i32, tid: Tid) {
    let Ok(mut regs) = ptrace::get_regs(tid) else {
        return; // gone
    };
    let nr = regs.orig_rax as i64;
    if regs.rax == EINTR_RET
        && REISSUE_ON_EINTR.contains(&nr)
        && !procinfo::has_deliverable_signal(pid, tid)
    {
        regs.rax = ERESTARTNOHAND_RET;
        let _ = ptrace::set_regs(tid, &regs);
    }
}

/// `PTRACE_SEIZE`, tried again when it says EPERM but nobody traces the
/// thread any more: another tracer (another reach) let go meanwhile.
fn seize(tid: Tid) -> std::result::Result<(), Errno> {
    let mut tries = 0;
    loop {
        match ptrace::seize(tid) {
            Err(Errno::EPERM) if tries < 3 && procinfo::task_tracer(tid, tid) == 0 => tries += 1,
            other => return other,
        }
    }
}

/// Why `PTRACE_SEIZE` of thread `tid` said EPERM: it is exiting (`None`:
/// skip it), the whole process is exiting, another tracer holds it, or
/// reach is not permitted.
fn refusal(pid: i32, tid: Tid) -> Option<Error> {
    if procinfo::is_gone(pid, tid) {
        return None;
    }
    if procinfo::is_gone(pid, pid) {
        return Some(Error::TargetExited(pid));
    }
    match procinfo::task_tracer(pid, tid) {
        // Root is refused only by a tracer (or ptrace_scope 3, which
        // refuses everything): one that let go between the two reads.
        0 if nix::unistd::Uid::effective().is_root() && procinfo::ptrace_scope() != Some(3) => {
            Some(Error::TracedMeanwhile(pid))
        }
        0 => Some(Error::NotPermitted(pid)),
        tracer => Some(Error::AlreadyTraced {
            pid,
            tracer,
            tracer_name: procinfo::comm(tracer).unwrap_or_else(|| "?".into()),
        }),
    }
}

/// Detach `tid`, getting it stopped first if it is somehow running.
fn release(tid: Tid) {
    match ptrace::detach(tid, 0) {
        Ok(()) => {}
        Err(Errno::ESRCH) => {
            // Either gone, or running (detach needs a stopped tracee).
            if procinfo::task_state(tid, tid).is_none_or(|s| matches!(s, 'Z' | 'X')) {
                return;
            }
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
