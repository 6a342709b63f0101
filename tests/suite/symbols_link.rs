//! Symbol lookup in the dynamic linker's order: libraries loaded late,
//! the same name in two libraries, static functions, no symbols at all.

use crate::support::*;
use std::process::Command;

#[test]
fn a_library_dlopened_after_the_first_lookup_is_found_and_called() {
    let dir = workdir("dlopen_late");
    let host = build_host(&dir);
    let late = build_lib(&dir, "liblate.so", "late_answer", 42, false);
    let target = Target::spawn(Command::new(&host));
    // One reach process: the first lookup misses (and builds its view of
    // the target), then the target loads the library, then it is found.
    let script = format!(
        r#"
        let before = "found";
        try {{ sym("late_answer"); }} catch {{ before = "missing"; }}
        let handle = call("dlopen", ["{}", 2]);
        before + " " + (handle != 0) + " " + call("late_answer")
        "#,
        late.display()
    );
    assert_eq!(evals_ok(target.pid, &[&script]), "missing true 42");
}

#[test]
fn the_dynamic_linkers_pick_wins_and_a_qualified_name_gets_the_other() {
    let dir = workdir("two_libs");
    let one = build_lib(&dir, "libone.so", "which_one", 1, false);
    build_lib(&dir, "libtwo.so", "which_one", 2, false);
    // Needed in the order two, one: ld.so loads libtwo first, so it sits
    // at the higher address (mmap grows down) and mapping order alone
    // would pick libone.
    let host = dir.join("sym_host_linked");
    let src = fixture_source("sym_host.c");
    let libdir = format!("-L{}", dir.display());
    let rpath = format!("-Wl,-rpath,{}", dir.display());
    compile(
        "cc",
        &[
            "-o",
            host.to_str().unwrap(),
            src.to_str().unwrap(),
            "-Wl,--no-as-needed",
            &libdir,
            "-ltwo",
            "-lone",
            &rpath,
            "-ldl",
        ],
    );
    let target = Target::spawn(Command::new(&host));
    let pid = target.pid;
    // dlsym(RTLD_DEFAULT, …) in the target is the dynamic linker's pick.
    let same = r#"sym("which_one") == call("dlsym", [0, "which_one"])"#;
    assert_eq!(evals_ok(pid, &[same]), "true");
    assert_eq!(evals_ok(pid, &[r#"call("which_one")"#]), "2");
    assert_eq!(evals_ok(pid, &[r#"call("libone.so:which_one")"#]), "1");
    assert_eq!(evals_ok(pid, &[r#"call("libtwo:which_one")"#]), "2");
    let full = format!(r#"call("{}:which_one")"#, one.display());
    assert_eq!(evals_ok(pid, &[&full]), "1");
    let err = evals_err(pid, &[r#"sym("nosuchlib:which_one")"#]);
    assert!(err.contains("no object matching \"nosuchlib\""), "{err}");
    assert!(err.contains("libone.so"), "{err}");
}

#[test]
fn an_ambiguous_qualifier_lists_the_candidates() {
    let dir = workdir("ambiguous");
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::create_dir_all(dir.join("b")).unwrap();
    let a = build_lib(&dir.join("a"), "libsame.so", "same_fn", 1, false);
    let b = build_lib(&dir.join("b"), "libsame.so", "same_fn", 2, false);
    let host = build_host(&dir);
    let mut cmd = Command::new(&host);
    cmd.arg(&a).arg(&b);
    let target = Target::spawn(cmd);
    let err = evals_err(target.pid, &[r#"sym("libsame.so:same_fn")"#]);
    assert!(err.contains("matches 2 objects"), "{err}");
    assert!(err.contains(&a.display().to_string()), "{err}");
    assert!(err.contains(&b.display().to_string()), "{err}");
    let by_path = format!(r#"call("{}:same_fn")"#, b.display());
    assert_eq!(evals_ok(target.pid, &[&by_path]), "2");
}

#[test]
fn a_static_function_of_a_non_stripped_program_is_called() {
    let dir = workdir("static_fn");
    let host = build_host(&dir);
    let target = Target::spawn(Command::new(&host));
    assert_eq!(
        evals_ok(target.pid, &[r#"call("secret_static", [5])"#]),
        "16"
    );
    assert_eq!(
        evals_ok(target.pid, &[r#"call("sym_host:secret_static", [1])"#]),
        "4"
    );
}

#[test]
fn a_misspelt_name_gets_near_misses() {
    let dir = workdir("near_miss");
    let host = build_host(&dir);
    let target = Target::spawn(Command::new(&host));
    let err = evals_err(target.pid, &[r#"sym("shutdwn")"#]);
    assert!(err.contains("did you mean shutdown (libc.so.6)"), "{err}");
    let err = evals_err(target.pid, &[r#"sym("secret_statik")"#]);
    assert!(err.contains("secret_static (sym_host)"), "{err}");
}

#[test]
fn a_stripped_static_binary_says_so_and_suggests_syscall() {
    let dir = workdir("stripped_static");
    let out = dir.join("sym_blocked_static");
    let src = fixture_source("sym_blocked.c");
    compile(
        "cc",
        &[
            "-static",
            "-s",
            "-o",
            out.to_str().unwrap(),
            src.to_str().unwrap(),
        ],
    );
    let target = Target::spawn(Command::new(&out));
    let err = evals_err(target.pid, &[r#"call("getpid")"#]);
    assert!(err.contains("has no symbol table"), "{err}");
    assert!(err.contains("syscall(\"getpid\""), "{err}");
    let pid = evals_ok(target.pid, &[r#"syscall("getpid", [])"#]);
    assert_eq!(pid, target.pid.to_string());
}

#[test]
fn maps_lists_the_libraries() {
    let dir = workdir("maps");
    let lib = build_lib(&dir, "libmapped.so", "mapped_fn", 7, false);
    let host = build_host(&dir);
    let mut cmd = Command::new(&host);
    cmd.arg(&lib);
    let target = Target::spawn(cmd);
    let expr = r#"let m = maps().filter(|m| m.path.ends_with("libmapped.so"));
        m.len() > 0 && m[0].start < m[0].end && m[0].inode > 0 && m[0].offset == 0"#;
    assert_eq!(evals_ok(target.pid, &[expr]), "true");
    let count = evals_ok(target.pid, &["attach(PID).maps().len() > 5"]);
    assert_eq!(count, "true");
}

#[test]
fn a_library_unloaded_and_replaced_at_the_same_place_is_noticed() {
    let dir = workdir("reload");
    let first = build_lib(&dir, "libfirst.so", "reload_fn", 1, false);
    let second = build_lib(&dir, "libsecond.so", "reload_fn", 2, true);
    let host = build_host(&dir);
    let target = Target::spawn(Command::new(&host));
    // One reach process: the answer for reload_fn is remembered, then its
    // library is unloaded and another one (likely at the same address)
    // defines the name.
    let script = format!(
        r#"
        let h = call("dlopen", ["{}", 2]);
        let a = call("reload_fn");
        call("dlclose", [h]);
        call("dlopen", ["{}", 2]);
        let b = call("reload_fn");
        a + " " + b
        "#,
        first.display(),
        second.display()
    );
    assert_eq!(evals_ok(target.pid, &[&script]), "1 2");
}

#[test]
fn versions_and_ifuncs_resolve_as_the_linker_would() {
    let dir = workdir("versions");
    let host = build_host(&dir);
    let target = Target::spawn(Command::new(&host));
    let pid = target.pid;
    // glibc keeps memcpy@GLIBC_2.2.5 (really memmove) beside the default
    // memcpy@@GLIBC_2.14.
    let exprs = [
        r#"sym("memcpy") == sym("memcpy@@GLIBC_2.14")"#,
        r#"sym("memcpy@GLIBC_2.2.5") != sym("memcpy")"#,
        r#"sym("libc.so.6:memcpy@GLIBC_2.14") == sym("memcpy")"#,
    ];
    for expr in exprs {
        assert_eq!(evals_ok(pid, &[expr]), "true", "{expr}");
    }
    // strlen is an IFUNC: its resolver is called, then what it returns.
    assert_eq!(evals_ok(pid, &[r#"call("strlen", ["hello"])"#]), "5");
    let err = evals_err(pid, &[r#"sym("memcpy@GLIBC_9.9")"#]);
    assert!(
        err.contains(
            "did you mean one of: memcpy@@GLIBC_2.14 (libc.so.6), memcpy@GLIBC_2.2.5 (libc.so.6)"
        ),
        "{err}"
    );
}

#[test]
fn a_static_non_stripped_program_resolves_through_its_symtab() {
    let dir = workdir("static_symtab");
    let out = dir.join("sym_blocked_static_symtab");
    let src = fixture_source("sym_blocked.c");
    compile(
        "cc",
        &[
            "-static",
            "-o",
            out.to_str().unwrap(),
            src.to_str().unwrap(),
        ],
    );
    let target = Target::spawn(Command::new(&out));
    let ready = target.ready.clone();
    let fd: i32 = ready.strip_prefix("ready ").unwrap().parse().unwrap();
    let pid = target.pid;
    assert_eq!(evals_ok(pid, &[r#"call("getpid")"#]), pid.to_string());
    // strlen is an IFUNC in static glibc too.
    assert_eq!(evals_ok(pid, &[r#"call("strlen", ["abcd"])"#]), "4");
    // Not linked in, so not there: the error points at syscall().
    let shutdown = format!(r#"call("shutdown", [{fd}, SHUT_RDWR])"#);
    let err = evals_err(pid, &[&shutdown]);
    assert!(err.contains("syscall(\"shutdown\""), "{err}");
    let shutdown = format!(r#"syscall("shutdown", [{fd}, SHUT_RDWR])"#);
    assert_eq!(evals_ok(pid, &[&shutdown]), "0");
    assert_eq!(target.line(), "unstuck 0");
}
