//! A Prometheus histogram updated with atomics only (prometheus-client's takes a mutex per
//! observation), for durations measured on the driver thread and the request path.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

#[derive(Debug)]
pub struct AtomicHistogram {
    /// Upper bounds of the buckets, in seconds, ascending.
    bounds: Vec<f64>,
    /// Observations per bucket (not cumulative); the last one counts those above every bound.
    counts: Vec<AtomicU64>,
    /// Sum of the observations in nanoseconds.
    sum_nanos: AtomicU64,
}

impl AtomicHistogram {
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> Self {
        let bounds: Vec<f64> = bounds.into_iter().collect();
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Self { bounds, counts, sum_nanos: AtomicU64::new(0) }
    }

    /// etcd's buckets for disk durations: 1 ms doubling to about 8 s.
    pub fn disk_seconds() -> Self {
        Self::new((0..14).map(|i| 0.001 * f64::from(1u32 << i)))
    }

    /// etcd's buckets for peer round trips: 0.1 ms doubling to about 3.3 s.
    pub fn round_trip_seconds() -> Self {
        Self::new((0..16).map(|i| 0.0001 * f64::from(1u32 << i)))
    }

    pub fn observe(&self, elapsed: std::time::Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = self.bounds.partition_point(|&bound| bound < seconds);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }

    /// (sum in seconds, count, (bound, count) per bucket) as read now; the encoder makes the
    /// bucket counts cumulative.
    fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let buckets: Vec<(f64, u64)> = self
            .counts
            .iter()
            .enumerate()
            .map(|(i, count)| (self.bounds.get(i).copied().unwrap_or(f64::INFINITY), count.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        (self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9, count, buckets)
    }
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.snapshot();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = AtomicHistogram::new([0.001, 0.01]);
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(1));
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_secs(1));
        let (sum, count, buckets) = h.snapshot();
        assert_eq!(count, 4);
        assert_eq!(buckets, vec![(0.001, 2), (0.01, 1), (f64::INFINITY, 1)]);
        assert!((sum - 1.0065).abs() < 1e-9);
    }

    #[test]
    fn the_text_format_has_cumulative_buckets() {
        let h = AtomicHistogram::new([0.001, 0.01]);
        for ms in [0, 1, 5, 1000] {
            h.observe(Duration::from_millis(ms));
        }
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("d", "help", h);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        for line in ["d_bucket{le=\"0.001\"} 2", "d_bucket{le=\"0.01\"} 3", "d_bucket{le=\"+Inf\"} 4", "d_count 4"] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
