//! `create_database_command` against a real PostgreSQL server (Debian's postgresql-15 binaries,
//! a throwaway cluster in a temp dir, run as the `postgres` system user because the server
//! refuses root). The script must: create an unprivileged role owning its database, let it log
//! in with the exact password (quotes, `$$`, backslashes, newlines included), be idempotent, and
//! update the password on a rerun. Skipped locally when the binaries are missing; required in CI.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use livchat_apps::definition::ProvidedKind;
use livchat_apps::{CreateDatabase, create_database_command, drop_database_command};
use secrecy::{ExposeSecret, SecretString};

fn pg_bin() -> Option<PathBuf> {
    let found = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .find(|b| b.join("initdb").is_file() && b.join("postgres").is_file());
    let runuser =
        Path::new("/usr/sbin/runuser").is_file() && Path::new("/usr/bin/setpriv").is_file();
    if found.is_none() || !runuser {
        let why = "postgresql server binaries (Debian postgresql-15), runuser or setpriv are not installed";
        assert!(!fixtures::tools::real_tests_required(), "{why}");
        eprintln!("skipped: {why}");
        return None;
    }
    found
}

/// A running throwaway cluster; stopped (by its own pid) and removed on drop.
struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    server: Child,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // `server` is the postmaster itself (setpriv execs it): a fast shutdown (SIGINT) stops
        // its backends too; SIGKILL only if it does not stop in time.
        let pid = self.server.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        for _ in 0..100 {
            if matches!(self.server.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn as_postgres(program: &Path) -> Command {
    let mut c = Command::new("/usr/sbin/runuser");
    c.args(["-u", "postgres", "--"]).arg(program);
    c
}

impl Cluster {
    fn start(bin: PathBuf) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        // The server runs as `postgres`, which must own its directories.
        Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap();
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, "superpw\n").unwrap();
        Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&pwfile)
            .status()
            .unwrap();
        let out = as_postgres(&bin.join("initdb"))
            .args([
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--username=postgres",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .arg("-D")
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = fixtures::net::free_port();
        // setpriv execs in place (runuser would fork), so the child's pid is the postmaster's.
        let server = Command::new("/usr/bin/setpriv")
            .args(["--reuid=postgres", "--regid=postgres", "--clear-groups"])
            .arg(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-c", "listen_addresses=127.0.0.1", "-p", &port.to_string()])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.path().display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let cluster = Cluster {
            bin,
            dir,
            port,
            server,
        };
        for _ in 0..100 {
            let ready = Command::new(cluster.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &port.to_string()])
                .output()
                .unwrap();
            if ready.status.success() {
                return cluster;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("postgres did not start");
    }

    /// Runs argv like `docker exec -i` would in the postgres container: as the superuser over
    /// the local socket, script on stdin.
    fn exec(&self, argv: &[String], stdin: &str) -> Output {
        let mut child = as_postgres(&self.bin.join(&argv[0]))
            .args(&argv[1..])
            .env("PGHOST", self.dir.path())
            .env("PGPORT", self.port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// A query as `user` over TCP with a password (what the app does).
    fn query_as(&self, user: &str, password: &str, db: &str, sql: &str) -> Output {
        Command::new(self.bin.join("psql"))
            .args([
                "--no-psqlrc",
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                user,
                "-d",
                db,
                "-c",
                sql,
            ])
            .env("PGPASSWORD", password)
            .output()
            .unwrap()
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_script_creates_a_least_privilege_owner_that_logs_in_with_a_hostile_password() {
    let Some(bin) = pg_bin() else { return };
    let cluster = Cluster::start(bin);
    let spec = CreateDatabase {
        kind: ProvidedKind::Postgres,
        database: "n8n".into(),
        user: "n8n".into(),
        extensions: vec!["pgcrypto".into()],
    };
    let password = "pa'ss\"$$word\\ with\nnewline;$livchat$ --";
    let cmd = create_database_command(&spec, &SecretString::from(password)).unwrap();
    let out = cluster.exec(&cmd.argv, cmd.stdin.expose_secret());
    assert!(out.status.success(), "{}", text(&out));

    let who = cluster.query_as(
        "n8n",
        password,
        "n8n",
        "SELECT current_user, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user",
    );
    assert!(who.status.success(), "{}", text(&who));
    assert_eq!(String::from_utf8_lossy(&who.stdout).trim(), "n8n|f|f|f");
    let owner = cluster.query_as(
        "n8n",
        password,
        "n8n",
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'n8n'",
    );
    assert_eq!(String::from_utf8_lossy(&owner.stdout).trim(), "n8n");
    // It can work in its own database (tables in public, the extension usable)...
    let work = cluster.query_as(
        "n8n",
        password,
        "n8n",
        "CREATE TABLE t (id int); SELECT count(*) FROM t; SELECT length(gen_random_uuid()::text)",
    );
    assert!(work.status.success(), "{}", text(&work));
    // ...but not create databases, nor get into another app's database.
    let createdb = cluster.query_as("n8n", password, "n8n", "CREATE DATABASE other");
    assert!(!createdb.status.success());
    let other = CreateDatabase {
        kind: ProvidedKind::Postgres,
        database: "chatwoot".into(),
        user: "chatwoot".into(),
        extensions: vec![],
    };
    let cmd2 = create_database_command(&other, &SecretString::from("cwpw")).unwrap();
    assert!(
        cluster
            .exec(&cmd2.argv, cmd2.stdin.expose_secret())
            .status
            .success()
    );
    let intrude = cluster.query_as("n8n", password, "chatwoot", "SELECT 1");
    assert!(!intrude.status.success(), "PUBLIC CONNECT must be revoked");
    let maintenance = cluster.query_as("n8n", password, "postgres", "SELECT 1");
    assert!(
        !maintenance.status.success(),
        "the app's role must not reach the maintenance database"
    );
    assert!(
        text(&maintenance).contains("permission denied for database"),
        "{}",
        text(&maintenance)
    );
    let wrong = cluster.query_as("n8n", "wrong", "n8n", "SELECT 1");
    assert!(!wrong.status.success());
}

#[test]
fn rerunning_the_script_is_harmless_and_updates_the_password() {
    let Some(bin) = pg_bin() else { return };
    let cluster = Cluster::start(bin);
    let spec = CreateDatabase {
        kind: ProvidedKind::Postgres,
        database: "evolution".into(),
        user: "evolution".into(),
        extensions: vec![],
    };
    for pw in ["first", "first", "second"] {
        let cmd = create_database_command(&spec, &SecretString::from(pw)).unwrap();
        let out = cluster.exec(&cmd.argv, cmd.stdin.expose_secret());
        assert!(out.status.success(), "{pw}: {}", text(&out));
    }
    let kept = cluster.query_as(
        "evolution",
        "second",
        "evolution",
        "CREATE TABLE kept (x int)",
    );
    assert!(kept.status.success(), "{}", text(&kept));
    let cmd = create_database_command(&spec, &SecretString::from("second")).unwrap();
    assert!(
        cluster
            .exec(&cmd.argv, cmd.stdin.expose_secret())
            .status
            .success()
    );
    let still = cluster.query_as(
        "evolution",
        "second",
        "evolution",
        "SELECT count(*) FROM kept",
    );
    assert_eq!(
        String::from_utf8_lossy(&still.stdout).trim(),
        "0",
        "{}",
        text(&still)
    );
    assert!(
        !cluster
            .query_as("evolution", "first", "evolution", "SELECT 1")
            .status
            .success()
    );
}

#[test]
fn the_drop_script_removes_the_database_its_role_and_their_data_and_can_run_again() {
    let Some(bin) = pg_bin() else { return };
    let cluster = Cluster::start(bin);
    let spec = CreateDatabase {
        kind: ProvidedKind::Postgres,
        database: "guestbook".into(),
        user: "guestbook".into(),
        extensions: vec![],
    };
    let cmd = create_database_command(&spec, &SecretString::from("pw")).unwrap();
    assert!(
        cluster
            .exec(&cmd.argv, cmd.stdin.expose_secret())
            .status
            .success()
    );
    let table = cluster.query_as(
        "guestbook",
        "pw",
        "guestbook",
        "CREATE TABLE visits (n int)",
    );
    assert!(table.status.success(), "{}", text(&table));
    // Connected while it is dropped: the session is ended, not an obstacle.
    let mut idle = Command::new(cluster.bin.join("psql"))
        .args([
            "--no-psqlrc",
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &cluster.port.to_string(),
        ])
        .args([
            "-U",
            "guestbook",
            "-d",
            "guestbook",
            "-c",
            "SELECT pg_sleep(30)",
        ])
        .env("PGPASSWORD", "pw")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    for round in 0..2 {
        let drop = drop_database_command(&spec).unwrap();
        assert!(drop.argv.iter().all(|a| !a.contains("guestbook")));
        let out = cluster.exec(&drop.argv, drop.stdin.expose_secret());
        assert!(out.status.success(), "round {round}: {}", text(&out));
    }
    let _ = idle.wait();
    let left = cluster.exec(
        &[
            "psql",
            "--no-psqlrc",
            "-At",
            "-d",
            "postgres",
            "-c",
            "SELECT (SELECT count(*) FROM pg_database WHERE datname = 'guestbook') + \
                  (SELECT count(*) FROM pg_roles WHERE rolname = 'guestbook')",
        ]
        .map(String::from),
        "",
    );
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).trim(),
        "0",
        "{}",
        text(&left)
    );
    assert!(
        !cluster
            .query_as("guestbook", "pw", "guestbook", "SELECT 1")
            .status
            .success()
    );
}
