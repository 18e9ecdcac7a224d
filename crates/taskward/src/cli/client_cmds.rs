//! The client commands: `get`, `list`, `kill`, `watch`, `create`, `update`, talking to a
//! running server through `taskward-client`.
//!
//! Output is for people on a terminal (colour, a live progress line) and for scripts when
//! piped (plain text, `--json`). Exit codes, so scripts can branch on how a task ended:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success; for `watch` / `get --wait`: the task COMPLETED |
//! | 1 | error: the server answered an error (its message is printed), it could not be reached, or the input was invalid |
//! | 2 | usage error (unknown flag, missing argument) |
//! | 3 | the task FAILED (its `error_message` is printed) |
//! | 4 | the task was CANCELED |
//! | 5 | the task COMPLETED_WITH_ERRORS |
//! | 6 | `--timeout` passed before the task ended |

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use taskward_client::{
    Client, CreateTask, Error, ListTasksBody, OneOrMany, TaskResponse, TaskStatus, UpdateTask,
};

use super::render::{self, Progress};

/// Exit code of a task that FAILED.
pub const EXIT_FAILED: u8 = 3;
/// Exit code of a task that was CANCELED.
pub const EXIT_CANCELED: u8 = 4;
/// Exit code of a task that COMPLETED_WITH_ERRORS.
pub const EXIT_COMPLETED_WITH_ERRORS: u8 = 5;
/// Exit code when `--timeout` passed first.
pub const EXIT_TIMEOUT: u8 = 6;

/// Which server, with which key.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Base URL of the taskward server.
    #[arg(
        long,
        env = "TASKWARD_URL",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    url: String,
    /// API key (`sk_live_…` or `sk_test_…`).
    #[arg(
        long,
        env = "TASKWARD_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    api_key: Option<String>,
}

impl ClientArgs {
    pub(super) fn client(&self) -> anyhow::Result<Client> {
        let Some(key) = self.api_key.as_deref().filter(|k| !k.trim().is_empty()) else {
            bail!("no API key: pass --api-key or set TASKWARD_API_KEY");
        };
        Ok(Client::new(&self.url, key)?)
    }

    /// A failure to reach the server, said with what to check. Other errors pass unchanged:
    /// their messages already name each cause once.
    pub(super) fn explain<T>(&self, result: anyhow::Result<T>) -> anyhow::Result<T> {
        let e = match result {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let Some(client_err) = e.downcast_ref::<Error>() else {
            return Err(e);
        };
        // The innermost cause says why (refused, no such host…); the outer ones only repeat
        // the URL and the layers it went through.
        let root = {
            let mut cause: &dyn std::error::Error = client_err;
            while let Some(next) = cause.source() {
                cause = next;
            }
            cause.to_string()
        };
        if client_err.is_connect() {
            bail!(
                "cannot reach a taskward server at {} ({root}). Is it running (`taskward serve`)? \
                 Check --url or TASKWARD_URL.",
                self.url
            );
        }
        if client_err.is_timeout() {
            bail!(
                "the taskward server at {} did not answer in time ({root}). It may be \
                 overloaded or a proxy may be holding the request; check --url or TASKWARD_URL.",
                self.url
            );
        }
        Err(e)
    }
}

#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub(super) conn: ClientArgs,
    /// The task's id.
    task_id: String,
    /// Wait until the task ends (long-poll), then print it; exits like `watch`.
    #[arg(long)]
    wait: bool,
    /// With --wait: give up after this many seconds (exit 6).
    #[arg(long, value_name = "SECONDS", requires = "wait")]
    timeout: Option<f64>,
    /// Print the JSON body instead of the readable view.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub(super) conn: ClientArgs,
    /// Only these statuses (comma-separated or repeated), e.g. PROCESSING,FAILED.
    #[arg(long, value_delimiter = ',', value_name = "STATUS")]
    status: Vec<String>,
    /// Only active (non-terminal) tasks.
    #[arg(long, conflicts_with = "status")]
    active: bool,
    /// Only these task types (comma-separated or repeated).
    #[arg(long = "type", value_delimiter = ',', value_name = "TYPE")]
    task_type: Vec<String>,
    /// Case-insensitive substring of task_id, task_type or status.
    #[arg(long, value_name = "Q")]
    search: Option<String>,
    /// At most this many tasks (newest first), following pages as needed.
    #[arg(long, default_value_t = 20, value_name = "N")]
    limit: usize,
    /// One JSON task per line instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    #[command(flatten)]
    pub(super) conn: ClientArgs,
    /// The task's id.
    task_id: String,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub(super) conn: ClientArgs,
    /// The task's id.
    task_id: String,
    /// Give up after this many seconds (exit 6).
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
    /// One JSON line per state of the task instead of the live line or plain lines.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub(super) conn: ClientArgs,
    /// The task's id.
    task_id: String,
    /// Print the history's JSON instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub(super) conn: ClientArgs,
    /// The task as JSON: the text itself, `@FILE`, or `-` for stdin.
    body: String,
    /// Print the task's JSON instead of its id.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub(super) conn: ClientArgs,
    /// The task's id.
    task_id: String,
    /// The patch as JSON (`{status?, outputs?, additional_data?, description?}`): the text
    /// itself, `@FILE`, or `-` for stdin.
    body: String,
    /// Apply only if the task is still at this version (else exit 1 with the 412).
    #[arg(long, value_name = "VERSION")]
    if_match: Option<u64>,
    /// Print the task's JSON instead of the readable view.
    #[arg(long)]
    json: bool,
}

/// Prints `task` on stdout: its JSON, or the readable view (in colour on a terminal).
fn print_task(task: &TaskResponse, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(task)?)?;
    } else {
        let colour = render::colour_for(out.is_terminal());
        write!(out, "{}", render::task_view(task, colour))?;
    }
    Ok(())
}

/// `taskward get`.
pub async fn get(a: &GetArgs) -> anyhow::Result<ExitCode> {
    let client = a.conn.client()?;
    let (task, code) = if a.wait {
        let timeout = seconds(a.timeout)?.unwrap_or(Duration::MAX);
        match client.wait_until_done(&a.task_id, timeout).await {
            Ok(t) => {
                let code = exit_for(t.status);
                (t, code)
            }
            Err(Error::Timeout { last }) => {
                eprintln!("taskward: timed out before the task ended");
                match last {
                    Some(t) => (*t, ExitCode::from(EXIT_TIMEOUT)),
                    None => return Ok(ExitCode::from(EXIT_TIMEOUT)),
                }
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        (client.get(&a.task_id).await?, ExitCode::SUCCESS)
    };
    print_task(&task, a.json)?;
    if a.wait {
        report_error_message(&task);
    }
    Ok(code)
}

/// `taskward list`.
pub async fn list(a: &ListArgs) -> anyhow::Result<ExitCode> {
    let client = a.conn.client()?;
    let statuses: Vec<TaskStatus> = if a.active {
        TaskStatus::ALL
            .into_iter()
            .filter(|s| !s.is_terminal())
            .collect()
    } else {
        a.status
            .iter()
            .map(|s| parse_status(s))
            .collect::<anyhow::Result<_>>()?
    };
    let body = ListTasksBody {
        status: (!statuses.is_empty()).then_some(OneOrMany::Many(statuses)),
        task_type: (!a.task_type.is_empty()).then(|| OneOrMany::Many(a.task_type.clone())),
        search: a.search.clone(),
        ..ListTasksBody::default()
    };
    let page_size = a.limit.clamp(1, 1000) as u32;
    let tasks = client.list_all(&body, page_size, Some(a.limit)).await?;
    let mut out = std::io::stdout().lock();
    if a.json {
        for t in &tasks {
            writeln!(out, "{}", serde_json::to_string(t)?)?;
        }
    } else {
        let colour = render::colour_for(out.is_terminal());
        write!(out, "{}", render::table(&tasks, colour))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `taskward kill`.
pub async fn kill(a: &KillArgs) -> anyhow::Result<ExitCode> {
    let res = a.conn.client()?.kill(&a.task_id).await?;
    writeln!(std::io::stdout().lock(), "{}", res.message)?;
    Ok(ExitCode::SUCCESS)
}

/// `taskward create`.
pub async fn create(a: &CreateArgs) -> anyhow::Result<ExitCode> {
    let client = a.conn.client()?;
    let task: CreateTask = parse_body(&a.body)?;
    let created = client.create(&task).await?;
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&created.task)?)?;
    } else {
        writeln!(out, "{}", created.task.task_id)?;
    }
    if !created.new {
        eprintln!("taskward: an identical task already existed (idempotent create)");
    }
    Ok(ExitCode::SUCCESS)
}

/// `taskward update`.
pub async fn update(a: &UpdateArgs) -> anyhow::Result<ExitCode> {
    let client = a.conn.client()?;
    let patch: UpdateTask = parse_body(&a.body)?;
    let task = client.update(&a.task_id, &patch, a.if_match).await?;
    print_task(&task, a.json)?;
    Ok(ExitCode::SUCCESS)
}

/// `taskward history`: every change of a task, oldest first, as a table (or its JSON).
pub async fn history(a: &HistoryArgs) -> anyhow::Result<ExitCode> {
    let history = a.conn.client()?.history(&a.task_id).await?;
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&history)?)?;
    } else {
        let colour = render::colour_for(out.is_terminal());
        write!(out, "{}", render::history_table(&history.events, colour))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The states of a task from now on: the current one, then one per change as the task's event
/// stream reports it, until it ends.
struct Changes {
    stream: taskward_client::EventStream,
    current: Option<TaskResponse>,
}

impl Changes {
    async fn follow(client: &Client, task_id: &str) -> anyhow::Result<Self> {
        let mut stream = client.task_events(task_id, None)?;
        // Listening before reading the task: no change can fall between the two.
        stream.connect().await?;
        let current = client.get(task_id).await?;
        Ok(Changes {
            stream,
            current: Some(current),
        })
    }

    async fn next(&mut self) -> anyhow::Result<Option<TaskResponse>> {
        if let Some(t) = self.current.take() {
            return Ok(Some(t));
        }
        Ok(self.stream.next().await?.map(|e| e.task))
    }
}

/// `taskward watch`: a live line on a terminal, one tab-separated line per change when piped
/// (`task_id  status  version  elapsed  progress`), or JSON lines with `--json`.
pub async fn watch(a: &WatchArgs) -> anyhow::Result<ExitCode> {
    let client = a.conn.client()?;
    let deadline = seconds(a.timeout)?.and_then(|d| tokio::time::Instant::now().checked_add(d));
    let mut watch = Changes::follow(&client, &a.task_id).await?;
    let mut shown = 0;
    let live = !a.json && render::stdout_is_tty();
    let colour = render::colour_for(live);
    let mut bar: Option<ProgressBar> = None;
    loop {
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d, watch.next()).await {
                Ok(r) => r,
                Err(_) => {
                    if let Some(b) = &bar {
                        b.abandon();
                    }
                    eprintln!("taskward: timed out before the task ended");
                    return Ok(ExitCode::from(EXIT_TIMEOUT));
                }
            },
            None => watch.next().await,
        };
        let task = match next {
            // A change the first read already showed.
            Ok(Some(t)) if t.version <= shown => continue,
            Ok(Some(t)) => t,
            // Only after a terminal state, which ends the loop below.
            Ok(None) => return Ok(ExitCode::SUCCESS),
            Err(e) => {
                if let Some(b) = &bar {
                    b.abandon();
                }
                return Err(e);
            }
        };
        shown = task.version;
        if a.json {
            writeln!(
                std::io::stdout().lock(),
                "{}",
                serde_json::to_string(&task)?
            )?;
        } else if live {
            let b = bar.get_or_insert_with(|| live_bar(&task));
            show_live(b, &task, colour);
        } else {
            writeln!(std::io::stdout().lock(), "{}", plain_line(&task))?;
        }
        if task.status.is_terminal() {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
                let mut out = std::io::stdout().lock();
                writeln!(out, "{}", final_line(&task, colour))?;
                out.flush()?;
            }
            report_error_message(&task);
            return Ok(exit_for(task.status));
        }
    }
}

fn live_bar(task: &TaskResponse) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::stdout())
        .with_elapsed(render::elapsed(task));
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Redraws the live line for `task`: spinner, task id, status, elapsed time, and the
/// progress (a bar when a fraction is known).
fn show_live(bar: &ProgressBar, task: &TaskResponse, colour: bool) {
    let progress = Progress::of(task);
    let spinner = if colour {
        "{spinner:.cyan}"
    } else {
        "{spinner}"
    };
    let template = match progress.as_ref().map(|p| p.fraction) {
        Some(_) => format!("{spinner} {{prefix}} {{elapsed_precise}} [{{bar:30}}] {{msg}}"),
        None => format!("{spinner} {{prefix}} {{elapsed_precise}} {{msg}}"),
    };
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(format!(
        "{} {}",
        task.task_id,
        render::paint_status(task.status, task.status.as_str(), colour)
    ));
    if let Some(f) = progress.as_ref().map(|p| p.fraction) {
        bar.set_position((f * 1000.0).round() as u64);
    }
    bar.set_message(progress.map(|p| p.text()).unwrap_or_default());
}

fn plain_line(task: &TaskResponse) -> String {
    let progress = Progress::of(task)
        .map(|p| p.text())
        .unwrap_or_else(|| "-".into());
    format!(
        "{}\t{}\t{}\t{}\t{}",
        task.task_id,
        task.status,
        task.version,
        render::hms(render::elapsed(task)),
        progress
    )
}

/// What stays on the terminal after the live line: how the task ended.
fn final_line(task: &TaskResponse, colour: bool) -> String {
    let mut line = format!(
        "{} {} after {}",
        task.task_id,
        render::paint_status(task.status, task.status.as_str(), colour),
        render::hms(render::elapsed(task))
    );
    if let Some(p) = Progress::of(task) {
        line.push_str(&format!(" ({})", p.text()));
    }
    line
}

fn report_error_message(task: &TaskResponse) {
    if let Some(msg) = &task.error_message {
        eprintln!("error_message: {msg}");
    }
}

/// 0 for COMPLETED (and any non-terminal status a caller reports), else the table's code.
fn exit_for(status: TaskStatus) -> ExitCode {
    match status {
        TaskStatus::Failed => ExitCode::from(EXIT_FAILED),
        TaskStatus::Canceled => ExitCode::from(EXIT_CANCELED),
        TaskStatus::CompletedWithErrors => ExitCode::from(EXIT_COMPLETED_WITH_ERRORS),
        _ => ExitCode::SUCCESS,
    }
}

fn parse_status(s: &str) -> anyhow::Result<TaskStatus> {
    TaskStatus::parse(&s.trim().to_ascii_uppercase()).with_context(|| {
        let accepted: Vec<&str> = TaskStatus::ALL.iter().map(|s| s.as_str()).collect();
        format!(
            "--status: unknown status `{s}` (accepted: {})",
            accepted.join(", ")
        )
    })
}

fn seconds(s: Option<f64>) -> anyhow::Result<Option<Duration>> {
    match s {
        None => Ok(None),
        Some(x) => Duration::try_from_secs_f64(x).map(Some).map_err(|_| {
            anyhow::anyhow!(
                "--timeout must be a number of seconds, 0 or more (and not absurdly large)"
            )
        }),
    }
}

/// A JSON body from the argument itself, `@FILE`, or `-` (stdin).
fn parse_body<T: serde::de::DeserializeOwned>(arg: &str) -> anyhow::Result<T> {
    let (text, from) = if arg == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the body from stdin")?;
        (s, "stdin".to_owned())
    } else if let Some(path) = arg.strip_prefix('@') {
        let s = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
        (s, path.to_owned())
    } else {
        (arg.to_owned(), "the body argument".to_owned())
    };
    serde_json::from_str(&text).with_context(|| format!("{from} is not a valid body"))
}
