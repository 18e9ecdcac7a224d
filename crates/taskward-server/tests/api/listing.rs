//! Listing: active tasks, body selectors, every filter operator and nesting, sort, the three
//! paging styles, and keyset cursors that neither skip nor repeat under concurrent creates.

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{assert_error, ids, spawn_app, TestApp};

/// Five tasks created in this order, with varied additional_data.
async fn fixtures(app: &TestApp) -> Vec<Value> {
    let mut out = Vec::new();
    for body in [
        json!({"task_id": "t-alpha", "task_type": "thumbnail", "description": "First one",
               "additional_data": {"n": 1, "s": "Alpha", "tags": ["x", "y"], "flag": true, "nested": {"k": "v"}}}),
        json!({"task_id": "t-beta", "task_type": "materialize", "status": "PROCESSING",
               "additional_data": {"n": 2.5, "s": "beta", "tags": ["Y"], "flag": false, "nil": null}}),
        json!({"task_id": "t-gamma", "task_type": "engine_cluster_build", "status": "COMPLETED", "inputs": ["obj_1", {"o": 1}],
               "additional_data": {"n": 10, "s": "gamma-Alpha"}}),
        json!({"task_id": "t-delta", "task_type": "thumbnail", "status": "FAILED", "description": "Fourth",
               "additional_data": {"s": "10", "error": "boom"}}),
        json!({"task_id": "t-eps", "task_type": "materialize", "status": "CANCELED"}),
    ] {
        out.push(app.create_ok(body).await);
    }
    out
}

fn cond(field: &str, op: &str, value: Value) -> Value {
    json!({"field": field, "operator": op, "value": value})
}

/// `c` matched with case, where a condition by default ignores it.
fn case_sensitive(mut c: Value) -> Value {
    c["case_sensitive"] = json!(true);
    c
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Asserts that a list body with `filters` selects exactly the tasks `expected`, in any order.
async fn assert_filters_select(app: &TestApp, filters: Value, expected: &[&str]) {
    let got = app
        .list_ids("?page_size=100", json!({"filters": filters.clone()}))
        .await;
    assert_eq!(
        sorted(got),
        sorted(expected.iter().map(|s| s.to_string()).collect()),
        "{filters}"
    );
}

#[tokio::test]
async fn every_operator_selects_what_it_says() {
    let app = spawn_app().await;
    let tasks = fixtures(&app).await;
    let gamma_created = tasks[2]["created_at"].clone();
    let cases: Vec<(Value, Vec<&str>)> = vec![
        // eq / ne: case-insensitive unless asked; type-bracketed like MongoDB.
        (
            cond("additional_data.s", "eq", json!("alpha")),
            vec!["t-alpha"],
        ),
        (
            case_sensitive(cond("additional_data.s", "eq", json!("alpha"))),
            vec![],
        ),
        (
            cond("additional_data.s", "eq", json!("10")),
            vec!["t-delta"],
        ),
        (cond("additional_data.s", "eq", json!(10)), vec![]),
        (cond("additional_data.n", "eq", json!(10)), vec!["t-gamma"]),
        (cond("additional_data.n", "eq", json!(2.5)), vec!["t-beta"]),
        (
            cond("additional_data.flag", "eq", json!(false)),
            vec!["t-beta"],
        ),
        (
            cond("additional_data.nested.k", "eq", json!("v")),
            vec!["t-alpha"],
        ),
        (
            cond("additional_data.nil", "eq", Value::Null),
            vec!["t-alpha", "t-beta", "t-delta", "t-eps", "t-gamma"],
        ),
        (cond("status", "eq", json!("completed")), vec!["t-gamma"]),
        (
            cond("additional_data.s", "ne", json!("beta")),
            vec!["t-alpha", "t-delta", "t-eps", "t-gamma"],
        ),
        (
            cond("description", "ne", json!("first one")),
            vec!["t-beta", "t-delta", "t-eps", "t-gamma"],
        ),
        // gt / gte / lt / lte: numbers with numbers, text with text, timestamps.
        (
            cond("additional_data.n", "gt", json!(2)),
            vec!["t-beta", "t-gamma"],
        ),
        (
            cond("additional_data.n", "gte", json!(2.5)),
            vec!["t-beta", "t-gamma"],
        ),
        (cond("additional_data.n", "lt", json!(2.5)), vec!["t-alpha"]),
        (
            cond("additional_data.n", "lte", json!(2.5)),
            vec!["t-alpha", "t-beta"],
        ),
        (cond("additional_data.s", "gt", json!("F")), vec!["t-gamma"]),
        (
            cond("created_at", "gte", gamma_created.clone()),
            vec!["t-delta", "t-eps", "t-gamma"],
        ),
        (
            cond("created_at", "lt", gamma_created),
            vec!["t-alpha", "t-beta"],
        ),
        (
            cond("version", "lte", json!(1)),
            vec!["t-alpha", "t-beta", "t-delta", "t-eps", "t-gamma"],
        ),
        (cond("version", "gt", json!(1)), vec![]),
        // in / nin
        (
            cond("additional_data.n", "in", json!([1, 10, "x"])),
            vec!["t-alpha", "t-gamma"],
        ),
        (
            cond("status", "in", json!(["pending", "FAILED"])),
            vec!["t-alpha", "t-delta"],
        ),
        (
            cond("task_type", "nin", json!(["thumbnail"])),
            vec!["t-beta", "t-eps", "t-gamma"],
        ),
        (
            cond("additional_data.s", "nin", json!(["alpha", "beta"])),
            vec!["t-delta", "t-eps", "t-gamma"],
        ),
        (cond("task_id", "in", json!([])), vec![]),
        // contains: substring of text, element of arrays.
        (
            cond("additional_data.s", "contains", json!("ALPHA")),
            vec!["t-alpha", "t-gamma"],
        ),
        (
            cond("additional_data.tags", "contains", json!("y")),
            vec!["t-alpha", "t-beta"],
        ),
        (
            case_sensitive(cond("additional_data.tags", "contains", json!("y"))),
            vec!["t-alpha"],
        ),
        (cond("inputs", "contains", json!("obj_1")), vec!["t-gamma"]),
        (
            cond("task_type", "contains", json!("CLUSTER")),
            vec!["t-gamma"],
        ),
        // starts_with / ends_with
        (
            cond("description", "starts_with", json!("fir")),
            vec!["t-alpha"],
        ),
        (cond("task_id", "starts_with", json!("T-B")), vec!["t-beta"]),
        (
            cond("additional_data.s", "ends_with", json!("ALPHA")),
            vec!["t-alpha", "t-gamma"],
        ),
        (
            cond("task_id", "ends_with", json!("ta")),
            vec!["t-beta", "t-delta"],
        ),
        // regex
        (
            cond("additional_data.s", "regex", json!("^[ab]")),
            vec!["t-alpha", "t-beta"],
        ),
        (
            case_sensitive(cond("additional_data.s", "regex", json!("^[ab]"))),
            vec!["t-beta"],
        ),
        (
            cond("task_id", "regex", json!("^t-(alpha|eps)$")),
            vec!["t-alpha", "t-eps"],
        ),
        // exists / is_null
        (
            cond("additional_data.nil", "exists", json!(true)),
            vec!["t-beta"],
        ),
        (
            cond("additional_data.flag", "exists", json!(false)),
            vec!["t-delta", "t-eps", "t-gamma"],
        ),
        (
            cond("additional_data.n", "is_null", json!(false)),
            vec!["t-alpha", "t-beta", "t-gamma"],
        ),
        (
            cond("description", "is_null", json!(true)),
            vec!["t-beta", "t-eps", "t-gamma"],
        ),
        (cond("inputs", "exists", json!(true)), vec!["t-gamma"]),
        (
            cond("finished_at", "exists", json!(true)),
            vec!["t-delta", "t-eps", "t-gamma"],
        ),
    ];
    for (c, expected) in cases {
        assert_filters_select(&app, json!({"AND": [c]}), &expected).await;
    }
}

#[tokio::test]
async fn groups_nest_and_or_not_with_inherited_case_sensitivity() {
    let app = spawn_app().await;
    fixtures(&app).await;
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"OR": [
                {"AND": [cond("status", "eq", json!("PENDING")), cond("additional_data.flag", "eq", json!(true))]},
                cond("task_type", "eq", json!("engine_cluster_build")),
            ]}),
            vec!["t-alpha", "t-gamma"],
        ),
        (
            json!({"NOT": [cond("task_type", "eq", json!("thumbnail"))]}),
            vec!["t-beta", "t-eps", "t-gamma"],
        ),
        (
            json!({"NOT": [cond("task_type", "eq", json!("thumbnail")), cond("status", "eq", json!("CANCELED"))]}),
            vec!["t-beta", "t-gamma"],
        ),
        (
            json!({"AND": [cond("task_type", "eq", json!("materialize"))], "NOT": [cond("status", "eq", json!("CANCELED"))]}),
            vec!["t-beta"],
        ),
        (
            json!({"AND": [{"OR": [{"NOT": [{"AND": [cond("additional_data.n", "gte", json!(2))]}]}]}]}),
            vec!["t-alpha", "t-delta", "t-eps"],
        ),
        (
            json!({"case_sensitive": true, "AND": [cond("additional_data.s", "eq", json!("alpha"))]}),
            vec![],
        ),
        (
            json!({"case_sensitive": true, "AND": [{"field": "additional_data.s", "operator": "eq", "value": "alpha", "case_sensitive": false}]}),
            vec!["t-alpha"],
        ),
        (
            json!({"case_sensitive": true, "OR": [{"AND": [cond("task_id", "starts_with", json!("T-"))]}]}),
            vec![],
        ),
        (
            json!({"AND": []}),
            vec!["t-alpha", "t-beta", "t-delta", "t-eps", "t-gamma"],
        ),
        (json!({"OR": []}), vec![]),
    ];
    for (f, expected) in cases {
        assert_filters_select(&app, f, &expected).await;
    }
}

#[tokio::test]
async fn status_type_search_and_sort_select_and_order() {
    let app = spawn_app().await;
    fixtures(&app).await;
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({}),
            vec!["t-eps", "t-delta", "t-gamma", "t-beta", "t-alpha"],
        ),
        (json!({"status": "FAILED"}), vec!["t-delta"]),
        (
            json!({"status": ["FAILED", "COMPLETED"]}),
            vec!["t-delta", "t-gamma"],
        ),
        (json!({"task_type": "materialize"}), vec!["t-eps", "t-beta"]),
        (
            json!({"task_type": ["materialize", "thumbnail"], "status": "PENDING"}),
            vec!["t-alpha"],
        ),
        (json!({"search": "ALP"}), vec!["t-alpha"]),
        (json!({"search": "process"}), vec!["t-beta"]),
        (json!({"search": "thumb"}), vec!["t-delta", "t-alpha"]),
        (
            json!({"sort": {"field": "task_id", "direction": "asc"}}),
            vec!["t-alpha", "t-beta", "t-delta", "t-eps", "t-gamma"],
        ),
        (
            json!({"sort": {"field": "task_id"}}),
            vec!["t-gamma", "t-eps", "t-delta", "t-beta", "t-alpha"],
        ),
        (
            json!({"sort": {"field": "created_at", "direction": "ASC"}}),
            vec!["t-alpha", "t-beta", "t-gamma", "t-delta", "t-eps"],
        ),
        (
            json!({"sort": {"field": "started_at", "direction": "asc"}, "status": ["PENDING", "PROCESSING"]}),
            vec!["t-alpha", "t-beta"],
        ),
        (
            json!({"sort": {"field": "status", "direction": "asc"}, "task_type": "thumbnail"}),
            vec!["t-delta", "t-alpha"],
        ),
    ];
    for (body, expected) in cases {
        let got = app.list_ids("", body.clone()).await;
        assert_eq!(got, expected, "{body}");
    }
    // An empty body and no body at all both list everything.
    let res = app.send(Method::POST, "/v1/tasks/list", &app.key).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(ids(&res.json().await.unwrap()).len(), 5);
}

#[tokio::test]
async fn active_listing_shows_only_non_terminal_tasks_newest_first() {
    let app = spawn_app().await;
    fixtures(&app).await;
    for path in ["/v1/tasks", "/v1/tasks/"] {
        let v: Value = app
            .send(Method::GET, path, &app.key)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(ids(&v), ["t-beta", "t-alpha"], "{path}");
    }
    // A task that finishes leaves the active list.
    app.patch(&app.key, "t-beta", json!({"status": "COMPLETED"}))
        .await;
    let v: Value = app
        .send(Method::GET, "/v1/tasks", &app.key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&v), ["t-alpha"]);
}

#[tokio::test]
async fn page_and_offset_paging_with_links_and_totals() {
    let app = spawn_app().await;
    for i in 0..25 {
        app.create_ok(json!({"task_id": format!("p-{i:03}"), "task_type": "thumbnail"}))
            .await;
    }
    let get = |q: &'static str| {
        let app = &app;
        async move {
            let res = app
                .send(Method::GET, &format!("/v1/tasks{q}"), &app.key)
                .await;
            assert_eq!(res.status(), StatusCode::OK, "{q}");
            res.json::<Value>().await.unwrap()
        }
    };
    let p1 = get("?page_size=10&include_total=true").await;
    assert_eq!(ids(&p1).len(), 10);
    assert_eq!(ids(&p1)[0], "p-024");
    let pg = &p1["pagination"];
    assert_eq!(
        (
            pg["total"].as_u64(),
            pg["total_pages"].as_u64(),
            pg["page"].as_u64(),
            pg["page_size"].as_u64()
        ),
        (Some(25), Some(3), Some(1), Some(10))
    );
    assert_eq!(
        pg["next_page"],
        "/v1/tasks?page=2&page_size=10&include_total=true"
    );
    assert!(pg["previous_page"].is_null());
    assert!(pg["next_cursor"].is_string());

    let p3 = get("?page=3&page_size=10").await;
    assert_eq!(ids(&p3), ["p-004", "p-003", "p-002", "p-001", "p-000"]);
    let pg = &p3["pagination"];
    assert!(pg["next_page"].is_null() && pg["next_cursor"].is_null());
    assert_eq!(pg["previous_page"], "/v1/tasks?page=2&page_size=10");
    assert!(
        pg["total"].is_null() && pg["total_pages"].is_null(),
        "only with include_total"
    );

    let off = get("?limit=10&offset=20").await;
    assert_eq!(ids(&off), ids(&p3));
    assert_eq!(off["pagination"]["page"], 3);
    assert_eq!(
        off["pagination"]["previous_page"],
        "/v1/tasks?limit=10&offset=10"
    );

    let beyond = get("?page=99").await;
    assert_eq!(beyond["results"], json!([]));

    // Default page size is 10; the same pairs work on POST /v1/tasks/list.
    assert_eq!(ids(&get("").await).len(), 10);
    let v: Value = app
        .list(&app.key, "?limit=4&offset=1", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&v), ["p-023", "p-022", "p-021", "p-020"]);
}

/// Follows `next_cursor` to the end, creating two new tasks after every page; fails on a
/// repeated id.
async fn walk_while_creating(app: &TestApp, sort: &Value, created: &mut usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let q = match &cursor {
            Some(c) => format!("?page_size=7&cursor={c}"),
            None => "?page_size=7".to_owned(),
        };
        let v: Value = app
            .list(&app.key, &q, json!({"sort": sort}))
            .await
            .json()
            .await
            .unwrap();
        if cursor.is_some() {
            assert!(
                v["pagination"]["page"].is_null(),
                "cursor pages have no page number"
            );
        }
        seen.extend(ids(&v));
        for _ in 0..2 {
            app.create_ok(json!({"task_id": format!("n-{created:04}"), "task_type": "thumbnail"}))
                .await;
            *created += 1;
        }
        cursor = v["pagination"]["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(
        unique.len(),
        seen.len(),
        "a cursor walk repeated a task: {seen:?}"
    );
    seen
}

#[tokio::test]
async fn cursor_paging_neither_skips_nor_repeats_while_tasks_are_created() {
    let app = spawn_app().await;
    for i in 0..40 {
        app.create_ok(json!({"task_id": format!("p-{i:03}"), "task_type": "thumbnail"}))
            .await;
    }
    let originals: Vec<String> = (0..40).map(|i| format!("p-{i:03}")).collect();
    let mut created = 0;
    for sort in [
        json!({"field": "created_at", "direction": "desc"}),
        json!({"field": "created_at", "direction": "asc"}),
        json!({"field": "task_id", "direction": "asc"}),
        json!({"field": "updated_at", "direction": "desc"}),
    ] {
        let before = created;
        let seen = walk_while_creating(&app, &sort, &mut created).await;
        let got: Vec<&String> = seen.iter().filter(|id| id.starts_with("p-")).collect();
        let mut want: Vec<&String> = originals.iter().collect();
        if sort["direction"] == "desc" {
            want.reverse();
        }
        assert_eq!(
            got, want,
            "{sort}: every task that existed before the walk, once, in order"
        );
        assert!(
            created - before >= 12,
            "{sort}: tasks were created between the pages"
        );
        if sort["direction"] == "desc" {
            // Newer tasks sort before the cursor: a descending walk never shows them.
            assert!(
                seen.iter()
                    .all(|id| !id.starts_with("n-") || id < &format!("n-{before:04}")),
                "{sort}: {seen:?}"
            );
        }
    }
}

#[tokio::test]
async fn cursors_are_checked() {
    let app = spawn_app().await;
    for i in 0..3 {
        app.create_ok(json!({"task_id": format!("c-{i}"), "task_type": "thumbnail"}))
            .await;
    }
    let v: Value = app
        .list(&app.key, "?page_size=1", json!({}))
        .await
        .json()
        .await
        .unwrap();
    let cursor = v["pagination"]["next_cursor"].as_str().unwrap().to_owned();
    let next: Value = app
        .list(
            &app.key,
            &format!("?page_size=1&cursor={cursor}"),
            json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&next), ["c-1"]);
    // The same cursor on GET /v1/tasks (same default order) works too.
    let res = app
        .send(
            Method::GET,
            &format!("/v1/tasks?page_size=1&cursor={cursor}"),
            &app.key,
        )
        .await;
    assert_eq!(ids(&res.json().await.unwrap()), ["c-1"]);

    for (q, body) in [
        (
            format!("?cursor={cursor}"),
            json!({"sort": {"field": "created_at", "direction": "asc"}}),
        ),
        (format!("?cursor={cursor}&page=2"), json!({})),
        (format!("?cursor={cursor}&offset=1"), json!({})),
        ("?cursor=bm90LWEtY3Vyc29y".to_owned(), json!({})),
        ("?cursor=%00%01".to_owned(), json!({})),
        (format!("?cursor={}", "A".repeat(5000)), json!({})),
    ] {
        let res = app.list(&app.key, &q, body).await;
        let b = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(b["error"]["details"]["field"], "cursor", "{q}");
    }
}

#[tokio::test]
async fn the_largest_filters_the_limits_allow_run_on_every_back_end() {
    let app = spawn_app().await;
    app.create_ok(
        json!({"task_id": "big", "task_type": "thumbnail", "additional_data": {"n": 999}}),
    )
    .await;
    let values: Vec<Value> = (0..1000)
        .map(|i| if i % 2 == 1 { json!(i) } else { Value::Null })
        .collect();
    let empty_groups: Vec<Value> = (0..2000).map(|_| json!({})).collect();
    for filters in [
        // 1000 in-values: once a chain of 1000 ORs, deeper than SQLite parses (it answered 500).
        json!({"OR": [{"field": "additional_data.n", "operator": "in", "value": values}]}),
        json!({"AND": empty_groups}),
        json!({"OR": (0..100).map(|i| json!({"field": "additional_data.n", "operator": "eq", "value": 900 + i})).collect::<Vec<_>>()}),
    ] {
        assert_eq!(app.list_ids("", json!({"filters": filters})).await, ["big"]);
    }
}
