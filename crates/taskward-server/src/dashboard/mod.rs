//! The dashboard (SPEC: Dashboard): a web UI served from the binary, at `/dashboard/`.
//!
//! Plain HTML, CSS and JavaScript modules under `assets/`, compiled in with `include_bytes!`:
//! no build step, no Node on anyone's machine, nothing fetched from another host. The page is
//! a client of the public API like any other — it signs its requests with the key the user
//! typed, held in `sessionStorage` — so this module serves files and nothing else: there is no
//! dashboard-only endpoint to secure.
//!
//! Why no framework: the page is two views over four endpoints and one event stream, which a
//! few hundred lines of DOM code cover; a vendored framework would be more code to review than
//! the page itself, and a bundler would put Node back in the build.
//!
//! Caching: each response carries a strong ETag (SHA-256 of the bytes, computed once) and
//! `Cache-Control: no-cache`, so a browser revalidates and gets a 304 until a new binary
//! serves new bytes. Hashed file names would save that round trip, but need a build step to
//! rewrite the imports between modules.

use std::sync::LazyLock;

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

/// Where the dashboard lives; the page's own links are relative to it.
pub const BASE: &str = "/dashboard/";

/// Scripts, styles, connections: this origin only. No inline script or style (the page has
/// none), so an injected `<script>` or `style=` attribute does nothing. `form-action 'none'`:
/// the sign-in form is handled by script; should the script not run, the browser refuses to
/// submit it rather than put the key in a URL.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("assets/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: [Asset; 8] = [
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("list.js", JS),
    asset!("detail.js", JS),
    asset!("ui.js", JS),
    asset!("icon.svg", "image/svg+xml"),
];

/// `"<sha256 prefix>"` per asset, in `ASSETS` order.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.bytes);
            let tag = format!("\"{}\"", taskward_model::task::hex(&digest[..12]));
            HeaderValue::from_str(&tag).expect("hex is a valid header value")
        })
        .collect()
});

/// The dashboard's routes; merged into the API router, so they pass the same layers (request
/// ids, metrics, limits).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(|| async { Redirect::permanent(BASE) }))
        .route("/dashboard/", get(shell))
        // The task detail is a view of the same page: the script reads the path.
        .route("/dashboard/tasks/{task_id}", get(shell))
        .route("/dashboard/assets/{name}", get(asset))
}

async fn shell(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

/// Matched on the raw path: asset names are plain ASCII, so anything percent-encoded (invalid
/// UTF-8 included) is simply not one of them, and gets the API's 404.
async fn asset(uri: Uri, headers: HeaderMap) -> Result<Response, ApiError> {
    let name = uri
        .path()
        .strip_prefix("/dashboard/assets/")
        .unwrap_or_default();
    match ASSETS
        .iter()
        .position(|a| a.name == name && a.name != "index.html")
    {
        Some(i) => Ok(serve(i, &headers)),
        None => Err(crate::router::route_not_found(uri).await),
    }
}

fn serve(i: usize, headers: &HeaderMap) -> Response {
    let asset = &ASSETS[i];
    let etag = ETAGS[i].clone();
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let common = [
        (header::ETAG, etag),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        )],
        asset.bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_served() {
        // A module missing from ASSETS would be a 404 only a browser notices.
        let served: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        for a in ASSETS
            .iter()
            .filter(|a| a.name.ends_with(".js") || a.name.ends_with(".html"))
        {
            let text = std::str::from_utf8(a.bytes).unwrap();
            for part in text
                .split("./")
                .skip(1)
                .chain(text.split("assets/").skip(1))
            {
                let Some(name) = part.split(['"', '\'']).next() else {
                    continue;
                };
                if name.ends_with(".js") || name.ends_with(".css") || name.ends_with(".svg") {
                    assert!(
                        served.contains(&name),
                        "{} refers to {name}, which is not served",
                        a.name
                    );
                }
            }
        }
    }

    #[test]
    fn etags_differ_per_asset() {
        let mut tags: Vec<_> = ETAGS.iter().collect();
        tags.sort();
        tags.dedup();
        assert_eq!(tags.len(), ASSETS.len());
    }
}
