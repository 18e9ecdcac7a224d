//! The filter language and the rest of a list body: any bytes a client can send to
//! `POST /v1/tasks/list` either validate into a query or are refused with an `Invalid` naming
//! a field; nothing panics, recurses without bound or takes super-linear time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use taskward_model::filter;
use taskward_model::list::{ListQuery, ListTasksBody, PagingParams};

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Err(e) = filter::parse(&v) {
        assert!(!e.field.is_empty(), "an error names the field");
    }
    // The same value as a whole list body (typed first, as the server does).
    if let Ok(body) = serde_json::from_value::<ListTasksBody>(v) {
        let _ = ListQuery::from_body(body, &PagingParams::default());
    }
});
