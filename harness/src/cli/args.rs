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
        match crate::plan::load_plan(project, &self.matrix, &self.filter(), crate::host::facts()) {
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
