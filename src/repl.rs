//! The interactive REPL: rustyline in front of the script engine.
//!
//! Owns: the prompt and its continuation (`...> ` while an entry is
//! unfinished), history, completion, the bare words `help`, `exit` and
//! `quit`, and how errors look at a terminal (the offending line with a
//! caret). Everything
//! a line does goes through the same engine and builtins as `-e` and
//! scripts; the REPL only keeps one Scope and the functions defined so far
//! between lines.
//!
//! The terminal is read on a thread of its own (`Terminal`), so that the
//! main thread — the one that traces — stays free while the operator
//! types: it answers completion requests (which need the target) and,
//! every few milliseconds, lets go of any thread reach could not release
//! yet (`engine::tend_lingering`: a thread seized while it entered
//! uninterruptible sleep, or a callee reach gave up on, stops the moment
//! it leaves the kernel and must not wait for the next line).

use reach::script::builtins::{BUILTINS, CONSTANTS};
use reach::script::engine::{self, ScriptError};
use reach::script::{Shared, output};
use reach::sys::interrupt;
use rhai::{AST, Dynamic, Engine, ParseError, ParseErrorType, Position};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

/// Words Rhai scripts often start with, offered by completion too.
const KEYWORDS: &[&str] = &[
    "let", "const", "fn", "if", "else", "for", "in", "while", "loop", "break", "continue",
    "return", "true", "false", "print", "throw", "try", "catch",
];

/// How many target symbols completion offers at most.
const SYMBOL_LIMIT: usize = 400;

/// Run the REPL until Ctrl-D (or SIGTERM/SIGHUP), then release any target.
pub fn run(shared: &Shared, json: bool) -> Result<(), ScriptError> {
    let engine = engine::new_engine(shared);
    let mut scope = engine::new_scope(shared, &[]);
    // Functions defined by earlier lines; merged in front of each new one.
    let mut functions = AST::empty();
    let terminal = Terminal::start(history_path())?;
    reach::say!(
        "reach {}: help() lists what exists, help(\"call\") shows one; Ctrl-D leaves.",
        env!("CARGO_PKG_VERSION")
    );
    let mut pid_in_scope = current_pid(shared);
    let mut signalled = false;

    loop {
        let locals: Vec<String> = scope
            .iter_raw()
            .map(|(name, _, _)| name.to_string())
            .chain(functions.iter_functions().map(|f| format!("{}(", f.name)))
            .collect();
        // An unfinished entry (an open block, call or list) goes on under
        // a continuation prompt; the whole entry is one history item.
        let first = prompt(shared);
        let mut input = String::new();
        let read = loop {
            let shown = if input.is_empty() {
                first.clone()
            } else {
                continuation(&first)
            };
            match terminal.read_line(shown, locals.clone(), shared) {
                Read::Line(line) => {
                    if !input.is_empty() {
                        input.push('\n');
                    }
                    input.push_str(&line);
                    if input.trim().is_empty() || !is_unfinished(&engine, &input) {
                        break Read::Line(input);
                    }
                }
                other => break other,
            }
        };
        if asked_to_leave() {
            signalled = true;
            break;
        }
        let input = match read {
            Read::Line(input) => input,
            // Ctrl-C while typing: drop the entry, keep the session.
            Read::Interrupted => continue,
            Read::Eof => break,
            Read::Failed(e) => {
                reach::tell!("reach: error: reading the terminal: {e}");
                break;
            }
        };
        if input.trim().is_empty() {
            continue;
        }
        terminal.remember(&input);
        // As in Python's REPL: bare words that mean what they say.
        match input.trim() {
            "exit" | "quit" | "exit()" | "quit()" => break,
            "help" => {
                reach::say!("{}", reach::script::builtins::help_text(None));
                continue;
            }
            _ => {}
        }

        let ast = match engine.compile_with_scope(&scope, &input) {
            Ok(ast) => ast,
            Err(e) => {
                show_error(&input, &engine::syntax_message(&e, Some("")), e.position());
                continue;
            }
        };
        // Keep definitions even when the rest of the line fails.
        let program = functions.merge(&ast);
        functions = functions.merge(&ast.clone_functions_only());

        // A Ctrl-C pressed while nothing ran must not end the next line.
        if asked_to_leave() {
            signalled = true;
            break;
        }
        interrupt::clear();
        let result = engine.eval_ast_with_scope::<Dynamic>(&mut scope, &program);
        // A thread reach could not let go of yet (an interrupted call's)
        // is released before the prompt comes back, when it stops soon.
        reach::process::engine::settle_lingering(Duration::from_millis(200));
        let leave = asked_to_leave();
        interrupt::clear();
        match result {
            Ok(value) => {
                if let Some(text) = output::render(&value, json) {
                    reach::say!("{text}");
                }
            }
            Err(e) => show_error(
                &input,
                &engine::runtime_message(&engine, &e, Some("")),
                e.position(),
            ),
        }
        if leave {
            signalled = true;
            break;
        }

        // `attach` may have changed the target: PID follows it.
        let pid = current_pid(shared);
        if pid != pid_in_scope {
            if let Some(pid) = pid {
                scope.push_constant("PID", pid as i64);
            }
            pid_in_scope = pid;
        }
    }

    drop(terminal);
    // Targets held only by variables are released as the scope drops; the
    // current one here, so a failure to release is reported.
    drop(scope);
    let current = shared.borrow_mut().current.take();
    if let Some(t) = current {
        t.0.borrow_mut()
            .thaw()
            .map_err(|e| ScriptError::Failed(e.to_string()))?;
    }
    if signalled {
        return Err(ScriptError::Failed(
            "left the session on SIGTERM or SIGHUP; every target was released".into(),
        ));
    }
    Ok(())
}

/// SIGTERM or SIGHUP arrived: leave the REPL (SIGINT only ends a line).
fn asked_to_leave() -> bool {
    matches!(interrupt::pending(), Some(libc::SIGTERM | libc::SIGHUP))
}

/// What one `readline` gave.
enum Read {
    Line(String),
    /// Ctrl-C at the prompt, or reach told to leave meanwhile.
    Interrupted,
    Eof,
    Failed(String),
}

/// From the main thread to the terminal thread.
enum Ask {
    /// Show this prompt and read a line; complete with these session names.
    Line { prompt: String, locals: Vec<String> },
    /// The answer to a [`Told::Complete`].
    Symbols(Vec<String>),
    /// Add this entry (all its lines) to the history.
    Remember(String),
}

/// From the terminal thread to the main thread.
enum Told {
    /// Its thread id, once it runs (to interrupt its read).
    Started(i32),
    Read(Read),
    /// Target symbols starting with this prefix, for completion.
    Complete(String),
}

/// The terminal, read by a thread of its own: rustyline, its history and
/// its helper live there. It never touches a target: whatever needs one
/// (symbol completion) is asked of the main thread.
struct Terminal {
    ask: Option<Sender<Ask>>,
    told: Receiver<Told>,
    tid: i32,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How often the main thread looks up from waiting for a line.
const TICK: Duration = Duration::from_millis(20);

impl Terminal {
    fn start(history: Option<PathBuf>) -> Result<Terminal, ScriptError> {
        let (ask, asked) = mpsc::channel();
        let (tell, told) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("reach-terminal".into())
            .spawn(move || terminal_thread(history, asked, tell))
            .map_err(|e| ScriptError::Failed(format!("cannot start the terminal: {e}")))?;
        let tid = match told.recv() {
            Ok(Told::Started(tid)) => tid,
            Ok(Told::Read(Read::Failed(e))) => return Err(ScriptError::Failed(e)),
            _ => return Err(ScriptError::Failed("cannot start the terminal".into())),
        };
        Ok(Terminal {
            ask: Some(ask),
            told,
            tid,
            thread: Some(thread),
        })
    }

    /// Add a finished entry to the history.
    fn remember(&self, entry: &str) {
        if let Some(ask) = &self.ask {
            let _ = ask.send(Ask::Remember(entry.to_string()));
        }
    }

    /// Show `prompt` and wait for a line, tending held threads and
    /// answering completions meanwhile. SIGTERM or SIGHUP end the wait.
    fn read_line(&self, prompt: String, locals: Vec<String>, shared: &Shared) -> Read {
        let Some(ask) = &self.ask else {
            return Read::Eof;
        };
        if ask.send(Ask::Line { prompt, locals }).is_err() {
            return Read::Eof;
        }
        let mut interrupted = false;
        loop {
            match self.told.recv_timeout(TICK) {
                Ok(Told::Read(read)) => return read,
                Ok(Told::Complete(prefix)) => {
                    let _ = ask.send(Ask::Symbols(symbols(shared, &prefix)));
                }
                Ok(Told::Started(_)) => {}
                Err(RecvTimeoutError::Timeout) => {
                    reach::process::engine::tend_lingering();
                    // rustyline ends `readline` on a SIGINT to its thread.
                    if asked_to_leave() && !interrupted {
                        interrupted = true;
                        interrupt::interrupt_thread(self.tid);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return Read::Eof,
            }
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        // Its channel closing ends the thread's wait for the next prompt.
        self.ask = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The terminal thread: an editor with history and completion, reading a
/// line whenever the main thread asks.
fn terminal_thread(history: Option<PathBuf>, asked: Receiver<Ask>, tell: Sender<Told>) {
    // SIGALRM, SIGTERM and SIGHUP are for the main thread (its waits rely
    // on being interrupted by them); SIGINT ends a `readline` here.
    interrupt::block_in_this_thread();
    interrupt::unblock_interrupt_in_this_thread();
    let mut rl = match new_editor(&asked, &tell) {
        Ok(rl) => rl,
        Err(e) => {
            let _ = tell.send(Told::Read(Read::Failed(e)));
            return;
        }
    };
    if let Some(path) = &history {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = rl.load_history(path);
    }
    let _ = tell.send(Told::Started(nix::unistd::gettid().as_raw()));
    while let Ok(ask) = asked.recv() {
        let (prompt, locals) = match ask {
            Ask::Line { prompt, locals } => (prompt, locals),
            Ask::Remember(entry) => {
                let _ = rl.add_history_entry(entry.as_str());
                if let Some(path) = &history {
                    let _ = rl.append_history(path);
                }
                continue;
            }
            Ask::Symbols(_) => continue,
        };
        if let Some(helper) = rl.helper_mut() {
            helper.locals = locals;
        }
        let read = match rl.readline(&prompt) {
            Ok(line) => Read::Line(line),
            Err(ReadlineError::Interrupted | ReadlineError::Signal(_)) => Read::Interrupted,
            Err(ReadlineError::Eof) => Read::Eof,
            Err(e) => Read::Failed(e.to_string()),
        };
        if tell.send(Told::Read(read)).is_err() {
            return;
        }
    }
}

fn new_editor<'a>(
    asked: &'a Receiver<Ask>,
    tell: &'a Sender<Told>,
) -> Result<Editor<ReplHelper<'a>, FileHistory>, String> {
    let config = Config::builder()
        .auto_add_history(false)
        .history_ignore_space(true)
        .history_ignore_dups(true)
        .map_err(|e| e.to_string())?
        .max_history_size(2000)
        .map_err(|e| e.to_string())?
        .completion_type(CompletionType::List)
        .build();
    let mut rl: Editor<ReplHelper, FileHistory> = Editor::with_config(config)
        .map_err(|e| format!("cannot start the terminal editor: {e}"))?;
    rl.set_helper(Some(ReplHelper {
        asked,
        tell,
        locals: Vec::new(),
    }));
    Ok(rl)
}

/// Symbols of the current target starting with `prefix` (main thread).
fn symbols(shared: &Shared, prefix: &str) -> Vec<String> {
    let Some(t) = shared.borrow().current.clone() else {
        return Vec::new();
    };
    let Ok(mut t) = t.0.try_borrow_mut() else {
        return Vec::new();
    };
    t.function_names(prefix, SYMBOL_LIMIT)
}

fn current_pid(shared: &Shared) -> Option<i32> {
    shared.borrow().current.as_ref().map(|t| t.pid())
}

/// The prompt of an entry's further lines: `...> ` as wide as `first`.
fn continuation(first: &str) -> String {
    let width = first.chars().count();
    format!("{:>width$}", "...> ")
}

/// `reach[1234 perl]> `, `reach[1234 perl frozen]> `, or `reach> `.
fn prompt(shared: &Shared) -> String {
    let session = shared.borrow();
    let Some(t) = &session.current else {
        return "reach> ".into();
    };
    let Ok(t) = t.0.try_borrow() else {
        return "reach> ".into();
    };
    let frozen = if t.is_frozen() { " frozen" } else { "" };
    // The name is the target's choice (prctl PR_SET_NAME): escaped.
    format!(
        "reach[{} {}{frozen}]> ",
        t.pid(),
        reach::script::output::escape_controls(t.name())
    )
}

/// `$XDG_STATE_HOME/reach/history`, else `~/.local/state/reach/history`.
fn history_path() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })?;
    Some(state.join("reach").join("history"))
}

/// The first line of `msg`, the input line it is about with a caret under
/// `pos` (when Rhai gives one), then the rest of `msg` (hints).
fn show_error(input: &str, msg: &str, pos: Position) {
    use reach::script::output::escape_controls;
    let (first, rest) = msg.split_once('\n').unwrap_or((msg, ""));
    reach::tell!("error: {}", escape_controls(first));
    if let Some(snippet) = caret(input, pos) {
        reach::tell!("{snippet}");
    }
    if !rest.is_empty() {
        reach::tell!("{}", escape_controls(rest));
    }
}

/// `  | the line` and `  |     ^` under column `pos` of that line.
fn caret(input: &str, pos: Position) -> Option<String> {
    let (line, column) = (pos.line()?, pos.position()?);
    let text = input.lines().nth(line.checked_sub(1)?)?;
    // Tabs stay tabs so the caret lines up with what the terminal shows.
    let lead: String = text
        .chars()
        .take(column.saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    Some(format!("  | {text}\n  | {lead}^"))
}

/// Does `input` stop in the middle of something (a block, a call, a
/// string)? Rhai's parser decides: the input is unfinished when parsing
/// fails at its very end, or in a string that never closes.
pub fn is_unfinished(engine: &Engine, input: &str) -> bool {
    match engine.compile(input) {
        Ok(_) => false,
        Err(e) => unfinished_error(&e, input),
    }
}

fn unfinished_error(e: &ParseError, input: &str) -> bool {
    use rhai::LexError;
    match e.err_type() {
        ParseErrorType::UnexpectedEOF => return true,
        // A "string" ends on its line: left open, it is a mistake to show
        // now, not a wait for more. A `backtick` string may span lines, and
        // a line ending in a backslash continues the string.
        ParseErrorType::BadInput(LexError::UnterminatedString) => {
            return input.matches('`').count() % 2 == 1 || input.trim_end().ends_with('\\');
        }
        _ => {}
    }
    let pos = e.position();
    let (Some(line), Some(column)) = (pos.line(), pos.position()) else {
        return true;
    };
    // Where the last character that is not blank sits (1-based).
    let Some((last_line, text)) = input
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .last()
    else {
        return false;
    };
    let last = (last_line + 1, text.trim_end().chars().count());
    (line, column) > last
}

/// The editor's helper: completion and the multi-line decision. Lives on
/// the terminal thread.
struct ReplHelper<'a> {
    asked: &'a Receiver<Ask>,
    tell: &'a Sender<Told>,
    /// Variables and functions the session has defined so far.
    locals: Vec<String>,
}

impl ReplHelper<'_> {
    /// Symbols of the current target starting with `prefix`, asked of the
    /// main thread.
    fn symbols(&self, prefix: &str) -> Vec<String> {
        if self.tell.send(Told::Complete(prefix.to_string())).is_err() {
            return Vec::new();
        }
        match self.asked.recv() {
            Ok(Ask::Symbols(names)) => names,
            _ => Vec::new(),
        }
    }

    /// Builtins (as `name(`), constants, keywords and the session's names.
    fn words(&self, prefix: &str) -> Vec<String> {
        let mut words: Vec<String> = BUILTINS
            .iter()
            .map(|b| format!("{}(", b.name))
            .chain(CONSTANTS.iter().map(|(name, _)| name.to_string()))
            .chain(KEYWORDS.iter().map(|k| k.to_string()))
            .chain(self.locals.iter().cloned())
            .filter(|w| w.starts_with(prefix))
            .collect();
        words.sort();
        words.dedup();
        words
    }
}

/// The start of the word ending at `pos` (identifier characters and `@`,
/// for versioned symbol names).
fn word_start(line: &str, pos: usize) -> usize {
    line[..pos]
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '@' || *c == '.'))
        .map(|(i, c)| i + c.len_utf8())
        .unwrap_or(0)
}

/// Is the text before a word the opening of `call("` or `sym("`?
fn in_symbol_string(before: &str) -> bool {
    let Some(rest) = before.strip_suffix('"') else {
        return false;
    };
    let Some(rest) = rest.trim_end().strip_suffix('(') else {
        return false;
    };
    let rest = rest.trim_end();
    ["call", "sym"].iter().any(|f| {
        rest.strip_suffix(f).is_some_and(|head| {
            !head
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
    })
}

impl Completer for ReplHelper<'_> {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let start = word_start(line, pos);
        let word = &line[start..pos];
        let (start, candidates) = if in_symbol_string(&line[..start]) {
            (start, self.symbols(word))
        } else {
            // `t.ca` completes the method name after the dot.
            let dot = word.rfind('.').map_or(0, |i| i + 1);
            (start + dot, self.words(&word[dot..]))
        };
        let pairs = candidates
            .into_iter()
            .map(|c| Pair {
                display: c.clone(),
                replacement: c,
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Validator for ReplHelper<'_> {}

impl Hinter for ReplHelper<'_> {
    type Hint = String;
}

impl Highlighter for ReplHelper<'_> {}

impl rustyline::Helper for ReplHelper<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use reach::process::Settings;
    use reach::script::Session;

    fn engine() -> Engine {
        engine::new_engine(&Session::new(Settings::default(), false))
    }

    #[test]
    fn unfinished_input_continues_and_errors_do_not() {
        let e = engine();
        for open in [
            "fn add(a, b) {",
            "fn add(a, b) {\n  a + b",
            "let x = [1, 2,",
            "call(\"getpid\",",
            "let s = `abc",
            "let s = \"abc\\",
            "1 +",
            "if true {",
            "let m = #{ a: 1,",
        ] {
            assert!(is_unfinished(&e, open), "{open:?} should continue");
        }
        for done in [
            "fn add(a, b) { a + b }",
            "fn add(a, b) {\n  a + b\n}",
            "call(\"getpid\", [])",
            "let x = ;",
            "foo(1 2)",
            "let = 5",
            "",
            "x)",
            "\"abc",
            "let s = \"abc",
        ] {
            assert!(!is_unfinished(&e, done), "{done:?} should be taken as is");
        }
    }

    #[test]
    fn caret_points_at_the_column() {
        let pos = Position::new(2, 5);
        assert_eq!(caret("one\nlet y;", pos).unwrap(), "  | let y;\n  |     ^");
        assert!(caret("x", Position::NONE).is_none());
    }

    #[test]
    fn symbol_strings_are_recognised() {
        assert!(in_symbol_string("call(\""));
        assert!(in_symbol_string("x = t.call( \""));
        assert!(in_symbol_string("sym(\""));
        assert!(!in_symbol_string("recall(\""));
        assert!(!in_symbol_string("call("));
        assert_eq!(word_start("call(\"get", 9), 6);
        assert_eq!(word_start("t.ca", 4), 0);
    }
}
