//! Target memory: `process_vm_readv`/`process_vm_writev`, and
//! `/proc/PID/mem`, which (for a tracer, with `FOLL_FORCE`) can also write
//! pages the target itself may not write, such as reach's own code page.
//!
//! A process whose main thread called `pthread_exit` has no memory under
//! its pid (the zombie leader's), yet every live thread shares it: each
//! function here that gets ESRCH for the pid asks the process's threads.

use nix::errno::Errno;
use nix::sys::uio::{RemoteIoVec, process_vm_readv, process_vm_writev};
use nix::unistd::Pid;
use std::fs::{File, OpenOptions};
use std::io::IoSliceMut;
use std::os::unix::fs::FileExt;

/// Run `op` on `pid`; if the pid has no memory (ESRCH: a zombie main
/// thread, or the process is gone), on each of its threads in turn.
fn on_process<T>(pid: i32, mut op: impl FnMut(i32) -> Result<T, Errno>) -> Result<T, Errno> {
    match op(pid) {
        Err(Errno::ESRCH) => {
            let tids = std::fs::read_dir(format!("/proc/{pid}/task")).map_err(io_errno)?;
            let tids = tids.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok());
            let mut last = Errno::ESRCH;
            for tid in tids.filter(|&t| t != pid) {
                match op(tid) {
                    Err(e) => last = e,
                    done => return done,
                }
            }
            Err(last)
        }
        done => done,
    }
}

/// Read exactly `buf.len()` bytes at `addr` in process `pid`.
pub fn read(pid: i32, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
    on_process(pid, |pid| read_one(pid, addr, buf))
}

fn read_one(pid: i32, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
    if buf.is_empty() {
        return Ok(());
    }
    let len = buf.len();
    let remote = [RemoteIoVec {
        base: addr as usize,
        len,
    }];
    let first = match process_vm_readv(Pid::from_raw(pid), &mut [IoSliceMut::new(buf)], &remote) {
        Ok(n) if n == len => return Ok(()),
        Ok(_) => Errno::EFAULT,
        Err(e) => e,
    };
    // Pages the target cannot read itself (PROT_NONE, guard pages) can
    // still be read through /proc/PID/mem. Where that file is refused (a
    // process of another user, without CAP_DAC_READ_SEARCH), the first
    // answer is the one that explains.
    match read_proc_mem(pid, addr, buf) {
        Err(Errno::EACCES) if first != Errno::EPERM => Err(first),
        other => other,
    }
}

/// Up to `len` bytes at `addr` of process `pid`: as many as can be read
/// from `addr` on (a stack copy stops where its mapping ends), in one
/// `process_vm_readv`. Never stops the process.
pub fn read_prefix(pid: i32, addr: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let remote = [RemoteIoVec {
        base: addr as usize,
        len,
    }];
    let n = on_process(pid, |pid| {
        process_vm_readv(
            Pid::from_raw(pid),
            &mut [IoSliceMut::new(&mut out)],
            &remote,
        )
    })
    .unwrap_or(0);
    out.truncate(n);
    out
}

/// `pid` may be any thread: `/proc/TID/mem` is its process's memory.
fn read_proc_mem(pid: i32, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
    let file = File::open(format!("/proc/{pid}/mem")).map_err(io_errno)?;
    file.read_exact_at(buf, addr).map_err(io_errno)
}

/// Write all of `data` at `addr` in process `pid`.
pub fn write(pid: i32, addr: u64, data: &[u8]) -> Result<(), Errno> {
    write_all(pid, &[(addr, data)])
}

/// Write each `(addr, bytes)` piece, with one `process_vm_writev` when
/// every piece is writable by the target (else through `/proc/PID/mem`).
pub fn write_all(pid: i32, pieces: &[(u64, &[u8])]) -> Result<(), Errno> {
    on_process(pid, |pid| write_all_one(pid, pieces))
}

fn write_all_one(pid: i32, pieces: &[(u64, &[u8])]) -> Result<(), Errno> {
    let pieces: Vec<&(u64, &[u8])> = pieces.iter().filter(|(_, d)| !d.is_empty()).collect();
    if pieces.is_empty() {
        return Ok(());
    }
    let local: Vec<std::io::IoSlice> = pieces
        .iter()
        .map(|(_, d)| std::io::IoSlice::new(d))
        .collect();
    let remote: Vec<RemoteIoVec> = pieces
        .iter()
        .map(|(a, d)| RemoteIoVec {
            base: *a as usize,
            len: d.len(),
        })
        .collect();
    let total: usize = pieces.iter().map(|(_, d)| d.len()).sum();
    match process_vm_writev(Pid::from_raw(pid), &local, &remote) {
        Ok(n) if n == total => Ok(()),
        Ok(_) | Err(_) => {
            let mem = ProcMem::open(pid)?;
            for (addr, data) in pieces {
                mem.write(*addr, data)?;
            }
            Ok(())
        }
    }
}

/// `/proc/PID/mem` held open for writing.
pub struct ProcMem(File);

impl ProcMem {
    pub fn open(pid: i32) -> Result<ProcMem, Errno> {
        on_process(pid, |pid| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(format!("/proc/{pid}/mem"))
                .map(ProcMem)
                .map_err(io_errno)
        })
    }

    /// Write `data` at `addr`, even into pages the target cannot write
    /// (the kernel breaks copy-on-write for a ptracer: `FOLL_FORCE`).
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        self.0.write_all_at(data, addr).map_err(io_errno)
    }
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Whether this kernel can name anonymous mappings
/// (`PR_SET_VMA_ANON_NAME`, CONFIG_ANON_VMA_NAME): tried once on a page of
/// reach's own.
pub fn anon_names_supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        const PR_SET_VMA: libc::c_int = 0x53564d41;
        const PR_SET_VMA_ANON_NAME: libc::c_ulong = 0;
        // SAFETY: a fresh private page, named, then unmapped; nothing else
        // refers to it.
        unsafe {
            let page = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if page == libc::MAP_FAILED {
                return false;
            }
            let ok = libc::prctl(
                PR_SET_VMA,
                PR_SET_VMA_ANON_NAME,
                page as libc::c_ulong,
                4096 as libc::c_ulong,
                c"reach".as_ptr(),
            ) == 0;
            libc::munmap(page, 4096);
            ok
        }
    })
}
