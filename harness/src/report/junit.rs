//! `junit.xml`: the run's records as JUnit XML for CI test reporters. Written from the records
//! when a run (or a merge) ends, as nextest does from its collected results, so a merged run's
//! report covers every shard.
//!
//! One test suite per scenario, one test case per record, named like the cell (the `cargo test`
//! name). `pass` and `reproduced` succeed, `fixed` and `fail` are failures, `error` is an error
//! (the harness broke, not CRIU), `skip` is skipped with its reason.

use crate::axes::Axis;
use crate::record::CellRecord;
use crate::record::Verdict;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use std::collections::BTreeMap;
use std::time::Duration;

pub fn junit(run_id: &str, records: &[CellRecord]) -> anyhow::Result<String> {
    let mut suites: BTreeMap<&str, TestSuite> = BTreeMap::new();
    for r in records {
        let suite =
            suites.entry(&r.key[Axis::Scenario]).or_insert_with(|| TestSuite::new(r.key[Axis::Scenario].as_str()));
        suite.add_test_case(case(r));
    }
    let mut report = Report::new(format!("criu-matrix {run_id}"));
    report.set_time(Duration::from_secs_f64(records.iter().map(|r| r.seconds.max(0.0)).sum()));
    report.add_test_suites(suites.into_values());
    Ok(report.to_string()?)
}

fn case(r: &CellRecord) -> TestCase {
    let mut status = match r.verdict {
        Verdict::Pass | Verdict::Reproduced => TestCaseStatus::success(),
        Verdict::Fixed | Verdict::Fail => TestCaseStatus::non_success(NonSuccessKind::Failure),
        Verdict::Error => TestCaseStatus::non_success(NonSuccessKind::Error),
        Verdict::Skip => TestCaseStatus::skipped(),
    };
    status.set_message(r.reason.as_str()).set_type(r.verdict.to_string());
    if let Some(f) = &r.failure {
        status.set_description(format!("round {} {}: {}\n{}", f.round, f.step, f.message, f.excerpt));
    }
    let mut case = TestCase::new(r.name.as_str(), status);
    case.set_classname(r.key[Axis::Scenario].as_str()).set_time(Duration::from_secs_f64(r.seconds.max(0.0)));
    let mut out = format!("verdict: {}\nwhy: {}\nexpected: {}\n", r.verdict, r.reason, r.expected);
    for (tool, version) in &r.versions {
        out.push_str(&format!("{tool}: {version}\n"));
    }
    if let Some(logs) = &r.logs {
        out.push_str(&format!("logs: {logs}\n"));
    }
    case.set_system_out(out);
    case
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::testing::record;

    #[test]
    fn verdicts_map_to_junit_statuses() {
        let mut failed = record("a", "runc", "trixie", Verdict::Fail);
        failed.failure = Some(crate::record::FailureRecord {
            round: 2,
            step: "checkpoint".into(),
            message: "`podman container checkpoint` exited with 125".into(),
            signature_matched: None,
            excerpt: "Error (criu/cr-dump.c:1): <boom> & more".into(),
        });
        let records = vec![
            record("a", "crun", "trixie", Verdict::Pass),
            failed,
            record("b", "crun", "sid", Verdict::Reproduced),
            record("b", "runc", "sid", Verdict::Error),
            record("b", "crun", "bookworm", Verdict::Skip),
        ];
        let xml = junit("run-1", &records).unwrap();
        assert!(
            xml.contains(r#"<testsuites name="criu-matrix run-1" tests="5" skipped="1" failures="1" errors="1""#),
            "{xml}"
        );
        assert!(xml.contains(r#"<testsuite name="a" tests="2" skipped="0" errors="0" failures="1""#), "{xml}");
        assert!(
            xml.contains(r#"<testcase name="a::podman::runc::trixie::host::v1::host::native" classname="a""#),
            "{xml}"
        );
        assert!(xml.contains("round 2 checkpoint"), "{xml}");
        assert!(xml.contains("&lt;boom&gt; &amp; more"), "{xml}");
        assert!(xml.contains("<skipped"), "{xml}");
    }
}
