//! The read flows: a task by id (parsed, or as a GET sends it) and the long-poll.
//!
//! Hot first while the hot tier is trusted for the task (`trust.rs`); on a miss or a hot
//! error, the durable tier, then the hot tier is re-warmed. When the durable tier cannot
//! answer either, the hot copy is waited for longer, since there is nothing else to serve.

use taskward_model::{Task, TaskId, Tenant};

use super::trust::Access;
use super::{bump, Source, TieredStore};
use crate::hot::{HotError, RenderedTask};
use crate::StoreError;

/// What answered a read: the hot tier's copy, or the durable tier's task.
// Lives only until the caller unpacks it: boxing the task would cost an allocation per read.
#[allow(clippy::large_enum_variant)]
enum Served<T> {
    Hot(T),
    Durable(Task),
}

impl TieredStore {
    /// A task, hot tier first.
    pub async fn get(&self, tenant: &Tenant, id: &TaskId) -> Result<(Task, Source), StoreError> {
        match self
            .read(tenant, id, self.0.hot.get(tenant, id), parse_rendered)
            .await?
        {
            Served::Hot(task) => Ok((task, Source::Hot)),
            Served::Durable(task) => Ok((task, Source::Durable)),
        }
    }

    /// A task as `GET /v1/tasks/{task_id}` sends it, hot tier first: a hot hit is answered
    /// with the stored bytes.
    pub async fn get_rendered(
        &self,
        tenant: &Tenant,
        id: &TaskId,
    ) -> Result<RenderedTask, StoreError> {
        match self
            .read(tenant, id, self.0.hot.get_rendered(tenant, id), Ok)
            .await?
        {
            Served::Hot(rendered) => Ok(rendered),
            Served::Durable(task) => RenderedTask::from_durable(task).map_err(StoreError::internal),
        }
    }

    /// SPEC's read flow. `hot_read` is the usual hot read; `from_patient` turns the answer of
    /// a patient one (when the durable tier cannot answer) into the caller's form.
    async fn read<T>(
        &self,
        tenant: &Tenant,
        id: &TaskId,
        hot_read: impl std::future::Future<Output = Result<Option<T>, HotError>>,
        from_patient: impl FnOnce(RenderedTask) -> Result<T, StoreError>,
    ) -> Result<Served<T>, StoreError> {
        let access = self.access(tenant, id).await;
        let mut from_patient = Some(from_patient);
        // Whether the hot tier has had its say; if not, it is asked patiently when the
        // durable tier cannot answer.
        let mut asked = false;
        let found = match access {
            Access::Trusted => {
                asked = true;
                hot_read.await
            }
            // The lease lapsed because the durable tier stopped answering: the hot copy is all
            // there is (the one caveat of the guarantee: see ARCHITECTURE.md).
            Access::Bypass if self.durable_down() => {
                asked = true;
                self.patient_read(tenant, id, &mut from_patient).await
            }
            Access::Bypass | Access::Suspect => Ok(None),
        };
        let hot_has_none = asked && matches!(found, Ok(None));
        match found {
            Ok(Some(found)) => {
                bump(&self.0.stats.hot_hits);
                return Ok(Served::Hot(found));
            }
            Ok(None) if asked => bump(&self.0.stats.hot_misses),
            Ok(None) => bump(&self.0.stats.hot_fallbacks),
            Err(e) => {
                bump(&self.0.stats.hot_errors);
                bump(&self.0.stats.hot_fallbacks);
                tracing::warn!(error = %e, "hot tier read failed; reading durable tier");
            }
        }
        match self.durable_get(tenant, id).await {
            Ok(Some(task)) => {
                self.rewarm(tenant, &task).await;
                Ok(Served::Durable(task))
            }
            Ok(None) => Err(StoreError::NotFound),
            // Nothing else to fall back to: the hot copy, waited for (unless it is known to
            // be stale, or the hot tier already had its say).
            Err(e @ StoreError::Unavailable { .. })
                if access != Access::Suspect && !hot_has_none =>
            {
                match self.patient_read(tenant, id, &mut from_patient).await {
                    Ok(Some(found)) => {
                        bump(&self.0.stats.hot_hits);
                        Ok(Served::Hot(found))
                    }
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The hot copy, waited for longer than usual (at most once per read).
    async fn patient_read<T>(
        &self,
        tenant: &Tenant,
        id: &TaskId,
        convert: &mut Option<impl FnOnce(RenderedTask) -> Result<T, StoreError>>,
    ) -> Result<Option<T>, HotError> {
        let Some(convert) = convert.take() else {
            return Ok(None);
        };
        match self.0.hot.get_rendered_patiently(tenant, id).await? {
            Some(rendered) => convert(rendered)
                .map(Some)
                .map_err(|e| HotError(e.to_string())),
            None => Ok(None),
        }
    }

    /// How a read may use the hot tier; polls first if the lease lapsed while the durable
    /// tier answers (no background poller is running, or it fell behind), unless a poll is
    /// already under way.
    async fn access(&self, tenant: &Tenant, id: &TaskId) -> Access {
        let access = self.0.trust.access(tenant, id);
        if access != Access::Bypass || self.0.trust.lease_valid() || self.durable_down() {
            return access;
        }
        match self.try_poll_pending().await {
            Some(Ok(_)) => self.0.trust.access(tenant, id),
            _ => access,
        }
    }

    /// After a durable read: the hot tier gets the task back (guarded by version, so never
    /// older than what it holds). Best effort: a failure only costs a later miss.
    pub(super) async fn rewarm(&self, tenant: &Tenant, task: &Task) {
        if !self.0.trust.writable() {
            return;
        }
        if let Err(e) = self.0.hot.put(tenant, task).await {
            bump(&self.0.stats.hot_errors);
            tracing::warn!(error = %e, "hot tier re-warm failed");
        }
    }

    /// Like [`TieredStore::get`], but never older than `min_version`: a change announced by
    /// another instance may reach us before that instance has written its hot entry.
    async fn get_at_least(
        &self,
        tenant: &Tenant,
        id: &TaskId,
        min_version: u64,
    ) -> Result<(Task, Source), StoreError> {
        let (task, source) = self.get(tenant, id).await?;
        if task.version >= min_version || source == Source::Durable {
            return Ok((task, source));
        }
        let task = self
            .durable_get(tenant, id)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok((task, Source::Durable))
    }

    /// Long-poll: the task as soon as its version is no longer `unchanged` or it is terminal
    /// (at once if that is already so), else as it is at `deadline`. Writes through any
    /// instance sharing the durable tier wake the wait (see [`DurableTier::forward_changes`]).
    pub async fn wait_for_change(
        &self,
        tenant: &Tenant,
        id: &TaskId,
        unchanged: u64,
        deadline: tokio::time::Instant,
    ) -> Result<(Task, Source), StoreError> {
        let watch = self.0.changes.watch(tenant, id);
        // Never older than what the client holds: a hot entry behind it (its writer has not
        // written the hot tier yet) sends the read to the durable tier instead.
        let at_least = || watch.announced().max(unchanged);
        // The reads are boxed: this future lives as long as the wait, in every held long-poll,
        // and inline they would make it the size of a durable read for the whole wait.
        loop {
            // Registered before the read, so a write committed after the read still wakes us.
            let changed = watch.changed();
            let (task, source) = Box::pin(self.get_at_least(tenant, id, at_least())).await?;
            if task.version != unchanged || task.status.is_terminal() {
                return Ok((task, source));
            }
            tokio::select! {
                biased;
                _ = changed => {}
                // The answer at the end is read then, not remembered from before the wait.
                _ = tokio::time::sleep_until(deadline) => break,
                _ = self.0.changes.closed() => break,
            }
        }
        Box::pin(self.get_at_least(tenant, id, at_least())).await
    }
}

/// The task of a hot tier's rendering (the fields it adds are ignored).
fn parse_rendered(r: RenderedTask) -> Result<Task, StoreError> {
    serde_json::from_slice(&r.body).map_err(StoreError::internal)
}
