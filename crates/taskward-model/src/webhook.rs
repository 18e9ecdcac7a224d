//! Webhooks (SPEC: Webhooks): endpoints a tenant registers, and the deliveries of its events
//! to them, as the management API shows them.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::event::{EventId, EventType};
use crate::task::TaskId;
use crate::time::serde_rfc3339;
use crate::Invalid;

/// Longest accepted endpoint URL.
pub const MAX_URL_LEN: usize = 2048;
/// Longest accepted description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// Prefix of every signing secret (Standard Webhooks).
pub const SECRET_PREFIX: &str = "whsec_";

/// `wh_` and 24 lowercase letters and digits, random.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebhookId(String);

impl WebhookId {
    /// What [`WebhookId::parse`] accepts, as a regular expression (the OpenAPI document's).
    pub const PATTERN: &'static str = "^wh_[a-z0-9]{1,64}$";

    /// A fresh random id.
    pub fn random() -> Self {
        const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
        let raw = uuid::Uuid::new_v4().as_u128();
        let id: String = (0..24)
            .map(|i| ALPHABET[((raw >> (i * 5)) & 31) as usize] as char)
            .collect();
        WebhookId(format!("wh_{id}"))
    }

    /// An id as a path carries it.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok = s.strip_prefix("wh_").is_some_and(|rest| {
            !rest.is_empty()
                && rest.len() <= 64
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
        if !ok {
            return Err(Invalid::new(
                "webhook_id",
                "must be a webhook id as POST /v1/webhooks returns it (`wh_` and letters or digits)",
            ));
        }
        Ok(WebhookId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WebhookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One delivery of one event to one endpoint; on the wire `msg_<n>` (`n` at most 18 digits,
/// [`DeliveryId::PATTERN`]), which is also the `webhook-id` header of every attempt of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryId(pub u64);

impl DeliveryId {
    /// What [`DeliveryId::parse`] accepts, as a regular expression (the OpenAPI document's).
    pub const PATTERN: &'static str = "^msg_[0-9]{1,18}$";

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        s.strip_prefix("msg_")
            .filter(|n| !n.is_empty() && n.len() <= 18 && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u64>().ok())
            .map(DeliveryId)
            .ok_or_else(|| {
                Invalid::new(
                    "delivery_id",
                    "must be a delivery id as the deliveries log shows it (`msg_` and digits)",
                )
            })
    }
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "msg_{}", self.0)
    }
}

impl Serialize for DeliveryId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeliveryId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DeliveryId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The events an endpoint receives: every type (`["*"]`), or the listed ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSelection {
    All,
    Only(Vec<EventType>),
}

impl EventSelection {
    /// Parses the `events` of a create request.
    pub fn parse(events: &[String]) -> Result<Self, Invalid> {
        let accepted = || {
            std::iter::once("*")
                .chain(EventType::ALL.iter().map(|t| t.as_str()))
                .collect::<Vec<_>>()
        };
        if events.is_empty() {
            return Err(Invalid::one_of(
                "events",
                "must name at least one event type, or be [\"*\"] for all",
                accepted(),
            ));
        }
        if events.iter().any(|e| e == "*") {
            if events.len() > 1 {
                return Err(Invalid::new(
                    "events",
                    "\"*\" already selects every event type: send it alone",
                ));
            }
            return Ok(EventSelection::All);
        }
        let mut types = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            let t = EventType::parse(e).ok_or_else(|| {
                Invalid::one_of(format!("events[{i}]"), "is not an event type", accepted())
            })?;
            if !types.contains(&t) {
                types.push(t);
            }
        }
        Ok(EventSelection::Only(types))
    }

    /// One bit per type, in [`EventType::ALL`] order; every bit for `*` (so types added later
    /// reach `*` endpoints too).
    pub fn mask(&self) -> i64 {
        match self {
            EventSelection::All => -1,
            EventSelection::Only(types) => types.iter().fold(0, |m, t| m | t.bit()),
        }
    }

    /// As the API shows it.
    pub fn names(&self) -> Vec<String> {
        match self {
            EventSelection::All => vec!["*".to_owned()],
            EventSelection::Only(types) => types.iter().map(|t| t.as_str().to_owned()).collect(),
        }
    }
}

impl EventType {
    /// This type's bit in an endpoint's event mask.
    pub fn bit(self) -> i64 {
        let i = EventType::ALL
            .iter()
            .position(|t| *t == self)
            .unwrap_or_default();
        1 << i
    }
}

/// `POST /v1/webhooks`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// `https://` or `http://`; must not resolve to a loopback, private, link-local or
    /// metadata address unless the server allows private networks.
    pub url: String,
    /// Event types to send, or `["*"]` for all.
    pub events: Vec<String>,
    pub description: Option<String>,
}

impl CreateWebhook {
    /// Checks what needs no network: lengths, the event types. The URL's shape and target are
    /// the server's to check (it resolves the host).
    pub fn validate(&self) -> Result<EventSelection, Invalid> {
        if self.url.len() > MAX_URL_LEN {
            return Err(Invalid::new(
                "url",
                format!("is longer than {MAX_URL_LEN} bytes"),
            ));
        }
        if let Some(d) = &self.description {
            if d.chars().count() > MAX_DESCRIPTION_CHARS {
                return Err(Invalid::new(
                    "description",
                    format!("is longer than {MAX_DESCRIPTION_CHARS} characters"),
                ));
            }
        }
        EventSelection::parse(&self.events)
    }
}

/// An endpoint as the API shows it (never with its secret but when created or rotated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    #[schema(value_type = String, example = "wh_3kq7c2x9m4t6b8r1n5p0d2f7")]
    pub webhook_id: WebhookId,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    /// Set when the receiver answered 410 Gone: nothing more is sent to it.
    pub disabled: bool,
    #[serde(with = "serde_rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// `POST /v1/webhooks` and `POST /v1/webhooks/{id}/rotate-secret`: the endpoint with its
/// secret, shown only here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_` and the base64 of the key; receivers verify signatures with it.
    pub secret: String,
}

/// `GET /v1/webhooks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookList {
    /// Newest first.
    pub results: Vec<Webhook>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Not yet delivered; `next_attempt_at` says when it is tried (again).
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Every attempt of the schedule failed, or the endpoint answered 410 Gone.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            DeliveryState::Pending,
            DeliveryState::Delivered,
            DeliveryState::Failed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Attempt {
    #[serde(with = "serde_rfc3339")]
    pub at: DateTime<Utc>,
    /// The receiver's status; null when no answer came (timeout, refused, connection error).
    pub status_code: Option<u16>,
    pub duration_ms: u64,
    /// Why the attempt failed, when it did.
    pub error: Option<String>,
    /// The start of the receiver's answer (at most 1 KiB), when it sent one.
    #[serde(default)]
    pub response_body: Option<String>,
}

/// One delivery of one event to one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    /// Also the `webhook-id` of every attempt of it.
    #[schema(value_type = String, example = "msg_42")]
    pub delivery_id: DeliveryId,
    #[schema(value_type = String)]
    pub webhook_id: WebhookId,
    #[schema(value_type = String, example = "0000000000000042")]
    pub event_id: EventId,
    #[schema(value_type = String)]
    pub task_id: TaskId,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub state: DeliveryState,
    /// Oldest first.
    pub attempts: Vec<Attempt>,
    /// When it is tried next; null once delivered or failed.
    #[serde(with = "crate::time::serde_rfc3339_opt")]
    #[schema(value_type = Option<String>)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(with = "serde_rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// `GET /v1/webhooks/{id}/deliveries`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryList {
    /// Newest first.
    pub results: Vec<Delivery>,
    /// More, older deliveries exist: ask again with `before` = the last `delivery_id`.
    pub has_more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_bad_ones_are_refused() {
        let id = WebhookId::random();
        assert_eq!(WebhookId::parse(id.as_str()).unwrap(), id);
        assert_ne!(WebhookId::random(), id);
        for bad in [
            "",
            "wh_",
            "wh_ABC",
            "xx_abc",
            "wh_a-b",
            &format!("wh_{}", "a".repeat(65)),
        ] {
            assert!(WebhookId::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(DeliveryId::parse("msg_42").unwrap(), DeliveryId(42));
        assert_eq!(DeliveryId(42).to_string(), "msg_42");
        for bad in [
            "",
            "msg_",
            "42",
            "msg_-1",
            "msg_1a",
            "msg_+1",
            "msg_1234567890123456789",
        ] {
            assert!(DeliveryId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn selections_parse_mask_and_name() {
        let all = EventSelection::parse(&["*".into()]).unwrap();
        assert_eq!(all, EventSelection::All);
        assert!(EventType::ALL.iter().all(|t| all.mask() & t.bit() != 0));
        let some = EventSelection::parse(&["task.completed".into(), "task.failed".into()]).unwrap();
        assert_eq!(
            some.mask() & EventType::Completed.bit(),
            EventType::Completed.bit()
        );
        assert_eq!(some.mask() & EventType::Created.bit(), 0);
        assert_eq!(some.names(), ["task.completed", "task.failed"]);
        let err = EventSelection::parse(&["task.done".into()]).unwrap_err();
        assert_eq!(err.field, "events[0]");
        assert!(err.accepted.unwrap().contains(&"task.completed".to_owned()));
        assert!(EventSelection::parse(&[]).is_err());
        assert!(EventSelection::parse(&["*".into(), "task.failed".into()]).is_err());
        let bits: Vec<i64> = EventType::ALL.iter().map(|t| t.bit()).collect();
        assert_eq!(bits, [1, 2, 4, 8, 16, 32]);
    }
}
