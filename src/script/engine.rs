//! The Rhai engine reach runs scripts in, and how their errors read.

use super::builtins::{self, CALL_FN};
use super::{Session, Shared, TargetHandle};
use crate::sys::interrupt;
use rhai::{Dynamic, Engine, EvalAltResult, ParseError, Position, Scope, Token};

/// An error from running a script, sorted by the exit status it deserves.
/// The message may end with a hint line (starting "hint").
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// Wrong input, and nothing was done because of it: a script that does
    /// not parse, an unknown function, field or argument (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The script raised an error or an operation on the target failed
    /// (exit 1).
    #[error("{0}")]
    Failed(String),
}

impl ScriptError {
    /// 2 for usage errors, 1 for failures: what `reach` exits with.
    pub fn exit_status(&self) -> u8 {
        match self {
            ScriptError::Usage(_) => 2,
            ScriptError::Failed(_) => 1,
        }
    }

    /// "usage" or "failed": the kind as `--json` names it.
    pub fn kind(&self) -> &'static str {
        match self {
            ScriptError::Usage(_) => "usage",
            ScriptError::Failed(_) => "failed",
        }
    }

    /// The message without its hint line, and the hint.
    pub fn parts(&self) -> (&str, Option<&str>) {
        let (ScriptError::Usage(m) | ScriptError::Failed(m)) = self;
        match m.rsplit_once('\n') {
            Some((body, hint)) if hint.starts_with("hint") => (body, Some(hint)),
            _ => (m, None),
        }
    }
}

/// An error a builtin raises when it was given what it cannot take (a
/// length out of range, an unknown name): a usage error, exit 2. Scripts
/// see it as its message.
#[derive(Debug, Clone)]
pub struct Usage(pub String);

/// A usage error as a Rhai error.
pub fn usage_error(msg: String) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(Dynamic::from(Usage(msg)), Position::NONE).into()
}

/// Is `e` a usage error? The one place that knows: a builtin's [`Usage`],
/// a playbook's `throw "usage: …"` (the convention of `scripts/`), an
/// unknown function or field, or a value of the wrong type.
fn is_usage(e: &EvalAltResult) -> bool {
    match e.unwrap_inner() {
        EvalAltResult::ErrorRuntime(value, _) => {
            value.is::<Usage>()
                || value
                    .read_lock::<rhai::ImmutableString>()
                    .is_some_and(|s| s.starts_with("usage: "))
        }
        EvalAltResult::ErrorFunctionNotFound(..)
        | EvalAltResult::ErrorPropertyNotFound(..)
        | EvalAltResult::ErrorVariableNotFound(..)
        | EvalAltResult::ErrorIndexNotFound(..)
        | EvalAltResult::ErrorMismatchDataType(..)
        | EvalAltResult::ErrorMismatchOutputType(..)
        | EvalAltResult::ErrorModuleNotFound(..) => true,
        EvalAltResult::ErrorDotExpr(msg, _) => msg.starts_with("Unknown property"),
        _ => false,
    }
}

/// A map has no field `prop`: say which it has (a usage error), and which
/// one was meant when only the case differs.
fn missing_field(map: &rhai::Map, prop: &str) -> Box<EvalAltResult> {
    let mut names: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
    names.sort_unstable();
    let meant = names.iter().find(|n| n.eq_ignore_ascii_case(prop));
    let msg = match meant {
        Some(m) => format!("no field {prop:?} here; did you mean {m}?"),
        None if names.len() > 24 => format!(
            "no field {prop:?} here; the fields are {}, … ({} in all)",
            names[..24].join(", "),
            names.len()
        ),
        None if names.is_empty() => format!("no field {prop:?} here: the map is empty"),
        None => format!(
            "no field {prop:?} here; the fields are {}",
            names.join(", ")
        ),
    };
    usage_error(msg)
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
    // `m.typo` is an error naming the fields there are, not a silent ();
    // `"x" in m` tests for a field.
    engine.on_map_missing_property(|map, prop, _| Err(missing_field(map, prop)));
    engine
        .register_type_with_name::<Usage>("UsageError")
        .register_fn("to_string", |u: &mut Usage| u.0.clone())
        .register_fn("to_debug", |u: &mut Usage| u.0.clone());
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
    engine.on_print(super::report::narrate);
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
        ScriptError::Failed(msg)
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
        .map_err(|e| ScriptError::Usage(syntax_message(&e, origin)))?;
    // A one-line -e needs no position on a runtime error.
    let runtime_origin = match origin {
        None if !source.contains('\n') => Some(""),
        o => o,
    };
    engine
        .eval_ast_with_scope::<Dynamic>(scope, &ast)
        .map_err(|e| script_error(engine, &e, runtime_origin))
}

/// A Rhai error as reach's, with its kind.
pub fn script_error(engine: &Engine, e: &EvalAltResult, origin: Option<&str>) -> ScriptError {
    let msg = runtime_message(engine, e, origin);
    if is_usage(e) {
        ScriptError::Usage(msg)
    } else {
        ScriptError::Failed(msg)
    }
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
pub fn runtime_message(engine: &Engine, e: &EvalAltResult, origin: Option<&str>) -> String {
    let inner = e.unwrap_inner();
    let pos = inner.position();
    let text = match inner {
        EvalAltResult::ErrorRuntime(value, _) => match value.read_lock::<Usage>() {
            Some(u) => u.0.clone(),
            None => value.to_string(),
        },
        EvalAltResult::ErrorDotExpr(msg, _) if msg.starts_with("Unknown property") => {
            unknown_field(engine, msg)
        }
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

/// "Unknown property 'x' - a getter is not registered for type 'Fd'" as
/// reach says it: with the fields the type has.
fn unknown_field(engine: &Engine, rhai_msg: &str) -> String {
    let quoted: Vec<&str> = rhai_msg.split('\'').collect();
    let (Some(prop), Some(ty)) = (quoted.get(1), quoted.get(3)) else {
        return rhai_msg.to_string();
    };
    let param = format!("(_: &mut {ty})");
    let mut fields: Vec<String> = engine
        .gen_fn_signatures(false)
        .into_iter()
        .filter(|sig| sig.contains(&param))
        .filter_map(|sig| Some(sig.strip_prefix("get$")?.split('(').next()?.to_string()))
        .collect();
    fields.sort_unstable();
    fields.dedup();
    if fields.is_empty() {
        return format!("{ty} has no field {prop:?}");
    }
    format!(
        "{ty} has no field {prop:?}; its fields are {}",
        fields.join(", ")
    )
}

/// Messages speak of `call`, not its internal name.
fn unrename(s: &str) -> String {
    s.replace(CALL_FN, "call")
}
