//! A request's answer: writes through the log, reads from this member's tree.

use tally_zk::proto::{Id, Request, Response};
use tally_zk::{Outcome, Write, ZkCommand, ZkError};

use super::connection::Client;
use super::handshake::propose;
use crate::client::services::context::Context;

/// The reply body (None: header only), or the error code for the reply header.
pub async fn handle(ctx: &Context, client: &mut Client, request: Request) -> Result<Option<Vec<u8>>, ZkError> {
    if let Some(write) = Write::from_request(&request) {
        let command = ZkCommand::Txn { session: client.session, auth: client.auth.clone(), write };
        return reply(replicate(ctx, &command).await?);
    }
    match request {
        Request::Ping => Ok(None),
        Request::CloseSession => {
            replicate(ctx, &ZkCommand::CloseSession { session: client.session }).await?;
            Ok(None)
        }
        Request::Auth(packet) if packet.scheme == "digest" => {
            client.auth.push(Id { scheme: "digest".into(), id: tally_zk::tree::digest_id(&packet.auth) });
            Ok(None)
        }
        Request::Auth(_) => Err(ZkError::AuthFailed),
        Request::Sync(r) => {
            // Everything committed before the sync is applied here after it.
            ctx.linearizable_barrier().await.map_err(|_| ZkError::OperationTimeout)?;
            Ok(Some(Response::Sync { path: r.path }.encode()))
        }
        // Watches are not served yet: a read that asks for one is refused rather than answered
        // without it.
        Request::Exists(ref r)
        | Request::GetData(ref r)
        | Request::GetChildren(ref r)
        | Request::GetChildren2(ref r)
            if r.watch =>
        {
            Err(ZkError::Unimplemented)
        }
        read => {
            let sm = ctx.sm.read().expect("sm lock");
            match sm.zk.read(&read, client.session, &client.auth) {
                Some(answer) => Ok(Some(answer?.encode())),
                None => Err(ZkError::Unimplemented),
            }
        }
    }
}

async fn replicate(ctx: &Context, command: &ZkCommand) -> Result<Outcome, ZkError> {
    propose(ctx, command).await.map_err(|e| {
        tracing::debug!("a ZooKeeper write was not replicated: {e}");
        ZkError::OperationTimeout
    })
}

fn reply(outcome: Outcome) -> Result<Option<Vec<u8>>, ZkError> {
    match outcome {
        Outcome::Reply(Ok(response)) => Ok(Some(response.encode())),
        Outcome::Reply(Err(e)) => Err(e),
        Outcome::SessionCreated { .. } | Outcome::AlreadyApplied => Ok(None),
    }
}
