//! One idempotent step of a remote plan: a check that exits 0 when the step is done already,
//! and the apply that does it. The setup plan (`setup.rs`) is made of steps, and
//! `batch_check.rs` runs many steps' checks in one round trip; both depend on this module,
//! neither on the other's internals.

use secrecy::SecretBox;

use crate::command::Command;

/// A check or an apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A command run as its argv.
    Exec(Command),
    /// A POSIX sh script, sent on stdin to `sh -s -- ARGS...`.
    Script { script: String, args: Vec<String> },
}

impl Action {
    pub(crate) fn script(script: &str, args: Vec<String>) -> Self {
        Action::Script {
            script: script.to_owned(),
            args,
        }
    }

    /// The command line that runs this action (for logs and exact-string tests).
    pub fn command(&self) -> Command {
        match self {
            Action::Exec(c) => c.clone(),
            Action::Script { args, .. } => Command::sh_script(args.iter().cloned()),
        }
    }

    pub(crate) fn stdin(&self) -> Option<SecretBox<[u8]>> {
        match self {
            Action::Exec(_) => None,
            Action::Script { script, .. } => Some(SecretBox::new(
                script.as_bytes().to_vec().into_boxed_slice(),
            )),
        }
    }
}

/// One idempotent step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Stable identifier, recorded by the core to resume (`apt_update`, `swarm_init`, ...).
    pub id: &'static str,
    /// What the user sees.
    pub name: &'static str,
    /// Exit 0 means the step is done already and `apply` is skipped.
    pub check: Action,
    pub apply: Action,
}
