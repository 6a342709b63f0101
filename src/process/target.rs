//! A target: a handle to one process, not an attachment. The process runs
//! untouched between operations. Names are resolved here, before anything
//! is stopped; everything that needs a thread stopped goes through the
//! engine (`engine/`), which stops one thread for the operation (every
//! thread while frozen) and gives it back exactly as it was.

use super::engine::{Arg, Call, Choice, Engine, Options};
use super::maps::{self, Mapping};
use super::procinfo::{self, Identity};
use super::stacks::{self, Stack};
use super::symbols::{Kind, Symbols};
use super::{Error, Result};
use crate::sys::{memory, pidfd};
use std::time::Duration;

/// How operations on a target behave.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Limit for one operation, stopping the thread included.
    pub timeout: Duration,
    /// Read the call thread's errno after each `call`.
    pub capture_errno: bool,
    /// Which thread calls and system calls run on.
    pub thread: Choice,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            timeout: Duration::from_secs(10),
            capture_errno: true,
            thread: Choice::Auto,
        }
    }
}

pub struct Target {
    id: Identity,
    pub settings: Settings,
    symbols: Symbols,
    last_errno: Option<i32>,
    engine: Engine,
}

/// The largest string `read_cstr` returns.
const CSTR_MAX: usize = 1 << 20;

impl Target {
    /// Select `pid`: check it exists, is a 64-bit user process and may be
    /// traced. Nothing is stopped.
    pub fn attach(pid: i32, settings: Settings) -> Result<Target> {
        let id = procinfo::check_traceable(pid)?;
        Ok(Target {
            id,
            settings,
            symbols: Symbols::default(),
            last_errno: None,
            engine: Engine::new(pid, pidfd::open(pid).ok()),
        })
    }

    pub fn pid(&self) -> i32 {
        self.id.pid
    }

    pub fn name(&self) -> &str {
        &self.id.name
    }

    pub fn is_frozen(&self) -> bool {
        self.engine.is_frozen()
    }

    /// Still the process that was attached? An exec by a thread other
    /// than the main one swaps their ids, and for a moment the pid shows no
    /// live thread: while the pidfd says the process lives, look again.
    fn check_alive(&self) -> Result<()> {
        let mut tries = 0;
        loop {
            match self.check_alive_once() {
                Err(Error::TargetExited(_)) if tries < 50 && self.engine.same_process() => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
                verdict => return verdict,
            }
        }
    }

    fn check_alive_once(&self) -> Result<()> {
        let alive = self.engine.same_process();
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
        let e = match e {
            Error::Read { errno, .. } | Error::Write { errno, .. }
                if errno == nix::errno::Errno::ESRCH =>
            {
                Error::TargetExited(self.id.pid)
            }
            e => e,
        };
        match (&e, self.check_alive()) {
            (Error::PidReused(_) | Error::TargetExited(_) | Error::TargetKilled { .. }, _) => e,
            (_, Err(gone)) => gone,
            // A thread vanished under a ptrace request: most often the
            // whole process is being killed, and its other threads have
            // not all got there yet. Give them a moment to.
            (Error::ThreadExited(_), Ok(())) => {
                let deadline = std::time::Instant::now() + Duration::from_millis(200);
                while std::time::Instant::now() < deadline {
                    if let Err(gone) = self.check_alive_once() {
                        return gone;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                e
            }
            _ => e,
        }
    }

    fn options(&self) -> Options {
        Options {
            timeout: self.settings.timeout,
            thread: self.settings.thread,
        }
    }

    /// Run an engine operation on the attached process, checked to still
    /// be it before (a pid reused since `attach` is refused, untouched).
    fn engine_op<T>(&mut self, op: impl FnOnce(&mut Engine, &Options) -> Result<T>) -> Result<T> {
        self.check_alive()?;
        let opts = self.options();
        let result = op(&mut self.engine, &opts);
        result.map_err(|e| self.explain(e))
    }

    /// Stop every thread and keep them stopped until [`Target::thaw`].
    pub fn freeze(&mut self) -> Result<()> {
        self.engine_op(|engine, opts| engine.freeze(opts))
    }

    /// Release a frozen target. Does nothing if it is not frozen.
    pub fn thaw(&mut self) -> Result<()> {
        self.engine.thaw()
    }

    /// Let the target go: remove reach's memory from it and thaw it.
    pub fn release(&mut self) -> Result<()> {
        if self.check_alive().is_err() {
            return self.engine.thaw().or(Ok(()));
        }
        let opts = self.options();
        let released = self.engine.release(&opts);
        released.map_err(|e| self.explain(e))
    }

    /// Address of `name` in the target.
    pub fn sym(&mut self, name: &str) -> Result<u64> {
        self.check_alive()?;
        let pid = self.id.pid;
        let found = self.symbols.resolve(pid, name);
        Ok(found.map_err(|e| self.explain(e.into()))?.addr)
    }

    /// Each thread's native stack, innermost frame first (`only`: one
    /// thread's). A thread blocked in a system call is read with no stop
    /// where its stack allows; any other is stopped alone, for the copy of
    /// its registers and the top of its stack only (see `stacks/`).
    pub fn stacks(&mut self, only: Option<i32>) -> Result<Vec<Stack>> {
        self.check_alive()?;
        let opts = self.options();
        let pid = self.id.pid;
        let found = stacks::stacks(pid, only, &mut self.symbols, &mut self.engine, &opts);
        found.map_err(|e| self.explain(e))
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
        self.call_at(name, args).map(|(value, _)| value)
    }

    /// [`Target::call`], and the address the function was found at.
    pub fn call_at(&mut self, name: &str, args: &[Arg]) -> Result<(i64, u64)> {
        // Resolve everything before stopping anything.
        let func = self.symbols.resolve(self.id.pid, name);
        let func = func.map_err(|e| self.explain(e.into()))?;
        let errno_fn = match self.settings.capture_errno {
            true => self
                .symbols
                .resolve(self.id.pid, "__errno_location")
                .ok()
                .map(|f| f.addr),
            false => None,
        };
        let call = Call {
            what: name,
            addr: func.addr,
            ifunc: func.kind == Kind::Ifunc,
            args,
            errno_fn,
        };
        let returned = self.engine_op(|engine, opts| engine.call(&call, opts))?;
        self.last_errno = returned.errno;
        Ok((c_return_value(returned.value), func.addr))
    }

    /// The errno left by the last `call`.
    pub fn errno(&self) -> Option<i32> {
        self.last_errno
    }

    /// Make system call `nr` in the target; the kernel's value.
    pub fn syscall(&mut self, what: &str, nr: u64, args: &[Arg]) -> Result<i64> {
        self.engine_op(|engine, opts| engine.syscall(what, nr, args, opts))
    }

    /// The target's memory mappings. Never stops the target.
    pub fn maps(&self) -> Result<Vec<Mapping>> {
        let pid = self.id.pid;
        let text = maps::read_text(pid).map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => Error::NotPermitted {
                pid,
                access: procinfo::Access::ReadMemory,
            },
            _ => Error::Proc {
                pid,
                msg: e.to_string(),
            },
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
        match self.release() {
            // Nothing left to release (and the operation said so).
            Ok(()) | Err(Error::TargetExited(_) | Error::TargetKilled { .. }) => {}
            Err(e) => super::warn(&format!("releasing pid {}: {e}", self.id.pid)),
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
