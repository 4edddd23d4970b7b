//! Debian's source packages of a suite, looked up with the host's apt under a private
//! configuration (`stack::apt`: the suite's `Sources` index in the cache, signatures checked
//! against Debian's archive keyring only): which version `deb:SUITE` would build, before building it.

use crate::stack::Cache;
use anyhow::Context as _;

pub struct Apt {
    apt: crate::stack::apt::PrivateApt,
    suite: String,
}

impl Apt {
    pub fn new(cache: &Cache, suite: &str) -> anyhow::Result<Apt> {
        let dir = cache.root.join("builds/apt-sources").join(suite);
        let apt = crate::stack::apt::PrivateApt::new(dir, "deb-src", &[suite])?
            // A snapshot mirror may serve a Release file past its validity; signatures still count.
            .with_option("Acquire::Check-Valid-Until=false");
        Ok(Apt { apt, suite: suite.to_string() })
    }

    async fn command(&self, tool: &str, args: &[&str]) -> anyhow::Result<String> {
        self.apt.command(tool, args, None).await
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
