//! The event stream's JSON (see the protocol in `ui/mod.rs`).

use serde_json::{json, Value};
use tally_node::observe::{NodeView, Observation, Sent};
use tally_raft::{NodeId, ProgressState, RefusalReason, Role};

pub fn id(id: NodeId) -> String {
    format!("{id:016x}")
}

fn maybe_id(id: Option<NodeId>) -> Value {
    id.map_or(Value::Null, |i| Value::String(self::id(i)))
}

fn ids(ids: &[NodeId]) -> Vec<String> {
    ids.iter().map(|&i| id(i)).collect()
}

fn role(role: Role) -> &'static str {
    match role {
        Role::Follower => "follower",
        Role::PreCandidate => "pre-candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

fn reason(reason: RefusalReason) -> &'static str {
    match reason {
        RefusalReason::StaleTerm => "stale-term",
        RefusalReason::LeaderLease => "leader-lease",
        RefusalReason::AlreadyVoted => "already-voted",
        RefusalReason::StaleLog => "stale-log",
        RefusalReason::BetterClaim => "better-claim",
    }
}

fn progress_state(state: ProgressState) -> &'static str {
    match state {
        ProgressState::Probe => "probe",
        ProgressState::Replicate => "replicate",
        ProgressState::Snapshot => "snapshot",
    }
}

/// `{"type": kind, "t": t, ...fields}`.
fn event(kind: &str, t: u64, fields: Value) -> String {
    let mut object = match fields {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    object.insert("type".into(), kind.into());
    object.insert("t".into(), t.into());
    Value::Object(object).to_string()
}

pub fn hello(t: u64, me: NodeId, name: &str) -> String {
    event("hello", t, json!({ "id": id(me), "name": name }))
}

/// `dropped` or `sampled`.
pub fn counted(kind: &str, t: u64, count: u64) -> String {
    event(kind, t, json!({ "count": count }))
}

pub fn observation(t: u64, observation: &Observation) -> String {
    match observation {
        Observation::Role { role: r, term, leader } => {
            event("role", t, json!({ "role": role(*r), "term": term, "leader": maybe_id(*leader) }))
        }
        Observation::Term { term, vote } => event("term", t, json!({ "term": term, "vote": maybe_id(*vote) })),
        Observation::Sent { to, term, what } => {
            let mut fields = sent(what);
            fields["to"] = id(*to).into();
            fields["term"] = (*term).into();
            event("msg", t, fields)
        }
        Observation::Log { from, to, runs } => {
            let runs: Vec<[u64; 3]> = runs.iter().map(|&(a, b, term)| [a, b, term]).collect();
            event("log", t, json!({ "from": from, "to": to, "runs": runs }))
        }
        Observation::Commit { commit, applied } => event("commit", t, json!({ "commit": commit, "applied": applied })),
        Observation::Snapshot { taken, index, term } => event(
            "snapshot",
            t,
            json!({ "what": if *taken { "taken" } else { "installed" }, "index": index, "term": term }),
        ),
        Observation::Members { voters, learners } => {
            event("members", t, json!({ "voters": ids(voters), "learners": ids(learners) }))
        }
        Observation::PeerLost { peer, campaign } => {
            event("peer-lost", t, json!({ "peer": id(*peer), "campaign": campaign }))
        }
        Observation::ZkSessionExpired { session } => {
            event("zk-session-expired", t, json!({ "session": format!("{session:#x}") }))
        }
    }
}

fn sent(what: &Sent) -> Value {
    let vote_resp = |kind: &str, granted: bool, refused: Option<RefusalReason>| json!({ "kind": kind, "granted": granted, "reason": refused.map(reason) });
    match what {
        Sent::Append { prev_index, prev_term, entries, commit } => json!({
            "kind": "append", "prev_index": prev_index, "prev_term": prev_term, "entries": entries, "commit": commit
        }),
        Sent::AppendResp { index, reject } => json!({ "kind": "append-resp", "index": index, "reject": reject }),
        Sent::Heartbeat { commit } => json!({ "kind": "heartbeat", "commit": commit }),
        Sent::HeartbeatResp => json!({ "kind": "heartbeat-resp" }),
        Sent::PreVote { last_index, last_term } => {
            json!({ "kind": "pre-vote", "last_index": last_index, "last_term": last_term })
        }
        Sent::Vote { last_index, last_term } => {
            json!({ "kind": "vote", "last_index": last_index, "last_term": last_term })
        }
        Sent::PreVoteResp { granted, reason } => vote_resp("pre-vote-resp", *granted, *reason),
        Sent::VoteResp { granted, reason } => vote_resp("vote-resp", *granted, *reason),
        Sent::Snapshot { index, term } => json!({ "kind": "snapshot", "index": index, "snapshot_term": term }),
        Sent::TimeoutNow => json!({ "kind": "timeout-now" }),
        Sent::ReadIndex => json!({ "kind": "read-index" }),
        Sent::ReadIndexResp => json!({ "kind": "read-index-resp" }),
        Sent::LeaderDurable { index } => json!({ "kind": "leader-durable", "index": index }),
        Sent::Prepare { commit } => json!({ "kind": "prepare", "commit": commit }),
        Sent::Promise { entries } => json!({ "kind": "promise", "entries": entries }),
        Sent::Nack { reason: refused } => json!({ "kind": "nack", "reason": refused.map(reason) }),
        Sent::Accept { first, entries, commit } => {
            json!({ "kind": "accept", "first": first, "entries": entries, "commit": commit })
        }
        Sent::Accepted { through, gap } => json!({ "kind": "accepted", "through": through, "gap": gap }),
    }
}

pub fn view(t: u64, v: &NodeView) -> String {
    let progress: Vec<Value> = v
        .progress
        .iter()
        .map(|p| {
            json!({
                "id": id(p.id), "match": p.matched, "next": p.next,
                "state": progress_state(p.state), "active": p.active
            })
        })
        .collect();
    let heard: Vec<Value> =
        v.heard.iter().map(|(peer, ago)| json!({ "id": id(*peer), "ms": ago.as_millis() as u64 })).collect();
    let log: Vec<[u64; 2]> = v.log.iter().map(|&(i, term)| [i, term]).collect();
    event(
        "view",
        t,
        json!({
            "id": id(v.id), "role": role(v.role), "term": v.term, "vote": maybe_id(v.vote),
            "leader": maybe_id(v.leader), "commit": v.commit, "applied": v.applied,
            "first_index": v.first_index, "last_index": v.last_index, "snapshot_index": v.snapshot_index,
            "log": log, "voters": ids(&v.voters), "learners": ids(&v.learners),
            "progress": progress, "heard": heard
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn a_refused_vote_says_why() {
        let o = Observation::Sent {
            to: 0xab,
            term: 7,
            what: Sent::PreVoteResp { granted: false, reason: Some(RefusalReason::StaleLog) },
        };
        let v = parse(&observation(5, &o));
        assert_eq!(
            v,
            json!({
                "type": "msg", "t": 5, "to": "00000000000000ab", "term": 7,
                "kind": "pre-vote-resp", "granted": false, "reason": "stale-log"
            })
        );
    }

    #[test]
    fn log_runs_and_roles() {
        let v = parse(&observation(1, &Observation::Log { from: 4, to: 9, runs: vec![(4, 6, 2), (7, 9, 3)] }));
        assert_eq!(v["runs"], json!([[4, 6, 2], [7, 9, 3]]));
        let v = parse(&observation(1, &Observation::Role { role: Role::PreCandidate, term: 3, leader: None }));
        assert_eq!((v["role"].as_str(), &v["leader"]), (Some("pre-candidate"), &Value::Null));
    }
}
