//! Hostile and unusual targets: reach never harms them and never lies
//! about what happened to them (seccomp filters, …).

use crate::support::*;

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
