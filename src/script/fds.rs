//! The Rhai face of `fds()`, `threads()`, `signals()` and `f.shutdown(how)`:
//! their value types with one getter per field, and how they print (aligned
//! tables for people, objects with the same fields for `--json`).

use super::builtins::{RhaiResult, current, fail};
use super::report::Action;
use super::table::Table;
use super::{Shared, TargetHandle};
use crate::process::fds::{self, Fd};
use crate::process::signals::{self, Signal};
use crate::process::threads::{self, Syscall, Thread};
use rhai::{Array, Dynamic, Engine, Map};
use serde_json::{Value, json};

/// An Fd as a Rhai value: the descriptor as listed, and the target it
/// belongs to (for `shutdown`).
#[derive(Clone)]
pub struct FdValue {
    pub fd: Fd,
    pub target: TargetHandle,
}

#[derive(Clone)]
pub struct ThreadValue(pub Thread);

#[derive(Clone)]
pub struct SignalValue(pub Signal);

/// A value, or `()` where there is none.
pub(super) fn opt<T: Into<Dynamic>>(v: Option<T>) -> Dynamic {
    v.map_or(Dynamic::UNIT, Into::into)
}

fn opt_str(v: &Option<String>) -> Dynamic {
    opt(v.clone())
}

fn ints(v: &[i32]) -> Array {
    v.iter().map(|&n| Dynamic::from(n as i64)).collect()
}

// ---- fds() -------------------------------------------------------------

fn list_fds(handle: &TargetHandle) -> RhaiResult<Array> {
    let list = fds::list(handle.pid()).map_err(fail)?;
    Ok(list
        .into_iter()
        .map(|fd| {
            Dynamic::from(FdValue {
                fd,
                target: handle.clone(),
            })
        })
        .collect())
}

pub fn reg_fds(engine: &mut Engine, shared: &Shared) {
    engine
        .register_type_with_name::<FdValue>("Fd")
        .register_get("fd", |f: &mut FdValue| f.fd.fd as i64)
        .register_get("kind", |f: &mut FdValue| f.fd.kind.as_str().to_string())
        .register_get("path", |f: &mut FdValue| f.fd.path.clone())
        .register_get("deleted", |f: &mut FdValue| f.fd.deleted)
        .register_get("anon", |f: &mut FdValue| opt_str(&f.fd.anon))
        .register_get("inode", |f: &mut FdValue| opt(f.fd.inode.map(|n| n as i64)))
        .register_get("pos", |f: &mut FdValue| opt(f.fd.pos.map(|n| n as i64)))
        .register_get("flags", |f: &mut FdValue| opt(f.fd.flags.map(i64::from)))
        .register_get("flag_names", |f: &mut FdValue| opt(f.fd.flag_names()))
        .register_get("proto", |f: &mut FdValue| opt_str(&f.fd.proto))
        .register_get("sock_type", |f: &mut FdValue| opt_str(&f.fd.sock_type))
        .register_get("state", |f: &mut FdValue| opt_str(&f.fd.state))
        .register_get("local", |f: &mut FdValue| opt_str(&f.fd.local))
        .register_get("remote", |f: &mut FdValue| opt_str(&f.fd.remote))
        .register_get("local_port", |f: &mut FdValue| {
            opt(f.fd.local_port.map(i64::from))
        })
        .register_get("remote_port", |f: &mut FdValue| {
            opt(f.fd.remote_port.map(i64::from))
        })
        .register_get("rx_queue", |f: &mut FdValue| {
            opt(f.fd.rx_queue.map(|n| n as i64))
        })
        .register_get("tx_queue", |f: &mut FdValue| {
            opt(f.fd.tx_queue.map(|n| n as i64))
        })
        .register_get("waiters", |f: &mut FdValue| ints(&f.fd.waiters))
        .register_get("cookie", |f: &mut FdValue| {
            opt(f.fd.cookie.map(|c| c as i64))
        })
        .register_get("rtt_ms", |f: &mut FdValue| tcp_ms(&f.fd, |t| t.rtt_us))
        .register_get("rttvar_ms", |f: &mut FdValue| {
            tcp_ms(&f.fd, |t| t.rttvar_us)
        })
        .register_get("rto_ms", |f: &mut FdValue| tcp_ms(&f.fd, |t| t.rto_us))
        .register_get("cwnd", |f: &mut FdValue| tcp_int(&f.fd, |t| t.cwnd))
        .register_get("unacked", |f: &mut FdValue| tcp_int(&f.fd, |t| t.unacked))
        .register_get("retrans", |f: &mut FdValue| tcp_int(&f.fd, |t| t.retrans))
        .register_get("retrans_total", |f: &mut FdValue| {
            tcp_int(&f.fd, |t| t.retrans_total)
        })
        .register_get("last_send_ms", |f: &mut FdValue| {
            tcp_int(&f.fd, |t| t.last_send_ms)
        })
        .register_get("last_recv_ms", |f: &mut FdValue| {
            tcp_int(&f.fd, |t| t.last_recv_ms)
        })
        .register_get("last_ack_ms", |f: &mut FdValue| {
            tcp_int(&f.fd, |t| t.last_ack_ms)
        })
        .register_get("timer", |f: &mut FdValue| opt(f.fd.timer.map(timer_text)))
        .register_get("peer_inode", |f: &mut FdValue| {
            opt(f.fd.peer_inode.map(|n| n as i64))
        })
        .register_get("peer_pid", |f: &mut FdValue| {
            opt(f.fd.peer.as_ref().map(|p| p.pid as i64))
        })
        .register_get("peer_fd", |f: &mut FdValue| {
            opt(f.fd.peer.as_ref().map(|p| p.fd as i64))
        })
        .register_fn("to_string", |f: &mut FdValue| fd_table(&[&f.fd]))
        .register_fn("to_debug", |f: &mut FdValue| fd_table(&[&f.fd]));
    let sh = shared.clone();
    engine.register_fn("fds", move || list_fds(&current(&sh)?));
    engine.register_fn("fds", |t: &mut TargetHandle| list_fds(t));
}

/// `f.is_to("10.0.0.7:443")`: is f a connection to that remote end (host:
/// port, host or :port)? A malformed filter is a usage error.
pub fn reg_is_to(engine: &mut Engine, _shared: &Shared) {
    engine.register_fn("is_to", |f: &mut FdValue, want: &str| -> RhaiResult<bool> {
        let filter = super::addr::parse(want).map_err(super::engine::usage_error)?;
        Ok(f.fd.remote.as_deref().is_some_and(|r| filter.matches(r)))
    });
}

/// `remote_filter("10.0.0.7:443")`: the filter checked (a usage error if
/// malformed) and parsed: `#{host, port}`, either () when not given.
pub fn reg_remote_filter(engine: &mut Engine, _shared: &Shared) {
    engine.register_fn("remote_filter", |want: &str| -> RhaiResult<Map> {
        let filter = super::addr::parse(want).map_err(super::engine::usage_error)?;
        let mut map = Map::new();
        map.insert("host".into(), opt(filter.host.map(|h| h.to_string())));
        map.insert("port".into(), opt(filter.port.map(i64::from)));
        Ok(map)
    });
}

/// A `tcp_info` time in microseconds as milliseconds, as `ss -i` shows it.
fn tcp_ms(f: &Fd, field: impl Fn(&fds::TcpInfo) -> u32) -> Dynamic {
    opt(f.tcp.as_ref().map(|t| field(t) as f64 / 1000.0))
}

fn tcp_int(f: &Fd, field: impl Fn(&fds::TcpInfo) -> u32) -> Dynamic {
    opt(f.tcp.as_ref().map(|t| i64::from(field(t))))
}

/// `on,203ms,2` as in `ss -o`'s `timer:(on,203ms,2)`.
fn timer_text(t: fds::SockTimer) -> String {
    format!("{},{}ms,{}", t.kind, t.expires_ms, t.retrans)
}

/// A duration as people read it: `40ms`, `12.3s`, `7m05s`, `3h02m`.
fn age(ms: u32) -> String {
    let ms = u64::from(ms);
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

/// The REMOTE cell: the address, or for a connected unix socket its peer
/// (`fd 7` in this process, `pid 123 (name) fd 7` in another, else the
/// peer's inode).
fn remote_cell(f: &Fd) -> String {
    match (&f.peer, f.peer_inode) {
        (Some(p), _) if p.same_process => format!("fd {}", p.fd),
        (Some(p), _) => format!("pid {} ({}) fd {}", p.pid, p.name, p.fd),
        (None, Some(ino)) => format!("ino {ino}"),
        (None, None) => cell(&f.remote),
    }
}

fn how_name(how: i64) -> String {
    match how {
        0 => "SHUT_RD".into(),
        1 => "SHUT_WR".into(),
        2 => "SHUT_RDWR".into(),
        other => other.to_string(),
    }
}

/// `proto local -> remote`, or the path: what an operator recognises.
fn fd_label(fd: &Fd) -> String {
    match (&fd.proto, &fd.local, &fd.remote) {
        (Some(p), Some(l), Some(r)) => format!("{p} {l} -> {r}"),
        (Some(p), Some(l), None) if !l.is_empty() => format!("{p} {l}"),
        _ => fd.path.clone(),
    }
}

/// An action on socket `f`: its fd and addresses, as the document lists them.
fn fd_action(action: &str, f: &FdValue, changed: bool) -> Action {
    Action::new(action, f.target.pid(), changed)
        .with("fd", f.fd.fd)
        .with("proto", f.fd.proto.clone())
        .with("local", f.fd.local.clone())
        .with("remote", f.fd.remote.clone())
        .with("state", f.fd.state.clone())
}

pub fn reg_destroy(engine: &mut Engine, shared: &Shared) {
    let sh = shared.clone();
    engine.register_fn("destroy", move |f: &mut FdValue| -> RhaiResult<()> {
        let pid = f.target.pid();
        let label = super::output::escape_controls(&fd_label(&f.fd)).into_owned();
        let dry_run = sh.borrow().dry_run;
        if !dry_run {
            fds::destroy(pid, &f.fd).map_err(fail)?;
        }
        let what = format!("destroy fd {} ({label}) of pid {pid}", f.fd.fd);
        sh.borrow().record(
            fd_action("destroy", f, !dry_run)
                .with("how", "SOCK_DESTROY")
                .told(
                    &format!(
                        "destroyed fd {} ({label}) of pid {pid}: the connection was reset (SOCK_DESTROY), without stopping it",
                        f.fd.fd
                    ),
                    &format!("{what} (SOCK_DESTROY: the peer gets a reset)"),
                ),
        );
        Ok(())
    });
}

pub fn reg_shutdown(engine: &mut Engine, shared: &Shared) {
    let sh = shared.clone();
    engine.register_fn(
        "shutdown",
        move |f: &mut FdValue, how: i64| -> RhaiResult<i64> {
            let pid = f.target.pid();
            let label = super::output::escape_controls(&fd_label(&f.fd)).into_owned();
            let dry_run = sh.borrow().dry_run;
            let path = if dry_run {
                None
            } else {
                Some(fds::shutdown(&mut f.target.0.borrow_mut(), &f.fd, how).map_err(fail)?)
            };
            let what = format!(
                "fd {} ({label}) of pid {pid} with {}",
                f.fd.fd,
                how_name(how)
            );
            sh.borrow().record(
                fd_action("shutdown", f, !dry_run)
                    .with("how", how_name(how))
                    .with("via", path.map(fds::ShutdownPath::as_str))
                    .told(
                        &format!(
                            "shut down {what} {}",
                            path.map_or("", fds::ShutdownPath::told)
                        ),
                        &format!("shut down {what}"),
                    ),
            );
            Ok(0)
        },
    );
}

const FD_COLUMNS: &[(&str, bool)] = &[
    ("FD", true),
    ("KIND", false),
    ("PROTO", false),
    ("STATE", false),
    ("LOCAL", false),
    ("REMOTE", false),
    ("RECV-Q", true),
    ("SEND-Q", true),
    ("LAST-RECV", true),
    ("WAITERS", false),
    ("PATH", false),
];

fn cell<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(String::new, ToString::to_string)
}

fn joined(v: &[i32]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

pub fn fd_table(fds: &[&Fd]) -> String {
    let mut t = Table::new(FD_COLUMNS);
    for f in fds {
        t.push(vec![
            f.fd.to_string(),
            f.kind.as_str().to_string(),
            cell(&f.proto),
            cell(&f.state),
            cell(&f.local),
            remote_cell(f),
            cell(&f.rx_queue),
            cell(&f.tx_queue),
            f.tcp
                .as_ref()
                .filter(|_| f.remote_port.is_some_and(|p| p != 0))
                .map_or_else(String::new, |t| age(t.last_recv_ms)),
            joined(&f.waiters),
            f.path.clone(),
        ]);
    }
    t.render()
}

pub fn fd_json(f: &Fd) -> Value {
    json!({
        "fd": f.fd,
        "kind": f.kind.as_str(),
        "proto": f.proto,
        "state": f.state,
        "local": f.local,
        "remote": f.remote,
        "rx_queue": f.rx_queue,
        "tx_queue": f.tx_queue,
        "waiters": f.waiters,
        "path": f.path,
        "local_port": f.local_port,
        "remote_port": f.remote_port,
        "inode": f.inode,
        "sock_type": f.sock_type,
        "deleted": f.deleted,
        "anon": f.anon,
        "pos": f.pos,
        "flags": f.flags,
        "flag_names": f.flag_names(),
        "cookie": f.cookie,
        "rtt_ms": f.tcp.map(|t| t.rtt_us as f64 / 1000.0),
        "rttvar_ms": f.tcp.map(|t| t.rttvar_us as f64 / 1000.0),
        "rto_ms": f.tcp.map(|t| t.rto_us as f64 / 1000.0),
        "cwnd": f.tcp.map(|t| t.cwnd),
        "unacked": f.tcp.map(|t| t.unacked),
        "retrans": f.tcp.map(|t| t.retrans),
        "retrans_total": f.tcp.map(|t| t.retrans_total),
        "last_send_ms": f.tcp.map(|t| t.last_send_ms),
        "last_recv_ms": f.tcp.map(|t| t.last_recv_ms),
        "last_ack_ms": f.tcp.map(|t| t.last_ack_ms),
        "timer": f.timer.map(timer_text),
        "peer_inode": f.peer_inode,
        "peer_pid": f.peer.as_ref().map(|p| p.pid),
        "peer_fd": f.peer.as_ref().map(|p| p.fd),
        "peer_name": f.peer.as_ref().map(|p| p.name.clone()),
    })
}

// ---- threads() ---------------------------------------------------------

fn list_threads(handle: &TargetHandle) -> RhaiResult<Array> {
    let list = threads::list(handle.pid()).map_err(fail)?;
    Ok(list
        .into_iter()
        .map(|t| Dynamic::from(ThreadValue(t)))
        .collect())
}

pub fn reg_threads(engine: &mut Engine, shared: &Shared) {
    engine
        .register_type_with_name::<ThreadValue>("Thread")
        .register_get("tid", |t: &mut ThreadValue| t.0.tid as i64)
        .register_get("name", |t: &mut ThreadValue| t.0.name.clone())
        .register_get("state", |t: &mut ThreadValue| t.0.state.to_string())
        .register_get("state_name", |t: &mut ThreadValue| {
            threads::state_name(t.0.state).to_string()
        })
        .register_get("syscall", |t: &mut ThreadValue| opt(t.0.syscall.name()))
        .register_get("fd", |t: &mut ThreadValue| {
            opt(t.0.syscall.fd().map(i64::from))
        })
        .register_get("args", |t: &mut ThreadValue| match &t.0.syscall {
            Syscall::In { args, .. } => Dynamic::from(
                args.iter()
                    .map(|&a| Dynamic::from(a as i64))
                    .collect::<Array>(),
            ),
            _ => Dynamic::UNIT,
        })
        .register_get("wchan", |t: &mut ThreadValue| opt_str(&t.0.wchan))
        .register_get("waits_on", |t: &mut ThreadValue| ints(&t.0.waits_on))
        .register_fn("to_string", |t: &mut ThreadValue| thread_table(&[&t.0]))
        .register_fn("to_debug", |t: &mut ThreadValue| thread_table(&[&t.0]));
    let sh = shared.clone();
    engine.register_fn("threads", move || list_threads(&current(&sh)?));
    engine.register_fn("threads", |t: &mut TargetHandle| list_threads(t));
}

fn syscall_cell(state: char, s: &Syscall) -> String {
    if matches!(state, 'Z' | 'X') {
        // An exited thread (a main thread after pthread_exit) has none.
        return "(exited)".into();
    }
    match s {
        Syscall::Running => "(running)".into(),
        Syscall::NotInSyscall => "(user space)".into(),
        Syscall::In { .. } => s.name().unwrap_or_default(),
        Syscall::Unknown => "?".into(),
    }
}

/// The WAITS ON cell: `3`, `3,4,7` (poll, select), `3,4 (epoll 5)`; the
/// first 8, then how many more.
fn waits_on_cell(th: &Thread) -> String {
    const SHOWN: usize = 8;
    let mut text = th
        .waits_on
        .iter()
        .take(SHOWN)
        .map(|fd| fd.to_string())
        .collect::<Vec<_>>()
        .join(",");
    if th.waits_on.len() > SHOWN {
        text += &format!(",… (+{})", th.waits_on.len() - SHOWN);
    }
    match th.syscall.fd() {
        Some(epfd) if !th.waits_on.contains(&epfd) => {
            format!("{text} (epoll {epfd})").trim_start().to_string()
        }
        _ => text,
    }
}

pub fn thread_table(threads: &[&Thread]) -> String {
    let mut t = Table::new(&[
        ("TID", true),
        ("NAME", false),
        ("STATE", false),
        ("SYSCALL", false),
        ("WAITS ON", false),
        ("WCHAN", false),
    ]);
    for th in threads {
        t.push(vec![
            th.tid.to_string(),
            th.name.clone(),
            th.state.to_string(),
            syscall_cell(th.state, &th.syscall),
            waits_on_cell(th),
            cell(&th.wchan),
        ]);
    }
    t.render()
}

pub fn thread_json(t: &Thread) -> Value {
    json!({
        "tid": t.tid,
        "name": t.name,
        "state": t.state.to_string(),
        "state_name": threads::state_name(t.state),
        "syscall": t.syscall.name(),
        "fd": t.syscall.fd(),
        "waits_on": t.waits_on,
        "wchan": t.wchan,
    })
}

// ---- signals() ---------------------------------------------------------

fn list_signals(handle: &TargetHandle) -> RhaiResult<Map> {
    let list = signals::list(handle.pid()).map_err(fail)?;
    Ok(list
        .into_iter()
        .map(|s| (s.name.clone().into(), Dynamic::from(SignalValue(s))))
        .collect())
}

pub fn reg_signals(engine: &mut Engine, shared: &Shared) {
    engine
        .register_type_with_name::<SignalValue>("Signal")
        .register_get("number", |s: &mut SignalValue| s.0.number as i64)
        .register_get("name", |s: &mut SignalValue| s.0.name.clone())
        .register_get("ignored", |s: &mut SignalValue| s.0.ignored)
        .register_get("caught", |s: &mut SignalValue| s.0.caught)
        .register_get("blocked", |s: &mut SignalValue| s.0.blocked)
        .register_get("blocked_in", |s: &mut SignalValue| ints(&s.0.blocked_in))
        .register_get("pending", |s: &mut SignalValue| s.0.pending)
        .register_fn("to_string", |s: &mut SignalValue| signal_table(&[&s.0]))
        .register_fn("to_debug", |s: &mut SignalValue| signal_table(&[&s.0]));
    let sh = shared.clone();
    engine.register_fn("signals", move || list_signals(&current(&sh)?));
    engine.register_fn("signals", |t: &mut TargetHandle| list_signals(t));
}

fn yes(b: bool) -> String {
    if b { "yes".into() } else { String::new() }
}

pub fn signal_table(signals: &[&Signal]) -> String {
    let mut t = Table::new(&[
        ("NR", true),
        ("SIGNAL", false),
        ("IGNORED", false),
        ("CAUGHT", false),
        ("BLOCKED", false),
        ("PENDING", false),
    ]);
    for s in signals {
        let blocked = match (s.blocked, s.blocked_in.is_empty()) {
            (true, _) => "yes".to_string(),
            (false, false) => format!("in {}", joined(&s.blocked_in)),
            (false, true) => String::new(),
        };
        t.push(vec![
            s.number.to_string(),
            s.name.clone(),
            yes(s.ignored),
            yes(s.caught),
            blocked,
            yes(s.pending),
        ]);
    }
    t.render()
}

pub fn signal_json(s: &Signal) -> Value {
    json!({
        "number": s.number,
        "name": s.name,
        "ignored": s.ignored,
        "caught": s.caught,
        "blocked": s.blocked,
        "blocked_in": s.blocked_in,
        "pending": s.pending,
    })
}

// ---- printing hooks for output.rs -------------------------------------

/// Every element of `array` as a `T`, if all are (and there is one).
fn all_of<T: Clone + 'static>(array: &Array) -> Option<Vec<T>> {
    if array.is_empty() {
        return None;
    }
    array.iter().map(|v| v.clone().try_cast::<T>()).collect()
}

/// A table for Fds, Threads and Signals (alone, in an array, or the map
/// `signals()` returns); `None` for anything else.
pub fn to_text(value: &Dynamic) -> Option<String> {
    if let Some(f) = value.clone().try_cast::<FdValue>() {
        return Some(fd_table(&[&f.fd]));
    }
    if let Some(t) = value.clone().try_cast::<ThreadValue>() {
        return Some(thread_table(&[&t.0]));
    }
    if let Some(s) = value.clone().try_cast::<SignalValue>() {
        return Some(signal_table(&[&s.0]));
    }
    if let Some(array) = value.clone().try_cast::<Array>() {
        if let Some(fds) = all_of::<FdValue>(&array) {
            return Some(fd_table(&fds.iter().map(|f| &f.fd).collect::<Vec<_>>()));
        }
        if let Some(ts) = all_of::<ThreadValue>(&array) {
            return Some(thread_table(&ts.iter().map(|t| &t.0).collect::<Vec<_>>()));
        }
        if let Some(ss) = all_of::<SignalValue>(&array) {
            return Some(signal_table(&ss.iter().map(|s| &s.0).collect::<Vec<_>>()));
        }
    }
    if let Some(map) = value.clone().try_cast::<Map>() {
        let values: Array = map.values().cloned().collect();
        if let Some(mut ss) = all_of::<SignalValue>(&values) {
            ss.sort_by_key(|s| s.0.number);
            return Some(signal_table(&ss.iter().map(|s| &s.0).collect::<Vec<_>>()));
        }
    }
    None
}

/// JSON for an Fd, Thread or Signal; `None` for anything else (arrays and
/// maps of them are handled by the caller, element by element).
pub fn to_json(value: &Dynamic) -> Option<Value> {
    if let Some(f) = value.clone().try_cast::<FdValue>() {
        return Some(fd_json(&f.fd));
    }
    if let Some(t) = value.clone().try_cast::<ThreadValue>() {
        return Some(thread_json(&t.0));
    }
    if let Some(s) = value.clone().try_cast::<SignalValue>() {
        return Some(signal_json(&s.0));
    }
    None
}
