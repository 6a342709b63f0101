//! What a run did, and how it is told: the actions builtins take on a
//! target (or would take, in a dry run), the lines that narrate them, and
//! the result document of a run — `changed` and `failed` in the sense
//! Ansible gives them — as text or as one JSON document with `--json`.
//!
//! The document's fields are [`SCHEMA`]'s; README.md ("Results") lists
//! them. With `--json`, stdout holds only documents, so narration (the
//! script's `print`, each action's line) goes to stderr.

use super::engine::ScriptError;
use super::output::to_json;
use rhai::Dynamic;
use serde_json::{Map, Value, json};
use std::sync::atomic::{AtomicBool, Ordering};

/// The version of the result document's layout; raised when a field
/// changes meaning or goes away (new fields may appear without it).
pub const SCHEMA: u32 = 1;

static PRINTS_TO_STDERR: AtomicBool = AtomicBool::new(false);
static ACTIONS_TO_STDERR: AtomicBool = AtomicBool::new(false);

/// Where narration goes. With `--json` all of it goes to stderr (stdout
/// keeps the document); with `-e`, the lines of actions do (stdout keeps
/// the expression's value), while a script's `print` stays on stdout.
pub fn set_channels(prints_to_stderr: bool, actions_to_stderr: bool) {
    PRINTS_TO_STDERR.store(prints_to_stderr, Ordering::Relaxed);
    ACTIONS_TO_STDERR.store(actions_to_stderr, Ordering::Relaxed);
}

fn line_to(stderr: &AtomicBool, line: &str) {
    if stderr.load(Ordering::Relaxed) {
        super::output::tell(line);
    } else {
        super::output::say(line);
    }
}

/// A line a script printed, or reach's own progress line.
pub fn narrate(line: &str) {
    line_to(&PRINTS_TO_STDERR, line);
}

/// The line of an action on a target.
pub fn narrate_action(line: &str) {
    line_to(&ACTIONS_TO_STDERR, line);
}

/// One thing done to a target, or planned in a dry run.
#[derive(Clone, Debug)]
pub struct Action {
    /// Done (the target was changed), or only planned (`--dry-run`).
    pub changed: bool,
    /// The line narrating it.
    pub text: String,
    /// `action`, `pid` and what identifies it: `fd`, addresses, `how`…
    pub fields: Map<String, Value>,
}

impl Action {
    /// An action named `action` on `pid`; `changed` false in a dry run.
    pub fn new(action: &str, pid: i32, changed: bool) -> Action {
        let mut fields = Map::new();
        fields.insert("action".into(), json!(action));
        fields.insert("pid".into(), json!(pid));
        Action {
            changed,
            text: String::new(),
            fields,
        }
    }

    /// Add a field (`null` when `value` is `None`).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Action {
        self.fields.insert(key.into(), value.into());
        self
    }

    /// The narrating line, as done (`"shut down fd 3 …"`, or "" for none);
    /// a dry run prefixes "dry-run: would " to `planned`.
    pub fn told(mut self, done: &str, planned: &str) -> Action {
        self.text = if self.changed {
            done.to_string()
        } else {
            format!("dry-run: would {planned}")
        };
        self
    }

    fn to_json(&self) -> Value {
        let mut fields = self.fields.clone();
        fields.insert("changed".into(), json!(self.changed));
        fields.insert("text".into(), json!(self.text));
        Value::Object(fields)
    }
}

/// Everything a result document is made of.
pub struct Outcome<'a> {
    /// The built-in playbook's name or the script's path; `None` for `-e`.
    pub script: Option<&'a str>,
    pub args: &'a [String],
    /// The `-p` target's pid and name.
    pub target: Option<(i32, String)>,
    pub dry_run: bool,
    pub actions: &'a [Action],
    /// The script's last value, when it ran to the end.
    pub value: Option<&'a Dynamic>,
    pub error: Option<&'a ScriptError>,
}

impl Outcome<'_> {
    /// Did the run change a target? (Also when it then failed.)
    pub fn changed(&self) -> bool {
        self.actions.iter().any(|a| a.changed)
    }

    /// The result document (schema [`SCHEMA`]).
    pub fn document(&self) -> Value {
        let (pid, name) = match &self.target {
            Some((pid, name)) => (json!(pid), json!(name)),
            None => (Value::Null, Value::Null),
        };
        json!({
            "schema": SCHEMA,
            "script": self.script,
            "args": self.args,
            "pid": pid,
            "name": name,
            "dry_run": self.dry_run,
            "changed": self.changed(),
            "failed": self.error.is_some(),
            "actions": self.actions.iter().map(Action::to_json).collect::<Vec<_>>(),
            "value": self.value.map_or(Value::Null, to_json),
            "error": self.error.map_or(Value::Null, error_json),
        })
    }
}

/// `{"kind": "usage" | "failed", "message": …, "hint": …}`.
pub fn error_json(e: &ScriptError) -> Value {
    let (message, hint) = e.parts();
    json!({"kind": e.kind(), "message": message, "hint": hint})
}

/// The error line `--json` prints on stderr.
pub fn error_line(e: &ScriptError) -> String {
    json!({"schema": SCHEMA, "error": error_json(e)}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dry_run_changes_nothing_and_says_would() {
        let planned = Action::new("shutdown", 7, false)
            .with("fd", 3)
            .told("shut down fd 3", "shut down fd 3");
        assert_eq!(planned.text, "dry-run: would shut down fd 3");
        let outcome = Outcome {
            script: Some("unstick"),
            args: &["3".into()],
            target: Some((7, "srv".into())),
            dry_run: true,
            actions: &[planned],
            value: None,
            error: None,
        };
        let doc = outcome.document();
        assert_eq!(doc["schema"], SCHEMA);
        assert_eq!(doc["changed"], false);
        assert_eq!(doc["failed"], false);
        assert_eq!(doc["actions"][0]["fd"], 3);
        assert_eq!(doc["actions"][0]["changed"], false);
    }

    #[test]
    fn errors_carry_kind_and_hint() {
        let e = ScriptError::Failed("not permitted\nhint: run as root".into());
        let v = error_json(&e);
        assert_eq!(v["kind"], "failed");
        assert_eq!(v["message"], "not permitted");
        assert_eq!(v["hint"], "hint: run as root");
    }
}
