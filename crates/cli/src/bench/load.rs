//! The load generator's client threads. Each runs its own single-threaded tokio runtime with
//! its share of the connections and of the clients (as wrk and h2load do), so a response wakes
//! only tasks on the thread that reads it and the requests a thread's tasks queue in one turn
//! leave in one write; clients in a work-stealing runtime wake each other across threads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::grpc_conn::{Caller, Conn};
use super::stats::Recorder;
use super::{code_name, key_bytes, ClientState, Plan, Rng};

/// Starts `threads` client threads: connection `i` (of `conns`) goes to endpoint
/// `i % endpoints` and belongs to thread `i % threads`, as its connection `i / threads`; client
/// `c` uses connection `c % conns`. Each receiver yields its thread's recorder.
pub(super) fn start_threads(
    load: Load,
    threads: usize,
    endpoints: &[String],
    conns: usize,
    clients: usize,
) -> Vec<oneshot::Receiver<Result<Recorder, String>>> {
    (0..threads)
        .map(|t| {
            let endpoints = (t..conns).step_by(threads).map(|i| endpoints[i % endpoints.len()].clone()).collect();
            // Each client with the index of its connection among this thread's.
            let clients: Vec<(usize, usize)> = (0..clients)
                .map(|c| (c, c % conns))
                .filter(|(_, i)| i % threads == t)
                .map(|(c, i)| (c, i / threads))
                .collect();
            let load = load.clone();
            let (tx, rx) = oneshot::channel();
            std::thread::spawn(move || {
                let result = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt.block_on(load.run_thread(endpoints, clients)),
                    Err(e) => {
                        load.start_line.wait();
                        Err(format!("cannot start a client runtime: {e}"))
                    }
                };
                let _ = tx.send(result);
            });
            rx
        })
        .collect()
}

/// What every client thread shares: the workload, the request counter, progress counts and the start line.
#[derive(Clone)]
pub(super) struct Load {
    pub(super) plan: Arc<Plan>,
    pub(super) next: Arc<AtomicU64>,
    pub(super) done: Arc<AtomicU64>,
    pub(super) failed: Arc<AtomicU64>,
    pub(super) total: u64,
    pub(super) timeout: Duration,
    pub(super) interval: Option<Duration>,
    pub(super) seed: u64,
    pub(super) start_line: Arc<StartLine>,
}

/// Where the client threads wait for each other once connected, so that the run's clock starts
/// when all of them can send.
pub(super) struct StartLine {
    barrier: std::sync::Barrier,
    start: std::sync::OnceLock<Instant>,
}

impl StartLine {
    pub(super) fn new(threads: usize) -> Self {
        Self { barrier: std::sync::Barrier::new(threads), start: std::sync::OnceLock::new() }
    }

    /// Blocks until every thread arrives; then all get the same start time.
    fn wait(&self) -> Instant {
        if self.barrier.wait().is_leader() {
            let _ = self.start.set(Instant::now());
        }
        self.barrier.wait();
        *self.start.get().expect("set by the barrier's leader before the second wait")
    }

    pub(super) fn started(&self) -> Instant {
        *self.start.get().expect("the run has started")
    }
}

impl Load {
    /// One client thread: opens its connections (one per endpoint listed) and runs its clients,
    /// each given with the index of its connection.
    async fn run_thread(self, endpoints: Vec<String>, clients: Vec<(usize, usize)>) -> Result<Recorder, String> {
        let mut conns = Vec::new();
        for endpoint in &endpoints {
            conns.push(Conn::open(endpoint).await);
        }
        // Every thread must reach the start line, even one given a malformed endpoint.
        let start = self.start_line.wait();
        let conns = conns.into_iter().collect::<Result<Vec<_>, _>>()?;
        let mut tasks = Vec::new();
        for (c, at) in clients {
            tasks.push(tokio::spawn(self.clone().client(c, conns[at].caller().await, start)));
        }
        let mut recorder = Recorder::new(self.plan.op_names().len());
        for t in tasks {
            recorder.merge(t.await.map_err(|e| format!("client task failed: {e}"))?);
        }
        Ok(recorder)
    }

    async fn client(self, c: usize, mut kv: Caller, start: Instant) -> Recorder {
        let Load { plan, next, done, failed, total, timeout, interval, seed, .. } = self;
        let mut st = ClientState { rng: Rng::new(seed ^ (c as u64 + 1)), own_key: Vec::new(), version: 0 };
        st.own_key = {
            let mut k = b"txn-".to_vec();
            k.extend(key_bytes(c as u64, plan.key_size));
            k
        };
        let mut rec = Recorder::new(plan.op_names().len());
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= total {
                break;
            }
            let began = match interval {
                Some(every) => {
                    let due = start + every.mul_f64(i as f64);
                    if Instant::now() < due {
                        // tokio's timer fires on whole milliseconds: the time it wakes up late
                        // is the load generator's, so the request's latency starts when it leaves.
                        tokio::time::sleep_until(due).await;
                        Instant::now()
                    } else {
                        // Still busy with earlier requests when this one was due: that wait is
                        // the server's (no coordinated omission).
                        due
                    }
                }
                None => Instant::now(),
            };
            match tokio::time::timeout(timeout, plan.issue(&mut kv, i, &mut st)).await {
                Ok(Ok(kind)) => rec.success(kind, began.elapsed()),
                Ok(Err(status)) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    rec.error(code_name(&status));
                }
                Err(_) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    rec.error("ClientTimeout".into());
                }
            }
            done.fetch_add(1, Ordering::Relaxed);
        }
        rec
    }
}
