//! Dependency resolution over any graph: install order (every dependency before its
//! dependents, each app once, satisfied apps skipped), cycles named, reverse dependencies.
//!
//! The functions take the graph as a closure so the property tests can drive them with
//! random graphs; [`crate::Catalog`] wraps them with its own rules (`required_by_all`,
//! bundles that include other apps).

use std::collections::{BTreeMap, BTreeSet};

use crate::AppsError;

/// Apps to install, in order, so that each comes after all of its dependencies.
///
/// `dependencies_of(app)` returns `None` when there is no definition for `app`;
/// `satisfied(app)` says the app is already deployed (it and its own dependencies are skipped).
/// Targets are visited in the order given and dependencies in declaration order, so the result
/// is deterministic.
pub fn install_order<D, S>(
    targets: &[&str],
    dependencies_of: D,
    satisfied: S,
) -> Result<Vec<String>, AppsError>
where
    D: Fn(&str) -> Option<Vec<String>>,
    S: Fn(&str) -> bool,
{
    struct Walk<'f, D, S> {
        dependencies_of: &'f D,
        satisfied: &'f S,
        done: BTreeSet<String>,
        order: Vec<String>,
        path: Vec<String>,
    }

    impl<D, S> Walk<'_, D, S>
    where
        D: Fn(&str) -> Option<Vec<String>>,
        S: Fn(&str) -> bool,
    {
        fn visit(&mut self, app: &str, required_by: Option<&str>) -> Result<(), AppsError> {
            if self.done.contains(app) {
                return Ok(());
            }
            if let Some(start) = self.path.iter().position(|p| p == app) {
                let mut members = self.path[start..].to_vec();
                members.push(app.to_string());
                return Err(AppsError::Cycle { members });
            }
            // A satisfied target is still checked for existence, but not installed again.
            let deps = (self.dependencies_of)(app).ok_or_else(|| match required_by {
                Some(parent) => AppsError::MissingDependency {
                    app: parent.to_string(),
                    dependency: app.to_string(),
                },
                None => AppsError::UnknownApp {
                    name: app.to_string(),
                    known: Vec::new(),
                },
            })?;
            if (self.satisfied)(app) {
                self.done.insert(app.to_string());
                return Ok(());
            }
            self.path.push(app.to_string());
            for dep in &deps {
                self.visit(dep, Some(app))?;
            }
            self.path.pop();
            self.done.insert(app.to_string());
            self.order.push(app.to_string());
            Ok(())
        }
    }

    let mut walk = Walk {
        dependencies_of: &dependencies_of,
        satisfied: &satisfied,
        done: BTreeSet::new(),
        order: Vec::new(),
        path: Vec::new(),
    };
    for target in targets {
        walk.visit(target, None)?;
    }
    Ok(walk.order)
}

/// The apps of `deployed` that need `app`, directly or through other deployed apps, sorted.
/// `dependencies_of` must answer for every deployed app (unknown ones count as having none).
pub fn dependents_of<D>(app: &str, deployed: &BTreeSet<String>, dependencies_of: D) -> Vec<String>
where
    D: Fn(&str) -> Vec<String>,
{
    let mut reverse: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for d in deployed {
        for dep in dependencies_of(d) {
            reverse.entry(dep).or_default().insert(d.clone());
        }
    }
    let mut found = BTreeSet::new();
    let mut stack = vec![app.to_string()];
    while let Some(current) = stack.pop() {
        for user in reverse.get(&current).into_iter().flatten() {
            if user != app && found.insert(user.clone()) {
                stack.push(user.clone());
            }
        }
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        edges
            .iter()
            .map(|(a, deps)| (a.to_string(), deps.iter().map(|d| d.to_string()).collect()))
            .collect()
    }

    #[test]
    fn shared_dependency_is_installed_once_before_both_users() {
        let g = graph(&[
            ("postgres", &[]),
            ("redis", &[]),
            ("n8n", &["postgres", "redis"]),
            ("chatwoot", &["postgres", "redis"]),
        ]);
        let order = install_order(&["n8n", "chatwoot"], |a| g.get(a).cloned(), |_| false).unwrap();
        assert_eq!(order, ["postgres", "redis", "n8n", "chatwoot"]);
    }

    #[test]
    fn deployed_apps_are_skipped() {
        let g = graph(&[
            ("postgres", &[]),
            ("redis", &[]),
            ("n8n", &["postgres", "redis"]),
        ]);
        let order = install_order(&["n8n"], |a| g.get(a).cloned(), |a| a == "postgres").unwrap();
        assert_eq!(order, ["redis", "n8n"]);
    }

    #[test]
    fn a_cycle_is_rejected_naming_its_members() {
        let g = graph(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("x", &["a"])]);
        let err = install_order(&["x"], |a| g.get(a).cloned(), |_| false).unwrap_err();
        match err {
            AppsError::Cycle { members } => assert_eq!(members, ["a", "b", "c", "a"]),
            other => panic!("expected a cycle, got {other}"),
        }
    }

    #[test]
    fn a_missing_definition_is_rejected_naming_it_and_its_user() {
        let g = graph(&[("n8n", &["postgres"])]);
        let err = install_order(&["n8n"], |a| g.get(a).cloned(), |_| false).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`postgres`") && text.contains("`n8n`"),
            "{text}"
        );
    }

    #[test]
    fn dependents_are_found_transitively_among_deployed_apps() {
        let g = graph(&[
            ("postgres", &[]),
            ("n8n", &["postgres"]),
            ("addon", &["n8n"]),
            ("redis", &[]),
        ]);
        let deployed: BTreeSet<String> = ["postgres", "n8n", "addon", "redis"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let deps = |a: &str| g.get(a).cloned().unwrap_or_default();
        assert_eq!(dependents_of("postgres", &deployed, deps), ["addon", "n8n"]);
        assert!(dependents_of("redis", &deployed, deps).is_empty());
    }
}
