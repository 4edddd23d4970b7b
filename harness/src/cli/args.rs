//! The options that choose cells: a named matrix, a filter on every axis (one `--AXIS` flag per
//! axis of the axes table, its values checked against the table), a name filter and a shard.

use crate::axes::Axis;
use crate::plan::{Costs, Filter, Shard};
use crate::record::CellRecord;
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
    /// Balance the shards by the cell durations of this baseline (a name in results/baselines/,
    /// a run directory or a cells.jsonl) instead of by count; cells it lacks count as the typical
    /// cell of their scenario or kind. A missing baseline falls back to counts, with a warning.
    #[arg(long, value_name = "BASELINE")]
    pub shard_costs: Option<String>,
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
            Ok(cells) => match self.costs(project) {
                Some(costs) => Ok(self.shard.select_by_cost(cells, &costs)),
                None => Ok(self.shard.select(cells)),
            },
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

impl PlanArgs {
    /// The costs `--shard-costs` names, when it names a baseline that reads.
    fn costs(&self, project: &crate::project::Project) -> Option<Costs> {
        let name = self.shard_costs.as_deref()?;
        let loaded = super::paths::baseline_path(project, name).and_then(|p| crate::compare::load(&p));
        match loaded {
            Ok(records) => Some(costs_from(&records)),
            Err(e) => {
                eprintln!("warning: shards by count: the baseline `{name}` for their costs does not read: {e:#}");
                None
            }
        }
    }
}

/// What a baseline says each cell costs. A VM cell's own cost is its seconds inside the guest
/// (`vm.guest_seconds`); the boot a group starts with is what the first cell of each boot took
/// beyond that. Records of one boot per cell (no `vm.guest_seconds`) count their seconds less a
/// typical boot.
pub fn costs_from(records: &[CellRecord]) -> Costs {
    let median = |mut v: Vec<f64>| -> Option<f64> {
        v.sort_by(f64::total_cmp);
        (!v.is_empty()).then(|| v[v.len() / 2])
    };
    let in_vm = |r: &CellRecord| r.key[Axis::Kernel] != "host";
    let number = |r: &CellRecord, k: &str| r.versions.get(k).and_then(|v| v.parse::<f64>().ok());
    let boots: Vec<f64> = records
        .iter()
        .filter(|r| in_vm(r) && r.versions.get("vm.boot_position").is_some_and(|p| p == "1"))
        .filter_map(|r| Some(r.seconds - number(r, "vm.guest_seconds")?))
        .collect();
    let boot = median(boots).unwrap_or(40.0).max(0.0);
    let own = |r: &CellRecord| -> f64 {
        match (in_vm(r), number(r, "vm.guest_seconds")) {
            (false, _) => r.seconds,
            (true, Some(guest)) => guest,
            (true, None) => (r.seconds - boot).max(1.0),
        }
    };
    let mut costs = Costs { boot, ..Costs::default() };
    let mut by_scenario: BTreeMap<(String, bool), Vec<f64>> = BTreeMap::new();
    let (mut host, mut vm) = (Vec::new(), Vec::new());
    for r in records.iter().filter(|r| r.verdict != crate::record::Verdict::Skip || r.seconds > 0.0) {
        let seconds = own(r);
        costs.known.insert(crate::plan::shard::name_without_accel(&r.name).to_string(), seconds);
        by_scenario.entry((r.key[Axis::Scenario].clone(), in_vm(r))).or_default().push(seconds);
        if in_vm(r) {
            vm.push(seconds)
        } else {
            host.push(seconds)
        }
    }
    costs.by_scenario = by_scenario.into_iter().filter_map(|(k, v)| Some((k, median(v)?))).collect();
    costs.host_default = median(host).unwrap_or(30.0);
    costs.vm_default = median(vm).unwrap_or(120.0);
    costs
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::testing::record;
    use crate::record::Verdict;

    #[test]
    fn a_baselines_costs_take_each_vm_cells_own_seconds_and_the_boot_apart() {
        let vm = |scenario: &str, position: &str, seconds: f64, guest: &str| {
            let mut r = record(scenario, "crun", "trixie", Verdict::Pass);
            let values = [scenario, "podman", "crun", "trixie", "trixie", "v2", "plain", "tcg"];
            r.key = crate::plan::CellKey::from_fn(|a| values[a as usize].to_string());
            r.name = r.key.name();
            r.seconds = seconds;
            r.versions.insert("vm.boot_position".into(), position.into());
            r.versions.insert("vm.guest_seconds".into(), guest.into());
            r
        };
        let mut host = record("a", "crun", "trixie", Verdict::Pass);
        host.seconds = 4.0;
        let records = [host, vm("a", "1", 60.0, "20.0"), vm("b", "2", 25.0, "22.0")];
        let costs = costs_from(&records);
        assert_eq!(costs.boot, 40.0);
        assert_eq!(costs.known["a::podman::crun::trixie::trixie::v2::plain"], 20.0);
        assert_eq!(costs.known["b::podman::crun::trixie::trixie::v2::plain"], 22.0);
        assert_eq!(costs.known["a::podman::crun::trixie::host::v1::host"], 4.0);
        assert_eq!(costs.by_scenario[&("a".to_string(), true)], 20.0);
        assert_eq!(costs.host_default, 4.0);
    }
}
