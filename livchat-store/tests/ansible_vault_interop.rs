//! Interop with the reference implementation, `ansible-vault` from ansible-core: 240 random
//! payloads encrypted by us and decrypted by ansible, and the other way round, in formats 1.1
//! and 1.2 (vault-id label); a subset through the real `ansible-vault` CLI; and a one-byte
//! change anywhere in the body rejected as an HMAC failure by both.
//!
//! Most cases run through ansible's own vault module in one Python process
//! (`ansible_vault_helper.py`), because `ansible-vault` costs ~0.5 s per start.

use std::path::{Path, PathBuf};
use std::process::Command;

use livchat_store::vault::format::{FormatError, decrypt, encrypt, parse_header};
use livchat_store::{SecretString, Vault};
use rand::{Rng, SeedableRng};

const PASSWORD: &str = "interop pässword \"with\" quotes";

struct Ansible {
    cli: PathBuf,
    python: PathBuf,
    dir: tempfile::TempDir,
    password_file: PathBuf,
}

impl Ansible {
    fn find() -> Option<Ansible> {
        let cli = fixtures::tools::require("ansible-vault")?;
        let python = cli.with_file_name("python3");
        let python = if python.is_file() {
            python
        } else {
            fixtures::tools::venv_python().expect("ansible-vault's venv has a python3")
        };
        let dir = tempfile::tempdir().unwrap();
        // Ansible strips the password file like we do; the trailing newline proves it.
        let password_file = dir.path().join("password");
        std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
        Some(Ansible {
            cli,
            python,
            dir,
            password_file,
        })
    }

    fn work_dir(&self, name: &str) -> PathBuf {
        let d = self.dir.path().join(name);
        std::fs::create_dir(&d).unwrap();
        d
    }

    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        // Keep ansible's temp files and config lookups inside the test directory.
        cmd.env("HOME", self.dir.path())
            .env("ANSIBLE_LOCAL_TEMP", self.dir.path().join("ansible-tmp"))
            .env("ANSIBLE_CONFIG", self.dir.path().join("none.cfg"));
        cmd
    }

    fn helper(&self, mode: &str, dir: &Path) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ansible_vault_helper.py");
        let out = self
            .command(&self.python)
            .arg(script)
            .arg(mode)
            .arg(dir)
            .arg(&self.password_file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "helper {mode} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn cli(&self, args: &[&str], files: &[PathBuf]) -> String {
        let out = self
            .command(&self.cli)
            .args(args)
            .args(files)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ansible-vault {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

fn pw() -> SecretString {
    SecretString::from(PASSWORD.to_string())
}

/// 240 payloads: empty, exact multiples of 16, short random, long, non-ASCII, quotes and
/// newlines, random binary. None starts with `$ANSIBLE_VAULT` (ansible refuses to re-encrypt).
fn payloads() -> Vec<(String, Vec<u8>)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x11_5ec7);
    let awkward = b"\"'\n\r\\ab:{}[]#-";
    let unicode = [
        'ç', 'ã', 'é', '€', '密', '码', '🔐', 'ß', 'Ω', '\u{a0}', '\u{200b}', 'Я',
    ];
    let fixed: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"'single' \"double\" `back` $(sub) ;|&".to_vec(),
        b"line1\nline2\r\nline3\n\n".to_vec(),
        b"\n".to_vec(),
        b"trailing spaces   \t".to_vec(),
        b"hetzner_token: abc\ncloudflare_api_token: \"x:y\"\n".to_vec(),
        b"x $ANSIBLE_VAULT;1.1;AES256\n3132\n".to_vec(),
        "senha: çãé 密码 🔐\n".as_bytes().to_vec(),
        vec![0u8; 16],
        vec![0x10u8; 16],
    ];
    let mut out = Vec::new();
    for i in 0..240usize {
        let bytes = if i < fixed.len() {
            fixed[i].clone()
        } else {
            match i % 6 {
                0 => (0..16 * rng.gen_range(1..20))
                    .map(|_| rng.r#gen())
                    .collect(),
                1 => (0..rng.gen_range(1..48))
                    .map(|_| rng.gen_range(b' '..=b'~'))
                    .collect(),
                2 => (0..rng.gen_range(1..120))
                    .map(|_| unicode[rng.gen_range(0..unicode.len())])
                    .collect::<String>()
                    .into_bytes(),
                3 => (0..rng.gen_range(1..64))
                    .map(|_| awkward[rng.gen_range(0..awkward.len())] as char)
                    .collect::<String>()
                    .into_bytes(),
                4 => (0..rng.gen_range(4_000..40_000))
                    .map(|_| rng.r#gen())
                    .collect(),
                _ => (0..rng.gen_range(1..200)).map(|_| rng.r#gen()).collect(),
            }
        };
        let name = if i.is_multiple_of(2) {
            format!("p{i:03}")
        } else {
            format!("l_p{i:03}")
        };
        out.push((name, bytes));
    }
    assert!(out.iter().any(|(_, p)| p.is_empty()));
    assert!(
        out.iter()
            .filter(|(_, p)| !p.is_empty() && p.len().is_multiple_of(16))
            .count()
            >= 30
    );
    out
}

fn label_for(name: &str) -> Option<&'static str> {
    name.starts_with("l_").then_some("lbl")
}

#[test]
fn our_vaults_are_decrypted_by_ansible_in_both_formats() {
    let Some(ansible) = Ansible::find() else {
        return;
    };
    let dir = ansible.work_dir("ours");
    let payloads = payloads();
    for (name, plain) in &payloads {
        let text = encrypt(plain, &pw(), label_for(name)).unwrap();
        std::fs::write(dir.join(format!("{name}.vault")), text).unwrap();
    }
    ansible.helper("decrypt", &dir);
    for (name, plain) in &payloads {
        let err = std::fs::read_to_string(dir.join(format!("{name}.err"))).unwrap_or_default();
        assert!(err.is_empty(), "ansible could not decrypt {name}: {err}");
        let theirs = std::fs::read(dir.join(format!("{name}.out"))).unwrap();
        assert_eq!(&theirs, plain, "{name}");
    }
}

#[test]
fn ansible_vaults_are_decrypted_by_us_in_both_formats() {
    let Some(ansible) = Ansible::find() else {
        return;
    };
    let dir = ansible.work_dir("theirs");
    let payloads = payloads();
    for (name, plain) in &payloads {
        std::fs::write(dir.join(format!("{name}.plain")), plain).unwrap();
    }
    ansible.helper("encrypt", &dir);
    for (i, (name, plain)) in payloads.iter().enumerate() {
        let text = std::fs::read(dir.join(format!("{name}.vault"))).unwrap();
        let header = parse_header(&text).unwrap();
        match label_for(name) {
            Some(label) => {
                assert_eq!(header.version, "1.2", "{name}");
                assert_eq!(header.label.as_deref(), Some(label), "{name}");
            }
            None => assert_eq!(header.version, "1.1", "{name}"),
        }
        let ours = decrypt(&text, &pw()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&*ours, plain, "{name}");
        if i < 10 {
            assert_eq!(
                decrypt(&text, &SecretString::from("not the password".to_string())).unwrap_err(),
                FormatError::HmacMismatch
            );
        }
    }
}

#[test]
fn the_ansible_vault_cli_reads_ours_and_writes_what_we_read() {
    let Some(ansible) = Ansible::find() else {
        return;
    };
    let pf = ansible.password_file.to_str().unwrap().to_string();
    let samples: Vec<(String, Vec<u8>)> = payloads()
        .into_iter()
        .filter(|(_, p)| !p.is_empty())
        .take(24)
        .collect();

    // Ours -> `ansible-vault decrypt` (1.1 and 1.2 files in one call, decrypted in place).
    let dir = ansible.work_dir("cli-ours");
    let files: Vec<PathBuf> = samples
        .iter()
        .map(|(name, plain)| {
            let f = dir.join(name);
            std::fs::write(&f, encrypt(plain, &pw(), label_for(name)).unwrap()).unwrap();
            f
        })
        .collect();
    ansible.cli(&["decrypt", "--vault-password-file", &pf], &files);
    for ((name, plain), f) in samples.iter().zip(&files) {
        assert_eq!(&std::fs::read(f).unwrap(), plain, "{name}");
    }

    // `ansible-vault encrypt` -> ours, once without and once with a vault-id label.
    let dir = ansible.work_dir("cli-theirs");
    let (plain_11, plain_12): (Vec<_>, Vec<_>) =
        samples.iter().partition(|(n, _)| label_for(n).is_none());
    for (group, args) in [
        (
            &plain_11,
            vec![
                "encrypt".to_string(),
                "--vault-password-file".into(),
                pf.clone(),
            ],
        ),
        (
            &plain_12,
            vec![
                "encrypt".to_string(),
                "--vault-id".into(),
                format!("lbl@{pf}"),
            ],
        ),
    ] {
        let files: Vec<PathBuf> = group
            .iter()
            .map(|(name, plain)| {
                let f = dir.join(name);
                std::fs::write(&f, plain).unwrap();
                f
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ansible.cli(&args, &files);
        for ((name, plain), f) in group.iter().zip(&files) {
            let text = std::fs::read(f).unwrap();
            let header = parse_header(&text).unwrap();
            assert_eq!(header.label.as_deref(), label_for(name), "{name}");
            assert_eq!(&*decrypt(&text, &pw()).unwrap(), plain, "{name}");
        }
    }

    // A real vault file made by `Vault` opens with `ansible-vault view` as a YAML map.
    let home = ansible.work_dir("home");
    let (vault, _) =
        Vault::create_if_missing(home.join("credentials.vault"), pw(), Some("livchat".into()))
            .unwrap();
    let ssh_key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n-----END OPENSSH PRIVATE KEY-----\n";
    vault
        .set(
            "hetzner_token",
            SecretString::from("hz-'tok\"en".to_string()),
        )
        .unwrap();
    vault
        .set(
            "server.web-1.ssh_key",
            SecretString::from(ssh_key.to_string()),
        )
        .unwrap();
    let text = std::fs::read_to_string(vault.path()).unwrap();
    assert!(
        text.starts_with("$ANSIBLE_VAULT;1.2;AES256;livchat\n"),
        "{text}"
    );
    let shown = ansible.cli(
        &["view", "--vault-password-file", &pf],
        &[vault.path().to_path_buf()],
    );
    let map: std::collections::BTreeMap<String, String> = serde_yaml::from_str(&shown).unwrap();
    assert_eq!(map["hetzner_token"], "hz-'tok\"en");
    assert_eq!(map["server.web-1.ssh_key"], ssh_key);
    assert_eq!(map.len(), 2);
}

/// Replaces the hex digit at `pos` of the inner text (salt, HMAC or ciphertext) by another
/// hex digit, keeping the envelope well-formed: only the authenticated content changes.
fn tamper(text: &str, pos: usize) -> String {
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let body: String = lines.collect();
    let mut inner = hex::decode(body).unwrap();
    inner[pos] = if inner[pos] == b'0' { b'1' } else { b'0' };
    let outer = hex::encode(inner);
    let mut out = format!("{header}\n");
    for chunk in outer.as_bytes().chunks(80) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out
}

#[test]
fn a_one_byte_change_anywhere_in_the_body_is_an_hmac_failure_for_us_and_for_ansible() {
    let text = encrypt(b"short secret", &pw(), None).unwrap();
    let body: String = text.lines().skip(1).collect();
    let inner = hex::decode(body).unwrap();
    let positions: Vec<usize> = (0..inner.len()).filter(|&i| inner[i] != b'\n').collect();
    assert_eq!(
        positions.len(),
        64 + 64 + 32,
        "salt, HMAC and one block of ciphertext"
    );

    let ansible = Ansible::find();
    let dir = ansible.as_ref().map(|a| a.work_dir("tampered"));
    for &pos in &positions {
        let bad = tamper(&text, pos);
        assert_eq!(
            decrypt(bad.as_bytes(), &pw()).unwrap_err(),
            FormatError::HmacMismatch,
            "change at inner byte {pos} was not caught"
        );
        if let Some(dir) = &dir {
            std::fs::write(dir.join(format!("t{pos:03}.vault")), &bad).unwrap();
        }
    }
    if let (Some(ansible), Some(dir)) = (&ansible, &dir) {
        ansible.helper("verify", dir);
        for &pos in &positions {
            let err = std::fs::read_to_string(dir.join(format!("t{pos:03}.err")))
                .unwrap_or_else(|_| panic!("ansible accepted the change at inner byte {pos}"));
            assert!(
                err.contains("HMAC verification failed"),
                "byte {pos}: {err}"
            );
        }
    }

    // A change that breaks the hex envelope itself is a format error, not a crash.
    let mut broken = text.clone().into_bytes();
    let at = broken.len() - 5;
    broken[at] = b'g';
    assert!(matches!(
        decrypt(&broken, &pw()),
        Err(FormatError::Malformed(_))
    ));
}

#[test]
fn a_wrong_password_on_a_vault_file_names_the_file_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials.vault");
    let (vault, _) = Vault::create_if_missing(&path, pw(), None).unwrap();
    vault
        .set("hetzner_token", SecretString::from("t".to_string()))
        .unwrap();
    let before = std::fs::read(&path).unwrap();
    let err = Vault::open(&path, SecretString::from("Zq9-not-it".to_string()), None).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("HMAC verification failed"), "{text}");
    assert!(
        !text.contains("Zq9-not-it"),
        "the error must not echo the password: {text}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
}
