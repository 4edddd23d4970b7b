//! Headless Chromium, to check that the HTML page renders and its script works: Debian's
//! `chromium` in a trixie tools rootfs in the cache (`tools/chromium`, made with the same
//! debootstrap machinery as the stacks), run chrooted. Nothing is installed on the host.
//!
//! The flags keep it off the network (which is closed here anyway: without them it waits on
//! component updates and QUIC probes) and out of any profile but a fresh one per call.

use crate::stack::toolroot::{self, ToolRoot};
use crate::stack::Cache;
use anyhow::Context as _;
use std::path::Path;
use std::time::Duration;

// dbus-x11: debootstrap cannot resolve a virtual package in an alternative (dconf-service needs
// `default-dbus-session-bus | dbus-session-bus`); dbus-x11 provides the second, without systemd.
const PACKAGES: &[&str] = &["chromium", "fonts-dejavu-core", "dbus-x11"];
const LIMIT: Duration = Duration::from_secs(180);

pub struct Browser {
    tools: ToolRoot,
    cache: Cache,
}

/// Ensures the chromium tools rootfs; returns it and whether it was already there.
pub async fn ensure(cache: &Cache) -> anyhow::Result<(Browser, bool)> {
    let (tools, cached) = toolroot::ensure(cache, "chromium", "trixie", PACKAGES).await?;
    Ok((Browser { tools, cache: cache.clone() }, cached))
}

/// What loading a page showed.
pub struct Rendered {
    /// The DOM after the page's script ran (`--dump-dom`).
    pub dom: String,
    /// Chromium's stderr, for when something is off.
    pub log: String,
}

impl Browser {
    /// `chromium --version`.
    pub async fn version(&self) -> anyhow::Result<String> {
        let out = self.tools.run(&["chromium".to_string(), "--version".to_string()], Duration::from_secs(60)).await?;
        Ok(out.checked()?.stdout.trim().to_string())
    }

    /// Loads `page` (with `#fragment` when not empty); returns the DOM after its script ran,
    /// and writes a screenshot of `size` to `png` when one is asked for.
    pub async fn render(
        &self,
        page: &Path,
        fragment: &str,
        png: Option<(&Path, (u32, u32))>,
    ) -> anyhow::Result<Rendered> {
        // Chromium sees only its rootfs and the cache: the page goes into a scratch directory there.
        let scratch_root = self.cache.root.join("tmp");
        std::fs::create_dir_all(&scratch_root)?;
        let scratch = tempfile::tempdir_in(&scratch_root)?;
        let name = page.file_name().context("the page has no file name")?;
        std::fs::copy(page, scratch.path().join(name))
            .with_context(|| format!("failed to copy {} for the browser", page.display()))?;
        let inner = self.tools.inner(scratch.path())?;
        let url = match fragment {
            "" => format!("file://{inner}/{}", name.to_string_lossy()),
            f => format!("file://{inner}/{}#{f}", name.to_string_lossy()),
        };
        // A fresh profile per call: nothing carries over between loads.
        let chromium = |profile: &str, rest: Vec<String>| -> Vec<String> {
            let mut argv: Vec<String> = [
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
            ]
            .map(String::from)
            .to_vec();
            argv.push(format!("--user-data-dir={inner}/{profile}"));
            argv.extend(rest);
            argv
        };
        let dom = self.tools.run(&chromium("profile-dom", vec!["--dump-dom".into(), url.clone()]), LIMIT).await?;
        let log = dom.stderr.clone();
        let dom = dom.checked().context("chromium --dump-dom failed")?.stdout;
        if let Some((png, (w, h))) = png {
            let rest = vec![format!("--window-size={w},{h}"), format!("--screenshot={inner}/shot.png"), url];
            self.tools
                .run(&chromium("profile-shot", rest), LIMIT)
                .await?
                .checked()
                .context("chromium --screenshot failed")?;
            std::fs::copy(scratch.path().join("shot.png"), png)
                .with_context(|| format!("failed to keep the screenshot as {}", png.display()))?;
        }
        Ok(Rendered { dom, log })
    }
}

/// Checks the DOM Chromium dumped against the records the page was made from: a cell per
/// distinct cell, each verdict's color, and the evidence of `opened` shown by the page's click
/// handler (the `#cell=` address clicks the cell). Says what it found.
pub fn check_dom(dom: &str, records: &[crate::record::CellRecord], opened: &str) -> Result<String, String> {
    let mut distinct: Vec<&str> = records.iter().map(|r| r.name.as_str()).collect();
    distinct.sort();
    distinct.dedup();
    let cells = dom.matches("<td class=\"cell v-").count();
    if cells != distinct.len() {
        return Err(format!("{cells} verdict cells in the page, {} cells in the records", distinct.len()));
    }
    for v in records.iter().map(|r| r.verdict.to_string()) {
        if !dom.contains(&format!("<td class=\"cell v-{v}")) {
            return Err(format!("no `{v}` cell in the page"));
        }
    }
    if !dom.contains(&format!("data-shown=\"{opened}\"")) {
        return Err(format!("the evidence panel does not show {opened}: the click handler did not run"));
    }
    let record = records.iter().rev().find(|r| r.name == opened).ok_or_else(|| format!("no record of {opened}"))?;
    let panel = &dom[dom.find("id=\"evidence-panel\"").unwrap_or(0)..];
    let escaped = record.reason.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    if !panel.contains(&escaped) {
        return Err(format!("the evidence panel lacks the cell's reason `{}`", record.reason));
    }
    let mut found = vec![format!("{cells} cells"), format!("evidence of {opened} shown")];
    if let Some(f) = &record.failure {
        if !panel.contains(&format!("<td>{}</td>", f.step)) {
            return Err(format!("the evidence panel lacks the failing step `{}`", f.step));
        }
        found.push(format!("failing step {} round {}", f.step, f.round));
    }
    if record.rounds.iter().any(|r| r.checkpoint_seconds.is_some()) {
        // Drawn by the page's script from the chart's data: a line per series.
        let chart = panel.find("class=\"cell-chart\"").map(|at| &panel[at..]).unwrap_or_default();
        if !chart.contains("<svg") || !chart.contains("<polyline") {
            return Err("the evidence panel lacks the cell's timing chart (its script did not draw it)".to_string());
        }
        found.push("a timing chart".to_string());
    }
    if panel.contains("class=\"reproducer\"") {
        found.push("the reproducer".to_string());
    }
    Ok(found.join(", "))
}
