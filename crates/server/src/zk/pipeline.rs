//! A connection's writes in flight, as ZooKeeper pipelines a session's requests: each is
//! handed to the driver the moment it is read, so they reach the log in the order sent, and
//! they are answered oldest first.
//!
//! Order in the log holds without waiting because while the leader stays, every proposal of
//! the connection takes one FIFO path: on the leader, the driver's input channel, then the
//! log; on a follower, the one peer link to the leader, written by this task itself
//! (`NodeHandle::propose_now`). What can break it is a write lost (with a leader, or a
//! forwarded frame) while later ones go on to a new leader, a leader change between two
//! writes that sends them down different paths, or a write proposed again behind later ones.
//! So:
//! - the state machine checks: the connection's writes carry one client id and sequence
//!   numbers rising by one, and one that arrives after a later one, or after a gap, is refused
//!   unexecuted (`StaleSequence`, from the exactly-once table). A connection the table does
//!   not know (new, or evicted by other clients) has only the first attempt of its first
//!   write taken; a proposal made again is marked `retried`, since its first may have applied;
//! - a write is proposed again only while it is the only one in flight; otherwise the
//!   connection is failed, as a ZooKeeper server drops its clients when its leader goes, and
//!   the client reconnects with its session;
//! - when the oldest write is refused and none in flight was proposed twice, nothing before it
//!   was lost and none of them applied: they start over under a new client id (`start_over`);
//! - the connection's first write goes alone: if only its answer was lost, its retry gets the
//!   first attempt's answer from the table instead of failing the writes behind it.

use std::collections::VecDeque;
use std::io;

use tally_mvcc::{CommandResponse, MvccError};
use tally_proto::tally_v1::command::Op;
use tally_proto::tally_v1::{Command, ZkCommand as LogZk};
use tally_zk::{ZkCommand, ZkError};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::requests::{reply, Reply};
use crate::client::services::context::{Context, ATTEMPT_TIMEOUT, REQUEST_TIMEOUT, RETRY_DELAY};
use crate::node::driver::ProposeOutcome;

/// Writes one connection may have in flight; beyond it the connection reads no more requests
/// until the oldest is answered (backpressure through TCP).
pub const WRITES_IN_FLIGHT_MAX: usize = 256;

pub struct Pipeline {
    /// The connection's identity in the state machine's exactly-once table.
    client_id: u64,
    /// The sequence number of the last write proposed (the first is 1).
    seq: u64,
    /// Oldest first. Invariant: their sequence numbers rise by one from front to back.
    writes: VecDeque<InFlight>,
    /// A write of the connection was applied: the exactly-once table knows it.
    known: bool,
}

struct InFlight {
    xid: i32,
    /// When its request was read (for the latency srvr and mntr report).
    arrived: std::time::Instant,
    /// Kept to propose it again, with the same (client id, seq).
    cmd: Command,
    /// CloseSession: the connection ends once it is answered.
    closing: bool,
    answer: oneshot::Receiver<ProposeOutcome>,
    /// When the current attempt is given up (its answer may have been lost with a message).
    attempt_deadline: Instant,
    /// When the write is answered OperationTimeout, if it is still alone and unapplied.
    deadline: Instant,
}

/// What became of the oldest write's current attempt (see [`Pipeline::answer`]).
pub struct Attempt(Option<ProposeOutcome>);

impl Attempt {
    /// It applied: settling it answers the write at once, without waiting.
    pub fn applied(&self) -> bool {
        matches!(self.0, Some(ProposeOutcome::Applied(_)))
    }
}

/// The oldest write, answered.
pub struct Answered {
    pub xid: i32,
    pub arrived: std::time::Instant,
    pub reply: Reply,
    /// It was the session's CloseSession.
    pub closing: bool,
}

impl Pipeline {
    pub fn new(ctx: &Context) -> Self {
        Self { client_id: ctx.new_request_id(), seq: 0, writes: VecDeque::new(), known: false }
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Whether the oldest write's current attempt has ended: [`Pipeline::answer`] would not wait.
    pub fn answer_ready(&self) -> bool {
        self.writes.front().is_some_and(|head| !head.answer.is_empty())
    }

    /// Whether another write may be proposed now (else the connection reads no further).
    pub fn accepting(&self) -> bool {
        self.writes.len() < WRITES_IN_FLIGHT_MAX && (self.known || self.writes.is_empty())
    }

    /// Proposes `command` (the request `xid`) behind every write in flight.
    pub fn propose(
        &mut self,
        ctx: &Context,
        xid: i32,
        arrived: std::time::Instant,
        command: &ZkCommand,
        closing: bool,
    ) {
        assert!(self.accepting(), "a connection read a request it may not propose yet");
        self.seq += 1;
        let op = Op::Zk(LogZk {
            command: command.encode().into(),
            now_ms: super::unix_ms(),
            pipelined: true,
            ..Default::default()
        });
        let cmd = Command { client_id: self.client_id, seq: self.seq, op: Some(op), ..Default::default() };
        let now = Instant::now();
        let answer = ctx.node.propose_now(cmd.clone());
        let (attempt_deadline, deadline) = (now + ATTEMPT_TIMEOUT, now + REQUEST_TIMEOUT);
        self.writes.push_back(InFlight { xid, arrived, cmd, closing, answer, attempt_deadline, deadline });
    }

    /// Waits for the oldest write's current attempt to end. Cancel-safe: waiting again goes on
    /// waiting for the same attempt. Then call [`Pipeline::settle`].
    pub async fn answer(&mut self) -> Attempt {
        let head = self.writes.front_mut().expect("a write in flight");
        match tokio::time::timeout_at(head.attempt_deadline, &mut head.answer).await {
            Ok(Ok(outcome)) => Attempt(Some(outcome)),
            // The driver stopped: the process is ending.
            Ok(Err(_)) => Attempt(None),
            Err(_elapsed) => Attempt(Some(ProposeOutcome::NotLeader(None))),
        }
    }

    /// The oldest write's answer, or None if it was proposed again (wait for its answer
    /// anew). An error fails the connection: its writes might otherwise apply out of order.
    pub async fn settle(&mut self, ctx: &Context, attempt: Attempt) -> io::Result<Option<Answered>> {
        let leader = match attempt.0 {
            None => return Err(io::Error::other("the node stopped")),
            Some(ProposeOutcome::Applied(response)) => return self.applied(ctx, response),
            Some(ProposeOutcome::NotLeader(leader)) => leader,
        };
        let in_flight = self.writes.len();
        if in_flight > 1 {
            return Err(io::Error::other(format!(
                "a write's attempt failed (a leader change, or a lost forward) with {in_flight} writes in flight: \
                 proposing it again could put it behind the later ones"
            )));
        }
        let head = self.writes.front_mut().expect("a write in flight");
        if Instant::now() >= head.deadline {
            let head = self.writes.pop_front().expect("a write in flight");
            tracing::debug!("a ZooKeeper write was not replicated in time");
            let reply = Err(ZkError::OperationTimeout);
            return Ok(Some(Answered { xid: head.xid, arrived: head.arrived, reply, closing: head.closing }));
        }
        // Alone in flight, and nothing is read meanwhile (the caller awaits this): proposing
        // it again cannot reorder it. Its request id makes a second apply answer the first's
        // response instead of executing it again.
        if leader.is_none_or(|l| l == ctx.member_id) {
            tokio::time::sleep(RETRY_DELAY).await;
        }
        if let Some(Op::Zk(z)) = &mut head.cmd.op {
            // Its first attempt may have applied: a state machine that no longer knows the
            // connection must not apply it again (`out_of_order` in tally-mvcc).
            z.retried = true;
        }
        head.answer = ctx.node.propose_now(head.cmd.clone());
        head.attempt_deadline = Instant::now() + ATTEMPT_TIMEOUT;
        Ok(None)
    }

    /// The oldest write's answer, or None if the writes in flight were proposed again under a
    /// new identity (see [`Pipeline::start_over`]).
    fn applied(&mut self, ctx: &Context, response: CommandResponse) -> io::Result<Option<Answered>> {
        let outcome = match response {
            CommandResponse::Zk(applied) => {
                self.known = true;
                applied.outcome
            }
            CommandResponse::Error(MvccError::StaleSequence) if !self.writes.iter().any(|w| is_retried(&w.cmd)) => {
                self.start_over(ctx);
                return Ok(None);
            }
            CommandResponse::Error(MvccError::StaleSequence) => {
                let seq = self.writes.front().map(|w| w.cmd.seq);
                tracing::info!(?seq, "a ZooKeeper write was refused: it came after a later or a lost one");
                return Err(io::Error::other("a write of this connection was refused out of its order"));
            }
            other => return Err(io::Error::other(format!("a ZooKeeper write answered {other:?}"))),
        };
        let head = self.writes.pop_front().expect("a write in flight");
        Ok(Some(Answered { xid: head.xid, arrived: head.arrived, reply: reply(outcome), closing: head.closing }))
    }

    /// The oldest write was refused, and no write in flight was proposed twice. Every earlier
    /// write was answered, so nothing is missing before it: the exactly-once table no longer
    /// knows the connection (other clients evicted it while it was idle), or the write overtook
    /// the one before it (which the one FIFO path to the leader rules out while it stays).
    /// Either way it did not apply, each write after it is refused too (a gap), and each was
    /// proposed once: they are proposed again, in order, under a new client id, as a new
    /// connection's would be, and the client notices nothing.
    fn start_over(&mut self, ctx: &Context) {
        tracing::debug!(writes = self.writes.len(), "a ZooKeeper connection's writes start over under a new client id");
        ctx.node.shared.metrics.zk_start_overs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.client_id = ctx.new_request_id();
        self.known = false;
        self.seq = 0;
        let now = Instant::now();
        for write in &mut self.writes {
            self.seq += 1;
            (write.cmd.client_id, write.cmd.seq) = (self.client_id, self.seq);
            write.answer = ctx.node.propose_now(write.cmd.clone());
            write.attempt_deadline = now + ATTEMPT_TIMEOUT;
        }
    }
}

fn is_retried(cmd: &Command) -> bool {
    matches!(&cmd.op, Some(Op::Zk(z)) if z.retried)
}
