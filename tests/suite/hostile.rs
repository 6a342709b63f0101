//! Hostile and unusual targets: reach never harms them and never lies
//! about what happened to them — seccomp filters, vfork loops, threads in
//! uninterruptible sleep, pending fault signals, rseq critical sections,
//! a main thread that exited, an exec under reach's feet, 32-bit
//! programs, reach's own pid (`hostile.c` is the fixture).

use crate::support::*;
use std::process::Command;

/// `reach` without CAP_SYS_ADMIN (root otherwise: CAP_SYS_PTRACE kept).
const NO_SYS_ADMIN: &[&str] = &[
    "setpriv",
    "--inh-caps=-sys_admin",
    "--ambient-caps=-sys_admin",
    "--bounding-set=-sys_admin",
];

fn can_drop_sys_admin() -> bool {
    is_root() && have("setpriv")
}

/// As root, reach suspends the filter for the thread it runs on: the call
/// goes through, the target survives, and its filter still applies to
/// its own system calls afterwards.
#[test]
fn a_trapping_filter_is_suspended_for_the_call_and_stays_in_force() {
    let mut t = Target::fixture("seccomp", &["trap", "close"]);
    let maps_before = maps(t.pid);
    assert_eq!(eval_ok(t.pid, r#"call("close", [9999]); errno()"#), "9");
    assert_eq!(t.read_u64(t.num("traps")), 0, "reach's close was trapped");
    // The target's own close is still refused by its filter (trapped: its
    // SIGSYS handler counts it).
    assert!(t.ask("close").starts_with("close "));
    assert_eq!(t.read_u64(t.num("traps")), 1);
    t.assert_advances(t.num("ticks"), 5);
    assert_eq!(maps(t.pid), maps_before, "reach's mapping left behind");
    assert_untouched(&t);
}

/// A filter that kills the process on mmap, munmap and getpid — what reach
/// injects itself, and what it is asked to call and make.
#[test]
fn a_killing_filter_never_kills_the_target() {
    let mut t = Target::fixture("seccomp", &["kill", "mmap", "munmap", "getpid"]);
    let pid = t.pid.to_string();
    assert_eq!(eval_ok(t.pid, r#"call("getpid", [])"#), pid);
    assert_eq!(eval_ok(t.pid, r#"syscall("getpid", [])"#), pid);
    t.assert_advances(t.num("ticks"), 5);
    assert_running(&t);
    // The filter is the target's still: its own getpid kills it.
    t.send("getpid");
    let status = t.wait_exit(STATE_DEADLINE);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGSYS),
        "{}",
        describe(status)
    );
}

/// Without the privilege to suspend the filter, reach refuses before it
/// injects anything, naming the filter, and the target is untouched.
#[test]
fn without_cap_sys_admin_a_filtered_target_is_refused_untouched() {
    if !can_drop_sys_admin() {
        eprintln!("skipped: needs root and setpriv");
        return;
    }
    for action in ["kill", "trap"] {
        let t = Target::fixture("seccomp", &[action, "mmap", "getpid"]);
        let maps_before = maps(t.pid);
        for expr in [r#"call("getpid", [])"#, r#"syscall("getpid", [])"#] {
            let out = reach_wrapped(NO_SYS_ADMIN, &["-p", &t.pid.to_string(), "-e", expr]);
            assert_error(&out, 1, &["seccomp", "CAP_SYS_ADMIN"]);
        }
        assert_eq!(maps(t.pid), maps_before);
        assert_eq!(t.read_u64(t.num("traps")), 0);
        t.assert_advances(t.num("ticks"), 5);
        assert_running(&t);
    }
}

/// A thread that vforks in a loop: every operation succeeds, and no child
/// is ever left traced or stopped, no parent left waiting.
#[test]
fn a_thread_vforking_in_a_loop_is_never_adopted() {
    let t = Target::fixture("hostile", &["vfork"]);
    let pid = t.pid.to_string();
    for _ in 0..10 {
        assert_eq!(eval_ok(t.pid, r#"call("getpid", [])"#), pid);
        assert_eq!(eval_ok(t.pid, r#"freeze(); syscall("getpid", [])"#), pid);
        for child in children(t.pid) {
            assert_eq!(tracer_pid(child), 0, "child {child} of {pid} left traced");
        }
    }
    t.assert_advances(t.num("vforks"), 100);
    assert_untouched(&t);
}

/// A thread in uninterruptible sleep (a vfork parent waiting for a child
/// that waits for us): `freeze()` and a call named on it say so within
/// the timeout and hold nothing; a call reach places itself goes to
/// another thread; once the child exits the thread goes on at once.
#[test]
fn a_thread_in_uninterruptible_sleep_is_named_and_never_held() {
    let mut t = Target::fixture("hostile", &["dstate"]);
    let waiter = t.field("waiter").to_string();
    let tid: i32 = waiter.parse().unwrap();
    assert!(
        wait_until(STATE_DEADLINE, || task_state(t.pid, tid) == Some('D')),
        "thread {tid} never waited for its vfork child"
    );
    let pid = t.pid.to_string();
    let out = reach(&["-p", &pid, "--timeout", "1", "-e", "freeze(); 1"]);
    assert_error(&out, 1, &[&waiter, "uninterruptible", "no thread was held"]);
    assert_untraced(t.pid);
    let call = r#"call("getpid", [])"#;
    let out = reach(&[
        "-p",
        &pid,
        "--timeout",
        "1",
        "--thread",
        &waiter,
        "-e",
        call,
    ]);
    assert_error(&out, 1, &[&waiter, "uninterruptible", "no thread was held"]);
    assert_untraced(t.pid);
    assert_eq!(eval_ok(t.pid, call), pid);
    // Still in D, and not traced: nothing of reach's is left on it.
    assert_eq!(task_state(t.pid, tid), Some('D'));
    t.send("release");
    t.line_matching(STATE_DEADLINE, |l| l == "child gone");
    assert_untouched(&t);
}

/// Fault signals sent with kill() and pending, blocked, when a call starts
/// are not the callee's faults: the call succeeds, and each stays pending
/// until the target unblocks it, then is delivered once.
#[test]
fn pending_fault_signals_stay_pending_and_are_delivered_once() {
    let mut t = Target::fixture("hostile", &["pending"]);
    let signals = [
        libc::SIGBUS,
        libc::SIGSEGV,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGTRAP,
        libc::SIGSYS,
    ];
    for &sig in &signals {
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(t.pid, sig) }, 0);
    }
    let all = signals.iter().fold(0, |m, &s| m | sigbit(s));
    assert_eq!(sigset(t.pid, "ShdPnd") & all, all);
    let pid = t.pid.to_string();
    for expr in [r#"call("getpid", [])"#, r#"syscall("getpid", [])"#] {
        assert_eq!(eval_ok(t.pid, expr), pid);
        assert_eq!(eval_ok(t.pid, &format!("freeze(); {expr}")), pid);
    }
    assert_eq!(
        sigset(t.pid, "ShdPnd") & all,
        all,
        "a pending signal was taken"
    );
    assert_eq!(
        t.ask("unblock"),
        format!("unblocked caught={}", signals.len())
    );
    assert_untouched(&t);
}

/// A thread inside an rseq critical section, stopped for a call, resumes
/// at the section's abort handler as after a signal: it keeps running its
/// sections (each aborted by the signals a second thread sends).
#[test]
fn a_thread_in_an_rseq_critical_section_resumes_at_its_abort_handler() {
    let t = Target::fixture("hostile", &["rseq"]);
    if t.field("rseq") == "0" {
        eprintln!("skipped: glibc registered no rseq area");
        return;
    }
    let cs = t.field("cs").to_string();
    let aborts = t.num("aborts");
    let pid = t.pid.to_string();
    for _ in 0..5 {
        let out = reach(&["-p", &pid, "--thread", &cs, "-e", r#"call("getpid", [])"#]);
        assert_ok(&out);
        assert_eq!(out.stdout.trim(), pid);
        t.assert_advances(aborts, 20);
    }
    assert_untouched(&t);
}

/// A main thread that called pthread_exit leaves a zombie leader and a
/// live process: not refused as a zombie; its descriptors, threads,
/// calls and system calls all work.
#[test]
fn a_process_whose_main_thread_exited_is_not_a_zombie() {
    let t = Target::fixture("hostile", &["orphan"]);
    let reader: i32 = t.field("reader").parse().unwrap();
    assert!(wait_until(STATE_DEADLINE, || state(t.pid) == Some('Z')));
    let pid = t.pid.to_string();
    assert_eq!(eval_ok(t.pid, r#"call("getpid", [])"#), pid);
    assert_eq!(eval_ok(t.pid, r#"freeze(); syscall("getpid", [])"#), pid);
    assert_eq!(eval_ok(t.pid, r#"call("close", [999]); errno()"#), "9");
    // The descriptors are the reader's (the leader's table is gone).
    let open = std::fs::read_dir(format!("/proc/{pid}/task/{reader}/fd"))
        .unwrap()
        .count();
    assert!(open >= 3);
    assert_eq!(eval_ok(t.pid, "fds().len()"), open.to_string());
    let threads = eval_ok(t.pid, "threads()");
    assert!(threads.contains("(exited)"), "{threads}");
    assert!(threads.contains(&reader.to_string()), "{threads}");
    assert_eq!(
        task_state(t.pid, reader),
        Some('S'),
        "the live thread is harmed"
    );
    assert_untraced(t.pid);
}

/// The target execs between two operations of one session: the second
/// uses nothing of the old image (its vDSO, reach's mapping, the old
/// thread's errno), and works.
#[test]
fn an_exec_between_operations_drops_everything_learned() {
    let t = Target::fixture("hostile", &["exec"]);
    let script = r#"
        let before = [call("getpid", []), syscall("getpid", []), call("close", [999]), errno()];
        let main = sym("main");
        write(sym("exec_requested"), blob(4, 1));
        let start = timestamp();
        while sym("main") == main && start.elapsed < 30.0 { }
        // The new program starts in the dynamic linker: libc comes once
        // it has loaded it.
        loop { try { sym("close"); break; } catch { if start.elapsed > 30.0 { break; } } }
        let after = [call("getpid", []), syscall("getpid", []), call("close", [998]), errno()];
        [sym("main") != main, before, after]
    "#;
    let out = reach_with_stdin(&["-p", &t.pid.to_string(), "--json"], script);
    assert_ok(&out);
    let pid = t.pid as i64;
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let v = &doc["value"];
    assert_eq!(v[0], true, "the target never exec'd: {out:#?}");
    let expect = serde_json::json!([pid, pid, -1, 9]);
    assert_eq!(v[1], expect);
    assert_eq!(v[2], expect);
    // The new image's own ready line, and nothing of reach's left behind.
    t.line_matching(STATE_DEADLINE, |l| l.starts_with("ready exec="));
    assert!(!maps(t.pid).contains("reach"));
    assert_untouched(&t);
}

/// A call that execs does not return: reach says so, and the same
/// session goes on in the new image.
#[test]
fn a_call_that_execs_is_reported_and_the_session_goes_on() {
    let t = Target::fixture("hostile", &["exec"]);
    let path = t.field("exec").to_string();
    let script = format!(
        r#"
        let said = "";
        try {{ call("execl", ["{path}", "{path}", "exec", 0]); }} catch (e) {{ said = e; }}
        let pid = syscall("getpid", []);
        // The new program starts in the dynamic linker: libc comes once
        // it has loaded it.
        let start = timestamp();
        loop {{
            try {{ sym("close"); break; }} catch {{ if start.elapsed > 30.0 {{ break; }} }}
        }}
        [said, pid, call("close", [997]), errno()]
    "#
    );
    let out = reach_with_stdin(&["-p", &t.pid.to_string(), "--json"], &script);
    assert_ok(&out);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let v = &doc["value"];
    let said = v[0].as_str().unwrap_or_default();
    assert!(said.contains("replaced the process image"), "{out:#?}");
    assert_eq!(v[1], t.pid as i64);
    assert_eq!(v[2], -1);
    assert_eq!(v[3], 9);
    t.line_matching(STATE_DEADLINE, |l| l.starts_with("ready exec="));
    assert_untouched(&t);
}

/// A 32-bit program (built here with the 32-bit assembler and linker, when
/// they exist): refused clearly, untouched.
#[test]
fn a_32_bit_process_is_refused_untouched() {
    let dir = workdir("x32");
    let src = dir.join("x32.s");
    std::fs::write(
        &src,
        ".globl _start\n_start:\n mov $162, %eax\n lea ts, %ebx\n xor %ecx, %ecx\n \
         int $0x80\n jmp _start\n.data\nts: .long 1, 0\n",
    )
    .unwrap();
    let obj = dir.join("x32.o");
    let exe = dir.join("x32");
    let built = Command::new("as")
        .args(["--32", "-o"])
        .arg(&obj)
        .arg(&src)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("ld")
            .args(["-m", "elf_i386", "-o"])
            .arg(&exe)
            .arg(&obj)
            .status()
            .is_ok_and(|s| s.success());
    if !built {
        eprintln!("skipped: no 32-bit assembler and linker");
        return;
    }
    let mut child = spawn(&mut Command::new(&exe)).unwrap();
    let pid = child.id() as i32;
    assert!(wait_until(STATE_DEADLINE, || state(pid) == Some('S')));
    for expr in [
        r#"call("getpid", [])"#,
        r#"syscall("getpid", [])"#,
        "threads()",
    ] {
        let out = eval(pid, expr);
        assert_error(&out, 1, &["32-bit"]);
    }
    assert_eq!(tracer_pid(pid), 0);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the 32-bit process died"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// reach never attaches to itself (it would stop its own thread).
#[test]
fn reach_refuses_its_own_pid() {
    // The shell execs reach: $$ is reach's own pid.
    let mut sh = Command::new("sh");
    sh.arg("-c").arg(format!(
        "exec {} -p $$ -e 'call(\"getpid\", [])'",
        reach_bin()
    ));
    let out = spawn_command(sh, None).finish(REACH_DEADLINE);
    assert_error(&out, 1, &["reach itself"]);
}
