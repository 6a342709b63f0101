//! x86-64 register sets and the System V calling convention.

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

/// Below rsp, 128 bytes belong to the interrupted leaf function (SysV ABI
/// 3.2.2, "The Red Zone"): never write there.
pub const RED_ZONE: u64 = 128;

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
