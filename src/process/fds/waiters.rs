//! Which threads wait on which descriptor: a thread blocked in `read`,
//! `recv`, `accept`, … waits on the descriptor it names; in `poll`,
//! `select` or `epoll_wait` on every descriptor of its array, its sets or
//! its epoll instance (`threads::waited_fds`), and on the epoll instance
//! itself.

use super::Fd;
use crate::process::{procinfo, threads};

/// Record, for each descriptor, the threads blocked in a system call on it.
pub(super) fn add_waiters(pid: i32, fds: &mut [Fd]) {
    let Ok(tids) = procinfo::tasks(pid) else {
        return;
    };
    for tid in tids {
        let syscall = threads::current_syscall(pid, tid);
        // The descriptors it waits on, and the one its call names (an
        // epoll instance is waited on too).
        let mut waited = threads::waited_fds(pid, &syscall);
        waited.extend(syscall.fd());
        waited.sort_unstable();
        waited.dedup();
        for fd in waited {
            if let Ok(i) = fds.binary_search_by_key(&fd, |f| f.fd) {
                fds[i].waiters.push(tid);
            }
        }
    }
}
