//! Commands as data: a program and its arguments, never a shell string, until
//! [`quote_command`] turns them into the one line a remote shell receives.
//!
//! Names that come from users (servers, stacks, networks, services, databases, users, domain
//! labels) are validated by allowlists in [`validate_name`] before any builder sees them.

use std::fmt;

/// A remote command as program + arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub program: String,
    pub args: Vec<String>,
}

impl Command {
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match quote_command(self) {
            Ok(line) => f.write_str(&line),
            Err(_) => write!(f, "<unquotable command {}>", self.program),
        }
    }
}

/// What kind of name is being validated; each has its own allowlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Server,
    Stack,
    Network,
    Service,
    Database,
    User,
    DomainLabel,
}

/// A name that passed its allowlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidName(String);

impl ValidName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ValidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Validates a user-supplied name against the allowlist for its kind.
pub fn validate_name(_kind: NameKind, _value: &str) -> Result<ValidName, crate::RemoteError> {
    Err(crate::RemoteError::Invalid {
        field: "name".into(),
        reason: "validation is being written".into(),
    })
}

/// Quotes a command for a POSIX remote shell. The only place in the workspace that does.
pub fn quote_command(_command: &Command) -> Result<String, crate::RemoteError> {
    Err(crate::RemoteError::Invalid {
        field: "command".into(),
        reason: "quoting is being written".into(),
    })
}
