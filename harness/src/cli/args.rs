//! The options that choose cells: a named matrix, a filter on every axis (one `--AXIS` flag per
//! axis of the axes table, its values checked against the table), a name filter and a shard.

use crate::axes::Axis;
use crate::plan::{Filter, Shard};
use clap::{Arg, ArgAction, ArgMatches, Args};
use std::collections::BTreeMap;

#[derive(Args, Clone)]
pub struct PlanArgs {
    /// A named matrix, `matrices/<NAME>.yaml`.
    #[arg(long, default_value = "default", env = "CRIU_MATRIX_MATRIX")]
    pub matrix: String,
    #[command(flatten)]
    pub axes: AxisFilters,
    /// Only cells whose name contains this text, e.g. `::crun::trixie`.
    pub filter: Option<String>,
    /// Only the I-th of N deterministic slices of the (filtered) plan, e.g. `2/3`.
    #[arg(long, value_parser = Shard::parse, default_value = "1/1")]
    pub shard: Shard,
    #[command(flatten)]
    pub with: WithArgs,
}

/// `--with COMPONENT=SOURCE` and `--patch FILE`: components replaced in every Debian stack.
#[derive(Args, Clone, Debug, Default)]
pub struct WithArgs {
    /// Replace a component of every Debian stack (which becomes a derived stack, e.g.
    /// `trixie+criu=sid`): COMPONENT is criu, crun, runc, conmon or podman; SOURCE is
    /// `path:FILE|DIR` (a built binary or an installed tree), `src:DIR[@REV]` (a source tree or a
    /// git revision, built in a throwaway build rootfs of the stack's suite) or `deb:SUITE`
    /// (Debian's source package from SUITE, built for the stack). Repeatable; host cells are left out.
    #[arg(long = "with", value_name = "COMPONENT=SOURCE")]
    pub with: Vec<String>,
    /// A patch applied (-p1) on top of the one source-built override, or `COMPONENT=FILE`. Repeatable.
    #[arg(long = "patch", value_name = "FILE")]
    pub patches: Vec<String>,
}

impl WithArgs {
    /// The overrides, relative paths taken from the current directory.
    pub fn overrides(&self) -> anyhow::Result<Vec<crate::plan::Override>> {
        let here = std::env::current_dir()?;
        crate::plan::with::overrides(&self.with, &self.patches, &here).map_err(|e| anyhow::anyhow!("{e}"))
    }
}

impl PlanArgs {
    pub fn filter(&self) -> Filter {
        Filter { axes: self.axes.0.clone(), name: self.filter.clone() }
    }

    /// The plan, or the reason there is none printed and exit 2 (nothing runs).
    pub fn plan_or_exit(
        &self,
        project: &crate::project::Project,
    ) -> Result<Vec<crate::plan::Cell>, std::process::ExitCode> {
        let with = match self.with.overrides() {
            Ok(with) => with,
            Err(e) => {
                eprintln!("error: {e:#}");
                return Err(std::process::ExitCode::from(2));
            }
        };
        match crate::plan::load_plan_with(project, &self.matrix, &self.filter(), &with, crate::host::facts()) {
            Ok(cells) => Ok(self.shard.select(cells)),
            Err(crate::plan::PlanError::Scenarios(errors)) => {
                for e in &errors {
                    eprintln!("error: {e}");
                }
                eprintln!("{} malformed scenario file(s); nothing was run", errors.len());
                Err(std::process::ExitCode::from(2))
            }
            Err(e) => {
                eprintln!("error: {e}");
                Err(std::process::ExitCode::from(2))
            }
        }
    }
}

/// `--scenario`, `--engine`, `--runtime`, `--stack`, `--kernel`, `--cgroup`, `--init` and
/// `--accel`, each repeatable, made from the axes table.
#[derive(Debug, Clone, Default)]
pub struct AxisFilters(pub BTreeMap<Axis, Vec<String>>);

impl clap::FromArgMatches for AxisFilters {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut axes = BTreeMap::new();
        for axis in Axis::ALL {
            if let Some(values) = matches.get_many::<String>(axis.name()) {
                axes.insert(axis, values.cloned().collect());
            }
        }
        Ok(AxisFilters(axes))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for AxisFilters {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        Axis::ALL.into_iter().fold(cmd, |cmd, axis| {
            let mut arg = Arg::new(axis.name()).long(axis.name()).action(ArgAction::Append).value_name(axis.name());
            arg = match axis.values() {
                // A stack may also be a derived one (`trixie+criu=sid`), checked against the table.
                Some(_) if axis == Axis::Stack => arg.value_parser(|v: &str| Axis::Stack.check(v).map(|_| v.to_string())),
                Some(values) => arg.value_parser(clap::builder::PossibleValuesParser::new(values)),
                None => arg.value_parser(clap::builder::NonEmptyStringValueParser::new()),
            };
            let help = match axis {
                Axis::Scenario => "Only this scenario (its id); repeatable".to_string(),
                a if a.chosen_for_vms_only() => {
                    format!("Only VM cells with this {a} (host-kernel cells have the host's); repeatable")
                }
                a => format!("Only cells with this {a}; repeatable"),
            };
            cmd.arg(arg.help(help))
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}
