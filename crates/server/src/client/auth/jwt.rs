//! etcd's JWT tokens (`--auth-token jwt,pub-key=...,priv-key=...,sign-method=RS256,ttl=5m`):
//! signed claims of user name and auth revision, checked by signature alone, so they outlive a
//! restart and any member can check them without having seen them issued.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

/// etcd's default JWT lifetime.
const DEFAULT_TTL: Duration = Duration::from_secs(300);

#[derive(serde::Serialize, serde::Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

pub struct Jwt {
    algorithm: Algorithm,
    sign: Option<EncodingKey>,
    verify: DecodingKey,
    ttl: Duration,
}

impl Jwt {
    /// From etcd's option list after `jwt,`.
    pub fn from_options(options: &str) -> Result<Jwt, String> {
        let mut pub_key = None;
        let mut priv_key = None;
        let mut method = None;
        let mut ttl = DEFAULT_TTL;
        for pair in options.split(',').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').ok_or_else(|| format!("invalid auth token option {pair:?}"))?;
            match name {
                "pub-key" => pub_key = Some(read(value)?),
                "priv-key" => priv_key = Some(read(value)?),
                "sign-method" => method = Some(value.to_owned()),
                "ttl" => ttl = crate::go_duration::parse(value)?,
                _ => return Err(format!("unknown auth token option {name:?}")),
            }
        }
        let method = method.ok_or("the jwt auth token needs sign-method")?;
        let algorithm: Algorithm = method.parse().map_err(|_| format!("unsupported jwt sign-method {method:?}"))?;
        let (sign, verify) = keys(algorithm, pub_key.as_deref(), priv_key.as_deref())?;
        Ok(Jwt { algorithm, sign, verify, ttl })
    }

    /// A token for `user` at auth revision `revision`.
    pub fn sign(&self, user: &str, revision: u64) -> Result<String, String> {
        let key = self.sign.as_ref().ok_or("auth: token signing attempted with verify-only key")?;
        let exp = (SystemTime::now() + self.ttl).duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let claims = Claims { username: user.to_owned(), revision, exp };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, key).map_err(|e| e.to_string())
    }

    /// The user and auth revision of a valid, unexpired token.
    pub fn verify(&self, token: &str) -> Option<(String, u64)> {
        let mut validation = Validation::new(self.algorithm);
        validation.leeway = 0;
        validation.required_spec_claims = ["exp".to_owned()].into();
        let data = jsonwebtoken::decode::<Claims>(token, &self.verify, &validation).ok()?;
        Some((data.claims.username, data.claims.revision))
    }
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("reading jwt key {path}: {e}"))
}

/// The signing key (absent: verify only, as etcd allows) and the verifying key.
fn keys(
    algorithm: Algorithm,
    public: Option<&[u8]>,
    private: Option<&[u8]>,
) -> Result<(Option<EncodingKey>, DecodingKey), String> {
    use Algorithm::*;
    let bad = |e: jsonwebtoken::errors::Error| format!("jwt key: {e}");
    Ok(match algorithm {
        HS256 | HS384 | HS512 => {
            let secret = private.ok_or("the jwt auth token needs priv-key for HMAC")?;
            (Some(EncodingKey::from_secret(secret)), DecodingKey::from_secret(secret))
        }
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => (
            private.map(EncodingKey::from_rsa_pem).transpose().map_err(bad)?,
            DecodingKey::from_rsa_pem(public.ok_or("the jwt auth token needs pub-key")?).map_err(bad)?,
        ),
        ES256 | ES384 => (
            private.map(EncodingKey::from_ec_pem).transpose().map_err(bad)?,
            DecodingKey::from_ec_pem(public.ok_or("the jwt auth token needs pub-key")?).map_err(bad)?,
        ),
        EdDSA => (
            private.map(EncodingKey::from_ed_pem).transpose().map_err(bad)?,
            DecodingKey::from_ed_pem(public.ok_or("the jwt auth token needs pub-key")?).map_err(bad)?,
        ),
    })
}
