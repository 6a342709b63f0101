//! What the target controls cannot hang, crash or fool reach: its
//! libraries (a hash chain that loops, a debug link naming a FIFO or a
//! path outside the library's directory, a file truncated under reach)
//! and its names (file names, socket paths, thread names full of control
//! characters and escape sequences).

use crate::support::*;
use std::path::Path;
use std::process::Command;

/// `sym_host` with `lib` loaded, started from `dir`.
fn host_with(dir: &Path, lib: &Path) -> Target {
    let host = build_host(dir);
    let mut cmd = Command::new(&host);
    cmd.arg(lib);
    Target::spawn(cmd)
}

/// The file offset and size of the first section of type `sh_type` in the
/// ELF64 file `bytes`.
fn section(bytes: &[u8], sh_type: u32) -> Option<(usize, usize)> {
    let u16_at = |at: usize| u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap()) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    let (shoff, shentsize, shnum) = (u64_at(0x28), u16_at(0x3a), u16_at(0x3c));
    (0..shnum)
        .map(|i| shoff + i * shentsize)
        .find(|&sh| u32_at(sh + 4) == sh_type)
        .map(|sh| (u64_at(sh + 0x18), u64_at(sh + 0x20)))
}

/// Overwrite `at` in `path` in place (the same inode, so the target's
/// mapping and `/proc/PID/map_files` see it too).
fn patch(path: &Path, at: usize, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, at as u64).unwrap();
}

/// A library whose System V hash chains all loop on themselves (patched
/// after the target loaded it): a lookup of a name it lacks ends, and
/// says "not found"; its functions are still found.
#[test]
fn a_hash_chain_that_loops_ends() {
    let dir = workdir("hashloop");
    let lib = dir.join("libloop.so");
    let src = fixture_source("sym_lib.c");
    compile(
        "cc",
        &[
            "-shared",
            "-fPIC",
            "-DFUNC=loop_fn",
            "-DVALUE=12",
            "-Wl,--hash-style=sysv",
            "-o",
            lib.to_str().unwrap(),
            src.to_str().unwrap(),
        ],
    );
    let target = host_with(&dir, &lib);
    let bytes = std::fs::read(&lib).unwrap();
    const SHT_HASH: u32 = 5;
    let (at, _) = section(&bytes, SHT_HASH).expect("a .hash section");
    let word = |i: usize| u32::from_le_bytes(bytes[at + 4 * i..at + 4 * i + 4].try_into().unwrap());
    let (nbucket, nchain) = (word(0) as usize, word(1) as usize);
    let chains = at + 8 + 4 * nbucket;
    for i in 1..nchain {
        patch(&lib, chains + 4 * i, &(i as u32).to_le_bytes());
    }
    let pid = target.pid.to_string();
    let out = reach(&["-p", &pid, "-e", r#"sym("libloop:no_such_function")"#]);
    assert_error(&out, 1, &["not found"]);
    assert_eq!(eval_ok(target.pid, r#"call("libloop:loop_fn", [])"#), "12");
    assert_untouched(&target);
}

/// A stripped library whose debug link names a FIFO: reach never blocks
/// opening it (nor with the target frozen meanwhile).
#[test]
fn a_debug_link_naming_a_fifo_never_blocks() {
    if !have("objcopy") {
        eprintln!("skipped: objcopy (binutils) is not installed");
        return;
    }
    let dir = workdir("debugfifo");
    let lib = build_lib(&dir, "libfifo.so", "fifo_fn", 4, false);
    let lib_s = lib.to_str().unwrap();
    let link = dir.join("fifo.debug");
    std::fs::write(&link, b"not a debug file").unwrap();
    compile("objcopy", &["--strip-all", lib_s]);
    compile(
        "objcopy",
        &[&format!("--add-gnu-debuglink={}", link.display()), lib_s],
    );
    std::fs::remove_file(&link).unwrap();
    nix::unistd::mkfifo(&link, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let target = host_with(&dir, &lib);
    let pid = target.pid.to_string();
    for expr in [
        r#"sym("libfifo:no_such_function")"#,
        r#"freeze(); sym("libfifo:no_such_function")"#,
    ] {
        let out = reach(&["-p", &pid, "-e", expr]);
        assert_error(&out, 1, &["not found"]);
        assert_running(&target);
    }
    assert_eq!(eval_ok(target.pid, r#"call("fifo_fn", [])"#), "4");
}

/// A debug link is a file name: one that climbs out of the library's
/// directory (`../planted.debug`) is not followed, even to a valid debug
/// file with the right checksum — while the same file under a plain name
/// is (the control).
#[test]
fn a_debug_link_that_climbs_out_of_its_directory_is_not_followed() {
    if !have("objcopy") {
        eprintln!("skipped: objcopy (binutils) is not installed");
        return;
    }
    let dir = workdir("debugclimb");
    let libs = dir.join("libs");
    std::fs::create_dir_all(&libs).unwrap();
    let lib = build_lib(&libs, "libclimb.so", "climb_fn", 6, false);
    let lib_s = lib.to_str().unwrap();
    // Same length as "../planted.debug", so the name can be patched in.
    let plain = libs.join("__-planted.debug");
    let planted = dir.join("planted.debug");
    compile(
        "objcopy",
        &["--only-keep-debug", lib_s, plain.to_str().unwrap()],
    );
    std::fs::copy(&plain, &planted).unwrap();
    compile("objcopy", &["--strip-all", lib_s]);
    compile(
        "objcopy",
        &[&format!("--add-gnu-debuglink={}", plain.display()), lib_s],
    );
    let target = host_with(&dir, &lib);
    let private = r#"call("libclimb:sym_private", [])"#;
    assert_eq!(eval_ok(target.pid, private), "60", "the control failed");

    std::fs::remove_file(&plain).unwrap();
    let bytes = std::fs::read(&lib).unwrap();
    let name = b"__-planted.debug\0";
    let at = bytes
        .windows(name.len())
        .position(|w| w == name)
        .expect("the debug link's name");
    patch(&lib, at, b"../");
    let out = eval(target.pid, private);
    assert_error(&out, 1, &["sym_private", "not found"]);
    assert_untouched(&target);
}

/// A library truncated by the target after loading it (reach parses what
/// is left, or the target's memory) — and truncated and restored over and
/// over while reach reads it: reach fails cleanly or succeeds, never dies
/// of SIGBUS.
#[test]
fn a_library_truncated_under_reach_never_crashes_it() {
    let dir = workdir("truncated");
    let lib = build_lib(&dir, "libtrunc.so", "trunc_fn", 8, false);
    let whole = std::fs::read(&lib).unwrap();
    let target = host_with(&dir, &lib);
    let pid = target.pid.to_string();
    let resize = |len: usize| {
        let file = std::fs::OpenOptions::new().write(true).open(&lib).unwrap();
        file.set_len(len as u64).unwrap();
        if len > 0 {
            use std::os::unix::fs::FileExt;
            file.write_all_at(&whole[..len], 0).unwrap();
        }
    };
    resize(100);
    for expr in [r#"sym("libtrunc:trunc_fn")"#, r#"sym("no_such_function")"#] {
        let out = reach(&["-p", &pid, "-e", expr]);
        assert!(matches!(out.code(), Some(0 | 1)), "{out:#?}");
        assert_no_panic(&out);
    }
    // Now flip its size while reach reads it.
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                resize([0, 64, 4096, whole.len()][i % 4]);
                i += 1;
                pause(std::time::Duration::from_micros(200));
            }
        });
        for _ in 0..20 {
            let out = reach(&["-p", &pid, "-e", r#"sym("libtrunc:trunc_fn")"#]);
            assert!(matches!(out.code(), Some(0 | 1)), "{out:#?}");
            assert_no_panic(&out);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    resize(whole.len());
    assert_eq!(eval_ok(target.pid, r#"call("trunc_fn", [])"#), "8");
    assert_untouched(&target);
}

/// Control characters the target put in names never reach the terminal
/// raw: `fds()`, `threads()` and the sockets playbook show them escaped,
/// one row per descriptor or thread; `--json` keeps them exact.
#[test]
fn names_with_control_characters_are_escaped() {
    let dir = workdir("names");
    let mut cmd = Command::new(fixture("hostile"));
    cmd.arg("names").arg(&dir);
    let target = Target::spawn(cmd);
    let pid = target.pid.to_string();
    let raw = |s: &str| s.chars().any(|c| c.is_control() && c != '\n') || s.contains('\u{202e}');

    let fds = eval_ok(target.pid, "fds()");
    assert!(!raw(&fds), "{fds:?}");
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    assert_eq!(fds.lines().count(), open + 1, "a forged row: {fds}");
    assert!(fds.contains(r"evil\n  7  file  passwords\e[2J"), "{fds}");
    assert!(fds.contains(r"s\e]0;pwned\x07\u{202e}"), "{fds}");

    let threads = eval_ok(target.pid, "threads()");
    assert!(!raw(&threads), "{threads:?}");
    assert_eq!(threads.lines().count(), 3, "a forged row: {threads}");
    assert!(threads.contains(r"\e[31mred\nrow"), "{threads}");
    assert!(threads.contains(r"\e[2Jmain\r"), "{threads}");

    let out = reach(&["-p", &pid, "sockets"]);
    assert_ok(&out);
    assert!(!raw(&out.stdout), "{:?}", out.stdout);

    let json = reach(&["-p", &pid, "--json", "-e", "threads()"]);
    assert_ok(&json);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"\x1b[31mred\nrow"), "{names:?}");
    assert_untouched(&target);
}
