//! The webhook outbox on the SQL core: endpoints, deliveries, claims (see `crate::webhooks`).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use taskward_model::webhook::{Attempt, Delivery, DeliveryId, DeliveryState, Webhook, WebhookId};
use taskward_model::{EventId, EventType, Mode, OrgId, StoredEvent, TaskId, Tenant};
use tokio::sync::Notify;

use super::codec::{self, doc, event_of_at, stored_int};
use super::driver::RowView;
use super::text::{Arg, Dialect, Sql, Stmt};
use super::{retrying, statements, Backend, Lock, SqlDurable};
use crate::webhooks::{
    Claimed, DeliveryQuery, EndpointRoom, Finished, NewWebhook, OutboxStats, WebhookStore,
};
use crate::StoreError;

/// The columns an endpoint is read from, in [`webhook_of`] order.
macro_rules! webhook_columns {
    () => {
        "w.webhook_id, w.url, w.events, w.description, \
         CAST(CASE WHEN w.disabled THEN 1 ELSE 0 END AS BIGINT), w.created_at"
    };
}

/// The columns a delivery is read from, in [`delivery_of`] order.
macro_rules! delivery_columns {
    () => {
        "d.delivery_id, d.webhook_id, d.event_id, d.task_id, d.event_type, d.state, \
         d.attempts, d.next_attempt_at, d.created_at"
    };
}

const DELIVERY_COLUMN_COUNT: usize = 9;

fn bad(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::internal(e)
}

fn webhook_of(row: &impl RowView) -> Result<Webhook, StoreError> {
    Ok(Webhook {
        webhook_id: WebhookId::parse(&row.text(0)?).map_err(bad)?,
        url: row.text(1)?,
        events: row.doc(2)?.unwrap_or_default(),
        description: row.opt_text(3)?,
        disabled: row.int(4)? != 0,
        created_at: row.time(5)?,
    })
}

fn delivery_of(row: &impl RowView) -> Result<Delivery, StoreError> {
    let kind = row.text(4)?;
    let state = row.text(5)?;
    Ok(Delivery {
        delivery_id: DeliveryId(u64::try_from(row.int(0)?).map_err(bad)?),
        webhook_id: WebhookId::parse(&row.text(1)?).map_err(bad)?,
        event_id: EventId(u64::try_from(row.int(2)?).map_err(bad)?),
        task_id: TaskId::parse(&row.text(3)?).map_err(bad)?,
        kind: EventType::parse(&kind).ok_or_else(|| bad(format!("bad event type {kind:?}")))?,
        state: DeliveryState::parse(&state)
            .ok_or_else(|| bad(format!("bad delivery state {state:?}")))?,
        attempts: row.doc(6)?.unwrap_or_default(),
        next_attempt_at: row.opt_time(7)?,
        created_at: row.time(8)?,
    })
}

fn tenant_args(tenant: &Tenant) -> [Arg; 2] {
    [
        Arg::Text(tenant.org.as_str().to_owned()),
        Arg::Text(tenant.mode.as_str().to_owned()),
    ]
}

fn id_arg(id: DeliveryId) -> Arg {
    Arg::Int(stored_int(id.0))
}

// A new endpoint gets the events after the last one its tenant has so far.
static INSERT_WEBHOOK: Stmt = Stmt::new(
    "INSERT INTO webhooks (webhook_id, org, mode, url, events, event_mask, description, secret, \
     disabled, created_at, queued_through) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, FALSE, $9, \
     COALESCE((SELECT last FROM event_counters WHERE org = $2 AND mode = $3), 0))",
);

static LIST_WEBHOOKS: Stmt = Stmt::new(concat!(
    "SELECT ",
    webhook_columns!(),
    " FROM webhooks w WHERE w.org = $1 AND w.mode = $2 ORDER BY w.created_at DESC, w.webhook_id"
));

static GET_WEBHOOK: Stmt = Stmt::new(concat!(
    "SELECT ",
    webhook_columns!(),
    " FROM webhooks w WHERE w.org = $1 AND w.mode = $2 AND w.webhook_id = $3"
));

// Run after the endpoint's own delete: only its tenant's rows (the id is the tenant's).
static DELETE_WEBHOOK_DELIVERIES: Stmt =
    Stmt::new("DELETE FROM webhook_deliveries WHERE org = $1 AND mode = $2 AND webhook_id = $3");

static DELETE_WEBHOOK: Stmt =
    Stmt::new("DELETE FROM webhooks WHERE org = $1 AND mode = $2 AND webhook_id = $3");

static ROTATE_SECRET: Stmt = Stmt::new(
    "UPDATE webhooks SET previous_secret = secret, previous_until = $4, secret = $5 \
     WHERE org = $1 AND mode = $2 AND webhook_id = $3",
);

static DELIVERIES: Stmt = Stmt::new(concat!(
    "SELECT ",
    delivery_columns!(),
    " FROM webhook_deliveries d WHERE d.webhook_id = $3 AND d.org = $1 AND d.mode = $2 \
     AND d.delivery_id < $4 AND ($5 = '' OR d.state = $5) ORDER BY d.delivery_id DESC LIMIT $6"
));

static REDELIVER: Stmt = Stmt::new(
    "INSERT INTO webhook_deliveries (webhook_id, org, mode, event_id, task_id, event_type, \
     state, attempts, next_attempt_at, created_at) \
     SELECT webhook_id, org, mode, event_id, task_id, event_type, 'pending', '[]', $5, $5 \
     FROM webhook_deliveries WHERE org = $1 AND mode = $2 AND webhook_id = $3 \
     AND delivery_id = $4 RETURNING delivery_id",
);

static DELIVERY_BY_ID: Stmt = Stmt::new(concat!(
    "SELECT ",
    delivery_columns!(),
    " FROM webhook_deliveries d WHERE d.delivery_id = $1"
));

static FINISH: Stmt = Stmt::new(
    "UPDATE webhook_deliveries SET state = $3, attempts = $4, next_attempt_at = $5, \
     claimed_until = NULL, claim = NULL WHERE delivery_id = $1 AND claim = $2",
);

static ANY_DUE: Stmt = Stmt::new(
    "SELECT 1 FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= $1 \
     AND (claimed_until IS NULL OR claimed_until < $1) LIMIT 1",
);

// An endpoint answered: its deliveries waiting for a retry are tried again now, so one that
// recovers from an outage gets its backlog without waiting out the backoff.
static PULL_FORWARD: Stmt = Stmt::new(
    "UPDATE webhook_deliveries SET next_attempt_at = $2 WHERE webhook_id = $1 \
     AND state = 'pending' AND next_attempt_at > $2 AND claimed_until IS NULL",
);

static RELEASE: Stmt = Stmt::new(
    "UPDATE webhook_deliveries SET claimed_until = NULL, claim = NULL \
     WHERE delivery_id = $1 AND claim = $2",
);

static DISABLE_WEBHOOK: Stmt =
    Stmt::new("UPDATE webhooks SET disabled = TRUE WHERE webhook_id = $1");

static FAIL_PENDING: Stmt = Stmt::new(
    "UPDATE webhook_deliveries SET state = 'failed', next_attempt_at = NULL \
     WHERE webhook_id = $1 AND state = 'pending'",
);

static OUTBOX_STATS: Stmt = Stmt::new(
    "SELECT COUNT(*), MIN(next_attempt_at), \
     (SELECT CAST(COALESCE(SUM(c.last - w.queued_through), 0) AS BIGINT) \
      FROM webhooks w JOIN event_counters c ON c.org = w.org AND c.mode = w.mode \
      WHERE NOT w.disabled AND c.last > w.queued_through) \
     FROM webhook_deliveries WHERE state = 'pending'",
);

/// Endpoints whose tenant has events past their cursor and that may be given more (fewer than
/// `pending` pending deliveries, not in `skip`), a random few, with their pending count.
fn behind(d: Dialect, pending: u32, skip: &[WebhookId], limit: i64) -> Sql {
    let mut sql = Sql::new(d, "");
    let cap = sql.arg(Arg::Int(i64::from(pending)));
    sql.push(&format!(
        "SELECT * FROM (SELECT w.webhook_id, w.org, w.mode, w.queued_through, w.event_mask, \
         c.last, (SELECT COUNT(*) FROM (SELECT 1 FROM webhook_deliveries d \
         WHERE d.webhook_id = w.webhook_id AND d.state = 'pending' LIMIT {cap}) p) AS pending, \
         w.url, w.secret, w.previous_secret, w.previous_until \
         FROM webhooks w JOIN event_counters c ON c.org = w.org AND c.mode = w.mode \
         WHERE NOT w.disabled AND c.last > w.queued_through"
    ));
    if !skip.is_empty() {
        let list = sql.list(skip.iter().map(|id| Arg::Text(id.as_str().to_owned())));
        sql.push(&format!(" AND w.webhook_id NOT IN ({list})"));
    }
    let limit = sql.arg(Arg::Int(limit));
    // In no fixed order: cursors of different tenants are not comparable, and any fixed order
    // would let the endpoints first in it take all the room, look after look.
    sql.push(&format!(
        ") b WHERE b.pending < {cap} ORDER BY random() LIMIT {limit}"
    ));
    sql
}

// Moves an endpoint's cursor, only from where this worker read it: of two workers that read
// the same cursor, one moves it and the other makes no deliveries.
static ADVANCE: Stmt = Stmt::new(
    "UPDATE webhooks SET queued_through = $3 WHERE webhook_id = $1 AND queued_through = $2 \
     AND NOT disabled",
);

/// Most events read past one endpoint's cursor in one look (those its selection does not want
/// are passed over).
const SCAN: u32 = 256;
/// Most endpoints given new deliveries in one look.
const ENDPOINTS_PER_LOOK: i64 = 64;

/// An endpoint with events past its cursor.
struct Behind {
    webhook_id: String,
    tenant: Tenant,
    cursor: i64,
    mask: i64,
    last: i64,
    pending: i64,
    url: String,
    /// The secrets that sign its attempts now (see [`Claimed::secrets`]).
    secrets: Vec<String>,
}

/// The tenant in columns `i` (org) and `i + 1` (mode).
fn tenant_at(row: &impl RowView, i: usize) -> Result<Tenant, StoreError> {
    Ok(Tenant {
        org: OrgId::parse(&row.text(i)?).map_err(bad)?,
        mode: Mode::parse(&row.text(i + 1)?).map_err(bad)?,
    })
}

/// The secrets that sign an attempt at `now`, from columns `i` (secret), `i + 1` (the one it
/// replaced) and `i + 2` (until when that one still signs).
fn secrets_at(row: &impl RowView, i: usize, now: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
    let mut secrets = vec![row.text(i)?];
    if let (Some(old), Some(until)) = (row.opt_text(i + 1)?, row.opt_time(i + 2)?) {
        if until > now {
            secrets.push(old);
        }
    }
    Ok(secrets)
}

fn behind_of(row: &impl RowView, now: DateTime<Utc>) -> Result<Behind, StoreError> {
    let secrets = secrets_at(row, 8, now)?;
    Ok(Behind {
        url: row.text(7)?,
        secrets,
        webhook_id: row.text(0)?,
        tenant: tenant_at(row, 1)?,
        cursor: row.int(3)?,
        mask: row.int(4)?,
        last: row.int(5)?,
        pending: row.int(6)?,
    })
}

/// The claimed delivery rows of `picked` events for one endpoint, due and claimed at once.
fn insert_claimed(
    d: Dialect,
    b: &Behind,
    picked: &[StoredEvent],
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    claim: i64,
) -> Sql {
    let mut sql = Sql::new(
        d,
        "INSERT INTO webhook_deliveries (webhook_id, org, mode, event_id, task_id, event_type, \
         state, attempts, next_attempt_at, created_at, claimed_until, claim) VALUES ",
    );
    let [org, mode] = tenant_args(&b.tenant);
    let (id, org, mode) = (
        sql.arg(Arg::Text(b.webhook_id.clone())),
        sql.arg(org),
        sql.arg(mode),
    );
    let (now, until, claim) = (
        sql.arg(Arg::Time(now)),
        sql.arg(Arg::Time(until)),
        sql.arg(Arg::Int(claim)),
    );
    for (i, e) in picked.iter().enumerate() {
        let event_id = sql.arg(Arg::Int(stored_int(e.event_id.0)));
        let task_id = sql.arg(Arg::Text(e.task.task_id.as_str().to_owned()));
        let kind = sql.arg(Arg::Text(e.kind().as_str().to_owned()));
        let at = sql.arg(Arg::Time(e.task.updated_at));
        sql.push(if i == 0 { "(" } else { ", (" }).push(&format!(
            "{id}, {org}, {mode}, {event_id}, {task_id}, {kind}, 'pending', '[]', {now}, {at}, \
             {until}, {claim})"
        ));
    }
    sql.push(" RETURNING delivery_id, event_id");
    sql
}

/// Claims due rows. The inner select finds them by the partial index of pending rows; the
/// outer update checks again that each is still unclaimed, so two claims racing for a row
/// (PostgreSQL re-reads a row it waited for) cannot both take it. PostgreSQL also skips rows
/// another claim holds locked instead of waiting for them.
fn claim(
    d: Dialect,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    claim: i64,
    limit: u32,
    skip: &[WebhookId],
) -> Sql {
    let mut sql = Sql::new(d, "UPDATE webhook_deliveries SET claimed_until = ");
    let until = sql.arg(Arg::Time(until));
    sql.push(&until).push(", claim = ");
    let claim = sql.arg(Arg::Int(claim));
    sql.push(&claim).push(
        " WHERE delivery_id IN (SELECT d.delivery_id FROM webhook_deliveries d \
         JOIN webhooks w ON w.webhook_id = d.webhook_id \
         WHERE d.state = 'pending' AND NOT w.disabled AND d.next_attempt_at <= ",
    );
    let now = sql.arg(Arg::Time(now));
    sql.push(&now)
        .push(" AND (d.claimed_until IS NULL OR d.claimed_until < ")
        .push(&now)
        .push(")");
    if !skip.is_empty() {
        let list = sql.list(skip.iter().map(|id| Arg::Text(id.as_str().to_owned())));
        sql.push(&format!(" AND d.webhook_id NOT IN ({list})"));
    }
    sql.push(" ORDER BY d.next_attempt_at LIMIT ");
    let limit = sql.arg(Arg::Int(i64::from(limit)));
    sql.push(&limit);
    if d == Dialect::Postgres {
        sql.push(" FOR UPDATE OF d SKIP LOCKED");
    }
    sql.push(") AND state = 'pending' AND (claimed_until IS NULL OR claimed_until < ")
        .push(&now)
        .push(") RETURNING delivery_id");
    sql
}

/// What an attempt of each claimed delivery needs: the delivery, its endpoint's URL and
/// secrets, and its event.
fn claimed(d: Dialect, ids: &[i64]) -> Sql {
    let mut sql = Sql::new(
        d,
        concat!(
            "SELECT ",
            delivery_columns!(),
            ", d.org, d.mode, w.url, w.secret, w.previous_secret, w.previous_until, \
             e.event_id, e.previous_status, e.task \
             FROM webhook_deliveries d JOIN webhooks w ON w.webhook_id = d.webhook_id \
             LEFT JOIN task_events e ON e.org = d.org AND e.mode = d.mode \
             AND e.event_id = d.event_id WHERE d.delivery_id IN ("
        ),
    );
    let list = sql.list(ids.iter().copied().map(Arg::Int));
    sql.push(&list).push(")");
    sql
}

fn claimed_of(row: &impl RowView, now: DateTime<Utc>) -> Result<Claimed, StoreError> {
    let delivery = delivery_of(row)?;
    let n = DELIVERY_COLUMN_COUNT;
    let tenant = tenant_at(row, n)?;
    let secrets = secrets_at(row, n + 3, now)?;
    let event: Option<StoredEvent> = match row.opt_int(n + 6)? {
        Some(_) => Some(event_of_at(row, n + 6)?),
        None => None,
    };
    Ok(Claimed {
        delivery,
        tenant,
        url: row.text(n + 2)?,
        secrets,
        event,
    })
}

#[allow(private_bounds)]
impl<B: Backend> SqlDurable<B> {
    /// Gives endpoints behind the log their next deliveries, claimed: for each endpoint with
    /// events past its cursor (up to `limit` deliveries in all, each as `room` allows), the events
    /// its selection wants become delivery rows and its cursor moves past what was read, in one
    /// transaction. An endpoint that is slow or down is given only what can be attempted; the
    /// rest waits in the event log, which every write keeps anyway. The new claims.
    async fn deliveries_from_log(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        claim_id: i64,
        limit: u32,
        skip: &[WebhookId],
        room: EndpointRoom,
    ) -> Result<Vec<Claimed>, StoreError> {
        let d = self.dialect();
        let rows = self
            .backend
            .fetch(&behind(d, room.pending, skip, ENDPOINTS_PER_LOOK))
            .await?;
        // Each endpoint's share of the room first, then their looks at once: each is a few
        // round trips, and one after another they would make a look as slow as all of them.
        let mut left = limit;
        let mut looks = tokio::task::JoinSet::new();
        for row in &rows {
            let b = behind_of(row, now)?;
            let free = i64::from(room.pending).saturating_sub(b.pending).max(0);
            let want = i64::from(left.min(room.per_claim.max(1))).min(free) as usize;
            if want == 0 {
                continue;
            }
            left -= want as u32;
            let this = self.clone();
            looks.spawn(async move { this.give_from_log(&b, now, until, claim_id, want).await });
            if left == 0 {
                break;
            }
        }
        let mut ids = Vec::new();
        let mut failed = None;
        while let Some(done) = looks.join_next().await {
            match done {
                Ok(Ok(new)) => ids.extend(new),
                Ok(Err(e)) => failed = Some(e),
                Err(e) => failed = Some(StoreError::internal(e)),
            }
        }
        // Rows already claimed by this call are attempted even if another endpoint's look
        // failed (else they would wait out their claim).
        match failed {
            Some(e) if ids.is_empty() => return Err(e),
            Some(e) => {
                tracing::warn!(error = %e, "giving an endpoint deliveries from the log failed")
            }
            None => {}
        }
        Ok(ids)
    }

    /// One endpoint's look at the log (see [`Self::deliveries_from_log`]).
    async fn give_from_log(
        &self,
        b: &Behind,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        claim_id: i64,
        want: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let d = self.dialect();
        let after = EventId(u64::try_from(b.cursor).map_err(bad)?);
        // An endpoint that wants every type needs only as many events as it has room for; one
        // that wants some reads further, to pass over the others.
        let every = EventType::ALL.iter().all(|t| t.bit() & b.mask != 0);
        let scan = if every { want as u32 } else { SCAN };
        let events = self
            .backend
            .fetch(&statements::events_after(d, &b.tenant, None, after, scan))
            .await?
            .iter()
            .map(codec::event_of)
            .collect::<Result<Vec<StoredEvent>, _>>()?;
        // The cursor moves past every event read (picked or passed over), stopping before
        // the first one the endpoint had no room for. When the read reached the end of the
        // log, it moves at least to the counter read above: ids it gave out without an event
        // (a write that found its event already there) are gaps, never events to come,
        // since a tenant's ids commit in order.
        let full = events.len() == scan as usize;
        let mut picked = Vec::new();
        let mut through = b.cursor;
        let mut room_out = false;
        for e in events {
            if picked.len() == want {
                room_out = true;
                break;
            }
            through = stored_int(e.event_id.0);
            if e.kind().bit() & b.mask != 0 {
                picked.push(e);
            }
        }
        if !room_out && !full {
            through = through.max(b.last);
        }
        let advance = Sql::fixed(
            d,
            &ADVANCE,
            vec![
                Arg::Text(b.webhook_id.clone()),
                Arg::Int(b.cursor),
                Arg::Int(through),
            ],
        );
        let insert =
            (!picked.is_empty()).then(|| insert_claimed(d, b, &picked, now, until, claim_id));
        let new: Vec<(i64, i64)> = retrying(self.backend.retries(), || async {
            let mut tx = self.backend.begin(Lock::Plain).await?;
            if tx.execute(&advance).await? != 1 {
                // Another worker moved the cursor first, or the endpoint was disabled.
                return Ok(Vec::new());
            }
            let mut new = Vec::new();
            if let Some(insert) = &insert {
                for r in tx.fetch(insert).await? {
                    new.push((r.int(1)?, r.int(0)?));
                }
            }
            tx.commit().await?;
            Ok(new)
        })
        .await?;
        // What the attempts need is at hand: no second read of the rows and events. Rows are
        // matched to events by event id (RETURNING promises no order).
        let ids: std::collections::HashMap<i64, i64> = new.into_iter().collect();
        picked
            .into_iter()
            .filter_map(|e| ids.get(&stored_int(e.event_id.0)).map(|id| (e, *id)))
            .map(|(e, id)| {
                Ok(Claimed {
                    delivery: Delivery {
                        delivery_id: DeliveryId(u64::try_from(id).map_err(bad)?),
                        webhook_id: WebhookId::parse(&b.webhook_id).map_err(bad)?,
                        event_id: e.event_id,
                        task_id: e.task.task_id.clone(),
                        kind: e.kind(),
                        state: DeliveryState::Pending,
                        attempts: Vec::new(),
                        next_attempt_at: Some(now),
                        created_at: e.task.updated_at,
                    },
                    tenant: b.tenant.clone(),
                    url: b.url.clone(),
                    secrets: b.secrets.clone(),
                    event: Some(e),
                })
            })
            .collect()
    }
}

#[allow(private_bounds)]
#[async_trait]
impl<B: Backend> WebhookStore for SqlDurable<B> {
    async fn create_webhook(&self, w: &NewWebhook) -> Result<Webhook, StoreError> {
        let names = w.events.names();
        let mut args = vec![Arg::Text(w.webhook_id.as_str().to_owned())];
        args.extend(tenant_args(&w.tenant));
        args.extend([
            Arg::Text(w.url.clone()),
            Arg::Doc(doc(&Some(&names))?),
            Arg::Int(w.events.mask()),
            Arg::OptText(w.description.clone()),
            Arg::Text(w.secret.clone()),
            Arg::Time(w.created_at),
        ]);
        self.backend
            .execute(&Sql::fixed(self.dialect(), &INSERT_WEBHOOK, args))
            .await?;
        Ok(Webhook {
            webhook_id: w.webhook_id.clone(),
            url: w.url.clone(),
            events: names,
            description: w.description.clone(),
            disabled: false,
            created_at: w.created_at,
        })
    }

    async fn list_webhooks(&self, tenant: &Tenant) -> Result<Vec<Webhook>, StoreError> {
        let sql = Sql::fixed(self.dialect(), &LIST_WEBHOOKS, tenant_args(tenant).into());
        let rows = self.backend.fetch(&sql).await?;
        rows.iter().map(webhook_of).collect()
    }

    async fn get_webhook(
        &self,
        tenant: &Tenant,
        id: &WebhookId,
    ) -> Result<Option<Webhook>, StoreError> {
        let mut args: Vec<Arg> = tenant_args(tenant).into();
        args.push(Arg::Text(id.as_str().to_owned()));
        let rows = self
            .backend
            .fetch(&Sql::fixed(self.dialect(), &GET_WEBHOOK, args))
            .await?;
        rows.first().map(webhook_of).transpose()
    }

    async fn delete_webhook(&self, tenant: &Tenant, id: &WebhookId) -> Result<bool, StoreError> {
        let args = || {
            let mut args: Vec<Arg> = tenant_args(tenant).into();
            args.push(Arg::Text(id.as_str().to_owned()));
            args
        };
        let d = self.dialect();
        let (deliveries, webhook) = (
            Sql::fixed(d, &DELETE_WEBHOOK_DELIVERIES, args()),
            Sql::fixed(d, &DELETE_WEBHOOK, args()),
        );
        retrying(self.backend.retries(), || async {
            let mut tx = self.backend.begin(Lock::Plain).await?;
            // The endpoint first: a worker giving it deliveries holds its row until it commits,
            // so the delete of its deliveries, after, sees what that worker added.
            let n = tx.execute(&webhook).await?;
            tx.execute(&deliveries).await?;
            tx.commit().await?;
            Ok(n == 1)
        })
        .await
    }

    async fn rotate_secret(
        &self,
        tenant: &Tenant,
        id: &WebhookId,
        secret: &str,
        old_until: DateTime<Utc>,
    ) -> Result<Option<Webhook>, StoreError> {
        let mut args: Vec<Arg> = tenant_args(tenant).into();
        args.extend([
            Arg::Text(id.as_str().to_owned()),
            Arg::Time(old_until),
            Arg::Text(secret.to_owned()),
        ]);
        let n = self
            .backend
            .execute(&Sql::fixed(self.dialect(), &ROTATE_SECRET, args))
            .await?;
        if n == 0 {
            return Ok(None);
        }
        self.get_webhook(tenant, id).await
    }

    async fn deliveries(
        &self,
        tenant: &Tenant,
        id: &WebhookId,
        q: &DeliveryQuery,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut args: Vec<Arg> = tenant_args(tenant).into();
        args.extend([
            Arg::Text(id.as_str().to_owned()),
            Arg::Int(q.before.map_or(i64::MAX, |b| stored_int(b.0))),
            Arg::Text(q.state.map_or("", DeliveryState::as_str).to_owned()),
            Arg::Int(i64::from(q.limit) + 1),
        ]);
        let rows = self
            .backend
            .fetch(&Sql::fixed(self.dialect(), &DELIVERIES, args))
            .await?;
        rows.iter().map(delivery_of).collect()
    }

    async fn redeliver(
        &self,
        tenant: &Tenant,
        id: &WebhookId,
        delivery: DeliveryId,
        now: DateTime<Utc>,
    ) -> Result<Option<Delivery>, StoreError> {
        let mut args: Vec<Arg> = tenant_args(tenant).into();
        args.extend([
            Arg::Text(id.as_str().to_owned()),
            id_arg(delivery),
            Arg::Time(now),
        ]);
        let d = self.dialect();
        let rows = self.backend.fetch(&Sql::fixed(d, &REDELIVER, args)).await?;
        let Some(new) = rows.first().map(|r| r.int(0)).transpose()? else {
            return Ok(None);
        };
        self.backend.outbox().notify_one();
        let rows = self
            .backend
            .fetch(&Sql::fixed(d, &DELIVERY_BY_ID, vec![Arg::Int(new)]))
            .await?;
        rows.first().map(delivery_of).transpose()
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        claim_id: i64,
        limit: u32,
        skip: &[WebhookId],
        room: EndpointRoom,
    ) -> Result<Vec<Claimed>, StoreError> {
        let d = self.dialect();
        // A read first: the claiming UPDATE takes SQLite's one write lock even when it
        // matches nothing, and every write wakes the dispatcher.
        let due = !self
            .backend
            .fetch(&Sql::fixed(d, &ANY_DUE, vec![Arg::Time(now)]))
            .await?
            .is_empty();
        let rows = if due {
            self.backend
                .fetch(&claim(d, now, until, claim_id, limit, skip))
                .await?
        } else {
            Vec::new()
        };
        let ids = rows
            .iter()
            .map(|r| r.int(0))
            .collect::<Result<Vec<_>, _>>()?;
        let mut claimed_rows = Vec::new();
        if !ids.is_empty() {
            let rows = self.backend.fetch(&claimed(d, &ids)).await?;
            claimed_rows = rows
                .iter()
                .map(|r| claimed_of(r, now))
                .collect::<Result<Vec<_>, _>>()?;
        }
        let left = limit.saturating_sub(claimed_rows.len() as u32);
        if left > 0 {
            claimed_rows.extend(
                self.deliveries_from_log(now, until, claim_id, left, skip, room)
                    .await?,
            );
        }
        Ok(claimed_rows)
    }

    async fn finish(
        &self,
        delivery: DeliveryId,
        claim_id: i64,
        attempts: &[Attempt],
        outcome: Finished,
    ) -> Result<bool, StoreError> {
        let (state, next) = match outcome {
            Finished::Delivered => (DeliveryState::Delivered, None),
            Finished::Retry { next } => (DeliveryState::Pending, Some(next)),
            Finished::Failed => (DeliveryState::Failed, None),
        };
        let args = vec![
            id_arg(delivery),
            Arg::Int(claim_id),
            Arg::Text(state.as_str().to_owned()),
            Arg::Doc(doc(&Some(attempts))?),
            Arg::OptTime(next),
        ];
        let n = self
            .backend
            .execute(&Sql::fixed(self.dialect(), &FINISH, args))
            .await?;
        Ok(n == 1)
    }

    async fn pull_forward(&self, id: &WebhookId, now: DateTime<Utc>) -> Result<(), StoreError> {
        let args = vec![Arg::Text(id.as_str().to_owned()), Arg::Time(now)];
        self.backend
            .execute(&Sql::fixed(self.dialect(), &PULL_FORWARD, args))
            .await
            .map(drop)
    }

    async fn release(&self, delivery: DeliveryId, claim_id: i64) -> Result<(), StoreError> {
        let args = vec![id_arg(delivery), Arg::Int(claim_id)];
        self.backend
            .execute(&Sql::fixed(self.dialect(), &RELEASE, args))
            .await
            .map(drop)
    }

    async fn disable_webhook(&self, id: &WebhookId) -> Result<(), StoreError> {
        let d = self.dialect();
        let arg = || vec![Arg::Text(id.as_str().to_owned())];
        let (disable, fail) = (
            Sql::fixed(d, &DISABLE_WEBHOOK, arg()),
            Sql::fixed(d, &FAIL_PENDING, arg()),
        );
        retrying(self.backend.retries(), || async {
            let mut tx = self.backend.begin(Lock::Plain).await?;
            tx.execute(&disable).await?;
            tx.execute(&fail).await?;
            tx.commit().await
        })
        .await
    }

    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        let rows = self
            .backend
            .fetch(&Sql::fixed(self.dialect(), &OUTBOX_STATS, Vec::new()))
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| bad("COUNT(*) returned no row"))?;
        let rows_pending = u64::try_from(row.int(0)?).map_err(bad)?;
        let behind = u64::try_from(row.int(2)?).map_err(bad)?;
        Ok(OutboxStats {
            pending: rows_pending + behind,
            oldest_due: row.opt_time(1)?,
        })
    }

    fn outbox_queued(&self) -> Arc<Notify> {
        self.backend.outbox().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_statements_hold_no_dollar_but_placeholders() {
        for stmt in [
            &ADVANCE,
            &INSERT_WEBHOOK,
            &LIST_WEBHOOKS,
            &GET_WEBHOOK,
            &DELETE_WEBHOOK_DELIVERIES,
            &DELETE_WEBHOOK,
            &ROTATE_SECRET,
            &DELIVERIES,
            &REDELIVER,
            &DELIVERY_BY_ID,
            &FINISH,
            &RELEASE,
            &PULL_FORWARD,
            &ANY_DUE,
            &DISABLE_WEBHOOK,
            &FAIL_PENDING,
            &OUTBOX_STATS,
        ] {
            let sqlite = stmt.text(Dialect::Sqlite);
            assert!(!sqlite.contains('$'), "{sqlite}");
        }
    }
}
