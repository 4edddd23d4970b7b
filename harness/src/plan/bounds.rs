//! The bounds of a matrix file and of the plan options: a matrix file's size and its parts, a
//! shard's count, a run's repeats. A value past its bound is refused where it is read, before
//! any cell runs, so no later arithmetic can overflow on it.

use std::path::Path;

/// The largest matrix file read: the biggest committed one is about 2 KiB.
pub const MAX_MATRIX_BYTES: u64 = 64 * 1024;
/// The most parts a matrix may have (its top level and the entries of `more:`).
pub const MAX_PARTS: usize = 256;
/// The most shards a plan may be cut into (`--shard I/N`).
pub const MAX_SHARDS: usize = 1000;
/// The most times `--repeat` may run each cell.
pub const MAX_REPEAT: u32 = 1000;

/// Reads a matrix file: a regular file within [`MAX_MATRIX_BYTES`], else why not.
pub fn read_matrix(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("expected a regular file".into());
    }
    check_matrix_size(meta.len())?;
    let mut text = String::new();
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    file.take(MAX_MATRIX_BYTES + 1).read_to_string(&mut text).map_err(|e| e.to_string())?;
    check_matrix_size(text.len() as u64)?;
    Ok(text)
}

pub fn check_matrix_size(bytes: u64) -> Result<(), String> {
    if bytes > MAX_MATRIX_BYTES {
        return Err(format!("the file is {bytes} bytes, over the limit of {MAX_MATRIX_BYTES} bytes"));
    }
    Ok(())
}

/// The environment variables that are time limits (a number of seconds or `5m`, at most a day).
pub const DURATION_VARIABLES: &[&str] =
    &["CRIU_MATRIX_VM_READY_TIMEOUT", "CRIU_MATRIX_VM_TIMEOUT", "CRIU_MATRIX_STACK_WAIT"];

/// Checks the environment variables that set limits and choices of a run; a value that does not
/// parse or is past its bound is an error before anything runs, never a silent default.
pub fn check_environment() -> Result<(), String> {
    check_variables(|name| std::env::var(name).ok())
}

fn check_variables(get: impl Fn(&str) -> Option<String>) -> Result<(), String> {
    for name in DURATION_VARIABLES {
        if let Some(text) = get(name) {
            crate::scenario::duration_text::parse(&text).map_err(|e| format!("{name}: {e}"))?;
        }
    }
    if let Some(text) = get("CRIU_MATRIX_ACCEL") {
        // What a VM may be forced to: an acceleration of the axes table other than a host's own.
        let forcible: Vec<&str> = crate::axes::ACCELS.iter().copied().filter(|a| *a != "native").collect();
        if !forcible.contains(&text.as_str()) {
            return Err(format!("CRIU_MATRIX_ACCEL: unknown accel `{text}` (known: {})", forcible.join(", ")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_matrix_over_the_limit_or_not_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.yaml");
        std::fs::write(&path, vec![b'#'; MAX_MATRIX_BYTES as usize + 1]).unwrap();
        assert_eq!(read_matrix(&path).unwrap_err(), "the file is 65537 bytes, over the limit of 65536 bytes");
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.yaml")).unwrap();
        assert_eq!(read_matrix(&dir.path().join("zero.yaml")).unwrap_err(), "expected a regular file");
        std::fs::write(&path, "engines: [podman]\n").unwrap();
        assert_eq!(read_matrix(&path).unwrap(), "engines: [podman]\n");
    }

    #[test]
    fn limits_and_choices_in_the_environment_are_checked() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
        };
        assert_eq!(check_variables(env(&[("CRIU_MATRIX_VM_TIMEOUT", "600"), ("CRIU_MATRIX_ACCEL", "tcg")])), Ok(()));
        let err = check_variables(env(&[("CRIU_MATRIX_VM_READY_TIMEOUT", "18446744073709551615")])).unwrap_err();
        assert!(err.starts_with("CRIU_MATRIX_VM_READY_TIMEOUT: expected a duration of at most 24h"), "{err}");
        let err = check_variables(env(&[("CRIU_MATRIX_STACK_WAIT", "soon")])).unwrap_err();
        assert!(err.starts_with("CRIU_MATRIX_STACK_WAIT: expected a duration"), "{err}");
        let err = check_variables(env(&[("CRIU_MATRIX_ACCEL", "kvmm")])).unwrap_err();
        assert!(err.contains("kvmm"), "{err}");
    }
}
