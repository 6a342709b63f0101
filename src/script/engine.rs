//! The Rhai engine reach runs scripts in, and how their errors read.

use super::builtins::{self, CALL_FN};
use super::{Session, Shared, TargetHandle};
use crate::sys::interrupt;
use rhai::{Dynamic, Engine, EvalAltResult, ParseError, Position, Scope, Token};

/// An error from running a script, sorted by the exit status it deserves.
#[derive(Debug)]
pub enum ScriptError {
    /// The script does not parse: a usage error (exit 2).
    Syntax(String),
    /// The script raised an error or an operation failed (exit 1).
    Runtime(String),
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScriptError::Syntax(m) | ScriptError::Runtime(m) => f.write_str(m),
        }
    }
}

/// The largest string, blob, array or map a script may make (64 Mi bytes
/// or elements: the largest read reach does).
const LIMIT: usize = 64 << 20;

/// An engine with every builtin registered against `shared`.
pub fn new_engine(shared: &Shared) -> Engine {
    let mut engine = Engine::new();
    // Bounds a script cannot break out of: `blob(1 << 62)` or a string
    // doubled in a loop is an error, not an abort; and no module is
    // loaded from disk (`import` would run any .rhai file there).
    engine
        .set_max_string_size(LIMIT)
        .set_max_array_size(LIMIT)
        .set_max_map_size(LIMIT)
        .set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
    builtins::register(&mut engine, shared);
    // `call` is special to Rhai (function pointers); give the name to
    // remote calls at the token level, so strings are never touched.
    #[allow(deprecated)] // on_parse_token is stable, only marked volatile
    engine.on_parse_token(|token, _pos, _state| match token {
        Token::Identifier(ref id) | Token::Reserved(ref id) if id.as_str() == "call" => {
            Token::Identifier(Box::new(CALL_FN.into()))
        }
        other => other,
    });
    // Ctrl-C / SIGTERM to reach end a running script (a call in progress
    // is abandoned and its target restored by the call itself). Every few
    // thousand operations, a script that runs on without touching the
    // target also lets go of threads that could not be released yet (see
    // `engine::tend_lingering`).
    engine.on_progress(|ops| {
        if ops % 4096 == 0 {
            crate::process::engine::tend_lingering();
        }
        interrupt::pending().map(|sig| Dynamic::from(sig as i64))
    });
    engine.on_print(|s| crate::say!("{s}"));
    engine.on_debug(|s, _, pos| crate::tell!("{pos:?}: {s}"));
    engine
}

/// A scope holding `PID` (when there is a target), `ARGS` and `DRY_RUN`.
pub fn new_scope(shared: &Shared, args: &[String]) -> Scope<'static> {
    let mut scope = Scope::new();
    // Playbooks skip their checks of the effect when nothing was changed.
    scope.push_constant("DRY_RUN", shared.borrow().dry_run);
    if let Some(t) = &shared.borrow().current {
        scope.push_constant("PID", t.pid() as i64);
    }
    let args: rhai::Array = args.iter().map(|a| Dynamic::from(a.clone())).collect();
    scope.push("ARGS", args);
    scope
}

/// Select `pid` as the session's current target.
pub fn set_target(shared: &Shared, pid: i32) -> Result<TargetHandle, ScriptError> {
    let settings = shared.borrow().settings.clone();
    let target = crate::process::Target::attach(pid, settings).map_err(|e| {
        let mut msg = e.to_string();
        if let Some(h) = e.hint() {
            msg = format!("{msg}\n{h}");
        }
        ScriptError::Runtime(msg)
    })?;
    let handle = TargetHandle(std::rc::Rc::new(std::cell::RefCell::new(target)));
    let session: &mut Session = &mut shared.borrow_mut();
    session.current = Some(handle.clone());
    Ok(handle)
}

/// Compile and run `source`, returning the value of its last expression.
pub fn run(
    engine: &Engine,
    scope: &mut Scope,
    source: &str,
    origin: Option<&str>,
) -> Result<Dynamic, ScriptError> {
    let ast = engine
        .compile_with_scope(scope, source)
        .map_err(|e| ScriptError::Syntax(syntax_message(&e, origin)))?;
    // A one-line -e needs no position on a runtime error.
    let runtime_origin = match origin {
        None if !source.contains('\n') => Some(""),
        o => o,
    };
    engine
        .eval_ast_with_scope::<Dynamic>(scope, &ast)
        .map_err(|e| ScriptError::Runtime(runtime_message(&e, runtime_origin)))
}

fn at(pos: Position, origin: Option<&str>) -> String {
    match (pos.line(), pos.position(), origin) {
        (_, _, Some("")) => String::new(),
        (Some(l), Some(c), Some(o)) => format!(" ({o}:{l}:{c})"),
        (Some(l), Some(c), None) => format!(" (line {l}, column {c})"),
        _ => String::new(),
    }
}

pub fn syntax_message(e: &ParseError, origin: Option<&str>) -> String {
    format!(
        "syntax error: {}{}",
        unrename(&e.err_type().to_string()),
        at(e.position(), origin)
    )
}

/// One line saying what went wrong and where (plus a hint line if any).
pub fn runtime_message(e: &EvalAltResult, origin: Option<&str>) -> String {
    let inner = e.unwrap_inner();
    let pos = inner.position();
    let text = match inner {
        EvalAltResult::ErrorRuntime(value, _) => value.to_string(),
        EvalAltResult::ErrorModuleNotFound(name, _) => format!(
            "import {name:?}: scripts cannot import modules; they get reach's builtins and Rhai's standard library"
        ),
        EvalAltResult::ErrorTerminated(sig, _) => {
            let sig = sig.as_int().unwrap_or(0) as i32;
            format!(
                "interrupted by {}",
                crate::process::engine::signal_name(sig)
            )
        }
        other => {
            // Rhai's own messages end with " (line L, position C)"; reach
            // adds its own position, so strip theirs.
            let s = other.to_string();
            match s.rfind(" (line ") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    };
    let text = unrename(&text);
    match text.split_once('\n') {
        Some((first, hint)) => format!("{first}{}\n{hint}", at(pos, origin)),
        None => format!("{text}{}", at(pos, origin)),
    }
}

/// Messages speak of `call`, not its internal name.
fn unrename(s: &str) -> String {
    s.replace(CALL_FN, "call")
}
