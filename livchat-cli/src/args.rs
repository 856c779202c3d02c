//! Raw command-line arguments, as clap parses them. Validation of values beyond their shape
//! happens in livchat-core, so every frontend gets the same errors.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Examples:
  livchat init
  livchat provider configure < hetzner-token.txt
  livchat dns configure example.com < cloudflare-token.txt
  livchat server create prod-1 --type cx22 --location nbg1
  livchat server setup prod-1 --zone example.com --subdomain lab
  livchat app deploy prod-1 n8n
  livchat job logs <ID> --follow

Environment:
  LIVCHAT_HOME             home directory (default ~/.livchat)
  LIVCHAT_VAULT_PASSWORD   vault password (else --vault-password-file, else <home>/.vault_password)
  LIVCHAT_APPS_DIR         extra app definition directories, colon-separated
  RUST_LOG                 log filter for stderr (tracing's EnvFilter syntax; overrides -v)";

/// LivChat Setup: servers, DNS and apps on your own cloud account.
#[derive(Debug, Parser)]
#[command(name = "livchat", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Home directory holding state.json and credentials.vault [default: $LIVCHAT_HOME, else
    /// ~/.livchat].
    // Not clap's `env`: an argument filled from the environment shows in every usage line
    // as if the user had to type it.
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// File holding the vault password.
    #[arg(long, global = true, value_name = "FILE")]
    pub vault_password_file: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Taken from the job-starting subcommand's [`JobFlags`] (see [`Command::job_flags`]).
    #[arg(skip)]
    pub wait_turn: bool,
    /// Taken from the job-starting subcommand's [`JobFlags`].
    #[arg(skip)]
    pub detach: bool,
    /// More log output on stderr (-v info, -vv debug, -vvv everything); warnings by default.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// How a command that starts a job runs it; only those commands accept these flags.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct JobFlags {
    /// A job on a server busy with another job waits for its turn instead of being refused.
    #[arg(long)]
    pub wait_turn: bool,
    /// Start the job in a background process of its own session, print its id and return;
    /// follow it with `job logs --follow` or `job wait`.
    #[arg(long)]
    pub detach: bool,
}

impl Command {
    /// The job flags of a command that starts a job; `None` for every other command.
    pub fn job_flags(&self) -> Option<JobFlags> {
        match self {
            Command::Server(
                ServerCommand::Create { job, .. }
                | ServerCommand::Delete { job, .. }
                | ServerCommand::Join { job, .. }
                | ServerCommand::Leave { job, .. }
                | ServerCommand::Setup { job, .. },
            )
            | Command::App(AppCommand::Deploy { job, .. } | AppCommand::Undeploy { job, .. })
            | Command::Job(JobCommand::Retry { job, .. }) => Some(*job),
            Command::Job(JobCommand::Run { wait_turn, .. }) => Some(JobFlags {
                wait_turn: *wait_turn,
                detach: false,
            }),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NodeRoleArg {
    Worker,
    Manager,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the home directory, state.json, the vault and its password file.
    Init,
    /// Secrets in the vault (values are never printed unless asked with `get`).
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Settings in state.json (a fixed set of keys).
    #[command(subcommand)]
    Settings(SettingsCommand),
    /// Cloud provider information.
    #[command(subcommand)]
    Provider(ProviderCommand),
    /// DNS records at Cloudflare.
    #[command(subcommand)]
    Dns(DnsCommand),
    /// Servers: create, add, set up, delete, run commands.
    #[command(subcommand)]
    Server(ServerCommand),
    /// Apps: catalog, render, deploy, undeploy, live status and logs.
    #[command(subcommand)]
    App(AppCommand),
    /// Jobs: list, show, logs, cancel, retry, wait.
    #[command(subcommand)]
    Job(JobCommand),
    /// The REST service's and MCP HTTP transport's bearer token.
    #[command(subcommand)]
    Api(ApiCommand),
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Print the API token (created on first use); only the token goes to stdout.
    Token {
        /// Replace it: the old token stops working at once, also in running services.
        #[arg(long)]
        rotate: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Store a secret; the value comes from a hidden prompt on a terminal, otherwise from
    /// standard input (`livchat secrets set KEY < file`), never from the command line.
    Set {
        key: String,
        /// Refused: a value here would show in process lists and shell history.
        #[arg(hide = true)]
        value: Option<String>,
        /// Read the value from standard input even on a terminal.
        #[arg(long)]
        stdin: bool,
    },
    /// Print a secret's value.
    Get { key: String },
    /// List secret names (never values).
    List,
    /// Delete a secret.
    Delete { key: String },
}

#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// Set a setting.
    Set { key: String, value: String },
    /// Print a setting.
    Get { key: String },
    /// List every setting.
    List,
}

#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// Store the Hetzner Cloud API token (read from stdin) after checking it against the API.
    Configure,
    /// Locations, server types or images offered by the provider.
    Info {
        #[arg(value_enum)]
        what: ProviderInfo,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderInfo {
    Locations,
    ServerTypes,
    Images,
}

#[derive(Debug, Subcommand)]
pub enum DnsCommand {
    /// Store the Cloudflare API token (read from stdin) after checking that it sees ZONE.
    Configure { zone: String },
    /// List the records of a zone.
    List { zone: String },
}

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Create a server at the provider, pin its host key and attach a firewall.
    Create {
        name: String,
        #[arg(long = "type", value_name = "TYPE")]
        server_type: Option<String>,
        #[arg(long)]
        location: Option<String>,
        #[arg(long)]
        image: Option<String>,
        /// Show every resource, DNS record and stack that would change, and change nothing.
        #[arg(long)]
        plan: bool,
        #[command(flatten)]
        job: JobFlags,
    },
    /// Add an existing server (bring your own); its host key is pinned once you confirm it.
    Add {
        /// The server's name here (a-z, 0-9 and '-'); setup also makes it the host name.
        name: String,
        /// The server's IP address (a DNS name is refused: Swarm advertises an IP and DNS
        /// records point at it).
        #[arg(long)]
        host: String,
        /// SSH port.
        #[arg(long, default_value_t = 22, value_parser = clap::value_parser!(u16).range(1..))]
        port: u16,
        /// SSH user (`deploy-user` is fine for `server exec`; `server setup` needs root).
        #[arg(long, default_value = "root")]
        user: String,
        /// Private key file (OpenSSH or PEM; Ed25519, ECDSA or RSA), stored in the vault. One of
        /// --key and --ssh-agent is required: no key is generated for a server you bring.
        #[arg(long, value_name = "FILE", conflicts_with = "ssh_agent")]
        key: Option<PathBuf>,
        /// File holding the passphrase of --key (kept in the vault). Without it, a terminal
        /// asks for it when the key has one.
        #[arg(long, value_name = "FILE", requires = "key")]
        key_passphrase_file: Option<PathBuf>,
        /// Authenticate with a key of your running ssh-agent (SSH_AUTH_SOCK); nothing is stored.
        #[arg(long)]
        ssh_agent: bool,
        /// The fingerprint the server's host key must have, checked on its console with
        /// `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`. Without it, a terminal shows the
        /// fingerprint and asks.
        #[arg(long, value_name = "SHA256:...")]
        host_key_fingerprint: Option<String>,
        /// Pin whatever host key the server presents on first contact (ssh's accept-new), as
        /// an explicit choice where nobody can be asked.
        #[arg(long, conflicts_with = "host_key_fingerprint")]
        accept_new_host_key: bool,
    },
    /// List servers.
    List,
    /// Show one server.
    Show { name: String },
    /// Delete a server, its DNS records and its state (refused while apps are deployed).
    Delete {
        name: String,
        #[arg(long)]
        force: bool,
        /// Show every resource, DNS record and stack that would change, and change nothing.
        #[arg(long)]
        plan: bool,
        #[command(flatten)]
        job: JobFlags,
    },
    /// Join a set-up server to a manager's Swarm cluster (Swarm ports open to its nodes only).
    Join {
        name: String,
        /// The cluster's manager.
        #[arg(long)]
        manager: String,
        /// Join as a worker (default) or a manager.
        #[arg(long = "as", value_enum, default_value = "worker")]
        role: NodeRoleArg,
        /// Go on with an even manager count (one step on the way from 1 to 3 managers).
        #[arg(long)]
        force: bool,
        /// Show what would change, and change nothing.
        #[arg(long)]
        plan: bool,
        #[command(flatten)]
        job: JobFlags,
    },
    /// Drain a cluster node and remove it (refused while it holds a pinned database).
    Leave {
        name: String,
        #[arg(long)]
        force: bool,
        /// Show what would change, and change nothing.
        #[arg(long)]
        plan: bool,
        #[command(flatten)]
        job: JobFlags,
    },
    /// Set a server up over SSH (Docker, Swarm, network, firewall) and point DNS at it.
    Setup {
        name: String,
        #[arg(long)]
        zone: String,
        #[arg(long)]
        subdomain: Option<String>,
        /// Who creates the DNS records: cloudflare (through its API, with the token from `dns
        /// configure`) or manual (you create them at any DNS host; livchat prints them and,
        /// before deploying an app, checks that its names resolve to the server).
        #[arg(long, value_enum, default_value_t = DnsModeArg::Cloudflare)]
        dns: DnsModeArg,
        /// Show every resource, DNS record and stack that would change, and change nothing.
        #[arg(long)]
        plan: bool,
        #[command(flatten)]
        job: JobFlags,
    },
    /// Update a server's DNS configuration and A record.
    Dns {
        name: String,
        #[arg(long)]
        zone: String,
        #[arg(long)]
        subdomain: Option<String>,
    },
    /// Choose how the server's app stacks are sent: auto, ssh or portainer.
    ///
    /// auto (the default): through Portainer's API once the infrastructure bundle runs there
    /// with its admin password in the vault, over SSH until then. The infrastructure bundle
    /// always goes over SSH; deployed apps keep the path that deployed them.
    SetPlatform {
        name: String,
        #[arg(value_enum)]
        platform: PlatformArg,
    },
    /// Run a program on a server; arguments arrive byte for byte (use `sh -c` for shell syntax).
    Exec {
        name: String,
        #[arg(last = true, required = true, num_args = 1..)]
        argv: Vec<String>,
    },
    /// Replace a server's pinned host key after a reinstall: only with the fingerprint you
    /// give, or, on a terminal, after showing the old and the new one and asking.
    RepinHostKey {
        name: String,
        /// The fingerprint the server presents now, checked on its console with
        /// `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`.
        #[arg(long, value_name = "SHA256:...")]
        fingerprint: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlatformArg {
    Auto,
    Ssh,
    Portainer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DnsModeArg {
    Cloudflare,
    Manual,
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// List the app catalog.
    List {
        /// Only apps of this category (infrastructure, database, ai, automation, messaging, ...).
        #[arg(long)]
        category: Option<String>,
    },
    /// Find apps whose name, title, description or category holds every WORD.
    Search {
        #[arg(required = true, num_args = 1..)]
        words: Vec<String>,
        #[arg(long)]
        category: Option<String>,
    },
    /// Show one app definition.
    Show { app: String },
    /// Render the stacks of an app and its dependencies, with placeholder secrets (nothing stored).
    Render {
        app: String,
        #[arg(long)]
        zone: String,
        #[arg(long)]
        subdomain: Option<String>,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Deploy an app and its dependencies to a server.
    Deploy {
        server: String,
        app: String,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Repoint existing A records of the app's names that livchat did not create (they are
        /// then the app's: undeploy deletes them). Without it such a record refuses the deploy.
        #[arg(long)]
        take_over_dns: bool,
        /// Deploy even when the server has less memory or fewer CPUs than everything that
        /// would run on it needs (the preflight; `--plan` shows it).
        #[arg(long)]
        force: bool,
        /// On a cluster: run the app on this node (a database's data is pinned there).
        #[arg(long)]
        node: Option<String>,
        /// On a cluster: run the app on the nodes with this label (KEY=VALUE).
        #[arg(long, value_name = "KEY=VALUE", conflicts_with = "node")]
        node_label: Option<String>,
        /// Show every resource, DNS record and stack that would change, and change nothing.
        #[arg(long)]
        plan: bool,
        #[command(flatten)]
        job: JobFlags,
    },
    /// Remove an app's stack, Docker secrets and DNS records (data kept unless --delete-data).
    Undeploy {
        server: String,
        app: String,
        #[arg(long)]
        force: bool,
        /// Also delete the app's data: volumes, database and role, vault secrets (lost for good).
        #[arg(long, alias = "delete-volumes")]
        delete_data: bool,
        /// Show every resource, DNS record and stack that would change, and change nothing.
        #[arg(long)]
        plan: bool,
        #[command(flatten)]
        job: JobFlags,
    },
    /// List the apps deployed on a server.
    Deployed { server: String },
    /// Show the live status of deployed apps' services (replicas, update state, last task
    /// error), read from the swarm.
    Status {
        server: String,
        /// One app; every app deployed on the server when omitted.
        app: Option<String>,
    },
    /// Print the logs of a deployed app's services, vault secrets redacted.
    Logs {
        server: String,
        app: String,
        /// One service of the app's stack (`db`); all of them when omitted.
        #[arg(long)]
        service: Option<String>,
        /// The last N lines of each service (1-10000) [default: 100].
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
        /// Keep printing new lines until Ctrl-C.
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// List jobs.
    List {
        #[arg(long)]
        status: Option<String>,
    },
    /// Show one job.
    Show { id: String },
    /// Print a job's log.
    Logs {
        id: String,
        /// Keep printing new lines until the job ends (a job whose process is gone ends
        /// interrupted) or --timeout passes.
        #[arg(long)]
        follow: bool,
        /// Only the last N lines (then follow from there with --follow).
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
        /// With --follow: seconds to follow at most (1-3600); exit 1 if the job still runs then.
        #[arg(long, value_name = "SECS", default_value_t = 3600, requires = "follow")]
        timeout: u64,
    },
    /// Cancel a queued or running job.
    Cancel { id: String },
    /// Retry a failed, cancelled or interrupted job from its first incomplete step.
    Retry {
        id: String,
        #[command(flatten)]
        job: JobFlags,
    },
    /// Wait for a job to end (exit 1 unless it completed; still running after --timeout too).
    Wait {
        id: String,
        /// Seconds to wait at most (1-3600).
        #[arg(long, value_name = "SECS", default_value_t = 3600)]
        timeout: u64,
    },
    /// Remove ended jobs older than an age.
    Cleanup {
        /// Age in days.
        #[arg(long, default_value_t = 30)]
        older_than_days: u32,
        /// Only jobs in this status (completed, failed, cancelled, interrupted).
        #[arg(long)]
        status: Option<String>,
    },
    /// Run a queued job in this process (what --detach starts in the background).
    #[command(hide = true)]
    Run {
        id: String,
        /// Passed on from the starting command.
        #[arg(long)]
        wait_turn: bool,
    },
}
