//! The write ops, with ZooKeeper's checks in ZooKeeper's order (`PrepRequestProcessor`: the first
//! failing check decides the error) and its changes to the tree (`DataTree`).
//!
//! Versions: an expected version of -1 matches any; a new version is the old plus one, wrapping
//! as Java's int does (ZooKeeper 3.8; 3.9 skips -1).
//!
//! The stored cversion counts child creations only (it numbers sequential nodes), and pzxid moves
//! on every child creation and deletion: ZooKeeper's delete does not touch the parent's stored
//! cversion. (The Stat clients see counts deletions too: `Znode::stat`.)

use super::acl;
use super::node::{NodeKind, NodeStat, Znode, TTL_MAX};
use super::path;
use super::tx::Tx;
use crate::error::ZkError;
use crate::proto::{perms, Acl, CreateMode, CreateRequest, EventType, Id, Stat, WriteOp};

/// Who writes, and when.
pub(crate) struct Caller<'a> {
    pub session: i64,
    /// The connection the request came on (see [`ZkCommand::Txn`]).
    ///
    /// [`ZkCommand::Txn`]: super::command::ZkCommand::Txn
    pub owner: u64,
    pub auth: &'a [Id],
    pub zxid: i64,
    pub time: i64,
}

/// What an op did, before it is shaped into a reply or a multi result.
#[derive(Debug)]
pub(crate) enum Done {
    Created {
        path: String,
        stat: Stat,
    },
    Deleted,
    /// setData and setACL: the node's new Stat.
    Changed(Stat),
    Checked,
}

/// Applies one op, checking it first; on error nothing was changed.
pub(crate) fn apply_op(tx: &mut Tx<'_>, caller: &Caller<'_>, op: &WriteOp) -> Result<Done, ZkError> {
    match op {
        WriteOp::Create(r) | WriteOp::Create2(r) => create(tx, caller, r, Created::ByMode, -1),
        WriteOp::CreateContainer(r) => create(tx, caller, r, Created::Container, -1),
        WriteOp::CreateTtl(r) => create(tx, caller, &r.to_create(), Created::Ttl, r.ttl),
        WriteOp::Delete(r) => delete(tx, caller, &r.path, r.version),
        WriteOp::SetData(r) => set_data(tx, caller, &r.path, r.data.clone(), r.version),
        WriteOp::SetAcl(r) => set_acl(tx, caller, &r.path, &r.acl, r.version),
        WriteOp::Check(r) => check(tx, caller, &r.path, r.version),
    }
}

/// What kind of node a create makes: the op decides before the flags do. A createContainer is a
/// container and a createTTL a TTL node whatever their flags; a create is ephemeral or persistent
/// by its flags (container flags on a plain create make a persistent node, as in ZooKeeper).
#[derive(Clone, Copy, PartialEq)]
enum Created {
    ByMode,
    Container,
    Ttl,
}

fn create(
    tx: &mut Tx<'_>,
    caller: &Caller<'_>,
    r: &CreateRequest,
    created: Created,
    ttl: i64,
) -> Result<Done, ZkError> {
    let mode = CreateMode::from_flags(r.flags).map_err(|_| ZkError::BadArguments)?;
    // ZooKeeper's `EphemeralType.validateTTL`: a TTL mode needs a TTL in range, other modes none.
    let ttl_ok = if mode.is_ttl() { (1..=TTL_MAX).contains(&ttl) } else { ttl < 0 };
    if !ttl_ok {
        return Err(ZkError::BadArguments);
    }
    check_session(tx, caller)?;
    if r.path.contains('\0') {
        return Err(ZkError::BadArguments);
    }
    let (parent_path, _) = path::split(&r.path).ok_or(ZkError::BadArguments)?;
    let acl = acl::fixup(&r.acl, caller.auth)?;
    let parent = tx.state().node(parent_path).ok_or(ZkError::NoNode)?;
    acl::check(&parent.acl, perms::CREATE, caller.auth)?;
    let parent_cversion = parent.stat.cversion;
    let parent_is_ephemeral = matches!(parent.kind(), NodeKind::Ephemeral { .. });
    // The sequence number is the parent's cversion: creations under it so far.
    let path = if mode.is_sequential() { format!("{}{parent_cversion:010}", r.path) } else { r.path.clone() };
    if !path::is_valid(&path) {
        return Err(ZkError::BadArguments);
    }
    if tx.state().node(&path).is_some() {
        return Err(ZkError::NodeExists);
    }
    if parent_is_ephemeral {
        return Err(ZkError::NoChildrenForEphemerals);
    }
    // A createTTL with a mode that is no TTL (and so a negative TTL) passes every check of
    // ZooKeeper's, whose apply then throws on the TTL and stops the server; here it is refused
    // once every earlier check has passed, so all other answers stay ZooKeeper's.
    if created == Created::Ttl && !mode.is_ttl() {
        return Err(ZkError::BadArguments);
    }
    let kind = match created {
        Created::Container => NodeKind::Container,
        Created::Ttl => NodeKind::Ttl { ttl_ms: ttl },
        Created::ByMode if mode.is_ephemeral() => NodeKind::Ephemeral { session: caller.session },
        Created::ByMode => NodeKind::Persistent,
    };
    let parent_path = parent_path.to_string();
    let node = Znode {
        data: r.data.clone(),
        acl,
        stat: NodeStat::created(caller.zxid, caller.time, kind.owner()),
        num_children: 0,
    };
    let stat = node.stat();
    // Only a larger cversion is stored: at i32::MAX the count stops, pzxid with it (as ZooKeeper).
    tx.attach(path.clone(), node, |s| {
        let cversion = s.cversion.wrapping_add(1);
        if cversion > s.cversion {
            s.cversion = cversion;
            s.pzxid = caller.zxid;
        }
    });
    tx.event(&path, EventType::NodeCreated);
    tx.event(&parent_path, EventType::NodeChildrenChanged);
    Ok(Done::Created { path, stat })
}

fn delete(tx: &mut Tx<'_>, caller: &Caller<'_>, path: &str, version: i32) -> Result<Done, ZkError> {
    check_session(tx, caller)?;
    if path.contains('\0') || path::is_special(path) {
        return Err(ZkError::BadArguments);
    }
    let (parent_path, _) = path::split(path).ok_or(ZkError::BadArguments)?;
    let parent = tx.state().node(parent_path).ok_or(ZkError::NoNode)?;
    acl::check(&parent.acl, perms::DELETE, caller.auth)?;
    let node = tx.state().node(path).ok_or(ZkError::NoNode)?;
    check_version(node.stat.version, version)?;
    if node.num_children != 0 {
        return Err(ZkError::NotEmpty);
    }
    remove(tx, path, caller.zxid);
    Ok(Done::Deleted)
}

/// Deletes a childless node, as a delete, a session's close and an expiry all do.
pub(crate) fn remove(tx: &mut Tx<'_>, path: &str, zxid: i64) {
    let (parent_path, _) = path::split(path).expect("a node's path has a parent");
    let parent_path = parent_path.to_string();
    tx.detach(path, |s| s.pzxid = s.pzxid.max(zxid));
    tx.event(path, EventType::NodeDeleted);
    tx.event(&parent_path, EventType::NodeChildrenChanged);
}

fn set_data(
    tx: &mut Tx<'_>,
    caller: &Caller<'_>,
    path: &str,
    data: Option<Vec<u8>>,
    version: i32,
) -> Result<Done, ZkError> {
    check_session(tx, caller)?;
    if !path::is_valid(path) {
        return Err(ZkError::BadArguments);
    }
    let node = tx.state().node(path).ok_or(ZkError::NoNode)?;
    acl::check(&node.acl, perms::WRITE, caller.auth)?;
    let new_version = check_version(node.stat.version, version)?;
    let stat = tx.set_data(path, data, |s| {
        s.version = new_version;
        s.mtime = caller.time;
        s.mzxid = caller.zxid;
    });
    tx.event(path, EventType::NodeDataChanged);
    Ok(Done::Changed(stat))
}

/// setACL changes no data, so it triggers no watch.
fn set_acl(tx: &mut Tx<'_>, caller: &Caller<'_>, path: &str, acl: &[Acl], version: i32) -> Result<Done, ZkError> {
    check_session(tx, caller)?;
    if !path::is_valid(path) {
        return Err(ZkError::BadArguments);
    }
    let acl = acl::fixup(acl, caller.auth)?;
    let node = tx.state().node(path).ok_or(ZkError::NoNode)?;
    acl::check(&node.acl, perms::ADMIN, caller.auth)?;
    let new_version = check_version(node.stat.aversion, version)?;
    tx.set_acl(path, acl);
    Ok(Done::Changed(tx.update_stat(path, |s| s.aversion = new_version)))
}

fn check(tx: &mut Tx<'_>, caller: &Caller<'_>, path: &str, version: i32) -> Result<Done, ZkError> {
    check_session(tx, caller)?;
    if !path::is_valid(path) {
        return Err(ZkError::BadArguments);
    }
    let node = tx.state().node(path).ok_or(ZkError::NoNode)?;
    acl::check(&node.acl, perms::READ, caller.auth)?;
    check_version(node.stat.version, version)?;
    Ok(Done::Checked)
}

/// Writes need a live session: one closed or expired since the request was sent is SessionExpired,
/// and one since attached on another connection is SessionMoved (ZooKeeper's
/// `SessionTracker.checkSession`), so a write still on its way from an abandoned connection
/// cannot apply after the client moved on and perhaps retried it.
fn check_session(tx: &Tx<'_>, caller: &Caller<'_>) -> Result<(), ZkError> {
    match tx.state().session(caller.session) {
        None => Err(ZkError::SessionExpired),
        Some(s) if s.owner != 0 && caller.owner != 0 && s.owner != caller.owner => Err(ZkError::SessionMoved),
        Some(_) => Ok(()),
    }
}

/// The version after a change, if `expected` matches `current`.
fn check_version(current: i32, expected: i32) -> Result<i32, ZkError> {
    if expected != -1 && expected != current {
        return Err(ZkError::BadVersion);
    }
    Ok(current.wrapping_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_match_exactly_or_any_and_wrap_as_javas_int() {
        assert_eq!(check_version(3, 3), Ok(4));
        assert_eq!(check_version(3, -1), Ok(4));
        assert_eq!(check_version(3, 2), Err(ZkError::BadVersion));
        // ZooKeeper 3.8 adds one to an int: after i32::MAX comes i32::MIN, then on to -1.
        assert_eq!(check_version(i32::MAX, -1), Ok(i32::MIN));
        assert_eq!(check_version(-2, -1), Ok(-1));
    }
}
