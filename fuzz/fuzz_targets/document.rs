//! Task documents: a create or update body from any bytes. What parses is run through the
//! task's rules (registry check, create, content digest, update, kill, the response boundary)
//! and the rules' promises are checked: versions move by one, terminal tasks never change.
#![no_main]

use libfuzzer_sys::fuzz_target;
use taskward_model::{CreateTask, Task, TaskId, TaskResponse, TaskTypes, UpdateTask};

fuzz_target!(|data: &[u8]| {
    // First byte picks the document kind, so one corpus covers both bodies.
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let now = chrono::Utc::now();
    let base = || {
        let req: CreateTask =
            serde_json::from_str(r#"{"task_type": "thumbnail", "status": "PROCESSING"}"#)
                .expect("a valid create");
        Task::create(TaskId::parse("t1").expect("id"), req, now)
    };
    if kind % 2 == 0 {
        let Ok(req) = serde_json::from_slice::<CreateTask>(body) else {
            return;
        };
        let types = TaskTypes::new(&[]).expect("built-ins");
        if types.check("task_type", &req.task_type).is_err() {
            return;
        }
        let digest = req.content_digest();
        assert_eq!(digest, req.clone().content_digest(), "the digest is stable");
        let id = req.task_id.clone().unwrap_or_else(TaskId::generate);
        let task = Task::create(id, req, now);
        assert_eq!(task.version, 1);
        let shown = serde_json::to_value(TaskResponse::new(task.clone(), true)).expect("renders");
        assert!(shown["additional_data"]["from_mongodb"] == true);
        if let Some(next) = task.cancel(now) {
            assert_eq!(next.version, 2);
        }
    } else {
        let Ok(update) = serde_json::from_slice::<UpdateTask>(body) else {
            return;
        };
        let task = base();
        match task.apply(&update, now) {
            Ok(Some(next)) => {
                assert_eq!(next.version, task.version + 1);
                if next.status.is_terminal() {
                    // A terminal task accepts only the identical write again.
                    assert!(matches!(next.apply(&update, now), Ok(None)));
                }
                let _ = serde_json::to_string(&TaskResponse::new(next, false)).expect("renders");
            }
            Ok(None) => {}
            Err(e) => panic!("a non-terminal task refused an update: {e}"),
        }
    }
});
