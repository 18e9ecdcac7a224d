//! Extractors named for the guarantee they give. Each turns malformed input into an
//! [`ApiError`], so axum's plain-text rejections never reach a client.

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use std::sync::OnceLock;

use bytes::Bytes;
use regex::Regex;
use serde::de::DeserializeOwned;
use taskward_model::{Invalid, TaskId};

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body: `Content-Type: application/json`, within the size limit, nested no deeper than
/// the configured depth, and matching `T` exactly (unknown keys are refused by `T`).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// Like [`ApiJson`], but an empty body (with or without a content type) means `T::default()`:
/// clients of the reference API call the list endpoint without a body.
#[derive(Debug)]
pub struct ApiJsonOrEmpty<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (headers, bytes) = read_body(req, state).await?;
        require_json(&headers)?;
        parse_json(&bytes, state.settings.limits.max_json_depth).map(ApiJson)
    }
}

impl<T: DeserializeOwned + Default> FromRequest<AppState> for ApiJsonOrEmpty<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (headers, bytes) = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(ApiJsonOrEmpty(T::default()));
        }
        require_json(&headers)?;
        parse_json(&bytes, state.settings.limits.max_json_depth).map(ApiJsonOrEmpty)
    }
}

async fn read_body(req: Request, state: &AppState) -> Result<(HeaderMap, Bytes), ApiError> {
    let headers = req.headers().clone();
    let limit = state.settings.limits.max_body_bytes;
    // `DefaultBodyLimit` (set on the router from the same setting) makes `Bytes` stop reading
    // at the limit; a declared Content-Length over it is refused before reading at all.
    let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
        if rej.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(limit)
        } else {
            ApiError::MalformedJson("the request body could not be read".into())
        }
    })?;
    Ok((headers, bytes))
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

/// Parses a body, naming the offending field on type errors. Every body of the API is a JSON
/// object: serde would also read a struct from an array (`[null, null]` as positional fields),
/// which no client means.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8], max_depth: usize) -> Result<T, ApiError> {
    check_depth(bytes, max_depth)?;
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::Invalid(Invalid::new(
            "body",
            "must be a JSON object, not an array",
        )));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            ApiError::MalformedJson(inner.to_string())
        } else {
            let field = if path == "." { "body".to_owned() } else { path };
            ApiError::Invalid(Invalid::new(field, strip_position(&inner.to_string())))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    Ok(value)
}

/// serde_json appends " at line 1 column 42" to data errors; the field path says more.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// Refuses JSON nested deeper than `max` before parsing it, so no input can make the parser
/// recurse far. Brackets inside strings do not count.
fn check_depth(bytes: &[u8], max: usize) -> Result<(), ApiError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return Err(ApiError::Invalid(Invalid::new(
                        "body",
                        format!("JSON is nested deeper than {max} levels"),
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Query parameters, all-or-422.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|rej| {
                ApiError::Invalid(Invalid::new("query", strip_position(&rej.body_text())))
            })
    }
}

/// The `{task_id}` path segment, validated.
#[derive(Debug)]
pub struct TaskIdPath(pub TaskId);

impl<S: Send + Sync> FromRequestParts<S> for TaskIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::Invalid(Invalid::new("task_id", "is not valid UTF-8 text")))?;
        let id = TaskId::parse(&raw).map_err(ApiError::Invalid)?;
        // A reserved id never names a task (creates refuse it), and `POST /v1/tasks/list/kill`
        // answering "nothing to cancel" would suggest otherwise.
        crate::router::refuse_reserved_task_id(&id)?;
        Ok(TaskIdPath(id))
    }
}

/// `If-Match`: `*`, or one entity tag `"<version>"` / `W/"<version>"` / a bare version.
/// Versions have at most 19 digits, so every match fits a `u64`. The OpenAPI document states
/// this same pattern, and the extractor checks with it, so the two cannot disagree.
pub const IF_MATCH_PATTERN: &str = r#"^(\*|(W/)?("[0-9]{1,19}"|[0-9]{1,19}))$"#;

/// `If-None-Match`: `*`, or a comma-separated list of entity tags as in [`IF_MATCH_PATTERN`];
/// empty list elements (`"1", ,"2",`) are allowed, as HTTP's list syntax requires.
pub const IF_NONE_MATCH_PATTERN: &str = r#"^(\*|(,[ \t]*)*(W/)?("[0-9]{1,19}"|[0-9]{1,19})([ \t]*,([ \t]*(W/)?("[0-9]{1,19}"|[0-9]{1,19}))?)*)[ \t]*$"#;

fn matches(pattern: &'static str, cell: &'static OnceLock<Regex>, value: &str) -> bool {
    cell.get_or_init(|| Regex::new(pattern).expect("the ETag patterns compile"))
        .is_match(value)
}

/// `If-Match: "<version>"` (also `W/"<version>"`, a bare number, or `*` for "any").
#[derive(Debug)]
pub struct IfMatch(pub Option<u64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let mut values = parts.headers.get_all(header::IF_MATCH).iter();
        let Some(v) = values.next() else {
            return Ok(IfMatch(None));
        };
        let bad = || {
            ApiError::Invalid(Invalid::new(
                "If-Match",
                "must be one ETag, \"<version>\", as sent in ETag",
            ))
        };
        if values.next().is_some() {
            return Err(bad());
        }
        static PATTERN: OnceLock<Regex> = OnceLock::new();
        let s = v.to_str().map_err(|_| bad())?;
        if !matches(IF_MATCH_PATTERN, &PATTERN, s) {
            return Err(bad());
        }
        if s == "*" {
            return Ok(IfMatch(None));
        }
        etag_version(s).map(|v| IfMatch(Some(v))).ok_or_else(bad)
    }
}

/// The version in one entity tag: `"<version>"`, `W/"<version>"` or a bare number.
fn etag_version(tag: &str) -> Option<u64> {
    let tag = tag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    let tag = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(tag);
    tag.parse().ok()
}

/// `If-None-Match`: the versions the client already holds (a list of ETags as sent in `ETag`,
/// weak ones too), or `*` for "any version".
#[derive(Debug, Default, PartialEq, Eq)]
pub enum IfNoneMatch {
    #[default]
    Absent,
    Any,
    Versions(Vec<u64>),
}

impl IfNoneMatch {
    /// Whether a task at `version` is one the client already has (then the answer is 304).
    pub fn matches(&self, version: u64) -> bool {
        match self {
            IfNoneMatch::Absent => false,
            IfNoneMatch::Any => true,
            IfNoneMatch::Versions(v) => v.contains(&version),
        }
    }

    /// The client's version when it names exactly one.
    pub fn single(&self) -> Option<u64> {
        match self {
            IfNoneMatch::Versions(v) if v.len() == 1 => Some(v[0]),
            _ => None,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let bad = || {
            ApiError::Invalid(Invalid::new(
                "If-None-Match",
                "must be `*` or a list of ETags, \"<version>\", as sent in ETag",
            ))
        };
        static PATTERN: OnceLock<Regex> = OnceLock::new();
        let mut versions = Vec::new();
        let mut any = false;
        let mut present = false;
        for value in parts.headers.get_all(header::IF_NONE_MATCH) {
            present = true;
            let value = value.to_str().map_err(|_| bad())?;
            if !matches(IF_NONE_MATCH_PATTERN, &PATTERN, value) {
                return Err(bad());
            }
            for tag in value.split(',') {
                if tag.trim().is_empty() {
                    continue;
                }
                if tag.trim() == "*" {
                    any = true;
                } else {
                    versions.push(etag_version(tag).ok_or_else(bad)?);
                }
            }
        }
        Ok(match (present, any) {
            (false, _) => IfNoneMatch::Absent,
            (true, true) => IfNoneMatch::Any,
            (true, false) => IfNoneMatch::Versions(versions),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_brackets_outside_strings_only() {
        assert!(check_depth(b"[[[1]]]", 3).is_ok());
        assert!(check_depth(b"[[[[1]]]]", 3).is_err());
        assert!(check_depth(br#"{"a": "[[[[[[\"[[["}"#, 2).is_ok());
        assert!(check_depth(&[b'['; 100_000], 32).is_err());
    }

    #[test]
    fn etag_headers_follow_the_documented_grammar() {
        static M: OnceLock<Regex> = OnceLock::new();
        static N: OnceLock<Regex> = OnceLock::new();
        for ok in ["*", "\"1\"", "W/\"12\"", "7", &"9".repeat(19)] {
            assert!(matches(IF_MATCH_PATTERN, &M, ok), "{ok}");
            assert!(etag_version(ok).is_some() || ok == "*", "{ok}");
        }
        for bad in [
            "",
            "+1",
            "\"1",
            "1\"",
            "\"1\", \"2\"",
            &"9".repeat(20),
            " 1",
            "W/",
            "\"-1\"",
        ] {
            assert!(!matches(IF_MATCH_PATTERN, &M, bad), "{bad}");
        }
        for ok in [
            "*",
            "\"1\"",
            "\"1\", W/\"2\"",
            "1,2",
            "\"1\",",
            "\"1\", ",
            ", \"1\",, \"2\"",
        ] {
            assert!(matches(IF_NONE_MATCH_PATTERN, &N, ok), "{ok}");
        }
        for bad in ["", ",", "*, \"1\"", "abc", "\"v1\"", "\"1\" \"2\""] {
            assert!(!matches(IF_NONE_MATCH_PATTERN, &N, bad), "{bad}");
        }
    }

    #[test]
    fn type_errors_name_the_field() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct B {
            a: Vec<u32>,
        }
        match parse_json::<B>(br#"{"a": [1, "x"]}"#, 32) {
            Err(ApiError::Invalid(inv)) => assert_eq!(inv.field, "a[1]"),
            other => panic!("{other:?}"),
        }
        match parse_json::<B>(br#"{"a": [], "b": 1}"#, 32) {
            Err(ApiError::Invalid(inv)) => {
                assert!(inv.message.contains("unknown field `b`"), "{inv:?}")
            }
            other => panic!("{other:?}"),
        }
        match parse_json::<B>(b" [[1]]", 32) {
            Err(ApiError::Invalid(inv)) => assert_eq!(inv.field, "body"),
            other => panic!("an array is not a body: {other:?}"),
        }
        assert!(matches!(
            parse_json::<B>(b"{", 32),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(
            parse_json::<B>(br#"{"a": []} x"#, 32),
            Err(ApiError::MalformedJson(_))
        ));
    }
}
