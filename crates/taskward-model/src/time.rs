//! One timestamp format for the wire and for storage.
//!
//! RFC 3339, UTC, `Z`, exactly six fractional digits. A fixed width makes the stored text sort
//! in time order (SQLite compares it as text) and round-trips through PostgreSQL's microsecond
//! `timestamptz` without changing, so a task read back equals the task written.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};

/// The current time, truncated to what every tier can store.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Formats a timestamp in the canonical form.
pub fn format(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses any RFC 3339 timestamp (any offset, any precision) into UTC at microsecond precision.
pub fn parse(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc).trunc_subsecs(6))
}

/// `#[serde(with = "...")]` adaptor for `DateTime<Utc>`.
pub mod serde_rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{de, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        super::parse(&s).ok_or_else(|| de::Error::custom("expected an RFC 3339 timestamp"))
    }
}

/// `#[serde(with = "...")]` adaptor for `Option<DateTime<Utc>>`.
pub mod serde_rfc3339_opt {
    use chrono::{DateTime, Utc};
    use serde::{de, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::format(t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match <Option<std::borrow::Cow<'de, str>>>::deserialize(d)? {
            None => Ok(None),
            Some(s) => super::parse(&s)
                .map(Some)
                .ok_or_else(|| de::Error::custom("expected an RFC 3339 timestamp")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_round_trips_and_sorts_as_text() {
        let a = parse("2026-01-02T03:04:05Z").unwrap();
        let b = parse("2026-01-02T03:04:05.000001+00:00").unwrap();
        assert_eq!(format(&a), "2026-01-02T03:04:05.000000Z");
        assert!(format(&a) < format(&b));
        assert_eq!(parse(&format(&b)), Some(b));
    }

    #[test]
    fn offsets_are_normalised_to_utc() {
        let t = parse("2026-01-02T05:04:05.5+02:00").unwrap();
        assert_eq!(format(&t), "2026-01-02T03:04:05.500000Z");
    }
}
