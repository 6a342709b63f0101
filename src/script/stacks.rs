//! The Rhai face of `stacks()` and `stack(tid)`: a Stack value per thread
//! with its frames, printed like `eu-stack` (one block per thread, a line
//! per frame) and, with `--json`, as objects with the same fields.

use super::address::Address;
use super::builtins::{RhaiResult, current, fail};
use super::fds::opt;
use super::{Shared, TargetHandle};
use crate::process::stacks::{End, Frame, Stack};
use rhai::{Array, Dynamic, Engine, Map};
use serde_json::{Value, json};

#[derive(Clone)]
pub struct StackValue(pub Stack);

fn frame_map(f: &Frame) -> Dynamic {
    let mut m = Map::new();
    m.insert("address".into(), Dynamic::from(Address(f.address)));
    m.insert("function".into(), opt(f.function.clone()));
    m.insert("offset".into(), Dynamic::from(f.offset as i64));
    m.insert("object".into(), opt(f.object.clone()));
    m.insert("file".into(), opt(f.file.clone()));
    m.insert("line".into(), opt(f.line.map(i64::from)));
    m.into()
}

fn stacks_of(handle: &TargetHandle, only: Option<i32>) -> RhaiResult<Vec<Stack>> {
    handle.0.borrow_mut().stacks(only).map_err(fail)
}

pub fn reg_stacks(engine: &mut Engine, shared: &Shared) {
    engine
        .register_type_with_name::<StackValue>("Stack")
        .register_get("tid", |s: &mut StackValue| s.0.tid as i64)
        .register_get("name", |s: &mut StackValue| s.0.name.clone())
        .register_get("state", |s: &mut StackValue| s.0.state.to_string())
        .register_get("syscall", |s: &mut StackValue| opt(s.0.syscall.name()))
        .register_get("fd", |s: &mut StackValue| {
            opt(s.0.syscall.fd().map(i64::from))
        })
        .register_get("frames", |s: &mut StackValue| {
            s.0.frames.iter().map(frame_map).collect::<Array>()
        })
        .register_get("complete", |s: &mut StackValue| s.0.end == End::Complete)
        .register_get("end", |s: &mut StackValue| s.0.end.describe())
        .register_get("stopped", |s: &mut StackValue| s.0.stopped)
        .register_fn("to_string", |s: &mut StackValue| stack_text(&s.0))
        .register_fn("to_debug", |s: &mut StackValue| stack_text(&s.0));
    let all = |h: &TargetHandle| -> RhaiResult<Array> {
        Ok(stacks_of(h, None)?
            .into_iter()
            .map(|s| Dynamic::from(StackValue(s)))
            .collect())
    };
    let sh = shared.clone();
    engine.register_fn("stacks", move || all(&current(&sh)?));
    engine.register_fn("stacks", move |t: &mut TargetHandle| all(t));
}

pub fn reg_stack(engine: &mut Engine, shared: &Shared) {
    let one = |h: &TargetHandle, tid: i64| -> RhaiResult<StackValue> {
        let tid = i32::try_from(tid).map_err(|_| {
            super::engine::usage_error(format!("stack takes a thread id, not {tid}"))
        })?;
        let mut found = stacks_of(h, Some(tid))?;
        found
            .pop()
            .map(StackValue)
            .ok_or_else(|| fail(crate::process::Error::ThreadExited(tid)))
    };
    let sh = shared.clone();
    engine.register_fn("stack", move |tid: i64| one(&current(&sh)?, tid));
    engine.register_fn("stack", move |t: &mut TargetHandle, tid: i64| one(t, tid));
}

/// `thread 1234 (name) S, in read on fd 3:` and a line per frame, as
/// eu-stack prints them: `#0  0x00007f…  function+0x1e (object) at file:line`.
pub fn stack_text(s: &Stack) -> String {
    use super::output::escape_controls;
    let mut out = format!(
        "thread {} ({}) {}",
        s.tid,
        escape_controls(&s.name),
        s.state
    );
    if let Some(call) = s.syscall.name() {
        out.push_str(&format!(", in {call}"));
        if let Some(fd) = s.syscall.fd() {
            out.push_str(&format!(" on fd {fd}"));
        }
    }
    out.push(':');
    for (i, f) in s.frames.iter().enumerate() {
        out.push_str(&format!("\n  #{i:<2} {:#018x}  ", f.address));
        match &f.function {
            Some(name) => out.push_str(&format!("{}+{:#x}", escape_controls(name), f.offset)),
            None => out.push_str("??"),
        }
        if let Some(object) = &f.object {
            out.push_str(&format!(" ({})", escape_controls(object)));
        }
        if let (Some(file), Some(line)) = (&f.file, f.line) {
            out.push_str(&format!(" at {}:{line}", escape_controls(file)));
        }
    }
    if s.end != End::Complete {
        out.push_str(&format!("\n  ({})", s.end.describe()));
    }
    out
}

pub fn stack_json(s: &Stack) -> Value {
    json!({
        "tid": s.tid,
        "name": s.name,
        "state": s.state.to_string(),
        "syscall": s.syscall.name(),
        "fd": s.syscall.fd(),
        "stopped": s.stopped,
        "complete": s.end == End::Complete,
        "end": s.end.describe(),
        "frames": s.frames.iter().map(|f| json!({
            "address": f.address,
            "function": f.function,
            "offset": f.offset,
            "object": f.object,
            "file": f.file,
            "line": f.line,
        })).collect::<Vec<_>>(),
    })
}

/// Text for a Stack or an array of them; `None` for other values.
pub fn to_text(value: &Dynamic) -> Option<String> {
    if let Some(s) = value.clone().try_cast::<StackValue>() {
        return Some(stack_text(&s.0));
    }
    let array = value.read_lock::<Array>()?;
    if array.is_empty() || !array.iter().all(|v| v.is::<StackValue>()) {
        return None;
    }
    Some(
        array
            .iter()
            .filter_map(|v| v.clone().try_cast::<StackValue>())
            .map(|s| stack_text(&s.0))
            .collect::<Vec<_>>()
            .join("\n\n"),
    )
}

pub fn to_json(value: &Dynamic) -> Option<Value> {
    value
        .clone()
        .try_cast::<StackValue>()
        .map(|s| stack_json(&s.0))
}
