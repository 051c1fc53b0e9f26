//! One pass over a trace feeding several consumers in step: the rows of a [`RequestStream`]
//! are parsed once, in chunks of [`CHUNK_ROWS`], and every chunk is shared (reference-counted,
//! never copied) by all consumers, each of which sees the whole trace as its own stream.
//!
//! Memory stays bounded: each consumer's queue holds at most [`QUEUE_CHUNKS`] chunks, so the
//! reader waits for the slowest consumer and never runs more than a few chunks ahead of it.
//! A consumer that stops early (an error of its own) is dropped from the pass; the others go
//! on. A read error ends every consumer's stream with that error after the rows before it,
//! exactly where a stream of its own would have ended.
//!
//! It knows nothing of what consumers do with the rows (the engine, statistics).

use super::import::ImportReport;
use super::source::RequestStream;
use super::{ClassTable, Request, TraceError};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

/// Rows per shared chunk.
pub const CHUNK_ROWS: usize = 4096;
/// Chunks a consumer may have queued before the reader waits for it.
pub const QUEUE_CHUNKS: usize = 4;

enum Message {
    Rows(Arc<[Request]>),
    Error(TraceError),
}

/// The reading side of a shared pass: call [`Feeder::run`] (on its own thread, or on the
/// calling thread while the consumers run on others).
pub struct Feeder {
    stream: Box<dyn RequestStream>,
    senders: Vec<SyncSender<Message>>,
}

/// What a finished pass read: the class table and, for imports, the import report.
pub struct PassEnd {
    pub classes: ClassTable,
    pub report: Option<ImportReport>,
}

/// How far a pass has read, for progress reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassProgress {
    /// Rows read so far.
    pub rows: u64,
    /// Bytes of the source read so far and its size, when the source is a file that knows it.
    pub bytes: Option<(u64, u64)>,
}

/// Splits `stream` into `consumers` streams fed by one [`Feeder`].
pub fn split(stream: Box<dyn RequestStream>, consumers: usize) -> (Feeder, Vec<SharedStream>) {
    let (senders, streams) = (0..consumers)
        .map(|_| {
            let (tx, rx) = sync_channel(QUEUE_CHUNKS);
            (tx, SharedStream { rx, rows: Arc::from(Vec::new()), next: 0, done: false })
        })
        .unzip();
    (Feeder { stream, senders }, streams)
}

impl Feeder {
    /// Reads the stream to its end (or its first error, or until every consumer has gone),
    /// handing each chunk to every consumer; `progress` is told after each chunk.
    pub fn run(mut self, progress: &mut dyn FnMut(PassProgress)) -> PassEnd {
        let mut read = PassProgress::default();
        let mut rows = Vec::with_capacity(CHUNK_ROWS);
        loop {
            let mut error = None;
            while rows.len() < CHUNK_ROWS {
                match self.stream.next() {
                    Some(Ok(request)) => rows.push(request),
                    Some(Err(e)) => {
                        error = Some(e);
                        break;
                    }
                    None => break,
                }
            }
            let last = error.is_some() || rows.len() < CHUNK_ROWS;
            read.rows += rows.len() as u64;
            read.bytes = self.stream.bytes_read();
            if !rows.is_empty() {
                let chunk: Arc<[Request]> =
                    Arc::from(std::mem::replace(&mut rows, Vec::with_capacity(CHUNK_ROWS)));
                self.senders.retain(|tx| tx.send(Message::Rows(Arc::clone(&chunk))).is_ok());
            }
            progress(read);
            if let Some(e) = error {
                // The first consumer gets the error itself, the others an equal copy.
                let mut senders = self.senders.drain(..);
                if let Some(first) = senders.next() {
                    for tx in senders {
                        let _ = tx.send(Message::Error(e.clone()));
                    }
                    let _ = first.send(Message::Error(e));
                }
            }
            if last || self.senders.is_empty() {
                break;
            }
        }
        self.senders.clear();
        PassEnd { classes: self.stream.classes(), report: self.stream.report() }
    }
}

/// One consumer's view of a shared pass: the trace's requests in order, as from a stream of
/// its own.
pub struct SharedStream {
    rx: Receiver<Message>,
    rows: Arc<[Request]>,
    next: usize,
    done: bool,
}

impl Iterator for SharedStream {
    type Item = Result<Request, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(request) = self.rows.get(self.next) {
                self.next += 1;
                return Some(Ok(request.clone()));
            }
            if self.done {
                return None;
            }
            match self.rx.recv() {
                Ok(Message::Rows(rows)) => {
                    self.rows = rows;
                    self.next = 0;
                }
                Ok(Message::Error(e)) => {
                    self.done = true;
                    self.rows = Arc::from(Vec::new());
                    return Some(Err(e));
                }
                Err(_) => {
                    self.done = true;
                    self.rows = Arc::from(Vec::new());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::TraceReader;

    fn csv(rows: usize, bad_at: Option<usize>) -> String {
        let mut text = String::from("id,arrival_ms,class,input_tokens,output_tokens\n");
        for i in 0..rows {
            let input = if Some(i) == bad_at { "-5".to_string() } else { (100 + i).to_string() };
            text.push_str(&format!("r{i},{i},{},{input},7\n", ["hard", "bulk", "custom"][i % 3]));
        }
        text
    }

    fn own_stream(text: &str) -> Vec<Result<Request, String>> {
        let reader = TraceReader::from_reader(std::io::Cursor::new(text.as_bytes().to_vec()), "t.csv");
        reader.expect("header").map(|r| r.map_err(|e| e.to_string())).collect()
    }

    fn shared(
        text: &str,
        consumers: usize,
        stop_after: Option<usize>,
    ) -> (Vec<Vec<Result<Request, String>>>, PassEnd) {
        let reader = TraceReader::from_reader(std::io::Cursor::new(text.as_bytes().to_vec()), "t.csv")
            .expect("header");
        let (feeder, streams) = split(Box::new(reader), consumers);
        std::thread::scope(|scope| {
            let handles: Vec<_> = streams
                .into_iter()
                .enumerate()
                .map(|(k, stream)| {
                    scope.spawn(move || {
                        // Consumer 0 may stop early, as a strategy failing on its own would.
                        let take = if k == 0 { stop_after.unwrap_or(usize::MAX) } else { usize::MAX };
                        stream.take(take).map(|r| r.map_err(|e| e.to_string())).collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut reports = Vec::new();
            let end = feeder.run(&mut |p| reports.push(p.rows));
            assert!(reports.windows(2).all(|w| w[0] <= w[1]), "progress only grows");
            (handles.into_iter().map(|h| h.join().expect("consumer")).collect(), end)
        })
    }

    #[test]
    fn every_consumer_sees_what_a_stream_of_its_own_would() {
        let text = csv(3 * CHUNK_ROWS + 17, None);
        let expected = own_stream(&text);
        let (seen, end) = shared(&text, 3, None);
        for stream in seen {
            assert_eq!(stream, expected);
        }
        assert!(end.classes.get("custom").is_some());
    }

    #[test]
    fn a_read_error_ends_every_stream_after_the_rows_before_it() {
        let text = csv(CHUNK_ROWS + 5, Some(CHUNK_ROWS + 2));
        let expected = own_stream(&text);
        let line = format!(":{}: field", CHUNK_ROWS + 4);
        assert!(expected.last().is_some_and(|r| r.as_ref().is_err_and(|e| e.contains(&line))));
        let (seen, _) = shared(&text, 2, None);
        for stream in seen {
            assert_eq!(stream, expected);
        }
    }

    #[test]
    fn a_consumer_that_stops_early_does_not_stall_the_others() {
        let text = csv(QUEUE_CHUNKS * CHUNK_ROWS * 3, None);
        let expected = own_stream(&text);
        let (seen, _) = shared(&text, 2, Some(10));
        assert_eq!(seen[0], expected[..10]);
        assert_eq!(seen[1], expected);
    }
}
