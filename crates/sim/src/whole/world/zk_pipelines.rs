//! ZooKeeper clients that pipeline their writes, as `tally-server`'s connections do
//! (`crates/server/src/zk/pipeline.rs`): a connection's writes carry its client id and
//! sequence numbers rising by one, marked pipelined, several in flight to the one member the
//! connection is to (in order, as over TCP). The connection's first write goes alone; a write
//! is sent again only while it is the only one in flight, otherwise the connection fails and
//! the client reconnects (a new client id) with its session: that connection's first write
//! attaches the session to it, so writes still on their way from the old one are SessionMoved.
//! When the oldest write in flight is refused and none was sent twice (the exactly-once table
//! forgot the connection, or the write overtook the one before it), the writes in flight start
//! over under a new client id on the same connection.

use std::collections::BTreeMap;

use tally_mvcc::{CommandResponse, MvccError};
use tally_proto::tally_v1::command::Op;
use tally_raft::NodeId;

use super::{Event, Reply, WholeSim, CLIENTS_STOP_AFTER_HEAL_US, CLIENT_ID_BASE, REQUEST_TIMEOUT_US};
use crate::whole::clients::Answer;
use crate::whole::requests::{Write, ZkOp, KEYS};

/// Waiter labels of pipelining clients start here, beside the other clients' indexes.
pub(super) const PIPE_CLIENT_BASE: usize = 1 << 20;
/// Writes one connection sends in a run, at most.
const RUN_WRITES_MAX: u64 = 6;
/// How often a client drops its connection in the middle of a run.
const ABANDON_CHANCE: f64 = 0.2;

#[derive(Default)]
pub(super) struct PipeClient {
    /// The connection's number; its client id follows from it. A start-over changes it too.
    conn: u64,
    /// The session's owner: the client id of the connection's first number.
    owner: u64,
    /// The member the connection is to.
    member: Option<NodeId>,
    /// The member of the connection that failed last: the next goes to another, as ZooKeeper's
    /// client moves on through its server list.
    failed_on: Option<NodeId>,
    /// A write of this connection was answered: the next ones may be pipelined.
    known: bool,
    session: Option<i64>,
    /// The last sequence number sent on this connection.
    seq: u64,
    /// Unanswered writes by sequence number, with their attempt.
    in_flight: BTreeMap<u64, (Write, u32)>,
    /// When the last request of the connection reaches its member (requests arrive in order).
    last_arrival: u64,
}

fn client_id(pipe: usize, conn: u64) -> u64 {
    CLIENT_ID_BASE + (1 << 32) + ((pipe as u64) << 24) + conn
}

fn label(conn: u64, seq: u64) -> u64 {
    (conn << 32) | seq
}

impl WholeSim {
    pub(super) fn start_pipes(&mut self) {
        for pipe in 0..self.plan.zk_pipelines as usize {
            self.pipes.push(PipeClient::default());
            let at = self.rng.range(1, 200_000);
            self.schedule(at, Event::PipeStart { pipe });
        }
    }

    /// The client sends its next run of writes: one alone on a new connection or without a
    /// session, else several in flight.
    pub(super) fn pipe_start(&mut self, pipe: usize) {
        let stopped = self.healed_at.is_some_and(|h| self.now() >= h + CLIENTS_STOP_AFTER_HEAL_US);
        if stopped || !self.pipes[pipe].in_flight.is_empty() {
            return;
        }
        let member = match self.pipes[pipe].member.filter(|m| self.ids.contains(m)) {
            Some(m) => m,
            None => {
                let failed_on = self.pipes[pipe].failed_on;
                let ids: Vec<NodeId> = self.ids.iter().copied().filter(|&m| Some(m) != failed_on).collect();
                self.rng.pick(if ids.is_empty() { &self.ids } else { &ids })
            }
        };
        let writes = match (self.pipes[pipe].session, self.pipes[pipe].known) {
            (None, _) => 1,
            (Some(_), false) => 1,
            (Some(_), true) => self.rng.range(2, RUN_WRITES_MAX + 1),
        };
        let p = &mut self.pipes[pipe];
        p.member = Some(member);
        if !p.known {
            p.owner = client_id(pipe, p.conn);
        }
        let owner = p.owner;
        for _ in 0..writes {
            let write = match (p.session, p.known) {
                (None, _) => Write::ZkSession,
                (Some(session), false) => Write::ZkAttach { session, owner },
                (Some(session), true) => {
                    let ops = [ZkOp::Create, ZkOp::SetData, ZkOp::SetData, ZkOp::Delete];
                    let op = ops[self.rng.range(0, 4) as usize];
                    Write::Zk { session, owner, key: self.rng.range(0, KEYS), op }
                }
            };
            p.seq += 1;
            p.in_flight.insert(p.seq, (write, 0));
        }
        let (seqs, conn): (Vec<u64>, u64) = (p.in_flight.keys().copied().collect(), p.conn);
        for seq in seqs {
            self.pipe_send(pipe, seq);
        }
        if writes > 1 && self.rng.chance(ABANDON_CHANCE) {
            let at = self.now() + self.rng.range(0, 1_000);
            self.schedule(at, Event::PipeAbandon { pipe, conn });
        }
    }

    /// Sends (or sends again) write `seq` over the connection.
    fn pipe_send(&mut self, pipe: usize, seq: u64) {
        let delay = self.net_delay();
        let now = self.now();
        let p = &mut self.pipes[pipe];
        let Some((_, attempt)) = p.in_flight.get_mut(&seq) else { return };
        *attempt += 1;
        let (conn, attempt, to) = (p.conn, *attempt, p.member.expect("connected"));
        p.last_arrival = p.last_arrival.max(now + delay);
        let at = p.last_arrival;
        self.schedule(at, Event::PipeRequest { pipe, conn, seq, to });
        self.schedule(now + REQUEST_TIMEOUT_US, Event::PipeTimeout { pipe, conn, seq, attempt });
    }

    pub(super) fn pipe_request(&mut self, pipe: usize, conn: u64, seq: u64, to: NodeId) {
        let p = &self.pipes[pipe];
        let Some((write, attempt)) = p.in_flight.get(&seq).filter(|_| p.conn == conn) else { return };
        if !self.members[&to].is_up() {
            return;
        }
        let mut cmd = write.command(client_id(pipe, conn), seq, (self.now() / 1000) as i64);
        if let Some(Op::Zk(z)) = &mut cmd.op {
            z.pipelined = true;
            z.retried = *attempt > 1;
        }
        self.trace(|| format!("member {to} gets pipelining client {pipe}'s #{seq} (connection {conn})"));
        let sm = self.members.get_mut(&to).expect("exists").node().state_machine();
        cmd.auth_revision = sm.read().expect("sm lock").auth.revision();
        self.propose_at(to, cmd, (PIPE_CLIENT_BASE + pipe) as u64, label(conn, seq));
    }

    pub(super) fn pipe_timeout(&mut self, pipe: usize, conn: u64, seq: u64, attempt: u32) {
        let p = &self.pipes[pipe];
        if p.conn == conn && p.in_flight.get(&seq).is_some_and(|(_, a)| *a == attempt) {
            self.pipe_trouble(pipe, seq);
        }
    }

    /// Write `seq` went unanswered or was bounced: sent again if it is alone, else the
    /// connection fails (its other writes may or may not apply, under the old client id).
    fn pipe_trouble(&mut self, pipe: usize, seq: u64) {
        let p = &self.pipes[pipe];
        if p.in_flight.len() == 1 && p.member.is_some_and(|m| self.members[&m].is_up()) {
            return self.pipe_send(pipe, seq);
        }
        self.pipe_fail_and_reconnect(pipe);
    }

    /// The connection fails for trouble of its own; the client reconnects 1-50 ms later.
    fn pipe_fail_and_reconnect(&mut self, pipe: usize) {
        let reconnect_after = self.rng.range(1_000, 50_000);
        self.pipe_fail(pipe, reconnect_after);
    }

    /// The client drops the connection `conn` with writes in flight, as when its TCP connection
    /// breaks, and reconnects at once: the old writes may still apply, before or after the
    /// session attaches to the new connection.
    pub(super) fn pipe_abandon(&mut self, pipe: usize, conn: u64) {
        let p = &self.pipes[pipe];
        if p.conn == conn && !p.in_flight.is_empty() {
            let reconnect_after = self.rng.range(0, 500);
            self.pipe_fail(pipe, reconnect_after);
        }
    }

    /// The connection fails: the client forgets its writes in flight and reconnects to a
    /// random member with its session after `reconnect_after_us`.
    fn pipe_fail(&mut self, pipe: usize, reconnect_after_us: u64) {
        let p = &mut self.pipes[pipe];
        let conn = p.conn;
        p.conn += 1;
        p.failed_on = p.member.take();
        p.known = false;
        p.seq = 0;
        p.in_flight.clear();
        self.trace(|| format!("pipelining client {pipe}'s connection {conn} fails"));
        let at = self.now() + reconnect_after_us;
        self.schedule(at, Event::PipeStart { pipe });
    }

    /// The writes in flight go again, in order, under a new client id (`Pipeline::start_over`).
    /// Those of the old id still on their way are not proposed: the table refuses them anyway.
    fn pipe_start_over(&mut self, pipe: usize) {
        self.coverage.zk_pipeline_start_overs += 1;
        let p = &mut self.pipes[pipe];
        let old = p.conn;
        p.conn += 1;
        let writes = std::mem::take(&mut p.in_flight);
        p.seq = 0;
        for (old_seq, (write, _)) in writes {
            p.seq += 1;
            p.in_flight.insert(p.seq, (write, 0));
            let to = (client_id(pipe, p.conn), p.seq);
            self.zk_pipelines.started_over((client_id(pipe, old), old_seq), to);
        }
        self.trace(|| format!("pipelining client {pipe}'s writes start over as connection {}", self.pipes[pipe].conn));
        for seq in 1..=self.pipes[pipe].seq {
            self.pipe_send(pipe, seq);
        }
    }

    pub(super) fn pipe_response(&mut self, pipe: usize, label: u64, reply: Reply) {
        let (conn, seq) = (label >> 32, label & 0xffff_ffff);
        let p = &self.pipes[pipe];
        if p.conn != conn || !p.in_flight.contains_key(&seq) {
            return;
        }
        let response = match reply {
            Reply::Final(Answer::Applied(response)) => response,
            _ => return self.pipe_trouble(pipe, seq),
        };
        if matches!(response, CommandResponse::Error(MvccError::StaleSequence)) {
            // Refused out of the connection's order: as in `zk::pipeline`, which reads the
            // oldest write's answer first, its writes start over if that one was refused and
            // none was sent twice; else the connection fails.
            let oldest = p.in_flight.keys().next() == Some(&seq);
            self.trace(|| format!("pipelining client {pipe}'s #{seq} (connection {conn}) is refused out of order"));
            let p = &self.pipes[pipe];
            if oldest && p.in_flight.values().all(|(_, attempt)| *attempt == 1) {
                return self.pipe_start_over(pipe);
            }
            return self.pipe_fail_and_reconnect(pipe);
        }
        let now = self.now();
        self.zk_pipelines.acknowledged(client_id(pipe, conn), seq, now, &mut self.checker.violations);
        let p = &mut self.pipes[pipe];
        p.in_flight.remove(&seq);
        p.known = true;
        if let CommandResponse::Zk(applied) = &response {
            use tally_zk::{Outcome as Zk, ZkError};
            match applied.outcome {
                Zk::SessionCreated { session } => p.session = Some(session),
                Zk::Reply(Err(ZkError::SessionExpired)) => p.session = None,
                _ => {}
            }
        }
        if p.in_flight.is_empty() {
            let at = now + self.rng.range(50_000, 250_000);
            self.schedule(at, Event::PipeStart { pipe });
        }
    }
}
