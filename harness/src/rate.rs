//! Failure rates of stress cells, and the bounds scenarios write against them.
//!
//! A bound is one or two comparisons of a percentage, comma-separated: `0%`, `<=10%`, `>0%`,
//! `>=5%, <=50%`. A bare percentage means exactly that rate.

use serde::Serialize;

/// A bound on a failure rate as written in an `expect:` clause.
#[derive(Debug, Clone, PartialEq)]
pub struct RateBound {
    text: String,
    /// The lowest rate that holds, in percent, and whether it is included.
    low: (f64, bool),
    /// The highest rate that holds, in percent, and whether it is included.
    high: (f64, bool),
}

/// Where a rate falls against a bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    Below,
    Within,
    Above,
}

impl RateBound {
    pub fn parse(text: &str) -> Result<RateBound, String> {
        let fail = |why: &str| {
            format!("expected a failure rate bound such as `0%`, `<=10%` or `>=5%, <=50%`, got `{text}`: {why}")
        };
        let mut bound = RateBound { text: text.trim().to_string(), low: (0.0, true), high: (100.0, true) };
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
            return Err(fail("one or two comparisons, comma-separated"));
        }
        for part in parts {
            let (op, number) = match part.find(|c: char| c.is_ascii_digit() || c == '.') {
                Some(at) => part.split_at(at),
                None => return Err(fail("no number")),
            };
            let number = number.trim();
            let value: f64 = number
                .strip_suffix('%')
                .ok_or_else(|| fail("a rate is a percentage, e.g. `10%`"))?
                .trim()
                .parse()
                .map_err(|_| fail("not a number"))?;
            if !(0.0..=100.0).contains(&value) {
                return Err(fail("a rate is between 0% and 100%"));
            }
            match op.trim() {
                "" | "=" | "==" => {
                    bound.low = (value, true);
                    bound.high = (value, true);
                }
                ">=" => bound.low = (value, true),
                ">" => bound.low = (value, false),
                "<=" => bound.high = (value, true),
                "<" => bound.high = (value, false),
                other => return Err(fail(&format!("unknown comparison `{other}`"))),
            }
        }
        let (low, high) = (bound.low, bound.high);
        if low.0 > high.0 || (low.0 == high.0 && !(low.1 && high.1)) {
            return Err(fail("no rate satisfies it"));
        }
        Ok(bound)
    }

    /// Where a rate (in percent) falls.
    pub fn place(&self, percent: f64) -> Placement {
        let (low, low_in) = self.low;
        let (high, high_in) = self.high;
        if percent < low || (percent == low && !low_in) {
            Placement::Below
        } else if percent > high || (percent == high && !high_in) {
            Placement::Above
        } else {
            Placement::Within
        }
    }

    /// Whether no failure at all (0%) is within the bound: the bug *may* show.
    pub fn admits_none(&self) -> bool {
        self.place(0.0) == Placement::Within
    }
}

impl std::fmt::Display for RateBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// `failed` of `rounds` in percent (0 when no round ran).
pub fn percent(failed: u32, rounds: u32) -> f64 {
    if rounds == 0 {
        0.0
    } else {
        f64::from(failed) * 100.0 / f64::from(rounds)
    }
}

/// `3/20` failed of the rounds that ran, and `of 24 planned` when the rounds stopped early.
pub fn fraction(failed: u32, ran: u32, planned: u32) -> String {
    let mut s = format!("{failed}/{ran}");
    if ran < planned {
        s.push_str(&format!(" of {planned} planned"));
    }
    s
}

/// The median and maximum of some figures (e.g. CRIU's freezing time of each round).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Summary {
    /// How many figures there were.
    pub count: u32,
    pub median: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(values: &[f64]) -> Option<Summary> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 };
        Some(Summary { count: n as u32, median, max: sorted[n - 1] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::exactly_none("0%", 0.0, Placement::Within)]
    #[case::none_but_one("0%", 5.0, Placement::Above)]
    #[case::at_most("<=10%", 10.0, Placement::Within)]
    #[case::over_at_most("<=10%", 12.5, Placement::Above)]
    #[case::some("> 0%", 0.0, Placement::Below)]
    #[case::some_found(">0%", 4.2, Placement::Within)]
    #[case::band_low(">=5%, <=50%", 4.0, Placement::Below)]
    #[case::band_in(">=5%, <=50%", 37.5, Placement::Within)]
    #[case::band_high(">=5%, <50%", 50.0, Placement::Above)]
    #[case::anything("<=100%", 100.0, Placement::Within)]
    fn rates_fall_below_within_or_above(#[case] bound: &str, #[case] percent: f64, #[case] expected: Placement) {
        assert_eq!(RateBound::parse(bound).unwrap().place(percent), expected);
    }

    #[rstest]
    #[case::no_percent("10")]
    #[case::over_100("<=150%")]
    #[case::words("sometimes")]
    #[case::empty_band(">50%, <10%")]
    #[case::three_parts(">1%, <5%, <6%")]
    #[case::bad_operator("~10%")]
    fn malformed_bounds_are_refused(#[case] text: &str) {
        let err = RateBound::parse(text).expect_err("must be refused");
        assert!(err.contains("failure rate bound"), "{err}");
    }

    #[test]
    fn only_bounds_that_include_zero_admit_none() {
        assert!(RateBound::parse("<=100%").unwrap().admits_none());
        assert!(!RateBound::parse(">0%").unwrap().admits_none());
    }

    #[test]
    fn summaries_take_the_middle_and_the_top() {
        assert_eq!(Summary::of(&[3.0, 1.0, 2.0]), Some(Summary { count: 3, median: 2.0, max: 3.0 }));
        assert_eq!(Summary::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(percent(9, 24), 37.5);
        assert_eq!(percent(0, 0), 0.0);
    }
}
