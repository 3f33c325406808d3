//! Simulated clients: each runs one request at a time against any node, follows leader hints,
//! retries on timeout with the same request id, and records what it saw for the
//! linearizability check.

use tally_raft::NodeId;

use crate::kv::{ClientId, Command, Key, Value, WriteOp, WriteResult};
use crate::linearizability::{OpKind, Operation, Outcome};
use crate::node::ClientResponse;
use crate::rng::Rng;

/// How long a client waits for an answer before retrying at another node.
pub const REQUEST_TIMEOUT_US: u64 = 400_000;
pub const KEYS: u64 = 3;

#[derive(Clone, Debug)]
pub enum Request {
    Write(Command),
    Read { client: ClientId, seq: u64, key: Key },
}

impl Request {
    pub fn seq(&self) -> u64 {
        match self {
            Request::Write(cmd) => cmd.seq,
            Request::Read { seq, .. } => *seq,
        }
    }
}

struct InFlight {
    request: Request,
    history_slot: usize,
    attempt: u32,
}

pub struct Client {
    pub id: ClientId,
    seq: u64,
    in_flight: Option<InFlight>,
    /// Where to send next: the last leader hint, if any.
    target: Option<NodeId>,
    /// The last value this client saw per key, to build compare-and-swaps that may succeed.
    seen: [Option<Value>; KEYS as usize],
}

/// What the event loop should do for a client.
pub enum ClientAction {
    Send { to: NodeId, request: Request, attempt: u32 },
    Idle,
}

impl Client {
    pub fn new(id: ClientId) -> Self {
        Self { id, seq: 0, in_flight: None, target: None, seen: [None; KEYS as usize] }
    }

    pub fn is_busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Starts the next operation and records its invocation.
    pub fn start(&mut self, rng: &mut Rng, nodes: &[NodeId], now: u64, history: &mut Vec<Operation>) -> ClientAction {
        assert!(self.in_flight.is_none());
        self.seq += 1;
        let key = rng.range(0, KEYS);
        let value = self.id * 1_000_000 + self.seq;
        let (request, kind) = match rng.range(0, 10) {
            0..=3 => (Request::Read { client: self.id, seq: self.seq, key }, OpKind::Get),
            4..=6 => {
                let op = WriteOp::Put { key, value };
                (Request::Write(Command { client: self.id, seq: self.seq, op }), OpKind::Put { value })
            }
            _ => {
                let expected = self.seen[key as usize];
                let op = WriteOp::Cas { key, expected, new: value };
                (Request::Write(Command { client: self.id, seq: self.seq, op }), OpKind::Cas { expected, new: value })
            }
        };
        history.push(Operation { client: self.id, key, kind, invoke: now, complete: None, outcome: Outcome::Unknown });
        self.in_flight = Some(InFlight { request: request.clone(), history_slot: history.len() - 1, attempt: 0 });
        // Half the reads go to any member, so followers' reads (ReadIndex through the leader)
        // are exercised as much as the leader's own.
        let any_member = kind == OpKind::Get && rng.range(0, 2) == 0;
        let to = match self.target {
            Some(leader) if !any_member => leader,
            _ => rng.pick(nodes),
        };
        ClientAction::Send { to, request, attempt: 0 }
    }

    /// A response arrived. Returns a retry to send, or Idle when the operation completed (or
    /// the response was stale).
    pub fn on_response(
        &mut self,
        resp: ClientResponse,
        rng: &mut Rng,
        nodes: &[NodeId],
        now: u64,
        history: &mut [Operation],
    ) -> ClientAction {
        let Some(flight) = self.in_flight.as_mut() else {
            return ClientAction::Idle;
        };
        let seq = flight.request.seq();
        let op = &mut history[flight.history_slot];
        match resp {
            ClientResponse::NotLeader { seq: s, hint } if s == seq => {
                flight.attempt += 1;
                self.target = hint;
                let to = hint.unwrap_or_else(|| rng.pick(nodes));
                return ClientAction::Send { to, request: flight.request.clone(), attempt: flight.attempt };
            }
            ClientResponse::Write { seq: s, result } if s == seq => {
                op.outcome = match result {
                    WriteResult::Put => Outcome::Put,
                    WriteResult::Cas(ok) => Outcome::Cas(ok),
                };
                if let (OpKind::Put { value } | OpKind::Cas { new: value, .. }, Outcome::Put | Outcome::Cas(true)) =
                    (op.kind, op.outcome)
                {
                    self.seen[op.key as usize] = Some(value);
                }
            }
            ClientResponse::Read { seq: s, value } if s == seq => {
                op.outcome = Outcome::Get(value);
                self.seen[op.key as usize] = value;
            }
            _ => return ClientAction::Idle,
        }
        op.complete = Some(now);
        self.in_flight = None;
        ClientAction::Idle
    }

    /// The timeout of attempt `attempt` fired: retry the same request elsewhere.
    pub fn on_timeout(&mut self, attempt: u32, rng: &mut Rng, nodes: &[NodeId]) -> ClientAction {
        let Some(flight) = self.in_flight.as_mut() else {
            return ClientAction::Idle;
        };
        if flight.attempt != attempt {
            return ClientAction::Idle;
        }
        flight.attempt += 1;
        self.target = None;
        ClientAction::Send { to: rng.pick(nodes), request: flight.request.clone(), attempt: flight.attempt }
    }
}
