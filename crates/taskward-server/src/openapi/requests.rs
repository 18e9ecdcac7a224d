//! The request side of the OpenAPI document: parameters and request-body schemas, built from
//! the constants the validators use, so that what a schema accepts the server accepts and what
//! it refuses the server refuses. utoipa cannot state most of it (`not`, exclusions between
//! parameters, case-insensitive enums, the start-time task-type registry).

use serde_json::{json, Value};
use taskward_model::filter::{Field, Op, MAX_LIST, MAX_PATH_SEGMENTS, MAX_SAFE_INTEGER};
use taskward_model::list::{SortField, DEFAULT_PAGE_SIZE, MAX_PAGE, MAX_PAGE_SIZE, MAX_SEARCH_LEN};
use taskward_model::webhook::{DeliveryId, WebhookId};
use taskward_model::{TaskId, TaskStatus, TaskTypes};

use crate::extract::{IF_MATCH_PATTERN, IF_NONE_MATCH_PATTERN};
use crate::router::RESERVED_TASK_IDS;

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

pub(super) fn task_id_schema() -> Value {
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

pub(super) fn io_items_schema(what: &str) -> Value {
    json!({
        "type": ["array", "null"],
        "items": {"oneOf": [{"type": "string"}, {"type": "object"}]},
        "description": format!("{what}: strings (ids) or JSON objects."),
        "examples": [["batch_xyz789"], [{"bucket_id": "bkt_abc"}]]
    })
}

/// `POST /v1/tasks`.
pub(super) fn create_schema(task_types: &TaskTypes) -> Value {
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
pub(super) fn update_schema() -> Value {
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
pub(super) fn one_or_many(one: Value) -> Value {
    json!({"anyOf": [one.clone(), {"type": "array", "items": one, "maxItems": MAX_LIST}, {"type": "null"}]})
}

/// `POST /v1/tasks/list`.
pub(super) fn list_body_schema() -> Value {
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
pub(super) fn filter_schemas() -> (Value, Value) {
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
    // `ops` on `field` with `value`s, then `in`/`nin` on it with arrays of them.
    let with_in_nin = |field: Value, ops: Vec<&'static str>, value: Value| {
        let values = array(&value);
        [
            (field.clone(), ops, value, true),
            (field, vec!["in", "nin"], values, true),
        ]
    };
    let mut rules: Vec<(Value, Vec<&str>, Value, bool)> = Vec::new();
    rules.extend(with_in_nin(
        fields(&text),
        [&["eq", "ne"][..], &comparisons, &affixes].concat(),
        string.clone(),
    ));
    rules.extend(with_in_nin(
        fields(&["status"]),
        vec!["eq", "ne"],
        status_value,
    ));
    rules.extend([
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
    ]);
    rules.extend(with_in_nin(
        fields(&times),
        [&["eq", "ne"][..], &comparisons].concat(),
        date_time,
    ));
    rules.extend(with_in_nin(
        fields(&["version"]),
        [&["eq", "ne"][..], &comparisons].concat(),
        integer,
    ));
    rules.extend([
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
    ]);
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
pub(super) fn paging_parameter() -> Value {
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

pub(super) fn task_id_parameter() -> Value {
    json!({"name": "task_id", "in": "path", "required": true, "description": "The task's id.", "schema": task_id_schema()})
}

pub(super) fn webhook_id_parameter() -> Value {
    json!({"name": "webhook_id", "in": "path", "required": true, "description": "The endpoint's id, as POST /v1/webhooks returned it.",
           "schema": {"type": "string", "pattern": WebhookId::PATTERN}})
}

pub(super) fn delivery_id_parameter() -> Value {
    json!({"name": "delivery_id", "in": "path", "required": true, "description": "The delivery's id, as the deliveries log shows it.",
           "schema": {"type": "string", "pattern": DeliveryId::PATTERN}})
}

/// The query of `GET /v1/webhooks/{webhook_id}/deliveries`.
pub(super) fn deliveries_parameters() -> Vec<Value> {
    vec![
        json!({"name": "limit", "in": "query", "required": false, "description": "Deliveries per page (default 50).",
               "schema": {"type": "integer", "minimum": 1, "maximum": 500}}),
        json!({"name": "before", "in": "query", "required": false, "description": "Only deliveries older than this one (the last delivery_id of the previous page).",
               "schema": {"type": "string", "pattern": DeliveryId::PATTERN}}),
        json!({"name": "state", "in": "query", "required": false, "description": "Only deliveries in this state.",
               "schema": {"type": "string", "enum": ["pending", "delivered", "failed"]}}),
    ]
}

pub(super) fn if_match_parameter() -> Value {
    json!({
        "name": "If-Match",
        "in": "header",
        "required": false,
        "description": "`\"<version>\"` as sent in ETag (also `W/\"<version>\"`, a bare number, or `*` for any): apply only to this version, else 412.",
        "schema": {"type": "string", "pattern": IF_MATCH_PATTERN, "examples": ["\"1\""]}
    })
}

pub(super) fn if_none_match_parameter() -> Value {
    json!({
        "name": "If-None-Match",
        "in": "header",
        "required": false,
        "description": "ETags the client holds (comma-separated) or `*`: 304 while the task is at one of these versions.",
        "schema": {"type": "string", "pattern": IF_NONE_MATCH_PATTERN, "examples": ["\"1\""]}
    })
}

pub(super) fn wait_parameter() -> Value {
    json!({
        "name": "wait",
        "in": "query",
        "required": false,
        "description": "Long-poll: wait up to this many seconds (cut to the server's limits.max_wait_secs) for the task to change from the version in If-None-Match (without it, from its current version). Answers at once when the task is terminal or differs.",
        "schema": {"type": "number", "minimum": 0, "examples": [30]}
    })
}

/// An optional `task_type` query parameter: one of this server's registered types.
pub(super) fn task_type_parameter(task_types: &TaskTypes) -> Value {
    json!({
        "name": "task_type",
        "in": "query",
        "required": false,
        "description": "Only tasks of this type.",
        "schema": {"type": "string", "enum": task_types.names()}
    })
}

/// What an event id looks like where a client sends one back: decimal digits (ids as streams
/// and history send them are zero-padded to 16).
fn event_id_schema() -> Value {
    json!({"type": "string", "pattern": "^[0-9]{1,18}$", "examples": ["0000000000000042"]})
}

/// The parameters of an event stream: the resume point (query or header) and, for the tenant's
/// stream, the repeatable filters.
pub(super) fn event_stream_parameters(task_types: &TaskTypes, tenant: bool) -> Vec<Value> {
    let mut params = vec![
        json!({"name": "after", "in": "query", "required": false, "schema": event_id_schema(),
            "description": "Replay the events after this id from the log before going live."}),
        json!({"name": "Last-Event-ID", "in": "header", "required": false, "schema": event_id_schema(),
            "description": "As `after` (wins over it), as EventSource sends it when it reconnects."}),
    ];
    if tenant {
        let statuses: Vec<&str> = TaskStatus::ALL.iter().map(|s| s.as_str()).collect();
        for (name, values, what) in [
            (
                "status",
                json!(statuses),
                "Only events whose status after the change is one of these.",
            ),
            (
                "task_type",
                json!(task_types.names()),
                "Only events of tasks of these types.",
            ),
        ] {
            params.push(
                json!({"name": name, "in": "query", "required": false, "style": "form",
                "explode": true, "description": what,
                "schema": {"type": "array", "items": {"type": "string", "enum": values}}}),
            );
        }
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_case_matches_every_spelling() {
        let re = regex::Regex::new(&format!("^{}$", any_case("asc"))).unwrap();
        for s in ["asc", "ASC", "aSc"] {
            assert!(re.is_match(s));
        }
        assert!(!re.is_match("desc"));
    }
}
