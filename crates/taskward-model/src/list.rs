//! Listing: the request body, the paging parameters, sort, the keyset cursor and the response.
//!
//! Clients of the reference API page with `page`/`page_size` or with `limit`/`offset`; deep or
//! live listings use the opaque `cursor`, a keyset position (sort value + task id) that neither
//! skips nor repeats rows when tasks are created meanwhile. Everything arrives here as text and
//! leaves as a [`ListQuery`] the store can run without further checks.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::filter::{self, Expr};
use crate::task::{truncate, Task, TaskResponse, TaskStatus};
use crate::{time, Invalid};

/// Largest page.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Page size when none is given.
pub const DEFAULT_PAGE_SIZE: u32 = 10;
/// Highest page number (bounds the offset a client can make the database skip).
pub const MAX_PAGE: u64 = 1_000_000;
/// Longest `search` string.
pub const MAX_SEARCH_LEN: usize = 256;

/// `POST /v1/tasks/list` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListTasksBody {
    /// One status or a list of them.
    #[schema(value_type = Option<Object>)]
    #[serde(default, deserialize_with = "statuses")]
    pub status: Option<OneOrMany<TaskStatus>>,
    /// One task type or a list of them.
    #[schema(value_type = Option<Object>)]
    #[serde(default, deserialize_with = "task_types")]
    pub task_type: Option<OneOrMany<String>>,
    /// `{AND?, OR?, NOT?, case_sensitive?}` of conditions `{field, operator, value}`.
    #[schema(value_type = Option<Object>)]
    #[serde(default)]
    pub filters: Option<Value>,
    #[serde(default)]
    pub sort: Option<SortSpec>,
    /// Case-insensitive substring of task_id, task_type or status.
    #[serde(default)]
    pub search: Option<String>,
}

impl ListTasksBody {
    /// The accepted body keys, for error messages.
    pub const FIELDS: [&'static str; 5] = ["status", "task_type", "filters", "sort", "search"];
}

/// A single value or an array of them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        }
    }
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Decide on the JSON shape first so that the element's own error message (e.g.
        // "unknown variant `DONE`, expected one of …") reaches the client intact.
        match Value::deserialize(d)? {
            Value::Array(items) => items
                .into_iter()
                .map(|v| serde_json::from_value(v).map_err(serde::de::Error::custom))
                .collect::<Result<_, _>>()
                .map(OneOrMany::Many),
            v => serde_json::from_value(v)
                .map(OneOrMany::One)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// `status` of a list body: a status, an array of statuses, or null. Anything else is told
/// what is accepted (serde's own words for an enum fed an object, "expected map with a
/// single key", mean nothing to a client).
fn statuses<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OneOrMany<TaskStatus>>, D::Error> {
    let status = |v: &Value| {
        v.as_str().and_then(TaskStatus::parse).ok_or_else(|| {
            let shown = match v {
                Value::String(s) => format!("`{}`", truncate(s, 40)),
                other => json_kind(other).to_owned(),
            };
            serde::de::Error::custom(format!(
                "{shown} is not a status; send a status or an array of statuses, from {}",
                TaskStatus::ALL.map(TaskStatus::as_str).join(", ")
            ))
        })
    };
    one_or_many(d, status)
}

/// `task_type` of a list body: a task type, an array of them, or null.
fn task_types<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OneOrMany<String>>, D::Error> {
    let task_type = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(serde::de::Error::custom(format!(
            "{} is not a task type; send a task type (a string) or an array of them",
            json_kind(other)
        ))),
    };
    one_or_many(d, task_type)
}

fn one_or_many<'de, D: Deserializer<'de>, T>(
    d: D,
    item: impl Fn(&Value) -> Result<T, D::Error>,
) -> Result<Option<OneOrMany<T>>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => None,
        Value::Array(items) => Some(OneOrMany::Many(
            items.iter().map(&item).collect::<Result<_, _>>()?,
        )),
        v => Some(OneOrMany::One(item(&v)?)),
    })
}

/// "an object", "a number"…, for messages about a value of the wrong JSON type.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `{"field": "created_at", "direction": "desc"}`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SortSpec {
    pub field: String,
    /// `asc` or `desc` (default `desc`).
    #[serde(default)]
    pub direction: Option<String>,
}

/// A column lists can be ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortField {
    CreatedAt,
    UpdatedAt,
    StartedAt,
    FinishedAt,
    TaskId,
    TaskType,
    Status,
    Version,
}

impl SortField {
    /// Every sortable field.
    pub const ALL: [SortField; 8] = [
        SortField::CreatedAt,
        SortField::UpdatedAt,
        SortField::StartedAt,
        SortField::FinishedAt,
        SortField::TaskId,
        SortField::TaskType,
        SortField::Status,
        SortField::Version,
    ];

    /// The wire (and column) name.
    pub fn as_str(self) -> &'static str {
        match self {
            SortField::CreatedAt => "created_at",
            SortField::UpdatedAt => "updated_at",
            SortField::StartedAt => "started_at",
            SortField::FinishedAt => "finished_at",
            SortField::TaskId => "task_id",
            SortField::TaskType => "task_type",
            SortField::Status => "status",
            SortField::Version => "version",
        }
    }

    /// The task's value for this field as a keyset position. A missing timestamp is the
    /// empty string, which sorts before every real one (the back-ends order by the same).
    pub fn key_of(self, t: &Task) -> CursorValue {
        let opt_time = |o: &Option<chrono::DateTime<chrono::Utc>>| {
            CursorValue::Text(o.as_ref().map(time::format).unwrap_or_default())
        };
        match self {
            SortField::CreatedAt => CursorValue::Text(time::format(&t.created_at)),
            SortField::UpdatedAt => CursorValue::Text(time::format(&t.updated_at)),
            SortField::StartedAt => opt_time(&t.started_at),
            SortField::FinishedAt => opt_time(&t.finished_at),
            SortField::TaskId => CursorValue::Text(t.task_id.as_str().to_owned()),
            SortField::TaskType => CursorValue::Text(t.task_type.clone()),
            SortField::Status => CursorValue::Text(t.status.as_str().to_owned()),
            SortField::Version => CursorValue::Int(t.version as i64),
        }
    }
}

/// A validated order: field, direction, then task id as the tie-breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub field: SortField,
    pub desc: bool,
}

impl Default for Sort {
    fn default() -> Self {
        Sort {
            field: SortField::CreatedAt,
            desc: true,
        }
    }
}

impl Sort {
    fn parse(spec: &SortSpec) -> Result<Sort, Invalid> {
        let field = SortField::ALL
            .into_iter()
            .find(|f| f.as_str() == spec.field)
            .ok_or_else(|| {
                Invalid::one_of(
                    "sort.field",
                    format!("cannot sort by `{}`", truncate(&spec.field, 60)),
                    SortField::ALL.map(SortField::as_str),
                )
            })?;
        let desc = match spec
            .direction
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("desc") => true,
            Some("asc") => false,
            Some(_) => {
                return Err(Invalid::one_of(
                    "sort.direction",
                    "unknown direction",
                    ["asc", "desc"],
                ))
            }
        };
        Ok(Sort { field, desc })
    }
}

/// A keyset position's sort value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CursorValue {
    Int(i64),
    Text(String),
}

/// Where the previous page ended. Opaque to clients (base64url JSON); it carries the sort it
/// was made for so that it cannot be replayed against another order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "f")]
    pub field: SortField,
    #[serde(rename = "d")]
    pub desc: bool,
    #[serde(rename = "v")]
    pub value: CursorValue,
    #[serde(rename = "i")]
    pub task_id: String,
}

impl Cursor {
    /// The position just after `last` in `sort` order.
    pub fn after(sort: Sort, last: &Task) -> Cursor {
        Cursor {
            field: sort.field,
            desc: sort.desc,
            value: sort.field.key_of(last),
            task_id: last.task_id.as_str().to_owned(),
        }
    }

    /// The opaque form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Decodes a client-supplied cursor and checks it belongs to `sort`.
    pub fn decode(s: &str, sort: Sort) -> Result<Cursor, Invalid> {
        let bad = || Invalid::new("cursor", "is not a cursor this listing returned");
        if s.len() > 1024 {
            return Err(bad());
        }
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
        let c: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        let kind_ok = match c.value {
            CursorValue::Int(_) => c.field == SortField::Version,
            CursorValue::Text(_) => c.field != SortField::Version,
        };
        if c.field != sort.field || c.desc != sort.desc {
            return Err(Invalid::new("cursor", "was made for another sort order"));
        }
        if !kind_ok || c.task_id.len() > crate::TaskId::MAX_LEN {
            return Err(bad());
        }
        Ok(c)
    }
}

/// The paging query parameters, as received (all optional text, checked by [`Paging::parse`]
/// so that a bad value gets a message naming it). The server's OpenAPI document describes
/// what each must parse as, and which exclude each other.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PagingParams {
    /// 1-based page (default 1).
    pub page: Option<String>,
    /// 1 to 1000 (default 10).
    pub page_size: Option<String>,
    /// Alternative to page_size.
    pub limit: Option<String>,
    /// Alternative to page.
    pub offset: Option<String>,
    /// Opaque keyset cursor from `pagination.next_cursor`.
    pub cursor: Option<String>,
    /// Count all matching tasks (`total`, `total_pages`).
    pub include_total: Option<String>,
}

/// How the client asked to page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PagingStyle {
    /// `page` / `page_size`
    Pages { page: u64 },
    /// `limit` / `offset`
    Offset,
    /// `cursor`
    Cursor,
}

/// Validated paging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paging {
    pub style: PagingStyle,
    pub limit: u32,
    pub offset: u64,
    pub cursor: Option<Cursor>,
    pub include_total: bool,
}

impl Paging {
    /// Checks the parameters. `limit`/`offset` and `page`/`page_size` are alternatives; a
    /// cursor replaces both `page` and `offset`.
    pub fn parse(p: &PagingParams, sort: Sort) -> Result<Paging, Invalid> {
        let page = parse_num(p.page.as_deref(), "page", 1, MAX_PAGE)?;
        let page_size = parse_num(p.page_size.as_deref(), "page_size", 1, MAX_PAGE_SIZE.into())?;
        let limit = parse_num(p.limit.as_deref(), "limit", 1, MAX_PAGE_SIZE.into())?;
        let offset = parse_num(
            p.offset.as_deref(),
            "offset",
            0,
            MAX_PAGE * u64::from(MAX_PAGE_SIZE),
        )?;
        let include_total = match p.include_total.as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(_) => {
                return Err(Invalid::one_of(
                    "include_total",
                    "must be a boolean",
                    ["true", "false"],
                ))
            }
        };
        if page.is_some() && (limit.is_some() || offset.is_some()) {
            return Err(Invalid::new(
                "page",
                "use either page/page_size or limit/offset, not both",
            ));
        }
        // Even equal values: one size parameter per request keeps the rule simple to state
        // (and to describe in the OpenAPI document, which cannot compare two parameters).
        if page_size.is_some() && limit.is_some() {
            return Err(Invalid::new(
                "limit",
                "send page_size (with page) or limit (with offset), not both",
            ));
        }
        let size = limit.or(page_size).unwrap_or(DEFAULT_PAGE_SIZE.into()) as u32;
        let cursor = match p.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => {
                if page.unwrap_or(1) != 1 || offset.unwrap_or(0) != 0 {
                    return Err(Invalid::new(
                        "cursor",
                        "a cursor replaces page and offset; send only one",
                    ));
                }
                Some(Cursor::decode(c, sort)?)
            }
        };
        let (style, offset) = if cursor.is_some() {
            (PagingStyle::Cursor, 0)
        } else if limit.is_some() || offset.is_some() {
            (PagingStyle::Offset, offset.unwrap_or(0))
        } else {
            let page = page.unwrap_or(1);
            (PagingStyle::Pages { page }, (page - 1) * u64::from(size))
        };
        Ok(Paging {
            style,
            limit: size,
            offset,
            cursor,
            include_total,
        })
    }
}

fn parse_num(v: Option<&str>, field: &str, min: u64, max: u64) -> Result<Option<u64>, Invalid> {
    let Some(v) = v else { return Ok(None) };
    // Digits, optionally with a zero fraction (`2.0` is the integer 2 in JSON Schema, and some
    // clients print integers that way). Not `+5`, which Rust's parser alone would take.
    let v = match v.split_once('.') {
        Some((int, frac)) if !frac.is_empty() && frac.bytes().all(|b| b == b'0') => int,
        _ => v,
    };
    let digits = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    match v.parse::<u64>().ok().filter(|_| digits) {
        Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(Invalid::new(
            field,
            format!("must be an integer from {min} to {max}"),
        )),
    }
}

/// A listing the store can run as it is: every part already validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// Only non-terminal tasks (`GET /v1/tasks`).
    pub active_only: bool,
    /// Any of these statuses (empty: any).
    pub statuses: Vec<TaskStatus>,
    /// Any of these types (empty: any).
    pub task_types: Vec<String>,
    pub filter: Option<Expr>,
    /// Lower-cased substring of task_id, task_type or status.
    pub search: Option<String>,
    pub sort: Sort,
    /// Rows to return; the store fetches one more to learn whether another page exists.
    pub limit: u32,
    pub offset: u64,
    pub after: Option<Cursor>,
    pub include_total: bool,
}

impl ListQuery {
    /// The active-task listing of `GET /v1/tasks`.
    pub fn active(paging: &Paging) -> ListQuery {
        ListQuery::from_parts(true, ListTasksBodyParts::default(), Sort::default(), paging)
    }

    /// Validates a `POST /v1/tasks/list` body together with its paging parameters.
    pub fn from_body(
        body: ListTasksBody,
        params: &PagingParams,
    ) -> Result<(ListQuery, Paging), Invalid> {
        let sort = body
            .sort
            .as_ref()
            .map(Sort::parse)
            .transpose()?
            .unwrap_or_default();
        let paging = Paging::parse(params, sort)?;
        let filter = body
            .filters
            .as_ref()
            .filter(|v| !v.is_null())
            .map(filter::parse)
            .transpose()?;
        let search = match body.search {
            Some(s) if s.chars().count() > MAX_SEARCH_LEN => {
                return Err(Invalid::new(
                    "search",
                    format!("at most {MAX_SEARCH_LEN} characters"),
                ))
            }
            Some(s) if !s.is_empty() => Some(s.to_lowercase()),
            _ => None,
        };
        let parts = ListTasksBodyParts {
            statuses: body.status.map(OneOrMany::into_vec).unwrap_or_default(),
            task_types: body.task_type.map(OneOrMany::into_vec).unwrap_or_default(),
            filter,
            search,
        };
        if parts.statuses.len() > filter::MAX_LIST || parts.task_types.len() > filter::MAX_LIST {
            return Err(Invalid::new(
                "status",
                format!("at most {} values", filter::MAX_LIST),
            ));
        }
        Ok((ListQuery::from_parts(false, parts, sort, &paging), paging))
    }

    fn from_parts(
        active_only: bool,
        parts: ListTasksBodyParts,
        sort: Sort,
        paging: &Paging,
    ) -> ListQuery {
        ListQuery {
            active_only,
            statuses: parts.statuses,
            task_types: parts.task_types,
            filter: parts.filter,
            search: parts.search,
            sort,
            limit: paging.limit,
            offset: paging.offset,
            after: paging.cursor.clone(),
            include_total: paging.include_total,
        }
    }
}

#[derive(Debug, Default)]
struct ListTasksBodyParts {
    statuses: Vec<TaskStatus>,
    task_types: Vec<String>,
    filter: Option<Expr>,
    search: Option<String>,
}

/// What a store returns for a [`ListQuery`].
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    pub tasks: Vec<Task>,
    /// Whether rows follow this page.
    pub has_more: bool,
    /// Matching rows in all, when asked for.
    pub total: Option<u64>,
}

/// The `pagination` object of list responses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Pagination {
    /// Matching tasks in all; only with `include_total=true`.
    pub total: Option<u64>,
    pub page: Option<u64>,
    pub page_size: Option<u64>,
    /// Only with `include_total=true`.
    pub total_pages: Option<u64>,
    /// Relative URL of the next page, when there is one.
    pub next_page: Option<String>,
    /// Relative URL of the previous page, when there is one.
    pub previous_page: Option<String>,
    /// Opaque keyset cursor for the next page, when there is one.
    pub next_cursor: Option<String>,
}

/// A page of tasks.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ListResponse {
    pub results: Vec<TaskResponse>,
    pub pagination: Pagination,
}

impl ListResponse {
    /// Assembles the response; `base` is the path the next/previous links point at.
    pub fn new(page: ListPage, paging: &Paging, sort: Sort, base: &str) -> ListResponse {
        let size = u64::from(paging.limit);
        let next_cursor = page
            .has_more
            .then(|| page.tasks.last().map(|t| Cursor::after(sort, t).encode()))
            .flatten();
        let total_q = if paging.include_total {
            "&include_total=true"
        } else {
            ""
        };
        let (page_no, next_page, previous_page) = match paging.style {
            PagingStyle::Pages { page: n } => (
                Some(n),
                page.has_more
                    .then(|| format!("{base}?page={}&page_size={size}{total_q}", n + 1)),
                (n > 1).then(|| format!("{base}?page={}&page_size={size}{total_q}", n - 1)),
            ),
            PagingStyle::Offset => (
                Some(paging.offset / size + 1),
                page.has_more.then(|| {
                    format!(
                        "{base}?limit={size}&offset={}{total_q}",
                        paging.offset + size
                    )
                }),
                (paging.offset > 0).then(|| {
                    format!(
                        "{base}?limit={size}&offset={}{total_q}",
                        paging.offset.saturating_sub(size)
                    )
                }),
            ),
            PagingStyle::Cursor => (
                None,
                next_cursor
                    .as_ref()
                    .map(|c| format!("{base}?cursor={c}&page_size={size}{total_q}")),
                None,
            ),
        };
        ListResponse {
            results: page
                .tasks
                .into_iter()
                .map(|t| TaskResponse::new(t, false))
                .collect(),
            pagination: Pagination {
                total: page.total,
                page: page_no,
                page_size: Some(size),
                total_pages: page.total.map(|t| t.div_ceil(size)),
                next_page,
                previous_page,
                next_cursor,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> PagingParams {
        let mut p = PagingParams::default();
        for (k, v) in pairs {
            let v = Some(v.to_string());
            match *k {
                "page" => p.page = v,
                "page_size" => p.page_size = v,
                "limit" => p.limit = v,
                "offset" => p.offset = v,
                "cursor" => p.cursor = v,
                "include_total" => p.include_total = v,
                _ => unreachable!(),
            }
        }
        p
    }

    #[test]
    fn list_body_status_and_type_say_what_they_accept() {
        let body = |v: Value| serde_json::from_value::<ListTasksBody>(v);
        for bad in [
            serde_json::json!({"status": {}}),
            serde_json::json!({"status": [{}]}),
            serde_json::json!({"status": 5}),
            serde_json::json!({"status": ["FAILED", "DONE"]}),
        ] {
            let msg = body(bad.clone()).unwrap_err().to_string();
            assert!(
                msg.contains("a status or an array of statuses") && msg.contains("IN_PROGRESS"),
                "{bad}: {msg}"
            );
            assert!(!msg.contains("single key"), "{msg}");
        }
        let msg = body(serde_json::json!({"task_type": {"a": 1}}))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("an object is not a task type"), "{msg}");
        let ok = body(serde_json::json!({"status": "FAILED", "task_type": ["thumbnail"]})).unwrap();
        assert_eq!(ok.status, Some(OneOrMany::One(TaskStatus::Failed)));
        assert_eq!(
            ok.task_type,
            Some(OneOrMany::Many(vec!["thumbnail".into()]))
        );
        assert!(body(serde_json::json!({"status": null}))
            .unwrap()
            .status
            .is_none());
    }

    #[test]
    fn both_paging_styles_map_to_offsets() {
        let p = Paging::parse(
            &params(&[("page", "3"), ("page_size", "20")]),
            Sort::default(),
        )
        .unwrap();
        assert_eq!((p.offset, p.limit), (40, 20));
        let p =
            Paging::parse(&params(&[("limit", "5"), ("offset", "7")]), Sort::default()).unwrap();
        assert_eq!((p.offset, p.limit, p.style), (7, 5, PagingStyle::Offset));
        let p = Paging::parse(&params(&[]), Sort::default()).unwrap();
        assert_eq!((p.offset, p.limit), (0, DEFAULT_PAGE_SIZE));
        let p = Paging::parse(
            &params(&[("page", "2.0"), ("page_size", "5")]),
            Sort::default(),
        )
        .unwrap();
        assert_eq!((p.offset, p.limit), (5, 5), "2.0 is the integer 2");
    }

    #[test]
    fn bad_paging_is_refused() {
        for bad in [
            vec![("page", "0")],
            vec![("page", "-1")],
            vec![("page", "x")],
            vec![("page_size", "0")],
            vec![("page_size", "1001")],
            vec![("limit", "99999999999999999999999")],
            vec![("page", "2"), ("offset", "3")],
            vec![("page_size", "5"), ("limit", "6")],
            vec![("page_size", "5"), ("limit", "5")],
            vec![("page", "+2")],
            vec![("page", "2.5")],
            vec![("page", "2.")],
            vec![("limit", " 5")],
            vec![("include_total", "maybe")],
            vec![("cursor", "not-a-cursor")],
        ] {
            assert!(
                Paging::parse(&params(&bad), Sort::default()).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn cursor_round_trips_and_is_bound_to_its_sort() {
        let c = Cursor {
            field: SortField::CreatedAt,
            desc: true,
            value: CursorValue::Text("2026-01-01T00:00:00.000000Z".into()),
            task_id: "t".into(),
        };
        assert_eq!(Cursor::decode(&c.encode(), Sort::default()).unwrap(), c);
        let asc = Sort {
            field: SortField::CreatedAt,
            desc: false,
        };
        assert!(Cursor::decode(&c.encode(), asc).is_err());
        let forged = Cursor {
            field: SortField::Version,
            desc: true,
            value: CursorValue::Text("x".into()),
            task_id: "t".into(),
        };
        let by_version = Sort {
            field: SortField::Version,
            desc: true,
        };
        assert!(Cursor::decode(&forged.encode(), by_version).is_err());
    }
}
