//! The member's event stream: the driver publishes the node's observations, each encoded once,
//! to every open `/ui/events` stream. Publishing never waits: each stream has a bounded buffer,
//! and one that falls behind loses the oldest events and is told how many (`dropped`). Nothing
//! is encoded while no stream is open. Messages are sampled (a token bucket refilled at
//! [`MESSAGES_PER_SECOND`], so the ones shown are spread over the second rather than the first
//! hundred of it), so a busy leader's thousands of appends a second cost the driver and the page
//! little.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tally_node::observe::{NodeView, Observation};
use tally_raft::NodeId;
use tokio::sync::broadcast;

use super::json;

/// Events a stream may fall behind by before it loses the oldest.
const STREAM_BUFFER: usize = 4096;
/// `msg` events sent per second; the others are counted in a `sampled` event once a second.
pub const MESSAGES_PER_SECOND: u32 = 100;
/// Messages sent at once after a quiet spell (an election's votes all show).
const MESSAGE_BURST: f64 = 20.0;
/// How often open streams get the node's whole state.
pub const VIEW_INTERVAL: Duration = Duration::from_millis(200);

/// Shared by the driver (which publishes) and the HTTP side (which subscribes).
pub struct UiEvents {
    id: NodeId,
    name: String,
    sender: broadcast::Sender<Arc<str>>,
    /// The latest view, sent first to a new stream.
    latest_view: Mutex<Option<Arc<str>>>,
}

impl UiEvents {
    pub fn new(id: NodeId, name: String) -> Arc<Self> {
        let (sender, _) = broadcast::channel(STREAM_BUFFER);
        Arc::new(Self { id, name, sender, latest_view: Mutex::new(None) })
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Whether any stream is open.
    pub fn watched(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// A new stream: its first events (hello, the latest view) and the live ones.
    pub fn subscribe(&self) -> (Vec<Arc<str>>, broadcast::Receiver<Arc<str>>) {
        let receiver = self.sender.subscribe();
        let mut first = vec![Arc::from(json::hello(now_ms(), self.id, &self.name))];
        first.extend(self.latest_view.lock().expect("view lock").clone());
        (first, receiver)
    }

    fn send(&self, event: String) {
        // No receiver: nobody watches, nothing to do.
        let _ = self.sender.send(Arc::from(event));
    }
}

/// The driver's side: encodes, samples and publishes.
pub struct UiPublisher {
    events: Arc<UiEvents>,
    /// Messages that may be sent now, and when the bucket was last refilled.
    tokens: f64,
    refilled: Instant,
    /// Messages left out since the last `sampled` event, sent at `sampled_at`.
    sampled_out: u64,
    sampled_at: Instant,
    next_view: Instant,
}

impl UiPublisher {
    pub fn new(events: Arc<UiEvents>) -> Self {
        let now = Instant::now();
        Self { events, tokens: MESSAGE_BURST, refilled: now, sampled_out: 0, sampled_at: now, next_view: now }
    }

    pub fn watched(&self) -> bool {
        self.events.watched()
    }

    pub fn publish(&mut self, observation: &Observation) {
        if matches!(observation, Observation::Sent { .. }) && !self.take_token(Instant::now()) {
            return;
        }
        self.events.send(json::observation(now_ms(), observation));
    }

    /// Whether a message may be shown now; counts the ones left out, and says so once a second.
    fn take_token(&mut self, now: Instant) -> bool {
        let refill = now.duration_since(self.refilled).as_secs_f64() * f64::from(MESSAGES_PER_SECOND);
        self.tokens = (self.tokens + refill).min(MESSAGE_BURST);
        self.refilled = now;
        if self.sampled_out > 0 && now.duration_since(self.sampled_at) >= Duration::from_secs(1) {
            self.events.send(json::counted("sampled", now_ms(), std::mem::take(&mut self.sampled_out)));
            self.sampled_at = now;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return true;
        }
        if self.sampled_out == 0 {
            self.sampled_at = now;
        }
        self.sampled_out += 1;
        false
    }

    /// Whether the next view is due (every [`VIEW_INTERVAL`] while anyone watches).
    pub fn view_due(&self, now: Instant) -> bool {
        now >= self.next_view && self.watched()
    }

    pub fn publish_view(&mut self, view: &NodeView, now: Instant) {
        self.next_view = now + VIEW_INTERVAL;
        let encoded: Arc<str> = Arc::from(json::view(now_ms(), view));
        *self.events.latest_view.lock().expect("view lock") = Some(encoded.clone());
        let _ = self.events.sender.send(encoded);
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_node::observe::Sent;
    use tokio::sync::broadcast::error::TryRecvError;

    fn message(to: NodeId) -> Observation {
        Observation::Sent { to, term: 2, what: Sent::Heartbeat { commit: 7 } }
    }

    #[test]
    fn nothing_is_published_without_a_stream() {
        let events = UiEvents::new(1, "n1".into());
        let mut publisher = UiPublisher::new(events.clone());
        assert!(!publisher.watched());
        publisher.publish(&message(2));
        let (first, mut live) = events.subscribe();
        assert!(publisher.watched());
        assert_eq!(first.len(), 1, "hello only: no view was published yet");
        assert!(first[0].contains(r#""type":"hello""#), "{}", first[0]);
        assert!(matches!(live.try_recv(), Err(TryRecvError::Empty)), "the earlier message was not kept");
    }

    #[test]
    fn messages_beyond_the_rate_are_counted_not_sent() {
        let events = UiEvents::new(1, "n1".into());
        let (_, mut live) = events.subscribe();
        let mut publisher = UiPublisher::new(events.clone());
        // A burst: the bucket's worth goes out, the rest is counted.
        let now = Instant::now();
        let shown = (0..MESSAGE_BURST as usize + 50).filter(|_| publisher.take_token(now)).count();
        assert_eq!(shown, MESSAGE_BURST as usize);
        // A second later: a second's worth (capped by the burst) may go, and the count is told.
        let later = now + Duration::from_secs(1);
        let shown = (0..MESSAGES_PER_SECOND).filter(|_| publisher.take_token(later)).count();
        assert_eq!(shown, MESSAGE_BURST as usize);
        // Other observations are never sampled.
        publisher.publish(&Observation::Commit { commit: 9, applied: 9 });
        let mut received = Vec::new();
        while let Ok(event) = live.try_recv() {
            received.push(event);
        }
        let count = |kind: &str| received.iter().filter(|e| e.contains(&format!(r#""type":"{kind}""#))).count();
        assert_eq!(count("commit"), 1);
        let sampled: Vec<_> = received.iter().filter(|e| e.contains(r#""type":"sampled""#)).collect();
        assert_eq!(sampled.len(), 1);
        assert!(sampled[0].contains(r#""count":50"#), "{}", sampled[0]);
    }

    #[test]
    fn a_slow_stream_loses_the_oldest_and_the_publisher_never_waits() {
        let events = UiEvents::new(1, "n1".into());
        let (_, mut live) = events.subscribe();
        let mut publisher = UiPublisher::new(events.clone());
        for commit in 0..STREAM_BUFFER as u64 + 10 {
            publisher.publish(&Observation::Commit { commit, applied: commit });
        }
        assert!(matches!(live.try_recv(), Err(TryRecvError::Lagged(10))));
        let next = live.try_recv().unwrap();
        assert!(next.contains(r#""commit":10,"#), "{next}");
    }

    #[test]
    fn a_new_stream_starts_from_the_latest_view() {
        let events = UiEvents::new(1, "n1".into());
        let mut publisher = UiPublisher::new(events.clone());
        let (_, _keep) = events.subscribe();
        let view = NodeView {
            id: 1,
            role: tally_raft::Role::Leader,
            term: 3,
            vote: Some(1),
            leader: Some(1),
            commit: 5,
            applied: 5,
            first_index: 1,
            last_index: 5,
            snapshot_index: 0,
            log: vec![(4, 2), (5, 3)],
            voters: vec![1, 2, 3],
            learners: vec![],
            progress: vec![],
            heard: vec![(2, Duration::from_millis(12))],
        };
        let now = Instant::now();
        assert!(publisher.view_due(now));
        publisher.publish_view(&view, now);
        assert!(!publisher.view_due(now));
        let (first, _) = events.subscribe();
        assert_eq!(first.len(), 2);
        assert!(first[1].contains(r#""type":"view""#) && first[1].contains(r#""log":[[4,2],[5,3]]"#), "{}", first[1]);
    }
}
