//! Faults while reach holds the target: the target killed at random points
//! (mid-call, frozen between calls, while its threads are being stopped),
//! threads appearing and exiting inside a frozen window, fork, vfork,
//! system and execl called inside the target, a SIGSTOP that arrives during
//! a call, calls and syscalls into a SIGSTOPped target, and the signal mask
//! of what an injected call starts. (A seccomp filter that traps the
//! injected call is covered in call_errors.rs.)

use crate::support::*;
use std::time::Duration;

/// Fresh rel_faults target; waits until its ticker runs.
fn faults_target(args: &[&str]) -> Target {
    let t = Target::fixture("rel_faults", args);
    t.assert_advances(t.num("ticks"), 2);
    t
}

/// The thread states of every task (for messages).
fn thread_states(pid: i32) -> Vec<(i32, Option<char>)> {
    tids(pid)
        .into_iter()
        .map(|tid| (tid, task_state(pid, tid)))
        .collect()
}

// ---------------------------------------------------------------- the target killed

/// How long reach may take to notice that its target was killed. Below
/// the `--timeout` the runs use, so a wait that only the deadline ends is
/// caught.
const NOTICE_WITHIN: Duration = Duration::from_secs(4);

/// What one run did: the delay before the kill, reach's output, and how
/// long reach took after the kill.
struct KillRun {
    delay_us: u64,
    out: ReachOutput,
    took: Duration,
}

/// Starts reach on a fresh `fixture ARGS` with `script`, kills the target
/// `delay_us` after reach first stopped it, and waits for reach.
fn kill_target_during(fixture: &str, args: &[&str], script: &str, delay_us: u64) -> KillRun {
    let t = Target::fixture(fixture, args);
    let running = spawn_reach(&["--timeout", "5", "-p", &t.pid.to_string(), "-e", script]);
    assert!(
        wait_traced(t.pid, STATE_DEADLINE),
        "reach never stopped the target"
    );
    pause(Duration::from_micros(delay_us));
    t.signal(libc::SIGKILL);
    let killed = std::time::Instant::now();
    // Never a panic (checked by finish).
    let out = running.finish(REACH_DEADLINE);
    KillRun {
        delay_us,
        out,
        took: killed.elapsed(),
    }
}

/// Kills targets at `runs` random points (up to `max_delay_us` after reach
/// first stopped them) of `script`: each time reach must say promptly, in
/// one line and with exit status 1, that the target exited (or was
/// killed). All runs are
/// made before judging, so a failure lists every message seen.
fn kill_at_random_points(
    fixture: &str,
    args: &[&str],
    script: &str,
    seed: u64,
    runs: usize,
    max_delay_us: u64,
) {
    let mut rng = Rng::new(seed);
    let results: Vec<KillRun> = (0..runs)
        .map(|_| kill_target_during(fixture, args, script, rng.below(max_delay_us)))
        .collect();
    let wrong: Vec<String> = results
        .iter()
        .filter(|r| {
            r.out.code() != Some(1)
                || !(r.out.stderr.contains("exited") || r.out.stderr.contains("killed by SIGKILL"))
                || r.out.stderr.trim().lines().count() != 1
                || r.took > NOTICE_WITHIN
        })
        .map(|r| {
            format!(
                "killed {} us in: {} after {:?}: {:?}",
                r.delay_us,
                describe(r.out.status),
                r.took,
                r.out.stderr
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {runs} runs did not report promptly that the target exited:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn a_target_killed_at_random_points_of_a_loop_of_calls_is_reported() {
    kill_at_random_points(
        "rel_faults",
        &[],
        r#"loop { call("getpid", []); syscall("getppid", []); call("strlen", ["abc"]); }"#,
        0x6b696c6c,
        10,
        20_000,
    );
}

#[test]
fn a_target_killed_while_frozen_is_reported() {
    kill_at_random_points(
        "rel_faults",
        &[],
        r#"freeze(); loop { call("getpid", []); call("usleep", [100]); }"#,
        0x66726f7a,
        10,
        20_000,
    );
}

#[test]
fn a_target_killed_while_reach_stops_its_threads_is_reported() {
    // Stopping 200 threads takes a few milliseconds: kills within them land
    // while some threads are seized and others not yet.
    kill_at_random_points(
        "target",
        &["200"],
        r#"loop { call("getpid", []); }"#,
        0x73746f70,
        6,
        5_000,
    );
}

// ---------------------------------------------------------------- threads in a freeze

#[test]
fn a_thread_created_inside_a_frozen_window_runs_on_untraced() {
    let t = faults_target(&[]);
    let pid = t.pid;
    let before = tids(pid).len();
    let out = eval_ok(
        pid,
        r#"freeze();
           let b = call("malloc", [8]);
           let r = call("pthread_create", [b, 0, sym("long_lived"), 0]);
           call("free", [b]);
           let p = call("getpid", []);
           thaw();
           `${r} ${p}`"#,
    );
    assert_eq!(out, format!("0 {pid}"));
    assert!(
        wait_until(STATE_DEADLINE, || tids(pid).len() == before + 1),
        "no new thread: {:?}",
        thread_states(pid)
    );
    t.assert_advances(t.num("long_ticks"), 5);
    t.assert_advances(t.num("ticks"), 5);
    assert_untraced(pid);
    assert_untouched(&t);
    assert_eq!(tids(pid).len(), before + 1);
}

#[test]
fn a_thread_that_starts_and_exits_inside_a_frozen_window_is_no_trouble() {
    let t = faults_target(&[]);
    let pid = t.pid;
    let before = tids(pid).len();
    // pthread_join waits, inside the call, for the new thread to exit; the
    // frozen threads around it stay stopped throughout.
    let out = eval_ok(
        pid,
        r#"freeze();
           let b = call("malloc", [8]);
           let r = call("pthread_create", [b, 0, sym("short_lived"), 0]);
           let th = read(b, 8).parse_le_int(0, 8);
           let j = call("pthread_join", [th, 0]);
           call("free", [b]);
           let p = call("getpid", []);
           thaw();
           `${r} ${j} ${p}`"#,
    );
    assert_eq!(out, format!("0 0 {pid}"));
    assert_eq!(t.read_u64(t.num("short_runs")), 1);
    assert_eq!(tids(pid).len(), before, "{:?}", thread_states(pid));
    t.assert_advances(t.num("ticks"), 5);
    assert_untouched(&t);
}

// ---------------------------------------------------------------- fork, system, exec

/// Asks the target to reap one child; returns its answer line.
fn reap(t: &mut Target) -> String {
    t.send("reap");
    t.line_matching(STATE_DEADLINE, |l| l.starts_with("reaped"))
}

#[test]
fn fork_inside_a_call_leaves_a_child_that_exits_0() {
    let mut t = faults_target(&[]);
    // The child is a copy of the call thread: it comes back to reach's
    // return address, and must be made to exit there, not left to crash.
    // Several runs, because when reach sees the child's first stop varies.
    let mut results = Vec::new();
    for _ in 0..20 {
        let child = eval_ok(t.pid, r#"call("fork", [])"#);
        let child: i32 = child.parse().expect("fork returned a pid");
        assert!(child > 0, "fork failed in the target: {child}");
        results.push((child, reap(&mut t)));
    }
    let crashed: Vec<_> = results
        .iter()
        .filter(|(child, line)| *line != format!("reaped pid={child} exited=0"))
        .collect();
    assert!(
        crashed.is_empty(),
        "{} of 20 forked children did not exit 0: {crashed:?}",
        crashed.len()
    );
    t.assert_advances(t.num("ticks"), 5);
    assert_untouched(&t);
}

#[test]
fn vfork_inside_a_call_leaves_a_child_that_exits_0() {
    let mut t = faults_target(&[]);
    let child = eval_ok(t.pid, r#"call("vfork", [])"#);
    let child: i32 = child.parse().expect("vfork returned a pid");
    assert!(child > 0, "vfork failed in the target: {child}");
    assert_eq!(reap(&mut t), format!("reaped pid={child} exited=0"));
    t.assert_advances(t.num("ticks"), 5);
    assert_untouched(&t);
}

#[test]
fn system_inside_a_call_runs_the_command() {
    let mut t = faults_target(&[]);
    let dir = workdir("system");
    let file = dir.join("out");
    let out = eval_ok(
        t.pid,
        &format!(
            r#"call("system", ["echo from $PPID > {}"])"#,
            file.display()
        ),
    );
    assert_eq!(out, "0", "system() returned a failure status");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().trim(),
        format!("from {}", t.pid)
    );
    // system() reaped its own child: nothing is left for the target.
    assert!(reap(&mut t).starts_with("reaped none"));
    t.assert_advances(t.num("ticks"), 5);
    assert_untouched(&t);
}

#[test]
fn execl_inside_a_call_is_reported_and_the_new_program_runs() {
    let mut t = faults_target(&[]);
    let pid = t.pid;
    let exe = fixture("rel_faults");
    let out = eval(
        pid,
        &format!(
            r#"call("execl", ["{}", "rel_faults", "execed", 0])"#,
            exe.display()
        ),
    );
    assert_error(&out, 1, &["execve"]);
    // The same process, now running the program anew.
    t.line_matching(STATE_DEADLINE, |l| l == format!("execed pid={pid}"));
    t.line_matching(STATE_DEADLINE, |l| l.starts_with("ready"));
    assert_eq!(t.ask("ping"), "pong");
    assert_untraced(pid);
    assert_untouched(&t);
}

// ---------------------------------------------------------------- job control

#[test]
fn a_sigstop_that_arrives_during_a_call_stops_the_target_afterwards() {
    let mut t = faults_target(&[]);
    let pid = t.pid;
    let running = spawn_reach(&["-p", &pid.to_string(), "-e", r#"call("usleep", [300000])"#]);
    // The main thread's own code only ever blocks in read: once it sleeps
    // in nanosleep under a tracer, it is in the injected usleep.
    let in_call = wait_until(STATE_DEADLINE, || {
        tracer_pid(pid) != 0
            && matches!(
                task_syscall(pid, pid),
                Some(libc::SYS_nanosleep | libc::SYS_clock_nanosleep)
            )
    });
    assert!(in_call, "the call never started");
    t.signal(libc::SIGSTOP);

    let out = running.finish(REACH_DEADLINE);
    assert_ok(&out);
    assert_eq!(out.stdout.trim(), "0", "usleep was cut short");

    // Stopped, as the SIGSTOP asked, and released by reach.
    assert_still_stopped_then_resumes(&mut t);
}

#[test]
fn a_sigstop_during_a_raw_syscall_neither_cuts_it_short_nor_leaks_a_restart_code() {
    let mut t = faults_target(&[]);
    let pid = t.pid;
    // nanosleep({0, 300 ms}) as a raw system call: the timespec as a blob.
    let script = r#"let ts = blob(16, 0);
        ts.write_le(8, 8, 300000000);
        syscall("nanosleep", [ts, 0])"#;
    let started = std::time::Instant::now();
    let running = spawn_reach(&["-p", &pid.to_string(), "-e", script]);
    // The main thread's own code never sleeps in nanosleep: once it does
    // under a tracer, it is in the injected system call.
    let in_call = wait_until(STATE_DEADLINE, || {
        tracer_pid(pid) != 0 && task_syscall(pid, pid) == Some(libc::SYS_nanosleep)
    });
    assert!(in_call, "the system call never started");
    t.signal(libc::SIGSTOP);
    let out = running.finish(REACH_DEADLINE);
    let took = started.elapsed();
    assert_ok(&out);
    // A stop does not end a nanosleep for the program (the kernel restarts
    // it); -516 is ERESTART_RESTARTBLOCK, which no program ever sees.
    assert_eq!(
        out.stdout.trim(),
        "0",
        "the system call's result after a SIGSTOP (after {took:?})"
    );
    assert!(took >= Duration::from_millis(300), "cut short: {took:?}");
    assert_still_stopped_then_resumes(&mut t);
}

/// SIGSTOPs the target and waits until every thread is in group stop.
fn stop_target(t: &Target) {
    t.signal(libc::SIGSTOP);
    assert!(wait_until(STATE_DEADLINE, || all_stopped(t.pid)));
}

fn all_stopped(pid: i32) -> bool {
    tids(pid)
        .iter()
        .all(|&tid| task_state(pid, tid) == Some('T'))
}

/// The target is still in group stop (threads that reach released re-enter
/// it at once, so wait for that), untraced, and runs no code of its own;
/// then SIGCONT resumes it normally.
fn assert_still_stopped_then_resumes(t: &mut Target) {
    let pid = t.pid;
    let ticks = t.num("ticks");
    assert!(
        wait_until(STATE_DEADLINE, || all_stopped(pid)),
        "{:?}",
        thread_states(pid)
    );
    assert_untraced(pid);
    let frozen = t.read_u64(ticks);
    pause(Duration::from_millis(50));
    assert_eq!(t.read_u64(ticks), frozen, "a stopped target ran");
    t.signal(libc::SIGCONT);
    t.assert_advances(ticks, 5);
    assert_untouched(t);
}

#[test]
fn a_stopped_target_stays_stopped_through_a_frozen_window() {
    let mut t = faults_target(&[]);
    let pid = t.pid;
    stop_target(&t);
    let out = eval_ok(
        pid,
        r#"freeze();
           let a = call("getpid", []);
           let b = call("strlen", ["four"]);
           let c = call("getppid", []);
           thaw();
           `${a} ${b} ${c}`"#,
    );
    assert_eq!(out, format!("{pid} 4 {}", std::process::id()));
    assert_still_stopped_then_resumes(&mut t);
}

#[test]
fn a_raw_syscall_into_a_stopped_target_works_and_leaves_it_stopped() {
    let mut t = faults_target(&[]);
    let pid = t.pid;
    stop_target(&t);
    let out = eval(pid, r#"syscall("getpid", [])"#);
    assert_ok(&out);
    assert_eq!(out.stdout.trim(), pid.to_string());
    let out = eval(
        pid,
        r#"freeze(); let a = syscall("getppid", []); let b = call("getpid", []); thaw(); `${a} ${b}`"#,
    );
    assert_ok(&out);
    assert_eq!(out.stdout.trim(), format!("{} {pid}", std::process::id()));
    assert_still_stopped_then_resumes(&mut t);
}

// ---------------------------------------------------------------- signal masks

// While injected code runs, reach blocks the call thread's signals (they
// are delivered after the restore). What that code starts must not inherit
// that mask: the target's own threads block nothing here, so neither
// should a thread or a program an injected call creates.

#[test]
fn a_program_execed_by_a_call_starts_with_the_targets_signal_mask() {
    let mut t = faults_target(&[]);
    let pid = t.pid;
    assert_eq!(t.ask("sigblk"), "sigblk=0");
    let exe = fixture("rel_faults");
    let out = eval(
        pid,
        &format!(
            r#"call("execl", ["{}", "rel_faults", "execed", 0])"#,
            exe.display()
        ),
    );
    assert_error(&out, 1, &["execve"]);
    t.line_matching(STATE_DEADLINE, |l| l.starts_with("ready"));
    // With every signal blocked, `kill PID` would no longer end it.
    assert_eq!(
        t.ask("sigblk"),
        "sigblk=0",
        "the new program inherited reach's call-time signal mask"
    );
}

// ---------------------------------------------------------------- other tracers

/// Two or three reach sessions on one target at once (two operators, or a
/// playbook running while someone looks): an operation that finds the
/// target held by the other session is refused, saying so — "already
/// traced", naming the tracer — and nothing else goes wrong, in either
/// session or in the target.
#[test]
fn concurrent_reach_sessions_refuse_each_other_cleanly() {
    let t = Target::fixture("rel_stress", &["4"]);
    let pid = t.pid;
    assert!(wait_until(STATE_DEADLINE, || checker_stats(&t)
        .iter()
        .all(|&(n, _)| n > 0)));
    // Each session counts its successes and keeps the first few errors
    // that are not the expected refusal.
    let script = r#"
        let ok = 0; let refused = 0; let other = [];
        for i in 0..150 {
            try {
                if call("getpid", []) == PID { ok += 1; }
            } catch (e) {
                let m = `${e}`;
                if m.contains("already traced") { refused += 1; }
                else if other.len() < 3 { other.push(m); }
            }
        }
        `ok=${ok} refused=${refused} other=${other}`"#;
    let sessions: Vec<RunningReach> = (0..3)
        .map(|_| spawn_reach(&["-p", &pid.to_string(), "-e", script]))
        .collect();
    let outs: Vec<ReachOutput> = sessions
        .into_iter()
        .map(|s| s.finish(REACH_DEADLINE))
        .collect();
    for out in &outs {
        assert_ok(out);
    }
    let summaries: Vec<&str> = outs.iter().map(|o| o.stdout.trim()).collect();
    eprintln!("{summaries:#?}");
    assert!(
        summaries.iter().all(|s| s.ends_with("other=[]")),
        "refusals that do not say the target is held by another reach: {summaries:#?}"
    );
    assert_registers_intact(&t);
    assert_untouched(&t);
}

/// The blocked fixture with its last thread (futex) held by another
/// tracer, once every thread is in its system call: `freeze()` seizes and
/// interrupts the others before it meets the traced one.
fn blocked_with_one_thread_traced() -> (Target, Target) {
    let t = Target::fixture("blocked", &[]);
    let pid = t.pid;
    for name in ["epoll", "recv", "futex"] {
        let tid = t.num(name) as i32;
        assert!(wait_until(STATE_DEADLINE, || task_syscall(pid, tid).is_some()));
    }
    let futex = t.num("futex") as i32;
    let tracer = Target::fixture("tracer", &[&futex.to_string()]);
    assert!(wait_until(STATE_DEADLINE, || {
        task_status(pid, futex, "TracerPid") == Some(tracer.pid.to_string())
    }));
    (t, tracer)
}

#[test]
fn a_thread_held_by_another_tracer_is_named_in_the_refusal() {
    let (t, tracer) = blocked_with_one_thread_traced();
    let out = eval(t.pid, "freeze()");
    assert_error(&out, 1, &["traced", &tracer.pid.to_string()]);
    // A call needs one thread only, and finds a free one.
    assert_eq!(eval_ok(t.pid, r#"call("getpid", [])"#), t.pid.to_string());
}

#[test]
fn a_refused_window_leaks_no_eintr_into_the_threads_it_interrupted() {
    let (mut t, tracer) = blocked_with_one_thread_traced();
    let out = eval(t.pid, "freeze()");
    assert_ne!(out.code(), Some(0), "{out:#?}");
    drop(tracer);
    assert_untraced(t.pid);
    let results = blocked_results(&mut t);
    let eintr: Vec<_> = results
        .iter()
        .filter(|(_, r)| r["errno"] == libc::EINTR as i64)
        .map(|(name, _)| name)
        .collect();
    assert!(
        eintr.is_empty(),
        "EINTR in {eintr:?} after a refused window: {results:?}"
    );
}
