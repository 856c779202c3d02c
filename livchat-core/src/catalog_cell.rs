//! The app catalog, parsed on first use.
//!
//! Parsing the built-in apps and their templates costs about 30 ms of CPU, a third of a
//! `livchat server list` and a tenth of a setup re-run, and most commands (servers, jobs,
//! settings, DNS) never look at an app. So [`Orchestrator::open`](crate::Orchestrator::open)
//! only notes where the apps are; the first call that needs one parses them, once per process.
//! A broken user template then fails the commands that use apps, not the ones that do not.

use std::sync::{Arc, OnceLock};

use livchat_apps::Catalog;

use crate::error::{CoreError, Result};

pub(crate) struct CatalogCell {
    /// `LIVCHAT_APPS_DIR`'s value, for a catalog not parsed yet.
    apps_dirs: Option<String>,
    parsed: OnceLock<std::result::Result<Arc<Catalog>, String>>,
}

impl CatalogCell {
    /// A catalog already parsed (tests, embedders that build their own).
    pub(crate) fn parsed(catalog: Catalog) -> Self {
        Self {
            apps_dirs: None,
            parsed: OnceLock::from(Ok(Arc::new(catalog))),
        }
    }

    /// The built-in apps and those of `apps_dirs`, parsed when first asked for.
    pub(crate) fn deferred(apps_dirs: Option<String>) -> Self {
        Self {
            apps_dirs,
            parsed: OnceLock::new(),
        }
    }

    /// The catalog; the error of its parse, each time it is asked for, when it did not parse.
    pub(crate) fn get(&self) -> Result<&Catalog> {
        let parsed = self.parsed.get_or_init(|| {
            Catalog::load(self.apps_dirs.as_deref())
                .map(Arc::new)
                .map_err(|e| e.to_string())
        });
        match parsed {
            Ok(catalog) => Ok(catalog),
            Err(message) => Err(CoreError::Apps(message.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deferred_catalog_is_parsed_on_first_use_and_kept() {
        let cell = CatalogCell::deferred(None);
        assert!(
            cell.parsed.get().is_none(),
            "nothing is parsed before a use"
        );
        let first = cell.get().unwrap() as *const Catalog;
        assert!(cell.get().unwrap().get("postgres").is_some());
        assert_eq!(first, cell.get().unwrap() as *const Catalog, "parsed once");
    }

    #[test]
    #[allow(
        clippy::disallowed_methods,
        reason = "the test writes a broken template"
    )]
    fn a_catalog_that_does_not_parse_fails_each_use_with_its_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("broken.yaml"), "name: [unclosed").unwrap();
        let cell = CatalogCell::deferred(Some(dir.path().display().to_string()));
        for _ in 0..2 {
            match cell.get() {
                Err(CoreError::Apps(message)) => assert!(message.contains("broken"), "{message}"),
                other => panic!("expected the parse error, got {:?}", other.map(|_| ())),
            }
        }
    }
}
