//! reach killed with SIGKILL — what the OOM killer, `timeout -s KILL` or a
//! `kill -9` of a hung session do — at random instants of calls, raw
//! system calls and frozen windows. SIGKILL cannot be caught: the kernel
//! detaches reach's threads, and a thread inside injected code restores
//! itself from the frame reach left in its mapping when the function
//! returns. Every time, the target must survive, be neither stopped nor
//! traced, keep its registers, vector state and signal masks, and its
//! blocked system calls must complete normally.
//!
//! Two instants are left out, as DESIGN.md and the README say: creating
//! reach's mapping (its first `mmap`, made from the target's own `syscall`
//! instruction, once per session) and removing it (the `munmap` at
//! detach). Each run waits until the mapping exists, and every script
//! loops until it is killed.
//!
//! CI makes 200 runs; `REACH_KILL_RUNS=2000` makes the full form.

use crate::support::*;
use std::time::Duration;

/// What a killed session was doing.
const SCRIPTS: &[&str] = &[
    // A call that sleeps in the target: most kills land inside it.
    r#"loop { call("usleep", [3000]); }"#,
    r#"loop { call("getpid", []); }"#,
    r#"loop { call("strlen", ["abc"]); syscall("getppid", []); }"#,
    // A raw system call that blocks (1 ms).
    r#"let ts = blob(16, 0); ts[8] = 0x40; ts[9] = 0x42; ts[10] = 0x0f; loop { syscall("nanosleep", [ts, 0]); }"#,
    // A frozen window with calls in it.
    r#"freeze(); loop { call("getpid", []); call("usleep", [500]); }"#,
    // Many calls, with a large argument in a mapping of its own.
    r#"let big = ""; big.pad(2000000, "q"); loop { call("strlen", [big]); }"#,
];

/// How many of reach's mappings `pid` holds: its 1 MiB stack and
/// arguments pages (read-write, anonymous, 2 MiB) right after its 20 KiB
/// of code and frame (read-execute, anonymous). A session killed after it
/// made one leaves it behind.
fn reach_mappings(pid: i32) -> usize {
    let maps = maps(pid);
    let lines: Vec<&str> = maps.lines().collect();
    lines
        .windows(2)
        .filter(|w| {
            let range = |l: &str| {
                let (a, b) = l.split_whitespace().next()?.split_once('-')?;
                Some(u64::from_str_radix(b, 16).ok()? - u64::from_str_radix(a, 16).ok()?)
            };
            w[0].contains(" r-xp 00000000 00:00 0")
                && w[1].contains(" rw-p 00000000 00:00 0")
                && range(w[0]) == Some(0x5000)
                && range(w[1]) == Some(0x200000)
        })
        .count()
}

#[test]
fn sigkill_at_random_instants_leaves_the_target_intact() {
    let runs = env_count("REACH_KILL_RUNS", 200);
    let t = Target::fixture("rel_stress", &["4"]);
    let pid = t.pid;
    assert!(wait_until(STATE_DEADLINE, || checker_stats(&t)
        .iter()
        .all(|&(n, _)| n > 0)));
    let masks: Vec<(i32, u64)> = tids(pid)
        .into_iter()
        .map(|tid| (tid, task_sigblk(pid, tid)))
        .collect();
    let mut rng = Rng::new(0x6b696c6c39);
    for run in 0..runs {
        let script = *rng.pick(SCRIPTS);
        let delay = Duration::from_micros(rng.below(8_000));
        let before = reach_mappings(pid);
        let mut running = spawn_reach(&["-p", &pid.to_string(), "-e", script]);
        assert!(
            wait_until(STATE_DEADLINE, || reach_mappings(pid) > before
                || running.exited()),
            "run {run}: reach never made its mapping"
        );
        pause(delay);
        assert!(!running.exited(), "run {run}: reach stopped by itself");
        // SAFETY: signalling our own child (not yet reaped).
        unsafe { libc::kill(running.pid(), libc::SIGKILL) };
        drop(running);
        let what = format!("run {run}: SIGKILL {delay:?} into {script:?}");
        assert!(t.alive(), "{what}: the target died");
        assert_untraced(pid);
        // A thread still inside injected code restores itself when the
        // function returns (3 ms at most here).
        let settled = wait_until(STATE_DEADLINE, || {
            masks
                .iter()
                .all(|&(tid, mask)| task_sigblk(pid, tid) == mask)
                && tids(pid)
                    .iter()
                    .all(|&tid| !matches!(task_state(pid, tid), Some('t' | 'T')))
        });
        assert!(
            settled,
            "{what}: masks or states not restored: {:?}",
            tids(pid)
                .iter()
                .map(|&tid| (tid, task_state(pid, tid), task_sigblk(pid, tid)))
                .collect::<Vec<_>>()
        );
        let stats = checker_stats(&t);
        assert!(
            stats.iter().all(|&(_, bad)| bad == 0),
            "{what}: register mismatches: {stats:?}"
        );
    }
    eprintln!(
        "{runs} kills; {} of reach's mappings left behind in the target",
        reach_mappings(pid)
    );
    assert_registers_intact(&t);
    assert_untouched(&t);
}

/// The injected call runs on a thread blocked in read, accept, epoll_wait
/// or recv (with SO_RCVTIMEO) when reach is killed: once the function
/// returns, the thread restores itself and goes back into its system call,
/// which then completes normally — no EINTR.
#[test]
fn sigkill_mid_call_on_blocked_threads_leaves_their_system_calls_whole() {
    let mut t = Target::fixture("blocked", &[]);
    let pid = t.pid;
    for (name, nrs) in [
        ("read", &[libc::SYS_read][..]),
        ("accept", &[libc::SYS_accept, libc::SYS_accept4][..]),
        ("epoll", &[libc::SYS_epoll_wait, libc::SYS_epoll_pwait][..]),
        ("recv", &[libc::SYS_recvfrom][..]),
    ] {
        let tid = t.num(name) as i32;
        let blocked = || task_syscall(pid, tid).is_some_and(|nr| nrs.contains(&nr));
        assert!(wait_until(STATE_DEADLINE, blocked), "{name} never blocked");
        let running = spawn_reach(&[
            "-p",
            &pid.to_string(),
            "--thread",
            &tid.to_string(),
            "-e",
            r#"call("usleep", [300000])"#,
        ]);
        assert!(
            wait_until(STATE_DEADLINE, || {
                task_status(pid, tid, "TracerPid").is_some_and(|p| p != "0")
                    && task_syscall(pid, tid) == Some(libc::SYS_clock_nanosleep)
            }),
            "the call never ran on {name}"
        );
        // SAFETY: signalling our own child.
        unsafe { libc::kill(running.pid(), libc::SIGKILL) };
        drop(running);
        assert!(
            wait_until(STATE_DEADLINE, || task_status(pid, tid, "TracerPid")
                .as_deref()
                == Some("0")
                && blocked()),
            "{name} did not go back into its system call"
        );
    }
    let results = blocked_results(&mut t);
    let eintr: Vec<_> = results
        .iter()
        .filter(|(_, r)| r["errno"] == libc::EINTR as i64)
        .collect();
    assert!(eintr.is_empty(), "EINTR after reach died: {results:?}");
    assert!(results["read"]["ret"] > 0, "{results:?}");
    assert!(results["accept"]["ret"] >= 0, "{results:?}");
    assert_eq!(results["epoll"]["ret"], 0, "{results:?}");
    assert_eq!(results["recv"]["errno"], libc::EAGAIN as i64, "{results:?}");
}
