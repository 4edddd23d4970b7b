//! Shards: `--shard I/N` runs the I-th of N deterministic slices of a plan, so a matrix too big
//! for one machine runs as N parallel jobs whose records `criu-matrix merge` joins again.
//!
//! A slice is a contiguous run of the expanded plan (which comes grouped by stack, then kernel
//! target, then scenario): a shard then enters few stacks and builds few images, and splits few
//! VM groups (cells sharing a boot), where round-robin would make every shard provision
//! everything. By count, sizes differ by one at most; by cost (`--shard-costs`, the cell
//! durations of a baseline), each slice ends where its estimated seconds come closest to an
//! equal share.

use super::expand::Cell;
use std::collections::HashMap;

/// The estimated seconds of each cell: what a baseline measured, else the typical cell of its
/// kind (the scenario's on a VM or the host kernel, else any of that kind).
#[derive(Debug, Clone, Default)]
pub struct Costs {
    /// A cell's name without its `accel` (the same cell under KVM or TCG) -> seconds.
    pub known: HashMap<String, f64>,
    /// (scenario, in a VM) -> median seconds of the baseline's cells of it.
    pub by_scenario: HashMap<(String, bool), f64>,
    /// Median seconds of a host-kernel cell and of a VM cell, for cells of scenarios the baseline
    /// never ran.
    pub host_default: f64,
    pub vm_default: f64,
    /// The seconds a boot adds to the first cell of a VM group (to boot and probe its stack).
    pub boot: f64,
}

/// A cell's name without its last component (`accel`).
pub fn name_without_accel(name: &str) -> &str {
    name.rsplit_once("::").map_or(name, |(rest, _)| rest)
}

impl Costs {
    /// The estimated seconds of each cell of `cells`, in order; a VM cell that starts a group
    /// also carries the boot.
    pub fn estimate(&self, cells: &[Cell]) -> Vec<f64> {
        let mut previous_group: Option<String> = None;
        cells
            .iter()
            .map(|cell| {
                let name = cell.name();
                let scenario = &cell.scenario.id;
                let mut seconds = self
                    .known
                    .get(name_without_accel(&name))
                    .or_else(|| self.by_scenario.get(&(scenario.clone(), cell.in_vm)))
                    .copied()
                    .unwrap_or(if cell.in_vm { self.vm_default } else { self.host_default });
                let group = cell.in_vm.then(|| {
                    let k = &cell.key;
                    use crate::axes::Axis;
                    format!("{}/{}/{}/{}", k[Axis::Stack], k[Axis::Kernel], k[Axis::Cgroup], k[Axis::Init])
                });
                if group.is_some() && group != previous_group {
                    seconds += self.boot;
                }
                previous_group = group;
                seconds
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1-based.
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The whole plan.
    pub const ALL: Shard = Shard { index: 1, count: 1 };

    /// Parses `I/N` with 1 <= I <= N.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let (i, n) = text.split_once('/').ok_or_else(|| format!("`{text}` is not of the form I/N (e.g. 2/3)"))?;
        let parse = |s: &str| s.trim().parse::<usize>().map_err(|_| format!("`{s}` in `{text}` is not a number"));
        let (index, count) = (parse(i)?, parse(n)?);
        if count == 0 || index == 0 || index > count {
            return Err(format!("shard `{text}` is out of range: I must be between 1 and N, N at least 1"));
        }
        if count > super::bounds::MAX_SHARDS {
            return Err(format!("shard `{text}` is out of range: N must be at most {}", super::bounds::MAX_SHARDS));
        }
        Ok(Shard { index, count })
    }

    /// The half-open range of positions this shard takes out of `len`.
    fn range(&self, len: usize) -> std::ops::Range<usize> {
        // In u128: `i * len` cannot overflow, whatever the plan's length.
        let at = |i: usize| (i as u128 * len as u128 / self.count as u128) as usize;
        at(self.index - 1)..at(self.index)
    }

    /// This shard's cells, in plan order.
    pub fn select(&self, cells: Vec<Cell>) -> Vec<Cell> {
        let range = self.range(cells.len());
        cells.into_iter().skip(range.start).take(range.len()).collect()
    }

    /// The half-open range of positions this shard takes when each position costs `costs[i]`:
    /// the k-th cut is where the running total comes closest to k/N of the whole.
    fn range_by_cost(&self, costs: &[f64]) -> std::ops::Range<usize> {
        let total: f64 = costs.iter().sum();
        let mut prefix = vec![0.0];
        for c in costs {
            prefix.push(prefix.last().copied().unwrap_or(0.0) + c);
        }
        let cut = |k: usize| -> usize {
            if k == 0 {
                return 0;
            }
            if k == self.count {
                return costs.len();
            }
            let target = total * k as f64 / self.count as f64;
            (0..=costs.len())
                .min_by(|a, b| (prefix[*a] - target).abs().total_cmp(&(prefix[*b] - target).abs()))
                .unwrap_or(0)
        };
        let (start, end) = (cut(self.index - 1), cut(self.index));
        start..end.max(start)
    }

    /// This shard's cells, in plan order, the slices balanced by the estimated seconds.
    pub fn select_by_cost(&self, cells: Vec<Cell>, costs: &Costs) -> Vec<Cell> {
        let range = self.range_by_cost(&costs.estimate(&cells));
        cells.into_iter().skip(range.start).take(range.len()).collect()
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("1/1", Some((1, 1)))]
    #[case("2/3", Some((2, 3)))]
    #[case("0/3", None)]
    #[case("4/3", None)]
    #[case("1/0", None)]
    #[case("3", None)]
    #[case("a/b", None)]
    #[case("1/1000", Some((1, 1000)))]
    #[case("1/1001", None)]
    #[case("18446744073709551615/18446744073709551615", None)]
    fn parses_i_of_n(#[case] text: &str, #[case] expected: Option<(usize, usize)>) {
        assert_eq!(Shard::parse(text).ok().map(|s| (s.index, s.count)), expected, "{text}");
    }

    #[rstest]
    #[case(0, 3)]
    #[case(1, 3)]
    #[case(2, 3)]
    #[case(20, 3)]
    #[case(80, 7)]
    #[case(5, 8)]
    fn the_shards_of_a_plan_cover_it_once_in_order(#[case] len: usize, #[case] count: usize) {
        let mut joined = Vec::new();
        let mut sizes = Vec::new();
        for index in 1..=count {
            let range = Shard { index, count }.range(len);
            sizes.push(range.len());
            joined.extend(range);
        }
        assert_eq!(joined, (0..len).collect::<Vec<_>>());
        let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        assert!(max - min <= 1, "{sizes:?}");
    }

    #[test]
    fn a_huge_plan_is_sliced_without_overflow() {
        let (len, count) = (usize::MAX, 1000);
        let ranges: Vec<_> = (1..=count).map(|index| Shard { index, count }.range(len)).collect();
        assert_eq!((ranges[0].start, ranges[count - 1].end), (0, len));
        assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
    }

    fn shards_by_cost(costs: &[f64], count: usize) -> Vec<std::ops::Range<usize>> {
        (1..=count).map(|index| Shard { index, count }.range_by_cost(costs)).collect()
    }

    #[rstest]
    #[case(vec![1.0; 20], 3)]
    #[case(vec![5.0, 1.0, 1.0, 1.0, 1.0, 1.0], 2)]
    #[case(vec![], 4)]
    #[case(vec![3.0, 3.0], 5)]
    #[case(vec![30.0, 120.0, 120.0, 2.0, 2.0, 2.0, 300.0, 40.0], 3)]
    fn shards_by_cost_cover_the_plan_once_in_order(#[case] costs: Vec<f64>, #[case] count: usize) {
        let joined: Vec<usize> = shards_by_cost(&costs, count).into_iter().flatten().collect();
        assert_eq!(joined, (0..costs.len()).collect::<Vec<_>>());
    }

    #[test]
    fn shards_by_cost_put_cheap_cells_together_and_an_expensive_one_alone() {
        // One 6-minute desktop cell and ten half-minute cells: by count the desktop's shard
        // would take 8 minutes and the other 2.5; by cost, 6 against 5.
        let mut costs = vec![360.0];
        costs.extend([30.0; 10]);
        let shards = shards_by_cost(&costs, 2);
        assert_eq!(shards, vec![0..1, 1..11]);
        let by_count: Vec<_> = (1..=2).map(|index| Shard { index, count: 2 }.range(costs.len())).collect();
        assert_eq!(by_count, vec![0..5, 5..11]);
        // Equal costs cut as counts do.
        assert_eq!(shards_by_cost(&[1.0; 9], 3), vec![0..3, 3..6, 6..9]);
    }

    #[test]
    fn the_estimate_takes_the_baseline_then_the_scenario_then_the_kind_and_adds_a_boot_per_group() {
        use crate::plan::CellKey;
        let scenario = |id: &str| {
            let images = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(images.path().join("img")).unwrap();
            std::fs::write(images.path().join("img/Containerfile"), "FROM x\n").unwrap();
            let text = format!("id: {id}\nsummary: s\nimage: img\nrun: {{}}\nready: {{ file: /f }}\nno_witness: a plan test runs nothing\n");
            std::sync::Arc::new(
                crate::scenario::parse_scenario(std::path::Path::new("t.yaml"), &text, images.path()).unwrap(),
            )
        };
        let cell = |id: &str, kernel: &str, cgroup: &str| {
            let in_vm = kernel != "host";
            let (init, accel) = if in_vm { ("plain", "kvm") } else { ("host", "native") };
            let values = [id, "podman", "crun", "trixie", kernel, cgroup, init, accel];
            Cell { scenario: scenario(id), key: CellKey::from_fn(|a| values[a as usize].to_string()), in_vm, derivation: None }
        };
        let costs = Costs {
            // Measured under TCG; the same cell under KVM is the same cell.
            known: HashMap::from([("a::podman::crun::trixie::trixie::v2::plain".to_string(), 50.0)]),
            by_scenario: HashMap::from([(("b".to_string(), true), 70.0)]),
            host_default: 5.0,
            vm_default: 90.0,
            boot: 30.0,
        };
        let cells = [
            cell("a", "trixie", "v2"),
            cell("b", "trixie", "v2"),
            cell("c", "trixie", "v2"),
            cell("a", "trixie", "v1"),
            cell("c", "host", "v1"),
        ];
        assert_eq!(costs.estimate(&cells), vec![50.0 + 30.0, 70.0, 90.0, 90.0 + 30.0, 5.0]);
    }
}
