//! `taskward keys create|list|revoke`, on the same store `serve` uses (safe while it runs:
//! SQLite serialises the writers).

use std::io::Write;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use taskward_model::{Mode, OrgId, Scopes};
use taskward_server::open_store;

use super::render;
use super::StoreArgs;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Mint a key; prints only the key on stdout (for scripts). Shown this once.
    Create(CreateArgs),
    /// List keys (never the keys themselves: id, organisation, mode, scopes, hint, dates).
    List(ListArgs),
    /// Revoke a key by its id (key_…) or by the key itself.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Organisation the key's tasks belong to.
    #[arg(long)]
    org: String,
    /// `test` or `live`: which data the key sees.
    #[arg(long)]
    mode: String,
    /// Comma-separated: read, cancel, write, admin.
    #[arg(long, default_value = "read")]
    scopes: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Key id (`key_…`) or the key itself.
    key: String,
}

pub async fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        KeysCommand::Create(a) => {
            let org = OrgId::parse(&a.org).map_err(|e| anyhow::anyhow!("--org {}", e.message))?;
            let mode =
                Mode::parse(&a.mode).map_err(|_| anyhow::anyhow!("--mode must be test or live"))?;
            let scopes = Scopes::parse(&a.scopes).map_err(|e| {
                anyhow::anyhow!(
                    "--scopes: {} (accepted: read, cancel, write, admin)",
                    e.message
                )
            })?;
            let keys = open_store(&a.store.settings(None)?).await?.keys;
            let (key, record) = keys
                .create(org, mode, scopes)
                .await
                .context("storing the key")?;
            writeln!(out, "{}", key.expose())?;
            eprintln!(
                "created {} for {}/{} with scopes {}",
                record.key_id, record.org, record.mode, record.scopes
            );
        }
        KeysCommand::List(a) => {
            let keys = open_store(&a.store.settings(None)?).await?.keys;
            let keys = keys.list().await.context("reading keys")?;
            if a.json {
                for k in &keys {
                    writeln!(out, "{}", serde_json::to_string(k)?)?;
                }
            } else {
                let mut rows = vec![[
                    "KEY_ID", "ORG", "MODE", "SCOPES", "HINT", "CREATED", "REVOKED",
                ]
                .map(String::from)];
                for k in &keys {
                    let time = taskward_model::time::format;
                    rows.push([
                        k.key_id.clone(),
                        k.org.to_string(),
                        k.mode.to_string(),
                        k.scopes.to_string(),
                        k.hint.clone(),
                        time(&k.created_at),
                        k.revoked_at
                            .as_ref()
                            .map(time)
                            .unwrap_or_else(|| "-".into()),
                    ]);
                }
                write!(out, "{}", render::aligned(&rows))?;
            }
        }
        KeysCommand::Revoke(a) => {
            let keys = open_store(&a.store.settings(None)?).await?.keys;
            if !keys.revoke(&a.key).await.context("revoking")? {
                // Never echo the argument: it may be the secret itself.
                bail!("no active key with that id (or key)");
            }
            eprintln!("revoked; running servers stop accepting it within auth.key_cache_ttl_ms");
        }
    }
    Ok(())
}
