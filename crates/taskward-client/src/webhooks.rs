//! Webhook endpoints and their deliveries (scope `admin`).

use reqwest::Method;
use serde_json::json;
use taskward_model::webhook::{
    Delivery, DeliveryId, DeliveryList, Webhook, WebhookId, WebhookList, WebhookWithSecret,
};

use crate::{decode, Client, Result};

impl Client {
    /// `POST /v1/webhooks`: registers `url` for `events` (`["*"]` for all); the answer carries
    /// the signing secret, shown only now.
    pub async fn create_webhook(
        &self,
        url: &str,
        events: &[String],
        description: Option<&str>,
    ) -> Result<WebhookWithSecret> {
        let mut body = json!({"url": url, "events": events});
        if let Some(d) = description {
            body["description"] = json!(d);
        }
        let req = self.request(Method::POST, "v1/webhooks")?.json(&body);
        decode(self.send(req).await?).await
    }

    /// `GET /v1/webhooks`: the tenant's endpoints, newest first.
    pub async fn webhooks(&self) -> Result<Vec<Webhook>> {
        let list: WebhookList =
            decode(self.send(self.request(Method::GET, "v1/webhooks")?).await?).await?;
        Ok(list.results)
    }

    /// `GET /v1/webhooks/{id}`.
    pub async fn webhook(&self, id: &WebhookId) -> Result<Webhook> {
        let path = format!("v1/webhooks/{id}");
        decode(self.send(self.request(Method::GET, &path)?).await?).await
    }

    /// `DELETE /v1/webhooks/{id}`: the endpoint and its deliveries.
    pub async fn delete_webhook(&self, id: &WebhookId) -> Result<()> {
        let path = format!("v1/webhooks/{id}");
        self.send(self.request(Method::DELETE, &path)?).await?;
        Ok(())
    }

    /// `POST /v1/webhooks/{id}/rotate-secret`: a new secret; the old one signs too for 24 h.
    pub async fn rotate_webhook_secret(&self, id: &WebhookId) -> Result<WebhookWithSecret> {
        let path = format!("v1/webhooks/{id}/rotate-secret");
        decode(self.send(self.request(Method::POST, &path)?).await?).await
    }

    /// `GET /v1/webhooks/{id}/deliveries`: newest first, up to `limit`, older than `before`.
    pub async fn webhook_deliveries(
        &self,
        id: &WebhookId,
        limit: Option<u32>,
        before: Option<DeliveryId>,
    ) -> Result<DeliveryList> {
        let path = format!("v1/webhooks/{id}/deliveries");
        let mut req = self.request(Method::GET, &path)?;
        if let Some(l) = limit {
            req = req.query(&[("limit", l.to_string())]);
        }
        if let Some(b) = before {
            req = req.query(&[("before", b.to_string())]);
        }
        decode(self.send(req).await?).await
    }

    /// `POST /v1/webhooks/{id}/deliveries/{delivery}/redeliver`: the event again, as a new
    /// delivery.
    pub async fn redeliver(&self, id: &WebhookId, delivery: DeliveryId) -> Result<Delivery> {
        let path = format!("v1/webhooks/{id}/deliveries/{delivery}/redeliver");
        decode(self.send(self.request(Method::POST, &path)?).await?).await
    }
}
