//! Latency histograms and the summary `tally bench` prints (text or one JSON object).

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Latencies are recorded in microseconds, from 1 µs to 10 minutes, to 3 significant digits.
const HIGHEST_US: u64 = 600_000_000;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("valid histogram bounds")
}

/// What one client task saw: a histogram of successful requests per operation kind, and
/// failures by gRPC code.
pub struct Recorder {
    pub ops: Vec<Histogram<u64>>,
    pub errors: BTreeMap<String, u64>,
}

impl Recorder {
    pub fn new(kinds: usize) -> Self {
        Self { ops: (0..kinds).map(|_| new_histogram()).collect(), errors: BTreeMap::new() }
    }

    pub fn success(&mut self, kind: usize, latency: Duration) {
        let us = (latency.as_micros() as u64).clamp(1, HIGHEST_US);
        self.ops[kind].record(us).expect("clamped into the histogram's range");
    }

    pub fn error(&mut self, code: String) {
        *self.errors.entry(code).or_default() += 1;
    }

    pub fn merge(&mut self, other: Recorder) {
        for (mine, theirs) in self.ops.iter_mut().zip(other.ops) {
            mine.add(theirs).expect("histograms with equal bounds");
        }
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
    }

    pub fn successes(&self) -> u64 {
        self.ops.iter().map(|h| h.len()).sum()
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// The latency fields, in milliseconds.
pub fn latency_json(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({"min": null, "mean": null, "p50": null, "p90": null, "p99": null, "p999": null, "max": null});
    }
    json!({
        "min": ms(h.min()),
        "mean": h.mean() / 1000.0,
        "p50": ms(h.value_at_quantile(0.50)),
        "p90": ms(h.value_at_quantile(0.90)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p999": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
    })
}

pub fn latency_line(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no successful requests".into();
    }
    format!(
        "p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  (mean {:.3})",
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.90)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
        h.mean() / 1000.0,
    )
}

/// Everything about a finished run that the report shows.
pub struct Summary<'a> {
    pub workload: &'a str,
    /// One line describing the run, for the text report.
    pub headline: String,
    pub params: Value,
    pub kinds: &'a [&'a str],
    pub recorder: Recorder,
    pub elapsed: Duration,
}

impl Summary<'_> {
    fn overall(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for h in &self.recorder.ops {
            all.add(h).expect("histograms with equal bounds");
        }
        all
    }

    pub fn to_json(&self) -> Value {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let successes = self.recorder.successes();
        let mut ops = serde_json::Map::new();
        for (kind, h) in self.kinds.iter().zip(&self.recorder.ops) {
            ops.insert(
                kind.to_string(),
                json!({"successes": h.len(), "throughput": h.len() as f64 / secs, "latency_ms": latency_json(h)}),
            );
        }
        json!({
            "workload": self.workload,
            "params": self.params,
            "successes": successes,
            "errors": self.recorder.error_count(),
            "error_codes": self.recorder.errors,
            "elapsed_s": secs,
            "throughput": successes as f64 / secs,
            "latency_ms": latency_json(&self.overall()),
            "ops": ops,
        })
    }

    pub fn to_text(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let successes = self.recorder.successes();
        let mut out = format!("{}: {}\n", self.workload, self.headline);
        out += &format!("  throughput     {:.1} req/s  ({} ok in {:.3} s)\n", successes as f64 / secs, successes, secs);
        out += &format!("  latency ms     {}\n", latency_line(&self.overall()));
        if self.kinds.len() > 1 {
            for (kind, h) in self.kinds.iter().zip(&self.recorder.ops) {
                out += &format!("  {kind:<13}  {:.1} req/s  {}\n", h.len() as f64 / secs, latency_line(h));
            }
        }
        out += &format!("  errors         {}", self.recorder.error_count());
        if !self.recorder.errors.is_empty() {
            let codes: Vec<String> = self.recorder.errors.iter().map(|(c, n)| format!("{c}: {n}")).collect();
            out += &format!("  ({})", codes.join(", "));
        }
        out
    }
}
