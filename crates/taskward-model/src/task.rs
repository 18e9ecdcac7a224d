//! The task: its fields, its validated parts and the rules of how it may change.
//!
//! Transitions are decided here, on plain values, so that every storage back-end applies the
//! same rules: a back-end only reads the current task, asks [`Task::apply`] or
//! [`Task::cancel`] for the next one and stores it with a compare-and-set on `version`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::progress::{self, Progress, ProgressTrack};
use crate::time::{serde_rfc3339, serde_rfc3339_opt};
use crate::Invalid;

/// The response annotation for "read from the durable fallback tier"; never stored.
pub const FROM_DURABLE_KEY: &str = "from_mongodb";

/// A task id: 1 to 128 characters from `[A-Za-z0-9._:-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(transparent)]
pub struct TaskId(String);

impl TaskId {
    /// Longest accepted id.
    pub const MAX_LEN: usize = 128;

    /// What [`TaskId::parse`] accepts, as an ECMA-262 regular expression (for the OpenAPI
    /// document). `.` and `..` are excluded because URLs collapse them: `/v1/tasks/.` reaches
    /// `/v1/tasks/`, so such a task could be created but never addressed.
    pub const PATTERN: &'static str = r"^(?!\.{1,2}$)[A-Za-z0-9._:-]{1,128}$";

    /// Validates a client-supplied id.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
        if s.is_empty() || s.len() > Self::MAX_LEN || !s.chars().all(ok_char) {
            return Err(Invalid::new(
                "task_id",
                "must be 1 to 128 characters from A-Z a-z 0-9 . _ : -",
            ));
        }
        if s == "." || s == ".." {
            return Err(Invalid::new(
                "task_id",
                "must not be `.` or `..`: URLs collapse them, so the task could not be addressed",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// A fresh UUID v4 id, for creates that name none.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl<'de> Deserialize<'de> for TaskId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        TaskId::parse(&s).map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// The status of a task: the reference API's twelve spellings plus `COMPLETED_WITH_ERRORS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    Pending,
    InProgress,
    Processing,
    Completed,
    CompletedWithErrors,
    Failed,
    Canceled,
    Unknown,
    Skipped,
    Draft,
    Active,
    Archived,
    Suspended,
}

impl TaskStatus {
    /// Every status, in the reference API's order.
    pub const ALL: [TaskStatus; 13] = [
        TaskStatus::Pending,
        TaskStatus::InProgress,
        TaskStatus::Processing,
        TaskStatus::Completed,
        TaskStatus::CompletedWithErrors,
        TaskStatus::Failed,
        TaskStatus::Canceled,
        TaskStatus::Unknown,
        TaskStatus::Skipped,
        TaskStatus::Draft,
        TaskStatus::Active,
        TaskStatus::Archived,
        TaskStatus::Suspended,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "PENDING",
            TaskStatus::InProgress => "IN_PROGRESS",
            TaskStatus::Processing => "PROCESSING",
            TaskStatus::Completed => "COMPLETED",
            TaskStatus::CompletedWithErrors => "COMPLETED_WITH_ERRORS",
            TaskStatus::Failed => "FAILED",
            TaskStatus::Canceled => "CANCELED",
            TaskStatus::Unknown => "UNKNOWN",
            TaskStatus::Skipped => "SKIPPED",
            TaskStatus::Draft => "DRAFT",
            TaskStatus::Active => "ACTIVE",
            TaskStatus::Archived => "ARCHIVED",
            TaskStatus::Suspended => "SUSPENDED",
        }
    }

    /// Parses the exact wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// A terminal task never changes again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed
                | TaskStatus::CompletedWithErrors
                | TaskStatus::Failed
                | TaskStatus::Canceled
        )
    }

    /// The terminal statuses, for queries over active tasks.
    pub fn terminal() -> impl Iterator<Item = TaskStatus> {
        Self::ALL.into_iter().filter(|s| s.is_terminal())
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The task types a deployment accepts: the reference API's built-ins plus configured extras.
#[derive(Debug, Clone)]
pub struct TaskTypes {
    names: Vec<String>,
}

impl TaskTypes {
    /// The reference API's task types.
    pub const BUILTIN: [&'static str; 17] = [
        "api_namespaces_create",
        "api_buckets_objects_create",
        "api_buckets_delete",
        "api_buckets_batches_process",
        "api_buckets_batches_submit",
        "api_buckets_uploads_create",
        "api_buckets_uploads_confirm",
        "api_buckets_uploads_batch_confirm",
        "api_taxonomies_create",
        "api_taxonomies_execute",
        "api_taxonomies_materialize",
        "engine_feature_extractor_run",
        "engine_inference_run",
        "engine_object_processing",
        "engine_cluster_build",
        "thumbnail",
        "materialize",
    ];

    /// The built-ins plus `extra`; each extra must look like a built-in (`[a-z0-9_]`, ≤ 64).
    pub fn new(extra: &[String]) -> Result<Self, Invalid> {
        let mut names: Vec<String> = Self::BUILTIN.iter().map(|s| s.to_string()).collect();
        for (i, name) in extra.iter().enumerate() {
            let ok = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                return Err(Invalid::new(
                    format!("task_types[{i}]"),
                    "must be 1 to 64 characters from a-z 0-9 _",
                ));
            }
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        Ok(Self { names })
    }

    /// Checks that `s` is registered.
    pub fn check(&self, field: &str, s: &str) -> Result<(), Invalid> {
        if self.names.iter().any(|n| n == s) {
            Ok(())
        } else {
            Err(Invalid::one_of(
                field,
                format!("unknown task_type `{}`", truncate(s, 80)),
                &self.names,
            ))
        }
    }

    /// Every accepted name.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

impl Default for TaskTypes {
    fn default() -> Self {
        Self::new(&[]).expect("built-ins are valid")
    }
}

/// Cuts a client-supplied string for quoting it back in an error message.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// An item of `inputs` or `outputs`: a string (an id) or a JSON object (a configuration or a
/// result).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum IoItem {
    Text(String),
    Object(Map<String, Value>),
}

impl utoipa::PartialSchema for IoItem {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::String))
            .item(ObjectBuilder::new().schema_type(Type::Object))
            .description(Some("A string (an id) or a JSON object"))
            .into()
    }
}

impl ToSchema for IoItem {}

impl<'de> Deserialize<'de> for IoItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(IoItem::Text(s)),
            Value::Object(m) => Ok(IoItem::Object(m)),
            _ => Err(serde::de::Error::custom(
                "each item must be a string or a JSON object",
            )),
        }
    }
}

/// A stored task. What clients receive is [`TaskResponse`], which adds derived fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub task_id: TaskId,
    pub task_type: String,
    pub status: TaskStatus,
    pub inputs: Option<Vec<IoItem>>,
    pub outputs: Option<Vec<IoItem>>,
    pub additional_data: Option<Map<String, Value>>,
    pub description: Option<String>,
    #[serde(with = "serde_rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "serde_rfc3339")]
    pub updated_at: DateTime<Utc>,
    #[serde(with = "serde_rfc3339_opt")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(with = "serde_rfc3339_opt")]
    pub finished_at: Option<DateTime<Utc>>,
    pub version: u64,
    /// The rate estimate behind the derived `progress` (see [`crate::progress`]); a task
    /// response's `progress` object reads back as this.
    #[serde(default)]
    pub progress: Option<ProgressTrack>,
}

/// Why a write was refused by the task's own rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The task is terminal and the write would change it.
    #[error("task is {0} (terminal) and can no longer change")]
    Terminal(TaskStatus),
    /// The write would leave an invalid task (e.g. progress that adds up to more than total).
    #[error(transparent)]
    Invalid(#[from] Invalid),
}

impl Task {
    /// The first version of a task created from a validated request (see
    /// [`CreateTask::validate`]).
    pub fn create(id: TaskId, req: CreateTask, now: DateTime<Utc>) -> Self {
        let status = req.status.unwrap_or(TaskStatus::Pending);
        let additional_data = req.additional_data.map(strip_annotations);
        let reported = progress::reported(additional_data.as_ref()).ok().flatten();
        Task {
            task_id: id,
            task_type: req.task_type,
            status,
            inputs: req.inputs,
            outputs: req.outputs,
            additional_data,
            description: req.description,
            created_at: now,
            updated_at: now,
            started_at: (status != TaskStatus::Pending).then_some(now),
            finished_at: status.is_terminal().then_some(now),
            version: 1,
            progress: ProgressTrack::next(None, None, reported, now),
        }
    }

    /// The task after `update`, or `None` when `update` changes nothing (an idempotent
    /// repeat). A terminal task refuses any change.
    pub fn apply(
        &self,
        update: &UpdateTask,
        now: DateTime<Utc>,
    ) -> Result<Option<Task>, TransitionError> {
        let mut next = self.clone();
        if let Some(status) = update.status {
            next.status = status;
        }
        if let Some(outputs) = &update.outputs {
            next.outputs = outputs.clone();
        }
        if let Some(description) = &update.description {
            next.description = description.clone();
        }
        if let Some(patch) = &update.additional_data {
            next.additional_data = match patch {
                Value::Object(p) => {
                    let mut target = Value::Object(next.additional_data.take().unwrap_or_default());
                    merge_patch(&mut target, &Value::Object(p.clone()));
                    match target {
                        Value::Object(m) => Some(strip_annotations(m)),
                        _ => None,
                    }
                }
                _ => None,
            };
        }
        if next == *self {
            return Ok(None);
        }
        if self.status.is_terminal() {
            return Err(TransitionError::Terminal(self.status));
        }
        let reported = progress::reported(next.additional_data.as_ref())?;
        let before = progress::reported(self.additional_data.as_ref())
            .ok()
            .flatten();
        next.progress = ProgressTrack::next(self.progress, before, reported, now);
        Ok(Some(next.stamped(now)))
    }

    /// The task after a kill, or `None` when it is already terminal (kill is idempotent).
    pub fn cancel(&self, now: DateTime<Utc>) -> Option<Task> {
        if self.status.is_terminal() {
            return None;
        }
        let mut next = self.clone();
        next.status = TaskStatus::Canceled;
        Some(next.stamped(now))
    }

    /// Bumps version and the timestamps that follow from the (new) status.
    fn stamped(mut self, now: DateTime<Utc>) -> Task {
        self.version += 1;
        self.updated_at = now;
        if self.started_at.is_none() && self.status != TaskStatus::Pending {
            self.started_at = Some(now);
        }
        if self.finished_at.is_none() && self.status.is_terminal() {
            self.finished_at = Some(now);
        }
        self
    }

    /// SPEC's derivation: `additional_data.error` of a FAILED task when it is a string, or
    /// its `message` when it is an object carrying one.
    pub fn error_message(&self) -> Option<&str> {
        if self.status != TaskStatus::Failed {
            return None;
        }
        match self.additional_data.as_ref()?.get("error")? {
            Value::String(s) => Some(s),
            Value::Object(o) => o.get("message")?.as_str(),
            _ => None,
        }
    }
}

/// `from_mongodb` is a response annotation: a producer cannot store it and fool clients.
fn strip_annotations(mut m: Map<String, Value>) -> Map<String, Value> {
    m.remove(FROM_DURABLE_KEY);
    m
}

/// RFC 7396 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return };
    for (k, v) in patch {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// A task as clients receive it: the stored fields plus the derived `error_message`/`error`,
/// and `additional_data.from_mongodb` when it was read from the durable fallback tier.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskResponse {
    /// Unique (per tenant) identifier of the task.
    #[schema(value_type = String, example = "task_abc123def456")]
    pub task_id: TaskId,
    /// Operation this task represents; one of the registered task types.
    #[schema(example = "api_buckets_batches_process")]
    pub task_type: String,
    pub status: TaskStatus,
    /// What the task was started with: strings (ids) or objects (configuration).
    pub inputs: Option<Vec<IoItem>>,
    /// What the task produced: strings (ids) or objects (results).
    pub outputs: Option<Vec<IoItem>>,
    /// Free-form metadata; `error` carries failure details.
    #[schema(value_type = Option<Object>)]
    pub additional_data: Option<Map<String, Value>>,
    pub description: Option<String>,
    /// `additional_data.error` of a FAILED task, flattened to a string.
    pub error_message: Option<String>,
    /// The same value as `error_message`, under the name newer clients read.
    pub error: Option<String>,
    #[serde(with = "serde_rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "serde_rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// When the task first left PENDING.
    #[serde(with = "serde_rfc3339_opt")]
    pub started_at: Option<DateTime<Utc>>,
    /// When the task reached a terminal status.
    #[serde(with = "serde_rfc3339_opt")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Increases by one on every write; also the ETag.
    pub version: u64,
    /// Derived from `additional_data.progress`; null when the task reports none. Always the
    /// last field, so a cached rendering shows cheaply whether it carries any.
    pub progress: Option<Progress>,
}

impl TaskResponse {
    /// Renders `task` for the wire; `from_durable` adds the fallback annotation.
    pub fn new(task: Task, from_durable: bool) -> Self {
        Self::render(task, from_durable, crate::time::now())
    }

    /// The task as it was rendered at `now` (an event's data, as of its change).
    pub fn at(task: Task, now: DateTime<Utc>) -> Self {
        Self::render(task, false, now)
    }

    fn render(task: Task, from_durable: bool, now: DateTime<Utc>) -> Self {
        let error_message = task.error_message().map(str::to_owned);
        let progress = Progress::of(&task, now);
        let mut additional_data = task.additional_data;
        if from_durable {
            additional_data
                .get_or_insert_with(Map::new)
                .insert(FROM_DURABLE_KEY.into(), Value::Bool(true));
        }
        TaskResponse {
            task_id: task.task_id,
            task_type: task.task_type,
            status: task.status,
            inputs: task.inputs,
            outputs: task.outputs,
            additional_data,
            description: task.description,
            error: error_message.clone(),
            error_message,
            created_at: task.created_at,
            updated_at: task.updated_at,
            started_at: task.started_at,
            finished_at: task.finished_at,
            version: task.version,
            progress,
        }
    }
}

impl TaskResponse {
    /// A rendered task response as of `now`: the same bytes when it has no progress (cheap to
    /// tell, `progress` being the last field) or has not stalled since it was rendered, else
    /// re-rendered with `stalled` true (the hot tier keeps responses as they were written).
    /// `now` is asked only for a body with progress (most have none, and a GET from the
    /// cache then reads no clock).
    pub fn refreshed(body: &[u8], now: impl FnOnce() -> DateTime<Utc>) -> Option<Vec<u8>> {
        if body.ends_with(b"\"progress\":null}") {
            return None;
        }
        let mut task: TaskResponse = serde_json::from_slice(body).ok()?;
        let progress = task.progress.as_mut()?;
        let fresh = progress.refreshed(task.status, now());
        if fresh == *progress {
            return None;
        }
        *progress = fresh;
        serde_json::to_vec(&task).ok()
    }
}

/// `POST /v1/tasks`: what a producer sends to record a new task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    /// Optional; a UUID v4 is generated when absent. Re-sending the same id with the same
    /// content is an idempotent retry.
    #[schema(value_type = Option<String>)]
    #[serde(default)]
    pub task_id: Option<TaskId>,
    pub task_type: String,
    /// Defaults to PENDING.
    #[serde(default)]
    pub status: Option<TaskStatus>,
    #[serde(default)]
    pub inputs: Option<Vec<IoItem>>,
    #[serde(default)]
    pub outputs: Option<Vec<IoItem>>,
    #[schema(value_type = Option<Object>)]
    #[serde(default)]
    pub additional_data: Option<Map<String, Value>>,
    #[serde(default)]
    pub description: Option<String>,
}

impl CreateTask {
    /// The accepted body keys, for error messages.
    pub const FIELDS: [&'static str; 7] = [
        "task_id",
        "task_type",
        "status",
        "inputs",
        "outputs",
        "additional_data",
        "description",
    ];

    /// What only the whole request can tell: its `additional_data.progress` is well-formed.
    pub fn validate(&self) -> Result<(), Invalid> {
        progress::reported(self.additional_data.as_ref()).map(drop)
    }

    /// A digest of the content this create would store, so that a retry with the same content
    /// is recognised (idempotent) and one with different content is not (409). Defaults are
    /// applied first: omitting `status` and sending `PENDING` are the same request.
    pub fn content_digest(&self) -> String {
        let canonical = serde_json::json!({
            "task_type": self.task_type,
            "status": self.status.unwrap_or(TaskStatus::Pending),
            "inputs": self.inputs,
            "outputs": self.outputs,
            "additional_data": self.additional_data.clone().map(strip_annotations),
            "description": self.description,
        });
        // serde_json's Map is a BTreeMap here, so keys serialise in a canonical order.
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        hex(&digest)
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    // By table, not `write!("{:02x}")`: every authenticated request hashes its key, and the
    // formatting machinery cost more than the SHA-256.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// `PATCH /v1/tasks/{task_id}`: `additional_data` is merged (RFC 7396), the rest replaced.
/// A field that is absent is left alone; `null` clears it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTask {
    // Absent fields are skipped when serialising (clients send these): `null` would clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TaskStatus>,
    #[schema(value_type = Option<Vec<IoItem>>)]
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub outputs: Option<Option<Vec<IoItem>>>,
    /// A JSON merge patch for `additional_data`: an object, or `null` to clear it.
    #[schema(value_type = Option<Object>)]
    #[serde(
        default,
        deserialize_with = "merge_patch_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub additional_data: Option<Value>,
    #[schema(value_type = Option<String>)]
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<Option<String>>,
}

impl UpdateTask {
    /// The accepted body keys, for error messages.
    pub const FIELDS: [&'static str; 4] = ["status", "outputs", "additional_data", "description"];
}

/// Distinguishes "absent" (outer `None`, via `default`) from "null" (`Some(None)`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn merge_patch_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    match Value::deserialize(d)? {
        v @ (Value::Object(_) | Value::Null) => Ok(Some(v)),
        _ => Err(serde::de::Error::custom(
            "additional_data must be a JSON object (merged) or null (cleared)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(status: TaskStatus) -> Task {
        let req: CreateTask = serde_json::from_value(json!({
            "task_type": "thumbnail", "status": status, "additional_data": {"a": 1}
        }))
        .unwrap();
        Task::create(TaskId::parse("t1").unwrap(), req, crate::time::now())
    }

    fn update(v: Value) -> UpdateTask {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn task_id_accepts_the_documented_alphabet_only() {
        assert!(TaskId::parse("task_abc-1.2:3").is_ok());
        assert!(TaskId::parse(&"a".repeat(128)).is_ok());
        for bad in ["", "a b", "a/b", "é", "a\0", &"a".repeat(129), ".", ".."] {
            assert!(TaskId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(
            TaskId::parse("...").is_ok(),
            "only the dot segments are refused"
        );
    }

    #[test]
    fn statuses_use_the_reference_spellings() {
        let all: Vec<String> = TaskStatus::ALL
            .iter()
            .map(|s| {
                serde_json::to_value(s)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(all[..3], ["PENDING", "IN_PROGRESS", "PROCESSING"]);
        assert!(all.contains(&"COMPLETED_WITH_ERRORS".to_owned()));
        for s in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(TaskStatus::terminal().count(), 4);
    }

    #[test]
    fn terminal_task_refuses_change_but_accepts_identical_repeat() {
        let t = task(TaskStatus::Processing);
        let done = t
            .apply(&update(json!({"status": "COMPLETED"})), crate::time::now())
            .unwrap()
            .unwrap();
        assert_eq!(done.version, 2);
        assert!(done.finished_at.is_some());
        assert_eq!(
            done.apply(&update(json!({"status": "COMPLETED"})), crate::time::now()),
            Ok(None)
        );
        assert_eq!(
            done.apply(&update(json!({"status": "FAILED"})), crate::time::now()),
            Err(TransitionError::Terminal(TaskStatus::Completed))
        );
        assert_eq!(done.cancel(crate::time::now()), None);
    }

    #[test]
    fn update_round_trips_absent_and_null_distinctly() {
        for v in [
            json!({"status": "COMPLETED"}),
            json!({"description": null, "outputs": null, "additional_data": null}),
            json!({"additional_data": {"a": null}, "outputs": ["x"]}),
        ] {
            assert_eq!(serde_json::to_value(update(v.clone())).unwrap(), v);
        }
    }

    #[test]
    fn additional_data_is_merge_patched() {
        let t = task(TaskStatus::Pending);
        let next = t
            .apply(
                &update(
                    json!({"additional_data": {"b": {"c": 2}, "a": null, "from_mongodb": true}}),
                ),
                crate::time::now(),
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            Value::Object(next.additional_data.unwrap()),
            json!({"b": {"c": 2}})
        );
        assert!(next.started_at.is_none(), "still PENDING");
    }

    #[test]
    fn error_message_is_derived_from_failed_tasks_only() {
        let mut t = task(TaskStatus::Failed);
        t.additional_data = Some(json!({"error": "boom"}).as_object().unwrap().clone());
        assert_eq!(t.error_message(), Some("boom"));
        t.additional_data = Some(
            json!({"error": {"message": "deep"}})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert_eq!(t.error_message(), Some("deep"));
        t.additional_data = Some(json!({"error": 5}).as_object().unwrap().clone());
        assert_eq!(t.error_message(), None);
        t.status = TaskStatus::Completed;
        t.additional_data = Some(json!({"error": "boom"}).as_object().unwrap().clone());
        assert_eq!(t.error_message(), None);
    }

    #[test]
    fn create_digest_applies_defaults_and_ignores_key_order() {
        let a: CreateTask = serde_json::from_value(
            json!({"task_type": "thumbnail", "additional_data": {"x": 1, "y": 2}}),
        )
        .unwrap();
        let b: CreateTask = serde_json::from_value(json!({"additional_data": {"y": 2, "x": 1}, "status": "PENDING", "task_type": "thumbnail"})).unwrap();
        let c: CreateTask =
            serde_json::from_value(json!({"task_type": "thumbnail", "status": "PROCESSING"}))
                .unwrap();
        assert_eq!(a.content_digest(), b.content_digest());
        assert_ne!(a.content_digest(), c.content_digest());
    }

    #[test]
    fn response_annotates_durable_reads_without_touching_the_task() {
        let t = task(TaskStatus::Pending);
        let r = TaskResponse::new(t.clone(), true);
        assert_eq!(r.additional_data.unwrap()["from_mongodb"], json!(true));
        assert!(!t.additional_data.unwrap().contains_key("from_mongodb"));
    }
}
