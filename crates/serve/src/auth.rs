//! Identity and roles: argon2id password hashes, random API tokens and session secrets kept
//! as SHA-256 and compared in constant time, the four roles, and the login rate limit (per
//! user and per address, on an injected clock).

use crate::store::{Session, Store, StoreError, TokenRecord, User};
use anyhow::{bail, Result};
use argon2::password_hash::{phc::PasswordHash, PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;

/// Seconds since the Unix epoch; injected so tests never wait.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// What a person may do, each role including those below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Role {
    /// Sees runs, steps, approvals.
    Viewer,
    /// Starts and resumes runs, answers runbook steps.
    Operator,
    /// Approves pause steps (not of a run they started, under the two-person rule).
    Approver,
    /// Manages users; reads the audit log.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "viewer" => Role::Viewer,
            "operator" => Role::Operator,
            "approver" => Role::Approver,
            "admin" => Role::Admin,
            _ => return None,
        })
    }
}

/// A user name: 1 to 64 letters, digits, `.`, `-`, `_` or `@` (it is shown in the journal,
/// the dashboard and cookies' owners).
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'));
    if !ok {
        bail!("user name `{name}`: 1 to 64 letters, digits, `.`, `-`, `_` or `@`");
    }
    Ok(())
}

/// `n` random bytes from the operating system.
pub fn random_bytes(n: usize) -> Result<Vec<u8>> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("no randomness from the system: {e}"))?;
    Ok(b)
}

/// `n` random bytes as URL-safe base64 without padding.
pub fn random_text(n: usize) -> Result<String> {
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes(n)?))
}

pub fn sha256(text: &str) -> Vec<u8> {
    Sha256::digest(text.as_bytes()).to_vec()
}

/// Whether `secret` hashes to `expected`, compared in constant time.
pub fn secret_matches(secret: &str, expected: &[u8]) -> bool {
    sha256(secret).ct_eq(expected).into()
}

/// The argon2id PHC string of `password`, with a random salt.
pub fn hash_password(password: &str) -> Result<String> {
    let salt = random_bytes(16)?;
    let hash = Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?;
    Ok(hash.to_string())
}

/// Whether `password` is the one `phc` was made from.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash to verify against when the user does not exist: the answer takes as long.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("not a password of anyone").unwrap_or_default())
}

/// The user whose name and password these are, if any (the decoy is verified otherwise).
pub fn check_password(
    store: &dyn Store,
    name: &str,
    password: &str,
) -> Result<Option<User>, StoreError> {
    match store.user(name)? {
        Some(u) if verify_password(password, &u.password_hash) => Ok(Some(u)),
        Some(_) => Ok(None),
        None => {
            let _ = verify_password(password, decoy_hash());
            Ok(None)
        }
    }
}

/// Makes and keeps an API token for `user`: `ferry_ID_SECRET`, returned once.
pub fn new_token(store: &dyn Store, user: &str, now: i64) -> Result<String> {
    let id = hex(&random_bytes(8)?);
    let secret = random_text(32)?;
    store.put_token(&TokenRecord {
        id: id.clone(),
        secret_sha256: sha256(&secret),
        user: user.into(),
        created: now,
    })?;
    Ok(format!("ferry_{id}_{secret}"))
}

/// The user of a bearer token, if it is one.
pub fn token_user(store: &dyn Store, token: &str) -> Result<Option<User>, StoreError> {
    let Some((id, secret)) = token.strip_prefix("ferry_").and_then(|t| t.split_once('_')) else {
        return Ok(None);
    };
    match store.token(id)? {
        Some(t) if secret_matches(secret, &t.secret_sha256) => store.user(&t.user),
        _ => Ok(None),
    }
}

/// How long a session lasts: a night's work.
pub const SESSION_S: i64 = 12 * 3600;

/// Opens a session for `user`; returns it and the cookie value `ID.SECRET`.
pub fn new_session(store: &dyn Store, user: &str, now: i64) -> Result<(Session, String)> {
    let id = hex(&random_bytes(12)?);
    let secret = random_text(32)?;
    let session = Session {
        id: id.clone(),
        secret_sha256: sha256(&secret),
        user: user.into(),
        csrf: random_text(24)?,
        created: now,
        expires: now + SESSION_S,
    };
    store.put_session(&session)?;
    Ok((session, format!("{id}.{secret}")))
}

/// The open session and its user of a cookie value, if it is one.
pub fn session_user(
    store: &dyn Store,
    cookie: &str,
    now: i64,
) -> Result<Option<(Session, User)>, StoreError> {
    let Some((id, secret)) = cookie.split_once('.') else {
        return Ok(None);
    };
    match store.session(id)? {
        Some(s) if secret_matches(secret, &s.secret_sha256) && now < s.expires => {
            Ok(store.user(&s.user)?.map(|u| (s, u)))
        }
        _ => Ok(None),
    }
}

/// Whether a CSRF token given with a request is the session's, in constant time.
pub fn csrf_matches(session: &Session, given: &str) -> bool {
    session.csrf.as_bytes().ct_eq(given.as_bytes()).into()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Failed logins allowed per user, and per address, before logins are refused.
pub const MAX_FAILURES: u32 = 5;
/// How long logins are refused after that, in seconds.
pub const LOCKOUT_S: i64 = 15 * 60;

/// The login rate limit: after `MAX_FAILURES` failed logins for a user name, or from an
/// address, within `LOCKOUT_S`, every login for it (right password or not) is refused until
/// `LOCKOUT_S` after the last failure.
pub struct LoginLimiter {
    clock: Clock,
    failures: Mutex<HashMap<String, (u32, i64)>>,
}

impl LoginLimiter {
    pub fn new(clock: Clock) -> LoginLimiter {
        LoginLimiter {
            clock,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn keys(user: &str, address: &str) -> [String; 2] {
        [format!("user:{user}"), format!("addr:{address}")]
    }

    /// Until when logins of `user` from `address` are refused, if they are.
    pub fn refused_until(&self, user: &str, address: &str) -> Option<i64> {
        let now = (self.clock)();
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        Self::keys(user, address)
            .iter()
            .filter_map(|k| map.get(k))
            .filter(|(n, last)| *n >= MAX_FAILURES && now < last + LOCKOUT_S)
            .map(|(_, last)| last + LOCKOUT_S)
            .max()
    }

    pub fn failed(&self, user: &str, address: &str) {
        let now = (self.clock)();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for k in Self::keys(user, address) {
            let e = map.entry(k).or_insert((0, now));
            if now >= e.1 + LOCKOUT_S {
                *e = (0, now);
            }
            e.0 += 1;
            e.1 = now;
        }
    }

    /// A successful login clears the user's failures (not the address's).
    pub fn succeeded(&self, user: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&format!("user:{user}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    #[test]
    fn roles_are_ordered_and_named() {
        assert!(Role::Viewer < Role::Operator);
        assert!(Role::Operator < Role::Approver);
        assert!(Role::Approver < Role::Admin);
        for r in [Role::Viewer, Role::Operator, Role::Approver, Role::Admin] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
    }

    #[test]
    fn a_password_verifies_against_its_argon2id_hash_only() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsf", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    /// Five failures lock the user and the address out for LOCKOUT_S after the last one;
    /// the clock is moved, never waited for.
    #[test]
    fn the_login_limit_refuses_after_five_failures_until_the_lockout_ends() {
        let now = Arc::new(AtomicI64::new(1_000));
        let n = now.clone();
        let limiter = LoginLimiter::new(Arc::new(move || n.load(Ordering::SeqCst)));
        for _ in 0..MAX_FAILURES - 1 {
            limiter.failed("ann", "10.0.0.1");
        }
        assert_eq!(limiter.refused_until("ann", "10.0.0.1"), None);
        limiter.failed("ann", "10.0.0.1");
        assert_eq!(
            limiter.refused_until("ann", "10.0.0.1"),
            Some(1_000 + LOCKOUT_S)
        );
        // Another address for the same user, and another user from the same address.
        assert!(limiter.refused_until("ann", "10.0.0.2").is_some());
        assert!(limiter.refused_until("bob", "10.0.0.1").is_some());
        assert_eq!(limiter.refused_until("bob", "10.0.0.2"), None);
        now.store(1_000 + LOCKOUT_S, Ordering::SeqCst);
        assert_eq!(limiter.refused_until("ann", "10.0.0.1"), None);
    }
}
