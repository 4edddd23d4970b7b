//! Debian's source packages of a suite, looked up with the host's apt under a private
//! configuration (the suite's `Sources` index in the cache, signatures checked with the host's
//! Debian archive keyring): which version `deb:SUITE` would build, before building it.

use crate::stack::{debian, Cache};
use anyhow::Context as _;
use std::path::PathBuf;
use std::time::Duration;

const APT_LIMIT: Duration = Duration::from_secs(900);
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

pub struct Apt {
    dir: PathBuf,
    suite: String,
}

impl Apt {
    pub fn new(cache: &Cache, suite: &str) -> anyhow::Result<Apt> {
        let dir = cache.root.join("builds/apt-sources").join(suite);
        std::fs::create_dir_all(dir.join("lists/partial"))?;
        std::fs::create_dir_all(dir.join("cache/archives/partial"))?;
        let mirror = debian::mirror()?;
        let signed = if std::path::Path::new(KEYRING).is_file() { format!("[signed-by={KEYRING}] ") } else { String::new() };
        std::fs::write(dir.join("sources.list"), format!("deb-src {signed}{mirror} {suite} main\n"))?;
        std::fs::write(dir.join("status"), "")?;
        Ok(Apt { dir, suite: suite.to_string() })
    }

    fn options(&self) -> Vec<String> {
        let d = self.dir.display();
        [
            format!("Dir::Etc::SourceList={d}/sources.list"),
            "Dir::Etc::SourceParts=/nonexistent".to_string(),
            format!("Dir::State::Lists={d}/lists"),
            format!("Dir::Cache={d}/cache"),
            format!("Dir::State::status={d}/status"),
            "APT::Sandbox::User=root".to_string(),
            // A snapshot mirror may serve a Release file past its validity; signatures still count.
            "Acquire::Check-Valid-Until=false".to_string(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_string(), o])
        .collect()
    }

    async fn command(&self, tool: &str, args: &[&str]) -> anyhow::Result<String> {
        let argv = std::iter::once(tool.to_string()).chain(self.options()).chain(args.iter().map(|a| a.to_string()));
        let out = crate::process::Command::new(argv, APT_LIMIT).run().await.with_context(|| format!("failed to run {tool}"))?;
        Ok(out.checked()?.stdout)
    }

    /// The version of `package`'s source in the suite, its index brought up to date first (a
    /// few seconds when nothing changed).
    pub async fn source_version(&self, package: &str) -> anyhow::Result<String> {
        self.command("apt-get", &["update", "-qq"])
            .await
            .with_context(|| format!("failed to read the {} archive's source index", self.suite))?;
        let text = self.command("apt-cache", &["showsrc", "--only-source", package]).await?;
        newest_version(&text, package)
            .with_context(|| format!("Debian {} has no source package `{package}`", self.suite))
    }
}

/// The `Version:` of the first `Package: NAME` stanza of `apt-cache showsrc` (one suite's index
/// holds one version of a source package).
fn newest_version(text: &str, package: &str) -> Option<String> {
    text.split("\n\n").find_map(|stanza| {
        let field = |name: &str| stanza.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_string());
        (field("Package:").as_deref() == Some(package)).then(|| field("Version:")).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_version_of_the_package_is_read() {
        let text = "Package: criu-other\nVersion: 9\n\nPackage: criu\nVersion: 4.2.1-1\nBinary: criu\n";
        assert_eq!(newest_version(text, "criu").as_deref(), Some("4.2.1-1"));
        assert_eq!(newest_version(text, "crun"), None);
    }
}
