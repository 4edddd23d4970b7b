//! A cell's coordinates: one value per axis, which is all a record needs to be compared across
//! runs. Recorded as a JSON object keyed by axis name.

use crate::axes::{Axis, UNKNOWN};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CellKey {
    /// Indexed by `Axis as usize`.
    values: [String; Axis::ALL.len()],
}

impl CellKey {
    /// The key whose value on each axis is `value(axis)`.
    pub fn from_fn(mut value: impl FnMut(Axis) -> String) -> CellKey {
        CellKey { values: Axis::ALL.map(&mut value) }
    }

    /// `scenario::engine::runtime::stack::kernel::cgroup::init::accel`: the test name under `cargo test`.
    pub fn name(&self) -> String {
        self.values.join("::")
    }

    /// The name without the axes in `without` (a cell's identity across machines leaves out
    /// `accel`, how a VM kernel happened to run).
    pub fn name_without(&self, without: &[Axis]) -> String {
        Axis::ALL.iter().filter(|a| !without.contains(a)).map(|a| self[*a].as_str()).collect::<Vec<_>>().join("::")
    }

    pub fn set(&mut self, axis: Axis, value: impl Into<String>) {
        self.values[axis as usize] = value.into();
    }

    /// Whether the cell's kernel is one a VM boots: the record of a VM cell says so wherever it
    /// was made, host or guest.
    pub fn boots_a_kernel(&self) -> bool {
        self[Axis::Kernel] != "host"
    }
}

impl std::ops::Index<Axis> for CellKey {
    type Output = String;
    fn index(&self, axis: Axis) -> &String {
        &self.values[axis as usize]
    }
}

impl Serialize for CellKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(Axis::ALL.len()))?;
        for axis in Axis::ALL {
            map.serialize_entry(axis.name(), &self[axis])?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for CellKey {
    /// An axis a record does not have (written before the axis existed) is [`UNKNOWN`].
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<CellKey, D::Error> {
        let map = BTreeMap::<String, String>::deserialize(deserializer)?;
        Ok(CellKey::from_fn(|axis| map.get(axis.name()).cloned().unwrap_or_else(|| UNKNOWN.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_recorded_by_axis_name_and_read_back_with_unknown_axes() {
        let key = CellKey::from_fn(|a| format!("{a}-value"));
        let json = serde_json::to_string(&key).unwrap();
        assert!(json.starts_with(r#"{"scenario":"scenario-value","engine":"engine-value""#), "{json}");
        assert_eq!(serde_json::from_str::<CellKey>(&json).unwrap(), key);
        let old: CellKey = serde_json::from_str(
            r#"{"scenario":"s","engine":"podman","runtime":"runc","stack":"sid","kernel":"host"}"#,
        )
        .unwrap();
        assert_eq!(old.name(), "s::podman::runc::sid::host::-::-::-");
        assert_eq!(old.name_without(&[Axis::Accel]), "s::podman::runc::sid::host::-::-");
    }
}
