//! Keeps ARCHITECTURE.md's code map true: every path it names exists, and every type it names
//! (a `CamelCase` word in backticks) is defined where its row says, so a rename or a move that
//! forgets the map fails here instead of misleading the next reader.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The backticked words of a markdown table cell.
fn ticked(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    if dir.is_file() {
        out.push(dir.to_path_buf());
        return;
    }
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn defines(sources: &[String], name: &str) -> bool {
    let kinds = ["struct", "enum", "trait", "type"];
    sources.iter().any(|src| {
        src.lines().any(|line| {
            let words: Vec<&str> = line
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty())
                .collect();
            words
                .windows(2)
                .any(|w| kinds.contains(&w[0]) && w[1] == name)
        })
    })
}

#[test]
fn every_path_and_type_in_the_code_map_exists() {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let map = doc
        .split("## Code map")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a code map section");
    let mut rows = 0;
    let mut missing = Vec::new();
    for line in map.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').collect();
        let (path_cell, what) = (cells[1], cells[2]);
        let path = root().join(ticked(path_cell)[0]);
        rows += 1;
        if !path.exists() {
            missing.push(format!("path {}", ticked(path_cell)[0]));
            continue;
        }
        let mut files = Vec::new();
        rust_files(&path, &mut files);
        let sources: Vec<String> = files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .collect();
        for word in ticked(what) {
            if word.ends_with(".rs") || word.ends_with(".sql") {
                let found = [path.join(word), path.join("src").join(word)]
                    .iter()
                    .any(|p| p.exists());
                if !found {
                    missing.push(format!("file {word} under {}", ticked(path_cell)[0]));
                }
            } else if word.starts_with(|c: char| c.is_ascii_uppercase())
                && word.chars().all(|c| c.is_ascii_alphanumeric())
                && word.chars().any(|c| c.is_ascii_lowercase())
                && !defines(&sources, word)
            {
                missing.push(format!("type {word} in {}", ticked(path_cell)[0]));
            }
        }
    }
    assert!(rows > 10, "the code map has rows");
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names what does not exist: {missing:#?}"
    );
}
