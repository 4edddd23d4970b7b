//! Text as reports and records show it.

/// A reason fits on one line of a matrix: the first line of a message, at most 300 characters.
pub fn one_line(text: &str) -> String {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    match first.char_indices().nth(300) {
        Some((at, _)) => format!("{}...", &first[..at]),
        None => first.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_non_empty_line_cut_at_300_characters() {
        assert_eq!(one_line("\n  first  \nsecond"), "first");
        let long = "x".repeat(400);
        assert_eq!(one_line(&long).chars().count(), 303);
    }
}
