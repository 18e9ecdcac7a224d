//! The OpenAPI 3.1 document, built at start from the code: the handlers' `#[utoipa::path]`
//! annotations and the model's `ToSchema` derives give the operations and the response
//! types, and [`refine`] adds what utoipa cannot say but the server enforces, from the same
//! constants the validators use: the task-type registry of the running configuration, the
//! id pattern and reserved ids, the ETag grammar, paging bounds and which paging parameters
//! exclude each other, the filter language (these request-side schemas live in
//! `openapi/requests.rs`), examples, and links for stateful clients.
//!
//! The rule for every schema here: a request it accepts, the server accepts (no 422 for a
//! schema-valid request), and a request it refuses, the server refuses. `ci/schemathesis.sh`
//! checks both directions against a release build.

mod requests;

use serde_json::{json, Map, Value};
use taskward_model::TaskTypes;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

use crate::api::{events, health, keys, tasks};
#[cfg(test)]
use crate::router::RESERVED_TASK_IDS;
use crate::webhooks::api as webhooks;
use requests::{
    create_schema, deliveries_parameters, delivery_id_parameter, event_stream_parameters,
    filter_schemas, if_match_parameter, if_none_match_parameter, list_body_schema,
    paging_parameter, task_id_parameter, task_type_parameter, update_schema, wait_parameter,
    webhook_id_parameter,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "taskward", description = "Task-status service, wire-compatible with the reference Tasks API. Every error answers `{\"success\": false, \"status\", \"error\": {\"message\", \"type\", \"code\", \"details\"?}}`."),
    paths(
        tasks::get_task, tasks::list_active_tasks, tasks::list_tasks, tasks::kill_task,
        tasks::kill_task_post, tasks::create_task, tasks::update_task,
        events::history, events::counts, events::task_events, events::tenant_events,
        webhooks::create, webhooks::list, webhooks::get, webhooks::delete,
        webhooks::rotate_secret, webhooks::deliveries, webhooks::redeliver,
        keys::key_self, health::healthz, health::readyz, health::openapi_json,
    ),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sk_live_… / sk_test_…")
                    .description(Some("`Authorization: Bearer sk_live_…` or `sk_test_…`"))
                    .build(),
            ),
        );
    }
}

/// The document for a server accepting `task_types` (built once per server, at start).
pub fn document(task_types: &TaskTypes) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|_| json!({}));
    refine(&mut doc, task_types);
    doc
}

/// An example task, as every task endpoint renders it.
fn task_example() -> Value {
    json!({
        "task_id": "task_abc123def456",
        "task_type": "api_buckets_batches_process",
        "status": "PROCESSING",
        "inputs": ["batch_xyz789"],
        "outputs": null,
        "additional_data": {"batch_id": "batch_xyz789", "job_id": "ray_job_123"},
        "description": "Batch processing task in progress",
        "error_message": null,
        "error": null,
        "created_at": "2026-01-01T12:00:00.000000Z",
        "updated_at": "2026-01-01T12:00:05.000000Z",
        "started_at": "2026-01-01T12:00:00.000000Z",
        "finished_at": null,
        "version": 2
    })
}

/// An example error body.
fn error_example(status: u16, kind: &str, code: &str, message: &str) -> Value {
    json!({"success": false, "status": status, "error": {"message": message, "type": kind, "code": code}})
}

/// `example` with `details` under `error`, as errors that name a field, scope or version carry.
fn with_details(mut example: Value, details: Value) -> Value {
    example["error"]["details"] = details;
    example
}

/// Example bodies of the error statuses the operations declare.
fn error_examples(status: &str) -> Option<Value> {
    Some(match status {
        "401" => error_example(
            401,
            "unauthorized",
            "invalid_api_key",
            "missing API key: send Authorization: Bearer sk_live_… or sk_test_…",
        ),
        "403" => with_details(
            error_example(
                403,
                "forbidden",
                "missing_scope",
                "this API key lacks the `write` scope",
            ),
            json!({"required_scope": "write"}),
        ),
        "404" => error_example(404, "not_found", "task_not_found", "task not found"),
        "408" => error_example(
            408,
            "timeout",
            "request_body_timeout",
            "the request body did not arrive within 30000 ms",
        ),
        "409" => error_example(
            409,
            "conflict",
            "task_terminal",
            "task is COMPLETED (terminal) and can no longer change",
        ),
        "412" => with_details(
            error_example(
                412,
                "precondition_failed",
                "version_mismatch",
                "If-Match version 1 is not the current version 2",
            ),
            json!({"current_version": 2}),
        ),
        "413" => error_example(
            413,
            "payload_too_large",
            "body_too_large",
            "request body exceeds 1048576 bytes",
        ),
        "406" => with_details(
            error_example(
                406,
                "not_acceptable",
                "not_acceptable",
                "this endpoint answers only text/event-stream; send Accept: text/event-stream (or no Accept)",
            ),
            json!({"accepted": ["text/event-stream"]}),
        ),
        "415" => error_example(
            415,
            "unsupported_media_type",
            "not_json",
            "request body must be JSON (Content-Type: application/json)",
        ),
        "422" => with_details(
            error_example(
                422,
                "validation_error",
                "invalid_value",
                "page_size: must be an integer from 1 to 1000",
            ),
            json!({"field": "page_size"}),
        ),
        "429" => with_details(
            error_example(
                429,
                "rate_limited",
                "rate_limited",
                "too many requests for this API key; retry in 1 s",
            ),
            json!({"retry_after_secs": 1}),
        ),
        "503" => error_example(
            503,
            "unavailable",
            "tier_unavailable",
            "the durable tier is unavailable; retry shortly",
        ),
        _ => return None,
    })
}

fn etag_header() -> Value {
    json!({"description": "The task's version, `\"<version>\"`.", "schema": {"type": "string", "pattern": "^\"[0-9]+\"$"}})
}

/// Links from a response carrying a task to the operations on that task, so that stateful
/// clients (and Schemathesis's stateful phase) follow create → get / update / kill.
fn task_links() -> Value {
    let id = json!({"task_id": "$response.body#/task_id"});
    json!({
        "GetTask": {"operationId": "get_task", "parameters": id},
        "UpdateTask": {"operationId": "update_task", "parameters": {"task_id": "$response.body#/task_id", "header.If-Match": "$response.header.ETag"}},
        "KillTask": {"operationId": "kill_task", "parameters": id},
        "KillTaskPost": {"operationId": "kill_task_post", "parameters": id}
    })
}

/// Applies the refinements described at the top of this file.
fn refine(doc: &mut Value, task_types: &TaskTypes) {
    let (group, item) = filter_schemas();
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        schemas.insert("CreateTask".into(), create_schema(task_types));
        schemas.insert("UpdateTask".into(), update_schema());
        schemas.insert("ListTasksBody".into(), list_body_schema());
        schemas.remove("SortSpec");
        schemas.insert("FilterGroup".into(), group);
        schemas.insert("FilterItem".into(), item);
        if let Some(t) = schemas.get_mut("TaskResponse") {
            t["examples"] = json!([task_example()]);
        }
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            refine_operation(path, op, task_types);
        }
    }
    paths.insert("/metrics".into(), metrics_path());
}

/// `GET /metrics` (its handler lives with the metrics it renders).
fn metrics_path() -> Value {
    json!({"get": {
        "tags": ["operations"],
        "operationId": "metrics",
        "summary": "Prometheus metrics (OpenMetrics text): HTTP requests by route and status, latency, store counters.",
        "responses": {"200": {
            "description": "The metrics",
            "content": {"application/openmetrics-text; version=1.0.0; charset=utf-8": {
                "schema": {"type": "string"},
                "example": "# TYPE taskward_hot_hits counter\ntaskward_hot_hits_total 0\n# EOF\n"
            }}
        }}
    }})
}

fn refine_operation(path: &str, op: &mut Value, task_types: &TaskTypes) {
    let op_id = op["operationId"].as_str().unwrap_or_default().to_owned();
    let secured = op.get("security").is_some();
    let mut params = Vec::new();
    if path.contains("{task_id}") {
        params.push(task_id_parameter());
    }
    if path.contains("{webhook_id}") {
        params.push(webhook_id_parameter());
    }
    if path.contains("{delivery_id}") {
        params.push(delivery_id_parameter());
    }
    match op_id.as_str() {
        "get_task" => {
            params.push(if_none_match_parameter());
            params.push(wait_parameter());
        }
        "update_task" => params.push(if_match_parameter()),
        "list_active_tasks" | "list_tasks" => params.push(paging_parameter()),
        "counts" => params.push(task_type_parameter(task_types)),
        "task_events" => params.extend(event_stream_parameters(task_types, false)),
        "tenant_events" => params.extend(event_stream_parameters(task_types, true)),
        "webhook_deliveries" => params.extend(deliveries_parameters()),
        _ => {}
    }
    if !params.is_empty() || op.get("parameters").is_some() {
        op["parameters"] = Value::Array(params);
    }
    let has_body = op.get("requestBody").is_some();
    if op_id == "list_tasks" {
        // Clients of the reference API call it without a body: none means "no criteria".
        op["requestBody"]["required"] = json!(false);
    }
    if let Some(content) = op.pointer_mut("/requestBody/content/application~1json") {
        let example = match op_id.as_str() {
            "create_task" => create_schema(&TaskTypes::default())["examples"][0].clone(),
            "update_task" => update_schema()["examples"][0].clone(),
            "create_webhook" => {
                json!({"url": "https://hooks.example.com/taskward", "events": ["task.completed", "task.failed"], "description": "billing"})
            }
            _ => list_body_schema()["examples"][0].clone(),
        };
        content["example"] = example;
    }
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    if path == "/v1/tasks/{task_id}" {
        // `GET /v1/tasks/list` reaches the list route, whose only method is POST. Such a
        // task_id is refused by this document; clients that build the path anyway get 405.
        responses.entry("405").or_insert_with(|| {
            json!({
                "description": "task_id is a reserved path of the API (e.g. `list`), which does not take this method; Allow lists the ones it does",
                "headers": {"Allow": {"schema": {"type": "string"}}},
                "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/ErrorBody"},
                    "example": error_example(405, "method_not_allowed", "method_not_allowed", "method not allowed on this path; the Allow header lists the methods it takes")
                }}
            })
        });
    }
    if secured {
        for status in ["401", "403", "422", "429", "503"] {
            responses
                .entry(status)
                .or_insert_with(|| json!({"$ref": ""}));
        }
        if has_body {
            for status in ["408", "413", "415"] {
                responses
                    .entry(status)
                    .or_insert_with(|| json!({"$ref": ""}));
            }
        }
    }
    for (status, response) in responses.iter_mut() {
        if let Some(example) = error_examples(status) {
            let description = response
                .get("description")
                .and_then(Value::as_str)
                .filter(|d| !d.is_empty())
                .unwrap_or(match status.as_str() {
                    "401" => "Missing, malformed, unknown or revoked API key",
                    "403" => "The key lacks the scope this operation needs",
                    "404" => "Unknown (or another tenant's) task",
                    "406" => "Accept rules out text/event-stream",
                    "408" => "The request body did not arrive in time",
                    "409" => "Conflict",
                    "412" => "If-Match names another version",
                    "413" => "Body over the limit (default 1 MiB)",
                    "415" => "Body is not JSON",
                    "422" => "Invalid input; details name the field and the accepted values",
                    "429" => "Rate limited; retry after Retry-After seconds",
                    _ => "A tier this request needs is unavailable; retry shortly",
                })
                .to_owned();
            let mut headers = Map::new();
            if status == "401" {
                headers.insert(
                    "WWW-Authenticate".into(),
                    json!({"schema": {"type": "string", "const": "Bearer"}}),
                );
            }
            if status == "429" || status == "503" {
                headers.insert("Retry-After".into(), json!({"description": "Seconds to wait.", "schema": {"type": "string", "pattern": "^[0-9]+$"}}));
            }
            let mut r = json!({
                "description": description,
                "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/ErrorBody"},
                    "example": example
                }}
            });
            if !headers.is_empty() {
                r["headers"] = Value::Object(headers);
            }
            *response = r;
            continue;
        }
        let carries_task = response
            .pointer("/content/application~1json/schema/$ref")
            .and_then(Value::as_str)
            .is_some_and(|r| r.ends_with("/TaskResponse"));
        if carries_task {
            response["content"]["application/json"]["example"] = task_example();
            response["headers"] = json!({"ETag": etag_header()});
            if status == "201" {
                response["headers"]["Location"] =
                    json!({"description": "/v1/tasks/<task_id>", "schema": {"type": "string"}});
            }
            response["links"] = task_links();
        } else if status == "304" {
            response["headers"] = json!({"ETag": etag_header()});
        } else if let Some(content) = response.pointer_mut("/content/application~1json") {
            let example = match op_id.as_str() {
                "list_active_tasks" | "list_tasks" => json!({
                    "results": [task_example()],
                    "pagination": {"total": null, "page": 1, "page_size": 10, "total_pages": null,
                        "next_page": null, "previous_page": null, "next_cursor": null}
                }),
                "kill_task" | "kill_task_post" => {
                    json!({"success": true, "message": "Task task_abc123def456 canceled"})
                }
                _ => continue,
            };
            content["example"] = example;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reserved_id_and_every_route_of_the_router_is_in_the_document() {
        let doc = document(&TaskTypes::default());
        let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
        for path in [
            "/v1/tasks",
            "/v1/tasks/list",
            "/v1/tasks/{task_id}",
            "/v1/tasks/{task_id}/kill",
            "/v1/tasks/{task_id}/history",
            "/v1/tasks/{task_id}/events",
            "/v1/tasks/counts",
            "/v1/events",
            "/v1/keys/self",
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
        ] {
            assert!(
                paths.iter().any(|p| *p == path),
                "{path} missing: {paths:?}"
            );
        }
        for path in paths {
            if let Some(segment) = path
                .strip_prefix("/v1/tasks/")
                .and_then(|r| r.split('/').next())
            {
                assert!(
                    segment.starts_with('{') || RESERVED_TASK_IDS.contains(&segment),
                    "{path}"
                );
            }
        }
    }

    #[test]
    fn the_registry_of_the_running_configuration_is_enumerated() {
        let types = TaskTypes::new(&["custom_export".to_owned()]).unwrap();
        let doc = document(&types);
        let accepted =
            &doc["components"]["schemas"]["CreateTask"]["properties"]["task_type"]["enum"];
        assert_eq!(accepted.as_array().unwrap().len(), 18);
        assert!(accepted
            .as_array()
            .unwrap()
            .contains(&json!("custom_export")));
    }
}
