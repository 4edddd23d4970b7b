//! `criu-matrix merge`: the records of several runs (the shards of one matrix, or the same cells
//! run again) joined into one new run directory, with each cell's logs and reproducer copied
//! along, and every report written for the whole.

use crate::record::{read_cells, CellRecord, RunDir};
use std::path::{Path, PathBuf};

/// Joins `inputs` (run directories) into a new run under `results/runs/`. Records keep the order
/// of the inputs, then of each input's `cells.jsonl`; a cell found in more than one input stays
/// once per input (repeats: `compare` calls disagreeing ones flaky).
pub fn merge(results: &Path, inputs: &[PathBuf]) -> anyhow::Result<(RunDir, Vec<CellRecord>)> {
    anyhow::ensure!(!inputs.is_empty(), "nothing to merge: name at least one run directory");
    let run = RunDir::create(results)?;
    for input in inputs {
        for mut record in read_cells(input)? {
            // Checked before anything is written: a record of a run made elsewhere may name
            // any path and any cell.
            crate::record::RunDir::checked_cell_dir_name(&record.name)?;
            if let Some(logs) = &record.logs {
                let from = crate::record::inside(input, logs)?;
                if let Some(reproducer) = &record.reproducer {
                    crate::record::inside(input, reproducer)?;
                }
                if from.is_dir() {
                    let to = run.cell_dir(&record.name)?;
                    crate::files::copy_plain_tree(&from, &to)
                        .map_err(|e| anyhow::anyhow!("failed to copy {}: {e:#}", from.display()))?;
                    let moved = run.relative(&to);
                    record.reproducer = record.reproducer.as_ref().map(|r| r.replacen(logs.as_str(), &moved, 1));
                    record.logs = Some(moved);
                }
            }
            run.append(&record)?;
        }
    }
    let records = read_cells(&run.dir)?;
    super::write(&run.dir, &records)?;
    Ok((run, records))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Verdict;

    fn shard(results: &Path, records: &[CellRecord]) -> PathBuf {
        let run = RunDir::create(results).unwrap();
        for r in records {
            let mut r = r.clone();
            let dir = run.cell_dir(&r.name).unwrap();
            std::fs::write(dir.join("reproduce.sh"), format!("# {}\n", r.name)).unwrap();
            r.logs = Some(run.relative(&dir));
            r.reproducer = Some(run.relative(&dir.join("reproduce.sh")));
            run.append(&r).unwrap();
        }
        run.dir.clone()
    }

    #[test]
    fn merged_shards_keep_every_record_and_its_files() {
        let results = tempfile::tempdir().unwrap();
        let a = crate::record::testing::record("a", "crun", "trixie", Verdict::Pass);
        let b = crate::record::testing::record("b", "runc", "trixie", Verdict::Reproduced);
        let first = shard(results.path(), std::slice::from_ref(&a));
        let second = shard(results.path(), &[b.clone(), a.clone()]);
        let (run, records) = merge(results.path(), &[first, second]).unwrap();
        let names: Vec<&str> = records.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, [a.name.as_str(), b.name.as_str(), a.name.as_str()]);
        // The repeat of `a` has its own directory, and each reproducer is the one its record names.
        assert_ne!(records[0].logs, records[2].logs);
        for r in &records {
            let text = std::fs::read_to_string(run.dir.join(r.reproducer.as_ref().unwrap())).unwrap();
            assert_eq!(text, format!("# {}\n", r.name));
        }
        for report in ["matrix.md", "matrix.json", "matrix.html", "junit.xml"] {
            assert!(run.dir.join(report).is_file(), "{report}");
        }
    }

    /// A record naming a path out of its run, or a cell name that is a path, stops the merge
    /// with a message before the merged run holds anything of it.
    #[test]
    fn records_whose_paths_leave_their_run_are_refused() {
        let results = tempfile::tempdir().unwrap();
        let good = crate::record::testing::record("a", "crun", "trixie", Verdict::Pass);
        let cases: [(&str, &dyn Fn(&mut CellRecord), &str); 4] = [
            ("logs", &|r| r.logs = Some("../../../etc".into()), "is absolute or has `..`"),
            ("absolute", &|r| r.logs = Some("/etc".into()), "is absolute or has `..`"),
            ("reproducer", &|r| r.reproducer = Some("cells/../../x.sh".into()), "is absolute or has `..`"),
            ("name", &|r| r.name = "../../outside".into(), "is not one criu-matrix makes"),
        ];
        for (what, change, message) in cases {
            let input = RunDir::create(results.path()).unwrap();
            let mut bad = good.clone();
            bad.logs = Some("cells/x".into());
            change(&mut bad);
            input.append(&bad).unwrap();
            let err = format!("{:#}", merge(results.path(), &[input.dir.clone()]).err().expect("refused"));
            assert!(err.contains(message), "{what}: {err}");
        }
        // A link in the logs is not copied, nor followed.
        let input = RunDir::create(results.path()).unwrap();
        let dir = input.cell_dir(&good.name).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", dir.join("dump.log")).unwrap();
        let mut linked = good.clone();
        linked.logs = Some(input.relative(&dir));
        input.append(&linked).unwrap();
        let err = format!("{:#}", merge(results.path(), &[input.dir.clone()]).err().expect("refused"));
        assert!(err.contains("dump.log is a link or a special file: refused"), "{err}");
    }
}
