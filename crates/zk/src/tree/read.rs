//! Reads, served by the server from its replica without going through the log. Each checks the
//! caller's identities against the node's ACL, as ZooKeeper's `FinalRequestProcessor` does.
//!
//! Children come sorted by name (ZooKeeper lists them in hash-set order, which no client may rely on).

use super::acl;
use super::node::Znode;
use super::state::ZkState;
use crate::error::ZkError;
use crate::proto::{perms, Acl, Id, OpResult, ReadOp, Request, Response, Stat};

/// The path a read names. ZooKeeper's node map has the root under "" as well as "/", so a read of
/// the empty path (which the Java client refuses to send, but others do) reads the root.
fn read_path(path: &str) -> &str {
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

impl ZkState {
    /// The node a read names, if the caller may read it.
    fn readable(&self, path: &str, perm: i32, auth: &[Id]) -> Result<&Znode, ZkError> {
        let node = self.node(read_path(path)).ok_or(ZkError::NoNode)?;
        acl::check(&node.acl, perm, auth)?;
        Ok(node)
    }

    /// exists: the node's Stat. A path with a null character is BadArguments; a missing node is
    /// NoNode (an exists watch is still left on it, which is the server's business). No ACL is
    /// checked: ZooKeeper 3.8.0 answers any caller.
    pub fn exists(&self, path: &str, _auth: &[Id]) -> Result<Stat, ZkError> {
        if path.contains('\0') {
            return Err(ZkError::BadArguments);
        }
        Ok(self.node(read_path(path)).ok_or(ZkError::NoNode)?.stat())
    }

    pub fn get_data(&self, path: &str, auth: &[Id]) -> Result<(Option<Vec<u8>>, Stat), ZkError> {
        let node = self.readable(path, perms::READ, auth)?;
        Ok((node.data.clone(), node.stat()))
    }

    pub fn get_children(&self, path: &str, auth: &[Id]) -> Result<Vec<String>, ZkError> {
        Ok(self.get_children2(path, auth)?.0)
    }

    /// getChildren2: the children and the parent's Stat.
    pub fn get_children2(&self, path: &str, auth: &[Id]) -> Result<(Vec<String>, Stat), ZkError> {
        let node = self.readable(path, perms::READ, auth)?;
        Ok((self.child_names(read_path(path)).map(str::to_string).collect(), node.stat()))
    }

    /// Every descendant, at any depth; for `/`, every node but the root (ZooKeeper's own included).
    /// For "" ZooKeeper counts the paths that start with "/": every node, the root too.
    pub fn get_all_children_number(&self, path: &str, auth: &[Id]) -> Result<i32, ZkError> {
        self.readable(path, perms::READ, auth)?;
        let count = if path == "/" {
            self.nodes.len() - 1
        } else if path.is_empty() {
            self.nodes.len()
        } else {
            self.descendant_count(path)
        };
        Ok(count as i32)
    }

    /// getACL: needs READ or ADMIN; without ADMIN, digest ids come back with their hash hidden.
    pub fn get_acl(&self, path: &str, auth: &[Id]) -> Result<(Vec<Acl>, Stat), ZkError> {
        let node = self.readable(path, perms::READ | perms::ADMIN, auth)?;
        let acl = match acl::check(&node.acl, perms::ADMIN, auth) {
            Ok(()) => node.acl.clone(),
            Err(_) => acl::redact_digests(&node.acl),
        };
        Ok((acl, node.stat()))
    }

    /// getEphemerals: the session's ephemerals whose paths start with `prefix` (all of them for
    /// an empty or blank prefix, or `/`), in path order. Blank is Java's `String.trim`: control
    /// characters count as blank, Unicode spaces such as U+00A0 do not (ZooKeeper trims so).
    pub fn get_ephemerals(&self, session: i64, prefix: &str) -> Vec<String> {
        let trimmed = prefix.trim_matches(|c: char| c <= ' ');
        let all = trimmed.is_empty() || trimmed == "/";
        self.ephemerals(session).filter(|p| all || p.starts_with(prefix)).map(str::to_string).collect()
    }

    /// The answer to a read request, or `None` if the request is not a read of the tree. Watches
    /// asked for by the request are the caller's to set.
    pub fn read(&self, request: &Request, session: i64, auth: &[Id]) -> Option<Result<Response, ZkError>> {
        Some(match request {
            Request::Exists(r) => self.exists(&r.path, auth).map(Response::Stat),
            Request::GetData(r) => self.get_data(&r.path, auth).map(|(data, stat)| Response::GetData { data, stat }),
            Request::GetChildren(r) => {
                self.get_children(&r.path, auth).map(|children| Response::GetChildren { children })
            }
            Request::GetChildren2(r) => {
                self.get_children2(&r.path, auth).map(|(children, stat)| Response::GetChildren2 { children, stat })
            }
            Request::GetAllChildrenNumber(r) => {
                self.get_all_children_number(&r.path, auth).map(Response::AllChildrenNumber)
            }
            Request::GetAcl(r) => self.get_acl(&r.path, auth).map(|(acl, stat)| Response::GetAcl { acl, stat }),
            Request::GetEphemerals(r) => Ok(Response::Ephemerals(self.get_ephemerals(session, &r.path))),
            Request::MultiRead(ops) => Ok(Response::Multi(ops.iter().map(|op| self.read_op(op, auth)).collect())),
            _ => return None,
        })
    }

    /// A multiRead op: each answers on its own; a failure is its result, not the whole request's.
    fn read_op(&self, op: &ReadOp, auth: &[Id]) -> OpResult {
        let result = match op {
            ReadOp::GetData(r) => self.get_data(&r.path, auth).map(|(data, stat)| OpResult::GetData { data, stat }),
            ReadOp::GetChildren(r) => {
                self.get_children(&r.path, auth).map(|children| OpResult::GetChildren { children })
            }
        };
        result.unwrap_or_else(|e| OpResult::Error { err: e.code() })
    }
}
