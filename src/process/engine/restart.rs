//! How a stopped thread must resume so that the stop leaves no trace.
//!
//! - A system call that `PTRACE_INTERRUPT` cut short with a restart code
//!   (-ERESTARTSYS and friends) is re-issued by the kernel by itself when
//!   the thread goes on. But some system calls end with a plain `-EINTR`
//!   whenever any stop interrupts them — everything with a timeout that
//!   does not use a restart block: `epoll_wait`, socket calls with
//!   SO_RCVTIMEO/SO_SNDTIMEO (`sock_intr_errno` in include/net/sock.h),
//!   `connect` among them, `io_uring_enter` waiting for completions, ….
//!   Failing with EINTR means they did nothing, so reach turns that EINTR
//!   into `-ERESTARTNOHAND`: the kernel re-issues the call when the thread
//!   goes on, unless a signal handler runs first — exactly what the call
//!   would have done had reach never stopped it. (gdb leaves them failing.)
//! - A thread stopped inside an rseq critical section (per-CPU data in
//!   tcmalloc, glibc's rseq users) resumes at the section's abort handler,
//!   as after a signal or a preemption (kernel/rseq.c, `rseq_ip_fixup`):
//!   running injected code on it makes the kernel forget the section.

use crate::sys::memory;
use crate::sys::ptrace::{self, Tid};
use crate::sys::x86_64::{ERESTARTNOHAND, Regs};

/// System calls that fail with a plain `-EINTR` (not a restart code) when
/// a stop interrupts them, and that are safe to issue again because
/// failing with EINTR means they did nothing.
const REISSUE_ON_EINTR: &[i64] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_sendfile,
    libc::SYS_connect,
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_sendto,
    libc::SYS_recvfrom,
    libc::SYS_sendmsg,
    libc::SYS_recvmsg,
    libc::SYS_sendmmsg,
    libc::SYS_recvmmsg,
    libc::SYS_splice,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_semop,
    libc::SYS_semtimedop,
    libc::SYS_msgsnd,
    libc::SYS_msgrcv,
    libc::SYS_mq_timedsend,
    libc::SYS_mq_timedreceive,
    libc::SYS_io_getevents,
    333, // io_pgetevents (not in the libc crate for x86-64)
    libc::SYS_io_uring_enter,
    libc::SYS_wait4,
    libc::SYS_waitid,
];

const EINTR_RET: u64 = (-libc::EINTR) as i64 as u64;

/// `regs` (of stopped `tid`) as the thread must resume.
pub fn resumable(pid: i32, tid: Tid, regs: Regs) -> Regs {
    let mut regs = reissued(regs);
    if (regs.orig_rax as i64) < 0
        && let Some(abort) = rseq_abort_ip(pid, tid, regs.rip)
    {
        regs.rip = abort;
    }
    regs
}

/// An EINTR the stop caused, turned into a restart.
fn reissued(mut regs: Regs) -> Regs {
    if regs.rax == EINTR_RET && REISSUE_ON_EINTR.contains(&(regs.orig_rax as i64)) {
        regs.rax = ERESTARTNOHAND as u64;
    }
    regs
}

/// For a thread held stopped but not otherwise touched (the other threads
/// of a frozen process): put the restart in place now.
pub fn fix_interrupted(tid: Tid) {
    let Ok(regs) = ptrace::get_regs(tid) else {
        return; // gone
    };
    let fixed = reissued(regs);
    if fixed.rax != regs.rax {
        let _ = ptrace::set_regs(tid, &fixed);
    }
}

/// If `pc` is inside the critical section `tid`'s rseq area currently
/// names, the section's abort handler (checked against the registered
/// signature just before it, as the kernel does).
fn rseq_abort_ip(pid: i32, tid: Tid, pc: u64) -> Option<u64> {
    let conf = ptrace::rseq_config(tid)?;
    // struct rseq: u32 cpu_id_start, u32 cpu_id, u64 rseq_cs, ...
    let cs_ptr = read_u64(pid, conf.abi_pointer + 8)?;
    if cs_ptr == 0 {
        return None;
    }
    // struct rseq_cs: u32 version, u32 flags, u64 start_ip,
    // u64 post_commit_offset, u64 abort_ip.
    let mut cs = [0u8; 32];
    memory::read(pid, cs_ptr, &mut cs).ok()?;
    let word = |i: usize| u64::from_le_bytes(cs[i..i + 8].try_into().unwrap());
    let (start, len, abort) = (word(8), word(16), word(24));
    if !(start..start.checked_add(len)?).contains(&pc) {
        return None;
    }
    let mut sig = [0u8; 4];
    memory::read(pid, abort.checked_sub(4)?, &mut sig).ok()?;
    (u32::from_le_bytes(sig) == conf.signature).then_some(abort)
}

fn read_u64(pid: i32, addr: u64) -> Option<u64> {
    let mut b = [0u8; 8];
    memory::read(pid, addr, &mut b).ok()?;
    Some(u64::from_le_bytes(b))
}
