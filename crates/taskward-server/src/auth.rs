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
use axum::http::header;
use axum::http::request::Parts;
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
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::Unauthorized(
                "missing API key: send Authorization: Bearer sk_…",
            ))?;
        let malformed =
            ApiError::Unauthorized("malformed Authorization header: expected Bearer sk_…");
        let value = header.to_str().map_err(|_| malformed)?;
        let (scheme, token) = value.trim().split_once(' ').ok_or(ApiError::Unauthorized(
            "malformed Authorization header: expected Bearer sk_…",
        ))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::Unauthorized(
                "malformed Authorization header: expected Bearer sk_…",
            ));
        }
        let key = ApiKey::parse(token.trim()).ok_or(ApiError::Unauthorized("invalid API key"))?;
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

/// Cache of key hash → stored record.
#[derive(Debug)]
pub struct KeyCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Arc<KeyRecord>, Instant)>>,
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
        let hash = key.hash();
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Arc<KeyRecord>, Instant)>> {
        // Entries are inserted whole; a poisoned map is still consistent.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}
