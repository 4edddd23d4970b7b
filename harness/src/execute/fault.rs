//! The harness's own fault modes (`CRIU_MATRIX_FAULT`): self-checks that the verification after
//! a restore cannot be fooled. Each replaces the restore with something that is not one, and
//! every cell that passes without it must then fail with the witness's message.
//!
//! - `restart`: each restore becomes a fresh start of the same image, with the same name and
//!   arguments (in place: the checkpointed container is removed first);
//! - `no-restore`: each checkpoint leaves the container running (`--leave-running`) and the
//!   restore is skipped.

/// `CRIU_MATRIX_FAULT`: the fault mode of this run, when set.
pub const FAULT_ENV: &str = "CRIU_MATRIX_FAULT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every restore replaced by a fresh start of the same image, name and arguments.
    Restart,
    /// Every checkpoint leaves the container running, and no restore happens.
    NoRestore,
}

impl Fault {
    pub const ALL: [Fault; 2] = [Fault::Restart, Fault::NoRestore];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Restart => "restart",
            Fault::NoRestore => "no-restore",
        }
    }

    /// The fault mode `CRIU_MATRIX_FAULT` asks for; an unknown value is an error, never ignored.
    pub fn from_env() -> Result<Option<Fault>, String> {
        match std::env::var(FAULT_ENV) {
            Err(_) => Ok(None),
            Ok(text) if text.is_empty() => Ok(None),
            Ok(text) => Fault::ALL.into_iter().find(|f| f.name() == text).map(Some).ok_or_else(|| {
                let known: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
                format!("unknown {FAULT_ENV} `{text}` (known: {})", known.join(", "))
            }),
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_distinct() {
        for fault in Fault::ALL {
            assert_eq!(Fault::ALL.iter().find(|f| f.name() == fault.name()), Some(&fault));
        }
        assert_ne!(Fault::Restart.name(), Fault::NoRestore.name());
    }
}
