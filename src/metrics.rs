//! Prometheus metrics (`GET /metrics`, text exposition format), kept by hand: a few counters
//! and histograms with atomic cells.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket upper bounds in seconds (0.25 ms … 10 s).
const BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A cumulative histogram of durations.
#[derive(Debug)]
pub struct Histogram {
    counts: Vec<AtomicU64>,
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: BUCKETS.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, cell) in BUCKETS.iter().zip(&self.counts) {
            if secs <= *bound {
                cell.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_nanos
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, cell) in BUCKETS.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                cell.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// The server's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Per reply: total time minus the time spent waiting on the provider.
    pub reply_overhead: Histogram,
    /// Per reply: time from the request to the first durable chunk sent to readers.
    pub time_to_first_chunk: Histogram,
    /// Per live chunk batch and reader: from its commit until the reader hands it to the
    /// connection.
    pub commit_to_send: Histogram,
    pub replies_completed: AtomicU64,
    pub replies_failed: AtomicU64,
    pub replies_stopped: AtomicU64,
    pub chunk_batches: AtomicU64,
}

impl Metrics {
    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.reply_overhead.render(
            &mut out,
            "threadline_reply_overhead_seconds",
            "Reply time not spent waiting on the provider (total minus provider wait).",
        );
        self.time_to_first_chunk.render(
            &mut out,
            "threadline_time_to_first_chunk_seconds",
            "Time from the chat request to the first durable chunk of its reply.",
        );
        self.commit_to_send.render(
            &mut out,
            "threadline_commit_to_send_seconds",
            "From a chunk batch's commit until a live reader writes it to its connection.",
        );
        let _ = writeln!(
            out,
            "# HELP threadline_replies_total Replies ended, by status.\n# TYPE threadline_replies_total counter"
        );
        for (status, cell) in [
            ("completed", &self.replies_completed),
            ("failed", &self.replies_failed),
            ("stopped", &self.replies_stopped),
        ] {
            let _ = writeln!(
                out,
                "threadline_replies_total{{status=\"{status}\"}} {}",
                cell.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP threadline_chunk_batches_total Durable chunk batches appended.\n# TYPE threadline_chunk_batches_total counter\nthreadline_chunk_batches_total {}",
            self.chunk_batches.load(Ordering::Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_counts_cumulatively_and_renders_prometheus_text() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        let mut out = String::new();
        h.render(&mut out, "x_seconds", "help");
        assert!(out.contains("x_seconds_bucket{le=\"0.0005\"} 1"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"0.005\"} 2"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"+Inf\"} 2"), "{out}");
        assert!(out.contains("x_seconds_count 2"), "{out}");
    }
}
