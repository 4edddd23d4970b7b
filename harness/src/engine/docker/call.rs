//! Each Engine API call as the docker CLI command that does the same (for the transcript and the
//! reproducer), with the output the CLI would have given, and the small conversions the API
//! needs (tags, query values, CRIU log paths in error messages).

use crate::process::Output;
use bollard::errors::Error as ApiError;
use std::time::Instant;

/// One API action, timed, with the docker CLI command that does the same.
pub struct Call {
    argv: Vec<String>,
    started: Instant,
}

impl Call {
    pub fn new(argv: &[&str]) -> Call {
        Call { argv: argv.iter().map(|s| s.to_string()).collect(), started: Instant::now() }
    }

    pub fn owned(argv: Vec<String>) -> Call {
        Call { argv, started: Instant::now() }
    }

    /// The output the CLI would have given: stdout on success, the daemon's error on stderr.
    pub fn finish(self, result: Result<Result<String, ApiError>, tokio::time::error::Elapsed>) -> Output {
        let seconds = self.started.elapsed().as_secs_f64();
        let (status, stdout, stderr, timed_out) = match result {
            Ok(Ok(stdout)) => (Some(0), stdout, String::new(), false),
            Ok(Err(e)) => (Some(1), String::new(), error_text(&e), false),
            Err(_) => (None, String::new(), String::new(), true),
        };
        Output { argv: self.argv, status, stdout, stderr, seconds, timed_out }
    }
}

/// An API error as the docker CLI prints it.
pub fn error_text(e: &ApiError) -> String {
    match e {
        ApiError::DockerResponseServerError { message, .. } => format!("Error response from daemon: {message}"),
        ApiError::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

/// Whether `e` says dockerd did not answer at all (its socket gone, the connection refused or
/// cut): the engine broke, which is no result about CRIU.
pub fn daemon_gone(e: &ApiError) -> bool {
    matches!(
        e,
        ApiError::HyperLegacyError { .. }
            | ApiError::HyperResponseError { .. }
            | ApiError::HttpClientError { .. }
            | ApiError::IOError { .. }
            | ApiError::SocketNotFoundError(_)
    )
}

/// A step whose call dockerd never answered is an error of the harness's engine, not the
/// step's result: `Err`, so the cell ends as `error` (a `fail` would blame CRIU or the runtime).
pub fn unless_daemon_gone<T>(
    result: Result<Result<T, ApiError>, tokio::time::error::Elapsed>,
    what: &str,
) -> anyhow::Result<Result<Result<T, ApiError>, tokio::time::error::Elapsed>> {
    if let Ok(Err(e)) = &result {
        if daemon_gone(e) {
            anyhow::bail!("dockerd stopped answering during `{what}`: {}", error_text(e));
        }
    }
    Ok(result)
}

pub fn not_found(e: &ApiError) -> bool {
    matches!(e, ApiError::DockerResponseServerError { status_code: 404, .. })
}

/// `repo:tag` -> (`repo`, `tag`); the tag is after the last `:` that follows the last `/`.
pub fn split_tag(reference: &str) -> (&str, &str) {
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (reference, "latest"),
    }
}

/// Percent-encodes a query value (checkpoint names and stack paths are plain, but be safe):
/// everything but RFC 3986's unreserved characters and `/`.
pub fn query_value(text: &str) -> String {
    const QUERY: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');
    percent_encoding::utf8_percent_encode(text, QUERY).to_string()
}

/// Paths of CRIU logs named in an error message (runc and crun name the log they wrote).
pub fn log_paths(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || "\"'(),;=".contains(c))
        .map(|w| w.trim_end_matches([':', '.']))
        .filter(|w| w.starts_with('/') && w.ends_with(".log"))
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dockerd that is gone (its socket refuses) makes a step an error, never a result.
    #[tokio::test]
    async fn a_call_dockerd_never_answers_is_an_error_not_a_result() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        drop(std::os::unix::net::UnixListener::bind(&socket).unwrap()); // bound, then closed: refuses
        let client = bollard::Docker::connect_with_unix(&socket.display().to_string(), 5, bollard::API_DEFAULT_VERSION).unwrap();
        let result = tokio::time::timeout(std::time::Duration::from_secs(5), client.ping()).await;
        let err = unless_daemon_gone(result, "docker ping").unwrap_err().to_string();
        assert!(err.starts_with("dockerd stopped answering during `docker ping`"), "{err}");
        // An answer from dockerd, even an error, is the step's result.
        let answered: Result<Result<(), ApiError>, tokio::time::error::Elapsed> =
            Ok(Err(ApiError::DockerResponseServerError { status_code: 500, message: "criu failed".into() }));
        assert!(unless_daemon_gone(answered, "docker checkpoint create").is_ok());
    }
}
