//! The one error shape every endpoint answers with.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `{"success": false, "status": <http code>, "error": {...}}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Always `false`.
    pub success: bool,
    /// The HTTP status code, repeated for clients that only see the body.
    pub status: u16,
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// For people.
    pub message: String,
    /// For programs: `validation_error`, `not_found`, `conflict`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// A finer machine-readable reason, where one helps (`unknown_field`, `invalid_json`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Structured context, e.g. `{"field": "page_size", "accepted": [...]}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}
