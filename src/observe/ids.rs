//! The trace rows' `id` strings, read beside the request stream: a [`crate::trace::Request`]
//! keeps only the id's hash, and `attempts.jsonl` names the row as written. The same source is
//! opened a second time and read in lockstep (every source yields its rows in the same order
//! each time it is opened), so memory stays flat whatever the trace's length.
//!
//! It must not know about the replay or HTTP.

use crate::rng::hash_str;
use crate::trace::import::{Importer, TraceFormat};
use crate::trace::source::TraceSource;

/// The id strings of a source's rows, in order.
pub struct IdNames {
    names: Box<dyn Iterator<Item = String> + Send>,
}

impl IdNames {
    /// Opens the names of `source`. A source that cannot be read here yields no names (the
    /// request stream reports the problem with its line); ids then fall back to their hash.
    pub fn open(source: &TraceSource) -> IdNames {
        let empty = || IdNames { names: Box::new(std::iter::empty()) };
        match source {
            TraceSource::File { path, format: TraceFormat::Routesim, .. } => {
                let Ok(mut reader) = csv::ReaderBuilder::new().flexible(true).from_path(path) else {
                    return empty();
                };
                let Some(column) =
                    reader.headers().ok().and_then(|h| h.iter().position(|name| name.trim() == "id"))
                else {
                    return empty();
                };
                let names = reader.into_records().map(move |r| {
                    r.ok().and_then(|r| r.get(column).map(|id| id.trim().to_string())).unwrap_or_default()
                });
                IdNames { names: Box::new(names) }
            }
            TraceSource::File { path, format, options } => match Importer::open(path, *format, options) {
                Ok(importer) => {
                    IdNames { names: Box::new(importer.map(|row| row.map(|r| r.row.id).unwrap_or_default())) }
                }
                Err(_) => empty(),
            },
            TraceSource::Generated { config, base_dir, .. } => match config.rows(base_dir) {
                Ok(rows) => {
                    IdNames { names: Box::new(rows.map(|row| row.map(|r| r.id).unwrap_or_default())) }
                }
                Err(_) => empty(),
            },
        }
    }

    /// The name of the next row, whose id hashes to `id`; the hash in hex if the rows got out
    /// of step (which a trace the request stream accepts does not do).
    pub fn next_for(&mut self, id: u64) -> String {
        match self.names.next() {
            Some(name) if hash_str(&name) == id => name,
            _ => format!("{id:016x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_csv_rows_and_fall_back_to_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(
            &path,
            "id,arrival_ms,class,input_tokens,output_tokens\n r-1 ,0,hard,1,1\n\"r,2\",5,hard,1,1\n",
        )
        .unwrap();
        let mut names = IdNames::open(&TraceSource::routesim(&path));
        assert_eq!(names.next_for(hash_str("r-1")), "r-1");
        assert_eq!(names.next_for(hash_str("r,2")), "r,2");
        assert_eq!(names.next_for(7), "0000000000000007");
    }
}
