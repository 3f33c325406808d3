//! etcd's Auth service. Every request goes through the log, reads included (as in etcd 3.5),
//! so every member holds the same users and roles at the same index. Passwords are hashed
//! here, once, before proposing; Authenticate checks the password here, then logs the login
//! so that every member knows the token.

use std::sync::Arc;

use tally_mvcc::{AuthInfo, CommandResponse};
use tally_proto::etcdserverpb::auth_server::Auth;
use tally_proto::etcdserverpb::*;
use tally_proto::tally_v1::auth_command::Op as AuthOp;
use tally_proto::tally_v1::auth_result::Result as Answer;
use tally_proto::tally_v1::command::Op;
use tally_proto::tally_v1::{AuthCommand, AuthenticateCommand};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::context::Context;
use crate::client::errors;
use crate::node::simple_tokens;

pub struct AuthService {
    ctx: Arc<Context>,
}

impl AuthService {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }

    /// Proposes `op` as `who` sent it and waits for its answer.
    async fn run(&self, metadata: &MetadataMap, who: &AuthInfo, op: AuthOp) -> Result<Answer, Status> {
        match self.ctx.replicate(metadata, who, Op::Auth(AuthCommand { op: Some(op) })).await? {
            CommandResponse::Auth(result) => result.result.ok_or_else(|| Status::internal("empty auth answer")),
            _ => Err(Status::internal("auth request answered with another response type")),
        }
    }

    /// A request from a client: its caller, then the log.
    async fn call<T>(&self, request: Request<T>, op: impl FnOnce(T) -> AuthOp) -> Result<Answer, Status> {
        let who = self.ctx.caller(&request).await?;
        let (metadata, _, message) = request.into_parts();
        self.run(&metadata, &who, op(message)).await
    }

    /// The response header, at the current revision (auth requests do not change it).
    fn header(&self) -> Option<ResponseHeader> {
        Some(self.ctx.header(self.ctx.current_revision()))
    }
}

/// Unwraps the answer a request expects, with its header filled.
macro_rules! answer {
    ($self:ident, $answer:expr, $variant:ident) => {
        match $answer? {
            Answer::$variant(mut resp) => {
                resp.header = $self.header();
                Ok(Response::new(resp))
            }
            _ => Err(Status::internal(concat!("auth ", stringify!($variant), " answered with another type"))),
        }
    };
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(&self, request: Request<AuthEnableRequest>) -> Result<Response<AuthEnableResponse>, Status> {
        answer!(self, self.call(request, AuthOp::Enable).await, Enable)
    }

    async fn auth_disable(
        &self,
        request: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        answer!(self, self.call(request, AuthOp::Disable).await, Disable)
    }

    async fn auth_status(&self, request: Request<AuthStatusRequest>) -> Result<Response<AuthStatusResponse>, Status> {
        answer!(self, self.call(request, AuthOp::Status).await, Status)
    }

    /// etcd's Authenticate: the password checked here against the state this member has
    /// applied after a ReadIndex, then the login through the log; again if users or roles
    /// changed in between.
    async fn authenticate(
        &self,
        request: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        self.ctx.linearizable_barrier().await?;
        let (metadata, _, req) = request.into_parts();
        loop {
            let checked = self.ctx.auth.check_password(&req.name, req.password.clone()).await;
            let revision = checked.map_err(|e| {
                tracing::warn!(user = %req.name, "invalid authentication was requested: {e}");
                errors::from_mvcc(&e)
            })?;
            let login =
                AuthenticateCommand { name: req.name.clone(), simple_token_prefix: simple_tokens::new_prefix() };
            let answer = self.run(&metadata, &AuthInfo::default(), AuthOp::Authenticate(login)).await?;
            if revision != self.ctx.sm.read().expect("sm lock").auth.revision() {
                continue;
            }
            let Answer::Authenticate(mut resp) = answer else {
                return Err(Status::internal("authenticate answered with another type"));
            };
            resp.token = self.ctx.auth.issue(resp.token, &req.name, revision).map_err(Status::internal)?;
            resp.header = self.header();
            return Ok(Response::new(resp));
        }
    }

    async fn user_add(&self, request: Request<AuthUserAddRequest>) -> Result<Response<AuthUserAddResponse>, Status> {
        let who = self.ctx.caller(&request).await?;
        let (metadata, _, mut req) = request.into_parts();
        if !req.options.is_some_and(|o| o.no_password) {
            let password = std::mem::take(&mut req.password);
            req.hashed_password = self.ctx.auth.hash_password(password).await.map_err(|e| errors::from_mvcc(&e))?;
        }
        answer!(self, self.run(&metadata, &who, AuthOp::UserAdd(req)).await, UserAdd)
    }

    async fn user_get(&self, request: Request<AuthUserGetRequest>) -> Result<Response<AuthUserGetResponse>, Status> {
        answer!(self, self.call(request, AuthOp::UserGet).await, UserGet)
    }

    async fn user_list(&self, request: Request<AuthUserListRequest>) -> Result<Response<AuthUserListResponse>, Status> {
        answer!(self, self.call(request, AuthOp::UserList).await, UserList)
    }

    async fn user_delete(
        &self,
        request: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        answer!(self, self.call(request, AuthOp::UserDelete).await, UserDelete)
    }

    async fn user_change_password(
        &self,
        request: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        let who = self.ctx.caller(&request).await?;
        let (metadata, _, mut req) = request.into_parts();
        if !req.password.is_empty() {
            let password = std::mem::take(&mut req.password);
            req.hashed_password = self.ctx.auth.hash_password(password).await.map_err(|e| errors::from_mvcc(&e))?;
        }
        answer!(self, self.run(&metadata, &who, AuthOp::UserChangePassword(req)).await, UserChangePassword)
    }

    async fn user_grant_role(
        &self,
        request: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        answer!(self, self.call(request, AuthOp::UserGrantRole).await, UserGrantRole)
    }

    async fn user_revoke_role(
        &self,
        request: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        answer!(self, self.call(request, AuthOp::UserRevokeRole).await, UserRevokeRole)
    }

    async fn role_add(&self, request: Request<AuthRoleAddRequest>) -> Result<Response<AuthRoleAddResponse>, Status> {
        answer!(self, self.call(request, AuthOp::RoleAdd).await, RoleAdd)
    }

    async fn role_get(&self, request: Request<AuthRoleGetRequest>) -> Result<Response<AuthRoleGetResponse>, Status> {
        answer!(self, self.call(request, AuthOp::RoleGet).await, RoleGet)
    }

    async fn role_list(&self, request: Request<AuthRoleListRequest>) -> Result<Response<AuthRoleListResponse>, Status> {
        answer!(self, self.call(request, AuthOp::RoleList).await, RoleList)
    }

    async fn role_delete(
        &self,
        request: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        answer!(self, self.call(request, AuthOp::RoleDelete).await, RoleDelete)
    }

    async fn role_grant_permission(
        &self,
        request: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        answer!(self, self.call(request, AuthOp::RoleGrantPermission).await, RoleGrantPermission)
    }

    async fn role_revoke_permission(
        &self,
        request: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        answer!(self, self.call(request, AuthOp::RoleRevokePermission).await, RoleRevokePermission)
    }
}
