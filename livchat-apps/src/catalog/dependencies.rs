//! What an app needs and what needs it: direct requirements (dependencies plus the apps
//! everything needs), whether a requirement is met by what is deployed, the install order, the
//! dependents that forbid an undeploy, and the secrets a render must be given.

use std::collections::BTreeSet;

use crate::AppsError;
use crate::definition::Category;
use crate::resolver;
use crate::secrets::SecretRef;

use super::Catalog;
use super::own_instance::runs_per_dependent;

impl Catalog {
    /// Direct requirements of `app`: its dependencies plus, for every app that is not
    /// infrastructure, the `required_by_all` apps. `None` if `app` is unknown.
    /// A dependency on a `redis` provider is not a requirement: the app runs its own instance.
    pub fn requirements_of(&self, app: &str) -> Option<Vec<String>> {
        let def = self.get(app)?;
        let mut reqs: Vec<String> = def
            .dependencies
            .iter()
            .filter(|d| self.own_instance_of(d).is_none())
            .map(|d| d.app.clone())
            .collect();
        if def.category != Category::Infrastructure {
            for r in self.required_by_all() {
                if !reqs.contains(&r) {
                    reqs.push(r);
                }
            }
        }
        Some(reqs)
    }

    /// Whether `app` counts as deployed: deployed itself, part of a deployed bundle, or a bundle
    /// whose every part is deployed.
    pub fn is_satisfied(&self, app: &str, deployed: &BTreeSet<String>) -> bool {
        if deployed.contains(app) {
            return true;
        }
        if deployed
            .iter()
            .filter_map(|d| self.get(d))
            .any(|d| d.includes.iter().any(|i| i == app))
        {
            return true;
        }
        self.get(app).is_some_and(|d| {
            !d.includes.is_empty() && d.includes.iter().all(|i| deployed.contains(i))
        })
    }

    /// The apps to deploy, in order, for `targets` on a server where `deployed` run: every
    /// dependency before its dependents, each app once, deployed ones skipped. A cycle is an
    /// error naming its members; a missing definition an error naming it.
    pub fn install_order(
        &self,
        targets: &[&str],
        deployed: &BTreeSet<String>,
    ) -> Result<Vec<String>, AppsError> {
        for t in targets {
            self.require(t)?;
        }
        resolver::install_order(
            targets,
            |a| self.requirements_of(a),
            |a| self.is_satisfied(a, deployed),
        )
    }

    /// The deployed apps that need `app` (directly or through other deployed apps), sorted: if
    /// not empty, undeploying `app` must be refused.
    pub fn dependents_of(&self, app: &str, deployed: &BTreeSet<String>) -> Vec<String> {
        resolver::dependents_of(app, deployed, |d| {
            let mut reqs = self.requirements_of(d).unwrap_or_default();
            // Needing a bundle means needing each of its parts, which may be deployed alone.
            let parts: Vec<String> = reqs
                .iter()
                .filter_map(|r| self.get(r))
                .flat_map(|r| r.includes.clone())
                .collect();
            reqs.extend(parts);
            reqs
        })
    }

    /// The secrets a render of `app` needs: its own (including those of the Redis it runs,
    /// `redis_password`), and the shared ones of the providers it uses. Load these from the
    /// vault and pass them to [`Catalog::render`].
    pub fn secrets_needed(&self, app: &str) -> Result<Vec<SecretRef>, AppsError> {
        let def = self.require(app)?;
        let mut refs: Vec<SecretRef> = def
            .secrets
            .iter()
            .map(|s| SecretRef::new(app, &s.name))
            .collect();
        for dep in &def.dependencies {
            let provider = self
                .get(&dep.app)
                .ok_or_else(|| AppsError::MissingDependency {
                    app: app.to_string(),
                    dependency: dep.app.clone(),
                })?;
            if runs_per_dependent(provider) {
                continue;
            }
            if let Some(secret) = provider
                .provides
                .as_ref()
                .and_then(|p| p.password_secret.as_ref())
            {
                refs.push(SecretRef::new(&dep.app, secret));
            }
        }
        Ok(refs)
    }
}
