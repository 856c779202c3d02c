//! The server setup plan as data: ordered, idempotent steps, each with a check (exit 0 means
//! "already done") and an apply, each a [`Command`] or a small POSIX `sh` script sent on stdin
//! to `sh -s -- ARGS...`. User input only ever reaches a script as a positional parameter
//! (`"$1"`), validated by an allowlist first, never interpolated into the script text.
//!
//! [`plan`] computes the steps for a [`SetupConfig`] and the server's [`OsRelease`] (Debian
//! 12/13, Ubuntu 22.04/24.04, read from `/etc/os-release` by [`detect_os`]); [`run_plan`]
//! executes exactly that plan: it runs every step's check in one round trip
//! ([`crate::batch_check`]), skips the steps whose check passes up to the first that does not,
//! applies that one and runs its check again to prove the step took; each later step is then
//! checked on its own (it may depend on what was applied) and applied when undone. A re-run on
//! a set-up server therefore skips every step after one round trip. Progress is reported per step; a failure names the
//! step and the tail of its stderr; steps recorded complete (by the core) can be skipped and a
//! run can start at a given step; a [`CancellationToken`] stops it.
//!
//! # What is tested for real, and what only as checked text
//! The test `setup_real_run` runs the whole plan over real SSH against a Debian 12 chroot
//! (`fixtures::sshd::DebianHost`: debootstrap, systemd-less, its own PID/mount/UTS/cgroup and
//! network namespaces with NAT to the Debian mirror, the chroot's own OpenSSH on port 22), then
//! runs it again and expects every step skipped. There, for real: wait for cloud-init (the
//! "absent" branch), apt update, base packages, time zone and hostname (their systemd-less
//! branches: `/etc/localtime` + `/etc/timezone`, `/etc/hostname` + `hostname`), Docker log
//! rotation (`daemon.json`, first write), Docker Engine from Debian's `docker.io` (started as
//! `setsid dockerd`, as there is no systemd), Swarm init advertising the host's address, the
//! attachable overlay network, and ufw (enabled for real inside the network namespace: allow
//! the server's SSH port, 80 and 443, deny incoming; the test's SSH session survives it, and
//! `setup_real_run` also runs the firewall step on a host whose sshd listens on another port
//! and connects again afterwards).
//! Only as checked text (ShellCheck + exact-string tests, no run): the official Docker apt
//! repository variant (download.docker.com is unreachable from build machines), the
//! `timedatectl`/`hostnamectl`/`systemctl` branches (no systemd in the sandbox), restarting a
//! running engine after a `daemon.json` change, full upgrade (slow, and it would change the
//! cached image), swap (swap is global to the host kernel, so a test must not enable it), and
//! Ubuntu (no Ubuntu mirror here).
//!
//! Known limits, documented rather than hidden: ufw does not filter ports Docker publishes
//! (Docker writes its own iptables rules), and a multi-node Swarm needs 2377/7946/4789 opened
//! between its nodes, which this single-node plan does not do.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::command::{Command, NameKind, ValidName, apt, docker, validate_name};
use crate::executor::{ExecOptions, ExecOutput, LineSink, RemoteError, RemoteExecutor};
pub use crate::step::{Action, Step};

/// Where Docker Engine comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DockerSource {
    /// Docker's official apt repository, its signing key checked against Docker's published
    /// fingerprint (packages `docker-ce`, `docker-ce-cli`, `containerd.io`, plugins).
    #[default]
    Official,
    /// The distribution's `docker.io` package.
    Distribution,
}

/// Swap on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Swap {
    /// Leave swap as it is.
    #[default]
    Off,
    /// A swap file sized by RAM: 2 GiB below 2 GiB of RAM, as much as RAM up to 8 GiB, else 8 GiB.
    Auto,
    /// A swap file of this many MiB.
    FixedMib(u32),
}

/// What the plan sets up. Build it with [`SetupConfig::new`], which validates the names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupConfig {
    pub hostname: ValidName,
    pub timezone: ValidName,
    /// The address Swarm advertises (the server's public or private IP).
    pub advertise_addr: IpAddr,
    pub network: ValidName,
    pub docker: DockerSource,
    pub full_upgrade: bool,
    pub swap: Swap,
    pub firewall: bool,
    /// The port the server's sshd listens on: the firewall allows it before it denies the rest,
    /// or the next connection is locked out.
    pub ssh_port: u16,
    /// Docker `json-file` rotation: `max-size` (e.g. `10m`) and `max-file`.
    pub log_max_size: String,
    pub log_max_file: u32,
    /// Installed before anything else (`ca-certificates curl gnupg tzdata`, plus `ufw`).
    pub base_packages: Vec<ValidName>,
}

/// The network every stack joins, unless configured otherwise.
pub const DEFAULT_NETWORK: &str = "livchat_network";

impl SetupConfig {
    /// Defaults: time zone `UTC`, network `livchat_network`, Docker from the official
    /// repository, no full upgrade, no swap, firewall on, logs rotated at 10m x 3.
    pub fn new(hostname: &str, advertise_addr: IpAddr) -> Result<Self, RemoteError> {
        let base = ["ca-certificates", "curl", "gnupg", "tzdata"]
            .into_iter()
            .map(|p| validate_name(NameKind::Package, p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            hostname: validate_name(NameKind::Server, hostname)?,
            timezone: validate_name(NameKind::Timezone, "UTC")?,
            advertise_addr,
            network: validate_name(NameKind::Network, DEFAULT_NETWORK)?,
            docker: DockerSource::Official,
            full_upgrade: false,
            swap: Swap::Off,
            firewall: true,
            ssh_port: 22,
            log_max_size: "10m".into(),
            log_max_file: 3,
            base_packages: base,
        })
    }

    fn validate(&self) -> Result<(), RemoteError> {
        let size = self.log_max_size.as_bytes();
        let size_ok = size.len() >= 2
            && size.len() <= 8
            && size[..size.len() - 1].iter().all(u8::is_ascii_digit)
            && size[0] != b'0'
            && matches!(size[size.len() - 1], b'k' | b'm' | b'g');
        if !size_ok {
            return Err(RemoteError::Invalid {
                field: "log max size".into(),
                reason: format!(
                    "{:?} is not allowed; use a positive number followed by k, m or g (e.g. 10m)",
                    self.log_max_size
                ),
            });
        }
        if !(1..=100).contains(&self.log_max_file) {
            return Err(RemoteError::Invalid {
                field: "log max file".into(),
                reason: format!("{} is not allowed; use 1 to 100", self.log_max_file),
            });
        }
        if let Swap::FixedMib(mib) = self.swap
            && !(256..=65536).contains(&mib)
        {
            return Err(RemoteError::Invalid {
                field: "swap size".into(),
                reason: format!("{mib} MiB is not allowed; use 256 to 65536 MiB"),
            });
        }
        if self.ssh_port == 0 {
            return Err(RemoteError::Invalid {
                field: "ssh port".into(),
                reason: "0 is not allowed; use the port sshd listens on (1-65535)".into(),
            });
        }
        if self.advertise_addr.is_unspecified() || self.advertise_addr.is_multicast() {
            return Err(RemoteError::Invalid {
                field: "advertise address".into(),
                reason: format!(
                    "{} cannot be advertised; use the server's own IP address",
                    self.advertise_addr
                ),
            });
        }
        Ok(())
    }

    /// The `daemon.json` the plan writes (log rotation), as one line of JSON.
    pub fn daemon_json(&self) -> String {
        serde_json::json!({
            "log-driver": "json-file",
            "log-opts": {
                "max-size": self.log_max_size,
                "max-file": self.log_max_file.to_string(),
            }
        })
        .to_string()
    }
}

/// A supported distribution, from `/etc/os-release`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distro {
    Debian,
    Ubuntu,
}

/// The server's operating system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsRelease {
    pub distro: Distro,
    /// `12`, `13`, `22.04`, `24.04`.
    pub version_id: String,
    /// `bookworm`, `trixie`, `jammy`, `noble`.
    pub codename: String,
}

const SUPPORTED: &[(Distro, &str, &str)] = &[
    (Distro::Debian, "12", "bookworm"),
    (Distro::Debian, "13", "trixie"),
    (Distro::Ubuntu, "22.04", "jammy"),
    (Distro::Ubuntu, "24.04", "noble"),
];

impl OsRelease {
    /// Parses `/etc/os-release` and accepts only the supported releases.
    pub fn parse(text: &str) -> Result<Self, RemoteError> {
        let field = |key: &str| {
            text.lines().find_map(|l| {
                let value = l.trim().strip_prefix(key)?.strip_prefix('=')?;
                Some(value.trim_matches(|c| c == '"' || c == '\'').to_owned())
            })
        };
        let id = field("ID").unwrap_or_default();
        let version = field("VERSION_ID").unwrap_or_default();
        let supported = SUPPORTED
            .iter()
            .find(|(d, v, _)| {
                let name = match d {
                    Distro::Debian => "debian",
                    Distro::Ubuntu => "ubuntu",
                };
                name == id && *v == version
            })
            .ok_or_else(|| RemoteError::Invalid {
                field: "operating system".into(),
                reason: format!(
                    "{id:?} {version:?} is not supported; use Debian 12 or 13, or Ubuntu 22.04 or 24.04"
                ),
            })?;
        Ok(Self {
            distro: supported.0,
            version_id: supported.1.to_owned(),
            codename: supported.2.to_owned(),
        })
    }

    /// `debian` or `ubuntu`, as Docker's repository paths spell them.
    pub fn id(&self) -> &'static str {
        match self.distro {
            Distro::Debian => "debian",
            Distro::Ubuntu => "ubuntu",
        }
    }
}

/// Reads and parses the server's `/etc/os-release`.
pub async fn detect_os(executor: &dyn RemoteExecutor) -> Result<OsRelease, RemoteError> {
    let out = executor
        .exec(
            &crate::command::system::os_release(),
            ExecOptions {
                timeout: Duration::from_secs(60),
                ..Default::default()
            },
        )
        .await?;
    if !out.success() {
        return Err(RemoteError::Invalid {
            field: "operating system".into(),
            reason: "/etc/os-release could not be read".into(),
        });
    }
    OsRelease::parse(&String::from_utf8_lossy(&out.stdout))
}

/// Docker's release signing key fingerprint, as published at docs.docker.com/engine/install.
pub const DOCKER_GPG_FINGERPRINT: &str = "9DC858229FC7DD38854AE2D88D81803C0EBFCD88";

/// Scripts; each is linted by ShellCheck in `tests/setup_plan.rs`.
pub mod scripts {
    /// Exit 0 when cloud-init is absent or has finished.
    pub const CLOUD_INIT_CHECK: &str = r#"set -eu
if ! command -v cloud-init >/dev/null 2>&1; then exit 0; fi
cloud-init status 2>/dev/null | grep -Eq '^status: (done|disabled)'
"#;

    /// `cloud-init status --wait` exits 2 for "done with recoverable errors": that is done.
    pub const CLOUD_INIT_WAIT: &str = r#"set -u
rc=0
cloud-init status --wait >/dev/null || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 2 ]
"#;

    /// apt's own list files keep the mirror's mtime, so a stamp of ours records the update.
    pub const APT_UPDATED_CHECK: &str = r#"set -eu
stamp=/var/lib/livchat/apt-updated
[ -f "$stamp" ] && [ -n "$(find "$stamp" -mmin -1440)" ]
"#;

    pub const APT_UPDATE: &str = r#"set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -q
mkdir -p /var/lib/livchat
touch /var/lib/livchat/apt-updated
"#;

    /// Exit 0 when a full upgrade would install nothing.
    pub const UPGRADE_CHECK: &str = r#"set -eu
! apt-get -s -q full-upgrade | grep -q '^Inst '
"#;

    /// Exit 0 when every package in "$@" is installed.
    pub const PACKAGES_CHECK: &str = r#"set -eu
for p in "$@"; do
  dpkg-query -W -f '${Status}\n' -- "$p" 2>/dev/null | grep -q '^install ok installed$'
done
"#;

    /// $1 is the time zone (validated by the allowlist).
    pub const TIMEZONE_CHECK: &str = r#"set -eu
if [ -d /run/systemd/system ] && command -v timedatectl >/dev/null 2>&1; then
  [ "$(timedatectl show -p Timezone --value)" = "$1" ]
else
  [ "$(readlink /etc/localtime)" = "/usr/share/zoneinfo/$1" ] && [ "$(cat /etc/timezone)" = "$1" ]
fi
"#;

    pub const TIMEZONE_SET: &str = r#"set -eu
if [ ! -f "/usr/share/zoneinfo/$1" ]; then
  echo "unknown time zone: $1 (no /usr/share/zoneinfo/$1)" >&2
  exit 1
fi
if [ -d /run/systemd/system ] && command -v timedatectl >/dev/null 2>&1; then
  timedatectl set-timezone "$1"
else
  ln -sfn "/usr/share/zoneinfo/$1" /etc/localtime
  printf '%s\n' "$1" > /etc/timezone
fi
"#;

    /// $1 is the host name (validated by the allowlist).
    pub const HOSTNAME_CHECK: &str = r#"set -eu
[ "$(hostname)" = "$1" ] && [ "$(cat /etc/hostname)" = "$1" ] && grep -Eq "^127\.0\.1\.1[[:space:]]+$1\$" /etc/hosts
"#;

    /// Debian resolves the own name through a `127.0.1.1` line in /etc/hosts.
    pub const HOSTNAME_SET: &str = r#"set -eu
if [ -d /run/systemd/system ] && command -v hostnamectl >/dev/null 2>&1; then
  hostnamectl set-hostname "$1"
else
  printf '%s\n' "$1" > /etc/hostname
  hostname "$1"
fi
grep -v '^127\.0\.1\.1[[:space:]]' /etc/hosts > /etc/hosts.livchat || true
printf '127.0.1.1\t%s\n' "$1" >> /etc/hosts.livchat
cat /etc/hosts.livchat > /etc/hosts
rm -f /etc/hosts.livchat
"#;

    pub const SWAP_CHECK: &str = r#"set -eu
[ -n "$(swapon --show=NAME --noheadings)" ]
"#;

    /// $1 is the size in MiB, or `auto` to size it by RAM.
    pub const SWAP_CREATE: &str = r#"set -eu
if [ "$1" = auto ]; then
  ram=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)
  if [ "$ram" -lt 2048 ]; then size=2048
  elif [ "$ram" -le 8192 ]; then size=$ram
  else size=8192
  fi
else
  size=$1
fi
if [ ! -f /swapfile ]; then
  fallocate -l "${size}M" /swapfile 2>/dev/null || dd if=/dev/zero of=/swapfile bs=1M count="$size" status=none
  chmod 600 /swapfile
  mkswap /swapfile >/dev/null
fi
swapon /swapfile
grep -q '^/swapfile[[:space:]]' /etc/fstab || printf '/swapfile none swap sw 0 0\n' >> /etc/fstab
"#;

    /// $1 is the wanted content of daemon.json.
    pub const DAEMON_JSON_CHECK: &str = r#"set -eu
[ -f /etc/docker/daemon.json ] && [ "$(cat /etc/docker/daemon.json)" = "$1" ]
"#;

    /// Writes daemon.json atomically and restarts a running engine so it takes effect.
    /// Without systemd (a container or chroot) the engine is stopped by its pid file and
    /// started again in a session of its own.
    pub const DAEMON_JSON_WRITE: &str = r#"set -eu
mkdir -p /etc/docker
printf '%s\n' "$1" > /etc/docker/daemon.json.livchat
mv /etc/docker/daemon.json.livchat /etc/docker/daemon.json
if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  if [ -d /run/systemd/system ]; then
    systemctl restart docker
  else
    kill -TERM "$(cat /var/run/docker.pid)"
    i=0
    while [ -e /var/run/docker.pid ]; do
      i=$((i + 1))
      if [ "$i" -ge 60 ]; then echo "the Docker engine did not stop within 60 s" >&2; exit 1; fi
      sleep 1
    done
    setsid dockerd </dev/null >>/var/log/dockerd.log 2>&1 &
  fi
fi
"#;

    /// Exit 0 when the engine answers.
    pub const DOCKER_CHECK: &str = r#"set -eu
command -v docker >/dev/null 2>&1
docker version --format '{{.Server.Version}}' >/dev/null 2>&1
"#;

    /// Adds Docker's apt repository. $1 is `debian` or `ubuntu`, $2 the codename, $3 the
    /// expected key fingerprint: a key with another fingerprint is refused.
    pub const DOCKER_OFFICIAL_REPO: &str = r#"set -eu
export DEBIAN_FRONTEND=noninteractive
install -m 0755 -d /etc/apt/keyrings
curl -fsSL "https://download.docker.com/linux/$1/gpg" -o /etc/apt/keyrings/docker.asc.new
fpr=$(gpg --show-keys --with-colons /etc/apt/keyrings/docker.asc.new | awk -F: '$1 == "fpr" { print $10; exit }')
if [ "$fpr" != "$3" ]; then
  rm -f /etc/apt/keyrings/docker.asc.new
  echo "Docker's apt key has fingerprint $fpr, expected $3" >&2
  exit 1
fi
chmod a+r /etc/apt/keyrings/docker.asc.new
mv /etc/apt/keyrings/docker.asc.new /etc/apt/keyrings/docker.asc
arch=$(dpkg --print-architecture)
printf 'deb [arch=%s signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/%s %s stable\n' "$arch" "$1" "$2" > /etc/apt/sources.list.d/docker.list
apt-get -o DPkg::Lock::Timeout=600 update -q
"#;

    /// Starts the engine and waits up to 60 s for it to answer. With systemd (every real
    /// server) through its unit; without (a container or chroot, where Debian's init script
    /// fails on cgroup v1 mounts and ulimits) `dockerd` in a session of its own, all its file
    /// descriptors redirected so the SSH channel closes when this script ends.
    pub const DOCKER_START: &str = r#"set -eu
if [ -d /run/systemd/system ]; then
  systemctl enable --now docker
elif ! docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  setsid dockerd </dev/null >>/var/log/dockerd.log 2>&1 &
fi
i=0
until docker version --format '{{.Server.Version}}' >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -ge 60 ]; then
    echo "the Docker engine did not answer within 60 s" >&2
    exit 1
  fi
  sleep 1
done
"#;

    pub const SWARM_CHECK: &str = r#"set -eu
[ "$(docker info --format '{{.Swarm.LocalNodeState}}')" = active ]
"#;

    /// $1 is the network name (validated by the allowlist).
    pub const NETWORK_CHECK: &str = r#"set -eu
[ "$(docker network inspect --format '{{.Driver}} {{.Attachable}}' -- "$1" 2>/dev/null)" = "overlay true" ]
"#;

    /// $1 is the SSH port. Exit 0 when ufw is enabled and loaded, denies incoming by default
    /// and allows the SSH port, 80 and 443. It asks what `ufw status verbose` asks, without
    /// starting ufw's Python (150 ms of CPU, the slowest check of a setup re-run by far):
    /// ufw is loaded when its chains are in the kernel (ufw's own test), its default is in
    /// /etc/default/ufw and its rules in the `### tuple ###` lines ufw itself reads back from
    /// user.rules. It also asks that ufw is enabled at boot, which the status does not show.
    pub const FIREWALL_CHECK: &str = r#"set -eu
grep -q '^ENABLED=yes' /etc/ufw/ufw.conf
iptables -n -L ufw-user-input >/dev/null 2>&1
grep -q '^DEFAULT_INPUT_POLICY="DROP"' /etc/default/ufw
for port in "$1" 80 443; do
  grep -Eq "^### tuple ### allow tcp $port 0\.0\.0\.0/0 any 0\.0\.0\.0/0 in( |\$)" /etc/ufw/user.rules
done
"#;

    /// $1 is the SSH port (the server's own, not always 22). It is allowed before the
    /// default turns to deny, so the session in use, and the next one, get through.
    pub const FIREWALL_APPLY: &str = r#"set -eu
ufw allow "$1/tcp"
ufw allow 80/tcp
ufw allow 443/tcp
ufw default deny incoming
ufw --force enable
"#;
}

/// Computes the plan: the steps, in order, for this configuration and operating system.
pub fn plan(config: &SetupConfig, os: &OsRelease) -> Result<Vec<Step>, RemoteError> {
    use scripts::*;
    config.validate()?;
    let mut steps = Vec::new();
    steps.push(Step {
        id: "cloud_init",
        name: "wait for cloud-init",
        check: Action::script(CLOUD_INIT_CHECK, vec![]),
        apply: Action::script(CLOUD_INIT_WAIT, vec![]),
    });
    steps.push(Step {
        id: "apt_update",
        name: "apt update",
        check: Action::script(APT_UPDATED_CHECK, vec![]),
        apply: Action::script(APT_UPDATE, vec![]),
    });
    if config.full_upgrade {
        steps.push(Step {
            id: "apt_upgrade",
            name: "full upgrade",
            check: Action::script(UPGRADE_CHECK, vec![]),
            apply: Action::Exec(apt::full_upgrade()),
        });
    }
    let mut base = config.base_packages.clone();
    if config.firewall && !base.iter().any(|p| p.as_str() == "ufw") {
        base.push(validate_name(NameKind::Package, "ufw")?);
    }
    if !base.is_empty() {
        steps.push(Step {
            id: "base_packages",
            name: "base packages",
            check: Action::script(
                PACKAGES_CHECK,
                base.iter().map(|p| p.as_str().to_owned()).collect(),
            ),
            apply: Action::Exec(apt::install(&base)),
        });
    }
    let tz = vec![config.timezone.as_str().to_owned()];
    steps.push(Step {
        id: "timezone",
        name: "time zone",
        check: Action::script(TIMEZONE_CHECK, tz.clone()),
        apply: Action::script(TIMEZONE_SET, tz),
    });
    let host = vec![config.hostname.as_str().to_owned()];
    steps.push(Step {
        id: "hostname",
        name: "hostname",
        check: Action::script(HOSTNAME_CHECK, host.clone()),
        apply: Action::script(HOSTNAME_SET, host),
    });
    let swap_size = match config.swap {
        Swap::Off => None,
        Swap::Auto => Some("auto".to_owned()),
        Swap::FixedMib(mib) => Some(mib.to_string()),
    };
    if let Some(size) = swap_size {
        steps.push(Step {
            id: "swap",
            name: "swap",
            check: Action::script(SWAP_CHECK, vec![]),
            apply: Action::script(SWAP_CREATE, vec![size]),
        });
    }
    // Before the engine exists, so its first start already rotates logs.
    let json = vec![config.daemon_json()];
    steps.push(Step {
        id: "docker_log_rotation",
        name: "Docker log rotation",
        check: Action::script(DAEMON_JSON_CHECK, json.clone()),
        apply: Action::script(DAEMON_JSON_WRITE, json),
    });
    let packages: &[&str] = match config.docker {
        DockerSource::Official => &[
            "docker-ce",
            "docker-ce-cli",
            "containerd.io",
            "docker-buildx-plugin",
            "docker-compose-plugin",
        ],
        DockerSource::Distribution => &["docker.io"],
    };
    let packages = packages
        .iter()
        .map(|p| validate_name(NameKind::Package, p))
        .collect::<Result<Vec<_>, _>>()?;
    if config.docker == DockerSource::Official {
        steps.push(Step {
            id: "docker_repository",
            name: "Docker apt repository",
            check: Action::Exec(
                Command::new("test").args(["-s", "/etc/apt/sources.list.d/docker.list"]),
            ),
            apply: Action::script(
                DOCKER_OFFICIAL_REPO,
                vec![
                    os.id().to_owned(),
                    os.codename.clone(),
                    DOCKER_GPG_FINGERPRINT.to_owned(),
                ],
            ),
        });
    }
    steps.push(Step {
        id: "docker_packages",
        name: "Docker Engine packages",
        check: Action::script(
            PACKAGES_CHECK,
            packages.iter().map(|p| p.as_str().to_owned()).collect(),
        ),
        apply: Action::Exec(apt::install(&packages)),
    });
    steps.push(Step {
        id: "docker_running",
        name: "Docker Engine running",
        check: Action::script(DOCKER_CHECK, vec![]),
        apply: Action::script(DOCKER_START, vec![]),
    });
    steps.push(Step {
        id: "swarm_init",
        name: "Swarm init",
        check: Action::script(SWARM_CHECK, vec![]),
        apply: Action::Exec(docker::swarm_init(config.advertise_addr)),
    });
    steps.push(Step {
        id: "overlay_network",
        name: "overlay network",
        check: Action::script(NETWORK_CHECK, vec![config.network.as_str().to_owned()]),
        apply: Action::Exec(docker::network_create_overlay(&config.network)),
    });
    if config.firewall {
        steps.push(Step {
            id: "firewall",
            name: "firewall (ufw)",
            check: Action::script(FIREWALL_CHECK, vec![config.ssh_port.to_string()]),
            apply: Action::script(FIREWALL_APPLY, vec![config.ssh_port.to_string()]),
        });
    }
    Ok(steps)
}

/// What happened to a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    /// About to run its check.
    Started,
    /// Its check failed, it was applied, and its check now passes.
    Ran,
    /// Its check passed (or the caller recorded it complete): nothing was changed.
    Skipped,
    Failed,
}

/// One progress report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepProgress {
    pub id: &'static str,
    pub name: &'static str,
    /// 1-based.
    pub index: usize,
    pub total: usize,
    pub state: StepState,
}

/// Receives progress while the plan runs.
pub type StepProgressSink = Arc<dyn Fn(StepProgress) + Send + Sync>;

/// Options of a run.
#[derive(Clone)]
pub struct RunOptions {
    /// Steps the caller recorded complete: skipped without even running their check.
    pub completed: HashSet<String>,
    /// Start at this step id (earlier steps are skipped).
    pub start_at: Option<String>,
    pub cancel: CancellationToken,
    /// Each check and each apply gets this long.
    pub step_timeout: Duration,
    pub on_progress: Option<StepProgressSink>,
    /// Output lines of applies (for job logs).
    pub on_line: Option<LineSink>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            completed: HashSet::new(),
            start_at: None,
            cancel: CancellationToken::new(),
            step_timeout: Duration::from_secs(1800),
            on_progress: None,
            on_line: None,
        }
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("completed", &self.completed)
            .field("start_at", &self.start_at)
            .field("step_timeout", &self.step_timeout)
            .finish_non_exhaustive()
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// Every step of the plan with what happened to it.
    pub steps: Vec<(&'static str, StepState)>,
    /// Commands executed (each one SSH channel, one round trip; the batch of checks is one).
    pub round_trips: u64,
    pub elapsed: Duration,
}

/// Errors of a run.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "setup step {index}/{total} '{step}' failed (exit status {exit_status}): {stderr_tail}"
    )]
    StepFailed {
        step: &'static str,
        index: usize,
        total: usize,
        exit_status: u32,
        stderr_tail: String,
    },
    #[error(
        "setup step {index}/{total} '{step}' was applied but its check still fails: {stderr_tail}"
    )]
    NotConverged {
        step: &'static str,
        index: usize,
        total: usize,
        stderr_tail: String,
    },
    #[error("setup step {index}/{total} '{step}': {source}")]
    Remote {
        step: &'static str,
        index: usize,
        total: usize,
        #[source]
        source: RemoteError,
    },
    #[error("unknown setup step {0:?} to start at")]
    UnknownStep(String),
}

/// The last `lines` lines of a stream, for error messages.
pub fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs the plan (see the module docs).
pub async fn run_plan(
    executor: &dyn RemoteExecutor,
    steps: &[Step],
    options: RunOptions,
) -> Result<RunReport, SetupError> {
    let started = Instant::now();
    let total = steps.len();
    let start_index = match &options.start_at {
        None => 0,
        Some(id) => steps
            .iter()
            .position(|s| s.id == id)
            .ok_or_else(|| SetupError::UnknownStep(id.clone()))?,
    };
    let progress = |step: &Step, index: usize, state: StepState| {
        if let Some(sink) = &options.on_progress {
            sink(StepProgress {
                id: step.id,
                name: step.name,
                index,
                total,
                state,
            });
        }
    };
    // Atomic rather than Cell so the future stays Send (the core runs it inside spawned jobs).
    let round_trips = std::sync::atomic::AtomicU64::new(0);
    let pending = |i: usize, step: &Step| i >= start_index && !options.completed.contains(step.id);
    // All checks in one round trip; their answers hold until the first apply, after which
    // each later step is checked again on its own (it may depend on what was applied).
    let mut batch: Option<Vec<bool>> = None;
    let to_check: Vec<Step> = steps
        .iter()
        .enumerate()
        .filter(|(i, s)| pending(*i, s))
        .map(|(_, s)| s.clone())
        .collect();
    if to_check.len() > 1 {
        round_trips.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let done = crate::batch_check::check_steps(
            executor,
            &to_check,
            options.step_timeout,
            options.cancel.clone(),
        )
        .await
        .map_err(|source| {
            let first = &to_check[0];
            let index = steps.iter().position(|s| s.id == first.id).unwrap_or(0) + 1;
            SetupError::Remote {
                step: first.name,
                index,
                total,
                source,
            }
        })?;
        batch = Some(done);
    }
    let mut batch_answers = batch.map(Vec::into_iter);
    let mut report = Vec::with_capacity(total);
    for (i, step) in steps.iter().enumerate() {
        let index = i + 1;
        if !pending(i, step) {
            progress(step, index, StepState::Skipped);
            report.push((step.id, StepState::Skipped));
            continue;
        }
        // `Some(false)`: the batch saw it undone, so it is applied without checking again;
        // `None`: no batch answer holds any more (or there was none), so it is checked.
        let batch_says = batch_answers.as_mut().and_then(Iterator::next);
        progress(step, index, StepState::Started);
        if batch_says == Some(true) {
            progress(step, index, StepState::Skipped);
            report.push((step.id, StepState::Skipped));
            continue;
        }
        // From here on, the batch's answers are stale.
        batch_answers = None;
        let known_undone = batch_says == Some(false);
        let run = |action: &Action, stream: bool| {
            round_trips.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let opts = ExecOptions {
                stdin: action.stdin(),
                timeout: options.step_timeout,
                cancel: options.cancel.clone(),
                on_line: if stream {
                    options.on_line.clone()
                } else {
                    None
                },
            };
            let command = action.command();
            async move { executor.exec(&command, opts).await }
        };
        let remote = |source: RemoteError| SetupError::Remote {
            step: step.name,
            index,
            total,
            source,
        };
        let failed = |out: &ExecOutput| SetupError::StepFailed {
            step: step.name,
            index,
            total,
            exit_status: out.exit_status,
            stderr_tail: tail(&out.stderr, 10),
        };
        let outcome: Result<StepState, SetupError> = async {
            if !known_undone {
                let checked = run(&step.check, false).await.map_err(remote)?;
                if checked.success() {
                    return Ok(StepState::Skipped);
                }
            }
            let applied = run(&step.apply, true).await.map_err(remote)?;
            if !applied.success() {
                return Err(failed(&applied));
            }
            let verified = run(&step.check, false).await.map_err(remote)?;
            if !verified.success() {
                return Err(SetupError::NotConverged {
                    step: step.name,
                    index,
                    total,
                    stderr_tail: tail(&verified.stderr, 10),
                });
            }
            Ok(StepState::Ran)
        }
        .await;
        match outcome {
            Ok(state) => {
                progress(step, index, state);
                report.push((step.id, state));
            }
            Err(e) => {
                progress(step, index, StepState::Failed);
                return Err(e);
            }
        }
    }
    Ok(RunReport {
        steps: report,
        round_trips: round_trips.load(std::sync::atomic::Ordering::Relaxed),
        elapsed: started.elapsed(),
    })
}
