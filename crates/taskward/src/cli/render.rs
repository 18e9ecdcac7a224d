//! How the client commands show tasks: colour decisions, progress read from
//! `additional_data`, the readable task view and the list table.
//!
//! Colour only goes to a terminal and never when `NO_COLOR` is set (no-color.org); piped
//! output is plain text whose layout does not depend on the terminal.

use std::io::IsTerminal;
use std::time::Duration;

use serde_json::{Map, Value};
use taskward_client::{TaskResponse, TaskStatus};

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

/// Progress a worker reported in `additional_data`, in one of the shapes producers use:
/// `progress: {done, total}` (or `current`), `progress: {percent}`, `progress: 0.0..=1.0`
/// (a fraction), `progress: 1..=100` (a percentage), or `percent: 0..=100`. An optional
/// `progress.message` or `stage` string says what is happening.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// 0.0 to 1.0, when known.
    pub fraction: Option<f64>,
    /// Units done and in all, when reported that way.
    pub counts: Option<(f64, f64)>,
    pub message: Option<String>,
}

impl Progress {
    /// The progress in `data`, if it reports any.
    pub fn of(data: Option<&Map<String, Value>>) -> Option<Progress> {
        let data = data?;
        let mut p = Progress::default();
        match data.get("progress") {
            Some(Value::Number(n)) => {
                let x = n.as_f64()?;
                p.fraction = Some(if x <= 1.0 { x } else { x / 100.0 });
            }
            Some(Value::Object(o)) => {
                let num = |k: &str| o.get(k).and_then(Value::as_f64);
                if let (Some(done), Some(total)) = (num("done").or(num("current")), num("total")) {
                    p.counts = Some((done, total));
                    if total > 0.0 {
                        p.fraction = Some(done / total);
                    }
                } else if let Some(pct) = num("percent").or(num("percentage")) {
                    p.fraction = Some(pct / 100.0);
                }
                p.message = o.get("message").and_then(Value::as_str).map(str::to_owned);
            }
            _ => {}
        }
        if p.fraction.is_none() {
            if let Some(pct) = data
                .get("percent")
                .or(data.get("percentage"))
                .and_then(Value::as_f64)
            {
                p.fraction = Some(pct / 100.0);
            }
        }
        if p.message.is_none() {
            p.message = data.get("stage").and_then(Value::as_str).map(str::to_owned);
        }
        p.fraction = p
            .fraction
            .filter(|f| f.is_finite())
            .map(|f| f.clamp(0.0, 1.0));
        (p.fraction.is_some() || p.message.is_some()).then_some(p)
    }

    /// `50/100 (50%)`, `42%`, plus the message.
    pub fn text(&self) -> String {
        let mut parts = Vec::new();
        match (self.counts, self.fraction) {
            (Some((done, total)), Some(f)) => {
                parts.push(format!("{}/{} ({:.0}%)", num(done), num(total), f * 100.0))
            }
            (Some((done, total)), None) => parts.push(format!("{}/{}", num(done), num(total))),
            (None, Some(f)) => parts.push(format!("{:.0}%", f * 100.0)),
            (None, None) => {}
        }
        if let Some(m) = &self.message {
            parts.push(m.clone());
        }
        parts.join(" ")
    }
}

/// A count without a needless `.0`.
fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
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
    let progress = Progress::of(t.additional_data.as_ref())
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
    let mut width = [0usize; N];
    for r in rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < N {
                let pad = width[i] - cell.chars().count();
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push('\n');
    }
    out
}

/// Tasks as a table: a header line, one line per task, columns aligned with spaces (padding
/// is computed on the plain text, so colour never shifts a column).
pub fn table(tasks: &[TaskResponse], colour: bool) -> String {
    let header = [
        "TASK_ID",
        "TYPE",
        "STATUS",
        "PROGRESS",
        "VERSION",
        "UPDATED_AT",
    ];
    let rows: Vec<[String; 6]> = tasks
        .iter()
        .map(|t| {
            [
                t.task_id.to_string(),
                t.task_type.clone(),
                t.status.as_str().to_owned(),
                Progress::of(t.additional_data.as_ref())
                    .map(|p| p.text())
                    .unwrap_or_else(|| "-".into()),
                t.version.to_string(),
                taskward_model::time::format(&t.updated_at),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for r in &rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [String; 6], status: Option<TaskStatus>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = width[i].saturating_sub(cell.chars().count());
            let shown = match (i, status) {
                (2, Some(s)) => paint_status(s, cell, colour),
                _ => cell.clone(),
            };
            out.push_str(&shown);
            if i + 1 < cells.len() {
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(header.map(str::to_owned), None);
    for (r, t) in rows.into_iter().zip(tasks) {
        out.push_str(&line(r, Some(t.status)));
    }
    out
}
