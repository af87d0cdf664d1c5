//! Small, dependency-free SVG line charts for the HTML report: linear and log scales, "nice"
//! ticks, line paths with gaps, step paths, vertical markers (step boundaries, the decision),
//! shaded bands (holds) and horizontal reference lines (thresholds).

use std::fmt::Write as _;

/// Chart width in SVG units.
pub const WIDTH: f64 = 880.0;
/// Chart height in SVG units.
pub const HEIGHT: f64 = 230.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 34.0;

/// Maps data values to SVG coordinates.
pub trait Scale {
    /// The coordinate of `value`.
    fn map(&self, value: f64) -> f64;
}

/// A linear map from `domain` to `range`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearScale {
    /// Data interval (widened when empty).
    pub domain: (f64, f64),
    /// Coordinate interval (may be reversed, as for a y axis).
    pub range: (f64, f64),
}

impl LinearScale {
    /// A scale; an empty or non-finite domain becomes `(d0, d0 + 1)`.
    pub fn new(domain: (f64, f64), range: (f64, f64)) -> Self {
        let (d0, d1) = domain;
        let d0 = if d0.is_finite() { d0 } else { 0.0 };
        let d1 = if d1.is_finite() && d1 > d0 {
            d1
        } else {
            d0 + 1.0
        };
        Self {
            domain: (d0, d1),
            range,
        }
    }
}

impl Scale for LinearScale {
    fn map(&self, value: f64) -> f64 {
        let (d0, d1) = self.domain;
        let (r0, r1) = self.range;
        r0 + (value - d0) / (d1 - d0) * (r1 - r0)
    }
}

/// A base-10 logarithmic map; values at or below zero map to the domain's lower end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogScale {
    /// Positive data interval.
    pub domain: (f64, f64),
    /// Coordinate interval.
    pub range: (f64, f64),
}

impl LogScale {
    /// A scale; the domain is made positive and non-empty.
    pub fn new(domain: (f64, f64), range: (f64, f64)) -> Self {
        let d0 = if domain.0.is_finite() && domain.0 > 0.0 {
            domain.0
        } else {
            1e-3
        };
        let d1 = if domain.1.is_finite() && domain.1 > d0 {
            domain.1
        } else {
            d0 * 10.0
        };
        Self {
            domain: (d0, d1),
            range,
        }
    }
}

impl Scale for LogScale {
    fn map(&self, value: f64) -> f64 {
        let (d0, d1) = (self.domain.0.log10(), self.domain.1.log10());
        let v = value.max(self.domain.0).log10();
        let (r0, r1) = self.range;
        r0 + (v - d0) / (d1 - d0) * (r1 - r0)
    }
}

/// About `target` round tick values (steps of 1, 2 or 5 × 10ⁿ) covering `[lo, hi]`.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo || target == 0 {
        return vec![if lo.is_finite() { lo } else { 0.0 }];
    }
    let raw = (hi - lo) / target as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step).ceil() * step;
    // Round to the step's decimals, away from binary noise such as 0.30000000000000004.
    let scale = 10f64.powi((-step.log10().floor()).max(0.0) as i32);
    let mut ticks = Vec::new();
    let mut i = 0.0;
    while first + i * step <= hi + step * 1e-9 {
        let v = ((first + i * step) * scale).round() / scale;
        ticks.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
        i += 1.0;
    }
    ticks
}

/// Powers of ten within `[lo, hi]`.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && hi > lo && hi.is_finite()) {
        return Vec::new();
    }
    (lo.log10().ceil() as i32..=hi.log10().floor() as i32)
        .map(|e| 10f64.powi(e))
        .collect()
}

/// An SVG path (`M x y L x y …`) through the points; a `None` (or non-finite) value breaks the
/// line, so a gap in the data is a gap in the chart.
pub fn path_data(points: &[(f64, Option<f64>)], x: &impl Scale, y: &impl Scale) -> String {
    let mut d = String::new();
    let mut pen_down = false;
    for &(px, py) in points {
        match py.filter(|v| v.is_finite()) {
            Some(v) if px.is_finite() => {
                let cmd = if pen_down { 'L' } else { 'M' };
                let _ = write!(d, "{}{cmd}{:.1} {:.1}", sep(&d), x.map(px), y.map(v));
                pen_down = true;
            }
            _ => pen_down = false,
        }
    }
    d
}

/// A staircase path: each value holds until the next point's x (for weights).
pub fn step_path_data(points: &[(f64, f64)], x: &impl Scale, y: &impl Scale) -> String {
    let mut d = String::new();
    for (i, &(px, py)) in points.iter().enumerate() {
        if i == 0 {
            let _ = write!(d, "M{:.1} {:.1}", x.map(px), y.map(py));
        } else {
            let _ = write!(d, " H{:.1} V{:.1}", x.map(px), y.map(py));
        }
    }
    d
}

fn sep(d: &str) -> &'static str {
    if d.is_empty() { "" } else { " " }
}

/// Escapes text for SVG/HTML content and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A tick label: up to three significant decimals, no trailing zeros.
pub fn format_number(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e6 || v.abs() < 1e-3) {
        return format!("{v:.0e}");
    }
    let text = format!("{v:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

/// One data line.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Legend text.
    pub label: String,
    /// CSS colour.
    pub color: String,
    /// Dashed stroke.
    pub dashed: bool,
    /// Draw as a staircase (values hold until the next point).
    pub staircase: bool,
    /// `(x, y)` points; `None` is a gap.
    pub points: Vec<(f64, Option<f64>)>,
}

/// A vertical marker.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// Where.
    pub x: f64,
    /// Label drawn at the top (may be empty).
    pub label: String,
    /// CSS colour.
    pub color: String,
    /// Solid and thick (a decision) rather than thin and dashed (a step boundary).
    pub strong: bool,
}

/// A shaded x range.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    /// Start.
    pub from: f64,
    /// End.
    pub to: f64,
    /// CSS colour (drawn translucent).
    pub color: String,
}

/// A horizontal reference line.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Where.
    pub y: f64,
    /// Label drawn at its right end.
    pub label: String,
    /// CSS colour.
    pub color: String,
}

/// A chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Unique id in the page (used for the clip path).
    pub id: String,
    /// Title drawn above the plot.
    pub title: String,
    /// x range (seconds).
    pub x_domain: (f64, f64),
    /// y range; `None` = from 0 (or the smallest positive value on a log axis) to the data's
    /// maximum with some headroom.
    pub y_domain: Option<(f64, f64)>,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// Formats y tick labels.
    pub y_format: fn(f64) -> String,
    /// Data lines.
    pub lines: Vec<Line>,
    /// Vertical markers.
    pub markers: Vec<Marker>,
    /// Shaded ranges.
    pub bands: Vec<Band>,
    /// Horizontal reference lines.
    pub rules: Vec<Rule>,
}

impl Chart {
    fn auto_y(&self) -> (f64, f64) {
        if let Some(d) = self.y_domain {
            return d;
        }
        let values = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().filter_map(|p| p.1))
            .chain(self.rules.iter().map(|r| r.y))
            .filter(|v| v.is_finite());
        if self.log_y {
            let (lo, hi) = values
                .filter(|v| *v > 0.0)
                .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
                    (lo.min(v), hi.max(v))
                });
            if hi <= 0.0 {
                return (0.1, 10.0);
            }
            let lo = 10f64.powf(lo.min(1.0).log10().floor());
            let hi = 10f64.powf((hi * 1.5).log10().ceil());
            (lo, hi.max(lo * 10.0))
        } else {
            let hi = values.fold(0.0f64, f64::max);
            (0.0, if hi > 0.0 { hi * 1.12 } else { 1.0 })
        }
    }
}

/// Renders the chart as an inline `<svg>` element.
pub fn render(chart: &Chart) -> String {
    let x = LinearScale::new(chart.x_domain, (LEFT, WIDTH - RIGHT));
    let (y0, y1) = chart.auto_y();
    if chart.log_y {
        let y = LogScale::new((y0, y1), (HEIGHT - BOTTOM, TOP));
        let ticks = log_ticks(y.domain.0, y.domain.1);
        draw(chart, &x, &y, &ticks)
    } else {
        let y = LinearScale::new((y0, y1), (HEIGHT - BOTTOM, TOP));
        let ticks = nice_ticks(y.domain.0, y.domain.1, 4);
        draw(chart, &x, &y, &ticks)
    }
}

fn draw(chart: &Chart, x: &LinearScale, y: &impl Scale, y_ticks: &[f64]) -> String {
    let (plot_top, plot_bottom) = (TOP, HEIGHT - BOTTOM);
    let (plot_left, plot_right) = (LEFT, WIDTH - RIGHT);
    let clip = format!("clip-{}", escape(&chart.id));
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{title}"><title>{title}</title>"#,
        title = escape(&chart.title)
    );
    let _ = write!(
        s,
        r#"<defs><clipPath id="{clip}"><rect x="{plot_left}" y="{plot_top}" width="{w:.1}" height="{h:.1}"/></clipPath></defs>"#,
        w = plot_right - plot_left,
        h = plot_bottom - plot_top
    );
    let _ = write!(
        s,
        r#"<text x="{plot_left}" y="18" class="chart-title">{}</text>"#,
        escape(&chart.title)
    );
    for b in &chart.bands {
        let (a, e) = (x.map(b.from).max(plot_left), x.map(b.to).min(plot_right));
        if e > a {
            let _ = write!(
                s,
                r#"<rect x="{a:.1}" y="{plot_top}" width="{:.1}" height="{:.1}" fill="{}" fill-opacity="0.18"/>"#,
                e - a,
                plot_bottom - plot_top,
                escape(&b.color)
            );
        }
    }
    for &t in y_ticks {
        let py = y.map(t);
        let _ = write!(
            s,
            r##"<line x1="{plot_left}" x2="{plot_right}" y1="{py:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text>"##,
            plot_left - 6.0,
            py + 4.0,
            escape(&(chart.y_format)(t))
        );
    }
    for t in nice_ticks(x.domain.0, x.domain.1, 10) {
        let px = x.map(t);
        let _ = write!(
            s,
            r##"<line x1="{px:.1}" x2="{px:.1}" y1="{plot_bottom}" y2="{:.1}" stroke="#999"/><text x="{px:.1}" y="{:.1}" class="tick" text-anchor="middle">{}s</text>"##,
            plot_bottom + 4.0,
            plot_bottom + 16.0,
            format_number(t)
        );
    }
    let _ = write!(
        s,
        r##"<rect x="{plot_left}" y="{plot_top}" width="{:.1}" height="{:.1}" fill="none" stroke="#999"/>"##,
        plot_right - plot_left,
        plot_bottom - plot_top
    );
    for m in &chart.markers {
        let px = x.map(m.x);
        let style = if m.strong {
            r#"stroke-width="2.5""#
        } else {
            r#"stroke-width="1" stroke-dasharray="4 3""#
        };
        let _ = write!(
            s,
            r#"<line x1="{px:.1}" x2="{px:.1}" y1="{plot_top}" y2="{plot_bottom}" stroke="{}" {style}/>"#,
            escape(&m.color)
        );
        if !m.label.is_empty() {
            let weight = if m.strong { "bold" } else { "normal" };
            // Near the right edge the label goes to the left of its line.
            let width = 6.5 * m.label.chars().count() as f64;
            let (lx, anchor) = if px + 3.0 + width > plot_right {
                (px - 3.0, "end")
            } else {
                (px + 3.0, "start")
            };
            let _ = write!(
                s,
                r#"<text x="{lx:.1}" y="{:.1}" class="marker" fill="{}" font-weight="{weight}" text-anchor="{anchor}">{}</text>"#,
                plot_top + 11.0,
                escape(&m.color),
                escape(&m.label)
            );
        }
    }
    for r in &chart.rules {
        let py = y.map(r.y);
        let _ = write!(
            s,
            r#"<line x1="{plot_left}" x2="{plot_right}" y1="{py:.1}" y2="{py:.1}" stroke="{c}" stroke-dasharray="6 3"/><text x="{:.1}" y="{:.1}" class="marker" fill="{c}" text-anchor="end">{}</text>"#,
            plot_right - 4.0,
            py + 13.0,
            escape(&r.label),
            c = escape(&r.color)
        );
    }
    let _ = write!(s, r#"<g clip-path="url(#{clip})">"#);
    for line in &chart.lines {
        let d = if line.staircase {
            let pts: Vec<(f64, f64)> = line
                .points
                .iter()
                .filter_map(|&(px, py)| py.map(|v| (px, v)))
                .collect();
            step_path_data(&pts, x, y)
        } else {
            path_data(&line.points, x, y)
        };
        let dash = if line.dashed {
            r#" stroke-dasharray="5 3""#
        } else {
            ""
        };
        let _ = write!(
            s,
            r#"<path d="{d}" fill="none" stroke="{}" stroke-width="1.8"{dash}/>"#,
            escape(&line.color)
        );
    }
    s.push_str("</g>");
    // Legend, right-aligned in the title row.
    let mut lx = plot_right;
    for line in chart.lines.iter().rev() {
        let width = 30.0 + 6.5 * line.label.chars().count() as f64;
        lx -= width;
        let dash = if line.dashed {
            r#" stroke-dasharray="5 3""#
        } else {
            ""
        };
        let _ = write!(
            s,
            r#"<line x1="{lx:.1}" x2="{:.1}" y1="14" y2="14" stroke="{}" stroke-width="2"{dash}/><text x="{:.1}" y="18" class="legend">{}</text>"#,
            lx + 18.0,
            escape(&line.color),
            lx + 22.0,
            escape(&line.label)
        );
    }
    s.push_str("</svg>");
    s
}
