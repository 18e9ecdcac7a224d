//! Events: one per accepted change of a task (create, PATCH, kill), as history lists them and
//! streams send them.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::progress::Progress;
use crate::task::{Task, TaskId, TaskStatus};
use crate::time::serde_rfc3339;
use crate::Invalid;

/// What a change did to its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum EventType {
    #[serde(rename = "task.created")]
    Created,
    /// Any change that does not end the task: a non-terminal status, progress, data.
    #[serde(rename = "task.updated")]
    Updated,
    #[serde(rename = "task.completed")]
    Completed,
    #[serde(rename = "task.completed_with_errors")]
    CompletedWithErrors,
    #[serde(rename = "task.failed")]
    Failed,
    #[serde(rename = "task.canceled")]
    Canceled,
}

impl EventType {
    /// Every type, in the order SPEC lists them.
    pub const ALL: [EventType; 6] = [
        EventType::Created,
        EventType::Updated,
        EventType::Completed,
        EventType::Failed,
        EventType::Canceled,
        EventType::CompletedWithErrors,
    ];

    /// The type of a change from `previous` (`None` for a create) to `next`.
    pub fn of_change(previous: Option<TaskStatus>, next: TaskStatus) -> Self {
        let Some(previous) = previous else {
            return EventType::Created;
        };
        // A terminal task never changes again, so a terminal status here is the one that ended it.
        match next {
            _ if previous.is_terminal() => EventType::Updated,
            TaskStatus::Completed => EventType::Completed,
            TaskStatus::CompletedWithErrors => EventType::CompletedWithErrors,
            TaskStatus::Failed => EventType::Failed,
            TaskStatus::Canceled => EventType::Canceled,
            _ => EventType::Updated,
        }
    }

    /// The wire name, e.g. `task.created`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Created => "task.created",
            EventType::Updated => "task.updated",
            EventType::Completed => "task.completed",
            EventType::CompletedWithErrors => "task.completed_with_errors",
            EventType::Failed => "task.failed",
            EventType::Canceled => "task.canceled",
        }
    }

    /// The type with this wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The position of an event in its tenant's log: increases with every event of the tenant, in
/// the order they were committed. On the wire a string of 16 decimal digits or more, so that
/// comparing ids as strings orders them as numbers; any decimal form is accepted back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventId(pub u64);

impl EventId {
    /// Parses an id as `Last-Event-ID` or `?after=` carries it.
    pub fn parse(field: &str, s: &str) -> Result<Self, Invalid> {
        if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Invalid::new(
                field,
                "must be an event id as streams and history send it (decimal digits)",
            ));
        }
        s.parse::<u64>()
            .ok()
            .filter(|n| i64::try_from(*n).is_ok())
            .map(EventId)
            .ok_or_else(|| Invalid::new(field, "is larger than any event id"))
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016}", self.0)
    }
}

impl Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        EventId::parse("event_id", &s).map_err(serde::de::Error::custom)
    }
}

/// An event as the durable tier keeps it: the change and the task as it was after it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub event_id: EventId,
    /// The status before the change; `None` for a create. With the status after it, this says
    /// what the change was ([`StoredEvent::kind`]).
    pub previous_status: Option<TaskStatus>,
    /// The task after the change.
    pub task: Task,
}

impl StoredEvent {
    /// What the change did.
    pub fn kind(&self) -> EventType {
        EventType::of_change(self.previous_status, self.task.status)
    }

    /// The event as history lists it.
    pub fn to_wire(&self) -> TaskEvent {
        TaskEvent {
            event_id: self.event_id,
            task_id: self.task.task_id.clone(),
            version: self.task.version,
            kind: self.kind(),
            at: self.task.updated_at,
            status: self.task.status,
            previous_status: self.previous_status,
            progress: Progress::of(&self.task, self.task.updated_at),
        }
    }
}

/// One accepted change of a task (SPEC: Events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskEvent {
    /// Position in the tenant's event log; usable as an SSE id and a resume point.
    #[schema(value_type = String, example = "0000000000000042")]
    pub event_id: EventId,
    #[schema(value_type = String)]
    pub task_id: TaskId,
    /// The task's version after the change.
    pub version: u64,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// When the change was made (the task's `updated_at` after it).
    #[serde(with = "serde_rfc3339")]
    pub at: DateTime<Utc>,
    /// The status after the change.
    pub status: TaskStatus,
    /// The status before the change; null for `task.created`.
    pub previous_status: Option<TaskStatus>,
    /// The task's progress after the change, where it reports any.
    pub progress: Option<Progress>,
}

/// `GET /v1/tasks/{task_id}/history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct History {
    #[schema(value_type = String)]
    pub task_id: TaskId,
    /// Oldest first.
    pub events: Vec<TaskEvent>,
}

/// `GET /v1/tasks/counts`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Counts {
    /// Tasks per status; statuses with none are absent.
    pub by_status: std::collections::BTreeMap<String, u64>,
    /// Tasks per task type; types with none are absent.
    pub by_task_type: std::collections::BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_follow_the_change() {
        use TaskStatus::*;
        for (previous, next, kind) in [
            (None, Completed, EventType::Created),
            (Some(Pending), Processing, EventType::Updated),
            (Some(Processing), Processing, EventType::Updated),
            (Some(Processing), Completed, EventType::Completed),
            (
                Some(Pending),
                CompletedWithErrors,
                EventType::CompletedWithErrors,
            ),
            (Some(Processing), Failed, EventType::Failed),
            (Some(Pending), Canceled, EventType::Canceled),
        ] {
            assert_eq!(
                EventType::of_change(previous, next),
                kind,
                "{previous:?} → {next:?}"
            );
        }
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(
                serde_json::to_value(t).unwrap(),
                serde_json::json!(t.as_str())
            );
        }
    }

    #[test]
    fn event_ids_order_as_strings_and_parse_back() {
        let ids = [EventId(1), EventId(9), EventId(10), EventId(123_456_789)];
        let strings: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        let mut sorted = strings.clone();
        sorted.sort();
        assert_eq!(strings, sorted);
        assert_eq!(strings[0], "0000000000000001");
        for (id, s) in ids.iter().zip(&strings) {
            assert_eq!(EventId::parse("after", s).unwrap(), *id);
        }
        assert_eq!(EventId::parse("after", "42").unwrap(), EventId(42));
        assert_eq!(EventId::parse("after", "0").unwrap(), EventId(0));
        for bad in [
            "",
            "-1",
            "1.5",
            "abc",
            "1e3",
            "99999999999999999999",
            "123456789012345678901",
        ] {
            let e = EventId::parse("after", bad).unwrap_err();
            assert_eq!(e.field, "after", "{bad:?}");
        }
    }
}
