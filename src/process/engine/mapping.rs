//! reach's own memory in the target: one anonymous private mapping per
//! session, created at the first operation that needs it and removed at
//! detach, named `[anon:reach]` in `/proc/PID/maps` where the kernel has
//! `PR_SET_VMA_ANON_NAME`. Injected code runs here and nowhere else: reach
//! writes nothing into the target's own stacks, heap or code.
//!
//! ```text
//!  base            control, r-x (20 KiB), written by reach only
//!   +0x000           the code (sys/x86_64/code.rs)
//!   +0x080           the name "reach"
//!   +0x0c0           owner: the tid allowed to rt_sigreturn here
//!   +0x100           the rt_sigframe holding the call thread's state
//!  +0x5000         stack, rw- (1 MiB, touched lazily; the read-only
//!                  control pages below it are its guard)
//!  +0x105000       arguments, rw- (1 MiB; more goes to a mapping of its
//!                  own, made and removed in the same window)
//! ```
//!
//! Creating it is the one instant a kill of reach can harm the target: the
//! first `mmap` runs from a `syscall` instruction of the target's own (its
//! vDSO), and if reach dies during that system call the thread resumes
//! after it with reach's registers. The same holds for the `munmap` that
//! removes it. Each lasts one system call plus three ptrace stops. Every
//! other injected system call goes through the mapping's own code, with
//! the restore frame in place.

use super::run;
use super::window::Window;
use super::{EngineError, Limits};
use crate::process::{Error, Result, procinfo};
use crate::sys::memory::{self, ProcMem};
use crate::sys::procmap;
use crate::sys::x86_64::{code, frame};
use nix::errno::Errno;
use std::fs::File;
use std::rc::Rc;

const PAGE: u64 = 4096;
const CONTROL: u64 = 5 * PAGE;
const NAME_AT: u64 = 0x80;
const OWNER_AT: u64 = 0xc0;
const FRAME_AT: u64 = 0x100;
const STACK: u64 = 1 << 20;
const ARGS: u64 = 1 << 20;
const TOTAL: u64 = CONTROL + STACK + ARGS;
/// The most bytes of string and blob arguments one call may have.
pub const ARGS_MAX: usize = 64 << 20;
/// `prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, ...)` (linux/prctl.h).
const PR_SET_VMA: u64 = 0x53564d41;
const PR_SET_VMA_ANON_NAME: u64 = 0;

/// Arguments placed for one call: each one's register value, and the
/// extra mapping (address, length) that holds large ones.
pub struct Placed {
    pub values: Vec<u64>,
    extra: Option<(u64, u64)>,
}

/// Where reach's mapping is in one target, and the target's memory held
/// open to write its read-only pages.
#[derive(Clone)]
pub struct Mapping {
    base: u64,
    mem: Rc<ProcMem>,
}

impl Mapping {
    pub fn syscall_stub(&self) -> u64 {
        self.base + code::SYSCALL_STUB
    }

    pub fn restorer(&self) -> u64 {
        self.base + code::RESTORER
    }

    /// The pc at which the restorer's `gettid` stops: the injected code
    /// is done.
    pub fn stop_rip(&self) -> u64 {
        self.base + code::STOP_RIP
    }

    pub fn stack_top(&self) -> u64 {
        self.base + CONTROL + STACK
    }

    fn frame(&self) -> u64 {
        self.base + FRAME_AT
    }

    /// Create the mapping, with the call thread of `win` stopped.
    pub fn create(win: &mut Window, insn: u64, limits: &Limits) -> Result<Mapping> {
        let pid = win.pid;
        let fail = |why: String| -> Error { EngineError::Mapping { pid, why }.into() };
        // Opened before anything is injected: without it nothing can go on.
        let mem = Rc::new(ProcMem::open(pid).map_err(|errno| match errno {
            Errno::EACCES | Errno::EPERM => Error::NotPermitted {
                pid,
                access: procinfo::Access::Call,
            },
            _ => fail(format!("cannot open /proc/{pid}/mem ({errno})")),
        })?);
        win.arm()?;
        let base = run::bare_syscall(
            win,
            insn,
            libc::SYS_mmap as u64,
            &[
                0,
                TOTAL,
                (libc::PROT_READ | libc::PROT_EXEC) as u64,
                (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE) as u64,
                u64::MAX,
                0,
            ],
            limits,
        )?;
        if (-4095..0).contains(&base) {
            return Err(fail(format!(
                "mmap failed: {}",
                nix::errno::Errno::from_raw(-base as i32)
            )));
        }
        let map = Mapping {
            base: base as u64,
            mem,
        };
        if let Err(e) = map.fill(win, limits) {
            let _ = map.remove_with(win, insn, limits);
            return Err(e);
        }
        Ok(map)
    }

    /// Write the code, then make the stack and argument pages writable and
    /// name the mapping (both through the code, so a kill of reach from
    /// here on leaves the thread able to restore itself).
    fn fill(&self, win: &mut Window, limits: &Limits) -> Result<()> {
        let pid = win.pid;
        let mut code = code::stubs(self.base, self.frame(), self.base + OWNER_AT);
        code.resize(NAME_AT as usize, 0);
        code.extend_from_slice(b"reach\0");
        self.mem
            .write(self.base, &code)
            .map_err(|errno| EngineError::Mapping {
                pid,
                why: format!(
                    "writing its code through /proc/{pid}/mem failed ({errno}; \
                     a kernel booted with proc_mem.force_override=never refuses)"
                ),
            })?;
        let rw = run::stub_syscall(
            win,
            self,
            "mmap",
            libc::SYS_mmap as u64,
            &[
                self.base + CONTROL,
                TOTAL - CONTROL,
                (libc::PROT_READ | libc::PROT_WRITE) as u64,
                (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED)
                    as u64,
                u64::MAX,
                0,
            ],
            limits,
        )?;
        if rw as u64 != self.base + CONTROL {
            return Err(EngineError::Mapping {
                pid,
                why: format!("mmap of its stack failed ({rw})"),
            }
            .into());
        }
        if !memory::anon_names_supported() {
            return Ok(());
        }
        run::stub_syscall(
            win,
            self,
            "prctl",
            libc::SYS_prctl as u64,
            &[
                PR_SET_VMA,
                PR_SET_VMA_ANON_NAME,
                self.base,
                TOTAL,
                self.base + NAME_AT,
            ],
            limits,
        )?;
        Ok(())
    }

    /// Make sure the restore frame holds the window's saved state and the
    /// call thread is its owner: written once per window, before the
    /// thread's registers change.
    pub fn write_frame(&self, win: &mut Window) -> Result<()> {
        if win.frame_in == Some(self.base) {
            return Ok(());
        }
        let pid = win.pid;
        let tid = win.call_tid();
        let saved = win.saved()?;
        let frame = frame::build(
            self.frame(),
            &crate::sys::x86_64::after_restart(&saved.regs),
            &saved.xstate,
            saved.sigmask,
        );
        if FRAME_AT + frame.bytes.len() as u64 > CONTROL {
            return Err(EngineError::Mapping {
                pid,
                why: format!("a {}-byte signal frame does not fit", frame.bytes.len()),
            }
            .into());
        }
        // The owner's tid and the frame, in one write.
        let mut bytes = vec![0u8; (FRAME_AT - OWNER_AT) as usize];
        bytes[..4].copy_from_slice(&(tid as u32).to_le_bytes());
        bytes.extend_from_slice(&frame.bytes);
        self.mem
            .write(self.base + OWNER_AT, &bytes)
            .map_err(|errno| Error::Write {
                pid,
                addr: self.base + OWNER_AT,
                len: bytes.len(),
                errno,
            })?;
        win.frame_in = Some(self.base);
        Ok(())
    }

    /// Copy strings and blobs where the callee can read them: the argument
    /// pages, or (beyond 1 MiB) a mapping of their own for this call.
    pub fn place(&self, win: &mut Window, args: &[super::Arg], limits: &Limits) -> Result<Placed> {
        let bytes: usize = args
            .iter()
            .map(|a| match a {
                super::Arg::Bytes(b) => (b.len() + 15) & !15,
                super::Arg::Int(_) => 0,
            })
            .sum();
        if bytes > ARGS_MAX {
            return Err(EngineError::ArgsTooLarge(bytes).into());
        }
        let (mut at, extra) = if bytes as u64 <= ARGS {
            (self.base + CONTROL + STACK, None)
        } else {
            let len = (bytes as u64 + PAGE - 1) & !(PAGE - 1);
            let addr = run::stub_syscall(
                win,
                self,
                "mmap",
                libc::SYS_mmap as u64,
                &[
                    0,
                    len,
                    (libc::PROT_READ | libc::PROT_WRITE) as u64,
                    (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
                    u64::MAX,
                    0,
                ],
                limits,
            )?;
            if (-4095..0).contains(&addr) {
                return Err(EngineError::Mapping {
                    pid: win.pid,
                    why: format!("mmap of {len} bytes for arguments failed ({addr})"),
                }
                .into());
            }
            (addr as u64, Some((addr as u64, len)))
        };
        let mut values = Vec::with_capacity(args.len());
        let mut pieces: Vec<(u64, &[u8])> = Vec::new();
        for arg in args {
            match arg {
                super::Arg::Int(v) => values.push(*v),
                super::Arg::Bytes(b) => {
                    pieces.push((at, b));
                    values.push(at);
                    at += (b.len() as u64 + 15) & !15;
                }
            }
        }
        memory::write_all(win.pid, &pieces).map_err(|errno| Error::Write {
            pid: win.pid,
            addr: pieces.first().map_or(0, |p| p.0),
            len: bytes,
            errno,
        })?;
        Ok(Placed { values, extra })
    }

    /// Unmap the extra argument mapping [`Mapping::place`] made, if any.
    pub fn unplace(&self, win: &mut Window, placed: &Placed, limits: &Limits) -> Result<()> {
        let Some(extra) = placed.extra else {
            return Ok(());
        };
        run::stub_syscall(
            win,
            self,
            "munmap",
            libc::SYS_munmap as u64,
            &[extra.0, extra.1],
            limits,
        )
        .map(drop)
    }

    /// Whether the mapping is still where it was made (an exec, or the
    /// program itself, may have removed it).
    pub fn still_there(&self, pid: i32) -> bool {
        let main = format!("/proc/{pid}");
        // A main thread that called pthread_exit shows no maps: ask a live
        // thread then.
        self.listed_in(&main) || {
            let dir = procinfo::dir(pid);
            dir != main && self.listed_in(&dir)
        }
    }

    /// Whether the `maps` file in the `/proc` directory `dir` lists it.
    fn listed_in(&self, dir: &str) -> bool {
        let Ok(maps) = File::open(format!("{dir}/maps")) else {
            return false;
        };
        match procmap::query(&maps, self.base) {
            Ok(Some(vma)) => vma.start == self.base && vma.inode == 0,
            Ok(None) => false,
            // Before Linux 6.11: read the maps.
            Err(_) => procinfo::read_proc(&format!("{dir}/maps")).is_ok_and(|t| {
                t.starts_with(&format!("{:x}-", self.base))
                    || t.contains(&format!("\n{:x}-", self.base))
            }),
        }
    }

    /// Remove the mapping (from the target's own `syscall` instruction:
    /// the code being unmapped cannot run it).
    pub fn remove(&self, win: &mut Window, limits: &Limits) -> Result<()> {
        let insn = find_syscall_insn(win.pid)?;
        self.remove_with(win, insn, limits)
    }

    fn remove_with(&self, win: &mut Window, insn: u64, limits: &Limits) -> Result<()> {
        win.arm()?;
        run::bare_syscall(
            win,
            insn,
            libc::SYS_munmap as u64,
            &[self.base, TOTAL],
            limits,
        )
        .map(drop)
    }
}

/// The bytes `0f 05` (`syscall`) in an executable mapping of `pid`: the
/// vDSO first (always there, small, and found without reading the maps:
/// `AT_SYSINFO_EHDR` in `/proc/PID/auxv`), else any. Any occurrence will
/// do, aligned or not: the CPU decodes from wherever rip points. Nothing is
/// written.
pub fn find_syscall_insn(pid: i32) -> Result<u64> {
    if let Some(vdso) = vdso_address(pid) {
        // The vDSO is two pages of code on x86-64 (8 KiB); look at 16.
        let mut buf = vec![0u8; 4 * 4096];
        for len in [buf.len(), 2 * 4096] {
            if memory::read(pid, vdso, &mut buf[..len]).is_ok() {
                if let Some(i) = buf[..len].windows(2).position(|w| w == [0x0f, 0x05]) {
                    return Ok(vdso + i as u64);
                }
                break;
            }
        }
    }
    let code = crate::process::symbols::executable_mappings(pid)?;
    if code.is_empty() {
        // No memory at all: the process is exiting (a zombie's maps are
        // empty).
        return Err(Error::TargetExited(pid));
    }
    for (start, end, _) in code {
        let mut addr = start;
        while addr < end {
            let len = ((end - addr) as usize).min(1 << 20);
            let mut buf = vec![0u8; len];
            if memory::read(pid, addr, &mut buf).is_err() {
                break;
            }
            if let Some(i) = buf.windows(2).position(|w| w == [0x0f, 0x05]) {
                return Ok(addr + i as u64);
            }
            if addr + len as u64 >= end {
                break;
            }
            // Overlap by one byte: the two bytes may straddle chunks.
            addr += len as u64 - 1;
        }
    }
    Err(EngineError::NoSyscallInstruction(pid).into())
}

/// Where the kernel mapped `pid`'s vDSO (`AT_SYSINFO_EHDR`, 33, in its
/// auxiliary vector).
fn vdso_address(pid: i32) -> Option<u64> {
    let auxv = procinfo::read_process_file(pid, "auxv").ok()?;
    auxv.chunks_exact(16).find_map(|pair| {
        let key = u64::from_le_bytes(pair[..8].try_into().unwrap());
        let value = u64::from_le_bytes(pair[8..].try_into().unwrap());
        (key == libc::AT_SYSINFO_EHDR).then_some(value)
    })
}
