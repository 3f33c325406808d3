//! Linearizable reads on their way to the driver's next ReadIndex.
//!
//! A read wakes the driver thread only when nothing else would bring the driver back to this
//! queue soon. While a round of reads is in flight, its answer (a peer message) wakes the
//! driver anyway, and every read queued meanwhile goes into the next round: it could not have
//! joined the round in flight, which started before it arrived. Waking the driver for each
//! read cost a futex call and a context switch for every few reads under load. If the round's
//! answer is lost, the driver still takes the queue on every tick (10 ms) until it answers the
//! lost round `Lost` (`reads.rs`).

use std::sync::Mutex;

use tokio::sync::oneshot;

use tally_node::ReadOutcome;

#[derive(Default)]
pub struct ReadQueue {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    waiting: Vec<oneshot::Sender<ReadOutcome>>,
    /// The driver will take `waiting` without a wake: it was woken already, or it has a round
    /// of reads in flight whose answer will wake it.
    driver_will_look: bool,
    /// The driver is gone: a read is dropped at once, so that its caller hears so.
    closed: bool,
}

impl ReadQueue {
    /// Queues a read. True if the caller must wake the driver.
    pub fn push(&self, reply: oneshot::Sender<ReadOutcome>) -> bool {
        let mut state = self.state.lock().expect("read queue lock");
        if state.closed {
            return false;
        }
        state.waiting.push(reply);
        !std::mem::replace(&mut state.driver_will_look, true)
    }

    /// Driver: the reads queued since the last call, to start a round with.
    pub fn take(&self) -> Vec<oneshot::Sender<ReadOutcome>> {
        std::mem::take(&mut self.state.lock().expect("read queue lock").waiting)
    }

    /// Driver, before it blocks: says whether it will come back without a wake (`rounds_in_flight`).
    /// False if reads arrived since the last `take` without waking it: take them before blocking.
    pub fn before_blocking(&self, rounds_in_flight: bool) -> bool {
        let mut state = self.state.lock().expect("read queue lock");
        if !state.waiting.is_empty() {
            return false;
        }
        state.driver_will_look = rounds_in_flight;
        true
    }

    /// Driver, when it stops: fails the queued reads and every later one.
    pub fn close(&self) {
        let mut state = self.state.lock().expect("read queue lock");
        state.closed = true;
        state.waiting.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read() -> oneshot::Sender<ReadOutcome> {
        oneshot::channel().0
    }

    #[test]
    fn only_the_first_read_after_an_idle_driver_wakes_it() {
        let queue = ReadQueue::default();
        assert!(queue.push(read()));
        assert!(!queue.push(read()));
        assert_eq!(queue.take().len(), 2);
        // A round is in flight: reads queue silently until its answer brings the driver back.
        assert!(queue.before_blocking(true));
        assert!(!queue.push(read()));
        assert_eq!(queue.take().len(), 1);
        // Nothing in flight any more: the next read must wake the driver.
        assert!(queue.before_blocking(false));
        assert!(queue.push(read()));
    }

    #[test]
    fn a_read_queued_during_the_drivers_turn_keeps_it_from_blocking() {
        let queue = ReadQueue::default();
        assert!(queue.push(read()));
        assert_eq!(queue.take().len(), 1);
        // Arrives after the take, sees the driver awake, does not wake it.
        assert!(!queue.push(read()));
        assert!(!queue.before_blocking(false));
        assert_eq!(queue.take().len(), 1);
        assert!(queue.before_blocking(false));
    }

    #[test]
    fn reads_fail_once_the_driver_is_gone() {
        let queue = ReadQueue::default();
        let (queued, mut queued_answer) = oneshot::channel();
        queue.push(queued);
        queue.close();
        assert!(queued_answer.try_recv().is_err());
        let (late, mut late_answer) = oneshot::channel();
        assert!(!queue.push(late));
        assert!(late_answer.try_recv().is_err());
    }
}
