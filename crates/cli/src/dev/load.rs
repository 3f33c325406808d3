//! Writes through the members' client APIs: one put (`POST /dev/put`), and a background load of
//! so many puts a second spread over the members (`POST /dev/load`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tally_proto::etcdserverpb::kv_client::KvClient;
use tally_proto::etcdserverpb::PutRequest;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

/// How long one put may take on one member before another is tried.
const PUT_WAIT: Duration = Duration::from_secs(2);
/// How long `POST /dev/put` keeps trying members (an election may be under way).
const PUT_TRIES_MAX: Duration = Duration::from_secs(5);
/// Most puts of the load in flight at once; beyond that the load skips puts rather than queue
/// them (a cluster without a leader must not pile up work).
const LOAD_IN_FLIGHT_MAX: usize = 256;
/// The fastest load accepted, in puts a second.
pub const LOAD_RATE_MAX: u64 = 10_000;
const LOAD_TICK: Duration = Duration::from_millis(10);

/// A channel to a member's client URL that connects on first use and reconnects after the
/// member restarts.
pub fn channel(url: &str) -> Channel {
    Endpoint::from_shared(url.to_string())
        .expect("a member's client URL")
        .connect_timeout(Duration::from_millis(500))
        .timeout(PUT_WAIT)
        .connect_lazy()
}

/// One put through `channel`: the revision it made.
pub async fn put(channel: Channel, key: Vec<u8>, value: Vec<u8>) -> Result<i64, String> {
    let request = PutRequest { key, value, ..Default::default() };
    match tokio::time::timeout(PUT_WAIT, KvClient::new(channel).put(request)).await {
        Ok(Ok(response)) => Ok(response.into_inner().header.map_or(0, |h| h.revision)),
        Ok(Err(status)) => Err(status.message().to_string()),
        Err(_) => Err(format!("no answer within {PUT_WAIT:?}")),
    }
}

/// Puts `key` through one member after another (`targets()` says which, best first, each time
/// a round starts) until one succeeds or `PUT_TRIES_MAX` has passed.
pub async fn put_anywhere(
    targets: impl Fn() -> Vec<(String, Channel)>,
    key: &[u8],
    value: &[u8],
) -> Result<i64, String> {
    let deadline = Instant::now() + PUT_TRIES_MAX;
    let mut last_error = "no member is running".to_string();
    loop {
        for (name, channel) in targets() {
            match put(channel, key.to_vec(), value.to_vec()).await {
                Ok(revision) => return Ok(revision),
                Err(e) => last_error = format!("{name}: {e}"),
            }
            if Instant::now() >= deadline {
                return Err(last_error);
            }
        }
        if Instant::now() >= deadline {
            return Err(last_error);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The background load's state, as `/ui/cluster` and `POST /dev/load` report it.
#[derive(Default)]
pub struct Load {
    rate: AtomicU64,
    written: Arc<AtomicU64>,
    running: AtomicBool,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Keys are `load/<n>`, n counting on across runs of the load.
    next_key: Arc<AtomicU64>,
}

impl Load {
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "running": self.running.load(Ordering::Relaxed),
            "rate": self.rate.load(Ordering::Relaxed),
            "written": self.written.load(Ordering::Relaxed),
        })
    }

    /// Starts the load at `rate` puts a second, or changes its rate; 0 stops it. `targets()`
    /// gives the members to write through; each put goes to the next one.
    pub fn set(self: &Arc<Self>, rate: u64, targets: impl Fn() -> Vec<(String, Channel)> + Send + 'static) {
        let rate = rate.min(LOAD_RATE_MAX);
        let mut task = self.task.lock().expect("load lock");
        self.rate.store(rate, Ordering::Relaxed);
        if rate == 0 {
            if let Some(task) = task.take() {
                task.abort();
            }
            self.running.store(false, Ordering::Relaxed);
            return;
        }
        if task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        self.written.store(0, Ordering::Relaxed);
        self.running.store(true, Ordering::Relaxed);
        *task = Some(tokio::spawn(self.clone().write(targets)));
    }

    async fn write(self: Arc<Self>, targets: impl Fn() -> Vec<(String, Channel)>) {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let mut ticks = tokio::time::interval(LOAD_TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Puts due are counted from the last change of rate.
        let (mut rate, mut since, mut issued_before, mut issued) = (0, Instant::now(), 0u64, 0u64);
        let mut next_target = 0usize;
        loop {
            ticks.tick().await;
            let now_rate = self.rate.load(Ordering::Relaxed);
            if now_rate != rate {
                (rate, since, issued_before) = (now_rate, Instant::now(), issued);
            }
            let due = issued_before + (rate as f64 * since.elapsed().as_secs_f64()) as u64;
            if due <= issued {
                continue;
            }
            let members = targets();
            if members.is_empty() {
                issued = due;
                continue;
            }
            while issued < due {
                issued += 1;
                if in_flight.load(Ordering::Relaxed) >= LOAD_IN_FLIGHT_MAX {
                    continue;
                }
                next_target = (next_target + 1) % members.len();
                let channel = members[next_target].1.clone();
                let n = self.next_key.fetch_add(1, Ordering::Relaxed);
                let (written, in_flight) = (self.written.clone(), in_flight.clone());
                in_flight.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let value = format!("value {n}").into_bytes();
                    if put(channel, format!("load/{n}").into_bytes(), value).await.is_ok() {
                        written.fetch_add(1, Ordering::Relaxed);
                    }
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                });
            }
        }
    }
}
