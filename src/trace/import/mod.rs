//! Importers of public traces and of users' own logs into routesim [`Request`]s.
//!
//! Owns the readers of the Azure LLM inference traces (2023 and 2024 timestamps), BurstGPT,
//! Mooncake JSONL (prefix-cache reuse from `hash_ids`), a generic column mapping of CSV or
//! JSONL ("mapped") and two gateway logs (LiteLLM proxy spend logs, OpenTelemetry GenAI spans
//! in OTLP JSON); the shared pipeline behind them (deterministic jitter of tied timestamps,
//! a time window, a rate multiplier, class rules, counting of skipped rows); and the report of
//! what an import read, skipped and kept. It must not know about the engine or providers.
//!
//! Every importer is a stream: one row is parsed at a time, rows with the same timestamp are
//! held in a small group (to spread ties deterministically), and memory does not grow with the
//! file. Bad rows are [`TraceError::Row`] errors naming file, line and field; with
//! `skip_bad = N` up to N of them are skipped and counted in the [`ImportReport`], never
//! silently.
//!
//! The pipeline and its options live here; the field parsers in [`fields`], the CSV sources
//! in [`csv_source`], the JSONL sources in [`jsonl_source`], the record splitter of JSON files
//! in [`json_records`], and the gateway logs in [`litellm_spend`] and [`otel`] (whose readers
//! also serve `sim calibrate --from-log`, in `crate::calibrate::gateway_logs`). The OTLP
//! importer is the one exception to streaming: spans are not sorted by time in OTLP, so it
//! holds the file's GenAI spans ([`otel::MAX_SPANS`] at most) and sorts them.

mod csv_source;
mod fields;
pub mod json_records;
mod jsonl_source;
pub mod litellm_spend;
pub mod otel;

pub use fields::parse_datetime_us;

use csv_source::{CsvLayout, CsvSource};
use jsonl_source::{JsonLayout, JsonlSource};

use super::matching::TokenBounds;
use super::{ClassId, ClassTable, Request, Row, TraceError};
use crate::rng::{hash_str, DrawKey, Purpose};
use crate::time::{Duration, MICROS_PER_S};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;

/// The file formats a trace can come in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceFormat {
    /// The routesim CSV (`traces/README.md`).
    #[default]
    Routesim,
    /// Azure LLM inference trace: `TIMESTAMP,ContextTokens,GeneratedTokens`.
    Azure,
    /// BurstGPT: `Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type`.
    Burstgpt,
    /// Mooncake JSONL: `{"timestamp", "input_length", "output_length", "hash_ids"}`.
    Mooncake,
    /// The user's own CSV or JSONL, described by a [`Mapping`].
    Mapped,
    /// LiteLLM proxy spend logs (`LiteLLM_SpendLogs` rows) as a JSON array or JSONL.
    #[serde(rename = "litellm_spend")]
    LitellmSpend,
    /// OpenTelemetry GenAI inference spans in OTLP JSON.
    #[serde(rename = "otel_genai")]
    OtelGenai,
}

/// A trace format name that does not exist.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown trace format {0:?} (known: {names})", names = TraceFormat::ALL.map(TraceFormat::name).join(", "))]
pub struct UnknownTraceFormat(pub String);

impl TraceFormat {
    /// Every format, the routesim CSV first.
    pub const ALL: [TraceFormat; 7] = [
        TraceFormat::Routesim,
        TraceFormat::Azure,
        TraceFormat::Burstgpt,
        TraceFormat::Mooncake,
        TraceFormat::Mapped,
        TraceFormat::LitellmSpend,
        TraceFormat::OtelGenai,
    ];

    /// The format's name in scenarios (`trace.format`) and on the command line (`--from`).
    pub fn name(self) -> &'static str {
        match self {
            TraceFormat::Routesim => "routesim",
            TraceFormat::Azure => "azure",
            TraceFormat::Burstgpt => "burstgpt",
            TraceFormat::Mooncake => "mooncake",
            TraceFormat::Mapped => "mapped",
            TraceFormat::LitellmSpend => "litellm_spend",
            TraceFormat::OtelGenai => "otel_genai",
        }
    }

    /// Whether the format is a gateway log that also calibrates as observed attempts
    /// (`sim calibrate --from-log`).
    pub fn is_gateway_log(self) -> bool {
        matches!(self, TraceFormat::LitellmSpend | TraceFormat::OtelGenai)
    }

    /// `azure, burstgpt, …`: the formats that are imported (all but routesim),
    /// for messages.
    pub fn imported_names() -> String {
        TraceFormat::ALL
            .iter()
            .filter(|f| **f != TraceFormat::Routesim)
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether the format is read only with a [`Mapping`] (so not by flags that give none).
    pub fn needs_mapping(self) -> bool {
        self == TraceFormat::Mapped
    }

    /// `routesim (default), azure, burstgpt, mooncake, mapped`: `formats` for help text, the
    /// default marked.
    pub fn list(formats: impl IntoIterator<Item = TraceFormat>) -> String {
        formats
            .into_iter()
            .map(|f| {
                if f == TraceFormat::default() {
                    format!("{} (default)", f.name())
                } else {
                    f.name().into()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Parses a format name.
    pub fn parse(name: &str) -> Result<TraceFormat, UnknownTraceFormat> {
        TraceFormat::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| UnknownTraceFormat(name.to_string()))
    }

    /// The default tie-spreading width: timestamps are whole seconds in BurstGPT and bucketed
    /// to about 3 s in Mooncake; Azure timestamps are sub-millisecond and need none.
    fn default_jitter(self) -> Duration {
        match self {
            TraceFormat::Burstgpt => Duration::from_secs(1),
            TraceFormat::Mooncake => Duration::from_secs(3),
            _ => Duration::ZERO,
        }
    }
}

/// How to import a trace: window, rate, classes, jitter, tolerance of bad rows. In a scenario
/// this is the `[trace.import]` table; on the command line, flags of `sim trace convert`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportOptions {
    /// Skip this much of the trace from its first row (the trace's own clock). Default 0.
    pub start: Duration,
    /// Keep this much of the trace after `start`; reading stops there. Default: all.
    pub duration: Option<Duration>,
    /// Multiply the arrival rate: 2 replays the window in half the time ("what if traffic
    /// doubles"), 0.5 stretches it. Default 1.
    pub rate_multiplier: f64,
    /// Seed of the jitter that spreads tied timestamps. Default 1.
    pub seed: u64,
    /// Tied timestamps are spread uniformly over this width (capped by the gap to the next
    /// timestamp, so order is kept). Default: 1s BurstGPT, 3s Mooncake, 0 otherwise.
    pub jitter: Option<Duration>,
    /// Class of rows no rule matches. Default `interactive`.
    pub default_class: String,
    /// Ordered class rules; the first match wins.
    pub classes: Vec<ClassRule>,
    /// Skip up to this many bad rows (counted and reported); one more is an error. Default 0.
    pub skip_bad: u64,
    /// Mooncake: a block seen within this time is a cache read. Default 5m.
    pub cache_ttl: Duration,
    /// Mooncake: tokens per hash id. Default 512.
    pub block_tokens: u64,
    /// Drop failed requests instead of replaying them (BurstGPT: `Response tokens` = 0, with
    /// no output; LiteLLM: `status = "failure"`; OTel: an error span), with the tokens the log
    /// gives. Counted either way. Default false.
    pub drop_failed: bool,
    /// Required for format `mapped`: which column is what.
    pub mapping: Option<Mapping>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            start: Duration::ZERO,
            duration: None,
            rate_multiplier: 1.0,
            seed: 1,
            jitter: None,
            default_class: "interactive".to_string(),
            classes: Vec::new(),
            skip_bad: 0,
            cache_ttl: Duration::from_mins(5),
            block_tokens: 512,
            drop_failed: false,
            mapping: None,
        }
    }
}

impl ImportOptions {
    /// Checks every option for `format`; errors name the option (`classes[1].model: …`).
    pub fn validate(&self, format: TraceFormat) -> Result<(), TraceError> {
        self.compile(format).map(|_| ())
    }

    /// The class table, the default class and the compiled rules.
    fn compile(&self, format: TraceFormat) -> Result<(ClassTable, ClassId, Vec<CompiledRule>), TraceError> {
        let config = |field: &str, message: String| TraceError::Import { field: field.to_string(), message };
        if format == TraceFormat::Routesim {
            return Err(config("format", "routesim traces are read by TraceReader, not imported".into()));
        }
        if !crate::validate::is_positive(self.rate_multiplier) {
            return Err(config(
                "rate_multiplier",
                format!("must be a finite number > 0, got {}", self.rate_multiplier),
            ));
        }
        if self.block_tokens == 0 {
            return Err(config("block_tokens", "must be > 0".into()));
        }
        if self.default_class.trim().is_empty() {
            return Err(config("default_class", "must not be empty".into()));
        }
        if format == TraceFormat::Mapped && self.mapping.is_none() {
            return Err(config(
                "mapping",
                "format \"mapped\" needs a mapping (time, time_unit, input_tokens, output_tokens)".into(),
            ));
        }
        let mut classes = ClassTable::new();
        let full = |field: &str, e: super::TooManyClasses| {
            config(field, format!("{e}, counting the built-in classes and the rules' classes"))
        };
        let default_class = classes.intern(&self.default_class).map_err(|e| full("default_class", e))?;
        let mut rules = Vec::with_capacity(self.classes.len());
        for (i, rule) in self.classes.iter().enumerate() {
            if rule.class.trim().is_empty() {
                return Err(config(&format!("classes[{i}].class"), "must not be empty".into()));
            }
            let compile = |field: &str, re: &Option<String>| {
                re.as_deref()
                    .map(regex::Regex::new)
                    .transpose()
                    .map_err(|e| config(&format!("classes[{i}].{field}"), e.to_string().replace('\n', " ")))
            };
            let class = classes.intern(&rule.class).map_err(|e| full(&format!("classes[{i}].class"), e))?;
            rules.push(CompiledRule {
                class,
                model: compile("model", &rule.model)?,
                label: compile("label", &rule.label)?,
                rule: rule.clone(),
            });
        }
        Ok((classes, default_class, rules))
    }
}

/// One class rule: every condition given must hold. Regexes are searched (not anchored).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassRule {
    /// The class assigned on a match.
    pub class: String,
    pub min_input_tokens: Option<u64>,
    pub max_input_tokens: Option<u64>,
    pub min_output_tokens: Option<u64>,
    pub max_output_tokens: Option<u64>,
    /// Regex on the model name (BurstGPT `Model`, mapping `model`, LiteLLM `model_group`
    /// else `model`, OTel `gen_ai.request.model`).
    pub model: Option<String>,
    /// Regex on the label (BurstGPT `Log Type`, mapping `label`, LiteLLM
    /// `call_type=… team_id=… user=… end_user=… request_tags=…`, OTel `service.name`).
    pub label: Option<String>,
}

/// Which columns (CSV header names) or keys (JSONL) of the user's logs hold what.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// `csv` or `jsonl`; default from the file extension (`.jsonl`/`.json` → jsonl).
    pub format: Option<MappedFormat>,
    /// Column of the arrival time.
    pub time: String,
    /// Unit of the time column: `s`, `ms`, `us`, `ns` (decimal numbers) or `datetime`
    /// (`2024-05-10 00:00:00.009930+00:00`, `T` and `Z` accepted).
    pub time_unit: TimeUnit,
    pub input_tokens: String,
    pub output_tokens: String,
    pub cached_input_tokens: Option<String>,
    /// Column whose value is the class itself (rules are then not used).
    pub class: Option<String>,
    /// Column matched by the rules' `model` regex.
    pub model: Option<String>,
    /// Column matched by the rules' `label` regex.
    pub label: Option<String>,
    /// Column naming the session or conversation.
    pub session: Option<String>,
}

/// File syntax of a mapped trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MappedFormat {
    Csv,
    Jsonl,
}

/// Unit of a mapped time column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    S,
    Ms,
    Us,
    Ns,
    Datetime,
}

/// At most this many distinct names are listed in a [`NameCounts`]; the occurrences of any
/// further names are only counted (a log with a fresh key per row must not grow the report).
pub const MAX_LISTED_NAMES: usize = 100;

/// Names with how often each was seen, the first [`MAX_LISTED_NAMES`] distinct ones listed.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NameCounts {
    pub counts: BTreeMap<String, u64>,
    /// Occurrences of names not listed (beyond the first [`MAX_LISTED_NAMES`]).
    pub unlisted: u64,
}

impl NameCounts {
    /// Counts one occurrence of `name`.
    pub fn add(&mut self, name: &str) {
        if let Some(n) = self.counts.get_mut(name) {
            *n += 1;
        } else if self.counts.len() < MAX_LISTED_NAMES {
            self.counts.insert(name.to_string(), 1);
        } else {
            self.unlisted += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.unlisted == 0
    }

    /// Occurrences in all.
    pub fn total(&self) -> u64 {
        self.counts.values().sum::<u64>() + self.unlisted
    }

    /// `a ×3, b ×1` (and `+N unlisted`), for messages.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.counts.iter().map(|(name, n)| format!("{name} ×{n}")).collect();
        if self.unlisted > 0 {
            parts.push(format!("+{} unlisted", self.unlisted));
        }
        parts.join(", ")
    }
}

/// What a JSON source did with the keys of its rows, and the records it read that are not
/// provider calls: every key of a row is used, ignored (a key of the format this import has no
/// use for) or unknown (not a key of the format: a typo, a newer version), and both kinds are
/// reported, never dropped silently.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyTally {
    pub ignored: NameCounts,
    pub unknown: NameCounts,
    pub not_calls: NameCounts,
}

/// What a JSON source did with its keys, as parts of a one-line report (the import's and
/// calibration's from a gateway log): `N records not provider calls (…)`, `unknown keys: a ×2`,
/// `keys ignored: b, c`; nothing for an empty count.
pub fn describe_keys(ignored: &NameCounts, unknown: &NameCounts, not_calls: &NameCounts) -> Vec<String> {
    let mut parts = Vec::new();
    if !not_calls.is_empty() {
        parts.push(format!("{} records not provider calls ({})", not_calls.total(), not_calls.describe()));
    }
    if !unknown.is_empty() {
        parts.push(format!("unknown keys: {}", unknown.describe()));
    }
    if !ignored.is_empty() {
        let names: Vec<&str> = ignored.counts.keys().map(String::as_str).collect();
        let more = if ignored.unlisted > 0 { " and more" } else { "" };
        parts.push(format!("keys ignored: {}{more}", names.join(", ")));
    }
    parts
}

impl KeyTally {
    /// [`describe_keys`] of this tally.
    pub fn describe(&self) -> Vec<String> {
        describe_keys(&self.ignored, &self.unknown, &self.not_calls)
    }

    /// Classifies one key of a row: used (nothing to count), ignored (`known`), or unknown.
    pub(crate) fn key(&mut self, key: &str, used: &[&str], known: &[&str]) {
        if used.contains(&key) {
            return;
        }
        if known.contains(&key) {
            self.ignored.add(key);
        } else {
            self.unknown.add(key);
        }
    }
}

/// What an import read and what became of every row: `rows_read` = `imported` +
/// `before_window` + `after_window` + `failed_dropped` (+ `skipped_bad` rows that could not
/// be read at all). Records that are not provider calls (`not_provider_calls`) are not rows.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    /// Rows parsed successfully.
    pub rows_read: u64,
    /// Rows emitted as requests.
    pub imported: u64,
    /// Bad rows skipped under `skip_bad`.
    pub skipped_bad: u64,
    /// The first few skipped rows' errors.
    pub skipped_examples: Vec<String>,
    /// Rows before `start`.
    pub before_window: u64,
    /// Rows read past `start + duration` (reading stops at the first).
    pub after_window: u64,
    /// Failed requests seen (BurstGPT `Response tokens` = 0, LiteLLM `status = "failure"`,
    /// OTel error spans).
    pub failed_rows: u64,
    /// Of those, dropped under `drop_failed`.
    pub failed_dropped: u64,
    /// Keys of the format the import does not use, with the number of rows carrying each.
    #[serde(skip_serializing_if = "NameCounts::is_empty")]
    pub ignored_keys: NameCounts,
    /// Keys the format does not define, with the number of rows carrying each.
    #[serde(skip_serializing_if = "NameCounts::is_empty")]
    pub unknown_keys: NameCounts,
    /// Records read that are not provider calls, by reason (a LiteLLM proxy cache hit, an OTel
    /// span that is not a GenAI inference).
    #[serde(skip_serializing_if = "NameCounts::is_empty")]
    pub not_provider_calls: NameCounts,
}

impl ImportReport {
    /// One line for the terminal.
    pub fn summary(&self) -> String {
        let mut parts = vec![format!("{} rows read, {} imported", self.rows_read, self.imported)];
        if self.before_window + self.after_window > 0 {
            parts.push(format!("{} before and {} after the window", self.before_window, self.after_window));
        }
        if self.failed_rows > 0 {
            parts.push(format!("{} failed requests ({} dropped)", self.failed_rows, self.failed_dropped));
        }
        parts.extend(describe_keys(&self.ignored_keys, &self.unknown_keys, &self.not_provider_calls));
        if self.skipped_bad > 0 {
            parts.push(format!(
                "{} bad rows skipped (first: {})",
                self.skipped_bad,
                self.skipped_examples.first().map_or("", String::as_str)
            ));
        }
        parts.join("; ")
    }
}

/// One imported row and the line of the source file it came from. Its id is `r<seq>` and
/// arrivals are kept to the millisecond (see [`Row`]), so a trace replayed directly and after
/// `sim trace convert` gives byte-identical results.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportedRow {
    pub row: Row,
    /// Line (or JSONL line) in the source file.
    pub line: u64,
}

impl ImportedRow {
    /// The request the engine replays.
    pub fn to_request(&self) -> Request {
        self.row.to_request(self.line)
    }
}

/// A parsed source row before the pipeline: absolute time in µs on the source's clock.
#[derive(Clone, Debug, Default)]
struct RawRow {
    time_us: i64,
    line: u64,
    input_tokens: u64,
    output_tokens: u64,
    cached_input_tokens: u64,
    model: Option<String>,
    label: Option<String>,
    class: Option<String>,
    session: Option<String>,
    failed: bool,
    /// Prompt tokens written to the cache (capped by the uncached input).
    cache_write_tokens: u64,
    /// The request's output ceiling when the log has it (at least the output is used).
    max_tokens: Option<u64>,
    /// An OTel span's identity, for parent links.
    link: Option<SpanLink>,
}

/// A span's identity for closed-loop parent links: its key, its parent span's, its end on the
/// source clock, and whether some imported span names it as parent.
#[derive(Clone, Debug)]
struct SpanLink {
    key: u64,
    parent: Option<u64>,
    end_us: i64,
    is_parent: bool,
}

/// A format-specific row reader.
trait RawSource: Send {
    fn next_raw(&mut self) -> Option<Result<RawRow, TraceError>>;
    /// Name of the time column, for order errors.
    fn time_field(&self) -> &str;
    /// What the source did with the keys of its rows (JSON gateway logs).
    fn keys(&self) -> Option<&KeyTally> {
        None
    }
    /// Whether the last error ended the source (a broken file structure): not skippable.
    fn fatal(&self) -> bool {
        false
    }
}

struct CompiledRule {
    class: ClassId,
    rule: ClassRule,
    model: Option<regex::Regex>,
    label: Option<regex::Regex>,
}

impl CompiledRule {
    fn matches(&self, row: &RawRow) -> bool {
        let r = &self.rule;
        let text = |re: &Option<regex::Regex>, value: &Option<String>| match re {
            None => true,
            Some(re) => value.as_deref().is_some_and(|v| re.is_match(v)),
        };
        TokenBounds::new(r.min_input_tokens, r.max_input_tokens).contains(row.input_tokens)
            && TokenBounds::new(r.min_output_tokens, r.max_output_tokens).contains(row.output_tokens)
            && text(&self.model, &row.model)
            && text(&self.label, &row.label)
    }
}

/// The import pipeline over one source: order check, jitter, window, rate, classes, ids.
pub struct Importer {
    source: Box<dyn RawSource>,
    name: String,
    options: ImportOptions,
    rules: Vec<CompiledRule>,
    default_class: ClassId,
    classes: ClassTable,
    jitter_us: u64,
    /// Rows sharing the current timestamp.
    group: Vec<RawRow>,
    /// Rows ready to emit, in order.
    ready: VecDeque<ImportedRow>,
    /// Source time of the first row: the trace's zero.
    origin_us: Option<i64>,
    seq: u64,
    report: ImportReport,
    finished: bool,
    /// A row brought one class more than [`super::MAX_CLASSES`]: returned after the rows
    /// queued before it.
    class_overflow: Option<TraceError>,
    /// Emitted spans that other spans name as parent: key → (row id, end on the source clock).
    parents: HashMap<u64, (String, i64)>,
}

impl Importer {
    /// Opens `path` in `format` (not `routesim`; see [`super::source`]).
    pub fn open(path: &Path, format: TraceFormat, options: &ImportOptions) -> Result<Importer, TraceError> {
        let name = path.display().to_string();
        let config = |field: &str, message: String| TraceError::Import { field: field.to_string(), message };
        let (classes, default_class, rules) = options.compile(format)?;
        let source: Box<dyn RawSource> = match format {
            TraceFormat::Routesim => {
                return Err(config("format", "routesim traces are read by TraceReader, not imported".into()))
            }
            TraceFormat::Azure => Box::new(CsvSource::open(path, CsvLayout::azure())?),
            TraceFormat::Burstgpt => Box::new(CsvSource::open(path, CsvLayout::burstgpt())?),
            TraceFormat::Mooncake => Box::new(JsonlSource::open(path, JsonLayout::mooncake(options))?),
            TraceFormat::LitellmSpend => Box::new(litellm_spend::SpendSource::open(path)?),
            TraceFormat::OtelGenai => Box::new(otel::OtelSource::open(path, options.skip_bad)?),
            TraceFormat::Mapped => {
                let Some(mapping) = &options.mapping else {
                    return Err(config(
                        "mapping",
                        format!(
                            "format {:?} needs a mapping (time, time_unit, input_tokens, output_tokens)",
                            format.name()
                        ),
                    ));
                };
                let jsonl = match mapping.format {
                    Some(MappedFormat::Jsonl) => true,
                    Some(MappedFormat::Csv) => false,
                    None => path.extension().is_some_and(|e| e == "jsonl" || e == "json"),
                };
                if jsonl {
                    Box::new(JsonlSource::open(path, JsonLayout::mapped(mapping))?)
                } else {
                    Box::new(CsvSource::open(path, CsvLayout::mapped(mapping))?)
                }
            }
        };
        Ok(Importer {
            source,
            name,
            jitter_us: options.jitter.unwrap_or(format.default_jitter()).as_micros(),
            options: options.clone(),
            rules,
            default_class,
            classes,
            group: Vec::new(),
            ready: VecDeque::new(),
            origin_us: None,
            seq: 0,
            report: ImportReport::default(),
            finished: false,
            class_overflow: None,
            parents: HashMap::new(),
        })
    }

    /// The classes assigned so far (built-ins, the default class and every rule's class).
    pub fn classes(&self) -> &ClassTable {
        &self.classes
    }

    /// What was read, skipped and kept so far.
    pub fn report(&self) -> ImportReport {
        let mut report = self.report.clone();
        if let Some(keys) = self.source.keys() {
            report.ignored_keys = keys.ignored.clone();
            report.unknown_keys = keys.unknown.clone();
            report.not_provider_calls = keys.not_calls.clone();
        }
        report
    }

    /// Counts a skippable error, or returns it if the budget is spent.
    fn skip_or_fail(&mut self, error: TraceError) -> Result<(), TraceError> {
        if matches!(error, TraceError::Row { .. })
            && !self.source.fatal()
            && self.report.skipped_bad < self.options.skip_bad
        {
            self.report.skipped_bad += 1;
            if self.report.skipped_examples.len() < 3 {
                self.report.skipped_examples.push(error.to_string());
            }
            Ok(())
        } else {
            Err(error)
        }
    }

    /// Spreads the group's tied rows over `[t, t + width)`, width capped by the next
    /// timestamp, and queues them in order.
    fn flush_group(&mut self, next_time_us: Option<i64>) {
        let Some(first) = self.group.first() else { return };
        let time_us = first.time_us;
        let origin = *self.origin_us.get_or_insert(time_us);
        let mut width = self.jitter_us;
        if let Some(next) = next_time_us {
            width = width.min((next - time_us) as u64);
        }
        let mut group = std::mem::take(&mut self.group);
        let mut keyed: Vec<(u64, RawRow)> = group
            .drain(..)
            .map(|row| {
                let offset = if width > 0 {
                    let u = DrawKey {
                        seed: self.options.seed,
                        request: row.line,
                        attempt: 0,
                        deployment: hash_str("import-jitter"),
                        purpose: Purpose::TraceGen,
                    }
                    .rng()
                    .next_open01();
                    ((u * width as f64) as u64).min(width - 1)
                } else {
                    0
                };
                (offset, row)
            })
            .collect();
        keyed.sort_by_key(|(offset, row)| (*offset, row.line));
        self.group = group; // keep the allocation
        let start_us = self.options.start.as_micros();
        let end_us = self.options.duration.map(|d| start_us.saturating_add(d.as_micros()));
        for (offset, row) in keyed {
            let relative_us = (time_us - origin) as u64 + offset;
            if relative_us < start_us {
                self.report.before_window += 1;
                continue;
            }
            if end_us.is_some_and(|end| relative_us >= end) {
                self.report.after_window += 1;
                self.finished = true;
                continue;
            }
            if row.failed {
                self.report.failed_rows += 1;
                if self.options.drop_failed {
                    self.report.failed_dropped += 1;
                    continue;
                }
            }
            let arrival_us = ((relative_us - start_us) as f64 / self.options.rate_multiplier).round() as u64;
            let class = match &row.class {
                Some(name) => match self.classes.intern(name) {
                    Ok(id) => id,
                    Err(full) => {
                        self.class_overflow = Some(TraceError::Row {
                            file: self.name.clone(),
                            line: row.line,
                            field: Some("class".to_string()),
                            message: format!("{full}, at {}; map them to fewer classes", super::elide(name)),
                        });
                        self.finished = true;
                        break;
                    }
                },
                None => self.rules.iter().find(|r| r.matches(&row)).map_or(self.default_class, |r| r.class),
            };
            let id = format!("r{}", self.seq);
            // A span whose parent span was imported and had ended when it started waits for it
            // (closed loop), the gap being its think time.
            let mut parent = None;
            let mut think_us = 0;
            if let Some(link) = &row.link {
                if let Some((parent_id, end_us)) = link.parent.and_then(|k| self.parents.get(&k)) {
                    if row.time_us >= *end_us {
                        parent = Some(parent_id.clone());
                        think_us =
                            ((row.time_us - end_us) as f64 / self.options.rate_multiplier).round() as u64;
                    }
                }
                if link.is_parent {
                    self.parents.insert(link.key, (id.clone(), link.end_us));
                }
            }
            let cached_input_tokens = row.cached_input_tokens.min(row.input_tokens);
            // Most imports know prompt and answer sizes only: the answer is its own `max_tokens`.
            self.ready.push_back(ImportedRow {
                row: Row {
                    arrival_us,
                    seq: self.seq,
                    id,
                    class,
                    input_tokens: row.input_tokens,
                    cached_input_tokens,
                    cache_write_tokens: row.cache_write_tokens.min(row.input_tokens - cached_input_tokens),
                    output_tokens: row.output_tokens,
                    max_tokens: row.max_tokens.map_or(row.output_tokens, |m| m.max(row.output_tokens)),
                    session: row.session,
                    parent,
                    think_us,
                    deadline_ms: None,
                },
                line: row.line,
            });
            self.seq += 1;
            self.report.imported += 1;
        }
    }

    fn advance(&mut self) -> Result<Option<ImportedRow>, TraceError> {
        loop {
            if let Some(row) = self.ready.pop_front() {
                return Ok(Some(row));
            }
            if let Some(error) = self.class_overflow.take() {
                return Err(error);
            }
            if self.finished {
                return Ok(None);
            }
            match self.source.next_raw() {
                None => {
                    self.flush_group(None);
                    self.finished = true;
                }
                Some(Err(error)) => self.skip_or_fail(error)?,
                Some(Ok(row)) => {
                    let group_time = self.group.first().map(|r| r.time_us);
                    if let Some(prev) = group_time.filter(|&t| row.time_us < t) {
                        let error = TraceError::Row {
                            file: self.name.clone(),
                            line: row.line,
                            field: Some(self.source.time_field().to_string()),
                            message: format!(
                                "{} is earlier than the previous row's {}; the trace must be sorted by time",
                                fmt_source_time(row.time_us),
                                fmt_source_time(prev)
                            ),
                        };
                        self.skip_or_fail(error)?;
                        continue;
                    }
                    self.report.rows_read += 1;
                    if group_time.is_some_and(|t| t != row.time_us) {
                        self.flush_group(Some(row.time_us));
                    }
                    if !self.finished {
                        self.group.push(row);
                    } else {
                        self.report.after_window += 1;
                    }
                }
            }
        }
    }
}

fn fmt_source_time(us: i64) -> String {
    format!("{:.3} s", us as f64 / MICROS_PER_S as f64)
}

impl Iterator for Importer {
    type Item = Result<ImportedRow, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.advance() {
            Ok(row) => row.map(Ok),
            Err(e) => {
                self.finished = true;
                self.ready.clear();
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Round trips on small hand-written samples of each format.
    use super::*;

    #[test]
    fn the_one_list_names_every_format_as_serde_reads_it() {
        for format in TraceFormat::ALL {
            // Exhaustive, so a new format cannot be left out of `ALL`.
            match format {
                TraceFormat::Routesim
                | TraceFormat::Azure
                | TraceFormat::Burstgpt
                | TraceFormat::Mooncake
                | TraceFormat::Mapped
                | TraceFormat::LitellmSpend
                | TraceFormat::OtelGenai => {}
            }
            let read: TraceFormat = serde_json::from_value(serde_json::json!(format.name())).unwrap();
            assert_eq!(read, format);
            assert_eq!(TraceFormat::parse(format.name()), Ok(format));
        }
        assert_eq!(
            TraceFormat::list(TraceFormat::ALL),
            "routesim (default), azure, burstgpt, mooncake, mapped, litellm_spend, otel_genai"
        );
        assert_eq!(
            TraceFormat::imported_names(),
            "azure, burstgpt, mooncake, mapped, litellm_spend, otel_genai"
        );
    }

    struct Sample {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
    }

    fn sample(name: &str, text: &str) -> Sample {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        Sample { _dir: dir, path }
    }

    fn import(
        s: &Sample,
        format: TraceFormat,
        options: &ImportOptions,
    ) -> Result<(Vec<ImportedRow>, Importer), TraceError> {
        let mut importer = Importer::open(&s.path, format, options)?;
        let rows = importer.by_ref().collect::<Result<Vec<_>, _>>()?;
        Ok((rows, importer))
    }

    fn error(s: &Sample, format: TraceFormat, options: &ImportOptions) -> String {
        import(s, format, options)
            .err()
            .expect("an error")
            .to_string()
            .replace(&s.path.display().to_string(), "F")
    }

    #[test]
    fn azure_2023_and_2024_round_trip_with_class_rules() {
        let s = sample(
            "azure.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n\
             2023-11-16 18:17:03.9799600,4808,10\n\
             2023-11-16 18:17:04.0319600,3180,8\n\
             2023-11-16 18:17:05.0781490,110,27\n",
        );
        let options = ImportOptions {
            classes: vec![ClassRule {
                class: "hard".into(),
                min_input_tokens: Some(4000),
                ..ClassRule::default()
            }],
            default_class: "bulk".into(),
            ..ImportOptions::default()
        };
        let (rows, importer) = import(&s, TraceFormat::Azure, &options).unwrap();
        let got: Vec<(u64, &str, u64, u64, u64)> = rows
            .iter()
            .map(|r| {
                (
                    r.row.arrival_us,
                    importer.classes().name(r.row.class),
                    r.row.input_tokens,
                    r.row.output_tokens,
                    r.line,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![(0, "hard", 4808, 10, 2), (52_000, "bulk", 3180, 8, 3), (1_098_189, "bulk", 110, 27, 4)]
        );
        assert_eq!(rows[2].row.id, "r2");
        assert_eq!(rows[2].to_request().id, hash_str("r2"));
        // 2024 timestamps with a UTC offset.
        let s = sample(
            "azure24.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2024-05-10 00:00:00.009930+00:00,10,1\n2024-05-10 00:00:01.000000+00:00,20,2\n",
        );
        let (rows, _) = import(&s, TraceFormat::Azure, &ImportOptions::default()).unwrap();
        assert_eq!(rows.iter().map(|r| r.row.arrival_us).collect::<Vec<_>>(), vec![0, 990_070]);
    }

    #[test]
    fn window_and_rate_multiplier() {
        // Rows at 0, 10, 20, 30, 40 s. Window start 10 s, duration 20 s keeps 10 and 20 s
        // (30 s is at the end, excluded); ×2 rate halves the gaps: 0 and 5 s.
        let mut text = "TIMESTAMP,ContextTokens,GeneratedTokens\n".to_string();
        for k in 0..5 {
            text.push_str(&format!("2023-11-16 18:00:{:02}.0000000,{},1\n", k * 10, k + 1));
        }
        let s = sample("w.csv", &text);
        let options = ImportOptions {
            start: Duration::from_secs(10),
            duration: Some(Duration::from_secs(20)),
            rate_multiplier: 2.0,
            ..ImportOptions::default()
        };
        let (rows, importer) = import(&s, TraceFormat::Azure, &options).unwrap();
        assert_eq!(
            rows.iter().map(|r| (r.row.arrival_us, r.row.input_tokens)).collect::<Vec<_>>(),
            vec![(0, 2), (5_000_000, 3)]
        );
        let r = importer.report();
        // The 40-s row is read to close the 30-s group, then reading stops; every row read is
        // accounted for: 5 = 2 imported + 1 before + 2 after.
        assert_eq!((r.rows_read, r.imported, r.before_window, r.after_window), (5, 2, 1, 2));
    }

    const BURSTGPT: &str = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n\
        5,ChatGPT,100,20,120,Conversation log\n\
        5,GPT-4,200,0,200,API log\n\
        5,ChatGPT,300,30,330,API log\n\
        6,GPT-4,400,40,440,Conversation log\n\
        9,ChatGPT,500,50,550,Conversation log\n";

    #[test]
    fn burstgpt_ties_are_jittered_within_the_second_and_failures_counted() {
        let s = sample("b.csv", BURSTGPT);
        let options = ImportOptions {
            classes: vec![
                ClassRule { class: "hard".into(), model: Some("^GPT-4".into()), ..ClassRule::default() },
                ClassRule { class: "async".into(), label: Some("API".into()), ..ClassRule::default() },
            ],
            ..ImportOptions::default()
        };
        let (rows, importer) = import(&s, TraceFormat::Burstgpt, &options).unwrap();
        assert_eq!(rows.len(), 5);
        // The three rows of second 5 land in [0, 1 s) in some order; the others at 1 and 4 s
        // (plus < 1 s of jitter each, the window to the next timestamp being ≥ 1 s).
        let mut first: Vec<u64> = rows[..3].iter().map(|r| r.row.input_tokens).collect();
        first.sort();
        assert_eq!(first, vec![100, 200, 300]);
        assert!(rows[..3].iter().all(|r| r.row.arrival_us < 1_000_000));
        assert!(rows.windows(2).all(|w| w[0].row.arrival_us <= w[1].row.arrival_us));
        assert!((1_000_000..2_000_000).contains(&rows[3].row.arrival_us));
        assert!((4_000_000..5_000_000).contains(&rows[4].row.arrival_us));
        let spread: std::collections::HashSet<u64> = rows[..3].iter().map(|r| r.row.arrival_us).collect();
        assert_eq!(spread.len(), 3, "ties are spread");
        let class = |tokens: u64| {
            importer.classes().name(rows.iter().find(|r| r.row.input_tokens == tokens).unwrap().row.class)
        };
        assert_eq!(
            (class(100), class(200), class(300), class(400)),
            ("interactive", "hard", "async", "hard")
        );
        assert_eq!(importer.report().failed_rows, 1);
        // Same seed, same order and times; another seed, other times.
        let (again, _) = import(&s, TraceFormat::Burstgpt, &options).unwrap();
        assert_eq!(rows, again);
        let (other, _) =
            import(&s, TraceFormat::Burstgpt, &ImportOptions { seed: 2, ..options.clone() }).unwrap();
        assert_ne!(
            rows.iter().map(|r| r.row.arrival_us).collect::<Vec<_>>(),
            other.iter().map(|r| r.row.arrival_us).collect::<Vec<_>>()
        );
        // drop_failed removes the failed row and says so.
        let (kept, importer) =
            import(&s, TraceFormat::Burstgpt, &ImportOptions { drop_failed: true, ..options }).unwrap();
        assert_eq!(kept.len(), 4);
        assert_eq!((importer.report().failed_rows, importer.report().failed_dropped), (1, 1));
    }

    #[test]
    fn mooncake_prefix_reuse_becomes_cached_tokens() {
        // Row 1 writes blocks 0,1,2; row 2 (3 s later) shares the prefix 0,1 then diverges:
        // 2 × 512 cached; row 3 shares 0,1,3 but 10 min later (TTL 5 min): nothing cached;
        // row 4 at the same time reuses block 0 only (its second block is new): 512, capped
        // by its 300-token input → 300.
        let s = sample(
            "m.jsonl",
            "{\"timestamp\": 0, \"input_length\": 1500, \"output_length\": 10, \"hash_ids\": [0, 1, 2]}\n\
             {\"timestamp\": 3000, \"input_length\": 1400, \"output_length\": 20, \"hash_ids\": [0, 1, 3]}\n\
             \n\
             {\"timestamp\": 603000, \"input_length\": 1300, \"output_length\": 30, \"hash_ids\": [0, 1, 3]}\n\
             {\"timestamp\": 603000, \"input_length\": 300, \"output_length\": 40, \"hash_ids\": [0, 9]}\n",
        );
        let (rows, _) = import(&s, TraceFormat::Mooncake, &ImportOptions::default()).unwrap();
        let mut got: Vec<(u64, u64)> =
            rows.iter().map(|r| (r.row.input_tokens, r.row.cached_input_tokens)).collect();
        got.sort();
        assert_eq!(got, vec![(300, 300), (1300, 0), (1400, 1024), (1500, 0)]);
        // Jitter within the bucket: the 3 s rows stay in [3 s, 603 s) — capped by the next
        // timestamp — and the 603 s rows within [603 s, 606 s).
        assert!(rows[0].row.arrival_us < 3_000_000);
        assert!((3_000_000..6_000_000).contains(&rows[1].row.arrival_us));
        assert!(rows[2..].iter().all(|r| (603_000_000..606_000_000).contains(&r.row.arrival_us)));
        assert_eq!(rows.iter().find(|r| r.row.input_tokens == 1300).unwrap().line, 4);
    }

    #[test]
    fn mapped_csv_and_jsonl_with_class_column_and_sessions() {
        let mapping = Mapping {
            format: None,
            time: "ts".into(),
            time_unit: TimeUnit::Ms,
            input_tokens: "prompt".into(),
            output_tokens: "completion".into(),
            cached_input_tokens: Some("cached".into()),
            class: Some("tier".into()),
            model: None,
            label: None,
            session: Some("conv".into()),
        };
        let options = ImportOptions { mapping: Some(mapping.clone()), ..ImportOptions::default() };
        let s = sample(
            "logs.csv",
            "ts,prompt,completion,cached,tier,conv\n1000,50,5,10,gold,c1\n1500.5,60,6,,silver,c1\n",
        );
        let (rows, importer) = import(&s, TraceFormat::Mapped, &options).unwrap();
        let got: Vec<(u64, &str, u64, u64, Option<&str>)> = rows
            .iter()
            .map(|r| {
                (
                    r.row.arrival_us,
                    importer.classes().name(r.row.class),
                    r.row.input_tokens,
                    r.row.cached_input_tokens,
                    r.row.session.as_deref(),
                )
            })
            .collect();
        assert_eq!(got, vec![(0, "gold", 50, 10, Some("c1")), (500_500, "silver", 60, 0, Some("c1"))]);
        let s = sample(
            "logs.jsonl",
            "{\"ts\": 1000, \"prompt\": 50, \"completion\": 5, \"cached\": 10, \"tier\": \"gold\", \"conv\": \"c1\"}\n\
             {\"ts\": \"1500.5\", \"prompt\": 60, \"completion\": 6, \"tier\": \"silver\", \"conv\": \"c1\"}\n",
        );
        let (json_rows, _) = import(&s, TraceFormat::Mapped, &options).unwrap();
        assert_eq!(
            json_rows
                .iter()
                .map(|r| (r.row.arrival_us, r.row.input_tokens, r.row.cached_input_tokens))
                .collect::<Vec<_>>(),
            vec![(0, 50, 10), (500_500, 60, 0)]
        );
        // A mapping naming a column the file lacks is a header error.
        let bad = ImportOptions {
            mapping: Some(Mapping { session: Some("user".into()), ..mapping }),
            ..ImportOptions::default()
        };
        let s = sample("logs.csv", "ts,prompt,completion,cached,tier,conv\n");
        assert!(error(&s, TraceFormat::Mapped, &bad)
            .starts_with("F:1: missing column \"user\" of the mapped format"));
    }

    /// A `/spend/logs` answer written by hand: a pretty-printed first row, a proxy cache hit, a
    /// failure whose `metadata` is JSON text (older rows: cache reads in
    /// `additional_usage_values`), and a row tied with it; an unknown key `foo`.
    const SPEND_LOG: &str = r#"[
  {"request_id": "req-1", "call_type": "acompletion", "api_key": "hashed", "spend": 0.0123,
   "total_tokens": 1250, "prompt_tokens": 1200, "completion_tokens": 50,
   "startTime": "2025-03-01T10:00:00.000000Z", "endTime": "2025-03-01T10:00:02.500000Z",
   "completionStartTime": "2025-03-01T10:00:00.500000Z",
   "model": "claude-sonnet-4-5", "model_group": "sonnet", "model_id": "dep-a",
   "api_base": "https://api.anthropic.com", "user": "alice", "team_id": "team-ide",
   "metadata": {"usage_object": {"prompt_tokens": 1200, "completion_tokens": 50,
     "prompt_tokens_details": {"cached_tokens": 1000}, "cache_creation_input_tokens": 150}},
   "cache_hit": "False", "request_tags": ["ide", "prod"], "session_id": "sess-1", "status": "success"},
  {"request_id": "req-2", "call_type": "acompletion", "spend": 0.0, "prompt_tokens": 1200, "completion_tokens": 50, "startTime": "2025-03-01T10:00:01Z", "endTime": "2025-03-01T10:00:01.010Z", "model": "claude-sonnet-4-5", "model_group": "sonnet", "cache_hit": "True", "status": "success"},
  {"request_id": "req-3", "call_type": "acompletion", "spend": 0.0, "prompt_tokens": 400, "completion_tokens": 20, "startTime": "2025-03-01T10:00:03.250Z", "endTime": "2025-03-01T10:00:04Z", "model": "claude-haiku-4-5", "model_group": "haiku", "team_id": "team-batch", "metadata": "{\"additional_usage_values\": {\"cache_read_input_tokens\": 300}}", "status": "failure", "foo": 1},
  {"request_id": "req-4", "call_type": "acompletion", "spend": 0.001, "prompt_tokens": 90, "completion_tokens": 10, "startTime": "2025-03-01T10:00:03.250+00:00", "endTime": "2025-03-01T10:00:03.900Z", "model": "claude-haiku-4-5", "model_group": "haiku", "end_user": "bob", "metadata": ""}
]
"#;

    #[test]
    fn litellm_spend_rows_become_requests() {
        let s = sample("spend.json", SPEND_LOG);
        let rule = |class: &str, model: Option<&str>, label: Option<&str>| ClassRule {
            class: class.into(),
            model: model.map(str::to_string),
            label: label.map(str::to_string),
            ..ClassRule::default()
        };
        let options = ImportOptions {
            classes: vec![
                rule("bulk", None, Some("team_id=team-batch")),
                rule("hard", Some("^sonnet$"), None),
                rule("async", None, Some("end_user=bob")),
            ],
            ..ImportOptions::default()
        };
        let (rows, importer) = import(&s, TraceFormat::LitellmSpend, &options).unwrap();
        type Got<'a> = (u64, &'a str, u64, u64, u64, u64, Option<&'a str>, u64);
        let got: Vec<Got<'_>> = rows
            .iter()
            .map(|r| {
                let row = &r.row;
                (
                    row.arrival_us,
                    importer.classes().name(row.class),
                    row.input_tokens,
                    row.cached_input_tokens,
                    row.cache_write_tokens,
                    row.output_tokens,
                    row.session.as_deref(),
                    r.line,
                )
            })
            .collect();
        // Arrivals from startTime, 10:00:00 the zero: 3.25 s for the two tied rows (file order).
        // Row 1: 1,000 of its 1,200 prompt tokens read from the cache and 150 written
        // (usage_object); row 3: 300 read (additional_usage_values). The cache hit (req-2)
        // never reached a provider.
        assert_eq!(
            got,
            vec![
                (0, "hard", 1200, 1000, 150, 50, Some("sess-1"), 2),
                (3_250_000, "bulk", 400, 300, 0, 20, None, 12),
                (3_250_000, "async", 90, 0, 0, 10, None, 13),
            ]
        );
        assert_eq!(rows.iter().map(|r| r.row.id.as_str()).collect::<Vec<_>>(), ["r0", "r1", "r2"]);
        let report = importer.report();
        assert_eq!((report.rows_read, report.imported, report.failed_rows), (3, 3, 1));
        assert_eq!(report.not_provider_calls.total(), 1);
        assert_eq!(report.unknown_keys.counts, BTreeMap::from([("foo".to_string(), 1)]));
        // Columns of the schema a trace has no use for: counted per row carrying them (the
        // cache hit's too), none of them unknown.
        assert_eq!(report.ignored_keys.counts["spend"], 4);
        assert_eq!(report.ignored_keys.counts["endTime"], 4);
        assert_eq!(report.ignored_keys.counts["api_key"], 1);
        assert!(!report.ignored_keys.counts.contains_key("model_group"));
        let summary = report.summary();
        assert!(summary.starts_with("3 rows read, 3 imported; 1 failed requests (0 dropped); 1 records not provider calls (LiteLLM proxy cache hit (cache_hit = True) ×1); unknown keys: foo ×1; keys ignored: api_base, api_key, "), "{summary}");
        // drop_failed leaves the failure out and counts it.
        let (kept, importer) =
            import(&s, TraceFormat::LitellmSpend, &ImportOptions { drop_failed: true, ..options }).unwrap();
        assert_eq!(kept.len(), 2);
        assert_eq!(importer.report().failed_dropped, 1);
    }

    /// One OTLP export request, pretty-printed, written by hand: the inferences out of order
    /// (OTLP batches what ended), a tool call, a failed call without usage; times in unix
    /// nanoseconds as strings, counts as `intValue` strings or numbers; an unknown span key.
    /// 1740823200 s is 2025-03-01T10:00:00Z.
    const OTLP: &str = r#"{"resourceSpans": [{
  "resource": {"attributes": [
    {"key": "service.name", "value": {"stringValue": "ide-agent"}},
    {"key": "host.name", "value": {"stringValue": "h1"}}]},
  "scopeSpans": [{
    "scope": {"name": "opentelemetry.instrumentation.anthropic"},
    "spans": [
      {"traceId": "t1", "spanId": "s2", "parentSpanId": "s1", "name": "chat claude-sonnet-4-5", "kind": 3,
       "startTimeUnixNano": "1740823203000000000", "endTimeUnixNano": "1740823204000000000",
       "attributes": [
         {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
         {"key": "gen_ai.request.model", "value": {"stringValue": "claude-sonnet-4-5"}},
         {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "2000"}},
         {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 40}},
         {"key": "gen_ai.usage.cache_read.input_tokens", "value": {"intValue": "1500"}},
         {"key": "gen_ai.conversation.id", "value": {"stringValue": "conv-9"}}],
       "status": {}},
      {"traceId": "t1", "spanId": "s1", "name": "chat claude-haiku-4-5", "kind": 3,
       "startTimeUnixNano": "1740823200000000000", "endTimeUnixNano": "1740823201500000000",
       "attributes": [
         {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
         {"key": "gen_ai.request.model", "value": {"stringValue": "claude-haiku-4-5"}},
         {"key": "gen_ai.request.max_tokens", "value": {"intValue": "1024"}},
         {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "500"}},
         {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "25"}},
         {"key": "gen_ai.conversation.id", "value": {"stringValue": "conv-9"}}],
       "status": {"code": 1}},
      {"traceId": "t1", "spanId": "s3", "parentSpanId": "s1", "name": "execute_tool grep",
       "startTimeUnixNano": "1740823201600000000", "endTimeUnixNano": "1740823202000000000",
       "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}}]},
      {"traceId": "t2", "spanId": "s4", "name": "chat claude-sonnet-4-5", "foo": 1,
       "startTimeUnixNano": "1740823205000000000", "endTimeUnixNano": "1740823205200000000",
       "attributes": [
         {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
         {"key": "gen_ai.request.model", "value": {"stringValue": "claude-sonnet-4-5"}},
         {"key": "error.type", "value": {"stringValue": "rate_limit_error"}}],
       "status": {"code": "STATUS_CODE_ERROR"}}
    ]}]}]}
"#;

    #[test]
    fn otel_genai_spans_become_requests_with_parent_links() {
        let s = sample("spans.json", OTLP);
        let options = ImportOptions {
            classes: vec![
                ClassRule { class: "bulk".into(), model: Some("haiku".into()), ..ClassRule::default() },
                ClassRule { class: "hard".into(), label: Some("^ide-agent$".into()), ..ClassRule::default() },
            ],
            ..ImportOptions::default()
        };
        let (rows, importer) = import(&s, TraceFormat::OtelGenai, &options).unwrap();
        type Got<'a> = (u64, &'a str, u64, u64, u64, u64, Option<&'a str>, u64);
        let got: Vec<Got<'_>> = rows
            .iter()
            .map(|r| {
                let row = &r.row;
                (
                    row.arrival_us,
                    importer.classes().name(row.class),
                    row.input_tokens,
                    row.cached_input_tokens,
                    row.output_tokens,
                    row.max_tokens,
                    row.session.as_deref(),
                    r.line,
                )
            })
            .collect();
        // Sorted by start: s1 at 0, s2 at 3 s, s4 at 5 s (its failure without usage has no
        // tokens). s2's parent s1 ended at 1.5 s: s2 is its closed-loop child with 1.5 s of
        // think time. A row without max_tokens reserves its output.
        assert_eq!(
            got,
            vec![
                (0, "bulk", 500, 0, 25, 1024, Some("conv-9"), 18),
                (3_000_000, "hard", 2000, 1500, 40, 40, Some("conv-9"), 8),
                (5_000_000, "hard", 0, 0, 0, 0, None, 31),
            ]
        );
        assert_eq!((rows[1].row.parent.as_deref(), rows[1].row.think_us), (Some("r0"), 1_500_000));
        assert_eq!((rows[0].row.parent.as_deref(), rows[2].row.parent.as_deref()), (None, None));
        let report = importer.report();
        assert_eq!((report.rows_read, report.imported, report.failed_rows), (3, 3, 1));
        assert_eq!(
            report.not_provider_calls.counts,
            BTreeMap::from([("span with gen_ai.operation.name = execute_tool".to_string(), 1)])
        );
        assert_eq!(report.unknown_keys.counts, BTreeMap::from([("span.foo".to_string(), 1)]));
        for key in ["resource.host.name", "scopeSpans.scope", "span.name", "span.kind"] {
            assert!(report.ignored_keys.counts.contains_key(key), "{key}: {:?}", report.ignored_keys);
        }
    }

    #[test]
    fn malformed_gateway_records_name_file_line_and_field() {
        let cases = [
            (
                SPEND_LOG.replacen("\"prompt_tokens\": 400", "\"prompt_tokens\": -3", 1),
                TraceFormat::LitellmSpend,
                r#"F:12: field "prompt_tokens": expected a non-negative integer, got "-3""#,
            ),
            (
                SPEND_LOG.replacen(
                    "\"startTime\": \"2025-03-01T10:00:03.250Z\"",
                    "\"startTime\": \"soon\"",
                    1,
                ),
                TraceFormat::LitellmSpend,
                r#"F:12: field "startTime": expected a date-time like"#,
            ),
            (
                SPEND_LOG.replacen("\"status\": \"failure\"", "\"status\": \"maybe\"", 1),
                TraceFormat::LitellmSpend,
                r#"F:12: field "status": expected "success" or "failure", got "\"maybe\"""#,
            ),
            (
                OTLP.replacen("{\"intValue\": \"500\"}", "{\"intValue\": \"x\"}", 1),
                TraceFormat::OtelGenai,
                r#"F:18: field "gen_ai.usage.input_tokens": expected a non-negative integer, got "x""#,
            ),
            (
                OTLP.replacen("\"1740823205200000000\"", "\"1740823204000000000\"", 1),
                TraceFormat::OtelGenai,
                r#"F:31: field "endTimeUnixNano": is before startTimeUnixNano"#,
            ),
        ];
        for (text, format, expected) in cases {
            let s = sample("bad.json", &text);
            let got = error(&s, format, &ImportOptions::default());
            assert!(got.starts_with(expected), "got: {got}\nexpected: {expected}");
            assert!(!got.contains('\n'), "one line: {got}");
        }
    }

    #[test]
    fn bad_rows_name_file_line_and_field() {
        let azure = "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,10,1\n";
        let cases = [
            (format!("{azure}2023-11-16 18:17:04,-5,1\n"), TraceFormat::Azure, r#"F:3: field "ContextTokens": expected a non-negative integer, got "-5""#),
            (format!("{azure}yesterday,5,1\n"), TraceFormat::Azure, r#"F:3: field "TIMESTAMP": expected a date-time like"#),
            (format!("{azure}2023-11-16 18:17:04,5\n"), TraceFormat::Azure, "F:3: expected 3 fields as in the header, found 2"),
            (format!("{azure}2023-11-16 18:17:02,5,1\n"), TraceFormat::Azure, r#"F:3: field "TIMESTAMP": 1700158622.000 s is earlier than the previous row's 1700158623.980 s"#),
            ("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n1,m,NaN,1,1,x\n".to_string(), TraceFormat::Burstgpt, r#"F:2: field "Request tokens": expected a non-negative integer, got "NaN""#),
            ("{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 1}\n{\"timestamp\": 1, \"input_length\": 5}\n".to_string(), TraceFormat::Mooncake, r#"F:2: field "output_length": missing"#),
            ("{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 1, \"hash_ids\": [-1]}\n".to_string(), TraceFormat::Mooncake, r#"F:1: field "hash_ids": expected non-negative integers, found -1"#),
            ("{\"timestamp\": 0,\n".to_string(), TraceFormat::Mooncake, "F:1: invalid JSON"),
            ("TIMESTAMP,Context,GeneratedTokens\n".to_string(), TraceFormat::Azure, r#"F:1: missing column "ContextTokens" of the azure format (found: TIMESTAMP, Context, GeneratedTokens)"#),
        ];
        for (text, format, expected) in cases {
            let s = sample("bad.txt", &text);
            let got = error(&s, format, &ImportOptions::default());
            assert!(got.starts_with(expected), "got: {got}\nexpected: {expected}");
        }
    }

    #[test]
    fn skip_bad_counts_and_reports_then_fails_past_the_budget() {
        let text = "TIMESTAMP,ContextTokens,GeneratedTokens\n\
                    2023-11-16 18:17:03,10,1\n\
                    2023-11-16 18:17:04,x,1\n\
                    2023-11-16 18:17:05,30,1\n\
                    2023-11-16 18:17:01,40,1\n\
                    2023-11-16 18:17:06,50,1\n";
        let s = sample("a.csv", text);
        let options = ImportOptions { skip_bad: 2, ..ImportOptions::default() };
        let (rows, importer) = import(&s, TraceFormat::Azure, &options).unwrap();
        assert_eq!(rows.iter().map(|r| r.row.input_tokens).collect::<Vec<_>>(), vec![10, 30, 50]);
        let report = importer.report();
        assert_eq!(report.skipped_bad, 2);
        assert!(report.skipped_examples[0]
            .ends_with(r#":3: field "ContextTokens": expected a non-negative integer, got "x""#));
        assert!(report.summary().contains("2 bad rows skipped"));
        let got = error(&s, TraceFormat::Azure, &ImportOptions { skip_bad: 1, ..ImportOptions::default() });
        assert!(got.starts_with("F:5: field \"TIMESTAMP\""), "{got}");
    }

    #[test]
    fn bad_options_name_the_field() {
        let s = sample("a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n");
        let opts =
            |o: ImportOptions| Importer::open(&s.path, TraceFormat::Azure, &o).err().unwrap().to_string();
        assert_eq!(
            opts(ImportOptions { rate_multiplier: 0.0, ..ImportOptions::default() }),
            "trace import: rate_multiplier: must be a finite number > 0, got 0"
        );
        let rule = ClassRule { class: "x".into(), model: Some("(".into()), ..ClassRule::default() };
        assert!(opts(ImportOptions { classes: vec![rule], ..ImportOptions::default() })
            .starts_with("trace import: classes[0].model: regex parse error"));
        assert!(Importer::open(&s.path, TraceFormat::Mapped, &ImportOptions::default())
            .err()
            .unwrap()
            .to_string()
            .contains("mapping: format \"mapped\" needs a mapping"));
    }
}
