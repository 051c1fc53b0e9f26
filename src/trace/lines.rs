//! Line bounds and line numbers shared by every trace reader: the longest line accepted
//! ([`MAX_LINE_BYTES`], refused as [`LineTooLong`]), the conversion of read errors into
//! [`TraceError`]s naming the line, and [`LineIndex`], the pass-through reader that tells the
//! importers which line a csv record started on.
//!
//! It knows nothing of columns, formats or what the fields mean.

use super::TraceError;
use std::collections::VecDeque;
use std::io::Read;

/// A pass-through reader that remembers where each non-blank line starts, so that a record
/// gets the line of its first byte even after blank lines or multi-line quoted fields. It keeps
/// only the lines csv has buffered but not yet returned, so memory stays bounded.
pub(crate) struct LineIndex<R> {
    inner: R,
    /// Bytes read so far.
    offset: u64,
    /// Newlines read so far.
    newlines: u64,
    at_line_start: bool,
    /// The last byte read was a CR (an LF right after it ends no further line).
    after_cr: bool,
    /// (byte offset, 1-based line) of the first byte of each non-blank line not yet passed.
    starts: VecDeque<(u64, u64)>,
    /// Bytes of the current line read so far (bounded by [`MAX_LINE_BYTES`]).
    line_bytes: u64,
}

/// Longest line a trace or import reader accepts, in bytes (1 MiB): a longer line (a runaway
/// quoted field, a file that is not line-oriented) is an input error naming its line, so no
/// line can make a reader buffer without bound.
pub const MAX_LINE_BYTES: u64 = 1 << 20;

/// The I/O error a [`LineIndex`] returns for a line longer than [`MAX_LINE_BYTES`]; turned into
/// a [`TraceError::Row`] naming the line by [`read_error`].
#[derive(Debug, thiserror::Error)]
#[error("line longer than the maximum of {MAX_LINE_BYTES} bytes (1 MiB)")]
pub(crate) struct LineTooLong {
    pub line: u64,
}

/// A read error of a trace or import reader as a [`TraceError`]: an over-long line names its
/// line; other errors are I/O errors of `file`.
pub(crate) fn read_error(file: &str, source: std::io::Error) -> TraceError {
    if let Some(too_long) = source.get_ref().and_then(|e| e.downcast_ref::<LineTooLong>()) {
        return TraceError::Row {
            file: file.to_string(),
            line: too_long.line,
            field: None,
            message: too_long.to_string(),
        };
    }
    TraceError::Io { file: file.to_string(), action: "cannot read", source }
}

impl<R> LineIndex<R> {
    pub(crate) fn new(inner: R) -> Self {
        LineIndex {
            inner,
            offset: 0,
            newlines: 0,
            at_line_start: true,
            after_cr: false,
            starts: VecDeque::new(),
            line_bytes: 0,
        }
    }

    /// The line of the first non-blank line starting at or after `byte`; forgets earlier lines.
    pub(crate) fn line_at(&mut self, byte: u64) -> Option<u64> {
        while self.starts.front().is_some_and(|&(start, _)| start < byte) {
            self.starts.pop_front();
        }
        self.starts.front().map(|&(_, line)| line)
    }
}

impl<R: Read> Read for LineIndex<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let bytes = &buf[..n];
        // A line ends at LF, CR or CRLF (as csv reads it): CR-only files (old spreadsheets)
        // get the same line numbers as LF and CRLF ones.
        let mut i = 0;
        while i < n {
            let byte = bytes[i];
            if std::mem::take(&mut self.after_cr) && byte == b'\n' {
                i += 1; // the LF of a CRLF: the line was already counted at its CR
                continue;
            }
            if byte == b'\n' || byte == b'\r' {
                self.newlines += 1;
                self.line_bytes = 0;
                self.at_line_start = true;
                self.after_cr = byte == b'\r';
                i += 1;
                continue;
            }
            if self.at_line_start {
                self.starts.push_back((self.offset + i as u64, self.newlines + 1));
                self.at_line_start = false;
            }
            let run = bytes[i..].iter().position(|&b| b == b'\n' || b == b'\r').unwrap_or(n - i);
            self.line_bytes += run as u64;
            if self.line_bytes > MAX_LINE_BYTES {
                let line = self.newlines + 1;
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, LineTooLong { line }));
            }
            i += run;
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// A csv reading error as a [`TraceError`] (see [`read_error`]).
pub(crate) fn csv_error(file: &str, error: csv::Error, action: &'static str) -> TraceError {
    if let csv::ErrorKind::Io(io) = error.kind() {
        if let Some(too_long) = io.get_ref().and_then(|e| e.downcast_ref::<LineTooLong>()) {
            return TraceError::Row {
                file: file.to_string(),
                line: too_long.line,
                field: None,
                message: too_long.to_string(),
            };
        }
    }
    TraceError::Io { file: file.to_string(), action, source: error.into() }
}
