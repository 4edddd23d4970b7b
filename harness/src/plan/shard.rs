//! Shards: `--shard I/N` runs the I-th of N deterministic slices of a plan, so a matrix too big
//! for one machine runs as N parallel jobs whose records `criu-matrix merge` joins again.
//!
//! A slice is a contiguous run of the expanded plan (which comes grouped by stack, then kernel
//! target, then scenario): a shard then enters few stacks and builds few images, where
//! round-robin would make every shard provision everything. Sizes differ by one at most.

use super::expand::Cell;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1-based.
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The whole plan.
    pub const ALL: Shard = Shard { index: 1, count: 1 };

    /// Parses `I/N` with 1 <= I <= N.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let (i, n) = text.split_once('/').ok_or_else(|| format!("`{text}` is not of the form I/N (e.g. 2/3)"))?;
        let parse = |s: &str| s.trim().parse::<usize>().map_err(|_| format!("`{s}` in `{text}` is not a number"));
        let (index, count) = (parse(i)?, parse(n)?);
        if count == 0 || index == 0 || index > count {
            return Err(format!("shard `{text}` is out of range: I must be between 1 and N, N at least 1"));
        }
        if count > super::bounds::MAX_SHARDS {
            return Err(format!("shard `{text}` is out of range: N must be at most {}", super::bounds::MAX_SHARDS));
        }
        Ok(Shard { index, count })
    }

    /// The half-open range of positions this shard takes out of `len`.
    fn range(&self, len: usize) -> std::ops::Range<usize> {
        // In u128: `i * len` cannot overflow, whatever the plan's length.
        let at = |i: usize| (i as u128 * len as u128 / self.count as u128) as usize;
        at(self.index - 1)..at(self.index)
    }

    /// This shard's cells, in plan order.
    pub fn select(&self, cells: Vec<Cell>) -> Vec<Cell> {
        let range = self.range(cells.len());
        cells.into_iter().skip(range.start).take(range.len()).collect()
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("1/1", Some((1, 1)))]
    #[case("2/3", Some((2, 3)))]
    #[case("0/3", None)]
    #[case("4/3", None)]
    #[case("1/0", None)]
    #[case("3", None)]
    #[case("a/b", None)]
    #[case("1/1000", Some((1, 1000)))]
    #[case("1/1001", None)]
    #[case("18446744073709551615/18446744073709551615", None)]
    fn parses_i_of_n(#[case] text: &str, #[case] expected: Option<(usize, usize)>) {
        assert_eq!(Shard::parse(text).ok().map(|s| (s.index, s.count)), expected, "{text}");
    }

    #[rstest]
    #[case(0, 3)]
    #[case(1, 3)]
    #[case(2, 3)]
    #[case(20, 3)]
    #[case(80, 7)]
    #[case(5, 8)]
    fn the_shards_of_a_plan_cover_it_once_in_order(#[case] len: usize, #[case] count: usize) {
        let mut joined = Vec::new();
        let mut sizes = Vec::new();
        for index in 1..=count {
            let range = Shard { index, count }.range(len);
            sizes.push(range.len());
            joined.extend(range);
        }
        assert_eq!(joined, (0..len).collect::<Vec<_>>());
        let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        assert!(max - min <= 1, "{sizes:?}");
    }

    #[test]
    fn a_huge_plan_is_sliced_without_overflow() {
        let (len, count) = (usize::MAX, 1000);
        let ranges: Vec<_> = (1..=count).map(|index| Shard { index, count }.range(len)).collect();
        assert_eq!((ranges[0].start, ranges[count - 1].end), (0, len));
        assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
    }
}
