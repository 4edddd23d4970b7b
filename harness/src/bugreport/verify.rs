//! `bugreport --verify`: runs a cell's `reproduce.sh` inside the cell's stack (entered as the
//! harness enters it, its images ensured first) and checks that the failure signature appears
//! again, in the script's output or in a CRIU log the engine names there
//! (`Please check CRIU logfile ...`): the report's reproducer is then tested, not assumed.

use crate::axes::Axis;
use crate::events::Events;
use crate::process::Transcript;
use crate::project::Project;
use crate::record::CellRecord;
use crate::stack::{exec, Cache};
use anyhow::Context as _;
use regex::Regex;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Long enough for every step of the slowest scenario, short enough that a hung script ends.
const LIMIT: Duration = Duration::from_secs(1200);

/// What running the reproducer showed.
#[derive(Debug, Clone)]
pub struct Verified {
    pub stack: String,
    pub signature: String,
    /// The first line that matched, and where (`output` or a CRIU log's path in the stack).
    pub matched: Option<(String, String)>,
    pub exit: Option<i32>,
    pub seconds: f64,
    pub at: String,
    /// The script's output (stdout, then stderr).
    pub output: String,
}

impl Verified {
    pub fn reproduced(&self) -> bool {
        self.matched.is_some()
    }

    /// A paragraph for the report.
    pub fn summary(&self) -> String {
        match &self.matched {
            Some((line, place)) => format!(
                "**Tested**: criu-matrix ran this script in the `{}` stack on {} ({:.0} s, exit {}); the failure \
                 signature `/{}/` appeared again, in {place}:\n\n```\n{line}\n```",
                self.stack,
                self.at,
                self.seconds,
                self.exit.map_or("none".to_string(), |c| c.to_string()),
                self.signature
            ),
            None => format!(
                "**Not reproduced**: criu-matrix ran this script in the `{}` stack on {} ({:.0} s, exit {}); the \
                 failure signature `/{}/` did not appear.",
                self.stack,
                self.at,
                self.seconds,
                self.exit.map_or("none".to_string(), |c| c.to_string()),
                self.signature
            ),
        }
    }
}

/// The CRIU logs an engine names in its messages, as paths inside the stack: podman's
/// `Please check CRIU logfile PATH`, runc's `log file: PATH` (inside a quoted message).
pub fn named_criu_logs(output: &str) -> Vec<String> {
    let re = Regex::new(r#"(/[^\s"'\\]+/(?:dump|restore)\.log)"#).expect("a valid regex");
    let mut logs: Vec<String> = Vec::new();
    for c in re.captures_iter(output) {
        let path = c[1].to_string();
        if !logs.contains(&path) {
            logs.push(path);
        }
    }
    logs
}

/// Where `signature` first matches: in `output`, else in one of `logs` (name, text).
pub fn find_signature(signature: &Regex, output: &str, logs: &[(String, String)]) -> Option<(String, String)> {
    let in_text = |text: &str| text.lines().find(|l| signature.is_match(l)).map(|l| l.trim().to_string());
    if let Some(line) = in_text(output) {
        return Some((line, "the script's output".to_string()));
    }
    logs.iter().find_map(|(name, text)| in_text(text).map(|line| (line, format!("CRIU's log `{name}`"))))
}

/// Runs the cell's reproducer in its stack and looks for `signature`.
pub async fn run(
    project: &Project,
    cache: &Cache,
    events: &Events,
    record: &CellRecord,
    scenario: &crate::scenario::Scenario,
    script: &Path,
    signature: &Regex,
    derivation: Option<&crate::plan::Derivation>,
) -> anyhow::Result<Verified> {
    anyhow::ensure!(
        record.key[Axis::Kernel] == "host",
        "only host-kernel cells can be verified so far; `{}` runs in a VM",
        record.name
    );
    anyhow::ensure!(record.key[Axis::Engine] == "podman", "only podman cells can be verified so far");
    let text = std::fs::read_to_string(script).with_context(|| format!("failed to read {}", script.display()))?;
    let session = crate::build::open(&record.key[Axis::Stack], derivation, cache, events).await?;
    // The image the script runs, built as the cell had it (cached: same inputs, same tag).
    let engine = crate::engine::for_stack(&session, "podman", Arc::new(Transcript::default()))?;
    let base = crate::image::ensure_base(engine.as_ref(), &session, cache, events).await?;
    crate::image::ensure_image(engine.as_ref(), &session, &project.images(), &scenario.image, &base, events).await?;

    let inner = format!("/tmp/criu-matrix-reproduce-{}.sh", std::process::id());
    let on_host = session.host_path(&inner);
    std::fs::write(&on_host, &text).with_context(|| format!("failed to write {}", on_host.display()))?;
    let at = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let out = exec::run(&session.entry(), &["sh".to_string(), inner.clone()], LIMIT, None).await;
    let _ = std::fs::remove_file(&on_host);
    let out = out?;
    let output = format!("{}{}", out.stdout, out.stderr);
    let logs: Vec<(String, String)> = named_criu_logs(&output)
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(session.host_path(&p)).ok().map(|t| (p, t)))
        .collect();
    let matched = find_signature(signature, &output, &logs);
    // Leaving the stack removes whatever the script left (its containers carry the harness's label).
    drop(session);
    Ok(Verified {
        stack: record.key[Axis::Stack].clone(),
        signature: signature.as_str().to_string(),
        matched,
        exit: out.status,
        seconds: out.seconds,
        at,
        output,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criu_logs_named_by_podman_are_found() {
        let stderr = "Error: x: CRIU checkpointing failed -52.  Please check CRIU logfile /var/lib/containers/storage/overlay-containers/abc/userdata/dump.log: make sure the container has no open TCP\n";
        assert_eq!(named_criu_logs(stderr), ["/var/lib/containers/storage/overlay-containers/abc/userdata/dump.log"]);
        let runc = r#"level=error msg="criu failed: type NOTIFY errno 0\nlog file: /var/lib/c/abc/userdata/dump.log""#;
        assert_eq!(named_criu_logs(runc), ["/var/lib/c/abc/userdata/dump.log"]);
    }

    #[test]
    fn the_signature_is_looked_for_in_the_output_then_the_logs() {
        let re = Regex::new("Can't get 1:16 opt").unwrap();
        let logs = vec![("dump.log".to_string(), "a\n(00.1) Error: sockets: Can't get 1:16 opt: x\n".to_string())];
        assert_eq!(
            find_signature(&re, "nothing here", &logs),
            Some(("(00.1) Error: sockets: Can't get 1:16 opt: x".to_string(), "CRIU's log `dump.log`".to_string()))
        );
        assert_eq!(find_signature(&re, "nothing here", &[]), None);
    }
}
