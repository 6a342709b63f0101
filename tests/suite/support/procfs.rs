//! The `/proc` facts tests assert on, read independently of reach.

use super::wait_until;
use std::fs;
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

/// A field of /proc/PID/status (value after the colon, trimmed).
pub fn status_field(pid: i32, field: &str) -> Option<String> {
    proc_field(&format!("/proc/{pid}/status"), field)
}

/// A field of /proc/PID/task/TID/status.
pub fn task_status(pid: i32, tid: i32, field: &str) -> Option<String> {
    proc_field(&format!("/proc/{pid}/task/{tid}/status"), field)
}

fn proc_field(path: &str, field: &str) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

/// The state letter (R, S, D, T, t, Z, ...) of the process.
pub fn state(pid: i32) -> Option<char> {
    status_field(pid, "State")?.chars().next()
}

/// The state letter of one thread.
pub fn task_state(pid: i32, tid: i32) -> Option<char> {
    task_status(pid, tid, "State")?.chars().next()
}

pub fn tracer_pid(pid: i32) -> i32 {
    status_field(pid, "TracerPid").map_or(0, |v| v.parse().unwrap())
}

/// (tid, TracerPid) of every thread.
pub fn tracers(pid: i32) -> Vec<(i32, String)> {
    tids(pid)
        .into_iter()
        .map(|tid| (tid, task_status(pid, tid, "TracerPid").unwrap_or_default()))
        .collect()
}

/// A signal set field (SigIgn, SigPnd, ShdPnd, SigBlk, SigCgt) as a mask.
pub fn sigset(pid: i32, field: &str) -> u64 {
    u64::from_str_radix(&status_field(pid, field).unwrap(), 16).unwrap()
}

/// The bit a signal occupies in a /proc signal mask.
pub fn sigbit(sig: i32) -> u64 {
    1u64 << (sig - 1)
}

/// Whether signal `sig` is set in the hex mask of a `/proc/PID/status` field.
pub fn in_mask(mask: &str, sig: i32) -> bool {
    u64::from_str_radix(mask, 16).is_ok_and(|m| m & sigbit(sig) != 0)
}

/// Thread ids of the process.
pub fn tids(pid: i32) -> Vec<i32> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The system call number a thread is blocked in, from
/// /proc/PID/task/TID/syscall (None when it is running or unreadable).
pub fn task_syscall(pid: i32, tid: i32) -> Option<i64> {
    let text = fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")).ok()?;
    text.split_whitespace()
        .next()?
        .parse()
        .ok()
        .filter(|nr| *nr >= 0)
}

/// Waits until thread `tid` of `pid` is blocked in system call `nr`.
pub fn wait_blocked(pid: i32, tid: i32, nr: i64) -> bool {
    wait_until(super::STATE_DEADLINE, || task_syscall(pid, tid) == Some(nr))
}

/// /proc/PID/maps.
pub fn maps(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default()
}

/// How many mappings the process has (lines of /proc/PID/maps).
pub fn map_count(pid: i32) -> usize {
    maps(pid).lines().count()
}

/// VmRSS of the process in KiB.
pub fn vm_rss_kib(pid: i32) -> u64 {
    let v = status_field(pid, "VmRSS").expect("VmRSS");
    v.trim_end_matches("kB").trim().parse().unwrap()
}

/// The u64 at `addr` in process `pid`, through /proc/PID/mem.
pub fn read_u64(pid: i32, addr: u64) -> u64 {
    let mem = fs::File::open(format!("/proc/{pid}/mem")).expect("open /proc/PID/mem");
    let mut buf = [0u8; 8];
    mem.read_exact_at(&mut buf, addr)
        .unwrap_or_else(|e| panic!("read {addr:#x} in {pid}: {e}"));
    u64::from_ne_bytes(buf)
}

/// Waits until `pid` is in a ptrace stop under some tracer (reach has
/// started an operation on it).
pub fn wait_traced(pid: i32, timeout: Duration) -> bool {
    wait_until(timeout, || tracer_pid(pid) != 0)
}

/// Exit status as "code N" or "signal N", for messages.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("code {c}"),
        (_, Some(s)) => format!("signal {s}"),
        _ => "unknown".into(),
    }
}

/// How many of `pid`'s TCP sockets are in state `state` (the hex code of
/// `/proc/net/tcp`: 01 ESTABLISHED, 08 CLOSE_WAIT, 0A LISTEN), read from
/// its own network namespace.
pub fn tcp_count(pid: i32, state: &str) -> usize {
    let inodes: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| {
                let link = fs::read_link(e.ok()?.path()).ok()?;
                let link = link.to_str()?;
                Some(
                    link.strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .to_string(),
                )
            })
            .collect()
        })
        .unwrap_or_default();
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|t| fs::read_to_string(format!("/proc/{pid}/net/{t}")).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        })
        .filter(|w| w.len() > 9 && w[3] == state && inodes.contains(&w[9]))
        .count()
}

/// How many times thread `tid` of `pid` gave up the CPU by sleeping (or
/// being stopped): `voluntary_ctxt_switches`.
pub fn voluntary_switches(pid: i32, tid: i32) -> u64 {
    task_status(pid, tid, "voluntary_ctxt_switches").map_or(0, |v| v.parse().unwrap_or(0))
}

/// /proc/PID/task/TID/status's SigBlk as a mask.
pub fn task_sigblk(pid: i32, tid: i32) -> u64 {
    task_status(pid, tid, "SigBlk").map_or(0, |v| u64::from_str_radix(&v, 16).unwrap_or(0))
}

/// Bytes `addr..addr+len` of process `pid`, through /proc/PID/mem.
pub fn read_bytes(pid: i32, addr: u64, len: usize) -> Vec<u8> {
    let mem = fs::File::open(format!("/proc/{pid}/mem")).expect("open /proc/PID/mem");
    let mut buf = vec![0u8; len];
    mem.read_exact_at(&mut buf, addr)
        .unwrap_or_else(|e| panic!("read {len} bytes at {addr:#x} in {pid}: {e}"));
    buf
}

/// The processes whose parent is `pid`.
pub fn children(pid: i32) -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| status_field(p, "PPid").and_then(|v| v.parse().ok()) == Some(pid))
        .collect()
}
