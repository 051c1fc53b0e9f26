//! An incremental server-sent-events parser: bytes in as they arrive, whole events out
//! (`event:` name and joined `data:` lines), with LF, CRLF or CR line ends and a bound on an
//! event's size, so a malformed or endless stream is an error, never unbounded memory.
//!
//! It must not know any protocol's events.

/// Largest event accepted (bytes until its blank line).
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// One event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined by `\n`.
    pub data: String,
}

/// Why a stream is not valid SSE.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("an event is larger than {MAX_EVENT_BYTES} bytes")]
    TooLarge,
    #[error("the stream is not UTF-8 text")]
    NotUtf8,
}

/// The parser's state between chunks.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the current, unfinished line.
    line: Vec<u8>,
    /// A CR ended the last line: an LF right after it belongs to it.
    after_cr: bool,
    event: SseEvent,
    has_data: bool,
    /// Bytes of the event so far.
    event_bytes: usize,
}

impl SseParser {
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// Feeds `bytes`; appends the events they complete to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    self.end_line(out)?;
                }
                _ => {
                    self.line.push(b);
                    self.event_bytes += 1;
                    if self.event_bytes > MAX_EVENT_BYTES {
                        return Err(SseError::TooLarge);
                    }
                }
            }
        }
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if self.has_data || self.event.event.is_some() {
                out.push(std::mem::take(&mut self.event));
            }
            self.has_data = false;
            self.event_bytes = 0;
            return Ok(());
        }
        let line = String::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
        if line.starts_with(':') {
            return Ok(()); // a comment (keep-alive)
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        match field {
            "event" => self.event.event = Some(value.to_string()),
            "data" => {
                if self.has_data {
                    self.event.data.push('\n');
                }
                self.event.data.push_str(value);
                self.has_data = true;
            }
            _ => {} // id, retry and unknown fields are ignored, as the spec says
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(text: &str, piece: usize) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for chunk in text.as_bytes().chunks(piece) {
            parser.push(chunk, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn events_come_out_whole_whatever_the_chunking_and_line_ends() {
        let text = "event: a\ndata: {\"x\":1}\n\n: keep-alive\n\nevent: b\r\ndata: one\r\ndata: two\r\n\r\ndata: [DONE]\r\r";
        let expected = vec![
            SseEvent { event: Some("a".into()), data: "{\"x\":1}".into() },
            SseEvent { event: Some("b".into()), data: "one\ntwo".into() },
            SseEvent { event: None, data: "[DONE]".into() },
        ];
        for piece in [1, 2, 3, 7, text.len()] {
            assert_eq!(parse_in_pieces(text, piece), expected, "pieces of {piece}");
        }
    }

    #[test]
    fn an_endless_line_is_an_error_not_a_growing_buffer() {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        let big = vec![b'x'; MAX_EVENT_BYTES + 1];
        assert_eq!(parser.push(&big, &mut out), Err(SseError::TooLarge));
        let mut parser = SseParser::new();
        assert_eq!(parser.push(b"data: \xff\n", &mut out), Err(SseError::NotUtf8));
    }
}
