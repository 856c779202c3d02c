//! Bounded handling of a remote command's output: the captured stdout/stderr, the lines handed
//! to a callback, and the wrapper's pid line. A command (or a hostile server) can print without
//! end; memory must not follow it.
//!
//! - [`Capture`] keeps the first and the last half of [`MAX_CAPTURE`] bytes and puts a marker
//!   between them that says how many bytes were cut (the start shows what the command did,
//!   the end why it failed).
//! - [`LineSplitter`] cuts a line longer than [`MAX_LINE`] there, marks it, and skips the rest
//!   of that line.
//! - [`PidLine`] gives up on a first stderr line longer than a pid line can be.

use std::collections::VecDeque;

use crate::executor::{LineSink, OutputLine, OutputStream};

/// The most of one stream a command result keeps (half from the start, half from the end).
pub const MAX_CAPTURE: usize = 16 << 20;

/// The longest line handed to a line callback.
pub const MAX_LINE: usize = 64 << 10;

/// What [`Capture`] puts where it cut; `{}` is the number of bytes left out.
pub fn cut_marker(dropped: u64) -> String {
    format!("\n[livchat: {dropped} bytes of output cut here]\n")
}

/// One output stream, kept up to a limit.
#[derive(Debug)]
pub struct Capture {
    limit: usize,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    dropped: u64,
}

impl Capture {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            head: Vec::new(),
            tail: VecDeque::new(),
            dropped: 0,
        }
    }

    pub fn push(&mut self, mut data: &[u8]) {
        let head_room = (self.limit / 2).saturating_sub(self.head.len());
        if head_room > 0 {
            let n = head_room.min(data.len());
            self.head.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        let tail_limit = self.limit - self.limit / 2;
        if data.len() >= tail_limit {
            self.dropped += (self.tail.len() + data.len() - tail_limit) as u64;
            self.tail.clear();
            self.tail.extend(&data[data.len() - tail_limit..]);
            return;
        }
        let overflow = (self.tail.len() + data.len()).saturating_sub(tail_limit);
        self.tail.drain(..overflow);
        self.dropped += overflow as u64;
        self.tail.extend(data);
    }

    /// The kept bytes, with the marker where bytes were cut.
    pub fn finish(self) -> Vec<u8> {
        let mut out = self.head;
        if self.dropped > 0 {
            out.extend_from_slice(cut_marker(self.dropped).as_bytes());
        }
        out.extend(self.tail);
        out
    }
}

/// Splits a stream into lines for the callback; a final line without `\n` is flushed at the end.
pub struct LineSplitter {
    stream: OutputStream,
    pending: Vec<u8>,
    /// The current line was cut at [`MAX_LINE`]: drop bytes until its end.
    skipping: bool,
}

impl LineSplitter {
    pub fn new(stream: OutputStream) -> Self {
        Self {
            stream,
            pending: Vec::new(),
            skipping: false,
        }
    }

    pub fn push(&mut self, mut data: &[u8], sink: &LineSink) {
        while !data.is_empty() {
            let nl = data.iter().position(|&b| b == b'\n');
            if self.skipping {
                match nl {
                    Some(pos) => {
                        self.skipping = false;
                        data = &data[pos + 1..];
                    }
                    None => return,
                }
                continue;
            }
            let end = nl.unwrap_or(data.len());
            let room = MAX_LINE - self.pending.len();
            if end > room {
                self.pending.extend_from_slice(&data[..room]);
                let mut line = std::mem::take(&mut self.pending);
                line.extend_from_slice(b" [livchat: line cut]");
                self.emit(&line, sink);
                self.skipping = true;
                data = &data[room..];
                continue;
            }
            self.pending.extend_from_slice(&data[..end]);
            match nl {
                Some(pos) => {
                    let line = std::mem::take(&mut self.pending);
                    self.emit(&line, sink);
                    data = &data[pos + 1..];
                }
                None => return,
            }
        }
    }

    pub fn finish(&mut self, sink: &LineSink) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line, sink);
        }
    }

    fn emit(&self, line: &[u8], sink: &LineSink) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        sink(OutputLine {
            stream: self.stream,
            line: String::from_utf8_lossy(line).into_owned(),
        });
    }
}

/// The first stderr line of a command: the wrapper's `LIVCHAT_PID=<pid>`.
pub const PID_MARKER: &[u8] = b"LIVCHAT_PID=";

/// Takes the wrapper's pid line off the front of stderr.
#[derive(Default)]
pub struct PidLine {
    buf: Vec<u8>,
    pub pid: Option<u32>,
    pub done: bool,
}

impl PidLine {
    /// Feeds stderr bytes; returns what belongs to the command's own stderr.
    pub fn feed(&mut self, data: &[u8]) -> Vec<u8> {
        if self.done {
            return data.to_vec();
        }
        self.buf.extend_from_slice(data);
        let Some(nl) = self.buf.iter().position(|&b| b == b'\n') else {
            // A pid has at most 10 digits: anything longer is not the wrapper's line.
            let too_long = self.buf.len() > PID_MARKER.len() + 10;
            if too_long
                || !PID_MARKER.starts_with(&self.buf[..self.buf.len().min(PID_MARKER.len())])
            {
                self.done = true;
                return std::mem::take(&mut self.buf);
            }
            return Vec::new();
        };
        self.done = true;
        let rest = self.buf.split_off(nl + 1);
        let line = std::mem::take(&mut self.buf);
        match line[..nl]
            .strip_prefix(PID_MARKER)
            .and_then(|p| std::str::from_utf8(p).ok()?.parse().ok())
        {
            Some(pid) => {
                self.pid = Some(pid);
                rest
            }
            None => [line, rest].concat(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn capture_keeps_everything_under_the_limit() {
        let mut c = Capture::new(100);
        for _ in 0..10 {
            c.push(b"0123456789");
        }
        assert_eq!(c.finish(), b"0123456789".repeat(10));
    }

    #[test]
    fn capture_keeps_head_and_tail_and_counts_what_it_cut() {
        let mut c = Capture::new(10);
        let data: Vec<u8> = (0u8..100).collect();
        for piece in data.chunks(7) {
            c.push(piece);
        }
        let mut want: Vec<u8> = (0u8..5).collect();
        want.extend_from_slice(cut_marker(90).as_bytes());
        want.extend(95u8..100);
        assert_eq!(c.finish(), want);
        // One push larger than the whole limit.
        let mut c = Capture::new(10);
        c.push(&data);
        let mut want: Vec<u8> = (0u8..5).collect();
        want.extend_from_slice(cut_marker(90).as_bytes());
        want.extend(95u8..100);
        assert_eq!(c.finish(), want);
    }

    fn collect() -> (Arc<Mutex<Vec<String>>>, LineSink) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        let sink: LineSink = Arc::new(move |o: OutputLine| l.lock().unwrap().push(o.line));
        (lines, sink)
    }

    #[test]
    fn a_line_longer_than_the_limit_is_cut_marked_and_the_next_line_is_whole() {
        let (lines, sink) = collect();
        let mut s = LineSplitter::new(OutputStream::Stdout);
        s.push(b"short\n", &sink);
        let long = vec![b'x'; MAX_LINE * 3 + 5];
        for piece in long.chunks(1000) {
            s.push(piece, &sink);
        }
        s.push(b"\nnext\r\nlast", &sink);
        s.finish(&sink);
        let lines = lines.lock().unwrap();
        assert_eq!(
            lines.len(),
            4,
            "{:?}",
            lines.iter().map(String::len).collect::<Vec<_>>()
        );
        assert_eq!(lines[0], "short");
        assert_eq!(lines[1].len(), MAX_LINE + " [livchat: line cut]".len());
        assert!(lines[1].ends_with(" [livchat: line cut]"));
        assert_eq!(lines[2], "next");
        assert_eq!(lines[3], "last");
    }

    #[test]
    fn a_pid_line_without_end_is_given_up_as_output() {
        let mut p = PidLine::default();
        assert!(p.feed(b"LIVCHAT_PID=").is_empty());
        let out = p.feed(&[b'9'; 100]);
        assert!(p.done && p.pid.is_none());
        assert_eq!(out.len(), PID_MARKER.len() + 100);
        let mut p = PidLine::default();
        assert_eq!(p.feed(b"LIVCHAT_PID=42\nerr"), b"err");
        assert_eq!(p.pid, Some(42));
    }
}
