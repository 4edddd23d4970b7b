//! The host's apt under a private configuration: its own sources, index and download cache in
//! a directory of the cache, nothing shared with the host's own package state, and only
//! packages whose signatures check against Debian's archive keyring (never the host's trusted
//! keys, never unsigned or unauthenticated). Used for the VM kernels and for Debian's source
//! packages (`deb:SUITE` builds).

use super::debian;
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

const APT_LIMIT: Duration = Duration::from_secs(900);

pub struct PrivateApt {
    dir: PathBuf,
    extra: Vec<String>,
}

impl PrivateApt {
    /// An apt whose state lives in `dir`, reading the `deb`/`deb-src` lines of `kind` for each
    /// of `suites` from the mirror, each `signed-by` Debian's archive keyring.
    pub fn new(dir: PathBuf, kind: &str, suites: &[&str]) -> anyhow::Result<PrivateApt> {
        std::fs::create_dir_all(dir.join("lists/partial"))?;
        std::fs::create_dir_all(dir.join("cache/archives/partial"))?;
        let mirror = debian::mirror()?;
        std::fs::write(dir.join("sources.list"), sources(kind, &mirror, suites, debian::archive_keyring()?))?;
        std::fs::write(dir.join("status"), "")?;
        Ok(PrivateApt { dir, extra: Vec::new() })
    }

    /// One more `-o` option (with the reason at the caller).
    pub fn with_option(mut self, option: &str) -> PrivateApt {
        self.extra.push(option.to_string());
        self
    }

    fn options(&self) -> Vec<String> {
        let d = self.dir.display();
        [
            format!("Dir::Etc::SourceList={d}/sources.list"),
            "Dir::Etc::SourceParts=/nonexistent".to_string(),
            format!("Dir::State::Lists={d}/lists"),
            format!("Dir::Cache={d}/cache"),
            format!("Dir::State::status={d}/status"),
            "APT::Architecture=amd64".to_string(),
            // Downloads land in a root-owned temp dir the _apt user cannot write.
            "APT::Sandbox::User=root".to_string(),
            // Only the sources' own keyring counts (not the host's trusted keys), and nothing
            // unsigned or unauthenticated is ever taken.
            "Dir::Etc::Trusted=/nonexistent".to_string(),
            "Dir::Etc::TrustedParts=/nonexistent".to_string(),
            "Acquire::AllowInsecureRepositories=false".to_string(),
            "Acquire::AllowDowngradeToInsecureRepositories=false".to_string(),
            "APT::Get::AllowUnauthenticated=false".to_string(),
        ]
        .into_iter()
        .chain(self.extra.iter().cloned())
        .flat_map(|o| ["-o".to_string(), o])
        .collect()
    }

    /// Runs `tool` (`apt-get`, `apt-cache`) with the private configuration, in `cwd` if given;
    /// its standard output.
    pub async fn command(&self, tool: &str, args: &[&str], cwd: Option<&Path>) -> anyhow::Result<String> {
        let argv = std::iter::once(tool.to_string()).chain(self.options()).chain(args.iter().map(|a| a.to_string()));
        let mut cmd = crate::process::Command::new(argv, APT_LIMIT);
        if let Some(cwd) = cwd {
            cmd = cmd.current_dir(cwd);
        }
        let out = cmd.run().await.with_context(|| format!("failed to run {tool}"))?;
        Ok(out.checked()?.stdout)
    }
}

fn sources(kind: &str, mirror: &str, suites: &[&str], keyring: &Path) -> String {
    suites.iter().map(|suite| format!("{kind} [signed-by={}] {mirror} {suite} main\n", keyring.display())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_is_signed_by_the_keyring_and_no_host_key_counts() {
        let text = sources("deb-src", "http://deb.debian.org/debian", &["trixie", "sid"], Path::new("/k.gpg"));
        assert_eq!(
            text,
            "deb-src [signed-by=/k.gpg] http://deb.debian.org/debian trixie main\n\
             deb-src [signed-by=/k.gpg] http://deb.debian.org/debian sid main\n"
        );
        let apt = PrivateApt { dir: PathBuf::from("/a"), extra: vec!["X=1".into()] };
        let options = apt.options();
        for needed in ["Dir::Etc::Trusted=/nonexistent", "APT::Get::AllowUnauthenticated=false", "X=1"] {
            assert!(options.iter().any(|o| o == needed), "{needed} in {options:?}");
        }
        assert!(!options.iter().any(|o| o.contains("trusted=yes")));
    }
}
