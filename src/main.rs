//! `reach`: parse the command line, pick what to run (-e, a playbook or a
//! script file, stdin, the REPL) and on which processes (-p, --all), print
//! the results, and turn errors into exit statuses: 0 success (changed or
//! not), 1 failed, 2 usage.

#![deny(unsafe_code)]

mod repl;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use reach::process::procinfo::{self, Matching};
use reach::process::{Choice, Settings};
use reach::script::engine::{self, ScriptError};
use reach::script::output::escape_controls;
use reach::script::report::{self, Outcome};
use reach::script::{Session, output, playbooks};
use reach::sys::interrupt;
use serde_json::json;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

/// Reach into a running Linux process and fix it: call its functions, make
/// system calls in it, read its memory — from -e, a Rhai script, or stdin.
#[derive(Parser)]
#[command(name = "reach", version, about)]
struct Cli {
    /// Target process: a pid, or a name that matches exactly one process
    /// (with --all, every one).
    #[arg(short, long, value_name = "PID|NAME", allow_negative_numbers = true)]
    pid: Option<String>,
    /// -p NAME matches any process whose command line contains NAME, as
    /// `pgrep -f` does (reach and the commands running it excluded).
    #[arg(short = 'f', long = "full", requires = "pid")]
    full: bool,
    /// Run on every process -p matches, one after another in pid order.
    #[arg(long, requires = "pid")]
    all: bool,
    /// With --all: refuse to start when more than N processes match.
    #[arg(long, value_name = "N", default_value_t = 64, requires = "all")]
    max: usize,
    /// Evaluate EXPR (repeatable, in order); print the last value unless ().
    #[arg(short, long = "eval", value_name = "EXPR")]
    eval: Vec<String>,
    /// Print results as JSON, and errors as JSON on stderr.
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
    /// List the built-in playbooks with their arguments and summaries.
    #[arg(long)]
    list: bool,
    /// Print a completion script for SHELL (bash, zsh, fish, elvish, powershell).
    #[arg(long, value_name = "SHELL", exclusive = true)]
    completions: Option<clap_complete::Shell>,
    /// Print the man page (roff): reach --man > reach.1
    #[arg(long, exclusive = true)]
    man: bool,
    /// A playbook: a path to a .rhai file, or the name of a built-in one
    /// (NAME --help shows its help).
    script: Option<String>,
    /// Arguments for the script, as the array ARGS.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// `reach [-p PID] NAME --help`: the playbook (or script file) named just
/// before a final --help, whose help clap would otherwise print.
fn playbook_help_asked() -> Option<String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [.., script, flag] = args.as_slice() else {
        return None;
    };
    let is_script = playbooks::find(script).is_some() || script.ends_with(".rhai");
    (is_script && (flag == "--help" || flag == "-h")).then(|| script.clone())
}

fn main() -> ExitCode {
    if let Some(script) = playbook_help_asked() {
        return match load_script(&script) {
            Ok((source, _)) => {
                reach::say!("{}", playbooks::header(&source));
                ExitCode::SUCCESS
            }
            Err(e) => {
                report(&e, false);
                ExitCode::from(e.exit_status())
            }
        };
    }
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
            let json = std::env::args().any(|a| a == "--json");
            let e = ScriptError::Usage(format!("{first}\nhint: {tip}"));
            report(&e, json);
            return ExitCode::from(e.exit_status());
        }
    };
    report::set_channels(cli.json, cli.json || !cli.eval.is_empty());
    interrupt::install();
    let result = run(&cli);
    if std::env::var_os("REACH_TIMING").is_some() {
        for (tid, threads, held) in reach::process::engine::timing::windows() {
            reach::tell!(
                "reach: timing: held thread {tid} ({threads} held) for {} us",
                held.as_micros()
            );
        }
    }
    match result {
        Ok(code) => code,
        Err(err) => {
            let e = match err.downcast::<ScriptError>() {
                Ok(e) => e,
                Err(other) => ScriptError::Failed(format!("{other:#}")),
            };
            report(&e, cli.json);
            ExitCode::from(e.exit_status())
        }
    }
}

/// An error on stderr: with --json, one JSON line; otherwise
/// `reach: error: …` on one line and its hint (if any) on the next.
/// Escaped: an error may quote names the target or the operator chose,
/// and a newline in one must not start a line.
fn report(e: &ScriptError, json: bool) {
    if json {
        reach::tell!("{}", report::error_line(e));
        return;
    }
    let (body, hint) = e.parts();
    reach::tell!("reach: error: {}", escape_controls(body));
    if let Some(hint) = hint {
        reach::tell!("{}", escape_controls(hint));
    }
}

fn usage(msg: String) -> anyhow::Error {
    ScriptError::Usage(msg).into()
}

/// What to run: a script's text, how errors name it, and its arguments.
struct Job {
    source: String,
    /// How positions in errors name it (a file, `<stdin>`); `None` for -e.
    origin: Option<String>,
    /// How the result document names it: the playbook or file as given.
    script: Option<String>,
    args: Vec<String>,
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
        Err(e) if looks_like_path || e.kind() != std::io::ErrorKind::NotFound => Err(
            ScriptError::Usage(format!("cannot read script {script}: {e}")),
        ),
        // `reach -p 1234 'fds()'`: an expression where a script goes.
        Err(_) if script.contains(['(', ')', '[', '"', '\'', '=', ';', ' ', '.']) => {
            Err(ScriptError::Usage(format!(
                "no playbook named {script:?} and no such file\nhint: to evaluate an expression, use -e: reach -p PID -e '{script}'"
            )))
        }
        Err(_) => Err(ScriptError::Usage(format!(
            "no playbook named {script:?} and no such file\nhint: `reach --list` shows the built-in ones"
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
        "--all",
        "--full",
        "-f",
    ]
    .contains(&name)
}

/// The script of the command line; `None` for the REPL.
fn job(cli: &Cli) -> anyhow::Result<Option<Job>> {
    if !cli.eval.is_empty() {
        if cli.script.is_some() {
            return Err(usage("give either -e or a script, not both".into()));
        }
        return Ok(Some(Job {
            source: cli.eval.join(";\n"),
            origin: None,
            script: None,
            args: Vec::new(),
        }));
    }
    if let Some(script) = &cli.script {
        let (source, origin) = load_script(script)?;
        // Everything after SCRIPT is the script's; say so when it looks
        // like one of reach's own options was meant.
        if let Some(flag) = cli.args.iter().find(|a| is_reach_option(a)) {
            return Err(usage(format!(
                "{flag} after the script is an argument of the script; put reach's options first: reach {flag} -p PID {script} ..."
            )));
        }
        return Ok(Some(Job {
            source,
            origin: Some(origin),
            script: Some(script.clone()),
            args: cli.args.clone(),
        }));
    }
    if std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let source = playbooks::read_stdin().map_err(|e| match e.kind() {
        std::io::ErrorKind::Interrupted => ScriptError::Failed(e.to_string()),
        _ => ScriptError::Usage(format!("cannot read the script from stdin: {e}")),
    })?;
    Ok(Some(Job {
        source,
        origin: Some("<stdin>".into()),
        script: Some("<stdin>".into()),
        args: cli.args.clone(),
    }))
}

fn settings(cli: &Cli) -> anyhow::Result<Settings> {
    // A year: enough for any call, and far from Duration's overflow.
    const TIMEOUT_MAX: f64 = 365.0 * 86400.0;
    if !(cli.timeout > 0.0 && cli.timeout <= TIMEOUT_MAX) {
        return Err(usage(format!(
            "--timeout must be a number of seconds above 0 and at most {TIMEOUT_MAX}, not {}",
            cli.timeout
        )));
    }
    Ok(Settings {
        timeout: Duration::from_secs_f64(cli.timeout),
        thread: match cli.thread {
            Some(tid) if tid > 0 => Choice::Thread(tid),
            Some(tid) => return Err(usage(format!("--thread must be a thread id, not {tid}"))),
            None => Choice::Auto,
        },
        ..Settings::default()
    })
}

fn matching(cli: &Cli) -> Matching {
    if cli.full {
        Matching::CommandLine
    } else {
        Matching::Name
    }
}

/// The one `-p` target: a pid, or the one process NAME matches.
fn one_target(cli: &Cli) -> anyhow::Result<Option<i32>> {
    let Some(spec) = cli.pid.as_deref() else {
        return Ok(None);
    };
    if let Ok(pid) = spec.parse::<i32>() {
        return Ok(Some(pid));
    }
    procinfo::find_one(spec, matching(cli))
        .map(Some)
        .map_err(|e| ScriptError::Failed(e.to_string()).into())
}

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    if let Some(shell) = cli.completions {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "reach", &mut out);
        reach::say!("{}", String::from_utf8_lossy(&out).trim_end());
        return Ok(ExitCode::SUCCESS);
    }
    if cli.man {
        let mut out = Vec::new();
        clap_mangen::Man::new(Cli::command())
            .render(&mut out)
            .context("rendering the man page")?;
        reach::say!("{}", String::from_utf8_lossy(&out).trim_end());
        return Ok(ExitCode::SUCCESS);
    }
    if cli.list {
        reach::say!("{}", playbooks::list_text());
        return Ok(ExitCode::SUCCESS);
    }
    let settings = settings(cli)?;
    let Some(job) = job(cli)? else {
        if cli.all {
            return Err(usage(
                "the interactive session takes one target: give -e or a script with --all".into(),
            ));
        }
        let shared = Session::new(settings, cli.dry_run);
        // Lines typed later may ask for errno(): capture it after each call.
        shared.borrow_mut().settings.capture_errno = true;
        if let Some(pid) = one_target(cli)? {
            engine::set_target(&shared, pid)?;
        }
        repl::run(&shared, cli.json)?;
        return Ok(ExitCode::SUCCESS);
    };
    if cli.all {
        return run_all(cli, &job, settings);
    }
    let pid = one_target(cli)?;
    let run = run_one(&job, settings, cli.dry_run, pid);
    if cli.json && job.script.is_some() {
        reach::say!("{}", pretty(&run.document(&job, cli.dry_run)));
    } else if let Ok(value) = &run.value {
        if cli.json {
            reach::say!("{}", pretty(&output::to_json(value)));
        } else if let Some(text) = output::render(value, false) {
            reach::say!("{text}");
        }
    }
    run.value.map(|_| ())?;
    Ok(ExitCode::SUCCESS)
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// One run of a script on one target.
struct Run {
    target: Option<(i32, String)>,
    actions: Vec<report::Action>,
    value: Result<rhai::Dynamic, ScriptError>,
}

impl Run {
    fn document(&self, job: &Job, dry_run: bool) -> serde_json::Value {
        Outcome {
            script: job.script.as_deref(),
            args: &job.args,
            target: self.target.clone(),
            dry_run,
            actions: &self.actions,
            value: self.value.as_ref().ok(),
            error: self.value.as_ref().err(),
        }
        .document()
    }
}

/// Run `job` with `pid` as its target, and let go of every target after.
fn run_one(job: &Job, settings: Settings, dry_run: bool, pid: Option<i32>) -> Run {
    let shared = Session::new(settings, dry_run);
    // errno is read after each call only if the script can ask for it: it
    // costs one more injected call per thread.
    shared.borrow_mut().settings.capture_errno = job.source.contains("errno");
    let mut target = pid.map(|pid| (pid, String::new()));
    let attached = match pid {
        Some(pid) => engine::set_target(&shared, pid).map(|t| {
            target = Some((pid, t.0.borrow().name().to_string()));
        }),
        None => Ok(()),
    };
    let value = attached.and_then(|()| {
        let engine = engine::new_engine(&shared);
        let mut scope = engine::new_scope(&shared, &job.args);
        let value = engine::run(&engine, &mut scope, &job.source, job.origin.as_deref());
        // reach exits soon: tearing down Rhai's function tables would
        // only cost time.
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
            return Err(ScriptError::Failed(e.to_string()));
        }
        Ok(value)
    });
    let actions = shared.borrow().actions.take();
    Run {
        target,
        actions,
        value,
    }
}

/// `--all`: the job on every process -p matches, in pid order, one at a
/// time; each one's result, then the overall status (1 if any failed).
fn run_all(cli: &Cli, job: &Job, settings: Settings) -> anyhow::Result<ExitCode> {
    let pattern = cli.pid.as_deref().unwrap_or_default();
    let matches = match pattern.parse::<i32>() {
        Ok(pid) => vec![procinfo::Match {
            pid,
            cmdline: String::new(),
        }],
        Err(_) => procinfo::matching(pattern, matching(cli)),
    };
    if matches.is_empty() {
        return Err(ScriptError::Failed(format!("no process matches {pattern:?}")).into());
    }
    if matches.len() > cli.max {
        return Err(usage(format!(
            "{} processes match {pattern:?}, more than --max {}: {}",
            matches.len(),
            cli.max,
            procinfo::listed(&matches)
        )));
    }
    let mut documents = Vec::new();
    let (mut changed, mut failed) = (0, 0);
    for m in &matches {
        if let Some(sig) = interrupt::pending() {
            let e = ScriptError::Failed(format!(
                "interrupted by {}: stopped before pid {}",
                reach::process::engine::signal_name(sig),
                m.pid
            ));
            if cli.json {
                reach::say!("{}", pretty(&all_document(pattern, &documents)));
            }
            return Err(e.into());
        }
        if !cli.json {
            report::narrate(&format!("== {} ==", escape_controls(&m.to_string())));
        }
        let run = run_one(job, settings.clone(), cli.dry_run, Some(m.pid));
        let document = run.document(job, cli.dry_run);
        changed += usize::from(document["changed"] == true);
        match run.value {
            Ok(value) => {
                if !cli.json
                    && let Some(text) = output::render(&value, false)
                {
                    reach::say!("{text}");
                }
            }
            // Wrong input is wrong for every process: stop at the first.
            Err(e @ ScriptError::Usage(_)) => {
                if cli.json {
                    documents.push(document);
                    reach::say!("{}", pretty(&all_document(pattern, &documents)));
                }
                return Err(e.into());
            }
            Err(e) => {
                failed += 1;
                if !cli.json {
                    report(&ScriptError::Failed(format!("pid {}: {e}", m.pid)), false);
                }
            }
        }
        documents.push(document);
    }
    if cli.json {
        reach::say!("{}", pretty(&all_document(pattern, &documents)));
    } else {
        report::narrate(&format!(
            "== {} process(es): {changed} changed, {failed} failed ==",
            matches.len()
        ));
    }
    Ok(ExitCode::from(if failed > 0 { 1 } else { 0 }))
}

/// `--all --json`: one document holding each process's.
fn all_document(pattern: &str, documents: &[serde_json::Value]) -> serde_json::Value {
    let any = |key: &str| documents.iter().any(|d| d[key] == true);
    json!({
        "schema": report::SCHEMA,
        "pattern": pattern,
        "changed": any("changed"),
        "failed": any("failed"),
        "results": documents,
    })
}
