//! The driver's linearizable reads, from the ReadIndex they share to their answer.
//!
//! Reads taken from the `ReadQueue` share one ReadIndex, named by a context number. One is in
//! flight at a time: the reads that arrive meanwhile wait for its answer and then share the next
//! one, as the leader's heartbeat rounds do, so that under load each request and answer (two
//! messages, four thread wake-ups) serves more reads. A ReadIndex unanswered for `STALE_AFTER`
//! (lost with a message) no longer holds the next one back.
//!
//! When the core confirms a ReadIndex, its batch waits until this member has applied the
//! confirmed index, and then every caller is told to read its own state. A batch whose ReadIndex
//! or whose apply does not come within `ATTEMPT_TIMEOUT` (the request or answer was lost with a
//! message or a leader, or this member cannot catch up) is answered `Lost`, and its callers ask
//! again. Keeping that deadline here spares every read a timer of its own on the gRPC side.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tally_raft::Index;

use crate::{ReadOutcome, Reply};

/// How long one ReadIndex may take, from the request to the applied index.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a ReadIndex in flight holds the next one back: far beyond a round trip to the
/// leader, even one behind its fsync.
const STALE_AFTER: Duration = Duration::from_millis(100);

struct Batch<W> {
    sent: Instant,
    waiters: Vec<W>,
}

impl<W: Reply<ReadOutcome>> Batch<W> {
    /// Answers every caller; the batch is left empty.
    fn answer(&mut self, outcome: impl Fn() -> ReadOutcome) {
        for w in self.waiters.drain(..) {
            w.send(outcome());
        }
    }
}

/// Linearizable reads, each waiting as a `W` for its answer.
pub struct Reads<W> {
    /// Taken from the queue this turn, to share the next ReadIndex.
    unsent: Vec<W>,
    /// Waiting for the core to confirm their ReadIndex, by context.
    by_ctx: BTreeMap<u64, Batch<W>>,
    /// Confirmed, waiting for this member to apply the index.
    confirmed: Vec<(Index, Batch<W>)>,
    next_ctx: u64,
}

impl<W> Default for Reads<W> {
    fn default() -> Self {
        Self { unsent: Vec::new(), by_ctx: BTreeMap::new(), confirmed: Vec::new(), next_ctx: 0 }
    }
}

impl<W: Reply<ReadOutcome>> Reads<W> {
    pub fn add(&mut self, waiters: Vec<W>) {
        self.unsent.extend(waiters);
    }

    /// Whether an answer is still to come for some batch (it will wake the driver).
    pub fn in_flight(&self) -> bool {
        !self.by_ctx.is_empty() || !self.confirmed.is_empty()
    }

    /// One ReadIndex, through `read_index`, for every read added and not sent yet, unless one
    /// sent less than `STALE_AFTER` ago is still unanswered. If it fails (no leader) the reads
    /// are answered `NoLeader`.
    /// Returns how many reads the round carries (0: none was started).
    pub fn send<E>(&mut self, now: Instant, read_index: impl FnOnce(Bytes) -> Result<(), E>) -> usize {
        let answer_due = self.by_ctx.values().any(|batch| now.duration_since(batch.sent) < STALE_AFTER);
        if self.unsent.is_empty() || answer_due {
            return 0;
        }
        let mut batch = Batch { sent: now, waiters: std::mem::take(&mut self.unsent) };
        self.next_ctx += 1;
        let ctx = self.next_ctx;
        match read_index(Bytes::copy_from_slice(&ctx.to_be_bytes())) {
            Ok(()) => {
                let reads = batch.waiters.len();
                self.by_ctx.insert(ctx, batch);
                reads
            }
            Err(_) => {
                batch.answer(|| ReadOutcome::NoLeader);
                0
            }
        }
    }

    /// The core confirmed the ReadIndex with context `ctx` at `index`.
    pub fn confirm(&mut self, ctx: &[u8], index: Index) {
        let ctx = u64::from_be_bytes(ctx.try_into().unwrap_or([0; 8]));
        if let Some(batch) = self.by_ctx.remove(&ctx) {
            self.confirmed.push((index, batch));
        }
    }

    /// Tells the callers whose confirmed index is applied to read.
    pub fn serve(&mut self, applied: Index) {
        self.confirmed.retain_mut(|(index, batch)| {
            if *index > applied {
                return true;
            }
            // The callers read the state themselves, in parallel, off the driver thread.
            batch.answer(|| ReadOutcome::Ready);
            false
        });
    }

    /// Leadership changed: the reads waiting for a ReadIndex will not get one.
    pub fn fail_unconfirmed(&mut self) {
        for (_, mut batch) in std::mem::take(&mut self.by_ctx) {
            batch.answer(|| ReadOutcome::NoLeader);
        }
    }

    /// Answers `Lost` to the batches sent `ATTEMPT_TIMEOUT` or more before `now`, and forgets
    /// the callers that gave up.
    pub fn expire(&mut self, now: Instant) {
        // Whether the batch still has callers waiting, after the check.
        let settle = |batch: &mut Batch<W>| {
            if now.duration_since(batch.sent) >= ATTEMPT_TIMEOUT {
                batch.answer(|| ReadOutcome::Lost);
            } else {
                batch.waiters.retain(|w| !w.is_closed());
            }
            !batch.waiters.is_empty()
        };
        self.by_ctx.retain(|_, b| settle(b));
        self.confirmed.retain_mut(|(_, b)| settle(b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    type Reads = super::Reads<oneshot::Sender<ReadOutcome>>;

    fn read() -> (oneshot::Sender<ReadOutcome>, oneshot::Receiver<ReadOutcome>) {
        oneshot::channel()
    }

    fn sent_ctx(reads: &mut Reads, now: Instant) -> Bytes {
        let mut sent = None;
        reads.send(now, |ctx| {
            sent = Some(ctx);
            Ok::<(), ()>(())
        });
        sent.expect("a ReadIndex was requested")
    }

    #[test]
    fn a_batch_shares_one_read_index_and_is_served_once_applied() {
        let mut reads = Reads::default();
        let (a, mut a_rx) = read();
        let (b, mut b_rx) = read();
        reads.add(vec![a, b]);
        let now = Instant::now();
        let ctx = sent_ctx(&mut reads, now);
        reads.send(now, |_| -> Result<(), ()> { panic!("nothing left to send") });
        reads.confirm(&ctx, 7);
        reads.serve(6);
        assert!(a_rx.try_recv().is_err(), "index 7 is not applied yet");
        reads.serve(7);
        assert!(matches!(a_rx.try_recv(), Ok(ReadOutcome::Ready)));
        assert!(matches!(b_rx.try_recv(), Ok(ReadOutcome::Ready)));
        assert!(!reads.in_flight());
    }

    #[test]
    fn without_a_leader_the_batch_is_answered_no_leader() {
        let mut reads = Reads::default();
        let (a, mut a_rx) = read();
        reads.add(vec![a]);
        reads.send(Instant::now(), |_| Err("no leader"));
        assert!(matches!(a_rx.try_recv(), Ok(ReadOutcome::NoLeader)));
        assert!(!reads.in_flight());
    }

    /// One read, its ReadIndex requested at `start`.
    fn one_read_sent(start: Instant) -> (Reads, oneshot::Receiver<ReadOutcome>, Bytes) {
        let mut reads = Reads::default();
        let (a, a_rx) = read();
        reads.add(vec![a]);
        let ctx = sent_ctx(&mut reads, start);
        (reads, a_rx, ctx)
    }

    #[test]
    fn a_read_index_that_never_comes_is_answered_lost_after_the_attempt_timeout() {
        let start = Instant::now();
        let (mut reads, mut a_rx, _) = one_read_sent(start);
        reads.expire(start + ATTEMPT_TIMEOUT - Duration::from_millis(1));
        assert!(a_rx.try_recv().is_err(), "still within its attempt");
        assert!(reads.in_flight());
        reads.expire(start + ATTEMPT_TIMEOUT);
        assert!(matches!(a_rx.try_recv(), Ok(ReadOutcome::Lost)));
        assert!(!reads.in_flight(), "a lost round must not keep the read queue from waking the driver");
    }

    #[test]
    fn a_confirmed_index_never_applied_is_answered_lost_too() {
        let start = Instant::now();
        let (mut reads, mut a_rx, ctx) = one_read_sent(start);
        reads.confirm(&ctx, 9);
        reads.serve(3);
        reads.expire(start + ATTEMPT_TIMEOUT);
        assert!(matches!(a_rx.try_recv(), Ok(ReadOutcome::Lost)));
        assert!(!reads.in_flight());
    }

    #[test]
    fn callers_that_gave_up_are_forgotten() {
        let now = Instant::now();
        let (mut reads, a_rx, _) = one_read_sent(now);
        drop(a_rx);
        reads.expire(now);
        assert!(!reads.in_flight());
    }

    #[test]
    fn reads_wait_for_the_read_index_in_flight_and_then_share_the_next() {
        let start = Instant::now();
        let (mut reads, mut a_rx, first) = one_read_sent(start);
        let (b, mut b_rx) = read();
        let (c, _c_rx) = read();
        reads.add(vec![b]);
        reads.send(start, |_| -> Result<(), ()> { panic!("the first ReadIndex is still in flight") });
        reads.add(vec![c]);
        reads.confirm(&first, 4);
        let second = sent_ctx(&mut reads, start);
        reads.confirm(&second, 4);
        reads.serve(4);
        assert!(matches!(a_rx.try_recv(), Ok(ReadOutcome::Ready)));
        assert!(matches!(b_rx.try_recv(), Ok(ReadOutcome::Ready)));
    }

    #[test]
    fn an_unanswered_read_index_holds_the_next_back_only_until_it_is_stale() {
        let start = Instant::now();
        let (mut reads, _a_rx, _) = one_read_sent(start);
        let (b, _b_rx) = read();
        reads.add(vec![b]);
        reads.send(start + STALE_AFTER - Duration::from_millis(1), |_| -> Result<(), ()> { panic!("not stale yet") });
        sent_ctx(&mut reads, start + STALE_AFTER);
    }

    #[test]
    fn a_change_of_leader_fails_the_unconfirmed_batches_only() {
        let mut reads = Reads::default();
        let (a, mut a_rx) = read();
        let (b, mut b_rx) = read();
        let now = Instant::now();
        reads.add(vec![a]);
        let confirmed = sent_ctx(&mut reads, now);
        reads.confirm(&confirmed, 5);
        reads.add(vec![b]);
        sent_ctx(&mut reads, now + STALE_AFTER);
        reads.fail_unconfirmed();
        assert!(matches!(b_rx.try_recv(), Ok(ReadOutcome::NoLeader)));
        assert!(a_rx.try_recv().is_err());
        reads.serve(5);
        assert!(matches!(a_rx.try_recv(), Ok(ReadOutcome::Ready)));
    }
}
