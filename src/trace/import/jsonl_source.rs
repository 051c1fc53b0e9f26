//! The JSONL import sources: Mooncake (prefix-cache reuse from `hash_ids`) and a mapped
//! JSONL, each a [`JsonLayout`] of keys read by one [`JsonlSource`] into raw rows.
//!
//! It must not know about the pipeline after the raw row (order, jitter, window, rate, classes).

use super::fields::{field_error, parse_count, parse_time, FieldError};
use super::{ImportOptions, Mapping, RawRow, RawSource, TimeUnit};
use crate::trace::TraceError;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

pub(super) struct JsonLayout {
    time: String,
    time_unit: TimeUnit,
    input: String,
    output: String,
    cached: Option<String>,
    model: Option<String>,
    label: Option<String>,
    class: Option<String>,
    session: Option<String>,
    /// Mooncake: key of the block hash list, block size and cache TTL.
    blocks: Option<(String, u64, u64)>,
}

impl JsonLayout {
    pub(super) fn mooncake(options: &ImportOptions) -> Self {
        JsonLayout {
            time: "timestamp".into(),
            time_unit: TimeUnit::Ms,
            input: "input_length".into(),
            output: "output_length".into(),
            cached: None,
            model: None,
            label: None,
            class: None,
            session: None,
            blocks: Some(("hash_ids".into(), options.block_tokens, options.cache_ttl.as_micros())),
        }
    }

    pub(super) fn mapped(m: &Mapping) -> Self {
        JsonLayout {
            time: m.time.clone(),
            time_unit: m.time_unit,
            input: m.input_tokens.clone(),
            output: m.output_tokens.clone(),
            cached: m.cached_input_tokens.clone(),
            model: m.model.clone(),
            label: m.label.clone(),
            class: m.class.clone(),
            session: m.session.clone(),
            blocks: None,
        }
    }
}

pub(super) struct JsonlSource {
    reader: BufReader<File>,
    name: String,
    layout: JsonLayout,
    line: u64,
    buffer: String,
    /// Mooncake prefix cache: block hash → last time it was used (µs).
    cache: HashMap<u64, i64>,
    /// Cache size after the last eviction; the next eviction runs at twice this.
    cache_evicted_len: usize,
}

impl JsonlSource {
    pub(super) fn open(path: &Path, layout: JsonLayout) -> Result<JsonlSource, TraceError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|source| TraceError::Io {
            file: name.clone(),
            action: "cannot open",
            source,
        })?;
        Ok(JsonlSource {
            reader: BufReader::new(file),
            name,
            layout,
            line: 0,
            buffer: String::new(),
            cache: HashMap::new(),
            cache_evicted_len: 1024,
        })
    }

    fn parse(&mut self) -> Result<RawRow, FieldError> {
        let value: serde_json::Value = serde_json::from_str(&self.buffer)
            .map_err(|e| FieldError { field: String::new(), message: format!("invalid JSON: {e}") })?;
        let Some(object) = value.as_object() else {
            return Err(FieldError { field: String::new(), message: "expected a JSON object".into() });
        };
        let l = &self.layout;
        let number_text = |key: &str| -> Result<String, FieldError> {
            match object.get(key) {
                None | Some(serde_json::Value::Null) => Err(field_error(key, "missing".into())),
                Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(field_error(key, format!("expected a number, got {other}"))),
            }
        };
        let text = |key: &Option<String>| -> Option<String> {
            key.as_ref().and_then(|k| object.get(k)).and_then(|v| match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            })
        };
        let time_us = parse_time(&l.time, &number_text(&l.time)?, l.time_unit)?;
        let input_tokens = parse_count(&l.input, &number_text(&l.input)?)?;
        let output_tokens = parse_count(&l.output, &number_text(&l.output)?)?;
        let mut cached_input_tokens = match &l.cached {
            Some(key) if object.get(key).is_some_and(|v| !v.is_null()) => {
                parse_count(key, &number_text(key)?)?
            }
            _ => 0,
        };
        if let Some((key, block_tokens, ttl_us)) = &l.blocks {
            let ids = match object.get(key) {
                None | Some(serde_json::Value::Null) => Vec::new(),
                Some(serde_json::Value::Array(items)) => items
                    .iter()
                    .map(|v| {
                        v.as_u64().ok_or_else(|| {
                            field_error(key, format!("expected non-negative integers, found {v}"))
                        })
                    })
                    .collect::<Result<Vec<u64>, _>>()?,
                Some(other) => {
                    return Err(field_error(key, format!("expected an array of block ids, got {other}")))
                }
            };
            // A KV cache serves a prefix: count leading blocks used within the TTL.
            let live = |t: Option<&i64>| t.is_some_and(|&t| time_us - t <= *ttl_us as i64);
            let prefix = ids.iter().take_while(|id| live(self.cache.get(id))).count() as u64;
            cached_input_tokens = (prefix * block_tokens).min(input_tokens);
            for id in ids {
                self.cache.insert(id, time_us);
            }
            if self.cache.len() > 2 * self.cache_evicted_len {
                self.cache.retain(|_, &mut t| time_us - t <= *ttl_us as i64);
                self.cache_evicted_len = self.cache.len().max(1024);
            }
        }
        if cached_input_tokens > input_tokens {
            let key = l.cached.clone().unwrap_or_default();
            return Err(field_error(
                &key,
                format!("{cached_input_tokens} exceeds the input tokens {input_tokens}"),
            ));
        }
        Ok(RawRow {
            time_us,
            line: self.line,
            input_tokens,
            output_tokens,
            cached_input_tokens,
            model: text(&l.model),
            label: text(&l.label),
            class: text(&l.class),
            session: text(&l.session),
            failed: false,
            ..RawRow::default()
        })
    }
}

impl RawSource for JsonlSource {
    fn next_raw(&mut self) -> Option<Result<RawRow, TraceError>> {
        let mut bytes = Vec::new();
        loop {
            bytes.clear();
            // At most one byte past the limit, so an over-long line is never held whole.
            let limit = crate::trace::MAX_LINE_BYTES + 1;
            match (&mut self.reader).take(limit).read_until(b'\n', &mut bytes) {
                Ok(0) => return None,
                Ok(n) => {
                    self.line += 1;
                    let line = self.line;
                    let row_error = |message: String| TraceError::Row {
                        file: self.name.clone(),
                        line,
                        field: None,
                        message,
                    };
                    if n as u64 == limit && bytes.last() != Some(&b'\n') {
                        return Some(Err(row_error(crate::trace::LineTooLong { line }.to_string())));
                    }
                    self.buffer = match String::from_utf8(std::mem::take(&mut bytes)) {
                        Ok(text) => text,
                        Err(e) => {
                            let at = e.utf8_error().valid_up_to();
                            return Some(Err(row_error(format!(
                                "invalid UTF-8 at byte {} of the line",
                                at + 1
                            ))));
                        }
                    };
                    if self.buffer.trim().is_empty() {
                        continue;
                    }
                    return Some(self.parse().map_err(|e| TraceError::Row {
                        file: self.name.clone(),
                        line,
                        field: (!e.field.is_empty()).then_some(e.field),
                        message: e.message,
                    }));
                }
                Err(source) => return Some(Err(crate::trace::read_error(&self.name, source))),
            }
        }
    }

    fn time_field(&self) -> &str {
        &self.layout.time
    }
}
