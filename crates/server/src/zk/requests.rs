//! A request's answer: writes become log commands (proposed by `pipeline.rs`), the rest are
//! answered here from this member's tree.

use tally_zk::proto::{add_watch_mode, EventType, Id, Request, Response, SetWatches2};
use tally_zk::{Outcome, Write, ZkCommand, ZkError, ZkState};

use super::connection::Client;
use super::watches::{Kind, WatcherType, ZkWatches};
use crate::client::services::context::Context;

/// The reply body (None: header only), or the error code for the reply header.
pub type Reply = Result<Option<Vec<u8>>, ZkError>;

/// The log command of a write (CloseSession included), or None for what is answered here.
pub fn write_command(client: &Client, request: &Request) -> Option<ZkCommand> {
    if let Some(write) = Write::from_request(request) {
        let (session, owner, auth) = (client.session, client.owner, client.auth.clone());
        return Some(ZkCommand::Txn { session, owner, auth, write });
    }
    matches!(request, Request::CloseSession).then_some(ZkCommand::CloseSession { session: client.session })
}

/// Answers what is not a write ([`write_command`] gives None), once every earlier write of the
/// session is applied here.
pub async fn handle(ctx: &Context, watches: &ZkWatches, client: &mut Client, request: Request) -> Reply {
    match request {
        Request::Ping => Ok(None),
        Request::Write(_) | Request::Multi(_) | Request::CloseSession => {
            unreachable!("writes go through the connection's pipeline")
        }
        Request::Auth(packet) if packet.scheme == "digest" => {
            client.auth.push(Id { scheme: "digest".into(), id: tally_zk::tree::digest_id(&packet.auth) });
            watches.authenticate(client.connection, &client.auth);
            Ok(None)
        }
        Request::Auth(_) => Err(ZkError::AuthFailed),
        Request::Sync(r) => {
            // Everything committed before the sync is applied here after it.
            ctx.linearizable_barrier().await.map_err(|_| ZkError::OperationTimeout)?;
            Ok(Some(Response::Sync { path: r.path }.encode()))
        }
        Request::SetWatches(w) => {
            let sm = ctx.sm.read().expect("sm lock");
            let w = SetWatches2 {
                relative_zxid: w.relative_zxid,
                data_watches: w.data_watches,
                exist_watches: w.exist_watches,
                child_watches: w.child_watches,
                persistent_watches: Vec::new(),
                persistent_recursive_watches: Vec::new(),
            };
            set_watches(&sm.zk, watches, client, &w);
            Ok(None)
        }
        Request::SetWatches2(w) => {
            let sm = ctx.sm.read().expect("sm lock");
            set_watches(&sm.zk, watches, client, &w);
            Ok(None)
        }
        // Neither the path's existence nor its ACL is checked, as in ZooKeeper.
        Request::AddWatch(r) => {
            watches.add_persistent(client.connection, &r.path, r.mode)?;
            Ok(Some(Response::AddWatch.encode()))
        }
        Request::CheckWatches(r) => {
            watches.check(client.connection, &r.path, WatcherType::from_code(r.watcher_type)?)?;
            Ok(None)
        }
        Request::RemoveWatches(r) => {
            watches.remove(client.connection, &r.path, WatcherType::from_code(r.watcher_type)?)?;
            Ok(None)
        }
        read => {
            // The watch is set under the same read lock as the read, so no change applied
            // between the two is missed (the driver fires watches after it applies).
            let sm = ctx.sm.read().expect("sm lock");
            let answer = sm.zk.read(&read, client.session, &client.auth).ok_or(ZkError::Unimplemented)?;
            if let Some((kind, path)) = watch_to_set(&read, &answer) {
                watches.add(client.connection, kind, path);
            }
            Ok(Some(answer?.encode()))
        }
    }
}

/// The watch a read sets, as ZooKeeper sets them: exists watches a node whether or not it
/// exists; getData and getChildren only a node that exists.
fn watch_to_set<'a>(read: &'a Request, answer: &Result<Response, ZkError>) -> Option<(Kind, &'a str)> {
    let exists_or_not = matches!(answer, Ok(_) | Err(ZkError::NoNode));
    match read {
        Request::Exists(r) if r.watch && exists_or_not => Some((Kind::Data, &r.path)),
        Request::GetData(r) if r.watch && answer.is_ok() => Some((Kind::Data, &r.path)),
        Request::GetChildren(r) | Request::GetChildren2(r) if r.watch && answer.is_ok() => Some((Kind::Child, &r.path)),
        _ => None,
    }
}

/// A reconnected client's watches (ZooKeeper's DataTree.setWatches): one-shot watches whose
/// change happened after `relative_zxid`, the last zxid the client saw, fire at once; the
/// others are set here, as are the persistent ones.
fn set_watches(tree: &ZkState, watches: &ZkWatches, client: &Client, w: &SetWatches2) {
    let (id, auth) = (client.connection, &client.auth);
    let stat = |path: &str| tree.exists(path, auth).ok();
    for path in &w.data_watches {
        match stat(path) {
            None => watches.notify(id, EventType::NodeDeleted, path),
            Some(s) if s.mzxid > w.relative_zxid => watches.notify(id, EventType::NodeDataChanged, path),
            Some(_) => watches.add(id, Kind::Data, path),
        }
    }
    for path in &w.exist_watches {
        match stat(path) {
            Some(_) => watches.notify(id, EventType::NodeCreated, path),
            None => watches.add(id, Kind::Data, path),
        }
    }
    for path in &w.child_watches {
        match stat(path) {
            None => watches.notify(id, EventType::NodeDeleted, path),
            Some(s) if s.pzxid > w.relative_zxid => watches.notify(id, EventType::NodeChildrenChanged, path),
            Some(_) => watches.add(id, Kind::Child, path),
        }
    }
    for path in &w.persistent_watches {
        let _ = watches.add_persistent(id, path, add_watch_mode::PERSISTENT);
    }
    for path in &w.persistent_recursive_watches {
        let _ = watches.add_persistent(id, path, add_watch_mode::PERSISTENT_RECURSIVE);
    }
}

/// A write's reply, from what applying it answered.
pub fn reply(outcome: Outcome) -> Reply {
    match outcome {
        Outcome::Reply(Ok(response)) => Ok(Some(response.encode())),
        Outcome::Reply(Err(e)) => Err(e),
        Outcome::SessionCreated { .. } | Outcome::AlreadyApplied => Ok(None),
    }
}
