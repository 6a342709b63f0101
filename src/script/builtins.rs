//! The one table of builtins. Each entry registers itself, and the same
//! entries drive `help()`, REPL completion and the README's API list, so
//! they cannot drift apart.

use super::address::{Address, to_addr};
use super::args::{describe, to_args, type_name};
use super::report::Action;
use super::{Session, Shared, TargetHandle};
use crate::process::{self, Target, procinfo};
use rhai::{Array, Blob, Dynamic, Engine, EvalAltResult, Module, Position};
use std::str::FromStr;

/// Rhai reserves the name `call` for function pointers (`f.call(x)`), so the
/// tokenizer renames the identifier `call` to this before parsing (see
/// `engine.rs`). Messages map it back.
pub const CALL_FN: &str = "remote_call";

pub struct Builtin {
    pub name: &'static str,
    pub signature: &'static str,
    pub summary: &'static str,
    pub example: &'static str,
    register: fn(&mut Engine, &Shared),
}

pub(super) type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "attach",
        signature: "attach(pid | \"name\") -> Target",
        summary: "select a process as the current target (checks it can be traced; does not stop it)",
        example: "let t = attach(1234);",
        register: reg_attach,
    },
    Builtin {
        name: "detach",
        signature: "detach()  |  t.detach()",
        summary: "release the current target, thawing it if frozen",
        example: "detach();",
        register: reg_detach,
    },
    Builtin {
        name: "call",
        signature: "call(name, [args]) -> int  |  t.call(name, [args])",
        summary: "call a function in the target; ints, bools, strings and blobs as arguments; returns the C return value",
        example: "call(\"shutdown\", [4, SHUT_RDWR])",
        register: reg_call,
    },
    Builtin {
        name: "use_thread",
        signature: "use_thread(tid)  |  t.use_thread(tid)",
        summary: "run later calls and system calls on thread tid (0: let reach pick a sleeping one, the main thread first)",
        example: "use_thread(threads()[1].tid); call(\"getpid\", [])",
        register: reg_use_thread,
    },
    Builtin {
        name: "errno",
        signature: "errno() -> int  |  t.errno()",
        summary: "the calling thread's errno right after the last call()",
        example: "call(\"close\", [9999]); errno()  // 9 (EBADF)",
        register: reg_errno,
    },
    Builtin {
        name: "syscall",
        signature: "syscall(name | nr, [args]) -> int  |  t.syscall(...)",
        summary: "make a raw system call in the target (works without libc); returns the kernel's value, -errno on failure",
        example: "syscall(\"shutdown\", [4, 2])",
        register: reg_syscall,
    },
    Builtin {
        name: "sym",
        signature: "sym(name) -> int  |  t.sym(name)",
        summary: "address of a symbol in the target, found as its dynamic linker would; name@VERSION and OBJECT:name (libc.so.6:malloc, libc:malloc) accepted",
        example: "sym(\"libc:malloc\")",
        register: reg_sym,
    },
    Builtin {
        name: "hex",
        signature: "hex(n) -> string",
        summary: "an int or address as 0x…; addresses (from sym(), maps()) print that way already and compute as ints",
        example: "hex(sym(\"malloc\") + 16)",
        register: super::address::register_hex,
    },
    Builtin {
        name: "read",
        signature: "read(addr, len) -> blob  |  t.read(addr, len)",
        summary: "read target memory (never stops it)",
        example: "read(sym(\"environ\"), 8)",
        register: reg_read,
    },
    Builtin {
        name: "read_cstr",
        signature: "read_cstr(addr) -> string  |  t.read_cstr(addr)",
        summary: "read a NUL-terminated string from target memory",
        example: "read_cstr(call(\"getenv\", [\"HOME\"]))",
        register: reg_read_cstr,
    },
    Builtin {
        name: "write",
        signature: "write(addr, blob | string)  |  t.write(addr, data)",
        summary: "write target memory (a string is written with its NUL terminator)",
        example: "let b = call(\"malloc\", [16]); write(b, \"hello\")",
        register: reg_write,
    },
    Builtin {
        name: "maps",
        signature: "maps() -> array of map  |  t.maps()",
        summary: "the target's memory mappings: start, end, perms, offset, dev, inode, path (never stops it)",
        example: "maps().filter(|m| m.path.contains(\"libc\"))",
        register: reg_maps,
    },
    Builtin {
        name: "status",
        signature: "status() -> map  |  t.status()",
        summary: "the fields of /proc/PID/status as strings (State, TracerPid, SigIgn, …); never stops the target",
        example: "parse_int(status().SigIgn, 16) & (1 << (SIGPIPE - 1)) != 0",
        register: reg_status,
    },
    Builtin {
        name: "freeze",
        signature: "freeze()  |  t.freeze()",
        summary: "stop every thread of the target and keep it stopped across operations until thaw()",
        example: "freeze(); call(\"getpid\", []); call(\"getppid\", []); thaw();",
        register: reg_freeze,
    },
    Builtin {
        name: "thaw",
        signature: "thaw()  |  t.thaw()",
        summary: "release a frozen target exactly as it was",
        example: "thaw();",
        register: reg_thaw,
    },
    Builtin {
        name: "fds",
        signature: "fds() -> array of Fd  |  t.fds()",
        summary: "the target's open descriptors with socket details and waiting threads (never stops it)",
        example: "fds().filter(|f| f.state == \"CLOSE_WAIT\")",
        register: super::fds::reg_fds,
    },
    Builtin {
        name: "shutdown",
        signature: "f.shutdown(how) -> int",
        summary: "shut socket f down from outside the target (pidfd_getfd; an injected call where unavailable)",
        example: "fds().filter(|f| f.remote == \"10.0.0.7:443\")[0].shutdown(SHUT_RDWR)",
        register: super::fds::reg_shutdown,
    },
    Builtin {
        name: "is_to",
        signature: "f.is_to(remote) -> bool",
        summary: "is socket f connected to remote: host:port, a host or :port (a malformed address is an error)",
        example: "fds().filter(|f| f.is_to(\":443\"))",
        register: super::fds::reg_is_to,
    },
    Builtin {
        name: "remote_filter",
        signature: "remote_filter(remote) -> map",
        summary: "check a remote-address filter (host:port, a host or :port) and split it: #{host, port}, () where not given",
        example: "remote_filter(\"[2001:db8::1]:443\").port  // 443",
        register: super::fds::reg_remote_filter,
    },
    Builtin {
        name: "destroy",
        signature: "f.destroy()",
        summary: "abort TCP connection f with a reset (SOCK_DESTROY, like ss -K and tcpdrop); needs CAP_NET_ADMIN",
        example: "fds().filter(|f| f.remote == \"10.0.0.7:443\")[0].destroy()",
        register: super::fds::reg_destroy,
    },
    Builtin {
        name: "threads",
        signature: "threads() -> array of Thread  |  t.threads()",
        summary: "each thread: tid, name, state, the system call it is blocked in and the fds it waits on",
        example: "threads().filter(|t| t.syscall == \"recvfrom\")",
        register: super::fds::reg_threads,
    },
    Builtin {
        name: "stacks",
        signature: "stacks() -> array of Stack  |  t.stacks()",
        summary: "each thread's native stack, innermost frame first: address, function+offset, object, file:line; a thread blocked in a system call is read without a stop, others are stopped one at a time for a copy",
        example: "stacks().filter(|s| s.syscall == \"read\")[0].frames[1].function",
        register: super::stacks::reg_stacks,
    },
    Builtin {
        name: "stack",
        signature: "stack(tid) -> Stack  |  t.stack(tid)",
        summary: "one thread's native stack (see stacks())",
        example: "stack(PID).frames.map(|f| f.function)",
        register: super::stacks::reg_stack,
    },
    Builtin {
        name: "signals",
        signature: "signals() -> map of Signal  |  t.signals()",
        summary: "each signal's disposition: ignored, caught, blocked, pending (from /proc, no stop)",
        example: "signals().SIGPIPE.ignored",
        register: super::fds::reg_signals,
    },
    Builtin {
        name: "pgrep",
        signature: "pgrep(pattern) -> array of int",
        summary: "pids whose name is pattern or whose command line contains it",
        example: "pgrep(\"nginx\")",
        register: reg_pgrep,
    },
    Builtin {
        name: "pause",
        signature: "pause(ms)",
        summary: "wait ms milliseconds in reach (the target keeps running); Ctrl-C ends it",
        example: "pause(200); fds()",
        register: reg_pause,
    },
    Builtin {
        name: "help",
        signature: "help()  |  help(\"name\")",
        summary: "list the builtins, or show one with an example",
        example: "help(\"call\")",
        register: reg_help,
    },
];

/// Constants scripts can use by name: the usual libc values on x86-64.
pub const CONSTANTS: &[(&str, i64)] = &[
    ("SHUT_RD", libc::SHUT_RD as i64),
    ("SHUT_WR", libc::SHUT_WR as i64),
    ("SHUT_RDWR", libc::SHUT_RDWR as i64),
    ("SIG_DFL", 0),
    ("SIG_IGN", 1),
    ("SIGHUP", libc::SIGHUP as i64),
    ("SIGINT", libc::SIGINT as i64),
    ("SIGQUIT", libc::SIGQUIT as i64),
    ("SIGABRT", libc::SIGABRT as i64),
    ("SIGKILL", libc::SIGKILL as i64),
    ("SIGUSR1", libc::SIGUSR1 as i64),
    ("SIGSEGV", libc::SIGSEGV as i64),
    ("SIGUSR2", libc::SIGUSR2 as i64),
    ("SIGPIPE", libc::SIGPIPE as i64),
    ("SIGALRM", libc::SIGALRM as i64),
    ("SIGTERM", libc::SIGTERM as i64),
    ("SIGCHLD", libc::SIGCHLD as i64),
    ("SIGCONT", libc::SIGCONT as i64),
    ("SIGSTOP", libc::SIGSTOP as i64),
    ("SIGTSTP", libc::SIGTSTP as i64),
    ("SIGWINCH", libc::SIGWINCH as i64),
    ("SIGRTMIN", 34),
    ("SIGRTMAX", 64),
    ("AF_UNIX", libc::AF_UNIX as i64),
    ("AF_INET", libc::AF_INET as i64),
    ("AF_INET6", libc::AF_INET6 as i64),
    ("SOCK_STREAM", libc::SOCK_STREAM as i64),
    ("SOCK_DGRAM", libc::SOCK_DGRAM as i64),
    ("O_RDONLY", libc::O_RDONLY as i64),
    ("O_WRONLY", libc::O_WRONLY as i64),
    ("O_RDWR", libc::O_RDWR as i64),
    ("O_CREAT", libc::O_CREAT as i64),
    ("O_APPEND", libc::O_APPEND as i64),
    ("O_TRUNC", libc::O_TRUNC as i64),
    ("O_NONBLOCK", libc::O_NONBLOCK as i64),
    ("O_CLOEXEC", libc::O_CLOEXEC as i64),
    ("F_GETFL", libc::F_GETFL as i64),
    ("F_SETFL", libc::F_SETFL as i64),
    ("F_GETFD", libc::F_GETFD as i64),
    ("F_SETFD", libc::F_SETFD as i64),
    ("SEEK_SET", libc::SEEK_SET as i64),
    ("SEEK_CUR", libc::SEEK_CUR as i64),
    ("SEEK_END", libc::SEEK_END as i64),
    ("PROT_READ", libc::PROT_READ as i64),
    ("PROT_WRITE", libc::PROT_WRITE as i64),
    ("PROT_EXEC", libc::PROT_EXEC as i64),
    ("MAP_PRIVATE", libc::MAP_PRIVATE as i64),
    ("MAP_SHARED", libc::MAP_SHARED as i64),
    ("MAP_ANONYMOUS", libc::MAP_ANONYMOUS as i64),
    ("EPERM", libc::EPERM as i64),
    ("ENOENT", libc::ENOENT as i64),
    ("EINTR", libc::EINTR as i64),
    ("EIO", libc::EIO as i64),
    ("EBADF", libc::EBADF as i64),
    ("EAGAIN", libc::EAGAIN as i64),
    ("ENOMEM", libc::ENOMEM as i64),
    ("EACCES", libc::EACCES as i64),
    ("EFAULT", libc::EFAULT as i64),
    ("EINVAL", libc::EINVAL as i64),
    ("EPIPE", libc::EPIPE as i64),
    ("ENOSYS", libc::ENOSYS as i64),
    ("ENOTSOCK", libc::ENOTSOCK as i64),
    ("ENOTCONN", libc::ENOTCONN as i64),
    ("ECONNRESET", libc::ECONNRESET as i64),
    ("ETIMEDOUT", libc::ETIMEDOUT as i64),
];

/// Register every builtin and constant.
pub fn register(engine: &mut Engine, shared: &Shared) {
    engine
        .register_type_with_name::<TargetHandle>("Target")
        .register_get("pid", |t: &mut TargetHandle| t.pid() as i64)
        .register_get("name", |t: &mut TargetHandle| {
            t.0.borrow().name().to_string()
        })
        .register_fn("to_string", |t: &mut TargetHandle| target_label(t))
        .register_fn("to_debug", |t: &mut TargetHandle| target_label(t));
    super::address::register(engine);
    for builtin in BUILTINS {
        (builtin.register)(engine, shared);
    }
    let mut constants = Module::new();
    for (name, value) in CONSTANTS {
        constants.set_var(*name, *value);
    }
    engine.register_global_module(constants.into());
}

pub fn target_label(t: &TargetHandle) -> String {
    let t = t.0.borrow();
    format!("Target({} {})", t.pid(), t.name())
}

/// A process error as a Rhai error: its message, and a hint line if any.
pub fn fail(e: process::Error) -> Box<EvalAltResult> {
    let mut msg = e.to_string();
    if let Some(hint) = e.hint() {
        msg.push('\n');
        msg.push_str(&hint);
    }
    EvalAltResult::ErrorRuntime(msg.into(), Position::NONE).into()
}

use super::engine::usage_error as usage;

/// The current target, or an error saying how to get one.
pub(super) fn current(shared: &Shared) -> RhaiResult<TargetHandle> {
    shared
        .borrow()
        .current
        .clone()
        .ok_or_else(|| fail(process::Error::NoTarget))
}

/// Register `name` twice: as a free function on the current target and as
/// a method on Target. `f` receives the target and the arguments.
macro_rules! both {
    ($engine:ident, $shared:ident, $name:expr, |$t:ident, $s:ident $(, $arg:ident : $ty:ty)*| $body:expr) => {{
        let sh = $shared.clone();
        $engine.register_fn($name, move |$($arg: $ty),*| {
            let handle = current(&sh)?;
            let $s: &Session = &sh.borrow();
            let $t: &mut Target = &mut handle.0.borrow_mut();
            $body
        });
        let sh = $shared.clone();
        $engine.register_fn($name, move |handle: &mut TargetHandle $(, $arg: $ty)*| {
            let $s: &Session = &sh.borrow();
            let $t: &mut Target = &mut handle.0.borrow_mut();
            $body
        });
    }};
}

fn attach_handle(shared: &Shared, pid: i32) -> RhaiResult<TargetHandle> {
    let settings = shared.borrow().settings.clone();
    let target = Target::attach(pid, settings).map_err(fail)?;
    let handle = TargetHandle(std::rc::Rc::new(std::cell::RefCell::new(target)));
    shared.borrow_mut().current = Some(handle.clone());
    Ok(handle)
}

fn reg_attach(engine: &mut Engine, shared: &Shared) {
    let sh = shared.clone();
    engine.register_fn("attach", move |pid: i64| {
        let pid = i32::try_from(pid)
            .map_err(|_| fail(process::Error::NoSuchProcess(format!("pid {pid}"))))?;
        attach_handle(&sh, pid)
    });
    let sh = shared.clone();
    engine.register_fn("attach", move |name: &str| {
        let pid = procinfo::find_by_name(name).map_err(fail)?;
        attach_handle(&sh, pid)
    });
}

fn reg_detach(engine: &mut Engine, shared: &Shared) {
    let sh = shared.clone();
    engine.register_fn("detach", move || -> RhaiResult<()> {
        let handle = sh.borrow_mut().current.take();
        match handle {
            Some(h) => h.0.borrow_mut().thaw().map_err(fail),
            None => Ok(()),
        }
    });
    let sh = shared.clone();
    engine.register_fn("detach", move |h: &mut TargetHandle| -> RhaiResult<()> {
        let mut session = sh.borrow_mut();
        if session.current.as_ref().is_some_and(|c| c.pid() == h.pid()) {
            session.current = None;
        }
        h.0.borrow_mut().thaw().map_err(fail)
    });
}

fn do_call(t: &mut Target, s: &Session, name: &str, args: &Array) -> RhaiResult<i64> {
    let converted = to_args("call", args).map_err(usage)?;
    let (result, addr) = if s.dry_run {
        (None, t.sym(name).map_err(fail)?)
    } else {
        let (value, addr) = t.call_at(name, &converted).map_err(fail)?;
        (Some(value), addr)
    };
    let what = format!("{name}({}) at {addr:#x} in pid {}", describe(args), t.pid());
    s.record(
        Action::new("call", t.pid(), !s.dry_run)
            .with("function", name)
            .with("address", format!("{addr:#x}"))
            .with("args", describe(args))
            .with("result", result)
            .told("", &format!("call {what}")),
    );
    Ok(result.unwrap_or_default())
}

fn reg_call(engine: &mut Engine, shared: &Shared) {
    both!(engine, shared, CALL_FN, |t, s, name: &str, args: Array| {
        do_call(t, s, name, &args)
    });
    both!(engine, shared, CALL_FN, |t, s, name: &str| do_call(
        t,
        s,
        name,
        &Array::new()
    ));
    // A non-string function name is a type error with a clear message.
    let bad = |name: Dynamic| -> RhaiResult<i64> {
        Err(usage(format!(
            "argument 1 of call must be a function name (a string), not {} ({name})",
            type_name(&name)
        )))
    };
    engine.register_fn(CALL_FN, move |name: Dynamic, _args: Array| bad(name));
    engine.register_fn(CALL_FN, move |name: Dynamic| bad(name));
    // `f.call(...)` on a function pointer keeps its Rhai meaning.
    engine.register_fn(
        CALL_FN,
        |ctx: rhai::NativeCallContext, f: rhai::FnPtr| -> RhaiResult<Dynamic> {
            f.call_within_context(&ctx, ())
        },
    );
    engine.register_fn(
        CALL_FN,
        |ctx: rhai::NativeCallContext, f: rhai::FnPtr, a: Dynamic| -> RhaiResult<Dynamic> {
            f.call_within_context(&ctx, (a,))
        },
    );
    engine.register_fn(
        CALL_FN,
        |ctx: rhai::NativeCallContext,
         f: rhai::FnPtr,
         a: Dynamic,
         b: Dynamic|
         -> RhaiResult<Dynamic> { f.call_within_context(&ctx, (a, b)) },
    );
}

fn reg_use_thread(engine: &mut Engine, shared: &Shared) {
    both!(engine, shared, "use_thread", |t, _s, tid: i64| {
        t.settings.thread = match i32::try_from(tid) {
            Ok(0) => process::Choice::Auto,
            Ok(tid) if tid > 0 => process::Choice::Thread(tid),
            _ => {
                return Err(usage(format!(
                    "use_thread takes a thread id, or 0; not {tid}"
                )));
            }
        };
        RhaiResult::Ok(())
    });
}

fn reg_errno(engine: &mut Engine, shared: &Shared) {
    both!(engine, shared, "errno", |t, _s| {
        t.errno().map(|e| e as i64).ok_or_else(|| {
            usage("no errno: make a call() first (errno is unavailable in a target without __errno_location)".into())
        })
    });
}

fn syscall_number(name: &str) -> RhaiResult<u64> {
    syscalls::Sysno::from_str(name)
        .map(|s| s.id() as u64)
        .map_err(|_| {
            usage(format!(
                "unknown system call {name:?} (x86-64 names, as in syscall(2))"
            ))
        })
}

fn do_syscall(t: &mut Target, s: &Session, what: &str, nr: u64, args: &Array) -> RhaiResult<i64> {
    let converted = to_args("syscall", args).map_err(usage)?;
    let result = if s.dry_run {
        None
    } else {
        Some(t.syscall(what, nr, &converted).map_err(fail)?)
    };
    let call = format!(
        "system call {what}({}) (nr {nr}) in pid {}",
        describe(args),
        t.pid()
    );
    s.record(
        Action::new("syscall", t.pid(), !s.dry_run)
            .with("name", what)
            .with("nr", nr)
            .with("args", describe(args))
            .with("result", result)
            .told("", &format!("make {call}")),
    );
    Ok(result.unwrap_or_default())
}

fn reg_syscall(engine: &mut Engine, shared: &Shared) {
    both!(
        engine,
        shared,
        "syscall",
        |t, s, name: &str, args: Array| {
            let nr = syscall_number(name)?;
            do_syscall(t, s, name, nr, &args)
        }
    );
    both!(engine, shared, "syscall", |t, s, nr: i64, args: Array| {
        if !(0..1024).contains(&nr) {
            return Err(usage(format!("system call number {nr} is out of range")));
        }
        let name = syscalls::Sysno::new(nr as usize)
            .map(|s| s.name())
            .unwrap_or("syscall");
        do_syscall(t, s, name, nr as u64, &args)
    });
    both!(engine, shared, "syscall", |t, s, name: &str| {
        let nr = syscall_number(name)?;
        do_syscall(t, s, name, nr, &Array::new())
    });
}

fn reg_sym(engine: &mut Engine, shared: &Shared) {
    both!(engine, shared, "sym", |t, _s, name: &str| {
        t.sym(name).map(Address).map_err(fail)
    });
}

/// The address argument of `function`: an int or an Address.
fn address_arg(function: &str, v: &Dynamic) -> RhaiResult<u64> {
    to_addr(v).ok_or_else(|| {
        usage(format!(
            "the address given to {function} must be an int or an address, not {} ({v})",
            type_name(v)
        ))
    })
}

fn check_len(len: i64) -> RhaiResult<usize> {
    const MAX: i64 = 64 << 20;
    if !(0..=MAX).contains(&len) {
        return Err(usage(format!("length {len} is out of range (0 to {MAX})")));
    }
    Ok(len as usize)
}

fn reg_read(engine: &mut Engine, shared: &Shared) {
    both!(engine, shared, "read", |t, _s, addr: Dynamic, len: i64| {
        let addr = address_arg("read", &addr)?;
        let len = check_len(len)?;
        t.read(addr, len).map_err(fail)
    });
}

fn reg_read_cstr(engine: &mut Engine, shared: &Shared) {
    both!(engine, shared, "read_cstr", |t, _s, addr: Dynamic| {
        t.read_cstr(address_arg("read_cstr", &addr)?).map_err(fail)
    });
}

fn reg_maps(engine: &mut Engine, shared: &Shared) {
    both!(engine, shared, "maps", |t, _s| {
        let maps = t.maps().map_err(fail)?;
        RhaiResult::Ok(maps.into_iter().map(mapping_value).collect::<Array>())
    });
}

fn mapping_value(m: process::maps::Mapping) -> Dynamic {
    let mut map = rhai::Map::new();
    map.insert("start".into(), Dynamic::from(Address(m.start)));
    map.insert("end".into(), Dynamic::from(Address(m.end)));
    map.insert("perms".into(), m.perms.into());
    map.insert("offset".into(), (m.offset as i64).into());
    map.insert("dev".into(), m.dev.into());
    map.insert("inode".into(), (m.inode as i64).into());
    map.insert("path".into(), m.path.into());
    map.into()
}

fn do_write(t: &mut Target, s: &Session, addr: &Dynamic, data: &[u8]) -> RhaiResult<()> {
    let addr = address_arg("write", addr)?;
    if !s.dry_run {
        t.write(addr, data).map_err(fail)?;
    }
    let what = format!("{} bytes at {addr:#x} in pid {}", data.len(), t.pid());
    s.record(
        Action::new("write", t.pid(), !s.dry_run)
            .with("address", format!("{addr:#x}"))
            .with("bytes", data.len())
            .told("", &format!("write {what}")),
    );
    Ok(())
}

fn reg_write(engine: &mut Engine, shared: &Shared) {
    both!(
        engine,
        shared,
        "write",
        |t, s, addr: Dynamic, data: Blob| do_write(t, s, &addr, &data)
    );
    both!(
        engine,
        shared,
        "write",
        |t, s, addr: Dynamic, text: &str| {
            let mut data = text.as_bytes().to_vec();
            data.push(0);
            do_write(t, s, &addr, &data)
        }
    );
}

fn reg_status(engine: &mut Engine, shared: &Shared) {
    both!(engine, shared, "status", |t, _s| {
        let fields = t.status().map_err(fail)?;
        RhaiResult::Ok(
            fields
                .into_iter()
                .map(|(k, v)| (k.into(), Dynamic::from(v)))
                .collect::<rhai::Map>(),
        )
    });
}

fn reg_freeze(engine: &mut Engine, shared: &Shared) {
    both!(engine, shared, "freeze", |t, s| {
        if s.dry_run {
            let what = format!("stop every thread of pid {}", t.pid());
            s.record(Action::new("freeze", t.pid(), false).told("", &what));
            return Ok(());
        }
        t.freeze().map_err(fail)
    });
}

fn reg_thaw(engine: &mut Engine, shared: &Shared) {
    both!(engine, shared, "thaw", |t, _s| t.thaw().map_err(fail));
}

fn reg_pgrep(engine: &mut Engine, _shared: &Shared) {
    engine.register_fn("pgrep", |pattern: &str| -> Array {
        procinfo::pgrep(pattern)
            .into_iter()
            .map(|p| Dynamic::from(p as i64))
            .collect()
    });
}

fn reg_pause(engine: &mut Engine, _shared: &Shared) {
    engine.register_fn("pause", |ms: i64| -> RhaiResult<()> {
        const MAX: i64 = 600_000;
        if !(0..=MAX).contains(&ms) {
            return Err(usage(format!(
                "pause takes 0 to {MAX} milliseconds, not {ms}"
            )));
        }
        // Short naps, so Ctrl-C (a flag, see sys::interrupt) ends it soon.
        let until = std::time::Instant::now() + std::time::Duration::from_millis(ms as u64);
        while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
            if crate::sys::interrupt::pending().is_some() {
                break;
            }
            std::thread::sleep(left.min(std::time::Duration::from_millis(20)));
        }
        Ok(())
    });
}

fn reg_help(engine: &mut Engine, _shared: &Shared) {
    engine.register_fn("help", || {
        crate::say!("{}", help_text(None));
    });
    engine.register_fn("help", |name: &str| -> RhaiResult<()> {
        match BUILTINS.iter().find(|b| b.name == name) {
            Some(_) => {
                crate::say!("{}", help_text(Some(name)));
                Ok(())
            }
            None => Err(usage(format!(
                "no builtin named {name:?}; help() lists them"
            ))),
        }
    });
}

/// The text of `help()` (every builtin) or `help(name)` (one, in full).
pub fn help_text(name: Option<&str>) -> String {
    match name.and_then(|n| BUILTINS.iter().find(|b| b.name == n)) {
        Some(b) => format!("{}\n  {}\n  example: {}", b.signature, b.summary, b.example),
        None => {
            let width = BUILTINS.iter().map(|b| b.name.len()).max().unwrap_or(0);
            let mut out = String::from("builtins (help(\"name\") shows one in full):\n");
            for b in BUILTINS {
                out.push_str(&format!("  {:width$}  {}\n", b.name, b.summary));
                out.push_str(&format!("  {:width$}    e.g. {}\n", "", b.example));
            }
            out.push_str("constants: SHUT_RDWR, SIGPIPE, SIG_IGN, AF_INET, O_RDONLY, EBADF, … (the usual libc names)\n");
            out.push_str("in scripts: PID (the -p target), ARGS (the script's arguments) and DRY_RUN (true with --dry-run)\n");
            out.push_str("recovery playbooks: `reach --list`");
            out
        }
    }
}
