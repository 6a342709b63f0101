//! `reach`: parse flags, pick -e / script / stdin / REPL, map errors to
//! exit statuses (0 ok, 1 script or target error, 2 usage error).

#![deny(unsafe_code)]

mod repl;

use clap::Parser;
use reach::process::{Choice, Settings, procinfo};
use reach::script::engine::{self, ScriptError};
use reach::script::output::escape_controls;
use reach::script::{Session, output, playbooks};
use reach::sys::interrupt;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

/// Reach into a running Linux process and fix it: call its functions, make
/// system calls in it, read its memory — from -e, a Rhai script, or stdin.
#[derive(Parser)]
#[command(name = "reach", version, about)]
struct Cli {
    /// Target process: a pid, or a name that matches exactly one process.
    #[arg(short, long, value_name = "PID|NAME", allow_negative_numbers = true)]
    pid: Option<String>,
    /// Evaluate EXPR (repeatable, in order); print the last value unless ().
    #[arg(short, long = "eval", value_name = "EXPR")]
    eval: Vec<String>,
    /// Print results as JSON.
    #[arg(long)]
    json: bool,
    /// Limit for one injected call, in seconds.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 10.0,
        allow_negative_numbers = true
    )]
    timeout: f64,
    /// Run calls and system calls on this thread (default: one reach picks).
    #[arg(long, value_name = "TID", allow_negative_numbers = true)]
    thread: Option<i32>,
    /// Resolve and check everything, change nothing, print what would be done.
    #[arg(long)]
    dry_run: bool,
    /// List the built-in playbooks with their one-line summaries.
    #[arg(long)]
    list: bool,
    /// A playbook: a path to a .rhai file, or the name of a built-in one.
    script: Option<String>,
    /// Arguments for the script, as the array ARGS.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version, as clap prints them.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        // A usage error: one line, and clap's tip (if any) as the hint.
        Err(e) => {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            let tip = rendered
                .lines()
                .find_map(|l| l.trim().strip_prefix("tip: "));
            let tip = tip.unwrap_or("`reach --help` shows every option");
            report(&format!("{first}\nhint: {tip}"));
            return ExitCode::from(2);
        }
    };
    interrupt::install();
    let result = run(cli);
    if std::env::var_os("REACH_TIMING").is_some() {
        for (tid, threads, held) in reach::process::engine::timing::windows() {
            report_line(&format!(
                "reach: timing: held thread {tid} ({threads} held) for {} us",
                held.as_micros()
            ));
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(ScriptError::Syntax(msg)) => {
            report(&msg);
            ExitCode::from(2)
        }
        // A script that throws "usage: …" was given wrong arguments.
        Err(ScriptError::Runtime(msg)) if msg.starts_with("usage: ") => {
            report(&msg);
            ExitCode::from(2)
        }
        Err(ScriptError::Runtime(msg)) => {
            report(&msg);
            ExitCode::from(1)
        }
    }
}

/// One line on stderr; nothing (and no panic) if stderr is closed.
fn report_line(line: &str) {
    reach::tell!("{line}");
}

/// `reach: error: …` on one line; a hint, if any (a last line starting
/// "hint"), on the next. Escaped: an error may quote names the target or
/// the operator chose, and a newline in one must not start a line.
fn report(msg: &str) {
    let (body, hint) = match msg.rsplit_once('\n') {
        Some((body, hint)) if hint.starts_with("hint") => (body, Some(hint)),
        _ => (msg, None),
    };
    report_line(&format!("reach: error: {}", escape_controls(body)));
    if let Some(hint) = hint {
        report_line(&escape_controls(hint));
    }
}

fn usage(msg: String) -> ScriptError {
    ScriptError::Syntax(msg)
}

/// A playbook by path (anything with a `/` or ending in `.rhai`, or an
/// existing file) or by built-in name: its text and how errors name it.
fn load_script(script: &str) -> Result<(String, String), ScriptError> {
    let looks_like_path = script.contains('/') || script.ends_with(".rhai");
    if !looks_like_path && let Some(p) = playbooks::find(script) {
        return Ok((p.source.to_string(), p.origin()));
    }
    match playbooks::read_file(script) {
        Ok(text) => Ok((text, script.to_string())),
        Err(e) if looks_like_path || e.kind() != std::io::ErrorKind::NotFound => {
            Err(usage(format!("cannot read script {script}: {e}")))
        }
        Err(_) => Err(usage(format!(
            "no playbook named \"{script}\" and no such file; `reach --list` shows the built-in ones"
        ))),
    }
}

fn is_reach_option(arg: &str) -> bool {
    let name = arg.split('=').next().unwrap_or(arg);
    [
        "--dry-run",
        "--json",
        "--timeout",
        "--thread",
        "--pid",
        "-p",
        "--list",
    ]
    .contains(&name)
}

/// Select the `-p` target (a pid or a unique name), once the rest of the
/// command line has been checked.
fn attach(shared: &reach::script::Shared, spec: Option<&str>) -> Result<(), ScriptError> {
    let Some(spec) = spec else {
        return Ok(());
    };
    let pid = match spec.parse::<i32>() {
        Ok(pid) => pid,
        Err(_) => procinfo::find_by_name(spec).map_err(|e| ScriptError::Runtime(e.to_string()))?,
    };
    engine::set_target(shared, pid)?;
    Ok(())
}

fn run(cli: Cli) -> Result<(), ScriptError> {
    if cli.list {
        reach::say!("{}", playbooks::list_text());
        return Ok(());
    }
    // A year: enough for any call, and far from Duration's overflow.
    const TIMEOUT_MAX: f64 = 365.0 * 86400.0;
    if !(cli.timeout > 0.0 && cli.timeout <= TIMEOUT_MAX) {
        return Err(usage(format!(
            "--timeout must be a number of seconds above 0 and at most {TIMEOUT_MAX}, not {}",
            cli.timeout
        )));
    }
    let settings = Settings {
        timeout: Duration::from_secs_f64(cli.timeout),
        thread: match cli.thread {
            Some(tid) if tid > 0 => Choice::Thread(tid),
            Some(tid) => return Err(usage(format!("--thread must be a thread id, not {tid}"))),
            None => Choice::Auto,
        },
        ..Settings::default()
    };
    let shared = Session::new(settings, cli.dry_run);

    let (source, origin, args) = if !cli.eval.is_empty() {
        if cli.script.is_some() {
            return Err(usage("give either -e or a script, not both".into()));
        }
        (cli.eval.join(";\n"), None, Vec::new())
    } else if let Some(script) = &cli.script {
        let (text, origin) = load_script(script)?;
        // Everything after SCRIPT is the script's; say so when it looks
        // like one of reach's own options was meant.
        if let Some(flag) = cli.args.iter().find(|a| is_reach_option(a)) {
            return Err(usage(format!(
                "{flag} after the script is an argument of the script; put reach's options first: reach {flag} -p PID {script} ..."
            )));
        }
        (text, Some(origin), cli.args.clone())
    } else {
        if std::io::stdin().is_terminal() {
            // Lines typed later may ask for errno(): capture it after each call.
            shared.borrow_mut().settings.capture_errno = true;
            attach(&shared, cli.pid.as_deref())?;
            return repl::run(&shared, cli.json);
        }
        let text = playbooks::read_stdin().map_err(|e| match e.kind() {
            std::io::ErrorKind::Interrupted => ScriptError::Runtime(e.to_string()),
            _ => usage(format!("cannot read the script from stdin: {e}")),
        })?;
        (text, Some("<stdin>".to_string()), cli.args.clone())
    };
    // errno is read after each call only if the script can ask for it: it
    // costs one more injected call per thread.
    shared.borrow_mut().settings.capture_errno = source.contains("errno");
    attach(&shared, cli.pid.as_deref())?;

    let engine = engine::new_engine(&shared);
    let mut scope = engine::new_scope(&shared, &args);
    let value = engine::run(&engine, &mut scope, &source, origin.as_deref());
    // reach exits next: tearing down Rhai's function tables would only
    // cost time.
    std::mem::forget(engine);
    // Release whatever is still frozen before printing anything.
    drop(scope);
    let released = shared
        .borrow_mut()
        .current
        .take()
        .map(|t| t.0.borrow_mut().thaw());
    let value = value?;
    if let Some(Err(e)) = released {
        return Err(ScriptError::Runtime(e.to_string()));
    }
    if let Some(text) = output::render(&value, cli.json) {
        reach::say!("{text}");
    }
    Ok(())
}
