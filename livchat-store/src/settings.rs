//! The fixed set of settings keys stored in `state.json` (never secrets).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// A settings key. The set is fixed so a typo is an error instead of a silently ignored key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SettingKey {
    /// Contact e-mail, used for Let's Encrypt registration. Must look like `user@domain.tld`.
    Email,
    /// The operator's first name.
    Name,
    /// The operator's surname.
    Surname,
    /// The operator's company, shown in generated app configuration.
    CompanyName,
    /// Provider used when `create server` names none: `hetzner` or `manual`.
    DefaultProvider,
    /// Provider location used when none is given (for Hetzner: `fsn1`, `nbg1`, `hel1`, `ash`, ...).
    DefaultLocation,
    /// Provider server type used when none is given (for Hetzner: `cx22`, `cpx11`, ...).
    DefaultServerType,
    /// IANA time zone set on new servers, e.g. `America/Sao_Paulo` or `UTC`.
    Timezone,
}

impl SettingKey {
    /// Every key, in documentation order.
    pub const ALL: [SettingKey; 8] = [
        SettingKey::Email,
        SettingKey::Name,
        SettingKey::Surname,
        SettingKey::CompanyName,
        SettingKey::DefaultProvider,
        SettingKey::DefaultLocation,
        SettingKey::DefaultServerType,
        SettingKey::Timezone,
    ];

    /// The key as written in `state.json` and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            SettingKey::Email => "email",
            SettingKey::Name => "name",
            SettingKey::Surname => "surname",
            SettingKey::CompanyName => "company_name",
            SettingKey::DefaultProvider => "default_provider",
            SettingKey::DefaultLocation => "default_location",
            SettingKey::DefaultServerType => "default_server_type",
            SettingKey::Timezone => "timezone",
        }
    }

    /// One line describing the key and its allowed values (for help output).
    pub fn description(self) -> &'static str {
        match self {
            SettingKey::Email => "contact e-mail (Let's Encrypt registration), user@domain.tld",
            SettingKey::Name => "your first name",
            SettingKey::Surname => "your surname",
            SettingKey::CompanyName => "your company name",
            SettingKey::DefaultProvider => "provider for new servers: hetzner or manual",
            SettingKey::DefaultLocation => "provider location for new servers, e.g. fsn1",
            SettingKey::DefaultServerType => "provider server type for new servers, e.g. cx22",
            SettingKey::Timezone => "IANA time zone for servers, e.g. America/Sao_Paulo or UTC",
        }
    }

    /// Every key's name.
    pub fn allowed() -> Vec<&'static str> {
        Self::ALL.iter().map(|k| k.as_str()).collect()
    }

    /// Checks a value for this key; the error names `settings.<key>` and what is allowed.
    pub fn validate(self, value: &str) -> Result<(), StoreError> {
        let field = format!("settings.{}", self.as_str());
        let fail = |reason: &str| Err(StoreError::invalid(field.clone(), reason));
        match self {
            SettingKey::Email => {
                if !is_email_shaped(value) {
                    return fail("expected an e-mail address like user@example.com");
                }
            }
            SettingKey::Name | SettingKey::Surname | SettingKey::CompanyName => {
                if value.trim().is_empty() || value.chars().count() > 200 {
                    return fail("expected 1 to 200 characters");
                }
                if value.chars().any(char::is_control) {
                    return fail("control characters (newlines, tabs, ...) are not allowed");
                }
            }
            SettingKey::DefaultProvider => {
                if value != "hetzner" && value != "manual" {
                    return fail("allowed values: hetzner, manual");
                }
            }
            SettingKey::DefaultLocation | SettingKey::DefaultServerType => {
                let ok = (1..=32).contains(&value.len())
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !ok {
                    return fail("expected 1 to 32 characters from a-z, 0-9 and -");
                }
            }
            SettingKey::Timezone => {
                if !is_timezone_shaped(value) {
                    return fail(
                        "expected an IANA time zone name like UTC or America/Sao_Paulo (segments of letters, digits, _ + -, separated by /)",
                    );
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for SettingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SettingKey {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| StoreError::UnknownSetting {
                key: s.to_string(),
                allowed: Self::allowed(),
            })
    }
}

fn is_email_shaped(value: &str) -> bool {
    if value.len() > 254 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && domain
            .split('.')
            .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'))
}

fn is_timezone_shaped(value: &str) -> bool {
    if value.is_empty() || value.len() > 64 {
        return false;
    }
    value.split('/').all(|segment| {
        segment
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-'))
    })
}

/// The settings section of `state.json`: one optional value per [`SettingKey`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// See [`SettingKey::Email`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// See [`SettingKey::Name`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// See [`SettingKey::Surname`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surname: Option<String>,
    /// See [`SettingKey::CompanyName`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    /// See [`SettingKey::DefaultProvider`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_provider: Option<String>,
    /// See [`SettingKey::DefaultLocation`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_location: Option<String>,
    /// See [`SettingKey::DefaultServerType`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_server_type: Option<String>,
    /// See [`SettingKey::Timezone`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

impl Settings {
    fn slot(&mut self, key: SettingKey) -> &mut Option<String> {
        match key {
            SettingKey::Email => &mut self.email,
            SettingKey::Name => &mut self.name,
            SettingKey::Surname => &mut self.surname,
            SettingKey::CompanyName => &mut self.company_name,
            SettingKey::DefaultProvider => &mut self.default_provider,
            SettingKey::DefaultLocation => &mut self.default_location,
            SettingKey::DefaultServerType => &mut self.default_server_type,
            SettingKey::Timezone => &mut self.timezone,
        }
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: SettingKey) -> Option<&str> {
        match key {
            SettingKey::Email => self.email.as_deref(),
            SettingKey::Name => self.name.as_deref(),
            SettingKey::Surname => self.surname.as_deref(),
            SettingKey::CompanyName => self.company_name.as_deref(),
            SettingKey::DefaultProvider => self.default_provider.as_deref(),
            SettingKey::DefaultLocation => self.default_location.as_deref(),
            SettingKey::DefaultServerType => self.default_server_type.as_deref(),
            SettingKey::Timezone => self.timezone.as_deref(),
        }
    }

    /// Validates and sets `key`; on error nothing changes.
    pub fn set(&mut self, key: SettingKey, value: &str) -> Result<(), StoreError> {
        key.validate(value)?;
        *self.slot(key) = Some(value.to_string());
        Ok(())
    }

    /// Removes `key`; returns the old value.
    pub fn unset(&mut self, key: SettingKey) -> Option<String> {
        self.slot(key).take()
    }

    /// Every key that has a value, in documentation order.
    pub fn iter(&self) -> impl Iterator<Item = (SettingKey, &str)> {
        SettingKey::ALL
            .into_iter()
            .filter_map(|k| self.get(k).map(|v| (k, v)))
    }

    /// Checks every value that is set (used on load and before every write).
    pub fn validate(&self) -> Result<(), StoreError> {
        self.iter().try_for_each(|(k, v)| k.validate(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_error_lists_every_allowed_key() {
        let err = "emial".parse::<SettingKey>().unwrap_err().to_string();
        assert!(err.contains("`emial`"), "{err}");
        for key in SettingKey::ALL {
            assert!(err.contains(key.as_str()), "{err} lacks {key}");
        }
    }

    #[test]
    fn every_key_round_trips_through_its_name() {
        for key in SettingKey::ALL {
            assert_eq!(key.as_str().parse::<SettingKey>().unwrap(), key);
        }
    }

    #[test]
    fn bad_values_are_rejected_naming_the_field_and_nothing_changes() {
        let mut s = Settings::default();
        s.set(SettingKey::Email, "ops@example.com").unwrap();
        for (key, bad) in [
            (SettingKey::Email, "not-an-email"),
            (SettingKey::Email, "a@b"),
            (SettingKey::Email, "a b@example.com"),
            (SettingKey::Timezone, "America/Sao Paulo"),
            (SettingKey::Timezone, "../etc/passwd"),
            (SettingKey::DefaultProvider, "aws"),
            (SettingKey::DefaultLocation, "FSN1;rm"),
            (SettingKey::Name, "line\nbreak"),
            (SettingKey::CompanyName, ""),
        ] {
            let before = s.clone();
            let err = s.set(key, bad).unwrap_err().to_string();
            assert!(err.contains(&format!("settings.{key}")), "{err}");
            assert_eq!(s, before);
        }
    }

    #[test]
    fn good_values_are_accepted() {
        let mut s = Settings::default();
        for (key, good) in [
            (SettingKey::Email, "ops@agency.com.br"),
            (SettingKey::Timezone, "America/Sao_Paulo"),
            (SettingKey::Timezone, "UTC"),
            (SettingKey::Timezone, "Etc/GMT+3"),
            (SettingKey::DefaultProvider, "hetzner"),
            (SettingKey::DefaultLocation, "fsn1"),
            (SettingKey::DefaultServerType, "cx22"),
            (SettingKey::Name, "João"),
        ] {
            s.set(key, good).unwrap();
            assert_eq!(s.get(key), Some(good));
        }
        assert_eq!(s.unset(SettingKey::Name).as_deref(), Some("João"));
        assert_eq!(s.get(SettingKey::Name), None);
    }
}
