//! An [`Outcome`] as bytes: the etcd side caches each client's last answer (exactly-once
//! retries) and its snapshots must carry a ZooKeeper write's answer too.
//!
//! Layout: a kind byte, then: nothing (already applied); the session id as i64 big-endian
//! (session created); the error code as i32 (error); or the op code whose reply shape the body
//! has (i32) and the reply's jute encoding (reply).

use super::apply::Outcome;
use crate::error::ZkError;
use crate::proto::codes::op;
use crate::proto::Response;

impl Outcome {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Outcome::AlreadyApplied => out.push(0),
            Outcome::SessionCreated { session } => {
                out.push(1);
                out.extend_from_slice(&session.to_be_bytes());
            }
            Outcome::Reply(Err(e)) => {
                out.push(2);
                out.extend_from_slice(&e.code().to_be_bytes());
            }
            Outcome::Reply(Ok(response)) => {
                out.push(3);
                out.extend_from_slice(&shape_of(response).to_be_bytes());
                out.extend_from_slice(&response.encode());
            }
        }
        out
    }

    /// None for bytes [`Outcome::to_bytes`] did not write.
    pub fn from_bytes(bytes: &[u8]) -> Option<Outcome> {
        let (&kind, rest) = bytes.split_first()?;
        let word = |n: usize| rest.get(..n);
        Some(match kind {
            0 if rest.is_empty() => Outcome::AlreadyApplied,
            1 if rest.len() == 8 => Outcome::SessionCreated { session: i64::from_be_bytes(word(8)?.try_into().ok()?) },
            2 if rest.len() == 4 => {
                Outcome::Reply(Err(ZkError::from_code(i32::from_be_bytes(word(4)?.try_into().ok()?))?))
            }
            3 => {
                let shape = i32::from_be_bytes(word(4)?.try_into().ok()?);
                Outcome::Reply(Ok(Response::decode(shape, &rest[4..]).ok()?))
            }
            _ => return None,
        })
    }
}

/// An op code whose replies have `response`'s shape (what [`Response::decode`] needs).
fn shape_of(response: &Response) -> i32 {
    match response {
        Response::Empty => op::DELETE,
        Response::Create { .. } => op::CREATE,
        Response::Create2 { .. } => op::CREATE2,
        Response::Stat(_) => op::EXISTS,
        Response::GetData { .. } => op::GET_DATA,
        Response::GetAcl { .. } => op::GET_ACL,
        Response::GetChildren { .. } => op::GET_CHILDREN,
        Response::GetChildren2 { .. } => op::GET_CHILDREN2,
        Response::AllChildrenNumber(_) => op::GET_ALL_CHILDREN_NUMBER,
        Response::Sync { .. } => op::SYNC,
        Response::Multi(_) => op::MULTI,
        Response::AddWatch => op::ADD_WATCH,
        Response::Ephemerals(_) => op::GET_EPHEMERALS,
        Response::WhoAmI(_) => op::WHO_AM_I,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Stat;

    #[test]
    fn outcomes_round_trip() {
        let stat = Stat { czxid: 7, mzxid: 9, version: 2, data_length: 3, ..Stat::default() };
        let outcomes = [
            Outcome::AlreadyApplied,
            Outcome::SessionCreated { session: 0x0100_0000_0000_002a },
            Outcome::Reply(Err(ZkError::NodeExists)),
            Outcome::Reply(Ok(Response::Empty)),
            Outcome::Reply(Ok(Response::Create { path: "/a0000000001".into() })),
            Outcome::Reply(Ok(Response::Create2 { path: "/b".into(), stat: stat.clone() })),
            Outcome::Reply(Ok(Response::Stat(stat))),
        ];
        for o in outcomes {
            assert_eq!(Outcome::from_bytes(&o.to_bytes()), Some(o.clone()), "{o:?}");
        }
        assert_eq!(Outcome::from_bytes(&[9]), None);
        assert_eq!(Outcome::from_bytes(&[2, 0, 0]), None);
    }
}
