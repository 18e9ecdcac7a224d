//! Who is calling: the `Caller` extractor and the short-lived key cache behind it.
//!
//! A key is found by its SHA-256, so the secret is never compared byte by byte (no timing
//! side channel) and never stored. Successful lookups are cached for `auth.key_cache_ttl_ms`
//! so the hot path costs no database round trip; that TTL is also how long a revocation takes
//! to reach a running server. Unknown keys are not cached, so a key minted by `taskward keys
//! create` works at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use taskward_model::{ApiKey, KeyRecord, Scope, Tenant};
use taskward_store::{Keys, StoreError};

use crate::error::ApiError;
use crate::state::AppState;

/// Most cached keys; the cache is cleared when it would grow past this.
const KEY_CACHE_CAPACITY: usize = 10_000;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key: Arc<KeyRecord>,
    pub tenant: Tenant,
}

impl Caller {
    /// Fails with 403 unless the key has `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.key.scopes.contains(scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(scope))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers).map_err(|e| match e {
            BearerError::Missing => {
                ApiError::Unauthorized("missing API key: send Authorization: Bearer sk_…")
            }
            BearerError::Malformed => {
                ApiError::Unauthorized("malformed Authorization header: expected Bearer sk_…")
            }
        })?;
        let key = ApiKey::parse(token).ok_or(ApiError::Unauthorized("invalid API key"))?;
        let record = state.keys.lookup(&state.key_store, &key).await?;
        if record.revoked_at.is_some() {
            return Err(ApiError::Unauthorized("this API key has been revoked"));
        }
        Ok(Caller {
            tenant: record.tenant(),
            key: record,
        })
    }
}

/// Why a request carries no bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header that is not `Bearer <token>` in visible ASCII.
    Malformed,
}

/// The token of `Authorization: Bearer <token>`: the scheme in any case, spaces around the
/// header and between scheme and token ignored. The one parser of that header, so the rate
/// limit (which runs before authentication) and `Caller` always agree on which key a
/// request presents. The token is not checked for a key's shape here.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, BearerError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(BearerError::Missing)?
        .to_str()
        .map_err(|_| BearerError::Malformed)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(BearerError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::Malformed);
    }
    // The header was trimmed, so a token of only spaces cannot reach here.
    Ok(token.trim_start())
}

/// Key digest → the stored record and when it was read.
type Entries = HashMap<[u8; 32], (Arc<KeyRecord>, Instant)>;

/// Cache of key digest → stored record (the raw SHA-256: no hex string built per request).
#[derive(Debug)]
pub struct KeyCache {
    ttl: Duration,
    entries: Mutex<Entries>,
}

impl KeyCache {
    /// A cache keeping records for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        KeyCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    async fn lookup(&self, store: &Keys, key: &ApiKey) -> Result<Arc<KeyRecord>, ApiError> {
        let hash = key.digest();
        let cached = self.lock().get(&hash).cloned();
        if let Some((rec, at)) = &cached {
            if at.elapsed() < self.ttl {
                return Ok(rec.clone());
            }
        }
        let found = match store.find(key).await {
            Ok(found) => found,
            // The durable tier is down: a key it confirmed earlier stays trusted, so reads of
            // cached tasks keep being served (SPEC). A revocation could not be read anyway.
            // Re-cached, so only one request per TTL waits for the durable timeout.
            Err(e @ StoreError::Unavailable { .. }) => match cached {
                Some((rec, _)) => {
                    self.lock().insert(hash, (rec.clone(), Instant::now()));
                    return Ok(rec);
                }
                None => return Err(e.into()),
            },
            Err(e) => return Err(e.into()),
        };
        let rec = found.ok_or(ApiError::Unauthorized("invalid API key"))?;
        let rec = Arc::new(rec);
        let mut entries = self.lock();
        if entries.len() >= KEY_CACHE_CAPACITY {
            entries.clear();
        }
        entries.insert(hash, (rec.clone(), Instant::now()));
        Ok(rec)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // Entries are inserted whole; a poisoned map is still consistent.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn parse(value: &[u8]) -> Result<String, BearerError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(value).expect("a header value"),
        );
        bearer_token(&headers).map(str::to_owned)
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            assert_eq!(parse(format!("{scheme} tok").as_bytes()), Ok("tok".into()));
        }
    }

    #[test]
    fn spaces_around_and_between_are_ignored() {
        assert_eq!(parse(b"  Bearer    tok  "), Ok("tok".into()));
        assert_eq!(parse(b"Bearer\ttok"), Err(BearerError::Malformed));
    }

    #[test]
    fn a_missing_header_or_token_and_other_schemes_are_refused() {
        assert_eq!(bearer_token(&HeaderMap::new()), Err(BearerError::Missing));
        for value in [&b"Bearer"[..], b"Bearer    ", b"", b"tok", b"Basic tok"] {
            assert_eq!(parse(value), Err(BearerError::Malformed), "{value:?}");
        }
    }

    #[test]
    fn a_non_ascii_header_is_malformed_not_a_panic() {
        assert_eq!(
            parse("Bearer sk_tést".as_bytes()),
            Err(BearerError::Malformed)
        );
        assert_eq!(parse(b"Bearer \xff\xfe"), Err(BearerError::Malformed));
    }
}
