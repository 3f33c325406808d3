//! The connect handshake: a new session (created through the log, so every member knows it
//! and its password) or a client reattaching to its session, perhaps on another member.

use std::io;

use tally_mvcc::CommandResponse;
use tally_proto::tally_v1::command::Op;
use tally_proto::tally_v1::{Command, ZkCommand as LogZk};
use tally_zk::proto::{decode, encode, ConnectRequest, ConnectResponse, PASSWORD_LEN};
use tally_zk::{Outcome, ZkCommand};
use tokio::net::TcpStream;

use super::frames::{self, invalid};
use crate::client::services::context::Context;

/// ZooKeeper's default tickTime: negotiated session timeouts lie within 2 and 20 ticks.
const TICK_MS: i32 = 2000;

pub struct Attached {
    pub session: i64,
    pub timeout_ms: i32,
    /// This connection's number in the session's replicated attach (`ZkCommand::Attach`).
    pub owner: u64,
}

/// Answers the client's ConnectRequest (`packet`); None if the session is gone (the client
/// was told so and the connection should close).
pub async fn attach(stream: &mut TcpStream, ctx: &Context, packet: Vec<u8>) -> io::Result<Option<Attached>> {
    let request: ConnectRequest = decode(&packet).map_err(|e| invalid(format!("connect request: {e}")))?;
    let last_zxid = ctx.sm.read().expect("sm lock").zk.last_zxid();
    if request.last_zxid_seen > last_zxid {
        // This member is behind what the client has seen: ZooKeeper refuses it, so that it
        // reconnects to a member that is not.
        return Err(invalid(format!(
            "client has seen zxid {:#x}, this member's last is {last_zxid:#x}",
            request.last_zxid_seen
        )));
    }
    let timeout_ms = request.timeout_ms.clamp(2 * TICK_MS, 20 * TICK_MS);
    let owner = u64::from_be_bytes(random_bytes()?);
    let attached = if request.session_id == 0 {
        Some(create_session(ctx, timeout_ms).await?)
    } else {
        reattach(ctx, &request, owner).await?
    };
    let response = match &attached {
        Some((session, password, timeout_ms)) => ConnectResponse {
            protocol_version: 0,
            timeout_ms: *timeout_ms,
            session_id: *session,
            password: password.to_vec(),
            read_only: false,
        },
        // ZooKeeper's answer to an unknown or expired session: a zero timeout.
        None => ConnectResponse {
            protocol_version: 0,
            timeout_ms: 0,
            session_id: 0,
            password: vec![0; PASSWORD_LEN],
            read_only: false,
        },
    };
    if let Some((session, _, _)) = &attached {
        ctx.node.zk_touch(*session);
    }
    frames::write(stream, &[&encode(&response)]).await?;
    Ok(attached.map(|(session, _, timeout_ms)| Attached { session, timeout_ms, owner }))
}

async fn create_session(ctx: &Context, timeout_ms: i32) -> io::Result<(i64, [u8; PASSWORD_LEN], i32)> {
    let password = random_password()?;
    let command = ZkCommand::CreateSession { timeout_ms, password };
    match propose(ctx, &command).await? {
        Outcome::SessionCreated { session } => Ok((session, password, timeout_ms)),
        other => Err(invalid(format!("creating a session answered {other:?}"))),
    }
}

/// The session if the password is right, attached to this connection through the log so that
/// its other connections, on any member, are closed.
async fn reattach(
    ctx: &Context,
    request: &ConnectRequest,
    owner: u64,
) -> io::Result<Option<(i64, [u8; PASSWORD_LEN], i32)>> {
    let found = {
        let sm = ctx.sm.read().expect("sm lock");
        sm.zk.session(request.session_id).map(|s| (s.password, s.timeout_ms))
    };
    let Some((password, timeout_ms)) = found.filter(|(password, _)| password[..] == request.password[..]) else {
        return Ok(None);
    };
    let session = request.session_id;
    Ok(match propose(ctx, &ZkCommand::Attach { session, owner }).await? {
        Outcome::Reply(Ok(_)) => Some((session, password, timeout_ms)),
        _ => None,
    })
}

fn random_password() -> io::Result<[u8; PASSWORD_LEN]> {
    random_bytes()
}

fn random_bytes<const N: usize>() -> io::Result<[u8; N]> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; N];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| io::Error::other("no system randomness"))?;
    Ok(bytes)
}

/// Replicates `command` and returns what applying it answered.
pub async fn propose(ctx: &Context, command: &ZkCommand) -> io::Result<Outcome> {
    let op = Op::Zk(LogZk { command: command.encode().into(), now_ms: super::unix_ms(), ..Default::default() });
    let cmd = Command { client_id: ctx.new_request_id(), seq: 1, op: Some(op), ..Default::default() };
    match ctx.submit(cmd).await {
        Ok(CommandResponse::Zk(applied)) => Ok(applied.outcome),
        Ok(other) => Err(invalid(format!("a ZooKeeper command answered {other:?}"))),
        Err(status) => Err(io::Error::other(status.message().to_string())),
    }
}
