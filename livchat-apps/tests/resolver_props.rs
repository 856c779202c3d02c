//! Property tests of the resolver over random graphs: every dependency before its dependents,
//! each app once, satisfied apps skipped, cycles always caught (and reported as a real cycle),
//! and reverse dependencies matching a brute-force reachability check.

use std::collections::{BTreeMap, BTreeSet};

use livchat_apps::AppsError;
use livchat_apps::resolver::{dependents_of, install_order};
use proptest::prelude::*;

type Graph = BTreeMap<String, Vec<String>>;

fn name(i: usize) -> String {
    format!("app{i}")
}

/// A random directed graph on `n` nodes (cycles possible).
fn any_graph() -> impl Strategy<Value = Graph> {
    (1usize..12).prop_flat_map(|n| {
        prop::collection::vec(prop::collection::vec(0..n, 0..4), n).prop_map(move |adj| {
            adj.into_iter()
                .enumerate()
                .map(|(i, deps)| {
                    let mut seen = BTreeSet::new();
                    let deps = deps
                        .into_iter()
                        .filter(|d| seen.insert(*d))
                        .map(name)
                        .collect();
                    (name(i), deps)
                })
                .collect()
        })
    })
}

/// A random DAG: each node depends only on lower-numbered ones.
fn any_dag() -> impl Strategy<Value = Graph> {
    any_graph().prop_map(|g| {
        g.into_iter()
            .map(|(k, deps)| {
                let i: usize = k[3..].parse().unwrap();
                let deps = deps
                    .into_iter()
                    .filter(|d| d[3..].parse::<usize>().unwrap() < i)
                    .collect();
                (k, deps)
            })
            .collect()
    })
}

fn reachable(g: &Graph, from: &[String]) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<String> = from.to_vec();
    while let Some(a) = stack.pop() {
        if seen.insert(a.clone()) {
            stack.extend(g[&a].iter().cloned());
        }
    }
    seen
}

/// Kahn's algorithm on the subgraph: true if it has a cycle.
fn has_cycle(g: &Graph, nodes: &BTreeSet<String>) -> bool {
    let mut indeg: BTreeMap<&String, usize> = nodes.iter().map(|n| (n, 0)).collect();
    for n in nodes {
        for d in &g[n] {
            if nodes.contains(d) {
                *indeg.get_mut(d).unwrap() += 1;
            }
        }
    }
    let mut queue: Vec<&String> = indeg
        .iter()
        .filter(|(_, d)| **d == 0)
        .map(|(n, _)| *n)
        .collect();
    let mut removed = 0;
    while let Some(n) = queue.pop() {
        removed += 1;
        for d in &g[n] {
            if let Some(x) = indeg.get_mut(d) {
                *x -= 1;
                if *x == 0 {
                    queue.push(d);
                }
            }
        }
    }
    removed < nodes.len()
}

fn pick(g: &Graph, picks: &[usize]) -> Vec<String> {
    let names: Vec<&String> = g.keys().collect();
    picks
        .iter()
        .map(|i| names[i % names.len()].clone())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn dags_install_every_needed_app_once_after_its_dependencies(
        g in any_dag(),
        picks in prop::collection::vec(0usize..64, 1..4),
        deployed_picks in prop::collection::vec(0usize..64, 0..3),
    ) {
        let targets = pick(&g, &picks);
        let deployed: BTreeSet<String> = pick(&g, &deployed_picks).into_iter().collect();
        let refs: Vec<&str> = targets.iter().map(String::as_str).collect();
        let order = install_order(&refs, |a| g.get(a).cloned(), |a| deployed.contains(a)).unwrap();

        let position: BTreeMap<&String, usize> = order.iter().enumerate().map(|(i, a)| (a, i)).collect();
        prop_assert_eq!(position.len(), order.len(), "an app appears twice: {:?}", order);
        for app in &order {
            prop_assert!(!deployed.contains(app), "deployed {} reinstalled", app);
            for dep in &g[app] {
                if !deployed.contains(dep) {
                    prop_assert!(position.get(dep).is_some_and(|p| *p < position[app]),
                        "{} must come before {} in {:?}", dep, app, order);
                }
            }
        }
        for t in &targets {
            prop_assert!(deployed.contains(t) || position.contains_key(t));
        }
        // Nothing extra: everything installed is needed by a target through undeployed apps.
        let mut needed = BTreeSet::new();
        let mut stack: Vec<String> = targets.iter().filter(|t| !deployed.contains(*t)).cloned().collect();
        while let Some(a) = stack.pop() {
            if needed.insert(a.clone()) {
                stack.extend(g[&a].iter().filter(|d| !deployed.contains(*d)).cloned());
            }
        }
        prop_assert_eq!(needed, order.iter().cloned().collect::<BTreeSet<_>>());
    }

    #[test]
    fn cycles_are_always_caught_and_reported_as_real_cycles(
        g in any_graph(),
        picks in prop::collection::vec(0usize..64, 1..4),
    ) {
        let targets = pick(&g, &picks);
        let refs: Vec<&str> = targets.iter().map(String::as_str).collect();
        let result = install_order(&refs, |a| g.get(a).cloned(), |_| false);
        let cyclic = has_cycle(&g, &reachable(&g, &targets));
        match result {
            Ok(order) => {
                prop_assert!(!cyclic, "a cycle was missed: {:?}", order);
                let pos: BTreeMap<&String, usize> = order.iter().enumerate().map(|(i, a)| (a, i)).collect();
                for a in &order {
                    for d in &g[a] {
                        prop_assert!(pos[d] < pos[a]);
                    }
                }
            }
            Err(AppsError::Cycle { members }) => {
                prop_assert!(cyclic, "no cycle, but reported {:?}", members);
                prop_assert!(members.len() >= 2);
                prop_assert_eq!(members.first(), members.last());
                for pair in members.windows(2) {
                    prop_assert!(g[&pair[0]].contains(&pair[1]), "{:?} is not an edge", pair);
                }
            }
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
    }

    #[test]
    fn a_dependency_without_definition_is_always_named(
        g in any_dag(),
        picks in prop::collection::vec(0usize..64, 1..3),
        hole in 0usize..64,
    ) {
        let targets = pick(&g, &picks);
        let removed = pick(&g, &[hole]).remove(0);
        let mut holed = g.clone();
        holed.remove(&removed);
        let refs: Vec<&str> = targets.iter().map(String::as_str).collect();
        let result = install_order(&refs, |a| holed.get(a).cloned(), |_| false);
        let needs_it = reachable(&g, &targets).contains(&removed);
        match result {
            Ok(_) => prop_assert!(!needs_it),
            Err(AppsError::MissingDependency { dependency, .. }) => prop_assert_eq!(dependency, removed),
            Err(AppsError::UnknownApp { name, .. }) => prop_assert_eq!(name, removed),
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
    }

    #[test]
    fn dependents_match_reachability_among_deployed_apps(
        g in any_dag(),
        deployed_picks in prop::collection::vec(0usize..64, 1..8),
        target in 0usize..64,
    ) {
        let deployed: BTreeSet<String> = pick(&g, &deployed_picks).into_iter().collect();
        let app = pick(&g, &[target]).remove(0);
        let got = dependents_of(&app, &deployed, |a| g.get(a).cloned().unwrap_or_default());
        // Brute force: d needs app if app is reachable from d walking deployed apps only.
        let mut expected = Vec::new();
        for d in &deployed {
            if *d == app { continue; }
            let mut seen = BTreeSet::new();
            let mut stack = vec![d.clone()];
            let mut hit = false;
            while let Some(x) = stack.pop() {
                if !seen.insert(x.clone()) { continue; }
                for dep in &g[&x] {
                    if *dep == app { hit = true; }
                    if deployed.contains(dep) { stack.push(dep.clone()); }
                }
            }
            if hit { expected.push(d.clone()); }
        }
        prop_assert_eq!(got, expected);
    }
}
