//! Rendering results: `--output json` prints one JSON document on stdout; `table` prints
//! aligned columns for lists and `key: value` lines for single records.

use std::io::Write;

use serde::Serialize;

use crate::args::OutputFormat;

/// Writes to standard output. A reader that went away (`livchat ... | head`) ends the process
/// quietly with exit 0, as ripgrep does, instead of a panic; any other write error is exit 1.
pub fn write_stdout(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: could not write to standard output: {e}");
        std::process::exit(1);
    }
}

/// `print!` through [`write_stdout`].
macro_rules! stdout {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format!($($arg)*).as_bytes())
    };
}

/// `println!` through [`write_stdout`].
macro_rules! stdoutln {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format!("{}\n", format_args!($($arg)*)).as_bytes())
    };
}

pub(crate) use {stdout, stdoutln};

/// A value's name as `--output json` spells it (`setting_up`), for tables.
pub fn words<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "-".into(),
    }
}

/// Prints a JSON value, or a table built from rows.
pub fn print<T: Serialize>(format: OutputFormat, value: &T, table: impl FnOnce() -> Table) {
    match format {
        OutputFormat::Json => {
            stdoutln!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into())
            )
        }
        OutputFormat::Table => stdout!("{}", table().render()),
    }
}

/// Columns of text.
#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// A two-column key/value listing.
    pub fn pairs(pairs: Vec<(&str, String)>) -> Self {
        let mut t = Table::default();
        for (k, v) in pairs {
            t.rows.push(vec![format!("{k}:"), v]);
        }
        t
    }

    pub fn render(&self) -> String {
        let cols = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.headers.len()])
            .max()
            .unwrap_or(0);
        let mut widths = vec![0; cols];
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            for (i, c) in row.iter().enumerate() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |row: &Vec<String>| {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if i + 1 == row.len() {
                        c.clone()
                    } else {
                        format!("{c:<w$}", w = widths[i])
                    }
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        };
        if !self.headers.is_empty() {
            line(&self.headers);
        }
        for row in &self.rows {
            line(row);
        }
        out
    }
}
