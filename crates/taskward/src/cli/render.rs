//! How the client commands show tasks: colour decisions, progress, the readable task view
//! and the list table.
//!
//! Colour only goes to a terminal and never when `NO_COLOR` is set (no-color.org); piped
//! output is plain text whose layout does not depend on the terminal.

use std::io::IsTerminal;
use std::time::Duration;

use serde_json::Value;
use taskward_client::{TaskEvent, TaskResponse, TaskStatus};

/// Whether to paint output written to a stream that `is_tty` describes.
pub fn colour_for(is_tty: bool) -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
    is_tty && !no_color && !dumb
}

/// Whether stdout is a terminal.
pub fn stdout_is_tty() -> bool {
    std::io::stdout().is_terminal()
}

/// `text` in the colour that `status` deserves, when `colour` is on.
pub fn paint_status(status: TaskStatus, text: &str, colour: bool) -> String {
    if !colour {
        return text.to_owned();
    }
    let code = match status {
        TaskStatus::Completed => "32",                           // green
        TaskStatus::CompletedWithErrors => "33",                 // yellow
        TaskStatus::Failed => "31",                              // red
        TaskStatus::Canceled => "35",                            // magenta
        TaskStatus::InProgress | TaskStatus::Processing => "36", // cyan
        _ => "2",                                                // dim
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// A task's progress as the client commands show it: the server's derived `progress` object
/// (counts, percent, ETA, stalled) and what the producer says is happening
/// (`additional_data.progress.message`, else `.stage`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// 0.0 to 1.0.
    pub fraction: f64,
    /// Items done (completed + failed) and in all.
    pub counts: (u64, u64),
    pub failed: u64,
    pub eta_seconds: Option<f64>,
    pub stalled: bool,
    pub message: Option<String>,
}

impl Progress {
    /// The progress `task` reports, if any.
    pub fn of(task: &TaskResponse) -> Option<Progress> {
        let p = task.progress?;
        let reported = task
            .additional_data
            .as_ref()
            .and_then(|d| d.get("progress"))
            .and_then(Value::as_object);
        let message = reported
            .and_then(|o| o.get("message").or(o.get("stage")))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Some(Progress {
            fraction: (p.percent / 100.0).clamp(0.0, 1.0),
            counts: (p.completed + p.failed, p.total),
            failed: p.failed,
            eta_seconds: p.eta_seconds,
            stalled: p.stalled,
            message,
        })
    }

    /// `50/100 (50%)`, then `2 failed`, `ETA 00:01:40` or `stalled`, and the message.
    pub fn text(&self) -> String {
        let (done, total) = self.counts;
        let mut parts = vec![format!("{done}/{total} ({:.0}%)", self.fraction * 100.0)];
        if self.failed > 0 {
            parts.push(format!("{} failed", self.failed));
        }
        if self.stalled {
            parts.push("stalled".into());
        } else if let Some(eta) = self.eta_seconds.filter(|e| *e > 0.0) {
            parts.push(format!("ETA {}", hms(Duration::from_secs_f64(eta.ceil()))));
        }
        if let Some(m) = &self.message {
            parts.push(m.clone());
        }
        parts.join(" ")
    }
}

/// How long the task has run: from its start (or creation) to its end, or to now.
pub fn elapsed(task: &TaskResponse) -> Duration {
    let from = task.started_at.unwrap_or(task.created_at);
    let to = task.finished_at.unwrap_or_else(taskward_model::time::now);
    (to - from).to_std().unwrap_or_default()
}

/// `HH:MM:SS`.
pub fn hms(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The readable view of one task, `key  value` per line.
pub fn task_view(t: &TaskResponse, colour: bool) -> String {
    let time = |o: Option<String>| o.unwrap_or_else(|| "-".into());
    let json = |v: &dyn Fn() -> serde_json::Result<String>| v().unwrap_or_default();
    let progress = Progress::of(t)
        .map(|p| p.text())
        .unwrap_or_else(|| "-".into());
    let rows: Vec<(&str, String)> = vec![
        ("task_id", t.task_id.to_string()),
        ("task_type", t.task_type.clone()),
        ("status", paint_status(t.status, t.status.as_str(), colour)),
        ("version", t.version.to_string()),
        ("progress", progress),
        ("elapsed", hms(elapsed(t))),
        ("created_at", taskward_model::time::format(&t.created_at)),
        ("updated_at", taskward_model::time::format(&t.updated_at)),
        (
            "started_at",
            time(t.started_at.as_ref().map(taskward_model::time::format)),
        ),
        (
            "finished_at",
            time(t.finished_at.as_ref().map(taskward_model::time::format)),
        ),
        ("description", time(t.description.clone())),
        ("error_message", time(t.error_message.clone())),
        ("inputs", json(&|| serde_json::to_string(&t.inputs))),
        ("outputs", json(&|| serde_json::to_string(&t.outputs))),
        (
            "additional_data",
            json(&|| serde_json::to_string(&t.additional_data)),
        ),
    ];
    let mut out = String::new();
    for (k, v) in rows {
        out.push_str(&format!("{k:<16}{v}\n"));
    }
    out
}

/// Rows of plain text as columns aligned with two spaces, each as wide as its widest cell
/// (an organisation id may be 64 characters: fixed widths would not line up).
pub fn aligned<const N: usize>(rows: &[[String; N]]) -> String {
    aligned_painted(rows, |_, _, cell| cell.to_owned())
}

/// [`aligned`], each cell shown as `paint(row, column, cell)` gives it (colour): padding is
/// computed on the plain text, so colour never shifts a column.
fn aligned_painted<const N: usize>(
    rows: &[[String; N]],
    paint: impl Fn(usize, usize, &str) -> String,
) -> String {
    let mut width = [0usize; N];
    for r in rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for (row, r) in rows.iter().enumerate() {
        for (i, cell) in r.iter().enumerate() {
            out.push_str(&paint(row, i, cell));
            if i + 1 < N {
                let pad = width[i] - cell.chars().count();
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push('\n');
    }
    out
}

/// A header and rows, the column `status_col` painted by each row's status.
fn status_table<const N: usize>(
    header: [&str; N],
    rows: impl Iterator<Item = ([String; N], TaskStatus)>,
    status_col: usize,
    colour: bool,
) -> String {
    let (mut cells, statuses): (Vec<[String; N]>, Vec<TaskStatus>) = rows.unzip();
    cells.insert(0, header.map(str::to_owned));
    aligned_painted(&cells, |row, col, cell| match row.checked_sub(1) {
        Some(r) if col == status_col => paint_status(statuses[r], cell, colour),
        _ => cell.to_owned(),
    })
}

/// Tasks as a table: a header line, one line per task, columns aligned with spaces.
pub fn table(tasks: &[TaskResponse], colour: bool) -> String {
    let header = [
        "TASK_ID",
        "TYPE",
        "STATUS",
        "PROGRESS",
        "VERSION",
        "UPDATED_AT",
    ];
    let rows = tasks.iter().map(|t| {
        let cells = [
            t.task_id.to_string(),
            t.task_type.clone(),
            t.status.as_str().to_owned(),
            Progress::of(t)
                .map(|p| p.text())
                .unwrap_or_else(|| "-".into()),
            t.version.to_string(),
            taskward_model::time::format(&t.updated_at),
        ];
        (cells, t.status)
    });
    status_table(header, rows, 2, colour)
}

/// A task's history as a table, oldest first.
pub fn history_table(events: &[TaskEvent], colour: bool) -> String {
    let header = ["EVENT_ID", "AT", "TYPE", "STATUS", "VERSION", "PROGRESS"];
    let rows = events.iter().map(|e| {
        let progress = e.progress.map(|p| {
            let (done, total) = (p.completed + p.failed, p.total);
            format!("{done}/{total} ({:.0}%)", p.percent)
        });
        let cells = [
            e.event_id.to_string(),
            taskward_model::time::format(&e.at),
            e.kind.to_string(),
            e.status.as_str().to_owned(),
            e.version.to_string(),
            progress.unwrap_or_else(|| "-".into()),
        ];
        (cells, e.status)
    });
    status_table(header, rows, 3, colour)
}
