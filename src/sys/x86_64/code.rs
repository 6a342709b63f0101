//! The only code reach runs in a target: a 50-byte page of its own mapping
//! (never the target's code). Two entry points:
//!
//! - the *syscall stub* at [`SYSCALL_STUB`]: a `syscall` instruction, for
//!   raw system calls, that falls through into
//! - the *restorer* at [`RESTORER`], the return address of every injected
//!   function call. It keeps the result in rdi and makes `gettid`. While
//!   reach is alive it catches that system call's entry ([`STOP_RIP`]) and
//!   restores the thread itself. If reach is gone, the thread goes on: it
//!   compares its tid with the owner's, and the owner points rsp just past
//!   the return-address slot of reach's `rt_sigframe` (so `rt_sigreturn`
//!   finds the frame at rsp - 8, as after a signal handler's `ret`) and
//!   makes `rt_sigreturn`, which puts back its registers, vector state and
//!   signal mask. rsp points into the read-only frame for just those two
//!   instructions, with every asynchronous signal still blocked. A process
//!   forked by the called function that returns here instead ends quietly
//!   with `exit(0)`, rather than run the original thread's code twice.
//!
//! ```text
//!  0  0f 05              syscall               ; syscall stub
//!  2  48 89 c7           mov   %rax, %rdi      ; restorer: keep the result
//!  5  b8 ba 00 00 00     mov   $SYS_gettid, %eax
//! 10  0f 05              syscall               ; reach stops at its entry
//! 12  3b 05 <rel32>      cmp   owner(%rip), %eax
//! 18  75 13              jne   39
//! 20  48 bc <imm64>      movabs $frame+8, %rsp
//! 30  b8 0f 00 00 00     mov   $SYS_rt_sigreturn, %eax
//! 35  0f 05              syscall
//! 37  eb ed              jmp   20              ; (a skipped sigreturn)
//! 39  31 ff              xor   %edi, %edi
//! 41  b8 3c 00 00 00     mov   $SYS_exit, %eax ; this thread only
//! 46  0f 05              syscall
//! 48  eb f5              jmp   39
//! ```

/// Offset of the syscall stub in the code.
pub const SYSCALL_STUB: u64 = 0;
/// Offset of the restorer in the code.
pub const RESTORER: u64 = 2;
/// Offset just past the restorer's `gettid` syscall instruction: the pc
/// of its syscall-entry stop.
pub const STOP_RIP: u64 = 12;
/// Length of the code.
pub const LEN: usize = 50;

/// The code, for a copy placed at `base`, with `frame` the address of the
/// `rt_sigframe` and `owner` that of the 32-bit tid allowed to use it.
pub fn stubs(base: u64, frame: u64, owner: u64) -> Vec<u8> {
    let mut c = Vec::with_capacity(LEN);
    c.extend_from_slice(&[0x0f, 0x05]);
    c.extend_from_slice(&[0x48, 0x89, 0xc7]);
    c.extend_from_slice(&[0xb8]);
    c.extend_from_slice(&(libc::SYS_gettid as u32).to_le_bytes());
    c.extend_from_slice(&[0x0f, 0x05]);
    debug_assert_eq!(c.len() as u64, STOP_RIP);
    let next = base + c.len() as u64 + 6;
    let rel = i32::try_from(owner as i64 - next as i64).expect("owner within 2 GiB of the code");
    c.extend_from_slice(&[0x3b, 0x05]);
    c.extend_from_slice(&rel.to_le_bytes());
    c.extend_from_slice(&[0x75, 0x13]);
    c.extend_from_slice(&[0x48, 0xbc]);
    c.extend_from_slice(&(frame + 8).to_le_bytes());
    c.extend_from_slice(&[0xb8]);
    c.extend_from_slice(&(libc::SYS_rt_sigreturn as u32).to_le_bytes());
    c.extend_from_slice(&[0x0f, 0x05]);
    c.extend_from_slice(&[0xeb, 0xed]);
    c.extend_from_slice(&[0x31, 0xff]);
    c.extend_from_slice(&[0xb8]);
    c.extend_from_slice(&(libc::SYS_exit as u32).to_le_bytes());
    c.extend_from_slice(&[0x0f, 0x05]);
    c.extend_from_slice(&[0xeb, 0xf5]);
    debug_assert_eq!(c.len(), LEN);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_listing() {
        let base = 0x7f00_0000_0000;
        let c = stubs(base, base + 0x100, base + 0xc0);
        assert_eq!(c.len(), LEN);
        assert_eq!(&c[0..2], &[0x0f, 0x05]);
        assert_eq!(&c[10..12], &[0x0f, 0x05]);
        assert_eq!(&c[35..37], &[0x0f, 0x05]);
        // rel32 of the cmp is relative to the end of the cmp (offset 18).
        let rel = i32::from_le_bytes(c[14..18].try_into().unwrap());
        assert_eq!(base as i64 + 18 + rel as i64, (base + 0xc0) as i64);
        assert_eq!(
            u64::from_le_bytes(c[22..30].try_into().unwrap()),
            base + 0x108
        );
        // The branches land where the listing says.
        assert_eq!(18 + 2 + c[19] as i64, 39);
        assert_eq!(37 + 2 + (c[38] as i8) as i64, 20);
        assert_eq!(48 + 2 + (c[49] as i8) as i64, 39);
    }
}
