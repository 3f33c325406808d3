//! etcd's simple tokens: `<16 random letters>.<log index>`, registered on every member when the
//! Authenticate entry is applied there (so any member accepts a token any member issued), kept in
//! memory only (a restarted member knows again only the logins it replays from its log after
//! its last snapshot; etcd, which replays less, forgets more), and dropped after `--auth-token-ttl`
//! without use, when their user is deleted or changes password, or when auth is disabled.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tally_mvcc::CommandResponse;
use tally_proto::tally_v1::auth_command::Op as AuthOp;
use tally_proto::tally_v1::auth_result::Result as Answer;
use tally_proto::tally_v1::{command::Op, Command};

/// etcd's default `--auth-token-ttl` (seconds).
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

struct Token {
    user: String,
    last_used: Instant,
}

/// How often expired tokens are swept out (etcd's keeper also looks once a second).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Registry {
    tokens: HashMap<String, Token>,
    swept: Option<Instant>,
}

pub struct SimpleTokens {
    ttl: Duration,
    registry: Mutex<Registry>,
}

impl SimpleTokens {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, registry: Mutex::new(Registry::default()) }
    }

    /// The user a live token belongs to; using it keeps it alive for another TTL.
    pub fn user(&self, token: &str) -> Option<String> {
        let mut registry = self.registry.lock().expect("tokens lock");
        let now = Instant::now();
        if registry.swept.is_none_or(|at| now.duration_since(at) >= SWEEP_EVERY) {
            registry.tokens.retain(|_, t| now.duration_since(t.last_used) < self.ttl);
            registry.swept = Some(now);
        }
        let t = registry.tokens.get_mut(token).filter(|t| now.duration_since(t.last_used) < self.ttl)?;
        t.last_used = now;
        Some(t.user.clone())
    }

    /// What an applied command means for tokens (called by the driver for fresh entries).
    pub fn applied(&self, cmd: &Command, response: &CommandResponse) {
        let (Some(Op::Auth(auth)), CommandResponse::Auth(result)) = (&cmd.op, response) else { return };
        let tokens = &mut self.registry.lock().expect("tokens lock").tokens;
        match (&auth.op, &result.result) {
            (Some(AuthOp::Authenticate(a)), Some(Answer::Authenticate(resp))) => {
                tokens.insert(resp.token.clone(), Token { user: a.name.clone(), last_used: Instant::now() });
            }
            (Some(AuthOp::UserDelete(r)), _) => tokens.retain(|_, t| t.user != r.name),
            (Some(AuthOp::UserChangePassword(r)), _) => tokens.retain(|_, t| t.user != r.name),
            (Some(AuthOp::Disable(_)), _) => tokens.clear(),
            _ => {}
        }
    }
}

/// The log index a simple token names, if it has etcd's shape.
pub fn token_index(token: &str) -> Option<u64> {
    let (_, index) = token.split_once('.')?;
    index.parse().ok()
}

/// etcd's `genTokenPrefix`: 16 letters from the system's random source.
pub fn new_prefix() -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).expect("reading /dev/urandom");
    bytes.iter().map(|b| LETTERS[usize::from(*b) % LETTERS.len()] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_proto::etcdserverpb::{AuthUserDeleteRequest, AuthUserDeleteResponse, AuthenticateResponse};
    use tally_proto::tally_v1::{AuthCommand, AuthResult, AuthenticateCommand};

    fn login(tokens: &SimpleTokens, user: &str, token: &str) {
        let cmd = Command {
            op: Some(Op::Auth(AuthCommand {
                op: Some(AuthOp::Authenticate(AuthenticateCommand { name: user.into(), ..Default::default() })),
            })),
            ..Default::default()
        };
        let resp = AuthResult {
            result: Some(Answer::Authenticate(AuthenticateResponse { token: token.into(), ..Default::default() })),
        };
        tokens.applied(&cmd, &CommandResponse::Auth(resp));
    }

    #[test]
    fn tokens_expire_when_unused_and_go_with_their_user() {
        let tokens = SimpleTokens::new(Duration::from_millis(200));
        login(&tokens, "alice", "abc.7");
        login(&tokens, "bob", "xyz.8");
        assert_eq!(tokens.user("abc.7").as_deref(), Some("alice"));
        let delete = Command {
            op: Some(Op::Auth(AuthCommand {
                op: Some(AuthOp::UserDelete(AuthUserDeleteRequest { name: "bob".into() })),
            })),
            ..Default::default()
        };
        let deleted = AuthResult { result: Some(Answer::UserDelete(AuthUserDeleteResponse::default())) };
        tokens.applied(&delete, &CommandResponse::Auth(deleted));
        assert_eq!(tokens.user("xyz.8"), None);
        std::thread::sleep(Duration::from_millis(120));
        assert!(tokens.user("abc.7").is_some(), "use keeps a token alive");
        std::thread::sleep(Duration::from_millis(120));
        assert!(tokens.user("abc.7").is_some());
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(tokens.user("abc.7"), None);
        assert_eq!(token_index("abc.7"), Some(7));
        assert_eq!(new_prefix().len(), 16);
    }
}
