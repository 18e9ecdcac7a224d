//! The OpenAPI 3.1 document, built at start from the code: the handlers' `#[utoipa::path]`
//! annotations and the model's `ToSchema` derives give the operations and the response
//! types, and [`refine`] adds what utoipa cannot say but the server enforces, from the same
//! constants the validators use: the task-type registry of the running configuration, the
//! id pattern and reserved ids, the ETag grammar, paging bounds and which paging parameters
//! exclude each other, the filter language, examples, and links for stateful clients.
//!
//! The rule for every schema here: a request it accepts, the server accepts (no 422 for a
//! schema-valid request), and a request it refuses, the server refuses. `ci/schemathesis.sh`
//! checks both directions against a release build.

use serde_json::{json, Map, Value};
use taskward_model::filter::{Field, Op, MAX_LIST, MAX_PATH_SEGMENTS, MAX_SAFE_INTEGER};
use taskward_model::list::{SortField, DEFAULT_PAGE_SIZE, MAX_PAGE, MAX_PAGE_SIZE, MAX_SEARCH_LEN};
use taskward_model::{TaskId, TaskStatus, TaskTypes};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

use crate::api::{health, tasks};
use crate::extract::{IF_MATCH_PATTERN, IF_NONE_MATCH_PATTERN};
use crate::router::RESERVED_TASK_IDS;

#[derive(OpenApi)]
#[openapi(
    info(title = "taskward", description = "Task-status service, wire-compatible with the reference Tasks API. Every error answers `{\"success\": false, \"status\", \"error\": {\"message\", \"type\", \"code\", \"details\"?}}`."),
    paths(
        tasks::get_task, tasks::list_active_tasks, tasks::list_tasks, tasks::kill_task,
        tasks::kill_task_post, tasks::create_task, tasks::update_task,
        health::healthz, health::readyz, health::openapi_json,
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

/// Example bodies of the error statuses the operations declare.
fn error_examples(status: &str) -> Option<Value> {
    Some(match status {
        "401" => error_example(
            401,
            "unauthorized",
            "invalid_api_key",
            "missing API key: send Authorization: Bearer sk_live_… or sk_test_…",
        ),
        "403" => {
            let mut e = error_example(
                403,
                "forbidden",
                "missing_scope",
                "this API key lacks the `write` scope",
            );
            e["error"]["details"] = json!({"required_scope": "write"});
            e
        }
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
        "412" => {
            let mut e = error_example(
                412,
                "precondition_failed",
                "version_mismatch",
                "If-Match version 1 is not the current version 2",
            );
            e["error"]["details"] = json!({"current_version": 2});
            e
        }
        "413" => error_example(
            413,
            "payload_too_large",
            "body_too_large",
            "request body exceeds 1048576 bytes",
        ),
        "415" => error_example(
            415,
            "unsupported_media_type",
            "not_json",
            "request body must be JSON (Content-Type: application/json)",
        ),
        "422" => {
            let mut e = error_example(
                422,
                "validation_error",
                "invalid_value",
                "page_size: must be an integer from 1 to 1000",
            );
            e["error"]["details"] = json!({"field": "page_size"});
            e
        }
        "429" => {
            let mut e = error_example(
                429,
                "rate_limited",
                "rate_limited",
                "too many requests for this API key; retry in 1 s",
            );
            e["error"]["details"] = json!({"retry_after_secs": 1});
            e
        }
        "503" => error_example(
            503,
            "unavailable",
            "tier_unavailable",
            "the durable tier is unavailable; retry shortly",
        ),
        _ => return None,
    })
}

fn statuses() -> Vec<&'static str> {
    TaskStatus::ALL.iter().map(|s| s.as_str()).collect()
}

/// A pattern matching `word` in any letter case (`[Ff][Aa]…`): filters take statuses and
/// sort directions case-insensitively, and ECMA-262 patterns have no inline `(?i)`.
fn any_case(word: &str) -> String {
    word.chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn task_id_schema() -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": TaskId::MAX_LEN,
        "pattern": TaskId::PATTERN,
        "not": {"enum": RESERVED_TASK_IDS},
        "description": format!(
            "1 to {} characters from A-Z a-z 0-9 . _ : -; not `.` or `..`, and not a literal path segment of the API under /v1/tasks/ ({}).",
            TaskId::MAX_LEN, RESERVED_TASK_IDS.join(", ")
        ),
        "examples": ["task_abc123def456", "550e8400-e29b-41d4-a716-446655440000"]
    })
}

fn io_items_schema(what: &str) -> Value {
    json!({
        "type": ["array", "null"],
        "items": {"oneOf": [{"type": "string"}, {"type": "object"}]},
        "description": format!("{what}: strings (ids) or JSON objects."),
        "examples": [["batch_xyz789"], [{"bucket_id": "bkt_abc"}]]
    })
}

/// `POST /v1/tasks`.
fn create_schema(task_types: &TaskTypes) -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["task_type"],
        "properties": {
            "task_id": {
                "anyOf": [task_id_schema(), {"type": "null"}],
                "description": "Optional; a UUID v4 is generated when absent. The same id with the same content again is an idempotent 200; with other content, a 409."
            },
            "task_type": {
                "type": "string",
                "enum": task_types.names(),
                "description": "A registered task type: the built-ins plus this deployment's `task_types`."
            },
            "status": {"anyOf": [{"$ref": "#/components/schemas/TaskStatus"}, {"type": "null"}], "description": "Defaults to PENDING."},
            "inputs": io_items_schema("What the task was started with"),
            "outputs": io_items_schema("What the task produced"),
            "additional_data": {"type": ["object", "null"], "description": "Free-form metadata; `error` carries failure details. `from_mongodb` is a response annotation and is dropped."},
            "description": {"type": ["string", "null"]}
        },
        "examples": [{
            "task_id": "task_abc123def456",
            "task_type": "api_buckets_batches_process",
            "status": "PROCESSING",
            "inputs": ["batch_xyz789"],
            "additional_data": {"batch_id": "batch_xyz789"},
            "description": "Batch processing task in progress"
        }]
    })
}

/// `PATCH /v1/tasks/{task_id}`.
fn update_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "description": "Absent fields are left alone; `null` clears. `additional_data` is a JSON merge patch (RFC 7396).",
        "properties": {
            "status": {"anyOf": [{"$ref": "#/components/schemas/TaskStatus"}, {"type": "null"}], "description": "null: leave as it is."},
            "outputs": io_items_schema("What the task produced"),
            "additional_data": {"type": ["object", "null"], "description": "Merged into the task's additional_data; null clears it."},
            "description": {"type": ["string", "null"]}
        },
        "examples": [{"status": "FAILED", "additional_data": {"error": "Object not found"}}]
    })
}

/// One value or an array of them (at most [`MAX_LIST`]), or null.
fn one_or_many(one: Value) -> Value {
    json!({"anyOf": [one.clone(), {"type": "array", "items": one, "maxItems": MAX_LIST}, {"type": "null"}]})
}

/// `POST /v1/tasks/list`.
fn list_body_schema() -> Value {
    let sort_fields: Vec<&str> = SortField::ALL.iter().map(|f| f.as_str()).collect();
    json!({
        "type": "object",
        "additionalProperties": false,
        "description": "Every key optional; an empty body lists everything.",
        "properties": {
            "status": one_or_many(json!({"$ref": "#/components/schemas/TaskStatus"})),
            "task_type": one_or_many(json!({"type": "string"})),
            "filters": {"anyOf": [{"$ref": "#/components/schemas/FilterGroup"}, {"type": "null"}]},
            "sort": {
                "anyOf": [{
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["field"],
                    "properties": {
                        "field": {"type": "string", "enum": sort_fields},
                        "direction": {
                            "anyOf": [
                                {"type": "string", "pattern": format!("^({}|{})$", any_case("asc"), any_case("desc"))},
                                {"type": "null"}
                            ],
                            "description": "`asc` or `desc` (any case); default `desc`."
                        }
                    }
                }, {"type": "null"}],
                "description": "Default `created_at desc`; the task id breaks ties."
            },
            "search": {
                "type": ["string", "null"],
                "maxLength": MAX_SEARCH_LEN,
                "description": "Case-insensitive substring of task_id, task_type or status."
            }
        },
        "examples": [{
            "status": ["PROCESSING", "FAILED"],
            "filters": {"AND": [{"field": "additional_data.progress.total", "operator": "gte", "value": 100}]},
            "sort": {"field": "created_at", "direction": "desc"}
        }]
    })
}

/// The filter language: a group of conditions and groups, and the conditions by field kind.
/// Global limits (8 levels, 100 conditions, 1000 `in` values in all) are in the description:
/// JSON Schema bounds arrays, not trees.
fn filter_schemas() -> (Value, Value) {
    let group = json!({
        "type": "object",
        "additionalProperties": false,
        "description": format!(
            "AND: all items match; OR: at least one; NOT: none. Items are conditions (objects with `field`) or nested groups. At most {} levels, {} conditions and {MAX_LIST} in/nin values in all.",
            taskward_model::filter::MAX_DEPTH, taskward_model::filter::MAX_CONDITIONS
        ),
        "properties": {
            "AND": {"type": "array", "items": {"$ref": "#/components/schemas/FilterItem"}},
            "OR": {"type": "array", "items": {"$ref": "#/components/schemas/FilterItem"}},
            "NOT": {"type": "array", "items": {"$ref": "#/components/schemas/FilterItem"}},
            "case_sensitive": {"type": ["boolean", "null"], "description": "Default false; inherited by nested items."}
        },
        "examples": [{"AND": [{"field": "status", "operator": "eq", "value": "FAILED"}]}]
    });
    let text = ["task_id", "task_type", "description"];
    let times = ["created_at", "updated_at", "started_at", "finished_at"];
    let lists = ["inputs", "outputs"];
    let data = json!({
        "type": "string",
        "pattern": format!(
            "^additional_data\\.[A-Za-z0-9_-]{{1,64}}(\\.[A-Za-z0-9_-]{{1,64}}){{0,{}}}$",
            MAX_PATH_SEGMENTS - 1
        )
    });
    let status_value = json!({
        "type": "string",
        "pattern": format!("^({})$", statuses().iter().map(|s| any_case(s)).collect::<Vec<_>>().join("|"))
    });
    let fields = |names: &[&str]| json!({"type": "string", "enum": names});
    let date_time = json!({"type": "string", "format": "date-time"});
    let integer =
        json!({"type": "integer", "minimum": -MAX_SAFE_INTEGER, "maximum": MAX_SAFE_INTEGER});
    let scalar = json!({"type": ["string", "number", "boolean", "null"]});
    let array = |item: &Value| json!({"type": "array", "items": item, "maxItems": MAX_LIST});
    let string = json!({"type": "string"});
    let comparisons = ["gt", "gte", "lt", "lte"];
    let affixes = ["contains", "starts_with", "ends_with"];
    // (fields, operators, value schema, value required?). `eq` is the default operator, so
    // conditions that allow it may omit `operator`.
    let any_text: Value = json!({"anyOf": [fields(&text), fields(&["status"]), data.clone()]});
    let mut rules: Vec<(Value, Vec<&str>, Value, bool)> = vec![
        (
            fields(&text),
            [&["eq", "ne"][..], &comparisons, &affixes].concat(),
            string.clone(),
            true,
        ),
        (fields(&text), vec!["in", "nin"], array(&string), true),
        (
            fields(&["status"]),
            vec!["eq", "ne"],
            status_value.clone(),
            true,
        ),
        (
            fields(&["status"]),
            vec!["in", "nin"],
            array(&status_value),
            true,
        ),
        (
            fields(&["status"]),
            [&comparisons[..], &affixes].concat(),
            string.clone(),
            true,
        ),
        (
            any_text,
            vec!["regex"],
            json!({"type": "string", "format": "regex"}),
            true,
        ),
        (
            fields(&times),
            [&["eq", "ne"][..], &comparisons].concat(),
            date_time.clone(),
            true,
        ),
        (fields(&times), vec!["in", "nin"], array(&date_time), true),
        (
            fields(&["version"]),
            [&["eq", "ne"][..], &comparisons].concat(),
            integer.clone(),
            true,
        ),
        (
            fields(&["version"]),
            vec!["in", "nin"],
            array(&integer),
            true,
        ),
        (fields(&lists), vec!["contains"], string.clone(), true),
        (data.clone(), vec!["eq", "ne"], scalar.clone(), false),
        (
            data.clone(),
            comparisons.to_vec(),
            json!({"type": ["string", "number"]}),
            true,
        ),
        (data.clone(), vec!["in", "nin"], array(&scalar), true),
        (data.clone(), affixes.to_vec(), string.clone(), true),
    ];
    rules.push((
        json!({"anyOf": [fields(&Field::NAMES), data]}),
        vec!["exists", "is_null"],
        json!({"type": ["boolean", "null"]}),
        false,
    ));
    let conditions: Vec<Value> = rules
        .into_iter()
        .map(|(field, ops, value, value_required)| {
            let mut required = vec!["field"];
            if !ops.contains(&"eq") {
                required.push("operator");
            }
            if value_required {
                required.push("value");
            }
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": required,
                "properties": {
                    "field": field,
                    "operator": {"type": "string", "enum": ops},
                    "value": value,
                    "case_sensitive": {"type": ["boolean", "null"]}
                }
            })
        })
        .collect();
    let item = json!({
        "anyOf": [{"$ref": "#/components/schemas/FilterGroup"}, {"anyOf": conditions}],
        "description": format!(
            "A group, or a condition `{{field, operator, value, case_sensitive?}}`: fields {} and `additional_data.<dot.path>`; operators {} (default `eq`). Values must suit the field: statuses for status, RFC 3339 for timestamps, integers for version.",
            Field::NAMES.join(", "), Op::NAMES.join(", ")
        ),
        "examples": [{"field": "additional_data.progress.total", "operator": "gte", "value": 100, "case_sensitive": false}]
    });
    (group, item)
}

/// The query parameters of both listings, as one exploded object so that the exclusions can
/// be stated: `page` with `limit`/`offset`, `page_size` with `limit`, and a cursor with a
/// page other than 1 or an offset other than 0 are 422s.
fn paging_parameter() -> Value {
    let cursor_with = |name: &str, not: Value| {
        json!({
            "required": ["cursor", name],
            "properties": {"cursor": {"minLength": 1}, name: {"not": {"const": not}}}
        })
    };
    json!({
        "name": "paging",
        "in": "query",
        "style": "form",
        "explode": true,
        "description": "Page with `page`/`page_size` or with `limit`/`offset` (not both pairs), or follow `pagination.next_cursor` with `cursor` (with `page_size` or `limit`).",
        "schema": {
            "type": "object",
            "properties": {
                "page": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "description": "1-based page (default 1)."},
                "page_size": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "description": format!("Tasks per page (default {DEFAULT_PAGE_SIZE}).")},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "description": "Alternative to page_size."},
                "offset": {"type": "integer", "minimum": 0, "maximum": MAX_PAGE * u64::from(MAX_PAGE_SIZE), "description": "Alternative to page."},
                "cursor": {
                    "type": "string",
                    "maxLength": 1024,
                    "pattern": "^[A-Za-z0-9_-]*$",
                    "description": "Opaque keyset cursor: a `pagination.next_cursor` this listing returned, for the same sort (any other is a 422 naming `cursor`). Empty: none."
                },
                "include_total": {"type": ["boolean", "integer"], "enum": [true, false, 1, 0], "description": "Count every match (`total`, `total_pages`)."}
            },
            "not": {"anyOf": [
                {"required": ["page", "limit"]},
                {"required": ["page", "offset"]},
                {"required": ["page_size", "limit"]},
                cursor_with("page", json!(1)),
                cursor_with("offset", json!(0))
            ]},
            "examples": [{"page": 1, "page_size": 10}, {"limit": 20, "offset": 40, "include_total": true}]
        }
    })
}

fn task_id_parameter() -> Value {
    json!({"name": "task_id", "in": "path", "required": true, "description": "The task's id.", "schema": task_id_schema()})
}

fn if_match_parameter() -> Value {
    json!({
        "name": "If-Match",
        "in": "header",
        "required": false,
        "description": "`\"<version>\"` as sent in ETag (also `W/\"<version>\"`, a bare number, or `*` for any): apply only to this version, else 412.",
        "schema": {"type": "string", "pattern": IF_MATCH_PATTERN, "examples": ["\"1\""]}
    })
}

fn if_none_match_parameter() -> Value {
    json!({
        "name": "If-None-Match",
        "in": "header",
        "required": false,
        "description": "ETags the client holds (comma-separated) or `*`: 304 while the task is at one of these versions.",
        "schema": {"type": "string", "pattern": IF_NONE_MATCH_PATTERN, "examples": ["\"1\""]}
    })
}

fn wait_parameter() -> Value {
    json!({
        "name": "wait",
        "in": "query",
        "required": false,
        "description": "Long-poll: wait up to this many seconds (cut to the server's limits.max_wait_secs) for the task to change from the version in If-None-Match (without it, from its current version). Answers at once when the task is terminal or differs.",
        "schema": {"type": "number", "minimum": 0, "examples": [30]}
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
            refine_operation(path, op);
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

fn refine_operation(path: &str, op: &mut Value) {
    let op_id = op["operationId"].as_str().unwrap_or_default().to_owned();
    let secured = op.get("security").is_some();
    let mut params = Vec::new();
    if path.contains("{task_id}") {
        params.push(task_id_parameter());
    }
    match op_id.as_str() {
        "get_task" => {
            params.push(if_none_match_parameter());
            params.push(wait_parameter());
        }
        "update_task" => params.push(if_match_parameter()),
        "list_active_tasks" | "list_tasks" => params.push(paging_parameter()),
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

    #[test]
    fn any_case_matches_every_spelling() {
        let re = regex::Regex::new(&format!("^{}$", any_case("asc"))).unwrap();
        for s in ["asc", "ASC", "aSc"] {
            assert!(re.is_match(s));
        }
        assert!(!re.is_match("desc"));
    }
}
