//! Who is calling, when auth is on (etcd's `AuthInfoFromCtx`): the user of the `token` in the
//! request's metadata, or, with `--client-cert-auth` and no token, the common name of the
//! client's verified certificate. Also what the Auth service needs besides the log: password
//! hashing and checking (bcrypt, off the async threads) and issuing tokens.

pub mod jwt;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use tally_mvcc::{AuthInfo, MvccError, StateMachine};
use tonic::metadata::MetadataMap;

use crate::node::simple_tokens::{self, SimpleTokens};
use crate::tls::CertCommonName;
use jwt::Jwt;

/// The metadata keys etcd reads a token from (gRPC clients, and its gRPC gateway).
pub const TOKEN_KEYS: [&str; 2] = ["token", "authorization"];
/// etcd's default `--bcrypt-cost`.
pub const DEFAULT_BCRYPT_COST: u32 = 10;
/// How long a simple token issued elsewhere may take to be applied here before it is refused.
const TOKEN_APPLY_WAIT: Duration = Duration::from_secs(5);

/// `--auth-token`: how tokens are made.
pub enum Tokens {
    Simple(Arc<SimpleTokens>),
    Jwt(Jwt),
}

impl Tokens {
    /// Parses etcd's `--auth-token` value (`simple`, or `jwt,<options>`).
    pub fn from_flag(flag: &str, simple_ttl: Duration) -> Result<Tokens, String> {
        let (kind, options) = flag.split_once(',').unwrap_or((flag, ""));
        match kind {
            "simple" => Ok(Tokens::Simple(Arc::new(SimpleTokens::new(simple_ttl)))),
            "jwt" => Jwt::from_options(options).map(Tokens::Jwt),
            _ => Err(format!("--auth-token: unknown token type {kind:?} (simple or jwt)")),
        }
    }
}

pub struct Authenticator {
    pub tokens: Tokens,
    pub bcrypt_cost: u32,
    /// `--client-cert-auth`: a verified client certificate's common name is a user name.
    pub client_cert_auth: bool,
    sm: Arc<RwLock<StateMachine>>,
}

impl Authenticator {
    pub fn new(tokens: Tokens, bcrypt_cost: u32, client_cert_auth: bool, sm: Arc<RwLock<StateMachine>>) -> Self {
        Self { tokens, bcrypt_cost, client_cert_auth, sm }
    }

    /// The caller of a request: no one (revision 0) while auth is off or without credentials;
    /// a token that is not (or no longer) valid is etcd's "invalid auth token".
    pub async fn caller(&self, metadata: &MetadataMap, extensions: &http::Extensions) -> Result<AuthInfo, MvccError> {
        let revision = {
            let sm = self.sm.read().expect("sm lock");
            if !sm.auth.is_enabled() {
                return Ok(AuthInfo::default());
            }
            sm.auth.revision()
        };
        let token = TOKEN_KEYS.iter().find_map(|k| metadata.get(*k)).and_then(|v| v.to_str().ok());
        if let Some(token) = token {
            let token = token.strip_prefix("Bearer ").unwrap_or(token);
            return self.token_user(token, revision).await.ok_or(MvccError::InvalidAuthToken);
        }
        match extensions.get::<CertCommonName>() {
            Some(cn) if self.client_cert_auth => Ok(AuthInfo { user: cn.0.clone(), revision }),
            _ => Ok(AuthInfo::default()),
        }
    }

    async fn token_user(&self, token: &str, revision: u64) -> Option<AuthInfo> {
        match &self.tokens {
            // A simple token carries no revision: it is checked at the current one, as etcd does.
            Tokens::Simple(tokens) => {
                self.applied(simple_tokens::token_index(token)?).await;
                tokens.user(token).map(|user| AuthInfo { user, revision })
            }
            Tokens::Jwt(jwt) => jwt.verify(token).map(|(user, revision)| AuthInfo { user, revision }),
        }
    }

    /// Waits until this member has applied `index` (a token issued by a member ahead of us).
    async fn applied(&self, index: u64) {
        let deadline = Instant::now() + TOKEN_APPLY_WAIT;
        while self.sm.read().expect("sm lock").applied_index() < index && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The token to hand a user who just logged in; `logged` is the simple token the log
    /// registered on every member.
    pub fn issue(&self, logged: String, user: &str, revision: u64) -> Result<String, String> {
        match &self.tokens {
            Tokens::Simple(_) => Ok(logged),
            Tokens::Jwt(jwt) => jwt.sign(user, revision),
        }
    }

    /// etcd's stored form of a password: its bcrypt hash, base64-encoded.
    pub async fn hash_password(&self, password: String) -> Result<String, MvccError> {
        let cost = self.bcrypt_cost;
        let hashed = tokio::task::spawn_blocking(move || bcrypt::hash_with_result(password, cost))
            .await
            .map_err(|_| MvccError::AuthFailed)?
            .map_err(|_| MvccError::AuthFailed)?;
        let text = hashed.format_for_version(bcrypt::Version::TwoA);
        Ok(base64::engine::general_purpose::STANDARD.encode(text))
    }

    /// etcd's `CheckPassword`: the auth revision the password was found right at.
    pub async fn check_password(&self, name: &str, password: String) -> Result<u64, MvccError> {
        let (hash, revision) = {
            let sm = self.sm.read().expect("sm lock");
            if !sm.auth.is_enabled() {
                return Err(MvccError::AuthNotEnabled);
            }
            let user = sm.auth.user(name).ok_or(MvccError::AuthFailed)?;
            if user.options.is_some_and(|o| o.no_password) {
                return Err(MvccError::NoPasswordUser);
            }
            (user.password.clone(), sm.auth.revision())
        };
        let matches = tokio::task::spawn_blocking(move || {
            std::str::from_utf8(&hash).ok().is_some_and(|h| bcrypt::verify(password, h).unwrap_or(false))
        })
        .await
        .unwrap_or(false);
        if matches {
            Ok(revision)
        } else {
            Err(MvccError::AuthFailed)
        }
    }
}
