//! The management API of webhooks (SPEC: Webhooks), scope `admin`: endpoints per tenant and
//! mode; another tenant's ids are 404, exactly like unknown ones.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use taskward_model::webhook::{
    CreateWebhook, Delivery, DeliveryId, DeliveryList, DeliveryState, Webhook, WebhookId,
    WebhookList, WebhookWithSecret,
};
use taskward_model::{ErrorBody, Invalid, Scope};
use taskward_store::webhooks::{DeliveryQuery, NewWebhook};

use super::{guard, sign};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

/// How long a rotated-out secret keeps signing (SPEC: 24 h).
const ROTATION_OVERLAP_HOURS: i64 = 24;
/// Deliveries per page unless `limit` says otherwise, and the most it may say.
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

/// `{webhook_id}` in a path.
#[derive(Debug)]
pub struct WebhookPath(pub WebhookId);

impl<S: Send + Sync> FromRequestParts<S> for WebhookPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                ApiError::Invalid(Invalid::new("webhook_id", "is not valid UTF-8 text"))
            })?;
        Ok(WebhookPath(WebhookId::parse(&raw)?))
    }
}

/// `{webhook_id}/deliveries/{delivery_id}` in a path.
#[derive(Debug)]
pub struct DeliveryPath(pub WebhookId, pub DeliveryId);

impl<S: Send + Sync> FromRequestParts<S> for DeliveryPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path((webhook, delivery)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::Invalid(Invalid::new("path", "is not valid UTF-8 text")))?;
        Ok(DeliveryPath(
            WebhookId::parse(&webhook)?,
            DeliveryId::parse(&delivery)?,
        ))
    }
}

/// Registers an endpoint; the answer carries its signing secret, shown only here.
#[utoipa::path(
    post, path = "/v1/webhooks", operation_id = "create_webhook", tag = "webhooks",
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "The endpoint, with its secret (shown only now)", body = WebhookWithSecret),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, description = "Bad URL, a target on a private network, unknown event types", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateWebhook>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Admin)?;
    let events = req.validate()?;
    let url = guard::parse_url(&req.url)?;
    guard::check_target(&url, state.settings.webhooks.allow_private_networks).await?;
    let secret = sign::new_secret();
    let webhook = state
        .webhooks
        .create_webhook(&NewWebhook {
            webhook_id: WebhookId::random(),
            tenant: caller.tenant.clone(),
            url: url.to_string(),
            events,
            description: req.description,
            secret: secret.clone(),
            created_at: taskward_model::time::now(),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookWithSecret { webhook, secret }),
    )
        .into_response())
}

/// The tenant's endpoints, newest first (without secrets).
#[utoipa::path(
    get, path = "/v1/webhooks", operation_id = "list_webhooks", tag = "webhooks",
    responses(
        (status = 200, body = WebhookList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<WebhookList>, ApiError> {
    caller.require(Scope::Admin)?;
    let results = state.webhooks.list_webhooks(&caller.tenant).await?;
    Ok(Json(WebhookList { results }))
}

/// One endpoint (without its secret).
#[utoipa::path(
    get, path = "/v1/webhooks/{webhook_id}", operation_id = "get_webhook", tag = "webhooks",
    params(("webhook_id" = String, Path, description = "As POST /v1/webhooks returned it")),
    responses(
        (status = 200, body = Webhook),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Unknown (or another tenant's) endpoint", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    WebhookPath(id): WebhookPath,
) -> Result<Json<Webhook>, ApiError> {
    caller.require(Scope::Admin)?;
    state
        .webhooks
        .get_webhook(&caller.tenant, &id)
        .await?
        .map(Json)
        .ok_or(ApiError::WebhookNotFound)
}

/// Deletes an endpoint and its deliveries; nothing more is sent to it.
#[utoipa::path(
    delete, path = "/v1/webhooks/{webhook_id}", operation_id = "delete_webhook", tag = "webhooks",
    params(("webhook_id" = String, Path, description = "As POST /v1/webhooks returned it")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Unknown (or another tenant's) endpoint", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    WebhookPath(id): WebhookPath,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::Admin)?;
    if state.webhooks.delete_webhook(&caller.tenant, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::WebhookNotFound)
    }
}

/// A new signing secret; the old one keeps signing too for 24 h, so receivers can switch
/// without losing a delivery.
#[utoipa::path(
    post, path = "/v1/webhooks/{webhook_id}/rotate-secret", operation_id = "rotate_webhook_secret", tag = "webhooks",
    params(("webhook_id" = String, Path, description = "As POST /v1/webhooks returned it")),
    responses(
        (status = 200, description = "The endpoint with its new secret (shown only now)", body = WebhookWithSecret),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Unknown (or another tenant's) endpoint", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    WebhookPath(id): WebhookPath,
) -> Result<Json<WebhookWithSecret>, ApiError> {
    caller.require(Scope::Admin)?;
    let secret = sign::new_secret();
    let until = Utc::now() + chrono::Duration::hours(ROTATION_OVERLAP_HOURS);
    let webhook = state
        .webhooks
        .rotate_secret(&caller.tenant, &id, &secret, until)
        .await?
        .ok_or(ApiError::WebhookNotFound)?;
    Ok(Json(WebhookWithSecret { webhook, secret }))
}

/// Query of the deliveries log.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesParams {
    /// Deliveries per page, 1 to 500 (default 50).
    pub limit: Option<String>,
    /// Only deliveries older than this `delivery_id` (the last of the previous page).
    pub before: Option<String>,
    /// Only deliveries in this state: `pending`, `delivered` or `failed`.
    pub state: Option<String>,
}

impl DeliveriesParams {
    fn query(&self) -> Result<DeliveryQuery, Invalid> {
        let limit = match &self.limit {
            None => DEFAULT_PAGE,
            // Digits only: `+5` is no integer to the OpenAPI document.
            Some(s) => Some(s)
                .filter(|s| !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u32>().ok())
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| {
                    Invalid::new(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_PAGE}"),
                    )
                })?,
        };
        let before = self
            .before
            .as_deref()
            .map(DeliveryId::parse)
            .transpose()
            .map_err(|e| Invalid::new("before", e.message))?;
        let state = self
            .state
            .as_deref()
            .map(|s| {
                DeliveryState::parse(s).ok_or_else(|| {
                    Invalid::one_of(
                        "state",
                        "is not a delivery state",
                        ["pending", "delivered", "failed"],
                    )
                })
            })
            .transpose()?;
        Ok(DeliveryQuery {
            before,
            state,
            limit,
        })
    }
}

/// The endpoint's deliveries, newest first, each with its attempts.
#[utoipa::path(
    get, path = "/v1/webhooks/{webhook_id}/deliveries", operation_id = "webhook_deliveries", tag = "webhooks",
    params(
        ("webhook_id" = String, Path, description = "As POST /v1/webhooks returned it"),
        ("limit" = Option<u32>, Query, description = "Deliveries per page, 1 to 500 (default 50)"),
        ("before" = Option<String>, Query, description = "Only deliveries older than this delivery_id"),
        ("state" = Option<String>, Query, description = "pending, delivered or failed"),
    ),
    responses(
        (status = 200, body = DeliveryList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Unknown (or another tenant's) endpoint", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    WebhookPath(id): WebhookPath,
    ApiQuery(params): ApiQuery<DeliveriesParams>,
) -> Result<Json<DeliveryList>, ApiError> {
    caller.require(Scope::Admin)?;
    let q = params.query()?;
    if state
        .webhooks
        .get_webhook(&caller.tenant, &id)
        .await?
        .is_none()
    {
        return Err(ApiError::WebhookNotFound);
    }
    let mut results = state.webhooks.deliveries(&caller.tenant, &id, &q).await?;
    let has_more = results.len() > q.limit as usize;
    results.truncate(q.limit as usize);
    Ok(Json(DeliveryList { results, has_more }))
}

/// Sends a delivery's event again, as a new delivery (with a new `webhook-id`), due now.
#[utoipa::path(
    post, path = "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", operation_id = "redeliver_webhook_delivery", tag = "webhooks",
    params(
        ("webhook_id" = String, Path, description = "As POST /v1/webhooks returned it"),
        ("delivery_id" = String, Path, description = "As the deliveries log shows it"),
    ),
    responses(
        (status = 202, description = "The new delivery, queued", body = Delivery),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Unknown (or another tenant's) endpoint or delivery", body = ErrorBody),
        (status = 409, description = "The endpoint is disabled (it answered 410 Gone)", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    DeliveryPath(id, delivery): DeliveryPath,
) -> Result<Response, ApiError> {
    caller.require(Scope::Admin)?;
    let webhook = state
        .webhooks
        .get_webhook(&caller.tenant, &id)
        .await?
        .ok_or(ApiError::WebhookNotFound)?;
    if webhook.disabled {
        return Err(ApiError::Conflict {
            code: "webhook_disabled",
            message: "the endpoint is disabled (its receiver answered 410 Gone); create a new endpoint to send to it again".into(),
        });
    }
    let new = state
        .webhooks
        .redeliver(&caller.tenant, &id, delivery, Utc::now())
        .await?
        .ok_or(ApiError::DeliveryNotFound)?;
    Ok((StatusCode::ACCEPTED, Json(new)).into_response())
}
