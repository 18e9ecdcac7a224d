//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and the
//! model's `ToSchema` derives, so it cannot drift from the code.

use std::sync::OnceLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

use crate::api::{health, tasks};

#[derive(OpenApi)]
#[openapi(
    info(title = "taskward", description = "Task-status service, wire-compatible with the reference Tasks API."),
    paths(
        tasks::get_task, tasks::list_active_tasks, tasks::list_tasks, tasks::kill_task,
        tasks::kill_task_post, tasks::create_task, tasks::update_task,
        health::healthz, health::readyz,
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
                    .build(),
            ),
        );
    }
}

/// The document (built once).
pub fn document() -> &'static Document {
    static DOC: OnceLock<Document> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}
