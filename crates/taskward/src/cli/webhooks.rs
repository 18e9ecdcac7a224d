//! `taskward webhooks …`: manage webhook endpoints over the API (a key with scope `admin`).

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use taskward_model::webhook::{Delivery, DeliveryId, Webhook, WebhookId};

use super::client_cmds::ClientArgs;
use super::render;

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Register an endpoint; prints its id and signing secret (shown only now).
    Create(CreateArgs),
    /// List the endpoints, newest first.
    List(ListArgs),
    /// Delete an endpoint and its deliveries.
    Delete(IdArgs),
    /// Give an endpoint a new signing secret (the old one keeps signing for 24 h).
    Rotate(IdArgs),
    /// Show an endpoint's deliveries, newest first, with their attempts.
    Deliveries(DeliveriesArgs),
    /// Send a delivery's event again, as a new delivery.
    Redeliver(RedeliverArgs),
}

impl WebhooksCommand {
    fn conn(&self) -> &ClientArgs {
        match self {
            WebhooksCommand::Create(a) => &a.conn,
            WebhooksCommand::List(a) => &a.conn,
            WebhooksCommand::Delete(a) | WebhooksCommand::Rotate(a) => &a.conn,
            WebhooksCommand::Deliveries(a) => &a.conn,
            WebhooksCommand::Redeliver(a) => &a.conn,
        }
    }
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    conn: ClientArgs,
    /// Where to send: an https:// (or http://) URL.
    endpoint: String,
    /// Event types, comma-separated (`task.completed,task.failed`), or `*` for all.
    #[arg(long, default_value = "*", value_delimiter = ',')]
    events: Vec<String>,
    #[arg(long)]
    description: Option<String>,
    /// Print the endpoint's JSON (with the secret) instead of its id and secret.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    conn: ClientArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    #[command(flatten)]
    conn: ClientArgs,
    /// The endpoint's id (`wh_…`).
    webhook_id: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct DeliveriesArgs {
    #[command(flatten)]
    conn: ClientArgs,
    /// The endpoint's id (`wh_…`).
    webhook_id: String,
    /// At most this many (1 to 500).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Only deliveries older than this one (`msg_…`), for the next page.
    #[arg(long)]
    before: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct RedeliverArgs {
    #[command(flatten)]
    conn: ClientArgs,
    /// The endpoint's id (`wh_…`).
    webhook_id: String,
    /// The delivery to send again (`msg_…`).
    delivery_id: String,
    /// Print the new delivery's JSON instead of its id.
    #[arg(long)]
    json: bool,
}

fn webhook_id(s: &str) -> anyhow::Result<WebhookId> {
    WebhookId::parse(s).map_err(|e| anyhow::anyhow!("{e}"))
}

fn delivery_id(s: &str) -> anyhow::Result<DeliveryId> {
    DeliveryId::parse(s).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Runs a `webhooks` subcommand.
pub async fn run(cmd: WebhooksCommand) -> anyhow::Result<ExitCode> {
    let result = run_inner(&cmd).await;
    cmd.conn().explain(result)
}

async fn run_inner(cmd: &WebhooksCommand) -> anyhow::Result<ExitCode> {
    let client = cmd.conn().client()?;
    let mut out = std::io::stdout().lock();
    match cmd {
        WebhooksCommand::Create(a) => {
            let w = client
                .create_webhook(&a.endpoint, &a.events, a.description.as_deref())
                .await?;
            if a.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&w)?)?;
            } else {
                writeln!(out, "{}\n{}", w.webhook.webhook_id, w.secret)?;
                eprintln!(
                    "taskward: the secret is shown only now; receivers verify signatures with it"
                );
            }
        }
        WebhooksCommand::List(a) => {
            let list = client.webhooks().await?;
            if a.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
            } else {
                write!(out, "{}", webhooks_table(&list))?;
            }
        }
        WebhooksCommand::Delete(a) => {
            let id = webhook_id(&a.webhook_id)?;
            client.delete_webhook(&id).await?;
            if a.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"webhook_id": id, "deleted": true})
                )?;
            } else {
                writeln!(out, "deleted {id}")?;
            }
        }
        WebhooksCommand::Rotate(a) => {
            let w = client
                .rotate_webhook_secret(&webhook_id(&a.webhook_id)?)
                .await?;
            if a.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&w)?)?;
            } else {
                writeln!(out, "{}", w.secret)?;
                eprintln!("taskward: the old secret keeps signing for 24 h; the new one is shown only now");
            }
        }
        WebhooksCommand::Deliveries(a) => {
            let before = a.before.as_deref().map(delivery_id).transpose()?;
            let page = client
                .webhook_deliveries(&webhook_id(&a.webhook_id)?, Some(a.limit), before)
                .await?;
            if a.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&page)?)?;
            } else {
                write!(out, "{}", deliveries_table(&page.results))?;
                if page.has_more {
                    if let Some(last) = page.results.last() {
                        eprintln!("taskward: more: --before {}", last.delivery_id);
                    }
                }
            }
        }
        WebhooksCommand::Redeliver(a) => {
            let d = client
                .redeliver(&webhook_id(&a.webhook_id)?, delivery_id(&a.delivery_id)?)
                .await?;
            if a.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&d)?)?;
            } else {
                writeln!(out, "{}", d.delivery_id)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn webhooks_table(list: &[Webhook]) -> String {
    let mut rows = vec![[
        "WEBHOOK".to_owned(),
        "URL".into(),
        "EVENTS".into(),
        "STATE".into(),
        "CREATED".into(),
    ]];
    rows.extend(list.iter().map(|w| {
        [
            w.webhook_id.to_string(),
            w.url.clone(),
            w.events.join(","),
            if w.disabled {
                "disabled (410)"
            } else {
                "active"
            }
            .to_owned(),
            taskward_model::time::format(&w.created_at),
        ]
    }));
    render::aligned(&rows)
}

fn deliveries_table(list: &[Delivery]) -> String {
    let mut rows = vec![[
        "DELIVERY".to_owned(),
        "TYPE".into(),
        "TASK".into(),
        "STATE".into(),
        "ATTEMPTS".into(),
        "LAST".into(),
        "NEXT".into(),
    ]];
    rows.extend(list.iter().map(|d| {
        let last = d.attempts.last().map_or_else(String::new, |a| {
            a.status_code
                .map_or_else(|| a.error.clone().unwrap_or_default(), |s| s.to_string())
        });
        [
            d.delivery_id.to_string(),
            d.kind.to_string(),
            d.task_id.to_string(),
            d.state.as_str().to_owned(),
            d.attempts.len().to_string(),
            last,
            d.next_attempt_at
                .map(|t| taskward_model::time::format(&t))
                .unwrap_or_default(),
        ]
    }));
    render::aligned(&rows)
}
