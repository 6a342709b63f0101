//! Register integrity: whichever thread reach borrows for a call, and
//! wherever it interrupts it (mid-spin or inside a system call), the thread
//! finds its vector registers, callee-saved and other general registers and
//! its red zone exactly as it left them. In a file of its own because its
//! spinning threads load the CPU and the timing-sensitive tests elsewhere
//! should not share the machine with them.

use crate::support::*;

/// (iterations, mismatches) of each checker thread in the regs fixture.
fn reg_stats(t: &Target) -> Vec<(u64, u64)> {
    let base = t.num("stats");
    (0..t.num("threads"))
        .map(|i| (t.read_u64(base + 16 * i), t.read_u64(base + 16 * i + 8)))
        .collect()
}

#[test]
fn registers_and_red_zone_survive_many_calls() {
    let t = Target::fixture("regs", &[]);
    let cpu_avx = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap()
        .split_whitespace()
        .any(|w| w == "avx");
    // The fixture checks ymm when the CPU has AVX, xmm otherwise.
    assert_eq!(t.field("avx") == "1", cpu_avx);
    assert!(
        wait_until(STATE_DEADLINE, || reg_stats(&t).iter().all(|&(n, _)| n > 0)),
        "checker threads did not start: {:?}",
        reg_stats(&t)
    );

    let out = eval_ok(
        t.pid,
        r#"let n = 0;
           for i in 0..500 { call("getpid", []); n += 1; }
           for i in 0..50 { call("strlen", ["a string argument " + i]); n += 1; }
           for i in 0..20 { call("snprintf", [0, 0, "%s %d", "varargs", i]); n += 1; }
           n"#,
    );
    assert_eq!(out, "570");

    // Every checker carried on after the calls, and never saw a difference.
    let after = reg_stats(&t);
    assert!(
        wait_until(STATE_DEADLINE, || {
            reg_stats(&t)
                .iter()
                .zip(&after)
                .all(|(now, then)| now.0 > then.0 + 2)
        }),
        "checker threads stopped advancing: {after:?} -> {:?}",
        reg_stats(&t)
    );
    let stats = reg_stats(&t);
    assert!(
        stats.iter().all(|&(_, bad)| bad == 0),
        "register or red zone mismatches per thread (iterations, mismatches): {stats:?}"
    );
    assert_untouched(&t);
    assert!(reg_stats(&t).iter().all(|&(_, bad)| bad == 0));
}
