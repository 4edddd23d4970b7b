//! Component builds and derived stacks: a stack whose CRIU, crun, runc, conmon or podman is
//! replaced (`--with COMPONENT=SOURCE`, `plan::with`), built for that stack and installed over it.
//!
//! - `inputs`: each override resolved (a revision's commit, Debian's source version, a file's
//!   hash) into the key of its build;
//! - `apt`: Debian's source indexes, for the version `deb:SUITE` builds;
//! - `builder`: the build in a throwaway build rootfs of the stack's suite, cached by its key;
//!   `deb-build.sh` (Debian's source package) and `src-build.sh` (an upstream tree) run there;
//! - this file: a derived stack opened like any other (`stack::open_derived`), its components'
//!   files installed by `stack::variant`.

mod apt;
pub mod builder;
pub mod inputs;

pub use builder::DoesNotBuild;

use crate::events::Events;
use crate::plan::Derivation;
use crate::record::ComponentOrigin;
use crate::stack::{self, debian, variant, Cache, Session};
use anyhow::Context as _;

/// Opens the stack `name`: a Debian suite's as it is, or a derived one (`derivation`, or the
/// table's own derived stack of that name), its components built first when they are not yet.
pub async fn open(name: &str, derivation: Option<&Derivation>, cache: &Cache, events: &Events) -> anyhow::Result<Session> {
    let table = Derivation::of_table(name);
    let Some(derivation) = derivation.or(table.as_ref()) else {
        return stack::open(name, cache, events).await;
    };
    anyhow::ensure!(derivation.name == name, "the stack {name} is not what its overrides make ({})", derivation.name);
    let suite = derivation.suite();
    let suite_def = debian::Suite::find(suite).with_context(|| format!("unknown suite `{suite}`"))?;
    stack::open_derived(name, suite, cache, events, |dir| async move {
        let installs = prepare(derivation, cache, events).await?;
        variant::ensure_rootfs(cache, &dir, suite_def, &installs).await
    })
    .await
}

/// Every component of `derivation` built (or found built), as the files to install.
pub async fn prepare(derivation: &Derivation, cache: &Cache, events: &Events) -> anyhow::Result<Vec<variant::Install>> {
    let suite = derivation.suite();
    let mut installs = Vec::new();
    for o in &derivation.overrides {
        let what = format!("{} from {}", o.component.name, o.source.spec());
        // The script that builds it is one of its inputs.
        // (A Debian build falls back to the upstream build when the mirror lacks its packaging.)
        let script = match o.source {
            crate::plan::Source::Deb { .. } => format!("{}{}", builder::DEB_SCRIPT, builder::SRC_SCRIPT),
            _ => builder::SRC_SCRIPT.to_string(),
        };
        let resolved =
            inputs::resolve(o, suite, &script, cache).await.with_context(|| format!("failed to resolve {what}"))?;
        let label = format!("build {what}");
        let built = events
            .timed(&derivation.name, &label, async {
                let built = builder::ensure(&resolved, suite, cache, events).await?;
                let cached = built.cached;
                Ok((built, cached))
            })
            .await
            .with_context(|| format!("failed to build {what} for {suite}"))?;
        let program = built.tree.join(o.component.program.trim_start_matches('/'));
        let origin = ComponentOrigin {
            version: built.version.clone(),
            program: program.is_file().then(|| o.component.program.to_string()),
            sha256: std::fs::read(&program).ok().map(|b| variant::sha256(&b)),
            build_seconds: built.seconds,
            ..resolved.origin.clone()
        };
        installs.push(variant::Install { component: o.component.name.to_string(), tree: built.tree, key: resolved.key, origin });
    }
    Ok(installs)
}
