//! What the reliability tests measure: registers checked by the target
//! itself, signals counted by sequence number, peers reset on purpose, and
//! a deterministic PRNG so a failing case can be replayed.

use super::{STATE_DEADLINE, Target, no_forks, wait_until};
use std::collections::HashMap;
use std::net::TcpStream;
use std::os::fd::AsRawFd;

/// A count from the environment (`REACH_STRESS_OPS=10000` runs a suite's
/// full form), or `default` (the short form CI runs).
pub fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a count: {e}")),
        Err(_) => default,
    }
}

/// A small deterministic PRNG (SplitMix64): the same seed gives the same
/// sequence, so a failing case can be replayed by its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// One element of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// (iterations, mismatches) of each checker thread of a fixture that
/// prints `stats=ADDR threads=N` (`regs`, `rel_stress`).
pub fn checker_stats(t: &Target) -> Vec<(u64, u64)> {
    let base = t.num("stats");
    (0..t.num("threads"))
        .map(|i| (t.read_u64(base + 16 * i), t.read_u64(base + 16 * i + 8)))
        .collect()
}

/// Every checker thread is still running its own code (each completes a
/// few more rounds) and none has ever seen a changed register or red zone.
pub fn assert_registers_intact(t: &Target) {
    let then = checker_stats(t);
    assert!(
        wait_until(STATE_DEADLINE, || {
            checker_stats(t)
                .iter()
                .zip(&then)
                .all(|(now, then)| now.0 > then.0 + 2)
        }),
        "checker threads stopped advancing: {then:?} -> {:?}",
        checker_stats(t)
    );
    let stats = checker_stats(t);
    assert!(
        stats.iter().all(|&(_, bad)| bad == 0),
        "register or red zone mismatches per thread (iterations, mismatches): {stats:?}"
    );
}

/// CLOCK_MONOTONIC in nanoseconds: the same clock in every process.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// sigqueue(3): send `sig` to process `pid` with `value` in si_value, through
/// rt_sigqueueinfo (the libc crate has no sigqueue). Returns the errno on
/// failure (EAGAIN: the target's queue of real-time signals is full).
pub fn sigqueue(pid: i32, sig: i32, value: i32) -> Result<(), i32> {
    // siginfo_t on x86-64: si_signo, si_errno, si_code, padding, then the
    // _rt member of the union at offset 16: si_pid, si_uid, si_value.
    #[repr(C, align(8))]
    struct SigInfo([i32; 32]);
    let mut info = SigInfo([0; 32]);
    info.0[0] = sig;
    info.0[2] = -1; // SI_QUEUE, which the kernel allows from another process
    info.0[4] = std::process::id() as i32;
    // SAFETY: getuid has no preconditions.
    info.0[5] = unsafe { libc::getuid() } as i32;
    info.0[6] = value;
    // SAFETY: a 128-byte siginfo that outlives the call.
    let r = unsafe { libc::syscall(libc::SYS_rt_sigqueueinfo, pid, sig, &info as *const SigInfo) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// Closes `peer` with SO_LINGER 0, so the other side receives an RST at
/// once. No fork may be under way meanwhile: a child between fork and
/// exec would hold the socket open, and the RST would only go out when
/// that child execs.
pub fn reset_peer(peer: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a properly sized struct.
    let rc = unsafe {
        libc::setsockopt(
            peer.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    let _forks = no_forks();
    drop(peer);
}

/// The names of the `blocked` fixture's threads, as its ready line and
/// results call them.
pub const BLOCKED_THREADS: [&str; 10] = [
    "nanosleep",
    "read",
    "accept",
    "epoll",
    "recv",
    "futex",
    "connect",
    "uring",
    "sigwait",
    "semop",
];

/// Lets every thread of the `blocked` fixture finish (writes its stdin,
/// connects to its port) and returns each thread's result fields
/// ("ret", "errno", "ms") by thread name, once it prints "done".
pub fn blocked_results(t: &mut Target) -> HashMap<String, HashMap<String, i64>> {
    t.send("x");
    let port = t.field("port").to_string();
    let _conn = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    let mut results = HashMap::new();
    while results.len() < BLOCKED_THREADS.len() {
        let line = t.line_matching(STATE_DEADLINE, |l| l.starts_with("result "));
        let mut words = line.split_whitespace().skip(1);
        let name = words.next().unwrap().to_string();
        let fields = words
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.parse::<i64>().unwrap()))
            .collect();
        results.insert(name, fields);
    }
    t.line_matching(STATE_DEADLINE, |l| l == "done");
    results
}
