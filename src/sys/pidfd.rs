//! Process file descriptors (Linux ≥ 5.3, `pidfd_getfd` ≥ 5.6).
//!
//! A pidfd names one process for its whole life: unlike a pid number it can
//! never come to mean another process.

use nix::errno::Errno;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Open a pidfd for `pid`.
pub fn open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes two integers and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just gave us this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Signal 0 through the pidfd: the permission and existence checks of a
/// signal, with nothing sent.
fn signal0(pidfd: &OwnedFd) -> Result<(), Errno> {
    // SAFETY: integers and a null siginfo.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if ret == 0 { Ok(()) } else { Err(Errno::last()) }
}

/// May reach send the process behind `pidfd` a signal (kill(2)'s
/// permission: the same user, or CAP_KILL)? Only EPERM says no (a process
/// gone has nothing left to refuse).
pub fn may_signal(pidfd: &OwnedFd) -> bool {
    signal0(pidfd) != Err(Errno::EPERM)
}

/// Whether the process behind `pidfd` is still alive (not yet exited).
pub fn is_alive(pidfd: &OwnedFd) -> bool {
    // Signal 0 checks existence only. A zombie still counts as existing,
    // so also poll: a pidfd is readable once the process has exited.
    if !exists(pidfd) {
        return false;
    }
    let mut pfd = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n == 0
}

/// Whether the process behind `pidfd` has not been reaped yet (so its pid
/// is still its own): one system call, for use while one of its threads
/// is held stopped (then it is no zombie either). EPERM (a process of
/// another user, without CAP_KILL) says it exists; only ESRCH says not.
pub fn exists(pidfd: &OwnedFd) -> bool {
    signal0(pidfd) != Err(Errno::ESRCH)
}

/// Duplicate descriptor `fd` of the process behind `pidfd` into reach.
pub fn get_fd(pidfd: &OwnedFd, fd: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: integers only; returns a new fd or -1.
    let new = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if new < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just gave us this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(new as i32) })
}
