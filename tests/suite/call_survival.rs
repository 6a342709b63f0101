//! What a target must survive when reach calls into it: its blocked system
//! calls (no EINTR, full sleep time), signals
//! arriving mid-call (delivered once, afterwards), and its run state
//! (stopped stays stopped, running is never sent SIGSTOP/SIGCONT).

use crate::support::*;
use std::time::Duration;

// ---------------------------------------------------------------- blocked syscalls

/// The blocked fixture's threads and the syscalls each must be seen in.
const BLOCKED: &[(&str, &[i64])] = &[
    (
        "nanosleep",
        &[libc::SYS_nanosleep, libc::SYS_clock_nanosleep],
    ),
    ("read", &[libc::SYS_read]),
    ("accept", &[libc::SYS_accept, libc::SYS_accept4]),
    (
        "epoll",
        &[
            libc::SYS_epoll_wait,
            libc::SYS_epoll_pwait,
            libc::SYS_epoll_pwait2,
        ],
    ),
    ("recv", &[libc::SYS_recvfrom, libc::SYS_recvmsg]),
    ("futex", &[libc::SYS_futex]),
    ("connect", &[libc::SYS_connect]),
    ("uring", &[libc::SYS_io_uring_enter]),
    ("sigwait", &[libc::SYS_rt_sigtimedwait]),
    ("semop", &[libc::SYS_semtimedop]),
];

/// Spawns the blocked fixture and waits until every thread is inside its
/// system call.
fn blocked_target() -> Target {
    let t = Target::fixture("blocked", &[]);
    for (name, nrs) in BLOCKED {
        let tid = t.num(name) as i32;
        if tid == 0 {
            eprintln!("{name}: not available here (io_uring disabled?)");
            continue;
        }
        assert!(
            wait_until(STATE_DEADLINE, || task_syscall(t.pid, tid)
                .is_some_and(|nr| nrs.contains(&nr))),
            "thread {name} ({tid}) never blocked in its syscall: {:?}",
            task_syscall(t.pid, tid)
        );
    }
    t
}

/// Wakes the read and accept threads, collects every thread's result line
/// and checks that none saw EINTR and each ended the way it would have
/// without reach.
fn finish_blocked(mut t: Target) {
    t.send("x");
    let port = t.field("port").to_string();
    let _conn = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();

    let mut results = std::collections::HashMap::new();
    while results.len() < BLOCKED.len() {
        let line = t.line_matching(STATE_DEADLINE, |l| l.starts_with("result "));
        let mut words = line.split_whitespace().skip(1);
        let name = words.next().unwrap().to_string();
        let fields: std::collections::HashMap<_, _> = words
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.parse::<i64>().unwrap()))
            .collect();
        results.insert(name, fields);
    }
    for (name, r) in &results {
        assert_ne!(
            r["errno"],
            libc::EINTR as i64,
            "{name} saw EINTR: {results:?}"
        );
    }
    let r = |name: &str, k: &str| results[name][k];
    assert_eq!(r("nanosleep", "ret"), 0, "{results:?}");
    assert!(
        r("nanosleep", "ms") >= 3000,
        "nanosleep(3 s) was cut short: {results:?}"
    );
    assert!(r("read", "ret") >= 1, "{results:?}");
    assert!(r("accept", "ret") >= 0, "{results:?}");
    assert_eq!(r("epoll", "ret"), 0, "{results:?}");
    assert_eq!(
        (r("recv", "ret"), r("recv", "errno")),
        (-1, libc::EAGAIN as i64),
        "{results:?}"
    );
    assert_eq!(
        (r("futex", "ret"), r("futex", "errno")),
        (-1, libc::ETIMEDOUT as i64),
        "{results:?}"
    );
    // Its SYNs are dropped: the 5 s SO_SNDTIMEO runs out (a re-issued
    // connect reports that as EALREADY: README, "Limits").
    assert_eq!(r("connect", "ret"), -1, "{results:?}");
    assert!(
        [libc::EINPROGRESS as i64, libc::EALREADY as i64].contains(&r("connect", "errno")),
        "{results:?}"
    );
    assert_eq!(r("uring", "ret"), 0, "{results:?}");
    for name in ["sigwait", "semop"] {
        assert_eq!(
            (r(name, "ret"), r(name, "errno")),
            (-1, libc::EAGAIN as i64),
            "{results:?}"
        );
    }
    t.line_matching(STATE_DEADLINE, |l| l == "done");
    assert!(t.wait_exit(STATE_DEADLINE).success());
}

/// A call on each blocked thread in turn (`use_thread`): every one of
/// them is stopped, has a function run on it, and goes back into its
/// system call.
#[test]
fn blocked_syscalls_resume_without_eintr() {
    let t = blocked_target();
    let tids: Vec<String> = BLOCKED
        .iter()
        .map(|(name, _)| t.num(name))
        .filter(|&tid| tid != 0)
        .map(|tid| tid.to_string())
        .collect();
    let script = format!(
        "let n = 0; for tid in [{}] {{ use_thread(tid); n += call(\"getpid\", []); }} n",
        tids.join(", ")
    );
    let out = eval_ok(t.pid, &script);
    assert_eq!(out, (tids.len() as i64 * t.pid as i64).to_string());
    assert_untraced(t.pid);
    finish_blocked(t);
}

#[test]
fn blocked_syscalls_resume_after_a_frozen_window() {
    let t = blocked_target();
    let out = eval_ok(
        t.pid,
        r#"freeze();
           let a = call("getpid", []);
           let b = call("getppid", []);
           thaw();
           a + b"#,
    );
    assert_eq!(out, (t.pid + std::process::id() as i32).to_string());
    assert_untraced(t.pid);
    finish_blocked(t);
}

// ---------------------------------------------------------------- signals

/// Sends `sig` to the signals fixture while a remote usleep(500 ms) runs in
/// it; the handler (counter `idx`) must run exactly once, after the call.
fn signal_during_call(sig_of: impl Fn(&Target) -> i32, idx: u64) {
    let t = Target::fixture("signals", &[]);
    let pid = t.pid;
    let sig = sig_of(&t);
    let counter = t.num("counts") + 8 * idx;
    assert!(wait_until(STATE_DEADLINE, || matches!(
        task_syscall(pid, pid),
        Some(libc::SYS_pause | libc::SYS_rt_sigsuspend)
    )));

    let mut running = spawn_reach(&["-p", &pid.to_string(), "-e", r#"call("usleep", [500000])"#]);
    // The target's only thread is in the remote usleep once it sleeps in
    // (clock_)nanosleep, which its own code never calls.
    let in_call = || {
        tracer_pid(pid) != 0
            && matches!(
                task_syscall(pid, pid),
                Some(libc::SYS_nanosleep | libc::SYS_clock_nanosleep)
            )
    };
    assert!(
        wait_until(STATE_DEADLINE, in_call),
        "the call never started"
    );
    t.signal(sig);

    // While the call still runs, the signal waits, pending.
    let count_during = t.read_u64(counter);
    let pending = sigset(pid, "ShdPnd") | sigset(pid, "SigPnd");
    if in_call() && !running.exited() {
        assert_eq!(count_during, 0, "handler ran inside the call");
        assert_ne!(
            pending & sigbit(sig),
            0,
            "signal {sig} not pending during the call"
        );
    } else {
        eprintln!("the call ended before it could be observed mid-way; checked after only");
    }

    let out = running.finish(REACH_DEADLINE);
    assert_ok(&out);
    assert_eq!(out.stdout.trim(), "0", "usleep was interrupted");

    assert!(
        wait_until(STATE_DEADLINE, || t.read_u64(counter) >= 1),
        "signal {sig} was lost"
    );
    // Exactly once: give a duplicate time to show up.
    pause(Duration::from_millis(200));
    assert_eq!(
        t.read_u64(counter),
        1,
        "signal {sig} delivered more than once"
    );
    assert_eq!(
        (sigset(pid, "ShdPnd") | sigset(pid, "SigPnd")) & sigbit(sig),
        0,
        "signal {sig} still pending"
    );
    // No other handler ran (SIGCONT in particular).
    for other in (0..4).filter(|&i| i != idx) {
        assert_eq!(
            t.read_u64(t.num("counts") + 8 * other),
            0,
            "counter {other}"
        );
    }
    assert_untouched(&t);
}

#[test]
fn sigusr1_during_a_call_is_delivered_once_afterwards() {
    signal_during_call(|_| libc::SIGUSR1, 0);
}

#[test]
fn realtime_signal_during_a_call_is_delivered_once_afterwards() {
    signal_during_call(|t| t.num("rtsig") as i32, 1);
}

#[test]
fn sigchld_during_a_call_is_delivered_once_afterwards() {
    signal_during_call(|_| libc::SIGCHLD, 2);
}

// ---------------------------------------------------------------- run state

#[test]
fn a_stopped_target_stays_stopped() {
    let t = Target::fixture("target", &[]);
    let pid = t.pid;
    let ticks = t.num("ticks");
    let conts = t.num("conts");
    t.signal(libc::SIGSTOP);
    let all_stopped = || {
        tids(pid)
            .iter()
            .all(|&tid| task_state(pid, tid) == Some('T'))
    };
    assert!(wait_until(STATE_DEADLINE, all_stopped));

    assert_eq!(eval_ok(pid, r#"call("getpid", [])"#), pid.to_string());

    // Still in group stop (T, not a ptrace stop t), untraced, not ticking.
    assert!(all_stopped(), "threads: {:?}", thread_states(pid));
    assert_untraced(pid);
    let frozen = t.read_u64(ticks);
    pause(Duration::from_millis(100));
    assert_eq!(t.read_u64(ticks), frozen, "a stopped target ran");
    assert_eq!(t.read_u64(conts), 0);

    // SIGCONT resumes it normally, and its handler sees exactly that one.
    t.signal(libc::SIGCONT);
    t.assert_advances(ticks, 5);
    assert!(wait_until(STATE_DEADLINE, || t.read_u64(conts) == 1));
    assert_untouched(&t);
    assert_eq!(t.read_u64(conts), 1);
}

fn thread_states(pid: i32) -> Vec<(i32, Option<char>)> {
    tids(pid)
        .into_iter()
        .map(|tid| (tid, task_state(pid, tid)))
        .collect()
}

#[test]
fn every_thread_is_released_and_sees_no_stop_or_cont() {
    let t = Target::fixture("target", &["200"]);
    let pid = t.pid;
    let expected = t.num("threads") as usize;
    assert!(wait_until(STATE_DEADLINE, || tids(pid).len() == expected));
    let pending_before = (sigset(pid, "SigPnd"), sigset(pid, "ShdPnd"));

    let out = eval_ok(
        pid,
        r#"let s = 0; for i in 0..5 { s += call("getpid", []); } s"#,
    );
    assert_eq!(out, (5 * pid as i64).to_string());

    assert_untraced(pid);
    for tid in tids(pid) {
        let s = task_state(pid, tid);
        assert!(
            matches!(s, Some('S' | 'R')),
            "thread {tid} left in state {s:?}"
        );
        assert_eq!(
            task_status(pid, tid, "SigPnd").as_deref(),
            Some("0000000000000000")
        );
    }
    assert_eq!(
        (sigset(pid, "SigPnd"), sigset(pid, "ShdPnd")),
        pending_before
    );
    assert_eq!(t.read_u64(t.num("conts")), 0, "the target saw SIGCONT");
    t.assert_advances(t.num("ticks"), 5);
    assert_untouched(&t);
    assert_eq!(t.read_u64(t.num("conts")), 0, "the target saw SIGCONT");
}
