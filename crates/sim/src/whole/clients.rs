//! The simulator's etcd clients. A KV client puts, deletes, compares-and-swaps, reads
//! (linearizable, recorded for the checker, or serializable) and now and then compacts; a lease
//! client grants a lease, attaches a key, keeps the lease alive and revokes it. The event loop
//! carries their requests, retries them with the same request id, and hands back the answer.

use tally_mvcc::CommandResponse;

use super::requests::{Write, ZkOp, ABSENT, AUTH_SCRIPT, KEYS};
use crate::linearizability::{OpKind, Outcome};
use crate::rng::Rng;

/// A lease's TTL: long beside an election, short beside a run.
pub const LEASE_TTL_S: i64 = 2;
const KEEP_ALIVES_PER_LEASE: u32 = 6;

#[derive(Clone, Debug)]
pub enum Request {
    Write(Write),
    Read {
        key: u64,
        serializable: bool,
    },
    KeepAlive {
        lease: i64,
    },
    /// A ZooKeeper client's ping: its member tells the leader the session is alive.
    ZkPing {
        session: i64,
    },
}

/// A request's answer, once it is final.
#[derive(Debug)]
pub enum Answer {
    Applied(CommandResponse),
    /// The key's value (`ABSENT` if none).
    Value(u64),
    /// A keep-alive's TTL; 0: the lease no longer exists.
    KeptAlive(i64),
    Pinged,
}

pub enum Client {
    Kv(KvClient),
    Lease(LeaseClient),
    /// Runs the auth script once, then reads now and then.
    Admin {
        step: usize,
    },
}

pub struct KvClient {
    id: u64,
    seq: u64,
    /// The last value seen per key, so compare-and-swaps may succeed.
    seen: [u64; KEYS as usize],
    /// Its ZooKeeper session, for its znode writes. Half the clients ping theirs (the session
    /// must then live while the leader hears them); the others never do, so the leader's
    /// session clock expires it (removing its ephemerals) and the client opens another.
    zk_session: Option<i64>,
    pings: bool,
}

pub struct LeaseClient {
    lease: Option<i64>,
    attached: bool,
    keep_alives: u32,
    /// Leases granted so far; every other one is abandoned instead of revoked, to expire.
    granted: u32,
}

/// What a client does next, and what the linearizability history records for it.
pub struct Next {
    pub request: Request,
    pub history: Option<(u64, OpKind)>,
}

impl Client {
    pub fn kv(id: u64) -> Self {
        Client::Kv(KvClient {
            id,
            seq: 0,
            seen: [ABSENT; KEYS as usize],
            zk_session: None,
            pings: id.is_multiple_of(2),
        })
    }

    pub fn lease() -> Self {
        Client::Lease(LeaseClient { lease: None, attached: false, keep_alives: 0, granted: 0 })
    }

    pub fn next(&mut self, rng: &mut Rng, revision_hint: i64) -> Next {
        match self {
            Client::Kv(c) => c.next(rng, revision_hint),
            Client::Lease(c) => c.next(),
            Client::Admin { step } if *step < AUTH_SCRIPT => {
                Next { request: Request::Write(Write::Auth(*step)), history: None }
            }
            Client::Admin { .. } => Next { request: Request::Read { key: 0, serializable: true }, history: None },
        }
    }

    /// The final answer to the request `next` gave. Returns the history outcome if any.
    pub fn done(&mut self, request: &Request, answer: &Answer) -> Option<Outcome> {
        match self {
            Client::Kv(c) => c.done(request, answer),
            Client::Lease(c) => {
                c.done(request, answer);
                None
            }
            Client::Admin { step } => {
                // A step refused (say, after a crash replayed it) is not retried: the next one
                // or the checks will show what that did.
                *step += usize::from(matches!(request, Request::Write(Write::Auth(_))));
                None
            }
        }
    }
}

impl KvClient {
    fn next(&mut self, rng: &mut Rng, revision_hint: i64) -> Next {
        self.seq += 1;
        let key = rng.range(0, KEYS);
        let value = self.id * 1_000_000 + self.seq;
        if let (true, Some(session)) = (self.pings, self.zk_session) {
            if rng.range(0, 4) == 0 {
                return Next { request: Request::ZkPing { session }, history: None };
            }
        }
        let (request, history) = match rng.range(0, 20) {
            0..=6 => (Request::Read { key, serializable: false }, Some((key, OpKind::Get))),
            7 => (Request::Read { key, serializable: true }, None),
            8..=11 => (Request::Write(Write::Put { key, value }), Some((key, OpKind::Put { value }))),
            12..=13 => (Request::Write(Write::Delete { key }), Some((key, OpKind::Put { value: ABSENT }))),
            19 => match self.zk_session {
                None => (Request::Write(Write::ZkSession), None),
                Some(session) => {
                    let ops = [ZkOp::Create, ZkOp::CreateEphemeral, ZkOp::CreateTtl, ZkOp::SetData, ZkOp::Delete];
                    let op = ops[rng.range(0, 5) as usize];
                    (Request::Write(Write::Zk { session, owner: 0, key, op }), None)
                }
            },
            14 if revision_hint > 2 => {
                let revision = revision_hint - rng.range(0, 3) as i64;
                (Request::Write(Write::Compact { revision }), None)
            }
            _ => {
                let expected = self.seen[key as usize];
                let kind = OpKind::Cas { expected: Some(expected), new: value };
                (Request::Write(Write::Cas { key, expected, new: value }), Some((key, kind)))
            }
        };
        Next { request, history }
    }

    fn done(&mut self, request: &Request, answer: &Answer) -> Option<Outcome> {
        match (request, answer) {
            (Request::Read { serializable: true, .. } | Request::ZkPing { .. }, _) => None,
            (Request::Read { key, .. }, Answer::Value(v)) => {
                self.seen[*key as usize] = *v;
                Some(Outcome::Get(Some(*v)))
            }
            (Request::Write(w @ Write::Cas { key, new, .. }), Answer::Applied(r)) => {
                let outcome = w.outcome(r);
                if outcome == Outcome::Cas(true) {
                    self.seen[*key as usize] = *new;
                }
                Some(outcome)
            }
            (Request::Write(Write::Compact { .. }), _) => None,
            (Request::Write(Write::ZkSession | Write::Zk { .. }), answer) => {
                self.zk_done(answer);
                None
            }
            (Request::Write(w), Answer::Applied(r)) => Some(w.outcome(r)),
            _ => Some(Outcome::Unknown),
        }
    }
}

impl KvClient {
    fn zk_done(&mut self, answer: &Answer) {
        use tally_zk::{Outcome as Zk, ZkError};
        let Answer::Applied(CommandResponse::Zk(applied)) = answer else { return };
        match applied.outcome {
            Zk::SessionCreated { session } => self.zk_session = Some(session),
            Zk::Reply(Err(ZkError::SessionExpired)) => self.zk_session = None,
            _ => {}
        }
    }
}

impl LeaseClient {
    fn next(&mut self) -> Next {
        let request = match (self.lease, self.attached) {
            (None, _) => Request::Write(Write::LeaseGrant { ttl: LEASE_TTL_S }),
            (Some(lease), false) => {
                Request::Write(Write::PutWithLease { key: format!("lease/{lease}").into_bytes(), lease })
            }
            (Some(lease), true) if self.keep_alives < KEEP_ALIVES_PER_LEASE => Request::KeepAlive { lease },
            (Some(lease), true) if self.granted.is_multiple_of(2) => Request::Write(Write::LeaseRevoke { lease }),
            // Abandoned: left to expire.
            (Some(_), true) => {
                self.start_over();
                Request::Write(Write::LeaseGrant { ttl: LEASE_TTL_S })
            }
        };
        Next { request, history: None }
    }

    fn done(&mut self, request: &Request, answer: &Answer) {
        match (request, answer) {
            (Request::Write(Write::LeaseGrant { .. }), Answer::Applied(CommandResponse::LeaseGrant(g))) => {
                self.lease = Some(g.id);
                self.granted += 1;
            }
            (Request::Write(Write::PutWithLease { .. }), Answer::Applied(CommandResponse::Put(_))) => {
                self.attached = true;
            }
            (Request::KeepAlive { .. }, Answer::KeptAlive(ttl)) if *ttl > 0 => self.keep_alives += 1,
            // Revoked (by us or by expiry), or the attach failed because it expired: start over.
            _ => self.start_over(),
        }
    }

    fn start_over(&mut self) {
        self.lease = None;
        self.attached = false;
        self.keep_alives = 0;
    }
}
