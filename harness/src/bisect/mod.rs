//! Bisect: the first commit of a component's git history at which a cell's result changes, in
//! either direction (a regression or a fix), as `git bisect` finds it.
//!
//! - The result of a step is what happened in the cell, read from its record ([`Seen`]): every
//!   round passed (`pass`, or `fixed`), or a failure at a step with the expected signature or
//!   without (`reproduced`, `fail`). The verdict itself depends on the version a commit reports,
//!   through the scenario's clauses (a fix before its release is `fixed`, after it `pass`), so
//!   it would see a change where the cell did the same.
//! - `--good` is the side whose result is `git bisect`'s "good", `--bad` the other: in a fix's
//!   bisect the "bad" commit is the one that passes. A step whose result is neither endpoint's
//!   (another failure, an `error`) is skipped, and so is a commit that does not build, as with
//!   `git bisect skip`.
//! - `git bisect` runs with `--no-checkout` in a throwaway clone (`--shared`: the objects are
//!   the checkout's own), so the checkout given is never touched.
//! - Each step's run directory (its record, logs and reports) is kept, and `steps.jsonl` and
//!   `bisect.log` say what each step was; `cell` runs the steps of a real cell.

pub mod cell;

use crate::record::{CellRecord, Verdict};
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const GIT_LIMIT: Duration = Duration::from_secs(600);

/// What happened in a cell, whatever its verdict says of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seen {
    /// Every round checkpointed, restored and verified (`pass`, `fixed`).
    Passed,
    /// A round failed at `step`, with the expected signature's matched line (`reproduced`) or
    /// without one (`fail`).
    Failed { step: String, expected_signature: bool },
    /// Nothing was learnt about the component (`error`, `skip`): why.
    Nothing(String),
}

impl Seen {
    pub fn of(record: &CellRecord) -> Seen {
        match record.verdict {
            Verdict::Pass | Verdict::Fixed => Seen::Passed,
            Verdict::Reproduced | Verdict::Fail => Seen::Failed {
                step: record.failure.as_ref().map(|f| f.step.clone()).unwrap_or_default(),
                expected_signature: record.verdict == Verdict::Reproduced,
            },
            Verdict::Error | Verdict::Skip => Seen::Nothing(format!("{}: {}", record.verdict, record.reason)),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Seen::Passed => "every round passed".to_string(),
            Seen::Failed { step, expected_signature: true } => format!("fails at {step} with the expected signature"),
            Seen::Failed { step, expected_signature: false } => format!("fails at {step} (not the expected signature)"),
            Seen::Nothing(why) => format!("no result ({why})"),
        }
    }
}

/// One commit tried.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub commit: String,
    /// `git describe` of the commit and its subject.
    pub describe: String,
    pub subject: String,
    /// `good`, `bad`, or `skip` as told to git (the endpoints: `good` and `bad`).
    pub term: String,
    /// What happened: `None` when the commit did not build.
    pub seen: Option<Seen>,
    /// The verdict and its reason, or why it did not build.
    pub note: String,
    /// The step's run directory (its record and logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<PathBuf>,
    pub seconds: f64,
}

/// What a step came to.
pub enum Tried {
    /// The cell ran: its record, and the run directory that keeps it.
    Ran { record: Box<CellRecord>, run: PathBuf },
    /// The commit does not build: why (the build log's tail).
    DoesNotBuild(String),
}

/// What builds and runs the cell at a commit.
#[async_trait::async_trait]
pub trait Steps {
    async fn try_commit(&mut self, commit: &str) -> anyhow::Result<Tried>;
}

/// What a bisect found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Found {
    /// The first commit whose result is `--bad`'s, when git found one.
    pub first: Option<String>,
    pub first_describe: String,
    pub first_subject: String,
    /// When only skipped commits are left: the commits it could be.
    pub candidates: Vec<String>,
    /// The endpoints' results: from `--good`'s to `--bad`'s.
    pub from: Seen,
    pub to: Seen,
    pub steps: Vec<Step>,
    pub seconds: f64,
    /// The commits between the endpoints (`git rev-list --count GOOD..BAD`).
    pub commits: u64,
}

impl Found {
    pub fn summary(&self) -> String {
        let builds = self.steps.len();
        let skipped = self.steps.iter().filter(|s| s.term == "skip").count();
        let head = match &self.first {
            Some(c) => format!("first commit where the result changes: {c} ({}) {}", self.first_describe, self.first_subject),
            None => format!("only skipped commits are left; the change is in one of: {}", self.candidates.join(" ")),
        };
        format!(
            "{head}\n  from: {}\n  to:   {}\n  {builds} steps ({skipped} skipped) over {} commits, {:.0} s",
            self.from.describe(),
            self.to.describe(),
            self.commits,
            self.seconds
        )
    }
}

/// Bisects `repo` between `good` and `bad`, trying commits with `steps`; the steps' log goes
/// into `log_dir` (`steps.jsonl`, `bisect.log`, `git-bisect.log`).
pub async fn bisect(repo: &Path, good: &str, bad: &str, steps: &mut dyn Steps, log_dir: &Path) -> anyhow::Result<Found> {
    let started = Instant::now();
    std::fs::create_dir_all(log_dir)?;
    let good = git(repo, &["rev-parse", "--verify", &format!("{good}^{{commit}}")]).await?;
    let bad = git(repo, &["rev-parse", "--verify", &format!("{bad}^{{commit}}")]).await?;
    let commits: u64 = git(repo, &["rev-list", "--count", &format!("{good}..{bad}")]).await?.parse().unwrap_or(0);
    anyhow::ensure!(commits > 0, "{bad} has no commit after {good} (is --good an ancestor of --bad?)");
    let clone = tempfile::tempdir_in(log_dir)?;
    let work = clone.path().join("repo");
    let argv = ["clone", "--quiet", "--no-checkout", "--shared", &repo.display().to_string(), &work.display().to_string()];
    git(Path::new("."), &argv).await.context("failed to clone the checkout for git bisect")?;
    let mut log = Log::new(log_dir)?;
    let record_step = |log: &mut Log, step: Step| -> anyhow::Result<Step> {
        log.write(&step)?;
        Ok(step)
    };

    let good_step = try_one(&work, &good, "good", steps).await?;
    let good_step = record_step(&mut log, good_step)?;
    let from = endpoint(&good_step, "--good")?;
    let bad_step = try_one(&work, &bad, "bad", steps).await?;
    let bad_step = record_step(&mut log, bad_step)?;
    let to = endpoint(&bad_step, "--bad")?;
    anyhow::ensure!(
        from != to,
        "--good {} and --bad {} give the same result ({}): nothing to bisect",
        good_step.describe,
        bad_step.describe,
        from.describe()
    );
    let mut all = vec![good_step, bad_step];
    let mut said = git_bisect(&work, &["start", "--no-checkout", &bad, &good]).await?;
    let (first, candidates) = loop {
        if let Some(found) = first_bad(&said) {
            break (Some(found), Vec::new());
        }
        if said.contains("only 'skip'ped commits left") {
            break (None, skipped_candidates(&said));
        }
        let commit = git(&work, &["rev-parse", "BISECT_HEAD"]).await?;
        let mut step = try_one(&work, &commit, "skip", steps).await?;
        step.term = match &step.seen {
            Some(seen) if *seen == from => "good",
            Some(seen) if *seen == to => "bad",
            _ => "skip",
        }
        .to_string();
        said = git_bisect(&work, &[&step.term, &commit]).await?;
        all.push(record_step(&mut log, step)?);
    };
    let bisect_log = git(&work, &["bisect", "log"]).await.unwrap_or_default();
    std::fs::write(log_dir.join("git-bisect.log"), bisect_log)?;
    let (first_describe, first_subject) = match &first {
        Some(c) => (describe(&work, c).await, subject(&work, c).await),
        None => (String::new(), String::new()),
    };
    let found =
        Found { first, first_describe, first_subject, candidates, from, to, steps: all, seconds: started.elapsed().as_secs_f64(), commits };
    std::fs::write(log_dir.join("found.json"), serde_json::to_string_pretty(&found)?)?;
    log.line(&found.summary())?;
    Ok(found)
}

/// An endpoint's result, which must be one.
fn endpoint(step: &Step, which: &str) -> anyhow::Result<Seen> {
    match &step.seen {
        None => anyhow::bail!("{which} {} does not build: {}", step.describe, step.note),
        Some(Seen::Nothing(why)) => anyhow::bail!("{which} {} gives no result: {why}", step.describe),
        Some(seen) => Ok(seen.clone()),
    }
}

async fn try_one(work: &Path, commit: &str, term: &str, steps: &mut dyn Steps) -> anyhow::Result<Step> {
    let started = Instant::now();
    let (seen, note, run) = match steps.try_commit(commit).await? {
        Tried::Ran { record, run } => (Some(Seen::of(&record)), format!("{}: {}", record.verdict, record.reason), Some(run)),
        Tried::DoesNotBuild(why) => (None, why, None),
    };
    Ok(Step {
        commit: commit.to_string(),
        describe: describe(work, commit).await,
        subject: subject(work, commit).await,
        term: term.to_string(),
        seen,
        note,
        run,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn describe(work: &Path, commit: &str) -> String {
    git(work, &["describe", "--tags", "--always", commit]).await.unwrap_or_else(|_| commit.to_string())
}

async fn subject(work: &Path, commit: &str) -> String {
    git(work, &["log", "-1", "--format=%s", commit]).await.unwrap_or_default()
}

/// `git bisect` says `<sha> is the first bad commit`.
fn first_bad(said: &str) -> Option<String> {
    said.lines().find_map(|l| l.strip_suffix(" is the first bad commit").map(|c| c.trim().to_string()))
}

/// The commits git lists after "The first bad commit could be any of:".
fn skipped_candidates(said: &str) -> Vec<String> {
    said.lines()
        .skip_while(|l| !l.contains("could be any of"))
        .skip(1)
        .map(str::trim)
        .take_while(|l| l.len() >= 7 && l.chars().all(|c| c.is_ascii_hexdigit()))
        .map(String::from)
        .collect()
}

async fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let argv = ["git".to_string(), "-C".into(), dir.display().to_string()]
        .into_iter()
        .chain(args.iter().map(|a| a.to_string()));
    let out = crate::process::Command::new(argv, GIT_LIMIT).run().await.context("failed to run git")?;
    Ok(out.checked()?.stdout.trim().to_string())
}

/// `git bisect ARGS...`: what it said. It exits 2 when only skipped commits are left.
async fn git_bisect(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let argv = ["git".to_string(), "-C".into(), dir.display().to_string(), "bisect".into()]
        .into_iter()
        .chain(args.iter().map(|a| a.to_string()));
    let out = crate::process::Command::new(argv, GIT_LIMIT).run().await.context("failed to run git bisect")?;
    let said = format!("{}{}", out.stdout, out.stderr);
    match out.status {
        Some(0) => Ok(said),
        Some(2) if said.contains("only 'skip'ped commits left") => Ok(said),
        _ => Err(anyhow::anyhow!("{}", out.failure_text())),
    }
}

/// The bisect's log: each step as a JSON line and as a line for people.
struct Log {
    jsonl: std::fs::File,
    text: std::fs::File,
}

impl Log {
    fn new(dir: &Path) -> anyhow::Result<Log> {
        let open = |name: &str| std::fs::OpenOptions::new().create(true).append(true).open(dir.join(name));
        Ok(Log { jsonl: open("steps.jsonl")?, text: open("bisect.log")? })
    }

    fn write(&mut self, step: &Step) -> anyhow::Result<()> {
        use std::io::Write as _;
        writeln!(self.jsonl, "{}", serde_json::to_string(step)?)?;
        self.jsonl.sync_data()?;
        let seen = step.seen.as_ref().map(Seen::describe).unwrap_or_else(|| "does not build".to_string());
        let line = format!(
            "{:<4} {} {} ({:.0} s): {seen}; {}",
            step.term,
            &step.commit[..step.commit.len().min(12)],
            step.describe,
            step.seconds,
            step.note.lines().next().unwrap_or_default()
        );
        self.line(&line)
    }

    fn line(&mut self, line: &str) -> anyhow::Result<()> {
        use std::io::Write as _;
        writeln!(self.text, "{line}")?;
        eprintln!("bisect: {line}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::FailureRecord;

    /// A repository whose commit `i` holds `state` = `states[i]`.
    fn repo(states: &[&str]) -> (tempfile::TempDir, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| -> String {
            let top = dir.path().display().to_string();
            let argv: Vec<String> = ["git", "-C", &top].into_iter().chain(args.iter().copied()).map(String::from).collect();
            crate::process::Command::new(argv, GIT_LIMIT).run_blocking().unwrap().checked().unwrap().stdout
        };
        run(&["init", "-q", "-b", "main"]);
        run(&["config", "user.email", "t@example.invalid"]);
        run(&["config", "user.name", "t"]);
        let mut commits = Vec::new();
        for (i, state) in states.iter().enumerate() {
            std::fs::write(dir.path().join("state"), format!("{state}\n{i}\n")).unwrap();
            run(&["add", "state"]);
            run(&["commit", "-q", "-m", &format!("commit {i}: {state}")]);
            commits.push(run(&["rev-parse", "HEAD"]).trim().to_string());
        }
        run(&["tag", "first", &commits[0]]);
        (dir, commits)
    }

    /// Steps that read the commit's `state`: `bug` fails with the signature, `ok` passes,
    /// `broken` does not build, `other` fails another way.
    struct Fake {
        repo: PathBuf,
        tried: Vec<String>,
    }

    #[async_trait::async_trait]
    impl Steps for Fake {
        async fn try_commit(&mut self, commit: &str) -> anyhow::Result<Tried> {
            self.tried.push(commit.to_string());
            let state = git(&self.repo, &["show", &format!("{commit}:state")]).await?;
            let mut record = crate::record::testing::record("c", "runc", "trixie", Verdict::Pass);
            match state.lines().next().unwrap_or_default() {
                "broken" => return Ok(Tried::DoesNotBuild("make: *** Error 1".into())),
                "ok" => {}
                "bug" | "other" => {
                    record.verdict = if state.starts_with("bug") { Verdict::Reproduced } else { Verdict::Fail };
                    record.failure = Some(FailureRecord {
                        round: 1,
                        step: "checkpoint".into(),
                        message: String::new(),
                        signature_matched: None,
                        excerpt: String::new(),
                    });
                }
                s => panic!("state {s}"),
            }
            Ok(Tried::Ran { record: Box::new(record), run: PathBuf::from("run") })
        }
    }

    async fn run(states: &[&str], good: usize, bad: usize) -> (anyhow::Result<Found>, Vec<String>, Vec<String>, tempfile::TempDir) {
        let (dir, commits) = repo(states);
        let logs = tempfile::tempdir().unwrap();
        let mut fake = Fake { repo: dir.path().to_path_buf(), tried: Vec::new() };
        let found = bisect(dir.path(), &commits[good], &commits[bad], &mut fake, logs.path()).await;
        // git's bisect state lives in the throwaway clone, never in the checkout given.
        assert!(!dir.path().join(".git/BISECT_LOG").exists());
        (found, commits, fake.tried, logs)
    }

    #[tokio::test]
    async fn finds_the_commit_that_fixed_it() {
        let (found, commits, tried, logs) = run(&["bug", "bug", "bug", "bug", "ok", "ok", "ok", "ok"], 0, 7).await;
        let found = found.unwrap();
        assert_eq!(found.first.as_deref(), Some(commits[4].as_str()));
        assert_eq!(found.first_subject, "commit 4: ok");
        assert_eq!(found.from, Seen::Failed { step: "checkpoint".into(), expected_signature: true });
        assert_eq!(found.to, Seen::Passed);
        assert!(tried.len() <= 2 + 3, "log2 of 7 commits after the endpoints: {tried:?}");
        let steps = std::fs::read_to_string(logs.path().join("steps.jsonl")).unwrap();
        assert_eq!(steps.lines().count(), tried.len());
        assert!(std::fs::read_to_string(logs.path().join("bisect.log")).unwrap().contains("first commit where the result changes"));
        assert!(logs.path().join("found.json").is_file() && logs.path().join("git-bisect.log").is_file());
    }

    #[tokio::test]
    async fn finds_the_commit_that_broke_it() {
        let (found, commits, ..) = run(&["ok", "ok", "ok", "ok", "ok", "bug", "bug"], 0, 6).await;
        assert_eq!(found.unwrap().first.as_deref(), Some(commits[5].as_str()));
    }

    #[tokio::test]
    async fn commits_that_do_not_build_or_fail_otherwise_are_skipped() {
        let states = ["bug", "bug", "broken", "other", "broken", "ok", "ok", "ok"];
        let (found, commits, tried, logs) = run(&states, 0, 7).await;
        let found = found.unwrap();
        let skipped: Vec<&Step> = found.steps.iter().filter(|s| s.term == "skip").collect();
        assert!(!skipped.is_empty(), "{tried:?}");
        assert!(skipped.iter().all(|s| s.seen.is_none() || s.seen == Some(Seen::Failed { step: "checkpoint".into(), expected_signature: false })));
        // The fix is commit 5, or git cannot tell it from the skipped ones before it.
        match &found.first {
            Some(first) => assert_eq!(first, &commits[5]),
            None => {
                assert!(found.candidates.contains(&commits[5]), "{:?}", found.candidates);
                assert!(found.candidates.iter().all(|c| commits[2..=5].contains(c)));
            }
        }
        let log = std::fs::read_to_string(logs.path().join("bisect.log")).unwrap();
        assert!(log.contains("does not build"), "{log}");
    }

    #[tokio::test]
    async fn endpoints_that_agree_or_do_not_build_end_it_at_once() {
        let (found, ..) = run(&["bug", "ok", "bug"], 0, 2).await;
        let err = found.unwrap_err().to_string();
        assert!(err.contains("same result"), "{err}");
        let (found, ..) = run(&["broken", "ok", "bug"], 0, 2).await;
        assert!(found.unwrap_err().to_string().contains("--good"));
        let (found, ..) = run(&["bug", "ok"], 1, 0).await;
        assert!(found.unwrap_err().to_string().contains("no commit after"));
    }

    #[test]
    fn gits_answers_are_read() {
        assert_eq!(first_bad("4b7398595abc is the first bad commit\ncommit 4b73...").as_deref(), Some("4b7398595abc"));
        let only = "There are only 'skip'ped commits left to test.\nThe first bad commit could be any of:\nabc1234\ndef5678\nWe cannot bisect more!\n";
        assert_eq!(skipped_candidates(only), ["abc1234", "def5678"]);
    }
}
