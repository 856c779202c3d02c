//! Preflight of a deploy: does the server have the memory and CPUs for everything that would
//! run on it afterwards? Pure arithmetic over the apps' declared minimums (the installer's
//! menu, `requirements` in each definition) and the server's resources that setup read.
//!
//! Memory adds up: every app's minimum is memory it holds. CPUs do not: apps share them, so
//! the server needs as many as the most demanding app asks for. The server's memory counts
//! at its nominal size (`MemTotal` rounded up to 512 MiB): a "4 GB" plan reports about
//! 3.8 GiB because the kernel keeps some, and must not fail an app that asks for 4096 MiB.

use livchat_store::ServerResources;

/// One app's declared minimums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppNeed {
    pub app: String,
    pub memory_mb: u64,
    pub cpus: u32,
}

/// What a deploy would need next to what the server has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight {
    pub server: String,
    /// `None` for a server set up before livchat read its resources.
    pub has: Option<ServerResources>,
    /// Every app that would run there after the deploy, in name order.
    pub apps: Vec<AppNeed>,
}

/// `MemTotal` rounded up to the next 512 MiB.
pub fn nominal_memory_mb(memory_mb: u64) -> u64 {
    memory_mb.div_ceil(512) * 512
}

impl Preflight {
    /// Total memory every app needs together.
    pub fn memory_mb(&self) -> u64 {
        self.apps.iter().map(|a| a.memory_mb).sum()
    }

    /// CPUs the most demanding app needs.
    pub fn cpus(&self) -> u32 {
        self.apps.iter().map(|a| a.cpus).max().unwrap_or(0)
    }

    /// Whether the server falls short (unknown resources never do: there is nothing to
    /// compare with).
    pub fn is_short(&self) -> bool {
        self.has.is_some_and(|has| {
            nominal_memory_mb(has.memory_mb) < self.memory_mb() || has.cpus < self.cpus()
        })
    }

    fn needs(&self) -> String {
        let apps: Vec<String> = self
            .apps
            .iter()
            .map(|a| format!("{} {} MiB/{} CPU", a.app, a.memory_mb, a.cpus))
            .collect();
        format!(
            "{} MiB and {} CPUs ({})",
            self.memory_mb(),
            self.cpus(),
            apps.join(", ")
        )
    }

    /// The plan's line: needs, has, and the verdict.
    pub fn plan_line(&self) -> String {
        match self.has {
            None => format!(
                "preflight: needs {}; resources of {} unknown (set up before livchat read \
                 them): run `livchat server setup {}` again to read them",
                self.needs(),
                self.server,
                self.server
            ),
            Some(has) => format!(
                "preflight: needs {}; {} has {} MiB ({} MiB nominal) and {} CPUs: {}",
                self.needs(),
                self.server,
                has.memory_mb,
                nominal_memory_mb(has.memory_mb),
                has.cpus,
                if self.is_short() {
                    "SHORT (the deploy is refused without --force)"
                } else {
                    "enough"
                }
            ),
        }
    }

    /// The refusal, with the numbers, when the server falls short.
    pub fn refusal(&self) -> Option<String> {
        let has = self.has.filter(|_| self.is_short())?;
        Some(format!(
            "{} has {} MiB of memory ({} MiB nominal) and {} CPUs; with this deploy it would \
             run apps that need {}. Deploy to a larger server, undeploy an app first, or pass \
             --force to deploy anyway",
            self.server,
            has.memory_mb,
            nominal_memory_mb(has.memory_mb),
            has.cpus,
            self.needs()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(app: &str, memory_mb: u64, cpus: u32) -> AppNeed {
        AppNeed {
            app: app.into(),
            memory_mb,
            cpus,
        }
    }

    fn preflight(memory_mb: u64, cpus: u32) -> Preflight {
        Preflight {
            server: "web-1".into(),
            has: Some(ServerResources { cpus, memory_mb }),
            apps: vec![
                need("n8n", 2048, 2),
                need("postgres", 512, 1),
                need("redis", 256, 1),
            ],
        }
    }

    #[test]
    fn memory_adds_up_and_cpus_are_the_largest_single_need() {
        let p = preflight(8000, 4);
        assert_eq!((p.memory_mb(), p.cpus()), (2816, 2));
        assert!(!p.is_short());
        assert!(p.plan_line().ends_with("enough"), "{}", p.plan_line());
    }

    #[test]
    fn a_4_gb_plan_counts_at_its_nominal_size() {
        // A "4 GB" server reports about 3.8 GiB.
        assert_eq!(nominal_memory_mb(3820), 4096);
        let mut p = preflight(3820, 2);
        p.apps = vec![need("big", 4096, 2)];
        assert!(!p.is_short());
        p.apps.push(need("postgres", 512, 1));
        assert!(p.is_short());
    }

    #[test]
    fn a_short_server_is_refused_with_the_numbers_and_the_way_out() {
        let p = preflight(1900, 1);
        let why = p.refusal().expect("2 GB and 1 CPU is short for n8n");
        for part in [
            "web-1 has 1900 MiB",
            "2048 MiB nominal",
            "1 CPUs",
            "2816 MiB and 2 CPUs",
            "n8n 2048 MiB/2 CPU",
            "--force",
        ] {
            assert!(why.contains(part), "{part:?} missing from {why}");
        }
        assert!(p.plan_line().contains("SHORT"), "{}", p.plan_line());
    }

    #[test]
    fn unknown_resources_are_never_short_and_the_plan_says_how_to_read_them() {
        let mut p = preflight(1, 1);
        p.has = None;
        assert!(!p.is_short() && p.refusal().is_none());
        assert!(
            p.plan_line().contains("livchat server setup web-1"),
            "{}",
            p.plan_line()
        );
    }
}
