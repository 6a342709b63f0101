//! Building test programs. A fixture is compiled once per test run into
//! `target/tmp/fixtures`, under a name that carries a hash of its source,
//! flags and compiler: a build goes to a temporary name and is renamed into
//! place, so nothing ever executes a half-written file, and a source that
//! changed is rebuilt. Per-test builds (libraries with a chosen function)
//! go to a directory of their own from [`workdir`].

use super::{REACH_DEADLINE, output};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

pub fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where tests keep what they build and write.
pub fn tmpdir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// `tests/fixtures/FILE`.
pub fn fixture_source(file: &str) -> PathBuf {
    manifest_dir().join("tests/fixtures").join(file)
}

/// How each fixture in `tests/fixtures/NAME.c` is compiled (besides
/// `-O1 -g -Wall`).
fn fixture_flags(name: &str) -> &'static [&'static str] {
    match name {
        "target" | "rel_faults" => &["-pthread", "-rdynamic"],
        "regs" | "rel_stress" => &["-pthread", "-O1", "-mno-red-zone"],
        "blocked" | "seccomp" | "hostile" => &["-pthread"],
        "backtrace" => &["-pthread", "-O0"],
        "static_accept" | "pb_pipe_writer" => &["-static", "-s"],
        "libanswer_v1" | "libanswer_v2" => &["-shared", "-fPIC"],
        "libuser" => &["-ldl"],
        "pb_fake_signal" => &["-rdynamic"],
        _ => &[],
    }
}

/// Builds `tests/fixtures/NAME.c` (once per run) and returns the path of
/// the result (`NAME-HASH`, or `NAME-HASH.so` for a shared library).
pub fn fixture(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let src = fixture_source(&format!("{name}.c"));
    let mut args: Vec<String> = ["-O1", "-g", "-Wall"].map(String::from).to_vec();
    args.extend(fixture_flags(name).iter().map(|s| s.to_string()));
    let path = build_once("cc", name, &[src], &args);
    built.insert(name.to_string(), path.clone());
    path
}

/// Compiles `sources` with `compiler` and `args` into the fixture cache,
/// unless an identical build is there already; returns its path.
pub fn build_once(compiler: &str, name: &str, sources: &[PathBuf], args: &[String]) -> PathBuf {
    let mut hasher = std::hash::DefaultHasher::new();
    compiler.hash(&mut hasher);
    args.hash(&mut hasher);
    for src in sources {
        std::fs::read(src)
            .unwrap_or_else(|e| panic!("{}: {e}", src.display()))
            .hash(&mut hasher);
    }
    // Headers the fixtures include.
    if let Ok(h) = std::fs::read(fixture_source("regcheck.h")) {
        h.hash(&mut hasher);
    }
    let shared = args.iter().any(|a| a == "-shared");
    let file = format!(
        "{name}-{:016x}{}",
        hasher.finish(),
        if shared { ".so" } else { "" }
    );
    let dir = tmpdir().join("fixtures");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(&file);
    if out.exists() {
        return out;
    }
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let tmp = dir.join(format!(
        ".{file}.{}.{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    ));
    let mut cmd_args: Vec<String> = vec!["-o".into(), tmp.to_str().unwrap().into()];
    cmd_args.extend(sources.iter().map(|s| s.to_str().unwrap().to_string()));
    cmd_args.extend(args.iter().cloned());
    let refs: Vec<&str> = cmd_args.iter().map(String::as_str).collect();
    compile(compiler, &refs);
    std::fs::rename(&tmp, &out).unwrap();
    out
}

/// Builds the Go program in `tests/fixtures/DIR/main.go` (once per run,
/// cgo enabled), or `None` when Go is not installed (`.ci/run` installs
/// it).
pub fn go_fixture(dir: &str) -> Option<PathBuf> {
    if !super::have("go") {
        return None;
    }
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(dir) {
        return Some(path.clone());
    }
    let src = fixture_source(&format!("{dir}/main.go"));
    let mut hasher = std::hash::DefaultHasher::new();
    std::fs::read(&src).unwrap().hash(&mut hasher);
    let out = tmpdir()
        .join("fixtures")
        .join(format!("{dir}-{:016x}", hasher.finish()));
    if !out.exists() {
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        let tmp = out.with_extension(format!("tmp{}", std::process::id()));
        let result = output(
            Command::new("go")
                .args(["build", "-o"])
                .arg(&tmp)
                .arg(&src)
                .env("CGO_ENABLED", "1")
                .env("GOCACHE", tmpdir().join("gocache"))
                .env("GO111MODULE", "off"),
            REACH_DEADLINE * 5,
        );
        assert!(
            result.status.success(),
            "go build {dir} failed:\n{}",
            String::from_utf8_lossy(&result.stderr)
        );
        std::fs::rename(&tmp, &out).unwrap();
    }
    built.insert(dir.to_string(), out.clone());
    Some(out)
}

/// Runs a compiler (`cc`, `musl-gcc`, `objcopy`) with `args`; fails the
/// test with its output if it fails.
pub fn compile(compiler: &str, args: &[&str]) {
    let out = output(Command::new(compiler).args(args), REACH_DEADLINE);
    assert!(
        out.status.success(),
        "{compiler} {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh, empty directory for one test's files.
pub fn workdir(tag: &str) -> PathBuf {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let dir = tmpdir().join(format!(
        "work-{tag}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `sym_host` (loads the libraries named on its command line, then says
/// ready), built into `dir`.
pub fn build_host(dir: &Path) -> PathBuf {
    let out = dir.join("sym_host");
    let src = fixture_source("sym_host.c");
    compile(
        "cc",
        &[
            "-O0",
            "-o",
            out.to_str().unwrap(),
            src.to_str().unwrap(),
            "-ldl",
        ],
    );
    out
}

/// A shared library `dir/file` whose `func()` returns `value`; `pad` puts
/// 8 KiB of code before it.
pub fn build_lib(dir: &Path, file: &str, func: &str, value: i64, pad: bool) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let out = dir.join(file);
    let src = fixture_source("sym_lib.c");
    let func = format!("-DFUNC={func}");
    let value = format!("-DVALUE={value}");
    let mut args = vec![
        "-shared",
        "-fPIC",
        "-O1",
        &func,
        &value,
        "-o",
        out.to_str().unwrap(),
        src.to_str().unwrap(),
    ];
    if pad {
        args.push("-DPAD");
    }
    compile("cc", &args);
    out
}

/// `count` libraries `dir/libmany_N.so`, each with `many_fn_N()` returning
/// N, built one per CPU at a time.
pub fn build_many(dir: &Path, count: usize) -> Vec<PathBuf> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let file = format!("libmany_{i}.so");
                    build_lib(dir, &file, &format!("many_fn_{i}"), i as i64, false);
                }
            });
        }
    });
    (0..count)
        .map(|i| dir.join(format!("libmany_{i}.so")))
        .collect()
}

/// A hard link to `program` named `name` in a fresh directory: a process
/// started through it is called `name` (its comm and argv[0]), without
/// writing a copy that a concurrent fork could hold open.
pub fn named_link(program: &Path, name: &str) -> PathBuf {
    let dir = workdir(name);
    let path = dir.join(name);
    std::fs::hard_link(program, &path).unwrap();
    path
}
