//! Target memory: `process_vm_readv`/`process_vm_writev`, falling back to
//! `/proc/PID/mem` (which, for a tracer, can also write read-only pages).

use nix::errno::Errno;
use nix::sys::uio::{RemoteIoVec, process_vm_readv, process_vm_writev};
use nix::unistd::Pid;
use std::fs::OpenOptions;
use std::io::IoSliceMut;
use std::os::unix::fs::FileExt;

/// Read exactly `buf.len()` bytes at `addr` in process `pid`.
pub fn read(pid: i32, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
    if buf.is_empty() {
        return Ok(());
    }
    let len = buf.len();
    let remote = [RemoteIoVec {
        base: addr as usize,
        len,
    }];
    match process_vm_readv(Pid::from_raw(pid), &mut [IoSliceMut::new(buf)], &remote) {
        Ok(n) if n == len => Ok(()),
        Ok(_) | Err(_) => read_proc_mem(pid, addr, buf),
    }
}

fn read_proc_mem(pid: i32, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
    let file = std::fs::File::open(format!("/proc/{pid}/mem")).map_err(io_errno)?;
    file.read_exact_at(buf, addr)
        .map_err(|e| match e.raw_os_error() {
            Some(code) => Errno::from_raw(code),
            None => Errno::EFAULT,
        })
}

/// Write all of `data` at `addr` in process `pid`.
pub fn write(pid: i32, addr: u64, data: &[u8]) -> Result<(), Errno> {
    if data.is_empty() {
        return Ok(());
    }
    let remote = [RemoteIoVec {
        base: addr as usize,
        len: data.len(),
    }];
    match process_vm_writev(Pid::from_raw(pid), &[std::io::IoSlice::new(data)], &remote) {
        Ok(n) if n == data.len() => Ok(()),
        Ok(_) | Err(_) => {
            let file = OpenOptions::new()
                .write(true)
                .open(format!("/proc/{pid}/mem"))
                .map_err(io_errno)?;
            file.write_all_at(data, addr).map_err(io_errno)
        }
    }
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}
