//! Minting, finding and revoking API keys, over any [`KeyStore`]. Keys live in the durable
//! tier only; the hot tier and its outage protocol have nothing to do with them.

use std::sync::Arc;

use rand::distr::{Alphanumeric, SampleString};
use taskward_model::{time, ApiKey, KeyRecord, Mode, OrgId, Scopes};

use crate::durable::KeyStore;
use crate::StoreError;

/// Random characters in a new key: 32 base62 characters are about 190 bits.
const SECRET_LEN: usize = 32;

/// Organisation of the key printed at the first start of an embedded data directory.
pub const FIRST_KEY_ORG: &str = "default";

/// The key service.
#[derive(Debug, Clone)]
pub struct Keys {
    store: Arc<dyn KeyStore>,
}

fn mint(org: OrgId, mode: Mode, scopes: Scopes) -> (ApiKey, KeyRecord) {
    // ThreadRng is a CSPRNG seeded from the operating system.
    let mut rng = rand::rng();
    let secret = Alphanumeric.sample_string(&mut rng, SECRET_LEN);
    let key = ApiKey::from_parts(mode, &secret).expect("a minted key has the documented shape");
    let record = KeyRecord {
        key_id: format!("key_{}", Alphanumeric.sample_string(&mut rng, 16)),
        org,
        mode,
        scopes,
        hint: key.hint(),
        created_at: time::now(),
        revoked_at: None,
    };
    (key, record)
}

impl Keys {
    /// Keys kept in `store`.
    pub fn new(store: Arc<dyn KeyStore>) -> Self {
        Keys { store }
    }

    /// Mints and stores a key; the returned [`ApiKey`] is the only copy of the secret.
    pub async fn create(
        &self,
        org: OrgId,
        mode: Mode,
        scopes: Scopes,
    ) -> Result<(ApiKey, KeyRecord), StoreError> {
        let (key, record) = mint(org, mode, scopes);
        self.store.insert_key(&record, &key.hash()).await?;
        Ok((key, record))
    }

    /// The all-scopes test key of a fresh data directory, minted only the first time any
    /// process asks; `None` ever after.
    pub async fn create_first(&self) -> Result<Option<ApiKey>, StoreError> {
        let org = OrgId::parse(FIRST_KEY_ORG).expect("valid org id");
        let (key, record) = mint(org, Mode::Test, Scopes::all());
        let stored = self.store.insert_first_key(&record, &key.hash()).await?;
        Ok(stored.then_some(key))
    }

    /// The stored record of a presented key (revoked or not).
    pub async fn find(&self, key: &ApiKey) -> Result<Option<KeyRecord>, StoreError> {
        self.store.find_key(&key.hash()).await
    }

    /// Every key.
    pub async fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.store.list_keys().await
    }

    /// Revokes by key id or by the key itself; `false` if no such live key.
    pub async fn revoke(&self, id_or_key: &str) -> Result<bool, StoreError> {
        let key_id = match ApiKey::parse(id_or_key) {
            Some(key) => match self.find(&key).await? {
                Some(rec) => rec.key_id,
                None => return Ok(false),
            },
            None => id_or_key.to_owned(),
        };
        self.store.revoke_key(&key_id, time::now()).await
    }
}
