//! CSV bytes split into records and fields, streaming, as the `csv` crate's default reader
//! splits them (comma delimiter; `"` quoting with `""` for a quote; LF, CR and CRLF
//! terminators; blank lines skipped; a field after a closing quote continues literally; a
//! UTF-8 byte order mark at the start is dropped), with
//! the 1-based line each record starts on (LF, CR and CRLF each end one line, as in the file).
//!
//! A record without a quote is split in place in the read buffer (SIMD byte search, no copy);
//! only a record with a quote is copied, unescaped, into a scratch buffer. Memory is the read
//! buffer, which grows only to hold the longest record, and a record longer than
//! [`MAX_LINE_BYTES`] is an error ([`LineTooLong`]) naming its line.
//!
//! It knows nothing of columns or of what the fields mean.

use super::{LineTooLong, MAX_LINE_BYTES};
use std::io::{self, Read};
use std::ops::Range;

/// Bytes read from the source at a time.
const READ_BYTES: usize = 256 * 1024;

/// A streaming splitter of CSV records; see the module docs.
pub struct Records<R> {
    inner: R,
    buf: Vec<u8>,
    /// `buf[pos..end]` is read but not yet split.
    pos: usize,
    end: usize,
    eof: bool,
    /// Bytes dropped from the front of `buf` so far.
    dropped: u64,
    /// The line `buf[pos]` is on.
    cursor_line: u64,
    /// The last byte consumed was a CR (an LF right after it ends no further line).
    after_cr: bool,
    /// The current record: field ranges in `buf`, or in `scratch` when `unescaped`.
    fields: Vec<Range<usize>>,
    scratch: Vec<u8>,
    unescaped: bool,
    /// The line the current record starts on.
    line: u64,
    /// Whether the start of the source was checked for a byte order mark.
    bom_checked: bool,
}

impl<R: Read> Records<R> {
    pub fn new(inner: R) -> Records<R> {
        Records {
            inner,
            buf: vec![0; READ_BYTES],
            pos: 0,
            end: 0,
            eof: false,
            dropped: 0,
            cursor_line: 1,
            after_cr: false,
            fields: Vec::new(),
            scratch: Vec::new(),
            unescaped: false,
            line: 0,
            bom_checked: false,
        }
    }

    /// Fields of the current record.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether the current record has no field (before the first record, or at the end).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The `i`-th field of the current record.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let range = self.fields.get(i)?.clone();
        Some(if self.unescaped { &self.scratch[range] } else { &self.buf[range] })
    }

    /// The fields of the current record.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.fields.len()).filter_map(|i| self.get(i))
    }

    /// The 1-based line the current record starts on.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Bytes of the source split so far.
    pub fn position(&self) -> u64 {
        self.dropped + self.pos as u64
    }

    /// Moves what is not yet split to the front of the buffer (growing it if it is full) and
    /// reads more; false at the end of the source.
    fn fill(&mut self) -> io::Result<bool> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.dropped += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        }
        // What is left is one record not yet complete: past the limit it is an input error,
        // not a reason to grow the buffer without bound.
        if self.end as u64 > MAX_LINE_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                LineTooLong { line: self.line.max(self.cursor_line) },
            ));
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Advances to the next record; false at the end of the source.
    pub fn next_record(&mut self) -> io::Result<bool> {
        self.fields.clear();
        if !self.bom_checked {
            while self.end < 3 && !self.eof {
                self.fill()?;
            }
            if self.buf[..self.end].starts_with(b"\xef\xbb\xbf") {
                self.pos = 3;
            }
            self.bom_checked = true;
        }
        // Blank lines between records.
        loop {
            if self.pos == self.end {
                if self.eof || !self.fill()? {
                    return Ok(false);
                }
                continue;
            }
            match self.buf[self.pos] {
                b'\n' => {
                    if !std::mem::take(&mut self.after_cr) {
                        self.cursor_line += 1;
                    }
                }
                b'\r' => {
                    self.cursor_line += 1;
                    self.after_cr = true;
                }
                _ => break,
            }
            self.pos += 1;
        }
        self.after_cr = false;
        self.line = self.cursor_line;
        loop {
            let rest = &self.buf[self.pos..self.end];
            match memchr::memchr3(b'\n', b'\r', b'"', rest) {
                Some(i) if rest[i] == b'"' => return self.quoted_record(),
                Some(i) => {
                    let terminator = rest[i];
                    self.split_plain(self.pos, self.pos + i);
                    self.pos += i + 1;
                    self.cursor_line += 1;
                    self.after_cr = terminator == b'\r';
                    return Ok(true);
                }
                None if self.eof => {
                    self.split_plain(self.pos, self.end);
                    self.pos = self.end;
                    return Ok(true);
                }
                None => {
                    self.fill()?;
                }
            }
        }
    }

    /// Fields of `buf[start..end]`, a record without quotes or terminators.
    fn split_plain(&mut self, start: usize, end: usize) {
        self.unescaped = false;
        let mut field_start = start;
        for comma in memchr::memchr_iter(b',', &self.buf[start..end]) {
            self.fields.push(field_start..start + comma);
            field_start = start + comma + 1;
        }
        self.fields.push(field_start..end);
    }

    /// A record with a quote somewhere, starting at `pos`: unescaped into `scratch`.
    fn quoted_record(&mut self) -> io::Result<bool> {
        loop {
            if let Some(done) = self.try_quoted() {
                return Ok(done);
            }
            // The record runs past the buffer: read more and split it again from its start.
            self.fill()?;
        }
    }

    /// Splits the quoted record at `pos` if it ends within the buffer (or the source ends);
    /// None if more bytes are needed.
    fn try_quoted(&mut self) -> Option<bool> {
        #[derive(Clone, Copy, PartialEq)]
        enum State {
            StartField,
            InField,
            InQuoted,
            /// Just after a quote inside a quoted field: a second quote is a literal quote.
            AfterQuote,
        }
        self.fields.clear();
        self.scratch.clear();
        self.unescaped = true;
        let mut state = State::StartField;
        let mut field_start = 0;
        let mut lines = 0;
        let mut prev_cr = false;
        let mut i = self.pos;
        while i < self.end {
            let byte = self.buf[i];
            let terminator = byte == b'\n' || byte == b'\r';
            if state == State::InQuoted || !terminator {
                // Line ends inside quoted values count as lines of the file.
                if byte == b'\r' || (byte == b'\n' && !prev_cr) {
                    lines += 1;
                }
                prev_cr = byte == b'\r';
            }
            match (state, byte) {
                (State::InQuoted, b'"') => state = State::AfterQuote,
                (State::InQuoted, _) => self.scratch.push(byte),
                (State::AfterQuote, b'"') => {
                    self.scratch.push(b'"');
                    state = State::InQuoted;
                }
                (State::StartField, b'"') => state = State::InQuoted,
                (_, b',') => {
                    self.fields.push(field_start..self.scratch.len());
                    field_start = self.scratch.len();
                    state = State::StartField;
                }
                (_, b'\n' | b'\r') => {
                    self.fields.push(field_start..self.scratch.len());
                    self.pos = i + 1;
                    self.cursor_line += lines + 1;
                    self.after_cr = byte == b'\r';
                    return Some(true);
                }
                _ => {
                    self.scratch.push(byte);
                    state = State::InField;
                }
            }
            i += 1;
        }
        if !self.eof {
            return None;
        }
        self.fields.push(field_start..self.scratch.len());
        self.pos = self.end;
        self.cursor_line += lines;
        self.after_cr = prev_cr;
        Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (line, fields) of every record, by this splitter.
    fn split(bytes: &[u8], read_size: usize) -> Vec<(u64, Vec<Vec<u8>>)> {
        struct Trickle<'a>(&'a [u8], usize);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(self.1);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut records = Records::new(Trickle(bytes, read_size));
        let mut out = Vec::new();
        while records.next_record().expect("in-memory read") {
            out.push((records.line(), records.iter().map(<[u8]>::to_vec).collect()));
        }
        out
    }

    /// The same by the `csv` crate, lines by counting LF, CR and CRLF before each record's
    /// first byte (the independent reference).
    fn reference(bytes: &[u8]) -> Vec<(u64, Vec<Vec<u8>>)> {
        let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(bytes);
        let mut record = csv::ByteRecord::new();
        let mut out = Vec::new();
        while reader.read_byte_record(&mut record).expect("in-memory read") {
            // csv's position is where scanning began: skip the blank line ends from there.
            let mut at = record.position().map_or(0, |p| p.byte()) as usize;
            while at < bytes.len() && (bytes[at] == b'\n' || bytes[at] == b'\r') {
                at += 1;
            }
            let mut line = 1;
            let mut k = 0;
            while k < at {
                if bytes[k] == b'\r' || (bytes[k] == b'\n' && (k == 0 || bytes[k - 1] != b'\r')) {
                    line += 1;
                }
                k += 1;
            }
            out.push((line, record.iter().map(<[u8]>::to_vec).collect()));
        }
        out
    }

    #[test]
    fn a_byte_order_mark_is_dropped() {
        let text = b"\xef\xbb\xbfid,x\n1,2\n";
        assert_eq!(split(text, 1), reference(text));
        assert_eq!(split(text, 2)[0], (1, vec![b"id".to_vec(), b"x".to_vec()]));
    }

    #[test]
    fn quotes_terminators_and_blank_lines() {
        let text = b"a,b\r\n\r\n\"x,\"\"y\"\"\",2\n\"multi\nline\",z\rlast,\"q\"tail,\"\"";
        let got = split(text, 3);
        assert_eq!(got, reference(text));
        assert_eq!(got[1], (3, vec![b"x,\"y\"".to_vec(), b"2".to_vec()]));
        assert_eq!(got[2].0, 4);
        assert_eq!(got[3], (6, vec![b"last".to_vec(), b"qtail".to_vec(), b"".to_vec()]));
    }

    fn csv_bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                4 => Just(b'a'),
                2 => Just(b','),
                1 => Just(b'"'),
                1 => Just(b'\n'),
                1 => Just(b'\r'),
                1 => Just(b' '),
                1 => Just(b'7'),
            ],
            0..300,
        )
    }

    proptest! {
        #[test]
        fn splits_as_the_csv_crate_does(bytes in csv_bytes(), read_size in 1usize..64) {
            prop_assert_eq!(split(&bytes, read_size), reference(&bytes));
        }
    }
}
