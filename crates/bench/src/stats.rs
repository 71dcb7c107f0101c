//! Summaries of timed samples (min, median, p90, p99, max, mean) and the formatting of durations.

use std::time::Duration;

use anyhow::ensure;

/// The spread of a set of timings.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub count: usize,
    pub min: Duration,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub mean: Duration,
}

impl Summary {
    /// Summarises `samples`; percentiles interpolate linearly between the nearest samples.
    pub fn of(samples: &[Duration]) -> anyhow::Result<Self> {
        ensure!(!samples.is_empty(), "no samples to summarise");
        let mut sorted = samples.to_vec();
        sorted.sort();
        let total: Duration = sorted.iter().sum();
        let count = sorted.len();
        Ok(Self {
            count,
            min: sorted[0],
            p50: percentile(&sorted, 0.50),
            p90: percentile(&sorted, 0.90),
            p99: percentile(&sorted, 0.99),
            max: sorted[count - 1],
            mean: total / u32::try_from(count)?,
        })
    }

    /// One line: `median 1.23 ms (p90 …, min …, max …, n = 20)`.
    pub fn line(&self) -> String {
        format!(
            "median {} (p90 {}, min {}, max {}, n = {})",
            fmt(self.p50),
            fmt(self.p90),
            fmt(self.min),
            fmt(self.max),
            self.count
        )
    }
}

/// The `q` quantile (0..=1) of sorted samples, interpolated like numpy's default.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let last = sorted.len() - 1;
    let rank = q * last as f64;
    let low = rank.floor() as usize;
    let high = rank.ceil() as usize;
    let weight = rank - low as f64;
    let low_s = sorted[low].as_secs_f64();
    let high_s = sorted[high.min(last)].as_secs_f64();
    Duration::from_secs_f64(low_s + (high_s - low_s) * weight)
}

/// A duration in the unit that reads best: µs below 1 ms, ms below 10 s, else s.
pub fn fmt(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 0.001 {
        format!("{:.1} µs", secs * 1e6)
    } else if secs < 10.0 {
        format!("{:.2} ms", secs * 1e3)
    } else {
        format!("{secs:.2} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn median_of_an_even_count_is_the_middle_pair_average() {
        let s = Summary::of(&[ms(4), ms(1), ms(3), ms(2)]).unwrap();
        assert_eq!(s.p50, Duration::from_micros(2500));
        assert_eq!(s.min, ms(1));
        assert_eq!(s.max, ms(4));
        assert_eq!(s.mean, Duration::from_micros(2500));
    }

    #[test]
    fn an_empty_sample_is_refused() {
        assert!(Summary::of(&[]).is_err());
    }

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(fmt(Duration::from_micros(250)), "250.0 µs");
        assert_eq!(fmt(ms(12)), "12.00 ms");
        assert_eq!(fmt(Duration::from_secs(42)), "42.00 s");
    }
}
