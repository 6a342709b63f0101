//! The kernel-format signal frame (`struct rt_sigframe`) that lets a thread
//! restore itself with `rt_sigreturn` if reach dies while it runs injected
//! code.
//!
//! `rt_sigreturn` (arch/x86/kernel/signal_64.c) takes the frame at rsp - 8
//! and puts back the signal mask (`uc_sigmask`), the general registers
//! (`uc_mcontext`) and, through `uc_mcontext.fpstate`, the XSAVE area
//! (arch/x86/kernel/fpu/signal.c, `__fpu_restore_sig`). The XSAVE area
//! must be 64-byte aligned and carry the software-reserved bytes
//! (`struct _fpx_sw_bytes`, magic1 at offset 464 and magic2 just past the
//! state); its size must not exceed what the kernel allows the thread
//! (`fpstate->user_size`), or only the legacy FXSAVE part is restored and
//! the upper halves of the vector registers are lost. That size is
//! computed from CPUID leaf 0xD over XCR0's features, without AMX tile
//! data unless the thread uses it (the kernel enables that per process,
//! on request).
//!
//! The alternate signal stack is left as it is: `uc_stack` carries an
//! invalid mode, which `restore_altstack` rejects and ignores
//! (kernel/signal.c, `do_sigaltstack`), since reach cannot read another
//! thread's sigaltstack settings without running code in it.

use super::Regs;

/// Size of `struct rt_sigframe` on x86-64: return address (8), `struct
/// ucontext` (304: flags, link, stack_t, sigcontext, 8-byte sigset) and
/// `siginfo_t` (128).
pub const FRAME_SIZE: u64 = 440;

const UC_FLAGS: u64 = 8;
const UC_STACK_FLAGS: u64 = 32;
const UC_MCONTEXT: u64 = 48;
const UC_SIGMASK: u64 = 304;
/// `uc_flags`: the frame has an XSAVE area, and cs/ss are to be restored
/// exactly (arch/x86/include/uapi/asm/ucontext.h).
const UC_FP_XSTATE: u64 = 0x1;
const UC_SIGCONTEXT_SS: u64 = 0x2;
const UC_STRICT_RESTORE_SS: u64 = 0x4;
/// An `ss_flags` mode `do_sigaltstack` refuses (valid: 0, SS_ONSTACK 1,
/// SS_DISABLE 2), so the thread's alternate stack stays untouched.
const KEEP_ALTSTACK: u32 = 4;

const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
/// Offset of `sw_reserved` in the FXSAVE region, and of the XSAVE header.
const SW_RESERVED: usize = 464;
const XSAVE_HEADER: usize = 512;
/// The legacy region plus the XSAVE header.
const XSAVE_MIN: usize = 576;
/// XSTATE component 18: AMX tile data, enabled per process on request.
const XFEATURE_TILEDATA: u32 = 18;

/// Which XSAVE components to put in a frame, and how many bytes they take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XstateLayout {
    pub features: u64,
    pub size: usize,
}

/// The features and size a frame holds for a thread whose XSAVE header
/// says `xstate_bv`: XCR0's user features, AMX tile data only when the
/// thread has it in use.
pub fn xstate_layout(xstate_bv: u64) -> XstateLayout {
    let xcr0 = xcr0();
    let mut features = xcr0;
    if xstate_bv & (1 << XFEATURE_TILEDATA) == 0 {
        features &= !(1 << XFEATURE_TILEDATA);
    }
    let mut size = XSAVE_MIN;
    for i in 2..64 {
        if features & (1 << i) != 0 {
            // CPUID.(EAX=0DH, ECX=i): EAX size, EBX offset (standard form).
            let leaf = std::arch::x86_64::__cpuid_count(0xd, i);
            size = size.max((leaf.ebx + leaf.eax) as usize);
        }
    }
    XstateLayout { features, size }
}

fn xcr0() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: xgetbv(0) reads XCR0; every x86-64 CPU Linux runs user
    // space with XSAVE enabled supports it (OSXSAVE).
    unsafe {
        std::arch::asm!("xgetbv", in("ecx") 0, out("eax") lo, out("edx") hi,
            options(nomem, nostack, preserves_flags));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// A frame ready to be written at `at` in the target: the `rt_sigframe`
/// followed (64-byte aligned) by the XSAVE area.
pub struct Frame {
    pub bytes: Vec<u8>,
}

/// Build the frame that restores `regs` (already as the thread must resume:
/// restart rule applied), `xstate` (as `PTRACE_GETREGSET` gave it) and
/// `sigmask`, for placement at address `at`.
pub fn build(at: u64, regs: &Regs, xstate: &[u8], sigmask: u64) -> Frame {
    let xsave_off = (FRAME_SIZE as usize + 63) & !63;
    let xsave_at = at + xsave_off as u64;
    debug_assert_eq!(xsave_at % 64, 0, "the frame itself is 64-byte aligned");
    let bv = xstate
        .get(XSAVE_HEADER..XSAVE_HEADER + 8)
        .map_or(3, |b| u64::from_le_bytes(b.try_into().unwrap()));
    let layout = xstate_layout(bv);
    let size = layout.size.min(xstate.len()).max(XSAVE_MIN);
    let mut bytes = vec![0u8; xsave_off + size + 4];

    let put = |b: &mut [u8], off: u64, v: &[u8]| {
        b[off as usize..off as usize + v.len()].copy_from_slice(v)
    };
    // pretcode (unused: rt_sigreturn is made directly) stays 0.
    put(
        &mut bytes,
        UC_FLAGS,
        &(UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS).to_le_bytes(),
    );
    put(&mut bytes, UC_STACK_FLAGS, &KEEP_ALTSTACK.to_le_bytes());
    // struct sigcontext (arch/x86/include/uapi/asm/sigcontext.h).
    let gprs = [
        regs.r8,
        regs.r9,
        regs.r10,
        regs.r11,
        regs.r12,
        regs.r13,
        regs.r14,
        regs.r15,
        regs.rdi,
        regs.rsi,
        regs.rbp,
        regs.rbx,
        regs.rdx,
        regs.rax,
        regs.rcx,
        regs.rsp,
        regs.rip,
        regs.eflags,
    ];
    for (i, v) in gprs.iter().enumerate() {
        put(&mut bytes, UC_MCONTEXT + 8 * i as u64, &v.to_le_bytes());
    }
    let segs = [
        regs.cs as u16,
        regs.gs as u16,
        regs.fs as u16,
        regs.ss as u16,
    ];
    for (i, v) in segs.iter().enumerate() {
        put(
            &mut bytes,
            UC_MCONTEXT + 144 + 2 * i as u64,
            &v.to_le_bytes(),
        );
    }
    put(&mut bytes, UC_MCONTEXT + 168, &sigmask.to_le_bytes()); // oldmask
    put(&mut bytes, UC_MCONTEXT + 184, &xsave_at.to_le_bytes()); // fpstate
    put(&mut bytes, UC_SIGMASK, &sigmask.to_le_bytes());

    // The XSAVE area, with the software-reserved bytes a signal frame has.
    let x = &mut bytes[xsave_off..];
    x[..size].copy_from_slice(&xstate[..size]);
    let mut sw = [0u8; 48];
    sw[0..4].copy_from_slice(&FP_XSTATE_MAGIC1.to_le_bytes());
    sw[4..8].copy_from_slice(&(size as u32 + 4).to_le_bytes());
    sw[8..16].copy_from_slice(&layout.features.to_le_bytes());
    sw[16..20].copy_from_slice(&(size as u32).to_le_bytes());
    x[SW_RESERVED..SW_RESERVED + 48].copy_from_slice(&sw);
    // XSTATE_BV: only what the area holds; XCOMP_BV 0 (standard form).
    x[XSAVE_HEADER..XSAVE_HEADER + 8].copy_from_slice(&(bv & layout.features).to_le_bytes());
    x[XSAVE_HEADER + 8..XSAVE_HEADER + 16].fill(0);
    x[size..size + 4].copy_from_slice(&FP_XSTATE_MAGIC2.to_le_bytes());
    Frame { bytes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    static SEEN_SIZE: AtomicU64 = AtomicU64::new(0);
    static SEEN_FEATURES: AtomicU64 = AtomicU64::new(0);

    extern "C" fn record(_: i32, _: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid ucontext with an fpregs
        // pointer to its XSAVE area (glibc's ucontext_t layout).
        unsafe {
            let uc = &*(ctx as *const libc::ucontext_t);
            let fp = uc.uc_mcontext.fpregs as *const u8;
            let sw = fp.add(SW_RESERVED);
            let size = std::ptr::read_unaligned(sw.add(16) as *const u32);
            let features = std::ptr::read_unaligned(sw.add(8) as *const u64);
            SEEN_SIZE.store(u64::from(size), Ordering::SeqCst);
            SEEN_FEATURES.store(features, Ordering::SeqCst);
        }
    }

    /// The kernel tells a signal handler the XSAVE size and features it
    /// allows this thread: the computation must agree with it.
    #[test]
    fn layout_agrees_with_the_kernels_own_signal_frames() {
        // SAFETY: a handler that only reads its ucontext, installed for a
        // real-time signal nothing else here uses, then reset.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = record as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO;
            let sig = libc::SIGRTMIN() + 7;
            let mut old: libc::sigaction = std::mem::zeroed();
            assert_eq!(libc::sigaction(sig, &sa, &mut old), 0);
            libc::syscall(
                libc::SYS_tgkill,
                libc::getpid(),
                libc::syscall(libc::SYS_gettid),
                sig,
            );
            libc::sigaction(sig, &old, std::ptr::null_mut());
        }
        let ours = xstate_layout(0);
        assert_eq!(ours.size as u64, SEEN_SIZE.load(Ordering::SeqCst));
        assert_eq!(ours.features, SEEN_FEATURES.load(Ordering::SeqCst));
    }

    #[test]
    fn frame_carries_registers_mask_and_magic() {
        // SAFETY: user_regs_struct is plain integers.
        let mut regs: Regs = unsafe { std::mem::zeroed() };
        regs.rip = 0x1234;
        regs.rsp = 0x7ff0;
        regs.cs = 0x33;
        regs.ss = 0x2b;
        let mut xstate = vec![0u8; 4096];
        xstate[XSAVE_HEADER] = 3;
        let f = build(0x10000, &regs, &xstate, 0x55);
        let rd = |off: usize| u64::from_le_bytes(f.bytes[off..off + 8].try_into().unwrap());
        assert_eq!(rd(UC_MCONTEXT as usize + 128), 0x1234);
        assert_eq!(rd(UC_MCONTEXT as usize + 120), 0x7ff0);
        assert_eq!(rd(UC_SIGMASK as usize), 0x55);
        let xsave_off = 448;
        assert_eq!(rd(UC_MCONTEXT as usize + 184), 0x10000 + xsave_off as u64);
        let size = xstate_layout(3).size;
        let magic2 = u32::from_le_bytes(
            f.bytes[xsave_off + size..xsave_off + size + 4]
                .try_into()
                .unwrap(),
        );
        assert_eq!(magic2, FP_XSTATE_MAGIC2);
    }
}
