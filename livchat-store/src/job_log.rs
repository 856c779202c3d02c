//! Job logs: one JSON-lines file per job at `<home>/jobs/<id>.jsonl` (append-only, 0600), so a
//! long job's log never rewrites `state.json`, and another process (`livchat job logs --follow`)
//! can read it while it grows.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// Severity of a job log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// One line of a job's log. Messages are redacted by the writer before they get here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub timestamp: DateTime<Utc>,
    pub level: LogLevel,
    pub message: String,
}

/// Where job logs live.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait JobLogStore: Send + Sync {
    /// Appends one line to the job's log.
    fn append(&self, job_id: &str, line: &LogLine) -> Result<(), StoreError>;
    /// Reads the lines from index `from` on (0 for the whole log).
    fn read(&self, job_id: &str, from: usize) -> Result<Vec<LogLine>, StoreError>;
    /// Removes the job's log (cleanup).
    fn remove(&self, job_id: &str) -> Result<(), StoreError>;
}

use crate::job_files::check_job_id as check_id;

/// `<home>/jobs/<id>.jsonl`.
#[derive(Debug)]
pub struct FileJobLogs {
    dir: PathBuf,
}

impl FileJobLogs {
    pub fn new(home: impl Into<PathBuf>) -> Self {
        Self {
            dir: home.into().join("jobs"),
        }
    }

    fn path(&self, job_id: &str) -> Result<PathBuf, StoreError> {
        check_id(job_id)?;
        Ok(self.dir.join(format!("{job_id}.jsonl")))
    }
}

impl JobLogStore for FileJobLogs {
    fn append(&self, job_id: &str, line: &LogLine) -> Result<(), StoreError> {
        let path = self.path(job_id)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| StoreError::io(&self.dir, "create the jobs directory", e))?;
        let mut text = serde_json::to_string(line)
            .map_err(|e| StoreError::invalid("log line", e.to_string()))?;
        text.push('\n');
        // One write of a whole line with O_APPEND, so concurrent readers never see half a line
        // from us and concurrent appenders do not interleave within a line.
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| StoreError::io(&path, "open the job log", e))?;
        file.write_all(text.as_bytes())
            .map_err(|e| StoreError::io(&path, "append to the job log", e))
    }

    fn read(&self, job_id: &str, from: usize) -> Result<Vec<LogLine>, StoreError> {
        let path = self.path(job_id)?;
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io(&path, "open the job log", e)),
        };
        let mut lines = Vec::new();
        for (i, text) in BufReader::new(file).lines().enumerate() {
            let text = text.map_err(|e| StoreError::io(&path, "read the job log", e))?;
            if i < from {
                continue;
            }
            // A line still being written by another process is not complete yet: stop there.
            match serde_json::from_str(&text) {
                Ok(line) => lines.push(line),
                Err(_) => break,
            }
        }
        Ok(lines)
    }

    fn remove(&self, job_id: &str) -> Result<(), StoreError> {
        let path = self.path(job_id)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(&path, "remove the job log", e)),
        }
    }
}

/// Job logs in memory (tests).
#[derive(Debug, Default)]
pub struct MemoryJobLogs {
    logs: Mutex<std::collections::BTreeMap<String, Vec<LogLine>>>,
}

impl JobLogStore for MemoryJobLogs {
    fn append(&self, job_id: &str, line: &LogLine) -> Result<(), StoreError> {
        check_id(job_id)?;
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        logs.entry(job_id.to_string())
            .or_default()
            .push(line.clone());
        Ok(())
    }
    fn read(&self, job_id: &str, from: usize) -> Result<Vec<LogLine>, StoreError> {
        check_id(job_id)?;
        let logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        Ok(logs
            .get(job_id)
            .map(|l| l.iter().skip(from).cloned().collect())
            .unwrap_or_default())
    }
    fn remove(&self, job_id: &str) -> Result<(), StoreError> {
        check_id(job_id)?;
        self.logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(job_id);
        Ok(())
    }
}
