//! Where each component of a cell's stack came from: Debian's package of the stack's suite, or
//! an override (`--with`): the source as given, what it was built from, its patches, the hash of
//! what was installed.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ComponentOrigin {
    /// `debian` (the stack's own package), or the override's source as given: `deb:sid`,
    /// `src:/x/criu@v4.2`, `path:/x/criu`.
    pub source: String,
    /// The Debian package and its version (`criu 4.1.1-1`) for a package of the stack; for an
    /// override what it reports (`--version`'s first line, or the rebuilt package's version).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// For `src:` of a git checkout: the commit built, and `git describe --tags --always`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_describe: Option<String>,
    /// For `deb:`: Debian's source package and version that was built (`criu 4.2.1-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debian_source: Option<String>,
    /// The patches applied on top, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<PatchOrigin>,
    /// The installed program (`/usr/sbin/criu`) and the SHA-256 of what was installed there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The hash of the build's inputs (the cache key of `builds/<component>/<hash>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<String>,
    /// How long the build took when it ran (a cached build keeps the figure of the run that made it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchOrigin {
    pub file: String,
    pub sha256: String,
}

impl ComponentOrigin {
    /// One line: `deb:sid (criu 4.2.1-1, sha256 1a2b3c4d)`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        for text in [&self.debian_source, &self.git_describe].into_iter().flatten() {
            parts.push(text.clone());
        }
        if parts.is_empty() && !self.version.is_empty() {
            parts.push(self.version.clone());
        }
        if !self.patches.is_empty() {
            let files: Vec<&str> = self.patches.iter().map(|p| p.file.as_str()).collect();
            parts.push(format!("patches {}", files.join(" ")));
        }
        if let Some(hash) = &self.sha256 {
            parts.push(format!("sha256 {}", &hash[..hash.len().min(12)]));
        }
        if parts.is_empty() {
            self.source.clone()
        } else {
            format!("{} ({})", self.source, parts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_names_the_source_and_what_was_built() {
        let debian = ComponentOrigin { source: "debian".into(), version: "criu 4.1.1-1".into(), ..Default::default() };
        assert_eq!(debian.summary(), "debian (criu 4.1.1-1)");
        let src = ComponentOrigin {
            source: "src:/x/criu@v4.1".into(),
            git_describe: Some("v4.1-70-g4b7398595".into()),
            patches: vec![PatchOrigin { file: "fix.patch".into(), sha256: "00".into() }],
            sha256: Some("0123456789abcdef0123".into()),
            ..Default::default()
        };
        assert_eq!(src.summary(), "src:/x/criu@v4.1 (v4.1-70-g4b7398595, patches fix.patch, sha256 0123456789ab)");
        let text = serde_json::to_string(&src).unwrap();
        assert_eq!(serde_json::from_str::<ComponentOrigin>(&text).unwrap(), src);
        assert!(!serde_json::to_string(&debian).unwrap().contains("patches"));
    }
}
