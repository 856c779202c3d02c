//! Commands as data: a program and its arguments, never a shell string, until
//! [`quote_command`] turns them into the one line a remote shell receives.
//!
//! Names that come from users (servers, stacks, networks, services, databases, users, domain
//! labels) are validated by allowlists in [`validate_name`] before any builder sees them: the
//! builders below take [`ValidName`], which only [`validate_name`] can make.
//!
//! The builder modules ([`docker`], [`apt`], [`system`], [`ufw`]) only return [`Command`]s and
//! never run anything (kamal's `lib/kamal/commands` style); the executor runs them.

use std::fmt;
use std::net::IpAddr;

use crate::RemoteError;

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

    /// A command from a user's argv (`livchat server exec -- ARGV...`): the remote program
    /// receives exactly these arguments, byte for byte, because [`quote_command`] quotes each.
    pub fn from_argv<I, S>(argv: I) -> Result<Self, RemoteError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut it = argv.into_iter().map(Into::into);
        let program = it.next().ok_or_else(|| RemoteError::Invalid {
            field: "command".into(),
            reason: "the argv is empty; give at least the program to run".into(),
        })?;
        let command = Self {
            program,
            args: it.collect(),
        };
        // Fail here, not at execution time, so a bad argv is reported before connecting.
        quote_command(&command)?;
        Ok(command)
    }

    /// A POSIX `sh` script read from stdin (`sh -s -- ARGS...`). The script text travels on
    /// the channel's stdin; `args` become `$1`, `$2`, ... so user input is never interpolated
    /// into the script text.
    pub fn sh_script<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::new("sh").args(["-s", "--"]).args(args)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match quote_command(self) {
            Ok(line) => f.write_str(&line),
            Err(_) => write!(f, "<unquotable command {:?}>", self.program),
        }
    }
}

/// What kind of name is being validated; each has its own allowlist (see [`validate_name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Server,
    Stack,
    Network,
    Service,
    Database,
    User,
    DomainLabel,
    /// An IANA time zone (`Europe/Berlin`, `UTC`), for `timedatectl set-timezone`.
    Timezone,
    /// A Debian package name (`ca-certificates`, `docker.io`), for `apt-get install`.
    Package,
}

impl NameKind {
    /// The field name used in errors.
    pub fn field(self) -> &'static str {
        match self {
            NameKind::Server => "server name",
            NameKind::Stack => "stack name",
            NameKind::Network => "network name",
            NameKind::Service => "service name",
            NameKind::Database => "database name",
            NameKind::User => "user name",
            NameKind::DomainLabel => "domain label",
            NameKind::Timezone => "time zone",
            NameKind::Package => "package name",
        }
    }

    /// What the allowlist accepts, in words, for errors.
    pub fn allowed(self) -> &'static str {
        match self {
            NameKind::Server | NameKind::DomainLabel => {
                "1 to 63 lowercase ASCII letters, digits and '-', starting and ending with a letter or digit"
            }
            NameKind::Stack => {
                "1 to 63 lowercase ASCII letters, digits, '_' and '-', starting with a letter or digit"
            }
            NameKind::Network | NameKind::Service => {
                "1 to 63 ASCII letters, digits, '_', '.' and '-', starting with a letter or digit"
            }
            NameKind::Database => {
                "1 to 63 lowercase ASCII letters, digits and '_', starting with a letter or '_'"
            }
            NameKind::User => {
                "1 to 32 lowercase ASCII letters, digits, '_' and '-', starting with a letter or '_'"
            }
            NameKind::Timezone => {
                "1 to 64 ASCII letters, digits, '_', '+' and '-' in '/'-separated parts, each starting with a letter or digit"
            }
            NameKind::Package => {
                "2 to 64 lowercase ASCII letters, digits, '+', '.' and '-', starting with a letter or digit"
            }
        }
    }
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

impl AsRef<str> for ValidName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Checks `value` against `kind`'s allowlist. Pure ASCII allowlists reject by construction a
/// leading `-` (option injection), NUL, control characters, whitespace, shell metacharacters,
/// globs, quotes and every non-ASCII character (including look-alikes such as U+00A0).
fn allowed(kind: NameKind, value: &str) -> bool {
    let b = value.as_bytes();
    let Some(&first) = b.first() else {
        return false;
    };
    match kind {
        NameKind::Server | NameKind::DomainLabel => crate::names::dns_label(value).is_ok(),
        NameKind::Stack => {
            b.len() <= 63
                && is_lower_alnum(first)
                && b.iter()
                    .all(|&c| is_lower_alnum(c) || c == b'_' || c == b'-')
        }
        NameKind::Network | NameKind::Service => {
            b.len() <= 63
                && first.is_ascii_alphanumeric()
                && b.iter()
                    .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
        }
        NameKind::Database => {
            b.len() <= 63
                && (first.is_ascii_lowercase() || first == b'_')
                && b.iter().all(|&c| is_lower_alnum(c) || c == b'_')
        }
        NameKind::User => crate::names::unix_user(value).is_ok(),
        NameKind::Timezone => {
            b.len() <= 64
                && value.split('/').all(|part| {
                    part.as_bytes()
                        .first()
                        .is_some_and(u8::is_ascii_alphanumeric)
                        && part
                            .bytes()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'+' | b'-'))
                })
        }
        NameKind::Package => {
            (2..=64).contains(&b.len())
                && is_lower_alnum(first)
                && b.iter()
                    .all(|&c| is_lower_alnum(c) || matches!(c, b'+' | b'.' | b'-'))
        }
    }
}

/// Validates a user-supplied name against the allowlist for its kind.
///
/// The error names the field and what is allowed; the rejected value is shown escaped
/// (`{:?}`), so control characters cannot forge log lines.
pub fn validate_name(kind: NameKind, value: &str) -> Result<ValidName, RemoteError> {
    if allowed(kind, value) {
        Ok(ValidName(value.to_owned()))
    } else {
        Err(RemoteError::Invalid {
            field: kind.field().into(),
            reason: format!("{value:?} is not allowed; use {}", kind.allowed()),
        })
    }
}

fn quote_word(field: &str, word: &str) -> Result<String, RemoteError> {
    shlex::try_quote(word)
        .map(|q| q.into_owned())
        .map_err(|_| RemoteError::Invalid {
            field: field.into(),
            reason: "a NUL byte cannot be passed to a remote command".into(),
        })
}

/// Quotes a command for a POSIX shell. The only place in the workspace that does.
///
/// Every word, the program included, is quoted with `shlex::try_quote` (shlex >= 1.3), so
/// the program receives exactly `program` and `args` when `sh` parses the line. NUL cannot
/// cross an `execve` and is rejected; an empty program is rejected. The line is for `sh`:
/// what goes to sshd is [`for_any_login_shell`] of it.
pub fn quote_command(command: &Command) -> Result<String, RemoteError> {
    if command.program.is_empty() {
        return Err(RemoteError::Invalid {
            field: "command program".into(),
            reason: "the program is empty".into(),
        });
    }
    let mut line = quote_word("command program", &command.program)?;
    for (i, arg) in command.args.iter().enumerate() {
        line.push(' ');
        line.push_str(&quote_word(&format!("command argument {}", i + 1), arg)?);
    }
    Ok(line)
}

/// Wraps a POSIX shell line so that `sh` runs it, whatever the user's login shell is.
///
/// sshd hands the command to the login shell with `-c`, and a `server add --user` may have
/// fish or csh, which read quotes differently (fish takes `\'` inside single quotes as an
/// escape). So the line travels base64-encoded inside a fixed text with no backslash, no
/// single quote, no `!` and no newline, which every shell passes to `sh -c` unchanged; `sh`
/// decodes and evaluates it. Needs `base64` (coreutils, busybox) on the server.
pub fn for_any_login_shell(posix_line: &str) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(posix_line);
    format!("sh -c 'eval \"$(printf %s {encoded} | base64 -d)\"'")
}

/// Docker CLI commands.
pub mod docker {
    use super::*;

    /// `docker info --format '{{.Swarm.LocalNodeState}}'`: prints `active` on a Swarm node.
    pub fn swarm_state() -> Command {
        Command::new("docker").args(["info", "--format", "{{.Swarm.LocalNodeState}}"])
    }

    /// `docker swarm init --advertise-addr ADDR`.
    pub fn swarm_init(advertise_addr: IpAddr) -> Command {
        Command::new("docker").args([
            "swarm".to_owned(),
            "init".to_owned(),
            "--advertise-addr".to_owned(),
            advertise_addr.to_string(),
        ])
    }

    /// `docker network create --driver overlay --attachable NAME`.
    pub fn network_create_overlay(name: &ValidName) -> Command {
        Command::new("docker").args([
            "network",
            "create",
            "--driver",
            "overlay",
            "--attachable",
            name.as_str(),
        ])
    }

    /// `docker network inspect --format '{{.Driver}} {{.Attachable}}' NAME`.
    pub fn network_inspect(name: &ValidName) -> Command {
        Command::new("docker").args([
            "network",
            "inspect",
            "--format",
            "{{.Driver}} {{.Attachable}}",
            name.as_str(),
        ])
    }

    /// `docker version --format '{{.Server.Version}}'`: fails when the engine is not running.
    pub fn server_version() -> Command {
        Command::new("docker").args(["version", "--format", "{{.Server.Version}}"])
    }

    /// `docker login --username USER --password-stdin REGISTRY`: the password goes on stdin.
    pub fn login_password_stdin(registry: &str, user: &ValidName) -> Command {
        Command::new("docker").args([
            "login",
            "--username",
            user.as_str(),
            "--password-stdin",
            "--",
            registry,
        ])
    }
}

/// Debian/Ubuntu package commands. All are non-interactive, and all wait up to
/// [`apt::LOCK_TIMEOUT_SECS`] for the dpkg lock instead of failing at once: a fresh server's
/// unattended-upgrades (or an apt run interrupted a moment ago) holds it.
pub mod apt {
    use super::*;

    /// How long an apt command waits for the dpkg lock (`DPkg::Lock::Timeout`).
    pub const LOCK_TIMEOUT_SECS: u32 = 600;
    const LOCK_TIMEOUT: &str = "DPkg::Lock::Timeout=600";

    /// `env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -q`.
    pub fn update() -> Command {
        Command::new("env").args([
            "DEBIAN_FRONTEND=noninteractive",
            "apt-get",
            "-o",
            LOCK_TIMEOUT,
            "update",
            "-q",
        ])
    }

    /// `apt-get install -y -q --no-install-recommends -- PKGS...`, non-interactive.
    pub fn install(packages: &[ValidName]) -> Command {
        Command::new("env")
            .args([
                "DEBIAN_FRONTEND=noninteractive",
                "apt-get",
                "-o",
                LOCK_TIMEOUT,
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                "--",
            ])
            .args(packages.iter().map(ValidName::as_str))
    }

    /// `apt-get full-upgrade`, keeping changed config files (no prompt).
    pub fn full_upgrade() -> Command {
        Command::new("env").args([
            "DEBIAN_FRONTEND=noninteractive",
            "apt-get",
            "-o",
            LOCK_TIMEOUT,
            "full-upgrade",
            "-y",
            "-q",
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
        ])
    }

    /// `dpkg-query -W -f '${Status}\n' -- PKGS...`: one `install ok installed` line per
    /// installed package; exits non-zero when one is unknown.
    pub fn query_status(packages: &[ValidName]) -> Command {
        Command::new("dpkg-query")
            .args(["-W", "-f", "${Status}\\n", "--"])
            .args(packages.iter().map(ValidName::as_str))
    }
}

/// systemd and basic system commands.
pub mod system {
    use super::*;

    /// `timedatectl set-timezone TZ`.
    pub fn set_timezone(timezone: &ValidName) -> Command {
        Command::new("timedatectl").args(["set-timezone", timezone.as_str()])
    }

    /// `hostnamectl set-hostname NAME`.
    pub fn set_hostname(name: &ValidName) -> Command {
        Command::new("hostnamectl").args(["set-hostname", name.as_str()])
    }

    /// `cloud-init status --wait`.
    pub fn cloud_init_wait() -> Command {
        Command::new("cloud-init").args(["status", "--wait"])
    }

    /// `cat /etc/os-release`.
    pub fn os_release() -> Command {
        Command::new("cat").arg("/etc/os-release")
    }

    /// The memory total and one line per online CPU, in one round trip (grep prefixes each
    /// line with its file's name).
    pub fn resources() -> Command {
        Command::new("grep").args([
            "-E",
            "^(MemTotal:|processor)",
            "/proc/meminfo",
            "/proc/cpuinfo",
        ])
    }

    /// `true`: the cheapest round trip, used to wait for SSH.
    pub fn noop() -> Command {
        Command::new("true")
    }
}

/// Uncomplicated Firewall commands.
pub mod ufw {
    use super::*;

    /// `ufw allow PORT/tcp`.
    pub fn allow_tcp(port: u16) -> Command {
        Command::new("ufw").args(["allow".to_owned(), format!("{port}/tcp")])
    }

    /// `ufw default deny incoming`.
    pub fn default_deny_incoming() -> Command {
        Command::new("ufw").args(["default", "deny", "incoming"])
    }

    /// `ufw --force enable`: no prompt about SSH, which was allowed first.
    pub fn enable() -> Command {
        Command::new("ufw").args(["--force", "enable"])
    }

    /// `ufw status verbose`.
    pub fn status() -> Command {
        Command::new("ufw").args(["status", "verbose"])
    }
}
