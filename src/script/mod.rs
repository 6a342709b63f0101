//! The Rhai face of reach: builtins, the Target type, and how values and
//! errors look to the operator.
//!
//! Owns: the engine setup (`engine.rs`), remote-address filters (`addr.rs`),
//! target addresses as a type that prints in hex (`address.rs`), the one table of builtins that
//! drives registration, `help()` and completion (`builtins.rs`), argument
//! conversion (`args.rs`), rendering of results (`output.rs`, `table.rs`),
//! the Fd, Thread and Signal values (`fds.rs`), the Stack value
//! (`stacks.rs`), the built-in playbooks
//! of `scripts/` (`playbooks.rs`) and what a run did (`report.rs`).
//! Must never touch ptrace or `/proc` directly: everything goes through
//! `process`. Runs on one thread: shared state is `Rc<RefCell<_>>`.

pub mod addr;
pub mod address;
pub mod args;
pub mod builtins;
pub mod engine;
pub mod fds;
pub mod output;
pub mod playbooks;
pub mod report;
pub mod stacks;
pub mod table;

use crate::process::{Settings, Target};
use std::cell::RefCell;
use std::rc::Rc;

/// A target as a Rhai value: cheap to clone, all clones the same process.
#[derive(Clone)]
pub struct TargetHandle(pub Rc<RefCell<Target>>);

impl TargetHandle {
    pub fn pid(&self) -> i32 {
        self.0.borrow().pid()
    }
}

/// What every builtin shares: the current target and how to operate.
pub struct Session {
    pub current: Option<TargetHandle>,
    pub settings: Settings,
    /// Resolve and check everything, change nothing, say what would be done.
    pub dry_run: bool,
    /// What the run did to targets (or would do), in order.
    pub actions: RefCell<Vec<report::Action>>,
}

pub type Shared = Rc<RefCell<Session>>;

impl Session {
    pub fn new(settings: Settings, dry_run: bool) -> Shared {
        Rc::new(RefCell::new(Session {
            current: None,
            settings,
            dry_run,
            actions: RefCell::new(Vec::new()),
        }))
    }

    /// Narrate `action` (unless it has no line: a call's value is the
    /// script's to print) and add it to the run's record.
    pub fn record(&self, action: report::Action) {
        if !action.text.is_empty() {
            report::narrate_action(&action.text);
        }
        self.actions.borrow_mut().push(action);
    }
}
