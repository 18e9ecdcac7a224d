//! What the presented key may do (SPEC: Dashboard). Any valid key may ask about itself: a
//! client learns its scopes without trial and error, and nothing about other keys.

use axum::Json;
use taskward_model::{ErrorBody, KeySelf};

use crate::auth::Caller;

/// The presented key: its id, tenant and scopes.
#[utoipa::path(
    get, path = "/v1/keys/self", tag = "keys",
    responses(
        (status = 200, description = "The key that signed this request", body = KeySelf),
        (status = 401, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn key_self(caller: Caller) -> Json<KeySelf> {
    Json(KeySelf::from(caller.key.as_ref()))
}
