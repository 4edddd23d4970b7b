//! What a stack is, as probed from inside it: kernel, cgroup version, tool versions, `criu check`.
//! Recorded with every cell, and deciding which cells must be skipped here and why.

use super::exec::{self, Entry};
use crate::axes::{Axis, ENGINES};
use crate::plan::CellKey;
use crate::scenario::CellFacts;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackFacts {
    pub stack: String,
    /// PRETTY_NAME of the stack's /etc/os-release.
    pub os: String,
    /// `uname -r`.
    pub kernel: String,
    /// `v1` or `v2`, as the stack sees /sys/fs/cgroup.
    pub cgroup: String,
    /// The engine's cgroup manager (`cgroupfs`, or `systemd` where systemd is PID 1), as
    /// `podman info` reports it; `unknown` when podman is missing or does not say.
    pub cgroup_manager: String,
    /// Tool name -> what it said of its version. Absent tools are missing.
    pub tools: BTreeMap<String, Tool>,
    /// Debian package -> its installed version (`dpkg-query`), for the tools' packages: a
    /// version range compares the revision too (`+deb12u1`).
    #[serde(default)]
    pub packages: BTreeMap<String, String>,
    /// `criu check`: None when criu is missing.
    pub criu_check: Option<CriuCheck>,
    /// What the stack's dockerd says of itself, once the harness started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<super::dockerd::api::DockerFacts>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tool {
    /// The version as read leniently (`1.21.0`), when one could be read.
    pub version: Option<String>,
    /// The first line of `TOOL --version`.
    pub banner: String,
    /// The whole `--version` output (crun lists its build features there, e.g. `+CRIU`).
    pub details: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CriuCheck {
    pub ok: bool,
    /// The first error line when it failed, else the last line ("Looks good.").
    pub summary: String,
    pub output: String,
}

const TOOLS: [&str; 8] = ["criu", "podman", "crun", "runc", "conmon", "docker", "dockerd", "containerd"];

/// The Debian package each tool comes from.
fn package_of(tool: &str) -> &str {
    match tool {
        "docker" | "dockerd" => "docker.io",
        other => other,
    }
}

/// The installed versions of the tools' packages (`dpkg-query` lists those it knows and exits
/// 1 for the others; a stack without dpkg has none).
async fn package_versions(entry: &Entry, limit: Duration) -> BTreeMap<String, String> {
    let mut argv: Vec<String> = ["dpkg-query", "-W", "-f", "${Package} ${Version}\\n"].map(String::from).to_vec();
    let mut names: Vec<&str> = TOOLS.iter().map(|t| package_of(t)).collect();
    names.dedup();
    argv.extend(names.iter().map(|n| n.to_string()));
    let Ok(out) = exec::run(entry, &argv, limit, None).await else { return BTreeMap::new() };
    out.stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(p, v)| (p.to_string(), v.trim().to_string()))
        .collect()
}

/// Probes a stack through `entry`; `root` is where the host sees the stack's filesystem.
pub async fn probe(stack: &str, entry: &Entry, root: &Path) -> anyhow::Result<StackFacts> {
    let limit = Duration::from_secs(60);
    let mut tools = BTreeMap::new();
    for tool in TOOLS {
        // A tool that cannot be started (not on the host's PATH, or exit 127 through nsenter) is absent.
        let Ok(out) = exec::run(entry, &[tool.to_string(), "--version".to_string()], limit, None).await else {
            continue;
        };
        if out.success() {
            let text = if out.stdout.trim().is_empty() { &out.stderr } else { &out.stdout };
            let banner = text.lines().next().unwrap_or_default().trim().to_string();
            let version = crate::version::parse_lenient(&banner).map(|v| v.to_string());
            tools.insert(tool.to_string(), Tool { version, banner, details: text.trim().to_string() });
        }
    }
    let criu_check = if tools.contains_key("criu") {
        let out = exec::run(entry, &["criu".to_string(), "check".to_string()], limit, None).await?;
        let output = format!("{}{}", out.stdout, out.stderr);
        let ok = out.success();
        let summary = if ok {
            output.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("ok").trim().to_string()
        } else {
            output
                .lines()
                .find(|l| l.contains("Error") || l.contains("rror:"))
                .or_else(|| output.lines().find(|l| !l.trim().is_empty()))
                .unwrap_or("criu check failed without output")
                .trim()
                .to_string()
        };
        Some(CriuCheck { ok, summary, output })
    } else {
        None
    };
    let kernel = exec::run(entry, &["uname".to_string(), "-r".to_string()], limit, None).await?.checked()?.stdout;
    let os_release = std::fs::read_to_string(root.join("etc/os-release")).unwrap_or_default();
    let os = os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .unwrap_or("unknown")
        .trim_matches('"')
        .to_string();
    let cgroup = if root.join("sys/fs/cgroup/cgroup.controllers").exists() { "v2" } else { "v1" };
    let cgroup_manager = if tools.contains_key("podman") { podman_cgroup_manager(entry, limit).await } else { None };
    let packages = package_versions(entry, limit).await;
    Ok(StackFacts {
        stack: stack.to_string(),
        os,
        kernel: kernel.trim().to_string(),
        cgroup: cgroup.to_string(),
        cgroup_manager: cgroup_manager.unwrap_or_else(|| "unknown".to_string()),
        tools,
        packages,
        criu_check,
        docker: None,
    })
}

/// podman's cgroup manager. It decides how the runtime makes a container's cgroup (a systemd
/// scope or a plain directory), which is what the cgroup placement bugs depend on.
async fn podman_cgroup_manager(entry: &Entry, limit: Duration) -> Option<String> {
    let argv = ["podman", "info", "--format", "{{.Host.CgroupManager}}"].map(String::from);
    let out = exec::run(entry, &argv, limit, None).await.ok()?;
    let manager = out.stdout.trim();
    (out.success() && !manager.is_empty()).then(|| manager.to_string())
}

impl StackFacts {
    /// A tool's version: its package's Debian version (with the revision) when the package is
    /// the same release as the tool, else what the tool printed; `linux` is the running kernel's.
    pub fn version(&self, tool: &str) -> Option<crate::version::ToolVersion> {
        if tool == "linux" {
            return crate::version::parse_lenient(&self.kernel);
        }
        let package = self.packages.get(package_of(tool)).map(String::as_str);
        // The daemon's own word, once it runs, over what the CLI was built as.
        if let Some(docker) = self.docker.as_ref().filter(|_| tool == "docker") {
            return crate::version::of_tool(&docker.version, package);
        }
        crate::version::of_tool(&self.tools.get(tool)?.banner, package)
    }

    /// Why a cell with this engine and runtime cannot run in this stack, if it cannot.
    pub fn skip_reason(&self, engine: &str, runtime: &str) -> Option<String> {
        // The program that must be there for the engine to run at all.
        let Some(program) = ENGINES.iter().find(|e| e.name == engine).map(|e| e.program) else {
            let known: Vec<&str> = ENGINES.iter().map(|e| e.name).collect();
            return Some(format!("engine `{engine}` has no driver (known: {})", known.join(", ")));
        };
        if !self.tools.contains_key(program) {
            return Some(format!("{program} is not installed in the {} stack", self.stack));
        }
        let Some(rt) = self.tools.get(runtime) else {
            return Some(format!("{runtime} is not installed in the {} stack", self.stack));
        };
        if self.criu_check.is_none() {
            return Some(format!("criu is not installed in the {} stack", self.stack));
        }
        // A `criu check` that fails is a result about CRIU on this kernel, not a skip
        // (`execute::criu_check_failure`).
        // crun prints its build features; one built without CRIU cannot checkpoint at all.
        if runtime == "crun" && !rt.details.contains("+CRIU") {
            return Some(format!("{} is built without CRIU support (no +CRIU in `crun --version`)", rt.banner));
        }
        None
    }

    /// Versions for records and reports: kernel, cgroup, OS, and every tool found.
    pub fn versions(&self) -> BTreeMap<String, String> {
        let mut v = BTreeMap::new();
        v.insert("kernel".to_string(), self.kernel.clone());
        v.insert("cgroup".to_string(), format!("{} ({})", self.cgroup, self.cgroup_manager));
        v.insert("os".to_string(), self.os.clone());
        for (name, tool) in &self.tools {
            let version = self.version(name).map(|v| v.to_string());
            v.insert(name.clone(), version.or_else(|| tool.version.clone()).unwrap_or_else(|| tool.banner.clone()));
        }
        v
    }
}

/// A cell as a `when:` clause sees it: its axes, its engine's cgroup manager, and the stack's
/// tool versions.
pub struct CellView<'a> {
    pub key: &'a CellKey,
    pub stack: &'a StackFacts,
}

impl CellFacts for CellView<'_> {
    fn axis(&self, axis: Axis) -> Option<String> {
        Some(self.key[axis].clone())
    }
    fn cgroup_manager(&self) -> Option<String> {
        // Each engine has its own: podman's as `podman info` says, docker's cgroup driver.
        match (&self.stack.docker, self.key[Axis::Engine].as_str()) {
            (Some(docker), "docker") => Some(docker.cgroup_driver.clone()),
            _ => Some(self.stack.cgroup_manager.clone()),
        }
    }
    fn tool_version(&self, tool: &str) -> Option<crate::version::ToolVersion> {
        self.stack.version(tool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn facts(criu_ok: bool, crun_details: &str) -> StackFacts {
        let tool = |v: &str, details: &str| Tool {
            version: Some(v.into()),
            banner: format!("x version {v}"),
            details: details.into(),
        };
        let mut tools = BTreeMap::new();
        tools.insert("podman".into(), tool("5.4.2", ""));
        tools.insert("runc".into(), tool("1.1.15", ""));
        tools.insert("crun".into(), tool("1.21.0", crun_details));
        tools.insert("criu".into(), tool("4.1.1", ""));
        tools.insert("dockerd".into(), tool("26.1.5", ""));
        StackFacts {
            packages: Default::default(),
            stack: "trixie".into(),
            os: "Debian".into(),
            kernel: "6.18".into(),
            cgroup: "v1".into(),
            cgroup_manager: "cgroupfs".into(),
            tools,
            docker: None,
            criu_check: Some(CriuCheck {
                ok: criu_ok,
                summary: if criu_ok {
                    "Looks good.".into()
                } else {
                    "Error (criu/vdso.c:1): vdso: Unexpected rt vDSO area bounds".into()
                },
                output: String::new(),
            }),
        }
    }

    #[rstest]
    #[case::runs(true, "+SYSTEMD +CRIU", "podman", "crun", None)]
    #[case::criu_check_fails_is_no_skip(false, "+CRIU", "podman", "runc", None)]
    #[case::crun_without_criu(true, "+SYSTEMD +SELINUX", "podman", "crun", Some("without CRIU"))]
    #[case::no_such_runtime(true, "+CRIU", "podman", "youki", Some("youki is not installed"))]
    #[case::docker_runs(true, "+CRIU", "docker", "crun", None)]
    #[case::docker_criu_check_fails_is_no_skip(false, "+CRIU", "docker", "runc", None)]
    #[case::no_such_engine(true, "+CRIU", "lxc", "runc", Some("no driver"))]
    fn decides_skips(
        #[case] ok: bool,
        #[case] crun: &str,
        #[case] engine: &str,
        #[case] runtime: &str,
        #[case] reason: Option<&str>,
    ) {
        let got = facts(ok, crun).skip_reason(engine, runtime);
        if engine == "docker" {
            let mut without = facts(ok, crun);
            without.tools.remove("dockerd");
            let why = without.skip_reason(engine, runtime).unwrap_or_default();
            assert!(why.contains("dockerd is not installed"), "{why}");
        }
        match reason {
            None => assert_eq!(got, None),
            Some(needle) => assert!(got.as_deref().unwrap_or_default().contains(needle), "{got:?}"),
        }
    }
}
