//! Restricting a plan: values per axis (from the axes table) and a substring of the cell name.

use super::key::CellKey;
use crate::axes::Axis;
use std::collections::BTreeMap;

/// Empty lists mean "any value"; the name filter is a substring of the cell name.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub axes: BTreeMap<Axis, Vec<String>>,
    pub name: Option<String>,
}

impl Filter {
    /// Every value is one of its axis's: a typo filters out everything without a word otherwise.
    pub fn check(&self) -> Result<(), String> {
        for (axis, values) in &self.axes {
            for value in values {
                axis.check(value)?;
            }
        }
        Ok(())
    }

    pub fn accepts(&self, key: &CellKey, in_vm: bool) -> bool {
        self.axes.iter().all(|(axis, wanted)| {
            // How a VM boots is chosen per cell; a host-kernel cell has the host's cgroups and
            // init, so these narrow the VM cells only (`--kernel` drops the host ones).
            let applies = in_vm || !axis.chosen_for_vms_only();
            // A derived stack's name (`trixie+criu=sid`) is also selected by its base.
            let base = (*axis == Axis::Stack)
                .then(|| crate::axes::DerivedName::parse(&key[*axis]).ok().map(|d| d.base.name))
                .flatten();
            wanted.is_empty() || !applies || wanted.iter().any(|w| *w == key[*axis] || Some(w.as_str()) == base)
        }) && self.name.as_ref().is_none_or(|n| key.name().contains(n.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_that_is_no_axis_value_is_refused() {
        let mut f = Filter::default();
        f.axes.insert(Axis::Runtime, vec!["cruun".into()]);
        assert_eq!(f.check(), Err("unknown runtime `cruun` (known: runc, crun)".into()));
        f.axes.insert(Axis::Runtime, vec!["crun".into()]);
        assert_eq!(f.check(), Ok(()));
    }
}
