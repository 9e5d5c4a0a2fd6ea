//! A small reader and writer for etcd-style data-driven test files:
//!
//! ```text
//! # comment
//! command arg key=value key=(1,2,3)
//! ----
//! expected output (no blank lines)
//!
//! ```
//!
//! With `REWRITE=1` the expected outputs are regenerated from the actual ones.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One parsed command.
#[derive(Debug, Clone)]
pub struct Command {
    pub name: String,
    /// Positional arguments.
    pub args: Vec<String>,
    /// `key=value` arguments; `key=(a,b)` is stored as "a,b".
    pub keys: BTreeMap<String, String>,
}

impl Command {
    pub fn ids(&self) -> Vec<u64> {
        self.args.iter().filter_map(|a| a.parse().ok()).collect()
    }

    pub fn key_list(&self, key: &str) -> Vec<u64> {
        self.keys
            .get(key)
            .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    pub fn key_u64(&self, key: &str) -> Option<u64> {
        self.keys.get(key).and_then(|v| v.parse().ok())
    }
}

struct Case {
    /// Comment and blank lines before the command, kept verbatim.
    preamble: Vec<String>,
    command_line: String,
    expected: Vec<String>,
    line: usize,
}

fn parse_command(line: &str) -> Command {
    let mut parts = line.split_whitespace();
    let name = parts.next().unwrap_or_default().to_string();
    let mut args = Vec::new();
    let mut keys = BTreeMap::new();
    for part in parts {
        match part.split_once('=') {
            Some((k, v)) => {
                let v = v.trim_start_matches('(').trim_end_matches(')');
                keys.insert(k.to_string(), v.to_string());
            }
            None => args.push(part.to_string()),
        }
    }
    Command { name, args, keys }
}

fn parse(text: &str) -> (Vec<Case>, Vec<String>) {
    let lines: Vec<&str> = text.lines().collect();
    let mut cases = Vec::new();
    let mut preamble = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim().is_empty() || line.starts_with('#') {
            preamble.push(line.to_string());
            i += 1;
            continue;
        }
        let command_line = line.to_string();
        let start = i + 1;
        i += 1;
        assert!(
            i < lines.len() && lines[i] == "----",
            "line {start}: expected ---- after the command"
        );
        i += 1;
        let mut expected = Vec::new();
        while i < lines.len() && !lines[i].is_empty() {
            expected.push(lines[i].to_string());
            i += 1;
        }
        cases.push(Case {
            preamble: std::mem::take(&mut preamble),
            command_line,
            expected,
            line: start,
        });
    }
    (cases, preamble)
}

/// Runs every command of `path` through `run` and compares (or rewrites) the outputs.
pub fn run_file(path: &std::path::Path, mut run: impl FnMut(&Command) -> String) {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let (cases, trailer) = parse(&text);
    let rewrite = std::env::var("REWRITE").is_ok();
    let mut rewritten = String::new();
    let mut failures = Vec::new();
    for case in &cases {
        let command = parse_command(&case.command_line);
        let output = run(&command);
        let actual: Vec<String> = output
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        for p in case.preamble.iter().filter(|p| !p.trim().is_empty()) {
            let _ = writeln!(rewritten, "{p}");
        }
        let _ = writeln!(rewritten, "{}\n----", case.command_line);
        for l in &actual {
            let _ = writeln!(rewritten, "{l}");
        }
        let _ = writeln!(rewritten);
        if actual != case.expected {
            failures.push(format!(
                "{}:{}: {}\n--- expected\n{}\n--- actual\n{}",
                path.display(),
                case.line,
                case.command_line,
                case.expected.join("\n"),
                actual.join("\n")
            ));
        }
    }
    for p in &trailer {
        if !p.trim().is_empty() {
            let _ = writeln!(rewritten, "{p}");
        }
    }
    if rewrite {
        let trimmed = rewritten.trim_end().to_string() + "\n";
        std::fs::write(path, trimmed)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    assert!(
        failures.is_empty(),
        "{} case(s) differ (run with REWRITE=1 to accept):\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
