//! Bad input at scale: random builtin calls (call, syscall, sym, read,
//! read_cstr, write, freeze/thaw, errno, attach/detach, fds, f.shutdown,
//! threads, signals, maps, status, pgrep, pause, help) with random argument
//! types and values — huge strings and blobs, negative and huge lengths,
//! unmapped and kernel addresses, floats, maps, arrays, unit, function
//! pointers, targets, too many arguments — made by a small deterministic
//! generator and run through the real binary. reach may fail (exit 1 or 2,
//! one line of error) or succeed, but never panic, and the target is intact
//! afterwards.
//!
//! Nothing generated can legitimately harm the target: functions are ones
//! that only read memory or compute (strlen, abs, memchr, …), system calls
//! ones without effects (getpid, sched_yield, …) or invalid, and writes go
//! only to unmapped or kernel addresses or into the fixture's own scratch
//! buffer. So any harm is reach's.
//!
//! The command line gets the same treatment: every numeric option with huge,
//! negative, fractional and non-numeric values, stdout and stderr closed or
//! full (an operator's dropped session), scripts that are devices, FIFOs,
//! directories or names full of control characters, and expressions that
//! hit the engine's limits (`blob(1 << 62)`, `import`).
//!
//! CI runs 400 cases in batches, 40 one by one and 40 command lines;
//! `REACH_FUZZ_CASES=5000 cargo test --test suite reliability_input` runs
//! more (the seed is fixed; set `REACH_FUZZ_SEED` to explore others).

use crate::support::*;
use std::process::Command;

/// Functions whose random arguments can only make them read memory (and
/// fault on a bad pointer) or compute a value.
const FUNCTIONS: &[&str] = &[
    "getpid",
    "getppid",
    "strlen",
    "strnlen",
    "abs",
    "labs",
    "atoi",
    "strcmp",
    "strncmp",
    "memchr",
    "toupper",
    "isalpha",
    "sched_yield",
    "getuid",
];

/// System calls without effects on the process, by name.
const SYSCALL_NAMES: &[&str] = &[
    "getpid",
    "getppid",
    "gettid",
    "sched_yield",
    "getuid",
    "getpgrp",
];

/// And by number, with invalid ones.
const SYSCALL_NUMBERS: &[i64] = &[39, 110, 186, 24, 102, 111, 1023, 999, 512, -1, 1024, 99999];

/// Addresses nothing is mapped at (in a 47-bit user address space the last
/// ones are kernel or non-canonical addresses).
const UNMAPPED: &[&str] = &[
    "0",
    "1",
    "8",
    "4095",
    "0xdead0000",
    "0x800000000000",
    "0xffff800000000000",
    "-1",
    "-4096",
];

/// Generates Rhai source for random values and builtin calls.
struct Gen<'a> {
    rng: Rng,
    t: &'a Target,
}

impl Gen<'_> {
    fn int(&mut self) -> String {
        match self.rng.below(10) {
            0 => "0".into(),
            1 => "-1".into(),
            2 => "9223372036854775807".into(),
            3 => "(-9223372036854775807 - 1)".into(),
            4 => (self.rng.next_u64() as i64).to_string(),
            5 => self.rng.below(100).to_string(),
            6 => format!("-{}", self.rng.below(1 << 20)),
            7 => self.rng.pick(UNMAPPED).to_string(),
            8 => "PID".into(),
            _ => (1u64 << self.rng.below(64)).to_string(),
        }
    }

    fn length(&mut self) -> String {
        match self.rng.below(8) {
            0 => "-1".into(),
            1 => "(-9223372036854775807 - 1)".into(),
            2 => "0".into(),
            3 => self.rng.below(5000).to_string(),
            4 => (64 << 20).to_string(),
            5 => ((64 << 20) + 1).to_string(),
            6 => "9223372036854775807".into(),
            _ => format!("-{}", self.rng.below(1 << 30)),
        }
    }

    fn string(&mut self) -> String {
        match self.rng.below(9) {
            0 => r#""""#.into(),
            1 => format!(r#""s{}""#, self.rng.next_u64()),
            2 => r#""nul\x00inside""#.into(),
            3 => r#""é ü 😀 \t \n""#.into(),
            4 => format!("big({}, 'a')", self.rng.below(1 << 17)),
            5 => "big(1048576, 'b')".into(),
            6 => "big(70000, 'c')".into(),
            7 => r#""strlen@GLIBC_2.2.5""#.into(),
            _ => r#""%s%s%s%s""#.into(),
        }
    }

    fn value(&mut self, depth: u32) -> String {
        match self.rng.below(if depth > 1 { 9 } else { 12 }) {
            0 | 1 => self.int(),
            2 => self.string(),
            3 => format!(
                "{}{}.{}",
                self.rng.pick(&["", "-"]),
                self.rng.below(1 << 40),
                self.rng.below(1000)
            ),
            4 => self.rng.pick(&["true", "false"]).to_string(),
            5 => self.rng.pick(&["'x'", "'\\x00'", "'😀'"]).to_string(),
            6 => "()".into(),
            7 => format!("blob({}, {})", self.rng.below(1 << 17), self.rng.below(256)),
            8 => self
                .rng
                .pick(&["1.0/0.0", "0.0/0.0", "-0.0", "1e308"])
                .to_string(),
            9 => format!("[{}, {}]", self.value(depth + 1), self.value(depth + 1)),
            10 => format!(
                "#{{a: {}, b: {}}}",
                self.value(depth + 1),
                self.value(depth + 1)
            ),
            _ => self
                .rng
                .pick(&["Fn(\"getpid\")", "attach(PID)", "|x| x"])
                .to_string(),
        }
    }

    /// A random value that is not an int.
    fn non_int(&mut self) -> String {
        loop {
            let v = self.value(1);
            if v.parse::<i64>().is_err() && !v.starts_with(['(', '-']) && v != "PID" {
                return v;
            }
        }
    }

    fn args(&mut self) -> String {
        let n = match self.rng.below(10) {
            0 => 17 + self.rng.below(4),
            1 => 7,
            _ => self.rng.below(5),
        };
        let items: Vec<String> = (0..n).map(|_| self.value(0)).collect();
        match self.rng.below(12) {
            0 => self.value(1),
            _ => format!("[{}]", items.join(", ")),
        }
    }

    fn name(&mut self) -> String {
        match self.rng.below(8) {
            0 => self.value(1),
            1 => format!(r#""no_such_function_{}""#, self.rng.below(1000)),
            2 => self.string(),
            _ => format!(r#""{}""#, self.rng.pick(FUNCTIONS)),
        }
    }

    /// An address: unmapped, random, or (for reads) anywhere in the
    /// fixture's scratch buffer.
    fn address(&mut self) -> String {
        match self.rng.below(4) {
            0 => self.int(),
            1 => format!("{}", self.t.num("scratch") + self.rng.below(70000)),
            _ => self.rng.pick(UNMAPPED).to_string(),
        }
    }

    /// A place writing to cannot harm: unmapped, or inside scratch with
    /// room for what `data` can be (at most 64 bytes written there).
    fn write_target(&mut self) -> (String, String) {
        if self.rng.below(2) == 0 {
            let at = self.t.num("scratch") + self.rng.below(self.t.num("scratch_len") - 64);
            let data = match self.rng.below(3) {
                0 => format!(r#""w{}""#, self.rng.below(1 << 40)),
                1 => format!("blob({}, 7)", self.rng.below(64)),
                _ => r#""""#.into(),
            };
            (at.to_string(), data)
        } else {
            let data = match self.rng.below(3) {
                0 => self.value(0),
                1 => self.string(),
                _ => format!("blob({}, 1)", self.rng.below(1 << 17)),
            };
            (self.rng.pick(UNMAPPED).to_string(), data)
        }
    }

    /// One random statement using a builtin.
    fn statement(&mut self) -> String {
        let recv = if self.rng.below(4) == 0 {
            "attach(PID)."
        } else {
            ""
        };
        match self.rng.below(17) {
            0..=3 => format!("{recv}call({}, {})", self.name(), self.args()),
            4 | 5 => {
                let which = match self.rng.below(4) {
                    0 => format!(r#""{}""#, self.rng.pick(SYSCALL_NAMES)),
                    1 => self.rng.pick(SYSCALL_NUMBERS).to_string(),
                    // Never a random int: that could be any system call.
                    2 => self.non_int(),
                    _ => format!(r#""no_such_syscall_{}""#, self.rng.below(100)),
                };
                format!("{recv}syscall({which}, {})", self.args())
            }
            6 => format!("{recv}sym({})", self.name()),
            7 | 8 => {
                let (addr, len) = (self.address(), self.length());
                format!("{recv}read({addr}, {len})")
            }
            9 => format!("{recv}read_cstr({})", self.address()),
            10 | 11 => {
                let (addr, data) = self.write_target();
                format!("{recv}write({addr}, {data})")
            }
            12 => self
                .rng
                .pick(&[
                    "freeze()",
                    "thaw()",
                    "errno()",
                    "freeze(); freeze()",
                    "thaw(); thaw()",
                ])
                .to_string(),
            13 => {
                let v = self.value(1);
                self.rng
                    .pick(&[
                        format!("attach({v})"),
                        "attach(-1)".to_string(),
                        "attach(0)".to_string(),
                        r#"attach("no-such-process-zz")"#.to_string(),
                        r#"attach("")"#.to_string(),
                        "detach(); attach(PID)".to_string(),
                    ])
                    .clone()
            }
            14 => match self.rng.below(3) {
                0 => format!("pgrep({})", self.value(1)),
                1 => format!("help({})", self.value(1)),
                // reach's own sleep: only invalid or tiny durations.
                _ => format!(
                    "pause({})",
                    self.rng.pick(&[
                        "-1",
                        "600001",
                        "9223372036854775807",
                        "1.5",
                        "\"x\"",
                        "()",
                        "0",
                        "2"
                    ])
                ),
            },
            _ => {
                let how = match self.rng.below(3) {
                    0 => self.rng.below(3).to_string(),
                    1 => self.int(),
                    _ => self.value(1),
                };
                let k = self.rng.below(24);
                let pick = self.rng.below(8);
                match pick {
                    0 => format!("{recv}fds()"),
                    1 => format!("{recv}threads()"),
                    2 => format!("{recv}signals()"),
                    3 => format!("{recv}maps()"),
                    4 => format!("{recv}status()"),
                    5 => format!("{}.shutdown({how})", self.value(1)),
                    // Any of the fixture's descriptors: its only sockets
                    // are spare ones, the rest are not sockets at all.
                    _ => format!("{recv}fds()[{k}].shutdown({how})"),
                }
            }
        }
    }
}

/// Defined in every script: a string of `n` copies of `c`.
const PRELUDE: &str = r#"fn big(n, c) { let s = ""; s.pad(n, c); s }
"#;

/// Whether a generated `attach(v)` could select another process: `v` is an
/// int literal that is not PID and not obviously invalid. Such cases are
/// skipped (reach truncates a pid to 32 bits, see
/// `an_out_of_range_pid_is_refused_not_truncated`), since a random number
/// may be a real process's pid.
fn may_attach_elsewhere(stmt: &str) -> bool {
    stmt.contains("attach(") && {
        let inner = stmt
            .split("attach(")
            .skip(1)
            .filter_map(|s| s.split(')').next())
            .collect::<Vec<_>>();
        inner.iter().any(|a| {
            let a = a.trim();
            a.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '(')
                && !matches!(a, "-1" | "0" | "PID")
        })
    }
}

fn fuzz_target() -> Target {
    let t = Target::fixture("rel_stress", &["2"]);
    assert!(wait_until(STATE_DEADLINE, || checker_stats(&t)
        .iter()
        .all(|&(n, _)| n > 0)));
    t
}

/// The target is intact: running, released, registers as they were, no
/// mapping added or removed.
fn assert_intact(t: &mut Target, maps_before: &str) {
    assert_registers_intact(t);
    let maps_now = maps(t.pid);
    assert_eq!(
        maps_now.lines().count(),
        maps_before.lines().count(),
        "mappings changed\nbefore:\n{maps_before}\nafter:\n{maps_now}"
    );
    assert_untouched(t);
}

fn seed() -> u64 {
    env_count("REACH_FUZZ_SEED", 0x5eed) as u64
}

#[test]
fn random_builtin_calls_in_batches_never_panic() {
    let cases = env_count("REACH_FUZZ_CASES", 400);
    let mut t = fuzz_target();
    let maps_before = maps(t.pid);
    let mut cases_gen = Gen {
        rng: Rng::new(seed()),
        t: &t,
    };
    const PER_RUN: usize = 100;
    let mut made = 0;
    let mut failed = 0;
    let mut batch_no = 0;
    while made < cases {
        let n = PER_RUN.min(cases - made);
        let stmts: Vec<String> = (0..n)
            .map(|_| {
                loop {
                    let s = cases_gen.statement();
                    if !may_attach_elsewhere(&s) {
                        break s;
                    }
                }
            })
            .collect();
        let mut script = String::from(PRELUDE);
        script.push_str("let failed = 0;\n");
        for s in &stmts {
            script.push_str(&format!("try {{ {s}; }} catch (e) {{ failed += 1; }}\n"));
        }
        script.push_str("thaw();\nfailed\n");
        let out = reach(&["--timeout", "2", "-p", &t.pid.to_string(), "-e", &script]);
        // A panic fails here (exit 101, "panicked"); so does an error that
        // escaped try/catch, which only a crash of the engine could cause.
        assert_eq!(
            out.code(),
            Some(0),
            "batch {batch_no} (seed {:#x}):\n{out:#?}\nscript:\n{script}",
            seed()
        );
        failed += out.stdout.trim().parse::<usize>().unwrap_or(0);
        made += n;
        batch_no += 1;
        assert!(
            checker_stats(cases_gen.t).iter().all(|&(_, bad)| bad == 0),
            "register mismatches after batch {batch_no}:\n{script}"
        );
    }
    eprintln!("{cases} cases in {batch_no} runs, {failed} raised an error");
    assert_intact(&mut t, &maps_before);
}

#[test]
fn random_builtin_calls_one_by_one_fail_cleanly() {
    let runs = env_count("REACH_FUZZ_CASES", 400) / 10;
    let mut t = fuzz_target();
    let maps_before = maps(t.pid);
    let mut cases_gen = Gen {
        rng: Rng::new(seed() ^ one_by_one()),
        t: &t,
    };
    let mut codes = std::collections::BTreeMap::<i32, usize>::new();
    for _ in 0..runs {
        let stmt = loop {
            let s = cases_gen.statement();
            if !may_attach_elsewhere(&s) {
                break s;
            }
        };
        let script = format!("{PRELUDE}{stmt}");
        let out = reach(&["--timeout", "2", "-p", &t.pid.to_string(), "-e", &script]);
        let code = out.code().unwrap_or(-1);
        *codes.entry(code).or_default() += 1;
        match code {
            0 => {}
            1 | 2 => {
                // One line, starting "reach: ", maybe one hint line.
                let lines: Vec<&str> = out.stderr.lines().filter(|l| !l.is_empty()).collect();
                assert!(
                    !lines.is_empty()
                        && lines[0].starts_with("reach: ")
                        && (lines.len() == 1 || (lines.len() == 2 && lines[1].starts_with("hint"))),
                    "{stmt}: error is not one line (plus a hint): {out:#?}"
                );
            }
            _ => panic!("{stmt}: exit {}: {out:#?}", describe(out.status)),
        }
    }
    eprintln!("{runs} single runs by exit status: {codes:?}");
    assert_intact(&mut t, &maps_before);
}

/// Keeps the one-by-one sequence apart from the batched one.
const fn one_by_one() -> u64 {
    0x1b1
}

#[test]
fn an_out_of_range_pid_is_refused_not_truncated() {
    let t = Target::fixture("target", &[]);
    // 2^32 + PID is not PID: as an i32 it would wrap to PID, and 2^32 + 1 to
    // init.
    let out = reach(&[
        "-e",
        &format!("attach({}).pid", (1i64 << 32) + t.pid as i64),
    ]);
    let code = out.code().unwrap_or(0);
    assert!(code == 1 || code == 2, "not refused: {out:#?}");
    assert_error(&out, code, &["pid"]);
    assert_untouched(&t);
}

/// Values for every numeric option.
const OPTION_VALUES: &[&str] = &[
    "0",
    "-1",
    "1e20",
    "-1e20",
    "nan",
    "inf",
    "-inf",
    "1e-300",
    "2147483648",
    "18446744073709551616",
    "99999999999999999999999999",
    "0x10",
    "1.5",
    "",
    " 3",
    "\u{663}",
];

/// What happens to reach's standard streams.
const STREAMS: &[&str] = &[
    "",
    ">&-",
    "2>&-",
    ">&- 2>&-",
    ">/dev/full 2>/dev/full",
    "<&-",
];

/// Expressions at the engine's limits, or refused by it.
const LIMIT_EXPRS: &[&str] = &[
    r#"call("getpid", [])"#,
    r#"call("no_such_function", [])"#,
    "blob(1 << 62)",
    "blob(-1)",
    r#"let s = ""; s.pad(1 << 40, "y"); s.len()"#,
    r#"import "x" as y; 1"#,
    "let a = []; a.pad(1 << 40, 0); 1",
    "1",
];

/// Runs `reach ARGS… STREAMS` through `sh`; its exit code, which must be
/// reach's own (0, 1 or 2), never a panic's 101 or an abort.
fn run_with_streams(args: &[String], streams: &str) -> i32 {
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(format!(r#"exec "$0" "$@" {streams}"#))
        .arg(reach_bin())
        .args(args);
    let out = spawn_command(sh, None).finish(REACH_DEADLINE);
    assert_no_panic(&out);
    let code = out.code().unwrap_or_else(|| {
        panic!(
            "reach {args:?} {streams}: killed by {}",
            describe(out.status)
        )
    });
    assert!(
        matches!(code, 0..=2),
        "reach {args:?} {streams}: exit {code}: {out:#?}"
    );
    code
}

#[test]
fn command_lines_with_huge_numbers_closed_streams_and_hostile_scripts_never_panic() {
    let cases = env_count("REACH_FUZZ_CASES", 400) / 10;
    let t = Target::fixture("target", &[]);
    let maps_before = maps(t.pid);
    let pid = t.pid.to_string();
    let mut rng = Rng::new(seed() ^ 0xc11);
    for _ in 0..cases {
        let option = *rng.pick(&["--timeout", "--thread", "-p"]);
        let mut args = vec![option.to_string(), rng.pick(OPTION_VALUES).to_string()];
        if option != "-p" {
            args.extend(["-p".to_string(), pid.clone()]);
        }
        args.extend(["-e".to_string(), rng.pick(LIMIT_EXPRS).to_string()]);
        let streams: &&str = rng.pick(STREAMS);
        run_with_streams(&args, streams);
    }
    // Scripts the operator did not mean: devices, a FIFO nobody writes,
    // a directory, names with control characters. Refused, at once.
    let dir = workdir("scripts");
    let fifo = dir.join("fifo.rhai");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let evil = dir.join("evil\n\x1b[2J.rhai");
    std::fs::write(&evil, "call(\"getpid\", [])").unwrap();
    for script in [
        "/dev/zero".into(),
        "/dev/urandom".into(),
        fifo.display().to_string(),
        dir.display().to_string(),
        format!("/proc/{pid}/mem"),
        dir.join("missing\x07.rhai").display().to_string(),
    ] {
        let out = reach(&["-p", &pid, &script]);
        assert_error(&out, 2, &["cannot read script"]);
    }
    // A real script under a hostile name runs; its name, when quoted, is
    // escaped.
    let out = reach(&["-p", &pid, evil.to_str().unwrap()]);
    assert_ok(&out);
    assert_eq!(out.stdout.trim(), pid);
    let out = reach(&["-p", &pid, &format!("{}x", evil.display())]);
    assert_error(&out, 2, &[r"evil\n\e[2J.rhaix"]);
    assert_eq!(maps(t.pid), maps_before);
    assert_untouched(&t);
}
