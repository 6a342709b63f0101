//! A target: a handle to one process, not an attachment. The process runs
//! untouched between operations; each operation that needs it stopped opens
//! a stop window and closes it before returning, unless `freeze` holds one
//! open.

use super::call::{self, Arg, Limits};
use super::maps::{self, Mapping};
use super::procinfo::{self, Identity};
use super::stop::StopWindow;
use super::symbols::{Kind, Resolved, Symbols};
use super::{Error, Result};
use crate::sys::{memory, pidfd};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::time::Duration;

/// How operations on a target behave.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Limit for one injected call (and for stopping the threads).
    pub timeout: Duration,
    /// Read the call thread's errno after each `call` (one extra injected
    /// call to `__errno_location` per thread, cached).
    pub capture_errno: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            timeout: Duration::from_secs(10),
            capture_errno: true,
        }
    }
}

pub struct Target {
    id: Identity,
    pidfd: Option<OwnedFd>,
    pub settings: Settings,
    symbols: Symbols,
    /// IFUNC resolver address → the function it picked.
    ifuncs: HashMap<u64, u64>,
    /// Thread → address of its errno.
    errno_at: HashMap<i32, u64>,
    syscall_insn: Option<u64>,
    last_errno: Option<i32>,
    frozen: Option<StopWindow>,
}

/// The largest string `read_cstr` returns.
const CSTR_MAX: usize = 1 << 20;

impl Target {
    /// Select `pid`: check it exists, is a user process, and nobody traces
    /// it. Nothing is stopped.
    pub fn attach(pid: i32, settings: Settings) -> Result<Target> {
        let id = procinfo::check_traceable(pid)?;
        let pidfd = pidfd::open(pid).ok();
        Ok(Target {
            id,
            pidfd,
            settings,
            symbols: Symbols::default(),
            ifuncs: HashMap::new(),
            errno_at: HashMap::new(),
            syscall_insn: None,
            last_errno: None,
            frozen: None,
        })
    }

    pub fn pid(&self) -> i32 {
        self.id.pid
    }

    pub fn name(&self) -> &str {
        &self.id.name
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen.is_some()
    }

    /// Still the process that was attached?
    fn check_alive(&self) -> Result<()> {
        let alive = self.pidfd.as_ref().is_none_or(pidfd::is_alive);
        // The start time has a granularity of one clock tick, so a pid
        // reused within the same tick is only told apart by the pidfd.
        let pid = self.id.pid;
        match procinfo::start_time(pid) {
            None => Err(Error::TargetExited(pid)),
            Some(t) if t != self.id.start_time => Err(Error::PidReused(pid)),
            // A killed process whose threads reach still holds is not yet
            // reported through its pidfd: every thread exiting says it. (A
            // zombie leader alone is a main thread that called pthread_exit.)
            Some(_) if procinfo::all_gone(pid) => Err(Error::TargetExited(pid)),
            Some(_) if alive => Ok(()),
            // Our process exited, yet a live one has its pid and start time:
            // reused within the same clock tick.
            Some(_) => Err(Error::PidReused(pid)),
        }
    }

    /// An error seen while the process may have been dying says little
    /// ("ESRCH", "symbol not found" in empty maps): if it is gone, say so.
    fn explain(&self, e: Error) -> Error {
        match (&e, self.check_alive()) {
            (Error::PidReused(_) | Error::TargetExited(_), _) => e,
            (_, Err(gone)) => gone,
            _ => e,
        }
    }

    fn limits(&self) -> Limits {
        Limits::new(self.settings.timeout)
    }

    /// Stop every thread of the attached process — checked to still be it
    /// both before and after (a window on a reused pid is closed untouched).
    fn open_window(&self, limits: &Limits) -> Result<StopWindow> {
        self.check_alive()?;
        let win = StopWindow::open(self.id.pid, self.id.start_time, limits.deadline)?;
        self.check_alive()?;
        Ok(win)
    }

    /// Stop every thread and keep them stopped until [`Target::thaw`].
    pub fn freeze(&mut self) -> Result<()> {
        if self.frozen.is_none() {
            let limits = self.limits();
            let win = self.open_window(&limits).map_err(|e| self.explain(e))?;
            self.frozen = Some(win);
        }
        Ok(())
    }

    /// Release a frozen target. Does nothing if it is not frozen.
    pub fn thaw(&mut self) -> Result<()> {
        match self.frozen.take() {
            Some(win) => win.close(),
            None => Ok(()),
        }
    }

    /// Run `op` in a stop window: the frozen one, or a new one closed
    /// before returning. The call thread is restored after `op` either way,
    /// and `op`'s error wins over a restore error.
    fn in_window<T>(
        &mut self,
        op: impl FnOnce(&mut StopWindow, &mut Self, &Limits) -> Result<T>,
    ) -> Result<T> {
        self.in_window_raw(op).map_err(|e| self.explain(e))
    }

    fn in_window_raw<T>(
        &mut self,
        op: impl FnOnce(&mut StopWindow, &mut Self, &Limits) -> Result<T>,
    ) -> Result<T> {
        let limits = self.limits();
        if let Some(mut win) = self.frozen.take() {
            let result = op(&mut win, self, &limits);
            let restored = win.restore();
            self.frozen = Some(win);
            let value = result?;
            restored?;
            return Ok(value);
        }
        let mut win = self.open_window(&limits)?;
        let result = op(&mut win, self, &limits);
        let closed = win.close();
        let value = result?;
        closed?;
        Ok(value)
    }

    /// Address of `name` in the target.
    pub fn sym(&mut self, name: &str) -> Result<u64> {
        self.check_alive()?;
        let pid = self.id.pid;
        let found = self.symbols.resolve(pid, name);
        Ok(found.map_err(|e| self.explain(e.into()))?.addr)
    }

    /// The fields of `/proc/PID/status` (state, TracerPid, SigIgn, …), read
    /// without stopping anything.
    pub fn status(&self) -> Result<Vec<(String, String)>> {
        self.check_alive()?;
        procinfo::status_fields(self.id.pid)
    }

    /// Function names in the target starting with `prefix` (for completion).
    pub fn function_names(&mut self, prefix: &str, limit: usize) -> Vec<String> {
        self.symbols.function_names(self.id.pid, prefix, limit)
    }

    /// Call function `name` with `args`; the C return value, sign-extended
    /// from 64 bits.
    pub fn call(&mut self, name: &str, args: &[Arg]) -> Result<i64> {
        // Resolve everything before stopping anything. Whether the pid is
        // still the attached process is checked when the window opens (and
        // explains a failed lookup).
        let func = self.symbols.resolve(self.id.pid, name);
        let func = func.map_err(|e| self.explain(e.into()))?;
        let errno_fn = match self.settings.capture_errno {
            true => self.symbols.resolve(self.id.pid, "__errno_location").ok(),
            false => None,
        };
        self.call_resolved(name, &func, args, errno_fn)
    }

    fn call_resolved(
        &mut self,
        what: &str,
        func: &Resolved,
        args: &[Arg],
        errno_fn: Option<Resolved>,
    ) -> Result<i64> {
        let needs_scratch = args
            .iter()
            .any(|a| matches!(a, Arg::Bytes(b) if b.len() > 32 * 1024));
        let scratch = if needs_scratch {
            Some(self.syscall_insn()?)
        } else {
            None
        };
        let (value, errno) = self.in_window(|win, me, limits| {
            let addr = match func.kind {
                Kind::Ifunc => me.ifunc_target(win, what, func.addr, limits)?,
                _ => func.addr,
            };
            let value = call::call_function(win, what, addr, args, limits, scratch)?;
            let errno = match &errno_fn {
                Some(f) => me.read_errno(win, f.addr, limits),
                None => None,
            };
            Ok((value, errno))
        })?;
        self.last_errno = errno;
        Ok(c_return_value(value))
    }

    /// IFUNC: the symbol is a resolver; call it (no arguments, as glibc's
    /// x86-64 resolvers take none that matter) to learn the real function.
    fn ifunc_target(
        &mut self,
        win: &mut StopWindow,
        what: &str,
        resolver: u64,
        limits: &Limits,
    ) -> Result<u64> {
        if let Some(&addr) = self.ifuncs.get(&resolver) {
            return Ok(addr);
        }
        let what = format!("the IFUNC resolver of {what}");
        let addr = call::call_function(win, &what, resolver, &[], limits, None)?;
        self.ifuncs.insert(resolver, addr);
        Ok(addr)
    }

    /// The call thread's errno, through `__errno_location()` (its address
    /// is per thread and never changes, so it is asked once).
    fn read_errno(&mut self, win: &mut StopWindow, errno_fn: u64, limits: &Limits) -> Option<i32> {
        let tid = win.call_tid;
        let at = match self.errno_at.get(&tid) {
            Some(&at) => at,
            None => {
                let at = call::call_function(win, "__errno_location", errno_fn, &[], limits, None)
                    .ok()?;
                self.errno_at.insert(tid, at);
                at
            }
        };
        let mut buf = [0u8; 4];
        memory::read(self.id.pid, at, &mut buf).ok()?;
        Some(i32::from_le_bytes(buf))
    }

    /// The errno left by the last `call`.
    pub fn errno(&self) -> Option<i32> {
        self.last_errno
    }

    fn syscall_insn(&mut self) -> Result<u64> {
        if let Some(insn) = self.syscall_insn {
            return Ok(insn);
        }
        let insn = call::find_syscall_insn(self.id.pid)?;
        self.syscall_insn = Some(insn);
        Ok(insn)
    }

    /// Make system call `nr` in the target; the kernel's return value.
    pub fn syscall(&mut self, what: &str, nr: u64, args: &[Arg]) -> Result<i64> {
        self.check_alive()?;
        let insn = self.syscall_insn()?;
        self.in_window(|win, _, limits| call::raw_syscall(win, what, nr, args, insn, limits))
    }

    /// The target's memory mappings. Never stops the target.
    pub fn maps(&self) -> Result<Vec<Mapping>> {
        let pid = self.id.pid;
        let text = maps::read_text(pid).map_err(|e| Error::Proc {
            pid,
            msg: e.to_string(),
        })?;
        Ok(maps::parse(&text))
    }

    /// Read `len` bytes at `addr`. Never stops the target.
    pub fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>> {
        self.check_alive()?;
        let mut buf = vec![0u8; len];
        memory::read(self.id.pid, addr, &mut buf).map_err(|errno| Error::Read {
            pid: self.id.pid,
            addr,
            len,
            errno,
        })?;
        Ok(buf)
    }

    /// Read a NUL-terminated string at `addr` (at most 1 MiB).
    pub fn read_cstr(&self, addr: u64) -> Result<String> {
        let mut out = Vec::new();
        let mut at = addr;
        while out.len() < CSTR_MAX {
            // Up to the end of the page, so an unmapped next page is no
            // error when the string ends before it.
            let chunk = (4096 - (at % 4096)) as usize;
            let bytes = self.read(at, chunk)?;
            if let Some(end) = bytes.iter().position(|b| *b == 0) {
                out.extend_from_slice(&bytes[..end]);
                return Ok(String::from_utf8_lossy(&out).into_owned());
            }
            out.extend_from_slice(&bytes);
            at += chunk as u64;
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Write `data` at `addr`. Never stops the target.
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<()> {
        self.check_alive()?;
        memory::write(self.id.pid, addr, data).map_err(|errno| Error::Write {
            pid: self.id.pid,
            addr,
            len: data.len(),
            errno,
        })
    }
}

/// reach does not know the callee's return type. Most C functions return
/// `int`, whose upper 32 bits in rax are left zero (`close` returning -1
/// leaves 0x00000000ffffffff), so a value with a zero upper half is read as
/// a 32-bit int and sign-extended; anything wider (pointers, `long`) is
/// returned whole.
fn c_return_value(rax: u64) -> i64 {
    if rax >> 32 == 0 {
        rax as u32 as i32 as i64
    } else {
        rax as i64
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Err(e) = self.thaw() {
            eprintln!("reach: warning: releasing pid {}: {e}", self.id.pid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::c_return_value;

    #[test]
    fn int_results_are_sign_extended_and_pointers_kept_whole() {
        assert_eq!(c_return_value(0xffff_ffff), -1);
        assert_eq!(c_return_value(5), 5);
        assert_eq!(c_return_value(0x7f12_7000_0010), 0x7f12_7000_0010);
        assert_eq!(c_return_value(u64::MAX), -1);
    }
}
