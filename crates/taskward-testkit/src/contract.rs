//! What the reference API's wire contract requires of a response, as assertions: a task's
//! shape as a generated client reads it, and SPEC's error shape.

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

/// The task ids of a list response.
pub fn ids(list: &Value) -> Vec<String> {
    list["results"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list response: {list}"))
        .iter()
        .map(|t| {
            assert_task_shape(t);
            t["task_id"].as_str().expect("task_id").to_owned()
        })
        .collect()
}

/// Built-in task types and statuses of the reference API (the wire contract).
const REFERENCE_TASK_TYPES: [&str; 17] = [
    "api_namespaces_create",
    "api_buckets_objects_create",
    "api_buckets_delete",
    "api_buckets_batches_process",
    "api_buckets_batches_submit",
    "api_buckets_uploads_create",
    "api_buckets_uploads_confirm",
    "api_buckets_uploads_batch_confirm",
    "api_taxonomies_create",
    "api_taxonomies_execute",
    "api_taxonomies_materialize",
    "engine_feature_extractor_run",
    "engine_inference_run",
    "engine_object_processing",
    "engine_cluster_build",
    "thumbnail",
    "materialize",
];
const REFERENCE_STATUSES: [&str; 13] = [
    "PENDING",
    "IN_PROGRESS",
    "PROCESSING",
    "COMPLETED",
    "FAILED",
    "CANCELED",
    "UNKNOWN",
    "SKIPPED",
    "DRAFT",
    "ACTIVE",
    "ARCHIVED",
    "SUSPENDED",
    "COMPLETED_WITH_ERRORS",
];

/// What a client generated from the reference API's schema requires of a task: the required
/// fields present with the right types, enums spelled exactly, optional fields typed.
pub fn assert_task_shape(t: &Value) {
    let is_items = |v: &Value| {
        v.is_null()
            || v.as_array()
                .is_some_and(|a| a.iter().all(|i| i.is_string() || i.is_object()))
    };
    assert!(t["task_id"].is_string(), "task_id: {t}");
    let tt = t["task_type"]
        .as_str()
        .unwrap_or_else(|| panic!("task_type: {t}"));
    assert!(
        REFERENCE_TASK_TYPES.contains(&tt) || tt.starts_with("custom_"),
        "task_type {tt}"
    );
    let st = t["status"]
        .as_str()
        .unwrap_or_else(|| panic!("status: {t}"));
    assert!(REFERENCE_STATUSES.contains(&st), "status {st}");
    assert!(is_items(&t["inputs"]), "inputs: {t}");
    assert!(is_items(&t["outputs"]), "outputs: {t}");
    assert!(
        t["additional_data"].is_null() || t["additional_data"].is_object(),
        "additional_data: {t}"
    );
    assert!(
        t["error_message"].is_null() || t["error_message"].is_string(),
        "error_message: {t}"
    );
    assert!(
        t["description"].is_null() || t["description"].is_string(),
        "description: {t}"
    );
    assert_eq!(t["error"], t["error_message"]);
    assert!(t["version"].is_u64());
    assert!(t["created_at"].is_string() && t["updated_at"].is_string());
}

/// Asserts SPEC's error shape with `status`, and returns the body.
pub async fn assert_error(res: Response, status: StatusCode) -> Value {
    let got = res.status();
    let body: Value = res
        .json()
        .await
        .unwrap_or_else(|e| panic!("{got}: body is not JSON: {e}"));
    assert_eq!(got, status, "{body}");
    assert_error_shape(&body, status.as_u16());
    body
}

/// `{"success": false, "status": N, "error": {"message": "...", "type": "...", ...}}`
pub fn assert_error_shape(body: &Value, status: u16) {
    assert_eq!(body["success"], json!(false), "{body}");
    assert_eq!(body["status"], json!(status), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["error"]["type"].is_string(), "{body}");
}
