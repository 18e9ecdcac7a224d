//! API keys, tenants and scopes.
//!
//! A key is `sk_live_…` or `sk_test_…` followed by at least 24 base62 characters; its prefix
//! fixes the mode. Only the SHA-256 of a key is ever stored: with 140+ bits of entropy a salt
//! or a slow hash buys nothing, and a plain digest lets the server find a key by index.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::time::{serde_rfc3339, serde_rfc3339_opt};
use crate::Invalid;

/// Live or test data; the two never see each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Live,
    Test,
}

impl Mode {
    /// `live` or `test`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Live => "live",
            Mode::Test => "test",
        }
    }

    /// Parses `live` or `test`.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        match s {
            "live" => Ok(Mode::Live),
            "test" => Ok(Mode::Test),
            _ => Err(Invalid::one_of("mode", "unknown mode", ["live", "test"])),
        }
    }
}

// The Display impls use `pad`, not `write_str`, so that `{:<20}` in a table lines columns up.
impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// An organisation id: 1 to 64 characters from `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrgId(String);

impl OrgId {
    /// Validates an organisation id.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if s.is_empty() || s.len() > 64 || !s.chars().all(ok) {
            return Err(Invalid::new(
                "org",
                "must be 1 to 64 characters from A-Z a-z 0-9 . _ -",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// Whose data a request may see: one organisation in one mode.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tenant {
    pub org: OrgId,
    pub mode: Mode,
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// get, list, wait, stream
    Read,
    /// kill
    Cancel,
    /// create and update (producers)
    Write,
    /// manage keys
    Admin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Cancel, Scope::Write, Scope::Admin];

    /// The name used in configuration and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Cancel => "cancel",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of scopes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Scopes(u8);

impl Scopes {
    /// Every scope.
    pub fn all() -> Self {
        Scope::ALL.into_iter().collect()
    }

    /// Whether `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Parses `read,write,…` (order and repeats do not matter; at least one scope).
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let mut set = Scopes::default();
        for part in s.split(',').map(str::trim) {
            let scope = Scope::ALL
                .into_iter()
                .find(|sc| sc.as_str() == part)
                .ok_or_else(|| {
                    Invalid::one_of(
                        "scopes",
                        format!("unknown scope `{part}`"),
                        Scope::ALL.map(Scope::as_str),
                    )
                })?;
            set.0 |= scope.bit();
        }
        Ok(set)
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Scopes(iter.into_iter().fold(0, |acc, s| acc | s.bit()))
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Scope::ALL
            .into_iter()
            .filter(|s| self.contains(*s))
            .map(Scope::as_str)
            .collect();
        f.pad(&names.join(","))
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scopes({self})")
    }
}

/// A syntactically valid API key. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Fewest random characters after the prefix.
    pub const MIN_SECRET_LEN: usize = 24;

    /// Checks the shape of a presented key (not whether it exists).
    pub fn parse(s: &str) -> Option<Self> {
        let secret = s
            .strip_prefix("sk_live_")
            .or_else(|| s.strip_prefix("sk_test_"))?;
        let ok = secret.len() >= Self::MIN_SECRET_LEN
            && secret.len() <= 128
            && secret.chars().all(|c| c.is_ascii_alphanumeric());
        ok.then(|| Self(s.to_owned()))
    }

    /// Builds a key of `mode` around a freshly generated base62 `secret`.
    pub fn from_parts(mode: Mode, secret: &str) -> Option<Self> {
        Self::parse(&format!("sk_{}_{}", mode.as_str(), secret))
    }

    /// The mode its prefix names.
    pub fn mode(&self) -> Mode {
        if self.0.starts_with("sk_live_") {
            Mode::Live
        } else {
            Mode::Test
        }
    }

    /// The stored form: hex SHA-256.
    pub fn hash(&self) -> String {
        crate::task::hex(&self.digest())
    }

    /// The SHA-256 of the key: what [`ApiKey::hash`] spells in hex, for in-memory maps.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    /// A display hint that identifies the key to its owner without revealing it:
    /// `sk_test_AbCd…`.
    pub fn hint(&self) -> String {
        format!("{}…", &self.0[..12])
    }

    /// The secret itself, for showing once at creation.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({})", self.hint())
    }
}

/// A stored key, as `taskward keys list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyRecord {
    /// Public identifier, used to revoke.
    pub key_id: String,
    pub org: OrgId,
    pub mode: Mode,
    #[serde(serialize_with = "scopes_as_string")]
    pub scopes: Scopes,
    /// `sk_test_AbCd…`
    pub hint: String,
    #[serde(with = "serde_rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "serde_rfc3339_opt")]
    pub revoked_at: Option<DateTime<Utc>>,
}

fn scopes_as_string<S: serde::Serializer>(s: &Scopes, ser: S) -> Result<S::Ok, S::Error> {
    ser.collect_str(s)
}

impl KeyRecord {
    /// The tenant this key's requests act for.
    pub fn tenant(&self) -> Tenant {
        Tenant {
            org: self.org.clone(),
            mode: self.mode,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shape_is_checked_and_mode_follows_prefix() {
        let k = ApiKey::parse("sk_live_abcdefghijklmnopqrstuvwx").unwrap();
        assert_eq!(k.mode(), Mode::Live);
        assert_eq!(
            ApiKey::parse("sk_test_ABCDEFGHIJKLMNOPQRSTUVWX1")
                .unwrap()
                .mode(),
            Mode::Test
        );
        for bad in [
            "",
            "sk_live_short",
            "sk_prod_abcdefghijklmnopqrstuvwx",
            "sk_live_abcdefghijklmnopqrstuv-x",
        ] {
            assert!(ApiKey::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_stored_form_is_lower_case_hex_sha256() {
        let k = ApiKey::parse("sk_live_abcdefghijklmnopqrstuvwx").unwrap();
        // `printf %s sk_live_abcdefghijklmnopqrstuvwx | sha256sum`
        assert_eq!(
            k.hash(),
            "1d420a5c0cf5948a3dbdb7afa89e63d9ef759fb3702fc19d0642564e3de52c3d"
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let k = ApiKey::parse("sk_live_abcdefghijklmnopqrstuvwx").unwrap();
        let shown = format!("{k:?}");
        assert!(!shown.contains("mnopqrstuvwx"), "{shown}");
        assert_eq!(k.hash().len(), 64);
    }

    #[test]
    fn scopes_parse_and_print() {
        let s = Scopes::parse("write,read,read").unwrap();
        assert!(s.contains(Scope::Read) && s.contains(Scope::Write) && !s.contains(Scope::Admin));
        assert_eq!(s.to_string(), "read,write");
        assert!(Scopes::parse("read,root").is_err());
        assert!(Scopes::parse("").is_err());
    }

    #[test]
    fn display_honours_width_and_alignment() {
        let org = OrgId::parse("acme").unwrap();
        let scopes = Scopes::parse("read,write").unwrap();
        assert_eq!(format!("[{org:<6}]"), "[acme  ]");
        assert_eq!(format!("[{:>6}]", Mode::Live), "[  live]");
        assert_eq!(format!("[{scopes:<12}]"), "[read,write  ]");
    }
}

/// `GET /v1/keys/self`: what the presented key is and may do, so that a client (the dashboard)
/// can offer only the actions its key is allowed. Never the secret or its hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeySelf {
    /// The key's public identifier (`taskward keys list`, `keys revoke`).
    #[schema(example = "key_3f9a1c2b7d4eA8Zq")]
    pub key_id: String,
    /// The organisation whose tasks the key sees.
    #[schema(value_type = String, example = "acme")]
    pub org: OrgId,
    #[schema(value_type = String, example = "test")]
    pub mode: Mode,
    /// Scope names, in the order `read`, `cancel`, `write`, `admin`.
    #[schema(example = json!(["read", "cancel"]))]
    pub scopes: Vec<String>,
}

impl From<&KeyRecord> for KeySelf {
    fn from(k: &KeyRecord) -> Self {
        Self {
            key_id: k.key_id.clone(),
            org: k.org.clone(),
            mode: k.mode,
            scopes: Scope::ALL
                .into_iter()
                .filter(|s| k.scopes.contains(*s))
                .map(|s| s.as_str().to_owned())
                .collect(),
        }
    }
}
