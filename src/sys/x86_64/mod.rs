//! x86-64: register sets, the System V calling convention, the kernel's
//! system-call restart rules, the signal frame `rt_sigreturn` reads
//! (`frame.rs`) and the few instructions reach runs in the target
//! (`code.rs`).

pub mod code;
pub mod frame;

/// General-purpose registers as `PTRACE_GETREGS` returns them (fs_base and
/// gs_base included).
pub type Regs = libc::user_regs_struct;

/// Integer argument registers of the System V AMD64 ABI, in order.
pub const ARG_REGS: usize = 6;

/// Integer argument registers of the Linux x86-64 syscall convention
/// (`syscall(2)`: rdi, rsi, rdx, r10, r8, r9).
pub const SYSCALL_ARG_REGS: usize = 6;

/// The direction flag must be clear on function entry (SysV ABI 3.4.1).
pub const EFLAGS_DF: u64 = 1 << 10;
/// The trap flag: never hand a single-stepping thread to a callee.
pub const EFLAGS_TF: u64 = 1 << 8;

/// The code segment of 32-bit (compat mode) user code on x86-64 Linux.
pub const USER32_CS: u64 = 0x23;

/// Place `value` in the `index`th integer argument register of a function
/// call. `index` must be below [`ARG_REGS`].
pub fn set_call_arg(regs: &mut Regs, index: usize, value: u64) {
    match index {
        0 => regs.rdi = value,
        1 => regs.rsi = value,
        2 => regs.rdx = value,
        3 => regs.rcx = value,
        4 => regs.r8 = value,
        5 => regs.r9 = value,
        _ => unreachable!("argument {index} goes on the stack"),
    }
}

/// Place `value` in the `index`th argument register of a system call.
/// `index` must be below [`SYSCALL_ARG_REGS`].
pub fn set_syscall_arg(regs: &mut Regs, index: usize, value: u64) {
    match index {
        0 => regs.rdi = value,
        1 => regs.rsi = value,
        2 => regs.rdx = value,
        3 => regs.r10 = value,
        4 => regs.r8 = value,
        5 => regs.r9 = value,
        _ => unreachable!("a system call takes at most six arguments"),
    }
}

/// The kernel's internal "restart me" results (include/linux/errno.h).
/// They are never seen by programs: on the way back to user space the
/// kernel turns them into a restart or into EINTR.
pub const ERESTARTSYS: i64 = -512;
pub const ERESTARTNOINTR: i64 = -513;
pub const ERESTARTNOHAND: i64 = -514;
pub const ERESTART_RESTARTBLOCK: i64 = -516;

/// Whether `rax` holds one of the kernel's restart codes.
pub fn is_restart_code(rax: u64) -> bool {
    (ERESTART_RESTARTBLOCK..=ERESTARTSYS).contains(&(rax as i64))
}

/// The registers the thread will have once the kernel has applied its
/// restart rule with no signal handler run: what `arch_do_signal_or_restart`
/// (arch/x86/kernel/signal.c) does on the way back to user space. A system
/// call stopped with a restart code is set up to be issued again (`rax`
/// back to its number, rip back over the 2-byte `syscall`);
/// `-ERESTART_RESTARTBLOCK` goes through `restart_syscall(2)`.
pub fn after_restart(regs: &Regs) -> Regs {
    let mut r = *regs;
    if (r.orig_rax as i64) < 0 {
        return r;
    }
    match r.rax as i64 {
        ERESTARTSYS | ERESTARTNOINTR | ERESTARTNOHAND => {
            r.rax = r.orig_rax;
            r.rip -= 2;
        }
        ERESTART_RESTARTBLOCK => {
            r.rax = libc::SYS_restart_syscall as u64;
            r.rip -= 2;
        }
        _ => {}
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs(rax: i64, orig: i64, rip: u64) -> Regs {
        // SAFETY: user_regs_struct is plain integers; all zero is valid.
        let mut r: Regs = unsafe { std::mem::zeroed() };
        r.rax = rax as u64;
        r.orig_rax = orig as u64;
        r.rip = rip;
        r
    }

    #[test]
    fn restart_codes_become_a_reissue() {
        let r = after_restart(&regs(ERESTARTSYS, 0, 0x1002));
        assert_eq!((r.rax, r.rip), (0, 0x1000));
        let r = after_restart(&regs(ERESTART_RESTARTBLOCK, 35, 0x1002));
        assert_eq!((r.rax, r.rip), (libc::SYS_restart_syscall as u64, 0x1000));
        // A finished system call, or none at all, is left alone.
        let r = after_restart(&regs(5, 0, 0x1002));
        assert_eq!((r.rax, r.rip), (5, 0x1002));
        let r = after_restart(&regs(ERESTARTSYS, -1, 0x1002));
        assert_eq!(r.rip, 0x1002);
        assert!(is_restart_code(ERESTARTNOHAND as u64));
        assert!(!is_restart_code(-4i64 as u64));
    }
}
