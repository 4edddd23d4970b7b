//! Inline SVG line charts of seconds per round (checkpoint and restore), for the HTML page:
//! no script and no external file, so the page stays one self-contained file.

/// One line of a chart.
pub struct Series {
    pub label: String,
    pub color: String,
    pub dashed: bool,
    /// (round, seconds)
    pub points: Vec<(u32, f64)>,
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

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A "nice" upper bound for the y axis: 1, 2 or 5 times a power of ten.
fn nice_ceiling(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|v| *v >= max).unwrap_or(10.0 * magnitude)
}

/// An SVG of the series; `None` when no series has a point.
pub fn rounds_svg(title: &str, series: &[Series]) -> Option<String> {
    let points: Vec<(u32, f64)> = series.iter().flat_map(|s| s.points.iter().copied()).collect();
    if points.is_empty() {
        return None;
    }
    let last_round = points.iter().map(|p| p.0).max().unwrap_or(1).max(1);
    let y_max = nice_ceiling(points.iter().map(|p| p.1).fold(0.0, f64::max));
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let x = |round: u32| {
        if last_round == 1 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + plot_w * f64::from(round - 1) / f64::from(last_round - 1)
        }
    };
    let y = |seconds: f64| TOP + plot_h * (1.0 - seconds / y_max);
    let legend_h = 16.0 * series.len() as f64;
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {}" width="{WIDTH}" height="{}" role="img" aria-label="{}"><title>{}</title>"##,
        HEIGHT + legend_h,
        HEIGHT + legend_h,
        escape(title),
        escape(title)
    );
    // Axes, gridlines at quarters of the y range, a tick per round.
    for i in 0..=4 {
        let v = y_max * f64::from(i) / 4.0;
        svg.push_str(&format!(
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{v:.2}s</text>"##,
            WIDTH - RIGHT,
            LEFT - 4.0,
            y(v) + 3.0,
            y = y(v)
        ));
    }
    for round in 1..=last_round {
        svg.push_str(&format!(
            r##"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">round {round}</text>"##,
            x(round),
            HEIGHT - BOTTOM + 14.0
        ));
    }
    for s in series.iter().filter(|s| !s.points.is_empty()) {
        let path: Vec<String> = s.points.iter().map(|(r, v)| format!("{:.1},{:.1}", x(*r), y(*v))).collect();
        let dash = if s.dashed { r#" stroke-dasharray="5,3""# } else { "" };
        svg.push_str(&format!(
            r#"<polyline fill="none" stroke="{}" stroke-width="2"{dash} points="{}"/>"#,
            s.color,
            path.join(" ")
        ));
        for (r, v) in &s.points {
            svg.push_str(&format!(
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"><title>{} round {r}: {v:.2}s</title></circle>"#,
                x(*r),
                y(*v),
                s.color,
                escape(&s.label)
            ));
        }
    }
    for (i, s) in series.iter().enumerate() {
        let ly = HEIGHT + 12.0 * 0.5 + 16.0 * i as f64;
        let dash = if s.dashed { r#" stroke-dasharray="5,3""# } else { "" };
        svg.push_str(&format!(
            r#"<line x1="{LEFT}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
            LEFT + 24.0,
            s.color,
            LEFT + 30.0,
            ly + 4.0,
            escape(&s.label)
        ));
    }
    svg.push_str("</svg>");
    Some(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_a_line_per_series_and_a_point_per_round() {
        let series = vec![
            Series {
                label: "checkpoint".into(),
                color: "#000".into(),
                dashed: false,
                points: vec![(1, 0.5), (2, 1.5)],
            },
            Series { label: "restore <x>".into(), color: "#111".into(), dashed: true, points: vec![(1, 0.7)] },
        ];
        let svg = rounds_svg("t", &series).unwrap();
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("restore &lt;x&gt;"), "{svg}");
        assert!(svg.contains(">2.00s<"), "the y axis tops at a nice 2s: {svg}");
        assert!(rounds_svg("t", &[]).is_none());
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
