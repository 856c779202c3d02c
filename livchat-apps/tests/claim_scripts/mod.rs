//! The first-run claims of apps whose images cannot be pulled here (Gitea, Appsmith, Flowise),
//! run as rendered: the script under `sh` with stand-in `gitea`, `su-exec` and `curl` programs
//! that record every argv, the headers and the body they were given, or under node against a
//! one-shot loopback server. The admin password is the vault's (a fixed fake), reaches the
//! app's API only through stdin or a 0600 file, and is in no argv.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Output, Stdio};

use livchat_apps::{Catalog, DeployStep, EndpointMode, ExecClaimStep};
use secrecy::ExposeSecret;

/// Records its argv, the headers (a `@file` one with the file's mode), the body (from stdin
/// or a `@file`, with its mode), writes a small answer to `-o`, prints `$CURL_STATUS` (for a
/// DELETE, `$CURL_DELETE_STATUS`, default 204).
const CURL: &str = r#"#!/bin/sh
printf '%s\n' "$@" >>"$LOG/curl.argv"
out=
method=
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out=$2; shift ;;
    -X) method=$2; shift ;;
    -H)
      case "$2" in
        @*) cat "${2#@}" >>"$LOG/curl.headers"; stat -c %a "${2#@}" >"$LOG/curl.headers.mode" ;;
        *) printf '%s\n' "$2" >>"$LOG/curl.headers" ;;
      esac
      shift ;;
    --data-binary)
      case "$2" in
        @-) cat >"$LOG/curl.body" ;;
        @*) cat "${2#@}" >"$LOG/curl.body"; stat -c %a "${2#@}" >"$LOG/curl.body.mode" ;;
      esac
      shift ;;
  esac
  shift
done
if [ -n "$out" ]; then echo '{"message":"stand-in"}' >"$out"; fi
if [ "$method" = DELETE ]; then
  printf '%s' "${CURL_DELETE_STATUS:-204}"
else
  printf '%s' "${CURL_STATUS:-200}"
fi
"#;

/// Gitea's CLI as `admin user create --random-password` behaves: it prints the generated
/// password before it creates the user, so a refused create prints it too. `admin user list
/// --admin` lists `$GITEA_ADMIN` (default gitadmin); `admin user generate-access-token --raw`
/// prints a token.
const GITEA: &str = r#"#!/bin/sh
printf '%s\n' "$@" >>"$LOG/gitea.argv"
case "$3" in
  list)
    printf 'ID   Username Email            IsActive\n1    %s ops@example.com true\n' "${GITEA_ADMIN:-gitadmin}"
    exit 0 ;;
  generate-access-token)
    echo "T0kenValue0123456789"
    exit 0 ;;
esac
echo "generated random password is 'Thr0waway9'"
if [ -n "${GITEA_USER_EXISTS:-}" ]; then
  echo "Command error: CreateUser: user already exists [name: gitadmin]" >&2
  exit 1
fi
echo "New user 'gitadmin' has been successfully created!"
"#;

const SU_EXEC: &str = r#"#!/bin/sh
printf '%s\n' "$@" >>"$LOG/su-exec.argv"
shift
exec "$@"
"#;

/// A directory of stand-ins and one for what they record.
struct Stage {
    bin: tempfile::TempDir,
    log: tempfile::TempDir,
}

impl Stage {
    fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let bin = tempfile::tempdir().unwrap();
        for (name, text) in [("curl", CURL), ("gitea", GITEA), ("su-exec", SU_EXEC)] {
            let path = bin.path().join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Stage {
            bin,
            log: tempfile::tempdir().unwrap(),
        }
    }

    /// Runs the step's `sh -c` script with its stdin; the stand-ins come first on PATH.
    fn run(&self, step: &ExecClaimStep, env: &[(&str, &str)]) -> Output {
        assert_eq!(&step.argv[..2], ["sh", "-c"]);
        let path = format!("{}:/usr/bin:/bin", self.bin.path().display());
        let mut child = Command::new("/bin/sh")
            .args(&step.argv[1..])
            .env("PATH", path)
            .env("LOG", self.log.path())
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(step.stdin.expose_secret().as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.log.path().join(name)).unwrap_or_default()
    }

    /// Every argv the stand-ins were given, one argument a line.
    fn argvs(&self) -> String {
        ["gitea.argv", "su-exec.argv", "curl.argv"]
            .map(|f| self.read(f))
            .concat()
    }
}

/// Gitea's `on_exists` command as a step of its own (same service, same stdin).
fn gitea_on_exists() -> (ExecClaimStep, String) {
    let (step, password) = claim_of("gitea");
    let on_exists = step.on_exists.clone().expect("gitea has on_exists");
    assert_eq!(on_exists.output_contains, "user already exists");
    (
        ExecClaimStep {
            argv: on_exists.argv,
            on_exists: None,
            ..step
        },
        password,
    )
}

fn claim_of(app: &str) -> (ExecClaimStep, String) {
    let catalog = Catalog::builtin().unwrap();
    let stack = super::common::render(&catalog, app, EndpointMode::Vip);
    let step = stack
        .post_deploy
        .into_iter()
        .find_map(|s| match s {
            DeployStep::ExecClaim(e) => Some(e),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{app} has no claim command"));
    let password = super::common::fixed_secrets(&catalog)[app]["admin_password"]
        .expose_secret()
        .to_string();
    (step, password)
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[test]
fn gitea_claim_creates_the_admin_then_sets_the_vault_password_through_the_api_never_in_argv() {
    let (step, password) = claim_of("gitea");
    let stage = Stage::new();
    let out = stage.run(&step, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let argvs = stage.argvs();
    assert!(!argvs.contains(&password), "{argvs}");
    assert!(!argvs.contains("Thr0waway9"), "{argvs}");
    // The CLI made the admin with a throwaway password (as git when run as root).
    let gitea = stage.read("gitea.argv");
    assert!(
        gitea.starts_with("admin\nuser\ncreate\n--admin\n--username\ngitadmin\n--email\nops@example.com\n--random-password\n"),
        "{gitea}"
    );
    assert!(!gitea.lines().any(|a| a == "--password"), "{gitea}");
    // The API call authenticates with the throwaway password from a 0600 file and sets the
    // vault's, which came on curl's stdin.
    let curl = stage.read("curl.argv");
    assert!(
        curl.contains("PATCH\n")
            && curl.ends_with("http://127.0.0.1:3000/api/v1/admin/users/gitadmin\n"),
        "{curl}"
    );
    assert!(curl.contains("--data-binary\n@-\n"), "{curl}");
    let basic = stage.read("curl.headers");
    // base64("gitadmin:Thr0waway9")
    assert!(
        basic.contains("Authorization: Basic Z2l0YWRtaW46VGhyMHdhd2F5OQ==\n"),
        "{basic}"
    );
    assert_eq!(stage.read("curl.headers.mode").trim(), "600");
    let body: serde_json::Value = serde_json::from_str(&stage.read("curl.body")).unwrap();
    assert_eq!(body["password"], password.as_str());
    assert_eq!(body["login_name"], "gitadmin");
    assert_eq!(body["source_id"], 0);
    assert_eq!(body["must_change_password"], false);
}

#[test]
fn a_gitea_with_its_admin_already_refuses_the_claim_and_the_throwaway_password_is_not_shown() {
    let (step, _) = claim_of("gitea");
    let stage = Stage::new();
    let out = stage.run(&step, &[("GITEA_USER_EXISTS", "1")]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("user already exists"), "{stderr}");
    assert!(!stderr.contains("Thr0waway9"), "{stderr}");
    assert!(
        stage.read("curl.argv").is_empty(),
        "no API call after a refused create"
    );
}

#[test]
fn gitea_on_exists_gives_the_existing_admin_the_vault_password_with_a_token_it_then_deletes() {
    let (step, password) = gitea_on_exists();
    let stage = Stage::new();
    let out = stage.run(&step, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let argvs = stage.argvs();
    assert!(!argvs.contains(&password), "{argvs}");
    assert!(!argvs.contains("T0kenValue0123456789"), "{argvs}");
    // It checked the account is an admin, then made a token with the CLI; no password flag.
    let gitea = stage.read("gitea.argv");
    assert!(
        gitea.starts_with("admin\nuser\nlist\n--admin\nadmin\nuser\ngenerate-access-token\n--username\ngitadmin\n--token-name\nlivchat-claim-"),
        "{gitea}"
    );
    assert!(gitea.contains("--scopes\nwrite:admin\n--raw\n"), "{gitea}");
    assert!(!gitea.contains("create"), "{gitea}");
    assert!(!gitea.lines().any(|a| a == "--password"), "{gitea}");
    let token_name = gitea
        .lines()
        .find(|l| l.starts_with("livchat-claim-"))
        .unwrap()
        .to_string();
    // PATCH with the token, then DELETE of the token with the vault's password, both from
    // 0600 header files; the new password came on curl's stdin.
    let curl = stage.read("curl.argv");
    assert!(
        curl.contains("PATCH\n")
            && curl.contains("http://127.0.0.1:3000/api/v1/admin/users/gitadmin\n")
            && curl.contains("DELETE\n-H\n@")
            && curl.ends_with(&format!(
                "/basic\nhttp://127.0.0.1:3000/api/v1/users/gitadmin/tokens/{token_name}\n"
            )),
        "{curl}"
    );
    let headers = stage.read("curl.headers");
    assert!(
        headers.contains("Authorization: token T0kenValue0123456789\n"),
        "{headers}"
    );
    let basic = base64_of(&format!("gitadmin:{password}"));
    assert!(
        headers.contains(&format!("Authorization: Basic {basic}\n")),
        "{headers}"
    );
    assert_eq!(stage.read("curl.headers.mode").trim(), "600");
    let body: serde_json::Value = serde_json::from_str(&stage.read("curl.body")).unwrap();
    assert_eq!(body["password"], password.as_str());
    assert_eq!(body["login_name"], "gitadmin");
    assert_eq!(body["must_change_password"], false);
}

#[test]
fn gitea_on_exists_takes_over_no_account_that_is_not_an_admin_and_fails_if_the_token_stays() {
    let (step, _) = gitea_on_exists();
    let stage = Stage::new();
    let out = stage.run(&step, &[("GITEA_ADMIN", "someone")]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("exists but is not an admin: not taken over"),
        "{}",
        text(&out.stderr)
    );
    assert!(!stage.read("gitea.argv").contains("generate-access-token"));
    assert!(stage.read("curl.argv").is_empty());
    // The password is set but the token could not be deleted: a failure that says so.
    let stage = Stage::new();
    let out = stage.run(&step, &[("CURL_DELETE_STATUS", "401")]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "the vault's password is set, but deleting the temporary token livchat-claim-"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("T0kenValue0123456789"), "{stderr}");
}

/// Standard base64 with padding, as `base64` prints it.
fn base64_of(text: &str) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn appsmith_claim_posts_the_super_user_with_its_csrf_header_the_password_in_a_0600_file() {
    let (step, password) = claim_of("appsmith");
    let stage = Stage::new();
    let origin = (
        "LIVCHAT_APPSMITH_ORIGIN",
        "https://appsmith.lab.example.com",
    );
    let out = stage.run(&step, &[origin]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let argvs = stage.argvs();
    assert!(!argvs.contains(&password), "{argvs}");
    assert!(
        argvs.ends_with("http://127.0.0.1:8080/api/v1/users/super\n"),
        "{argvs}"
    );
    let headers = stage.read("curl.headers");
    for h in [
        "Content-Type: application/json",
        "X-Requested-By: Appsmith",
        "Origin: https://appsmith.lab.example.com",
    ] {
        assert!(headers.contains(h), "{h}: {headers}");
    }
    assert_eq!(stage.read("curl.body.mode").trim(), "600");
    let body: serde_json::Value = serde_json::from_str(&stage.read("curl.body")).unwrap();
    assert_eq!(body["password"], password.as_str());
    assert_eq!(body["email"], "ops@example.com");
    assert_eq!(body["isEnabled"], true);
    assert_eq!(body["allowCollectingAnonymousData"], false);
    // A second claim, once the instance has its administrator, is refused (HTTP 403).
    let refused = Stage::new().run(&step, &[origin, ("CURL_STATUS", "403")]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("refused the administrator (HTTP 403)"));
}

/// Answers one request with `status` and returns its request line and body.
fn one_shot_server(status: &'static str) -> (u16, std::thread::JoinHandle<(String, String)>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let answer =
            format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}");
        (&stream).write_all(answer.as_bytes()).unwrap();
        (first, String::from_utf8(body).unwrap())
    });
    (port, server)
}

#[test]
fn flowise_claim_registers_the_owner_with_a_nested_body_from_stdin() {
    let Some(node) = fixtures::tools::require("node") else {
        return;
    };
    let (step, password) = claim_of("flowise");
    assert_eq!(&step.argv[..2], ["node", "-e"]);
    assert!(step.argv.iter().all(|a| !a.contains(&password)));
    let run = |status: &'static str| {
        let (port, server) = one_shot_server(status);
        let mut child = Command::new(&node)
            .args(&step.argv[1..])
            .env("PORT", port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(step.stdin.expose_secret().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (out, server.join().unwrap())
    };
    let (out, (request, body)) = run("201 Created");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        request.starts_with("POST /api/v1/account/register HTTP/1.1"),
        "{request}"
    );
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["user"]["credential"], password.as_str());
    assert_eq!(body["user"]["email"], "ops@example.com");
    assert_eq!(body["user"]["name"], "Ana");
    // Flowise refuses a second registration with 400: the claim fails, not retried.
    let (refused, _) = run("400 Bad Request");
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("refused the registration (HTTP 400)"));
}
