//! The member's metrics under etcd's names, so etcd's dashboards and alerts work unchanged:
//! read when scraped and encoded in the Prometheus text format etcd serves (prometheus-client's
//! encoder).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tally_mvcc::StateMachine;

use super::process;
use crate::client::grpc_metrics::GrpcMetrics;
use crate::node::driver::Shared;
use crate::peer::traffic::PeerTraffic;
use tally_node::histogram::AtomicHistogram;
use tally_node::metrics::Metrics;

/// What a scrape reads: the counters, the state machine for its size, the peers' traffic.
pub struct Sources {
    pub shared: Arc<Shared>,
    pub grpc: Arc<GrpcMetrics>,
    pub sm: Arc<RwLock<StateMachine>>,
    pub traffic: Arc<PeerTraffic>,
    pub quota_bytes: u64,
}

struct Scrape(Sources);

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scrape")
    }
}

/// The registry a member's `/metrics` encodes.
pub fn registry(sources: Sources) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(sources)));
    registry
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> Result<(), std::fmt::Error> {
    ConstGauge::new(value).encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn float_gauge(e: &mut DescriptorEncoder, name: &str, help: &str, value: f64) -> Result<(), std::fmt::Error> {
    ConstGauge::new(value).encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// A counter; the encoder appends `_total` to `name`.
fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
    ConstCounter::new(value).encode(e.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn histogram(e: &mut DescriptorEncoder, name: &str, help: &str, h: &AtomicHistogram) -> Result<(), std::fmt::Error> {
    h.encode(e.encode_descriptor(name, help, None, MetricType::Histogram)?)
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Sources { shared, grpc, sm, traffic, quota_bytes } = &self.0;
        let m = &shared.metrics;
        let load = |a: &AtomicI64| a.load(Ordering::Relaxed);
        let count = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (db_bytes, keys) = {
            let sm = sm.read().expect("sm lock");
            (sm.size_bytes() as i64, sm.store.live_keys() as i64)
        };
        gauge(
            &mut e,
            "etcd_server_has_leader",
            "Whether or not a leader exists. 1 is existence, 0 is not.",
            load(&m.has_leader),
        )?;
        gauge(
            &mut e,
            "etcd_server_is_leader",
            "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            load(&m.is_leader),
        )?;
        counter(
            &mut e,
            "etcd_server_leader_changes_seen",
            "The number of leader changes seen.",
            count(&m.leader_changes),
        )?;
        gauge(
            &mut e,
            "etcd_server_proposals_committed_total",
            "The total number of consensus proposals committed.",
            count(&m.proposals_committed) as i64,
        )?;
        gauge(
            &mut e,
            "etcd_server_proposals_applied_total",
            "The total number of consensus proposals applied.",
            count(&m.proposals_applied) as i64,
        )?;
        gauge(
            &mut e,
            "etcd_server_proposals_pending",
            "The current number of pending proposals to commit.",
            load(&m.proposals_pending),
        )?;
        counter(
            &mut e,
            "etcd_server_proposals_failed",
            "The total number of failed proposals seen.",
            count(&m.proposals_failed),
        )?;
        gauge(
            &mut e,
            "etcd_server_quota_backend_bytes",
            "Current backend storage quota size in bytes.",
            *quota_bytes as i64,
        )?;
        histogram(
            &mut e,
            "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by WAL.",
            &m.wal_fsync,
        )?;
        histogram(
            &mut e,
            "etcd_disk_backend_commit_duration_seconds",
            "The latency distributions of commit called by backend.",
            &m.snapshot_save,
        )?;
        gauge(
            &mut e,
            "etcd_mvcc_db_total_size_in_bytes",
            "Total size of the underlying database physically allocated in bytes.",
            db_bytes,
        )?;
        gauge(
            &mut e,
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "Total size of the underlying database logically in use in bytes.",
            db_bytes,
        )?;
        gauge(&mut e, "etcd_debugging_mvcc_keys_total", "Total number of keys.", keys)?;
        counter(
            &mut e,
            "tally_snapshot_saved_bytes",
            "Bytes of state machine snapshots written by this member.",
            count(&m.snapshot_bytes),
        )?;
        counter(
            &mut e,
            "tally_fast_elections",
            "Early campaigns started because the leader's connection was reset (its process died).",
            count(&m.fast_elections),
        )?;
        counter(
            &mut e,
            "tally_read_index_rounds",
            "ReadIndex rounds this member started for linearizable reads.",
            count(&m.read_index_rounds),
        )?;
        counter(
            &mut e,
            "tally_read_index_reads",
            "Linearizable reads confirmed by those rounds (reads per round: batching).",
            count(&m.read_index_reads),
        )?;
        counter(
            &mut e,
            "tally_zk_start_overs",
            "Times a ZooKeeper connection's writes were proposed again under a new client id, the \
             exactly-once table having forgotten the connection while it was idle.",
            count(&m.zk_start_overs),
        )?;
        grpc.encode(&mut e)?;
        peer_traffic(&mut e, traffic)?;
        peer_round_trips(&mut e, m)?;
        let p = process::read();
        float_gauge(&mut e, "process_resident_memory_bytes", "Resident memory size in bytes.", p.resident_bytes)?;
        float_gauge(&mut e, "process_virtual_memory_bytes", "Virtual memory size in bytes.", p.virtual_bytes)?;
        float_gauge(&mut e, "process_open_fds", "Number of open file descriptors.", p.open_fds)?;
        float_gauge(
            &mut e,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            p.start_time_seconds,
        )?;
        ConstCounter::new(p.cpu_seconds).encode(e.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            MetricType::Counter,
        )?)?;
        Ok(())
    }
}

/// The Prometheus text (version 0.0.4) of `registry`, with its content type.
pub fn encode(registry: &Registry) -> (String, &'static str) {
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, registry).expect("writing to a String");
    (text, prometheus_client::encoding::prometheus_text::CONTENT_TYPE)
}

/// etcd's per-peer counters, labelled with the peer's member id in hex as etcd labels them.
fn peer_traffic(e: &mut DescriptorEncoder, traffic: &PeerTraffic) -> Result<(), std::fmt::Error> {
    let family = |e: &mut DescriptorEncoder, name, help, label: &'static str, rows: Vec<(u64, u64)>| {
        let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (peer, value) in rows {
            let id = format!("{peer:x}");
            ConstCounter::new(value).encode(family.encode_family(&[(label, id.as_str())])?)?;
        }
        Ok::<(), std::fmt::Error>(())
    };
    let (sent, received, failures) = (traffic.sent_bytes(), traffic.received_bytes(), traffic.sent_failures());
    family(e, "etcd_network_peer_sent_bytes", "The total number of bytes sent to peers.", "To", sent)?;
    family(e, "etcd_network_peer_received_bytes", "The total number of bytes received from peers.", "From", received)?;
    family(e, "etcd_network_peer_sent_failures", "The total number of send failures from peers.", "To", failures)
}

fn peer_round_trips(e: &mut DescriptorEncoder, m: &Metrics) -> Result<(), std::fmt::Error> {
    let histograms: Vec<_> =
        m.peer_round_trip.lock().expect("metrics lock").iter().map(|(p, h)| (*p, h.clone())).collect();
    let help = "Round-Trip-Time histogram between peers";
    let mut family =
        e.encode_descriptor("etcd_network_peer_round_trip_time_seconds", help, None, MetricType::Histogram)?;
    for (peer, histogram) in histograms {
        let id = format!("{peer:x}");
        histogram.encode(family.encode_family(&[("To", id.as_str())])?)?;
    }
    Ok(())
}
