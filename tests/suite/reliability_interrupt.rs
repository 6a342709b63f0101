//! reach itself interrupted: SIGINT or SIGTERM at random points of a short
//! script of calls — before reach has touched the target, while it stops
//! the threads, while the injected function runs, while it restores and
//! releases them, after it is done. Every time, the target must carry on
//! with every register intact, no thread traced or stopped, and no mapping
//! left behind.
//!
//! CI makes 20 runs; `REACH_INTERRUPT_RUNS=200 cargo test --test
//! reliability_interrupt` makes the full 200.

use crate::support::*;
use std::time::{Duration, Instant};

/// A few operations of each kind: calls (one that sleeps in the target,
/// one with a 100 KB argument that needs a scratch mapping), a raw syscall,
/// and a frozen window around two calls.
const SCRIPT: &str = r#"
    let big = ""; big.pad(100000, 'z');
    let n = 0;
    n += call("getpid", []);
    n += call("usleep", [20000]);
    n += syscall("getppid", []);
    n += call("strlen", [big]);
    freeze();
    n += call("getpid", []);
    n += call("usleep", [10000]);
    thaw();
    n
"#;

/// How one interrupted run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Ending {
    /// reach finished first: the signal came after it was done.
    Finished,
    /// reach saw the signal and said so.
    Interrupted,
    /// The signal killed reach before it set up its handlers (before it
    /// touched the target).
    KilledEarly,
}

/// Where to aim a signal.
#[derive(Debug, Clone, Copy)]
enum Aim {
    /// A random time after reach starts.
    Anywhere,
    /// Once reach has begun stopping the target (a thread is traced).
    InWindow,
    /// Once an injected usleep runs: the main thread, whose own code never
    /// calls clock_nanosleep (it sleeps with a raw nanosleep), sleeps in
    /// clock_nanosleep under a tracer.
    InFunction,
}

/// Polls (finely: the moments last milliseconds) until `aim` is reached or
/// reach has exited; returns whether it was reached.
fn aim_at(running: &mut RunningReach, pid: i32, aim: Aim) -> bool {
    let reached = || match aim {
        Aim::Anywhere => true,
        Aim::InWindow => tids(pid)
            .iter()
            .any(|&tid| task_status(pid, tid, "TracerPid").is_some_and(|p| p != "0")),
        Aim::InFunction => {
            tracer_pid(pid) != 0 && task_syscall(pid, pid) == Some(libc::SYS_clock_nanosleep)
        }
    };
    let deadline = Instant::now() + STATE_DEADLINE;
    while Instant::now() < deadline {
        if reached() {
            return true;
        }
        if running.exited() {
            return false;
        }
        pause(Duration::from_micros(200));
    }
    false
}

fn expected_value(pid: i32) -> String {
    (2 * pid as i64 + std::process::id() as i64 + 100000).to_string()
}

/// Runs the script once, uninterrupted: its value, and how long it took.
fn calibrate(pid: i32) -> Duration {
    let started = Instant::now();
    let out = eval_ok(pid, SCRIPT);
    assert_eq!(out, expected_value(pid));
    started.elapsed()
}

#[test]
fn sigint_and_sigterm_at_random_points_leave_the_target_intact() {
    let runs = env_count("REACH_INTERRUPT_RUNS", 20);
    let mut t = Target::fixture("rel_stress", &["4"]);
    let pid = t.pid;
    assert!(
        wait_until(STATE_DEADLINE, || checker_stats(&t)
            .iter()
            .all(|&(n, _)| n > 0)),
        "checker threads did not start"
    );
    // The first run also warms up (IFUNC resolution, stack growth), so the
    // maps taken after it are the ones every run must leave.
    let span = calibrate(pid).max(calibrate(pid));
    let maps_before = maps(pid);

    let mut rng = Rng::new(0x696e74);
    let mut endings = std::collections::HashMap::<Ending, usize>::new();
    let mut aims = std::collections::HashMap::<String, usize>::new();
    for run in 0..runs {
        let sig = *rng.pick(&[libc::SIGINT, libc::SIGTERM]);
        let aim = *rng.pick(&[Aim::Anywhere, Aim::InWindow, Aim::InFunction]);
        // Anywhere: up to 20% past the uninterrupted run time, so some
        // signals land after reach is done. Otherwise a little after the
        // aimed-for moment.
        let delay = Duration::from_micros(match aim {
            Aim::Anywhere => rng.below(span.as_micros() as u64 * 6 / 5 + 1),
            Aim::InWindow | Aim::InFunction => rng.below(2000),
        });
        let mut running = spawn_reach(&["-p", &pid.to_string(), "-e", SCRIPT]);
        let reached = aim_at(&mut running, pid, aim);
        *aims
            .entry(format!("{aim:?} reached={reached}"))
            .or_default() += 1;
        pause(delay);
        // SAFETY: signalling our own child (not yet reaped).
        unsafe { libc::kill(running.pid(), sig) };
        let out = running.finish(REACH_DEADLINE);
        let what = format!("run {run}: signal {sig} {delay:?} after {aim:?} (reached: {reached})");

        let ending = match (
            out.code(),
            std::os::unix::process::ExitStatusExt::signal(&out.status),
        ) {
            (Some(0), _) => {
                assert_eq!(out.stdout.trim(), expected_value(pid), "{what}: {out:#?}");
                Ending::Finished
            }
            (Some(1), _) => {
                assert!(
                    out.stderr.contains("interrupted"),
                    "{what}: failed for another reason: {out:#?}"
                );
                Ending::Interrupted
            }
            (None, Some(s)) if s == sig => Ending::KilledEarly,
            _ => panic!("{what}: unexpected ending: {out:#?}"),
        };
        *endings.entry(ending).or_default() += 1;

        // The target is as it was: alive, released, running, its registers
        // intact, no scratch mapping left behind.
        if !t.alive() {
            let status = t.wait_exit(STATE_DEADLINE);
            panic!(
                "{what}: the target died ({ending:?}): {}; reach said {out:#?}",
                describe(status)
            );
        }
        assert_untraced(pid);
        for tid in tids(pid) {
            let s = task_state(pid, tid);
            assert!(
                !matches!(s, Some('T' | 't')),
                "{what}: thread {tid} left in state {s:?} ({ending:?})"
            );
        }
        let stats = checker_stats(&t);
        assert!(
            stats.iter().all(|&(_, bad)| bad == 0),
            "{what}: register mismatches ({ending:?}): {stats:?}"
        );
        let maps_now = maps(pid);
        assert_eq!(
            maps_now.lines().count(),
            maps_before.lines().count(),
            "{what}: mappings changed ({ending:?})\nbefore:\n{maps_before}\nafter:\n{maps_now}"
        );
    }
    eprintln!("{runs} runs, script takes {span:?} uninterrupted: {endings:?} {aims:?}");
    assert_registers_intact(&t);
    assert_untouched(&t);
}

/// SIGKILL cannot be caught, so reach cannot restore anything; the kernel
/// detaches every thread when the tracer dies (`exit_ptrace`). With no call
/// in flight — the window open, the threads merely stopped — nothing of
/// reach's is in them, and they must run on as if never stopped: blocked
/// system calls resume without EINTR (the restart codes reach left in place
/// when it stopped them do that), a 3 s nanosleep lasts its 3 s.
/// (A SIGKILL while the injected function runs is another matter: see
/// docs/reliability.md.)
#[test]
fn sigkill_to_reach_holding_a_frozen_target_leaves_it_running() {
    let mut t = Target::fixture("blocked", &[]);
    let pid = t.pid;
    let blocked_in = |name: &str, nrs: &[i64]| {
        let tid = t.num(name) as i32;
        wait_until(STATE_DEADLINE, || {
            task_syscall(pid, tid).is_some_and(|nr| nrs.contains(&nr))
        })
    };
    assert!(blocked_in(
        "nanosleep",
        &[libc::SYS_nanosleep, libc::SYS_clock_nanosleep]
    ));
    assert!(blocked_in(
        "epoll",
        &[libc::SYS_epoll_wait, libc::SYS_epoll_pwait]
    ));
    assert!(blocked_in("recv", &[libc::SYS_recvfrom]));
    assert!(blocked_in("read", &[libc::SYS_read]));

    let running = spawn_reach(&["-p", &pid.to_string(), "-e", "freeze(); loop { }"]);
    let frozen = wait_until(STATE_DEADLINE, || {
        tids(pid).iter().all(|&tid| {
            task_state(pid, tid) == Some('t')
                && task_status(pid, tid, "TracerPid").as_deref() != Some("0")
        })
    });
    assert!(frozen, "reach never froze the target");
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(running.pid(), libc::SIGKILL) }, 0);
    drop(running);

    assert_untraced(pid);
    // Wake the read and accept threads and collect every thread's result.
    t.send("x");
    let port = t.field("port").to_string();
    let _conn = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    let mut results = Vec::new();
    while results.len() < 6 {
        results.push(t.line_matching(STATE_DEADLINE, |l| l.starts_with("result ")));
    }
    for r in &results {
        assert!(
            !r.contains("errno=4 "),
            "EINTR after reach died: {results:?}"
        );
    }
    let nanosleep = results
        .iter()
        .find(|r| r.starts_with("result nanosleep"))
        .unwrap();
    let ms: u64 = nanosleep.rsplit("ms=").next().unwrap().parse().unwrap();
    assert!(ms >= 3000, "nanosleep cut short: {results:?}");
    t.line_matching(STATE_DEADLINE, |l| l == "done");
    assert!(t.wait_exit(STATE_DEADLINE).success());
}

/// Ctrl-C while a script runs on with the target frozen: reach stops the
/// script and releases the target at once (were it deaf to SIGINT, the
/// test's deadline would end it first).
#[test]
fn sigint_during_a_long_script_releases_a_frozen_target() {
    let t = Target::fixture("target", &[]);
    let pid = t.pid;
    let script = "freeze(); let start = timestamp(); while start.elapsed < 3600.0 { }";
    let running = spawn_reach(&["-p", &pid.to_string(), "-e", script]);
    assert!(
        wait_until(STATE_DEADLINE, || tids(pid).iter().all(|&tid| task_state(
            pid, tid
        ) == Some(
            't'
        ))),
        "reach never froze the target"
    );
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(running.pid(), libc::SIGINT) }, 0);
    let out = running.finish(REACH_DEADLINE);
    assert_error(&out, 1, &["interrupted by SIGINT"]);
    assert_untouched(&t);
}
