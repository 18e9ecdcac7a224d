//! `ApiError`: every error that leaves a handler or an extractor, rendered in SPEC's one shape.
//!
//! Handlers use `?` on store and validation errors; the `From` conversions decide the status.
//! 5xx causes are logged once here, inside the request's span; clients get a short message.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use taskward_model::{ErrorBody, ErrorDetail, Invalid, Scope};
use taskward_store::StoreError;

/// An error response.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("this API key lacks the `{}` scope", .0.as_str())]
    Forbidden(Scope),
    #[error("task not found")]
    TaskNotFound,
    #[error("webhook endpoint not found")]
    WebhookNotFound,
    #[error("webhook delivery not found")]
    DeliveryNotFound,
    #[error("no route for {0}")]
    RouteNotFound(String),
    #[error("method not allowed on this path; the Allow header lists the methods it takes")]
    MethodNotAllowed,
    /// 409; `code` tells the two causes apart (`task_terminal`, `task_exists`).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Other writers kept changing the task between this write's read and its compare-and-set.
    #[error("too many concurrent writes to this task; retry shortly")]
    Contention,
    #[error("If-Match version {expected} is not the current version {current}")]
    PreconditionFailed { expected: u64, current: u64 },
    #[error("request body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    #[error("request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// The endpoint answers only in this media type and `Accept` rules it out.
    #[error("this endpoint answers only {0}; send Accept: {0} (or no Accept)")]
    NotAcceptable(&'static str),
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("{0}")]
    Invalid(#[from] Invalid),
    #[error("the {0} tier is unavailable; retry shortly")]
    Unavailable(&'static str),
    #[error("too many requests for this API key; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("the request did not complete within {0} ms; retry shortly")]
    RequestTimeout(u64),
    #[error("the request body did not arrive within {0} ms")]
    BodyTimeout(u64),
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TaskNotFound
            | ApiError::WebhookNotFound
            | ApiError::DeliveryNotFound
            | ApiError::RouteNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } | ApiError::Contention => StatusCode::CONFLICT,
            ApiError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::MalformedJson(_) | ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) | ApiError::RequestTimeout(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// `error.type` and `error.code`. Every error has a code (README's error shape shows
    /// one), so clients can branch on it without parsing messages.
    pub fn kind_and_code(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::Unauthorized(_) => ("unauthorized", "invalid_api_key"),
            ApiError::Forbidden(_) => ("forbidden", "missing_scope"),
            ApiError::TaskNotFound => ("not_found", "task_not_found"),
            ApiError::WebhookNotFound => ("not_found", "webhook_not_found"),
            ApiError::DeliveryNotFound => ("not_found", "delivery_not_found"),
            ApiError::RouteNotFound(_) => ("not_found", "route_not_found"),
            ApiError::MethodNotAllowed => ("method_not_allowed", "method_not_allowed"),
            ApiError::Conflict { code, .. } => ("conflict", code),
            ApiError::Contention => ("conflict", "write_contention"),
            ApiError::PreconditionFailed { .. } => ("precondition_failed", "version_mismatch"),
            ApiError::PayloadTooLarge(_) => ("payload_too_large", "body_too_large"),
            ApiError::UnsupportedMediaType => ("unsupported_media_type", "not_json"),
            ApiError::NotAcceptable(_) => ("not_acceptable", "not_acceptable"),
            ApiError::MalformedJson(_) => ("validation_error", "invalid_json"),
            ApiError::Invalid(_) => ("validation_error", "invalid_value"),
            ApiError::Unavailable(_) => ("unavailable", "tier_unavailable"),
            ApiError::RequestTimeout(_) => ("unavailable", "request_timeout"),
            ApiError::RateLimited { .. } => ("rate_limited", "rate_limited"),
            ApiError::BodyTimeout(_) => ("timeout", "request_body_timeout"),
            ApiError::Internal => ("internal_error", "internal_error"),
        }
    }

    fn details(&self) -> Option<serde_json::Value> {
        match self {
            ApiError::Invalid(inv) => {
                let mut d = json!({ "field": inv.field });
                if let Some(acc) = &inv.accepted {
                    d["accepted"] = json!(acc);
                }
                Some(d)
            }
            ApiError::Forbidden(scope) => Some(json!({ "required_scope": scope.as_str() })),
            ApiError::NotAcceptable(media) => Some(json!({ "accepted": [media] })),
            ApiError::PreconditionFailed { current, .. } => {
                Some(json!({ "current_version": current }))
            }
            ApiError::RateLimited { retry_after_secs } => {
                Some(json!({ "retry_after_secs": retry_after_secs }))
            }
            _ => None,
        }
    }

    /// The error body, for rendering outside a handler (the panic catcher).
    pub fn body(&self) -> ErrorBody {
        let (kind, code) = self.kind_and_code();
        ErrorBody {
            success: false,
            status: self.status().as_u16(),
            error: ErrorDetail {
                message: self.to_string(),
                kind: kind.into(),
                code: Some(code.into()),
                details: self.details(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut res = (status, axum::Json(self.body())).into_response();
        match &self {
            ApiError::Unauthorized(_) => {
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Unavailable(_) | ApiError::RequestTimeout(_) | ApiError::Contention => {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::RateLimited { retry_after_secs } => {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        res
    }
}

impl ApiError {
    /// The same error with a more precise `code` when it is a 409: a handler knows which
    /// rule its conflicts come from (a create: the id exists with other content; an update:
    /// the task is terminal).
    pub fn conflict_code(self, code: &'static str) -> ApiError {
        match self {
            ApiError::Conflict { message, .. } => ApiError::Conflict { code, message },
            other => other,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::TaskNotFound,
            StoreError::Conflict(message) => ApiError::Conflict {
                code: "conflict",
                message,
            },
            StoreError::Invalid(invalid) => ApiError::Invalid(invalid),
            StoreError::VersionMismatch { expected, current } => {
                ApiError::PreconditionFailed { expected, current }
            }
            StoreError::Contention => ApiError::Contention,
            StoreError::Unavailable { tier, source } => {
                tracing::error!(
                    tier,
                    error = %source,
                    request_id = crate::telemetry::request_id(),
                    "tier unavailable"
                );
                ApiError::Unavailable(tier)
            }
            e @ (StoreError::Internal(_) | StoreError::Config(_)) => {
                tracing::error!(
                    error = ?anyhow::Error::from(e),
                    request_id = crate::telemetry::request_id(),
                    "storage failure"
                );
                ApiError::Internal
            }
        }
    }
}
