//! Objects are read as the target maps them: deleted, replaced on disk, or
//! in another mount namespace, the call runs the mapped code.

use crate::support::*;
use std::process::Command;

#[test]
fn a_deleted_library_still_resolves() {
    let dir = workdir("deleted");
    let lib = build_lib(&dir, "libgone.so", "gone_fn", 41, false);
    let host = build_host(&dir);
    let mut cmd = Command::new(&host);
    cmd.arg(&lib);
    let target = Target::spawn(cmd);
    std::fs::remove_file(&lib).unwrap();
    assert_eq!(evals_ok(target.pid, &[r#"call("gone_fn")"#]), "41");
    assert_eq!(evals_ok(target.pid, &[r#"call("libgone:gone_fn")"#]), "41");
}

#[test]
fn a_library_replaced_on_disk_resolves_to_the_mapped_build() {
    let dir = workdir("replaced");
    let lib = build_lib(&dir, "libup.so", "up_fn", 1, false);
    let host = build_host(&dir);
    let mut cmd = Command::new(&host);
    cmd.arg(&lib);
    let target = Target::spawn(cmd);
    // An upgrade: a new build, with the function at another offset,
    // renamed over the old path.
    let staging = dir.join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let new = build_lib(&staging, "libup.so", "up_fn", 2, true);
    std::fs::rename(&new, &lib).unwrap();
    assert_eq!(evals_ok(target.pid, &[r#"call("up_fn")"#]), "1");
    // A process started now gets the new build.
    let mut cmd = Command::new(&host);
    cmd.arg(&lib);
    let fresh = Target::spawn(cmd);
    assert_eq!(evals_ok(fresh.pid, &[r#"call("up_fn")"#]), "2");
}

#[test]
fn a_target_in_its_own_mount_namespace_uses_its_own_file() {
    if !have("unshare") || !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (for a mount namespace) and unshare (util-linux)");
        return;
    }
    let dir = workdir("mountns");
    let lib = build_lib(&dir, "libns.so", "ns_fn", 1, false);
    let theirs = build_lib(&dir, "libns_container.so", "ns_fn", 2, true);
    let host = build_host(&dir);
    // In its own mount namespace the target sees `theirs` at `lib`'s path.
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount --bind "$1" "$2" && exec "$3" "$2""#)
        .arg("sh")
        .arg(&theirs)
        .arg(&lib)
        .arg(&host);
    let target = Target::spawn(cmd);
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", target.pid)).unwrap();
    assert!(maps.contains(lib.to_str().unwrap()), "{maps}");
    assert_eq!(evals_ok(target.pid, &[r#"call("ns_fn")"#]), "2");
}

#[test]
fn a_stripped_library_finds_its_debug_file_by_debuglink() {
    if !have("objcopy") {
        eprintln!("skipped: objcopy (binutils) is not installed");
        return;
    }
    let dir = workdir("debuglink");
    let lib = dir.join("libdbg.so");
    let src = fixture_source("sym_lib.c");
    // No build-id: only .gnu_debuglink can lead to the debug file.
    compile(
        "cc",
        &[
            "-shared",
            "-fPIC",
            "-g",
            "-DFUNC=dbg_fn",
            "-DVALUE=3",
            "-Wl,--build-id=none",
            "-o",
            lib.to_str().unwrap(),
            src.to_str().unwrap(),
        ],
    );
    let lib_s = lib.to_str().unwrap();
    let debug = dir.join(".debug");
    std::fs::create_dir_all(&debug).unwrap();
    let debug_file = debug.join("libdbg.so.debug");
    let debug_s = debug_file.to_str().unwrap();
    compile("objcopy", &["--only-keep-debug", lib_s, debug_s]);
    compile("objcopy", &["--strip-all", lib_s]);
    compile(
        "objcopy",
        &[&format!("--add-gnu-debuglink={debug_s}"), lib_s],
    );
    let host = build_host(&dir);
    let mut cmd = Command::new(&host);
    cmd.arg(&lib);
    let target = Target::spawn(cmd);
    assert_eq!(
        evals_ok(target.pid, &[r#"call("libdbg:sym_private")"#]),
        "30"
    );
}

/// `setpriv` to user and group nobody: no CAP_SYS_ADMIN, so no
/// `/proc/PID/map_files`.
const AS_NOBODY: &[&str] = &[
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
];

#[test]
fn without_privileges_deleted_and_replaced_libraries_resolve_from_memory() {
    if !have("setpriv") || !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (to switch to nobody) and setpriv (util-linux)");
        return;
    }
    let dir = workdir("unprivileged");
    let gone = build_lib(&dir, "libgone2.so", "gone2_fn", 5, false);
    let up = build_lib(&dir, "libup2.so", "up2_fn", 1, false);
    let host = build_host(&dir);
    let mut cmd = Command::new(AS_NOBODY[0]);
    cmd.args(&AS_NOBODY[1..]).arg(&host).arg(&gone).arg(&up);
    let target = Target::spawn(cmd);
    std::fs::remove_file(&gone).unwrap();
    let staging = dir.join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let new = build_lib(&staging, "libup2.so", "up2_fn", 2, true);
    std::fs::rename(&new, &up).unwrap();
    let out = reach_wrapped(
        AS_NOBODY,
        &[
            "-p",
            &target.pid.to_string(),
            "-e",
            r#"call("gone2_fn") * 10 + call("up2_fn")"#,
        ],
    );
    assert_ok(&out);
    assert_eq!(out.stdout.trim(), "51");
}
