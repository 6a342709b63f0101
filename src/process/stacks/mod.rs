//! Where each thread is: its native stack, innermost frame first, with as
//! few stops as possible.
//!
//! Owns: getting a thread's registers and the top of its stack
//! (`capture.rs`: read from `/proc` and its memory with no stop for a
//! thread blocked in a system call; otherwise that one thread stopped for
//! the copy, through the engine), unwinding the copy with the target's
//! CFI (`unwind.rs`, framehop; frame pointers where there is none), and
//! naming each frame (`names.rs`: the symbol module's objects and debug
//! files, addr2line for file:line). Never stops two threads at once, and
//! never a thread for longer than its copy.

mod capture;
mod names;
mod unwind;

use super::engine::{Engine, Options};
use super::symbols::Symbols;
use super::threads::{self, Syscall};
use super::{Error, Result};

/// One frame: where the thread is (frame 0) or where a call returns to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The instruction address (frame 0) or the return address.
    pub address: u64,
    pub function: Option<String>,
    /// From the function's start to the address.
    pub offset: u64,
    /// The file name of the object it is in.
    pub object: Option<String>,
    /// Source file and line, where debug information says.
    pub file: Option<String>,
    pub line: Option<u32>,
}

/// How a walk ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// At the outermost frame (`_start`, a thread's start routine).
    Complete,
    /// At code no object describes (JIT or generated code): no unwind
    /// information, and frame pointers there are not to be trusted.
    UnknownCode(u64),
    /// The stack could not be read further, or the unwind information
    /// led nowhere.
    Truncated(String),
}

impl End {
    pub fn describe(&self) -> String {
        match self {
            End::Complete => "complete".into(),
            End::UnknownCode(a) => format!(
                "ends at {a:#x}: code no mapped object describes (JIT or generated), no unwind information"
            ),
            End::Truncated(why) => format!("truncated: {why}"),
        }
    }
}

/// One thread's stack.
#[derive(Debug, Clone)]
pub struct Stack {
    pub tid: i32,
    pub name: String,
    pub state: char,
    pub syscall: Syscall,
    pub frames: Vec<Frame>,
    pub end: End,
    /// Whether the thread was stopped to take it (it was not blocked in a
    /// system call, or its stack needed the registers only a stop gives).
    pub stopped: bool,
}

/// The stacks of `pid`'s threads (`only`: one of them), one thread at a
/// time.
pub fn stacks(
    pid: i32,
    only: Option<i32>,
    symbols: &mut Symbols,
    engine: &mut Engine,
    opts: &Options,
) -> Result<Vec<Stack>> {
    let threads = threads::list_states(pid)?;
    if let Some(tid) = only
        && !threads.iter().any(|t| t.tid == tid)
    {
        return Err(Error::NoSuchProcess(format!("thread {tid} of pid {pid}")));
    }
    let objects = symbols.code_objects(pid)?;
    let unwinder = unwind::Unwinder::new(&objects);
    // Every copy first, naming after: the threads are back to themselves
    // before reach spends time on symbols and debug files.
    let mut walked = Vec::new();
    for thread in threads
        .into_iter()
        .filter(|t| only.is_none_or(|o| o == t.tid))
    {
        let (walk, stopped) = match capture::without_stop(pid, thread.tid) {
            Some(snapshot) => {
                let walk = unwinder.walk(pid, &snapshot);
                // Keep it unless only the frame pointer a stop gives would
                // take it further (and a thread in uninterruptible sleep
                // cannot be stopped anyway).
                if !walk.needs_bp || thread.state == 'D' {
                    (walk, false)
                } else {
                    match capture::stopped(engine, thread.tid, opts) {
                        Ok(s) => (unwinder.walk(pid, &s), true),
                        Err(Error::ThreadExited(_)) => continue,
                        Err(_) => (walk, false),
                    }
                }
            }
            None => match capture::stopped(engine, thread.tid, opts) {
                Ok(s) => (unwinder.walk(pid, &s), true),
                Err(Error::ThreadExited(_)) => continue,
                Err(e) => return Err(e),
            },
        };
        walked.push((thread, walk, stopped));
    }
    let mut namer = names::Namer::new(&objects);
    let stacks = walked
        .into_iter()
        .map(|(thread, walk, stopped)| Stack {
            tid: thread.tid,
            name: thread.name,
            state: thread.state,
            syscall: thread.syscall,
            frames: walk
                .addresses
                .iter()
                .enumerate()
                .map(|(i, &address)| namer.name(address, i > 0))
                .collect(),
            end: walk.end,
            stopped,
        })
        .collect();
    Ok(stacks)
}
