//! Charts as inline SVG, drawn on the server: bars of requests per day, a monitor's response
//! times, and uptime bars. Colours come from the stylesheet (classes), so the dark theme
//! applies; each chart has a text alternative.

use chrono::{DateTime, NaiveDate, Utc};
use maud::{Markup, html};

/// `1536` → `1.5 KiB`.
pub(crate) fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 160.0;
const LEFT: f64 = 40.0;
const BOTTOM: f64 = 20.0;

/// Bars of API requests per day.
pub(crate) fn daily_bars(days: &[(NaiveDate, i64)]) -> Markup {
    let max = days.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let total: i64 = days.iter().map(|(_, n)| n).sum();
    let slot = (WIDTH - LEFT) / days.len().max(1) as f64;
    let plot = HEIGHT - BOTTOM;
    let label = format!("API requests per day this period: {total} in all, at most {max} in a day");
    html! {
        svg.chart viewBox={"0 0 " (WIDTH) " " (HEIGHT)} role="img" aria-label=(label) {
            title { (label) }
            line.axis x1=(LEFT) y1=(plot) x2=(WIDTH) y2=(plot) {}
            text x="0" y="12" { (max) }
            text x="0" y=(plot) { "0" }
            @for (i, (day, n)) in days.iter().enumerate() {
                @let h = (*n as f64 / max as f64) * (plot - 10.0);
                @let x = LEFT + i as f64 * slot;
                rect.bar x=(format!("{:.1}", x + 1.0)) y=(format!("{:.1}", plot - h)) width=(format!("{:.1}", (slot - 2.0).max(1.0))) height=(format!("{:.1}", h)) {
                    title { (day.format("%b %d")) ": " (n) " requests" }
                }
                @if i % 5 == 0 {
                    text x=(format!("{:.1}", x)) y=(HEIGHT - 4.0) { (day.format("%d")) }
                }
            }
        }
    }
}

/// A monitor's response times, oldest to newest (`points`: when, milliseconds).
pub(crate) fn response_times(points: &[(DateTime<Utc>, i32)]) -> Markup {
    if points.len() < 2 {
        return html! { p.muted { "Not enough checks yet for a chart of response times." } };
    }
    let max = points.iter().map(|(_, ms)| *ms).max().unwrap_or(1).max(1);
    let first = points[0].0.timestamp() as f64;
    let last = points[points.len() - 1].0.timestamp() as f64;
    let span = (last - first).max(1.0);
    let plot = HEIGHT - BOTTOM;
    let path: Vec<String> = points
        .iter()
        .map(|(at, ms)| {
            let x = LEFT + (at.timestamp() as f64 - first) / span * (WIDTH - LEFT);
            let y = plot - (*ms as f64 / max as f64) * (plot - 10.0);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let average = points.iter().map(|(_, ms)| i64::from(*ms)).sum::<i64>() / points.len() as i64;
    let label = format!(
        "Response times of the last {} checks: average {average} ms, slowest {max} ms",
        points.len()
    );
    html! {
        svg.chart viewBox={"0 0 " (WIDTH) " " (HEIGHT)} role="img" aria-label=(label) {
            title { (label) }
            line.axis x1=(LEFT) y1=(plot) x2=(WIDTH) y2=(plot) {}
            text x="0" y="12" { (max) " ms" }
            text x="0" y=(plot) { "0" }
            polyline.line points=(path.join(" ")) {}
            text x=(LEFT) y=(HEIGHT - 4.0) { (points[0].0.format("%H:%M")) }
            text x=(WIDTH - 40.0) y=(HEIGHT - 4.0) { (points[points.len() - 1].0.format("%H:%M")) }
        }
    }
}

/// One bucket of an uptime bar: checks that passed and checks in all.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    pub start: DateTime<Utc>,
    pub ok: i64,
    pub total: i64,
}

/// The uptime of a series of buckets, as a percentage (`None` without checks).
pub(crate) fn uptime(buckets: &[Bucket]) -> Option<f64> {
    let total: i64 = buckets.iter().map(|b| b.total).sum();
    let ok: i64 = buckets.iter().map(|b| b.ok).sum();
    (total > 0).then(|| ok as f64 * 100.0 / total as f64)
}

/// A row of bars, one per bucket: green all passed, red none passed, amber some, grey no checks.
pub(crate) fn uptime_bar(title: &str, buckets: &[Bucket], format: &str) -> Markup {
    let width = buckets.len().max(1) as f64 * 10.0;
    let summary = match uptime(buckets) {
        Some(p) => format!("{title}: {p:.2} % up"),
        None => format!("{title}: no checks"),
    };
    html! {
        figure.uptime-figure {
            figcaption { (summary) }
            svg.chart.uptime viewBox={"0 0 " (width) " 24"} role="img" aria-label=(summary) preserveAspectRatio="none" {
                @for (i, b) in buckets.iter().enumerate() {
                    @let class = match (b.total, b.ok) {
                        (0, _) => "none",
                        (t, o) if o == t => "up",
                        (_, 0) => "down",
                        _ => "partial",
                    };
                    rect class=(class) x=(i as f64 * 10.0 + 1.0) y="0" width="8" height="24" rx="2" {
                        title { (b.start.format(format)) ": " (b.ok) " of " (b.total) " checks passed" }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(bytes(0), "0 bytes");
        assert_eq!(bytes(1023), "1023 bytes");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5.0 MiB");
    }

    #[test]
    fn uptime_counts_checks_not_buckets() {
        let at = Utc::now();
        let buckets = [
            Bucket {
                start: at,
                ok: 9,
                total: 10,
            },
            Bucket {
                start: at,
                ok: 0,
                total: 0,
            },
            Bucket {
                start: at,
                ok: 1,
                total: 10,
            },
        ];
        assert_eq!(uptime(&buckets), Some(50.0));
        assert_eq!(uptime(&buckets[1..2]), None);
    }
}
