//! The dashboard's files over HTTP: where they are, what protects them, how they cache. (The
//! page itself is tested in a real browser by `tests/dashboard`.)

use reqwest::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION,
};
use reqwest::StatusCode;

use crate::support::{assert_error, spawn_app};

#[tokio::test]
async fn the_dashboard_is_served_with_a_strict_policy_and_revalidates_by_etag() {
    let app = spawn_app().await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = no_redirects
        .get(app.url("/dashboard"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(res.headers()[LOCATION], "/dashboard/");

    let mut shell = None;
    for path in [
        "/dashboard/",
        "/dashboard/tasks/some-task",
        "/dashboard/tasks/a%20b",
    ] {
        let res = app.get_public(path).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(res.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        let csp = res.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "connect-src 'self'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        assert_eq!(res.headers()["referrer-policy"], "no-referrer");
        let body = res.text().await.unwrap();
        assert!(body.contains(r#"name="key""#) && body.contains(r#"type="password""#));
        // Nothing from another host, and no inline script the policy would block.
        assert!(!body.contains("http://") && !body.contains("https://") && !body.contains("//cdn"));
        assert!(!body.contains("<script>") && !body.contains(" style="));
        if let Some(first) = &shell {
            assert_eq!(first, &body, "every view is the same page");
        }
        shell = Some(body);
    }

    for (asset, kind) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("list.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let path = format!("/dashboard/assets/{asset}");
        let res = app.get_public(&path).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(res.headers()[CONTENT_TYPE], kind, "{path}");
        assert_eq!(res.headers()[CACHE_CONTROL], "no-cache", "{path}");
        let etag = res.headers()[ETAG].clone();
        assert!(etag.to_str().unwrap().starts_with('"'), "{etag:?}");
        assert!(!res.bytes().await.unwrap().is_empty());
        // The browser revalidates and gets a 304 with no body while the binary is the same.
        let again = app
            .client
            .get(app.url(&path))
            .header(IF_NONE_MATCH, etag.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(again.headers()[ETAG], etag);
        assert!(again.bytes().await.unwrap().is_empty());
        let stale = app
            .client
            .get(app.url(&path))
            .header(IF_NONE_MATCH, "\"other\"")
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn unknown_dashboard_paths_are_404_in_the_error_shape() {
    let app = spawn_app().await;
    for path in [
        "/dashboard/assets/nope.js",
        "/dashboard/assets/index.html",
        "/dashboard/assets/..%2f..%2fCargo.toml",
        "/dashboard/assets/%FF",
        "/dashboard/assets/app%2Ejs",
        "/dashboard/assets/",
        "/dashboard/tasks/",
        "/dashboard/tasks/a/b",
        "/dashboard/settings",
    ] {
        let res = app.get_public(path).await;
        assert_error(res, StatusCode::NOT_FOUND).await;
    }
    let res = app
        .client
        .post(app.url("/dashboard/"))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::METHOD_NOT_ALLOWED).await;
}
