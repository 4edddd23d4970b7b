//! What a finished (or timed-out) command did, and its command line as a person would type it.

/// What a finished (or timed-out) command did.
#[derive(Debug, Clone)]
pub struct Output {
    pub argv: Vec<String>,
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub seconds: f64,
    pub timed_out: bool,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == Some(0) && !self.timed_out
    }

    /// The command line, shell-quoted.
    pub fn command_line(&self) -> String {
        shell_join(&self.argv)
    }

    /// Ok if it succeeded, else an error with its exit status and stderr.
    pub fn checked(self) -> anyhow::Result<Output> {
        if self.success() {
            Ok(self)
        } else {
            anyhow::bail!("{}", self.failure_text())
        }
    }

    pub fn failure_text(&self) -> String {
        let how = if self.timed_out {
            format!("timed out after {:.0}s", self.seconds)
        } else {
            match self.status {
                Some(code) => format!("exited with {code}"),
                None => "was killed by a signal".to_string(),
            }
        };
        let stderr = self.stderr.trim();
        let tail: Vec<&str> = stderr.lines().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect();
        format!("`{}` {how}{}{}", self.command_line(), if tail.is_empty() { "" } else { ": " }, tail.join("\n"))
    }
}

/// Quotes words for a POSIX shell (with shlex), leaving bare the words a shell reads as they
/// are anyway (`--env A=1`, `{{.State.Pid}}`): reproducers are read by people. A word with a NUL
/// byte cannot be given to a shell at all; it is shown with the NUL escaped.
pub fn shell_join(argv: &[String]) -> String {
    let plain = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%{}".contains(c));
    argv.iter()
        .map(|w| match shlex::try_quote(w) {
            Ok(_) if plain(w) => w.clone(),
            Ok(quoted) => quoted.into_owned(),
            Err(_) => format!("'{}'", w.replace('\0', "\\0")),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_quoting_and_round_trips() {
        let argv: Vec<String> =
            ["podman", "run", "--label", "a=b c", "it's", "{{.State.Pid}}"].map(String::from).to_vec();
        let line = shell_join(&argv);
        assert!(line.starts_with("podman run --label 'a=b c' "), "{line}");
        assert!(line.ends_with(" {{.State.Pid}}"), "{line}");
        assert_eq!(shlex::split(&line).unwrap(), argv, "{line}");
    }
}
