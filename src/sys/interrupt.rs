//! reach's own SIGINT/SIGTERM/SIGHUP, and a ticking timer for deadlines.
//!
//! While reach holds a target stopped, dying would let the kernel release
//! the threads with reach's registers still in them. So these signals only
//! raise a flag; blocking waits return `EINTR` (handlers are installed
//! without `SA_RESTART`) and the caller restores the target, then gives up.
//! A periodic `SIGALRM` bounds how long a wait can miss the flag or a
//! deadline.

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::time::TimeVal;
use std::sync::atomic::{AtomicI32, Ordering};

static PENDING: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: i32) {
    if sig != libc::SIGALRM {
        PENDING.store(sig, Ordering::SeqCst);
    }
}

/// Route SIGINT, SIGTERM, SIGHUP and SIGALRM to the flag. Call once, early.
pub fn install() {
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGALRM,
    ] {
        // SAFETY: the handler only stores into an atomic.
        let _ = unsafe { sigaction(sig, &action) };
    }
}

/// The signal that asked reach to stop, if any, without clearing it.
pub fn pending() -> Option<i32> {
    match PENDING.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// Forget a request to stop (the REPL does this after returning to its
/// prompt).
pub fn clear() {
    PENDING.store(0, Ordering::SeqCst);
}

/// For a helper thread: block every signal in it, so SIGINT, SIGTERM and
/// the ticking SIGALRM always reach the main thread, whose blocking waits
/// rely on being interrupted by them.
pub fn block_in_this_thread() {
    let _ = SigSet::all().thread_block();
}

/// For the thread that reads the terminal: let SIGINT in again (after
/// [`block_in_this_thread`]), since the line editor ends a read on it.
pub fn unblock_interrupt_in_this_thread() {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    let _ = set.thread_unblock();
}

/// Send thread `tid` of reach a SIGINT (to end a blocking terminal read
/// whose library stops on SIGINT only).
pub fn interrupt_thread(tid: i32) {
    // SAFETY: three integers; a thread of our own process.
    unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            std::process::id() as libc::c_long,
            tid as libc::c_long,
            libc::SIGINT as libc::c_long,
        )
    };
}

/// A periodic SIGALRM while it lives, so blocking waits wake up to check
/// deadlines and [`pending`]. Tickers nest: only the outermost one sets
/// and clears the timer (two system calls saved per inner wait).
pub struct Ticker(());

static TICKERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Ticker {
    pub fn start(period_ms: i64) -> Ticker {
        // A program that uses reach as a library (the test suite) may not
        // have called `install`: SIGALRM's default action would kill it.
        static ALARM: std::sync::Once = std::sync::Once::new();
        ALARM.call_once(|| {
            let action = SigAction::new(
                SigHandler::Handler(on_signal),
                SaFlags::empty(),
                SigSet::empty(),
            );
            // SAFETY: the handler only stores into an atomic (and not even
            // that for SIGALRM); an existing handler is put back.
            if let Ok(old) = unsafe { sigaction(Signal::SIGALRM, &action) }
                && !matches!(old.handler(), SigHandler::SigDfl)
            {
                let _ = unsafe { sigaction(Signal::SIGALRM, &old) };
            }
        });
        if TICKERS.fetch_add(1, Ordering::SeqCst) == 0 {
            set_timer(TimeVal::new(0, period_ms * 1000));
        }
        Ticker(())
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        if TICKERS.fetch_sub(1, Ordering::SeqCst) == 1 {
            set_timer(TimeVal::new(0, 0));
        }
    }
}

fn set_timer(period: TimeVal) {
    let spec = libc::itimerval {
        it_interval: *period.as_ref(),
        it_value: *period.as_ref(),
    };
    // SAFETY: valid itimerval; old value not wanted.
    unsafe { libc::setitimer(libc::ITIMER_REAL, &spec, std::ptr::null_mut()) };
}
