//! Signing in and out: the key in sessionStorage only, a clear alert for a wrong or revoked
//! key, and what the served page itself promises (CSP, nothing from another host).

use std::time::Duration;

use serde_json::{json, Value};
use taskward_model::Mode;

use crate::{create, spawn_app, Browser};

/// The 401 a wrong key's sign-in request gets: Chromium logs every failed load.
const KEY_REFUSED: &str =
    "/v1/keys/self - Failed to load resource: the server responded with a status of 401";

#[tokio::test]
async fn a_wrong_key_gets_an_alert_and_a_right_one_the_task_list() {
    let app = spawn_app().await;
    create(&app, &app.key, "t-visible", json!({"status": "PROCESSING"})).await;
    let b = Browser::open(&app.base).await;
    b.goto("/dashboard/").await;

    for wrong in [
        "",
        "not a key at all",
        "sk_test_0000000000000000000000000000",
    ] {
        // Each attempt's own alert: the previous one is removed first, and the answer awaited
        // (the submit button is enabled again once the page has it).
        b.js("document.querySelector('[role=alert]')?.remove(); return null")
            .await;
        b.sign_in(wrong).await;
        b.expect("return !document.querySelector('#sign-in-form button').disabled && !!document.querySelector('[role=alert]')", "an alert").await;
        let alert = b.wait_css("[role=alert]").await;
        let text = alert.text().await.unwrap();
        assert!(
            !text.trim().is_empty(),
            "the alert for {wrong:?} says nothing"
        );
        assert!(alert.is_displayed().await.unwrap());
        assert_eq!(b.js("return sessionStorage.length").await, json!(0));
        assert!(b.row_ids().await.is_empty(), "rows shown for {wrong:?}");
    }
    assert!(
        b.js("return document.querySelector('[role=alert]').textContent")
            .await
            .as_str()
            .unwrap()
            .contains("not accepted"),
        "the alert should say the key was refused"
    );

    b.sign_in(&app.key).await;
    b.expect(
        "return !!document.querySelector('tr[data-task-id=\"t-visible\"]')",
        "the list after sign-in",
    )
    .await;
    assert_eq!(
        b.js("return document.querySelectorAll('[role=alert]').length")
            .await,
        json!(0)
    );

    // The key is in sessionStorage and nowhere else a page could leak it from.
    assert_eq!(
        b.js("return sessionStorage.getItem('taskward.key')").await,
        json!(app.key)
    );
    assert_eq!(b.js("return localStorage.length").await, json!(0));
    assert_eq!(b.js("return document.cookie").await, json!(""));
    let url = b.client.current_url().await.unwrap();
    assert!(
        !url.as_str().contains(&app.key[8..]),
        "key in the URL: {url}"
    );

    // A reload keeps the tab signed in.
    b.client.refresh().await.unwrap();
    b.expect(
        "return !!document.querySelector('tr[data-task-id=\"t-visible\"]')",
        "the list after a reload",
    )
    .await;

    // Signing out forgets the key and shows the form again.
    b.client
        .find(fantoccini::Locator::Css("#sign-out"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_css("#sign-in:not([hidden]) input[name=key]").await;
    assert_eq!(b.js("return sessionStorage.length").await, json!(0));
    assert!(b.row_ids().await.is_empty());
    b.client.refresh().await.unwrap();
    b.wait_css("#sign-in:not([hidden]) input[name=key]").await;
    assert!(
        b.row_ids().await.is_empty(),
        "a reload after sign-out shows tasks"
    );

    b.finish_expecting(&[KEY_REFUSED]).await;
}

#[tokio::test]
async fn a_key_revoked_while_the_page_is_open_signs_it_out_with_a_message() {
    let app = spawn_app().await;
    let key = app.key_for("acme", Mode::Test, "read").await;
    create(&app, &app.key, "t1", json!({"status": "PROCESSING"})).await;
    let b = Browser::open(&app.base).await;
    b.sign_in_to_list(&key).await;
    b.wait_css("tr[data-task-id=t1]").await;

    let store = taskward_server::open_store(&app.settings).await.unwrap();
    assert!(store.keys.revoke(&key).await.unwrap());
    // The next request the page makes (here: opening the task) is refused.
    b.client
        .find(fantoccini::Locator::Css("tr[data-task-id=t1] a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let alert = b.wait_css("[role=alert]").await;
    assert!(alert.text().await.unwrap().contains("no longer accepted"));
    assert_eq!(b.js("return sessionStorage.length").await, json!(0));
    assert!(b.row_ids().await.is_empty());
    assert_eq!(
        b.js("return document.querySelector('#view').children.length")
            .await,
        json!(0)
    );

    b.finish_expecting(&["status of 401"]).await;
}

#[tokio::test]
async fn the_page_is_served_with_a_strict_policy_and_loads_nothing_from_elsewhere() {
    let app = spawn_app().await;
    let b = Browser::open(&app.base).await;
    b.sign_in_to_list(&app.key).await;
    let origin = app.base.trim_end_matches('/');
    let loaded = b
        .js("return performance.getEntriesByType('resource').map(e => e.name)")
        .await;
    let loaded: Vec<String> = serde_json::from_value(loaded).unwrap();
    assert!(
        loaded
            .iter()
            .any(|u| u.ends_with("/dashboard/assets/app.js")),
        "{loaded:?}"
    );
    for u in &loaded {
        assert!(u.starts_with(origin), "loaded from another host: {u}");
    }
    // The policy is in force: an inline script the page did not ship does not run, and the
    // browser reports the violation (so the page itself must have none: `finish` checks).
    b.js("const s = document.createElement('script'); s.textContent = 'window.__ran = true'; document.body.append(s); return null").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        b.js("return window.__ran === true").await,
        Value::Bool(false)
    );
    let errors = b.console_errors().await;
    assert!(
        errors.iter().any(|e| e.contains("Content Security Policy")),
        "{errors:?}"
    );
    b.finish().await;
}
