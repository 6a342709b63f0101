//! The stop window: the thread an operation runs on, seized and stopped,
//! its state saved, and given back exactly as it was — or, for
//! `freeze()`, every thread of the process.
//!
//! A window on one thread seizes that thread only (`PTRACE_SEIZE`, then
//! `PTRACE_INTERRUPT`); every other thread keeps running and never sees a
//! stop. The all-thread window re-lists `/proc/PID/task` until no new
//! thread appears, waiting for each thread by its tid, so N threads cost
//! O(N). Closing a window — explicitly, or by `Drop` on any error path —
//! restores the call thread's registers, vector state and signal mask and
//! detaches every thread. A process that was stopped (`kill -STOP`) stays
//! stopped: the kernel re-arms the group-stop on detach
//! (`__ptrace_unlink`).

use super::choose::{self, Choice};
use super::restart;
use super::{EngineError, Limits};
use crate::process::{Error, Result, procinfo};
use crate::sys::interrupt;
use crate::sys::ptrace::{self, OPT_BASE, OPT_CHILDREN, OPT_SUSPEND_SECCOMP, Stop, Tid};
use crate::sys::x86_64::{Regs, USER32_CS};
use nix::errno::Errno;
use std::time::{Duration, Instant};

/// The call thread's state as reach found it, and as it must resume.
pub(super) struct Saved {
    /// The registers to put back: as found, except that a system call
    /// the stop ended with a plain EINTR is made to restart, and a pc
    /// inside an rseq critical section moves to its abort handler.
    pub regs: Regs,
    pub xstate: Vec<u8>,
    pub sigmask: u64,
}

pub(super) struct Window {
    pub pid: i32,
    /// Every thread seized and stopped in this window.
    held: Vec<Tid>,
    call: Tid,
    saved: Option<Saved>,
    /// Options set on the call thread for running injected code.
    armed: bool,
    /// The target's seccomp mode for the call thread (0: none).
    seccomp: u32,
    /// The call thread's own signal mask as injected code changed it
    /// (`run.rs` carries out the callee's `rt_sigprocmask` calls on this
    /// copy, since the real mask blocks signals while it runs): what is
    /// put back at restore.
    pub own_mask: Option<u64>,
    /// Signals sent to the call thread while injected code ran, that it
    /// did not block: sent again once the thread is released.
    pub deferred: Vec<i32>,
    /// The mapping whose restore frame holds `saved` (written once per
    /// window, before the first change to the thread).
    pub frame_in: Option<u64>,
    /// The call thread is running injected code reach could not take back
    /// (see `run.rs`, `abandon`): it must not be restored or released, and
    /// reach's mapping must stay.
    pub lost: bool,
    closed: bool,
    /// When the first thread was seized, for `REACH_TIMING`.
    opened: Instant,
}

impl Window {
    fn new(pid: i32, call: Tid) -> Window {
        Window {
            pid,
            held: Vec::new(),
            call,
            saved: None,
            armed: false,
            seccomp: 0,
            own_mask: None,
            deferred: Vec::new(),
            frame_in: None,
            lost: false,
            closed: false,
            opened: Instant::now(),
        }
    }

    /// Stop the one thread an operation runs on: the one `choice` names,
    /// else a thread sleeping in an interruptible system call (the main
    /// thread first), else a running one; never one in uninterruptible
    /// sleep or waiting for a vfork child. A candidate that another tracer
    /// holds, or that exits meanwhile, gives way to the next.
    pub fn open_one(
        pid: i32,
        choice: Choice,
        last: Option<Tid>,
        limits: &Limits,
    ) -> Result<Window> {
        let mut refusal = None;
        for tid in choose::candidates(pid, choice, last)? {
            let seccomp = procinfo::task_seccomp(pid, tid);
            if seccomp != 0 {
                check_can_suspend_seccomp(pid, seccomp)?;
            }
            // (Only a named thread can be in D here: see choose.rs.)
            match wait_out_of_d(pid, tid, limits) {
                Ok(()) => {}
                Err(StopFailed::Gone) => continue,
                Err(StopFailed::Error(e)) => return Err(e),
            }
            match seize(pid, tid) {
                Ok(()) => {}
                Err(Seize::Gone) => continue,
                Err(Seize::Refused(e)) => {
                    refusal = Some(e);
                    continue;
                }
            }
            let mut win = Window::new(pid, tid);
            win.seccomp = seccomp;
            match wait_for_stop(tid, limits) {
                Ok(()) => {}
                Err(StopFailed::Gone) => {
                    win.closed = true;
                    continue;
                }
                Err(StopFailed::Error(e)) => {
                    // Still running (not stopped in time, or reach was
                    // interrupted): nothing to restore, and it can only be
                    // detached once it stops.
                    win.closed = true;
                    linger(tid);
                    return Err(e);
                }
            }
            win.held.push(tid);
            win.save()?;
            return Ok(win);
        }
        Err(refusal.unwrap_or_else(|| nothing_to_stop(pid)))
    }

    /// Stop every thread of `pid`, re-listing until no new thread appears.
    pub fn open_all(pid: i32, choice: Choice, limits: &Limits) -> Result<Window> {
        let mut win = Window::new(pid, pid);
        // Threads that are exiting (and so cannot be seized): not new again.
        let mut skipped: Vec<Tid> = Vec::new();
        loop {
            let new: Vec<Tid> = procinfo::tasks(pid)?
                .into_iter()
                .filter(|t| !win.held.contains(t) && !skipped.contains(t))
                .collect();
            // io_uring workers run only kernel code and cannot be traced:
            // nothing of the process's runs on them.
            let (new, workers): (Vec<Tid>, Vec<Tid>) = new.into_iter().partition(|&t| {
                procinfo::user_task_state(pid, t).is_some() || procinfo::is_gone(pid, t)
            });
            skipped.extend(workers);
            if new.is_empty() {
                break;
            }
            let mut interrupted = Vec::with_capacity(new.len());
            let mut refused = None;
            // Threads in uninterruptible sleep last, each waited out of it
            // before it is seized: the others stop meanwhile.
            let (sleeping, new): (Vec<Tid>, Vec<Tid>) = new
                .into_iter()
                .partition(|&t| procinfo::task_state(pid, t) == Some('D'));
            for tid in new.into_iter().chain(sleeping) {
                match wait_out_of_d(pid, tid, limits) {
                    Ok(()) => {}
                    Err(StopFailed::Gone) => {
                        skipped.push(tid);
                        continue;
                    }
                    Err(StopFailed::Error(e)) => {
                        refused = Some(e);
                        break;
                    }
                }
                match seize(pid, tid) {
                    Ok(()) => interrupted.push(tid),
                    Err(Seize::Gone) => skipped.push(tid),
                    Err(Seize::Refused(e)) => {
                        refused = Some(e);
                        break;
                    }
                }
            }
            // Even when refusing, the threads already interrupted must
            // stop, and have their system calls fixed up, before release.
            let mut failed = refused;
            for tid in interrupted {
                match wait_for_stop(tid, limits) {
                    Ok(()) => {
                        restart::fix_interrupted(tid);
                        win.held.push(tid);
                    }
                    Err(StopFailed::Gone) => skipped.push(tid),
                    Err(StopFailed::Error(e)) => {
                        linger(tid);
                        failed.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = failed {
                return Err(e);
            }
        }
        if win.held.is_empty() {
            win.closed = true;
            return Err(Error::TargetExited(pid));
        }
        win.select(choice)?;
        Ok(win)
    }

    /// In an all-thread window: make the thread `choice` names (else the
    /// main thread, else the first held) the call thread.
    pub fn select(&mut self, choice: Choice) -> Result<()> {
        let want = match choice {
            Choice::Thread(tid) => {
                if !self.held.contains(&tid) {
                    return Err(EngineError::NoSuchThread { pid: self.pid, tid }.into());
                }
                tid
            }
            Choice::Auto if self.held.contains(&self.pid) => self.pid,
            Choice::Auto => self.held[0],
        };
        if want != self.call {
            self.restore()?;
            self.call = want;
            self.armed = false;
            self.frame_in = None;
            self.seccomp = procinfo::task_seccomp(self.pid, want);
        }
        Ok(())
    }

    /// Does this window hold thread `tid` stopped?
    pub fn holds(&self, tid: Tid) -> bool {
        self.held.contains(&tid)
    }

    pub fn call_tid(&self) -> Tid {
        self.call
    }

    /// The call thread's saved state (read now if this window had not
    /// needed it yet).
    pub fn saved(&mut self) -> Result<&Saved> {
        if self.saved.is_none() {
            self.save()?;
        }
        Ok(self.saved.as_ref().expect("just saved"))
    }

    /// The call thread's fs_base (its thread pointer), as saved.
    pub fn fs_base(&mut self) -> u64 {
        self.saved().map_or(0, |s| s.regs.fs_base)
    }

    /// Read the call thread's state (it is stopped).
    fn save(&mut self) -> Result<()> {
        let tid = self.call;
        let regs = ptrace::get_regs(tid).map_err(Error::from)?;
        if regs.cs == USER32_CS {
            return Err(EngineError::ThirtyTwoBit(self.pid).into());
        }
        let xstate = ptrace::get_xstate(tid).map_err(Error::from)?;
        let sigmask = ptrace::get_sigmask(tid).map_err(Error::from)?;
        let regs = restart::resumable(self.pid, tid, regs);
        self.saved = Some(Saved {
            regs,
            xstate,
            sigmask,
        });
        Ok(())
    }

    /// Set the call thread up to run injected code, once per window:
    /// attach what it starts (fork, vfork, clone), and suspend its seccomp
    /// filter for reach's own system calls where it has one.
    pub fn arm(&mut self) -> Result<()> {
        if self.armed {
            return Ok(());
        }
        let mut options = OPT_BASE | OPT_CHILDREN;
        if self.seccomp != 0 {
            options |= OPT_SUSPEND_SECCOMP;
        }
        ptrace::set_options(self.call, options).map_err(|e| match e.errno {
            Errno::EPERM | Errno::EINVAL if self.seccomp != 0 => EngineError::Seccomp {
                pid: self.pid,
                mode: self.seccomp,
                why: format!("the kernel refused to suspend it ({})", e.errno),
            }
            .into(),
            _ => Error::from(e),
        })?;
        self.armed = true;
        Ok(())
    }

    /// Put the call thread back exactly as it was saved, keeping the window
    /// open: signal mask (with what injected code did to it), vector
    /// state, then — last, as the moment the thread is its own again —
    /// the general registers.
    pub fn restore(&mut self) -> Result<()> {
        if self.lost {
            return Ok(());
        }
        let Some(saved) = &self.saved else {
            return Ok(());
        };
        let tid = self.call;
        let mask = self.own_mask.take().unwrap_or(saved.sigmask);
        ptrace::set_sigmask(tid, mask).map_err(Error::from)?;
        ptrace::set_xstate(tid, &saved.xstate).map_err(Error::from)?;
        ptrace::set_regs(tid, &saved.regs).map_err(Error::from)?;
        self.saved = None;
        self.frame_in = None;
        Ok(())
    }

    /// Restore and release every thread; errors are returned after every
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
        for &tid in &self.held {
            if !(self.lost && tid == self.call) {
                release(tid);
            }
        }
        timing::record(self.call, self.held.len(), self.opened.elapsed());
        for sig in self.deferred.drain(..) {
            let _ = ptrace::tgkill(self.pid, self.call, sig);
        }
        restored
    }

    /// Give up the call thread: it runs injected code that will restore it
    /// by itself (the kernel lets it go when reach exits).
    pub fn lose_call_thread(&mut self) {
        self.lost = true;
        self.saved = None;
        linger(self.call);
    }

    /// If the process is dying, reap the threads held besides the call
    /// thread: a traced thread stays a zombie until its tracer waits for
    /// it, and the main thread's own exit is reported only after every
    /// other thread's.
    pub fn reap_if_dying(&mut self) {
        if self.held.len() < 2 || !procinfo::exiting(self.pid, self.pid) {
            return;
        }
        let call = self.call;
        self.held.retain(|&tid| {
            tid == call || !matches!(ptrace::try_wait(tid), Ok(Some(s)) if s.is_gone())
        });
    }

    /// Forget a thread that no longer exists.
    pub fn forget(&mut self, tid: Tid) {
        self.held.retain(|&t| t != tid);
        if tid == self.call {
            self.saved = None;
        }
    }

    /// The call thread replaced the process image (execve): its old
    /// registers must not be written into the new program, but the signal
    /// mask survives execve, so the new program gets the target's own.
    pub fn discard_saved(&mut self) {
        if let Some(saved) = self.saved.take() {
            let _ = ptrace::set_sigmask(self.call, saved.sigmask);
        }
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        if let Err(e) = self.close_inner() {
            crate::process::warn(&format!("restoring pid {}: {e}", self.pid));
        }
    }
}

/// Why no thread could be tried at all.
fn nothing_to_stop(pid: i32) -> Error {
    if procinfo::all_gone(pid) {
        return Error::TargetExited(pid);
    }
    let states: Vec<String> = procinfo::tasks(pid)
        .unwrap_or_default()
        .iter()
        .map(|&tid| {
            let state = procinfo::task_state(pid, tid).unwrap_or('?');
            format!("{tid} {state} in {}", procinfo::task_wchan(pid, tid))
        })
        .take(8)
        .collect();
    EngineError::NoThread(
        pid,
        format!(
            "every thread is exiting or in uninterruptible sleep ({})",
            states.join(", ")
        ),
    )
    .into()
}

/// How long each window held its threads, kept when `REACH_TIMING` is
/// set (for the benchmarks: the call thread's own pause, as reach holds
/// it, from the seize to the detach).
pub mod timing {
    use super::Tid;
    use std::cell::RefCell;
    use std::time::Duration;

    thread_local! {
        static HELD: RefCell<Vec<(Tid, usize, Duration)>> = const { RefCell::new(Vec::new()) };
    }

    fn enabled() -> bool {
        static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *ON.get_or_init(|| std::env::var_os("REACH_TIMING").is_some())
    }

    pub(super) fn record(tid: Tid, threads: usize, held: Duration) {
        if enabled() {
            HELD.with(|h| h.borrow_mut().push((tid, threads, held)));
        }
    }

    /// (call thread, threads held, how long) of every window so far.
    pub fn windows() -> Vec<(Tid, usize, Duration)> {
        HELD.with(|h| h.borrow().clone())
    }
}

thread_local! {
    /// Threads reach seized that have not stopped yet (in uninterruptible
    /// sleep when asked to, or running injected code reach gave up on). A
    /// tracee that has not stopped cannot be detached: each is released as
    /// soon as it stops, or by the kernel when reach exits. Only this
    /// thread of reach traces, so the list is per thread.
    static LINGERING: std::cell::RefCell<Vec<Tid>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn linger(tid: Tid) {
    LINGERING.with(|l| l.borrow_mut().push(tid));
}

/// Release the lingering threads that have stopped since (or are gone),
/// waiting up to `wait` for the others to stop: what is left lingering
/// after it, if anything.
pub fn settle_lingering(wait: std::time::Duration) -> usize {
    let until = Instant::now() + wait;
    loop {
        tend_lingering();
        let left = LINGERING.with(|l| l.borrow().len());
        if left == 0 || Instant::now() >= until {
            return left;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Release the lingering threads that have stopped since (or are gone).
pub fn tend_lingering() {
    LINGERING.with(|l| {
        l.borrow_mut().retain(|&tid| match ptrace::try_wait(tid) {
            Ok(None) => true,
            Ok(Some(stop)) if stop.is_gone() => false,
            // A signal on its way in goes on with it.
            Ok(Some(Stop::Signal(sig))) => {
                let _ = ptrace::detach(tid, sig);
                false
            }
            Ok(Some(stop)) => {
                if stop == Stop::Interrupted {
                    restart::fix_interrupted(tid);
                }
                let _ = ptrace::detach(tid, 0);
                false
            }
            Err(_) => false,
        })
    });
}

enum Seize {
    /// The thread exited meanwhile.
    Gone,
    /// Another tracer holds it, or reach may not trace it.
    Refused(Error),
}

/// Seize and interrupt `tid`. `PTRACE_SEIZE` is tried again when it says
/// EPERM but nobody traces the thread any more (another tracer, perhaps
/// another reach, let go meanwhile).
fn seize(pid: i32, tid: Tid) -> std::result::Result<(), Seize> {
    let mut tries = 0;
    let seized = loop {
        match ptrace::seize(tid, OPT_BASE) {
            Err(e)
                if e.errno == Errno::EPERM && tries < 3 && procinfo::task_tracer(pid, tid) == 0 =>
            {
                tries += 1
            }
            other => break other,
        }
    };
    match seized {
        Ok(()) => {
            // ESRCH: it is exiting; its exit is reaped when waited for.
            let _ = ptrace::interrupt(tid);
            Ok(())
        }
        Err(e) if e.errno == Errno::ESRCH => Err(Seize::Gone),
        Err(e) if e.errno == Errno::EPERM => match refusal(pid, tid) {
            None => Err(Seize::Gone),
            Some(e) => Err(Seize::Refused(e)),
        },
        Err(e) => Err(Seize::Refused(e.into())),
    }
}

/// Why `PTRACE_SEIZE` of thread `tid` said EPERM: it is exiting (`None`),
/// the whole process is exiting, another tracer holds it, or reach is not
/// permitted.
fn refusal(pid: i32, tid: Tid) -> Option<Error> {
    if procinfo::is_gone(pid, tid) {
        return None;
    }
    if procinfo::is_gone(pid, pid) && procinfo::all_gone(pid) {
        return Some(Error::TargetExited(pid));
    }
    match procinfo::task_tracer(pid, tid) {
        // Root is refused only by a tracer (or ptrace_scope 3, which
        // refuses everything): one that let go between the two reads.
        0 if nix::unistd::Uid::effective().is_root() && procinfo::ptrace_scope() != Some(3) => {
            Some(Error::TracedMeanwhile(pid))
        }
        0 => Some(Error::NotPermitted {
            pid,
            access: procinfo::Access::Trace,
        }),
        tracer => Some(Error::AlreadyTraced {
            pid,
            tracer,
            tracer_name: procinfo::comm(tracer).unwrap_or_else(|| "?".into()),
        }),
    }
}

enum StopFailed {
    Gone,
    Error(Error),
}

/// Wait, without touching it, until `tid` is out of uninterruptible sleep
/// (`D`, which includes a parent waiting for its vfork child). Seized
/// there, it could not stop until the kernel lets it go, and a tracee that
/// has not stopped cannot be detached: it would stay seized, and stop the
/// moment it leaves the kernel, for as long as reach lives.
fn wait_out_of_d(pid: i32, tid: Tid, limits: &Limits) -> std::result::Result<(), StopFailed> {
    loop {
        match procinfo::task_state(pid, tid) {
            None | Some('Z' | 'X') => return Err(StopFailed::Gone),
            Some('D') => {}
            Some(_) => return Ok(()),
        }
        if let Some(sig) = limits.interrupted() {
            return Err(StopFailed::Error(EngineError::Interrupted(sig).into()));
        }
        if Instant::now() >= limits.deadline {
            return Err(StopFailed::Error(stop_timeout(tid, limits, false)));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Wait until seized and interrupted `tid` reports its stop. A signal
/// already on its way is delivered first, as it would have been without
/// reach; then the interrupt's stop follows.
fn wait_for_stop(tid: Tid, limits: &Limits) -> std::result::Result<(), StopFailed> {
    let _ticker = interrupt::Ticker::start(20);
    loop {
        match ptrace::wait(tid) {
            Ok(Stop::Interrupted | Stop::GroupStop(_)) => return Ok(()),
            Ok(Stop::Signal(sig)) => {
                let _ = ptrace::cont(tid, sig);
            }
            Ok(s) if s.is_gone() => return Err(StopFailed::Gone),
            Ok(_) => {
                let _ = ptrace::cont(tid, 0);
            }
            Err(e) if e.errno == Errno::EINTR => {
                if let Some(sig) = limits.interrupted() {
                    return Err(StopFailed::Error(EngineError::Interrupted(sig).into()));
                }
                if Instant::now() >= limits.deadline {
                    return Err(StopFailed::Error(stop_timeout(tid, limits, true)));
                }
            }
            Err(e) if e.errno == Errno::ECHILD || e.errno == Errno::ESRCH => {
                return Err(StopFailed::Gone);
            }
            Err(e) => return Err(StopFailed::Error(e.into())),
        }
    }
}

/// Why `tid` did not stop in time, and what becomes of it: untouched if
/// it was never `seized`; else it stays seized with the interrupt pending
/// (a tracee that has not stopped cannot be detached) and is released once
/// it stops.
fn stop_timeout(tid: Tid, limits: &Limits, seized: bool) -> Error {
    let pid = procinfo::tgid(tid).unwrap_or(tid);
    let state = procinfo::task_state(pid, tid).unwrap_or('?');
    let wchan = procinfo::task_wchan(pid, tid);
    let why = match state {
        'D' => format!("in uninterruptible sleep in {wchan}"),
        s => format!("state {s}, in {wchan}"),
    };
    EngineError::StopTimeout {
        tid,
        secs: limits.timeout.as_secs_f64().ceil() as u64,
        why,
        after: match seized {
            false => "no thread was held",
            true => "reach lets it go as soon as it leaves the kernel, or when reach exits",
        },
    }
    .into()
}

/// Refuse, before anything is seized, a thread whose seccomp filter reach
/// cannot suspend for its own system calls: only CAP_SYS_ADMIN can, and
/// only from a tracer not itself under seccomp.
fn check_can_suspend_seccomp(pid: i32, mode: u32) -> Result<()> {
    let me = std::process::id() as i32;
    let why = if procinfo::task_seccomp(me, me) != 0 {
        Some("reach itself runs under seccomp, so it cannot suspend the target's filter")
    } else if !procinfo::has_cap_sys_admin() {
        Some("suspending it for reach's own system calls needs CAP_SYS_ADMIN")
    } else {
        None
    };
    match why {
        Some(why) => Err(EngineError::Seccomp {
            pid,
            mode,
            why: why.into(),
        }
        .into()),
        None => Ok(()),
    }
}

/// Detach `tid`, getting it stopped first if it is somehow running.
fn release(tid: Tid) {
    match ptrace::detach(tid, 0) {
        Ok(()) => {}
        Err(e) if e.errno == Errno::ESRCH => {
            // Either gone, or running (detach needs a stopped tracee).
            let pid = procinfo::tgid(tid).unwrap_or(tid);
            if procinfo::is_gone(pid, tid) || ptrace::interrupt(tid).is_err() {
                return;
            }
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
        Err(_) => {}
    }
}
