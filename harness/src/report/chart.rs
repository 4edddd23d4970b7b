//! Line charts of seconds per round (checkpoint and restore), for the HTML page. A chart is
//! geometry as data: the page's template draws it as inline SVG through its escaping, and the
//! page's script draws a cell's chart from the same data with DOM calls. No markup is made
//! here, so no record text reaches the page unescaped.

use serde::Serialize;

/// One line of a chart, as given.
pub struct Series {
    pub label: String,
    pub color: String,
    pub dashed: bool,
    /// (round, seconds)
    pub points: Vec<(u32, f64)>,
}

/// A chart ready to draw: every coordinate in the SVG's user units.
#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    pub title: String,
    pub width: f64,
    pub height: f64,
    /// Horizontal gridlines with their labels (seconds).
    pub grid: Vec<Gridline>,
    /// One label per round along the x axis.
    pub ticks: Vec<Tick>,
    pub lines: Vec<Line>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Gridline {
    pub x1: f64,
    pub x2: f64,
    pub y: f64,
    pub label: String,
    pub label_x: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tick {
    pub x: f64,
    pub y: f64,
    pub label: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub label: String,
    pub color: String,
    /// `5,3` for a dashed line, else empty.
    pub dash: String,
    /// `x,y x,y ...` for a polyline.
    pub points: String,
    pub dots: Vec<Dot>,
    /// Where its legend entry is.
    pub legend_y: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dot {
    pub x: f64,
    pub y: f64,
    /// `checkpoint round 2: 0.41s`.
    pub title: String,
}

const WIDTH: f64 = 520.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 28.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 30.0;

/// Colors for lines, readable on white; they repeat past the last.
pub const PALETTE: &[&str] =
    &["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"];

/// A "nice" upper bound for the y axis: 1, 2 or 5 times a power of ten.
fn nice_ceiling(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|v| *v >= max).unwrap_or(10.0 * magnitude)
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// The chart of the series; `None` when no series has a point.
pub fn rounds_chart(title: &str, series: &[Series]) -> Option<Chart> {
    let points: Vec<(u32, f64)> = series.iter().flat_map(|s| s.points.iter().copied()).collect();
    if points.is_empty() {
        return None;
    }
    let last_round = points.iter().map(|p| p.0).max().unwrap_or(1).max(1);
    let y_max = nice_ceiling(points.iter().map(|p| p.1).fold(0.0, f64::max));
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let x = |round: u32| {
        let x = if last_round == 1 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + plot_w * f64::from(round.saturating_sub(1)) / f64::from(last_round - 1)
        };
        round1(x)
    };
    let y = |seconds: f64| round1(TOP + plot_h * (1.0 - seconds / y_max));
    let grid = (0..=4)
        .map(|i| {
            let v = y_max * f64::from(i) / 4.0;
            Gridline { x1: LEFT, x2: WIDTH - RIGHT, y: y(v), label: format!("{v:.2}s"), label_x: LEFT - 4.0 }
        })
        .collect();
    let ticks =
        (1..=last_round).map(|r| Tick { x: x(r), y: HEIGHT - BOTTOM + 14.0, label: format!("round {r}") }).collect();
    let lines = series
        .iter()
        .enumerate()
        .map(|(i, s)| Line {
            label: s.label.clone(),
            color: s.color.clone(),
            dash: if s.dashed { "5,3".to_string() } else { String::new() },
            points: s.points.iter().map(|(r, v)| format!("{},{}", x(*r), y(*v))).collect::<Vec<_>>().join(" "),
            dots: s
                .points
                .iter()
                .map(|(r, v)| Dot { x: x(*r), y: y(*v), title: format!("{} round {r}: {v:.2}s", s.label) })
                .collect(),
            legend_y: HEIGHT + 6.0 + 16.0 * i as f64,
        })
        .collect();
    let height = HEIGHT + 16.0 * series.len() as f64;
    Some(Chart { title: title.to_string(), width: WIDTH, height, grid, ticks, lines })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_a_line_per_series_and_a_dot_per_round() {
        let series = vec![
            Series {
                label: "checkpoint".into(),
                color: "#000".into(),
                dashed: false,
                points: vec![(1, 0.5), (2, 1.5)],
            },
            Series { label: "restore <x>".into(), color: "#111".into(), dashed: true, points: vec![(1, 0.7)] },
        ];
        let chart = rounds_chart("t", &series).unwrap();
        assert_eq!(chart.lines.len(), 2);
        assert_eq!(chart.lines.iter().map(|l| l.dots.len()).sum::<usize>(), 3);
        assert_eq!(chart.lines[1].label, "restore <x>", "text stays text: the page escapes it");
        assert_eq!(chart.lines[1].dash, "5,3");
        assert_eq!(chart.grid.last().unwrap().label, "2.00s", "the y axis tops at a nice 2s");
        assert_eq!(chart.ticks.len(), 2);
        assert!(rounds_chart("t", &[]).is_none());
    }

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(1.5), 2.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(0.031), 0.05);
    }
}
