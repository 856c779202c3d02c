//! `secrets` and `settings`: the vault and the settings of the home, and reading secrets
//! from stdin, a hidden prompt or a file (never from argv).

use std::io::{IsTerminal, Read};

use anyhow::{Context, Result};
use livchat_core::CoreError;
use livchat_core::model::{ExposeSecret, SecretString};

use crate::args::{Global, OutputFormat, SecretsCommand, SettingsCommand};
use crate::output::{Table, print, stdoutln};

use crate::open;

pub(crate) fn read_stdin_secret() -> Result<SecretString> {
    let mut value = String::new();
    std::io::stdin()
        .read_to_string(&mut value)
        .context("could not read the value from standard input")?;
    let trimmed = value.strip_suffix('\n').unwrap_or(&value);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    Ok(SecretString::from(trimmed.to_string()))
}

/// A secret kept in a file (one line; a trailing newline is not part of it).
pub(crate) fn read_secret_file(path: &std::path::Path, flag: &str) -> Result<SecretString> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read {flag} {}", path.display()))?;
    let line = text.strip_suffix('\n').unwrap_or(&text);
    Ok(SecretString::from(
        line.strip_suffix('\r').unwrap_or(line).to_string(),
    ))
}

pub(crate) fn secrets(g: &Global, cmd: SecretsCommand) -> Result<()> {
    if let SecretsCommand::Set { value: Some(_), .. } = cmd {
        return Err(CoreError::invalid(
            "VALUE",
            "a secret is never taken from the command line (process lists and shell history show it); \
             type it at the hidden prompt or pipe it: `livchat secrets set KEY < file`",
        )
        .into());
    }
    let orch = open(g)?;
    match cmd {
        SecretsCommand::Set { key, stdin, .. } => {
            let value = if !stdin && std::io::stdin().is_terminal() {
                SecretString::from(
                    rpassword::prompt_password(format!("Value for {key} (not shown): "))
                        .context("could not read the value from the terminal")?,
                )
            } else {
                read_stdin_secret()?
            };
            orch.secret_set(&key, value)?;
            print(
                g.output,
                &serde_json::json!({ "key": key, "stored": true }),
                || Table::pairs(vec![("stored", key.clone())]),
            );
        }
        SecretsCommand::Get { key } => {
            let value = orch.secret_get(&key)?;
            match g.output {
                OutputFormat::Json => stdoutln!(
                    "{}",
                    serde_json::json!({ "key": key, "value": value.expose_secret() })
                ),
                OutputFormat::Table => stdoutln!("{}", value.expose_secret()),
            }
        }
        SecretsCommand::List => {
            let names = orch.secret_names()?;
            print(g.output, &names, || {
                let mut t = Table::new(&["NAME"]);
                for n in &names {
                    t.row(vec![n.clone()]);
                }
                t
            });
        }
        SecretsCommand::Delete { key } => {
            orch.secret_delete(&key)?;
            print(
                g.output,
                &serde_json::json!({ "key": key, "deleted": true }),
                || Table::pairs(vec![("deleted", key.clone())]),
            );
        }
    }
    Ok(())
}

pub(crate) fn settings(g: &Global, cmd: SettingsCommand) -> Result<()> {
    let orch = open(g)?;
    match cmd {
        SettingsCommand::Set { key, value } => {
            orch.setting_set(&key, &value)?;
            print(
                g.output,
                &serde_json::json!({ "key": key, "value": value }),
                || Table::pairs(vec![(key.as_str(), value.clone())]),
            );
        }
        SettingsCommand::Get { key } => {
            let value = orch.setting_get(&key)?;
            match g.output {
                OutputFormat::Json => {
                    stdoutln!("{}", serde_json::json!({ "key": key, "value": value }))
                }
                OutputFormat::Table => stdoutln!("{}", value.unwrap_or_default()),
            }
        }
        SettingsCommand::List => {
            let all = orch.settings()?;
            let json: serde_json::Map<String, serde_json::Value> = all
                .iter()
                .map(|(k, v, _)| (k.clone(), serde_json::json!(v)))
                .collect();
            print(g.output, &json, || {
                let mut t = Table::new(&["KEY", "VALUE", "DESCRIPTION"]);
                for (k, v, d) in &all {
                    t.row(vec![
                        k.clone(),
                        v.clone().unwrap_or_else(|| "-".into()),
                        d.to_string(),
                    ]);
                }
                t
            });
        }
    }
    Ok(())
}
