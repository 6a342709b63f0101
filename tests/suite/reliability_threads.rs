//! Thread scale and thread churn: a 500-thread target takes calls and gets
//! every thread back as it was; a target that creates and ends threads as
//! fast as it can while reach lists and seizes them takes calls too, and is
//! left with none of its threads traced.

use crate::support::*;
use std::collections::HashMap;

/// Each thread's state letter.
fn thread_states(pid: i32) -> HashMap<i32, char> {
    tids(pid)
        .into_iter()
        .filter_map(|tid| Some((tid, task_state(pid, tid)?)))
        .collect()
}

#[test]
fn five_hundred_threads_take_calls_and_are_all_released() {
    let t = Target::fixture("target", &["498"]);
    let pid = t.pid;
    let expected = t.num("threads") as usize;
    assert_eq!(expected, 500);
    // Every idle thread has reached pause(): all sleep, only the ticker may
    // be caught running.
    let settled = || {
        let states = thread_states(pid);
        states.len() == expected && states.values().all(|&s| s == 'S' || s == 'R')
    };
    assert!(wait_until(STATE_DEADLINE, settled), "threads never settled");
    let before = thread_states(pid);
    let in_pause = || {
        tids(pid)
            .into_iter()
            .filter(|&tid| task_syscall(pid, tid) == Some(libc::SYS_pause))
            .count()
    };
    assert!(wait_until(STATE_DEADLINE, || in_pause() == 498));
    let pending_before = (sigset(pid, "SigPnd"), sigset(pid, "ShdPnd"));

    let out = eval_ok(
        pid,
        r#"let n = 0;
           for i in 0..5 { if call("getpid", []) == PID { n += 1; } }
           for i in 0..5 { if syscall("getpid", []) == PID { n += 1; } }
           if call("strlen", ["five hundred"]) == 12 { n += 1; }
           freeze();
           for i in 0..5 { if call("getpid", []) == PID { n += 1; } }
           thaw();
           n"#,
    );
    assert_eq!(out, "16");

    assert_untraced(pid);
    let after = thread_states(pid);
    let mut before_tids: Vec<_> = before.keys().collect();
    let mut after_tids: Vec<_> = after.keys().collect();
    before_tids.sort();
    after_tids.sort();
    assert_eq!(before_tids, after_tids, "the set of threads changed");
    // Sleeping threads sleep again (in the same pause()); none is stopped.
    let wrong: Vec<_> = after
        .iter()
        .filter(|&(_, &s)| s != 'S' && s != 'R')
        .collect();
    assert!(wrong.is_empty(), "threads left in other states: {wrong:?}");
    // The idle threads are back in pause(): restarted, not failed with EINTR
    // (they would loop and call it again, but not all at the same moment).
    assert!(
        wait_until(STATE_DEADLINE, || in_pause() == 498),
        "{} threads in pause()",
        in_pause()
    );
    for tid in tids(pid) {
        assert_eq!(
            task_status(pid, tid, "SigPnd").as_deref(),
            Some("0000000000000000"),
            "thread {tid} has a signal pending"
        );
    }
    assert_eq!(
        (sigset(pid, "SigPnd"), sigset(pid, "ShdPnd")),
        pending_before
    );
    assert_eq!(t.read_u64(t.num("conts")), 0, "the target saw SIGCONT");
    t.assert_advances(t.num("ticks"), 5);
    assert_untouched(&t);
}

#[test]
fn threads_that_come_and_go_while_reach_stops_them_are_no_trouble() {
    let t = Target::fixture("rel_faults", &["churn"]);
    let pid = t.pid;
    let churned = t.num("churned");
    t.assert_advances(churned, 100);

    // A thousand windows opened on a thread list that changes under them,
    // then frozen windows with several operations each.
    let out = eval_ok(
        pid,
        r#"let n = 0;
           for i in 0..1000 { if call("getpid", []) == PID { n += 1; } }
           for i in 0..10 {
               freeze();
               if call("getpid", []) == PID { n += 1; }
               if syscall("getpid", []) == PID { n += 1; }
               thaw();
           }
           n"#,
    );
    assert_eq!(out, "1020");

    t.assert_advances(churned, 100);
    t.assert_advances(t.num("ticks"), 5);
    assert_untraced(pid);
    // Only the long-lived threads and short-lived ones that come and go: no
    // thread left stopped or traced, none stuck as a zombie.
    for tid in tids(pid) {
        let s = task_state(pid, tid);
        assert!(
            s.is_none() || matches!(s, Some('S' | 'R')),
            "thread {tid} in state {s:?}"
        );
    }
    assert_untouched(&t);
}
