//! Where a simulation's requests come from: one entry point, [`open_source`], over a routesim
//! CSV, an imported public trace or log, or a generator.
//!
//! Owns [`TraceSource`] (what a scenario's `[trace]` section or the CLI describes),
//! [`GeneratorConfig`] (the three generators behind one TOML `generator = "…"` key) and the
//! [`RequestStream`] trait every source implements: an iterator of requests that also tells,
//! at the end, the class table it used and what an import skipped. It must not know about the
//! engine: it hands out requests, in arrival order, one at a time.

use super::generate::{AgentTraceConfig, GenSummary};
use super::import::{ImportOptions, ImportReport, ImportedRow, Importer, TraceFormat};
use super::month::{MonthConfig, MonthRows};
use super::openloop::OpenLoopConfig;
use super::Row;
use super::{ClassTable, Request, TraceError, TraceReader, TraceWriter};
use serde::Deserialize;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A stream of requests in arrival order, with its class table and import report.
pub trait RequestStream: Iterator<Item = Result<Request, TraceError>> + Send {
    /// The classes of the requests read so far (complete once the stream is exhausted).
    fn classes(&self) -> ClassTable;
    /// What an import read and skipped; `None` for routesim CSVs and generators.
    fn report(&self) -> Option<ImportReport> {
        None
    }
    /// Bytes read so far and the source's size, when it is a file that knows it (progress).
    fn bytes_read(&self) -> Option<(u64, u64)> {
        None
    }
    /// Whether rows may name a parent (a routesim CSV with a `parent` column); imports never do.
    fn links_parents(&self) -> bool {
        false
    }
}

impl<R: std::io::Read + Send> RequestStream for TraceReader<R> {
    fn classes(&self) -> ClassTable {
        TraceReader::classes(self).clone()
    }
    fn bytes_read(&self) -> Option<(u64, u64)> {
        TraceReader::bytes_read(self)
    }
    fn links_parents(&self) -> bool {
        self.has_parent_column()
    }
}

/// `stream` with the parent links checked as closed-loop replay checks them (for readers that
/// do not replay, such as `sim trace stats`): ids unique and every `parent` naming an earlier
/// row, so a cycle (`a → b → a`: `a` names a later row) or a dangling parent is an input error
/// naming its line, with the engine's messages. Only a stream that [`RequestStream::links_parents`]
/// is checked; it then keeps one id per row (bounded by the file's size).
pub fn check_parent_links(stream: Box<dyn RequestStream>, name: &str) -> Box<dyn RequestStream> {
    let ids = stream.links_parents().then(std::collections::HashSet::new);
    Box::new(ParentLinked { inner: stream, name: name.to_string(), ids, done: false })
}

struct ParentLinked {
    inner: Box<dyn RequestStream>,
    name: String,
    ids: Option<std::collections::HashSet<u64>>,
    done: bool,
}

impl Iterator for ParentLinked {
    type Item = Result<Request, TraceError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.inner.next();
        let item = match (item, &mut self.ids) {
            (Some(Ok(request)), Some(ids)) => {
                let problem = if !ids.insert(request.id) {
                    Some(("id", "duplicate id (ids must be unique for closed-loop replay)"))
                } else if request.parent.is_some_and(|p| !ids.contains(&p)) {
                    Some(("parent", "unknown parent id (a parent must appear on an earlier row)"))
                } else {
                    None
                };
                match problem {
                    None => Some(Ok(request)),
                    Some((field, message)) => Some(Err(TraceError::Row {
                        file: self.name.clone(),
                        line: request.line,
                        field: Some(field.to_string()),
                        message: message.to_string(),
                    })),
                }
            }
            (item, _) => item,
        };
        self.done = !matches!(item, Some(Ok(_)));
        item
    }
}

impl RequestStream for ParentLinked {
    fn classes(&self) -> ClassTable {
        self.inner.classes()
    }
    fn report(&self) -> Option<ImportReport> {
        self.inner.report()
    }
    fn bytes_read(&self) -> Option<(u64, u64)> {
        self.inner.bytes_read()
    }
    fn links_parents(&self) -> bool {
        self.inner.links_parents()
    }
}

/// An [`Importer`] as a request stream.
pub struct ImportStream(pub Importer);

impl Iterator for ImportStream {
    type Item = Result<Request, TraceError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|row| row.map(|r| r.to_request()))
    }
}

impl RequestStream for ImportStream {
    fn classes(&self) -> ClassTable {
        self.0.classes().clone()
    }
    fn report(&self) -> Option<ImportReport> {
        Some(self.0.report())
    }
}

/// Generated rows as a request stream (line numbers as in the CSV the generator would write).
pub struct GeneratedStream {
    rows: GeneratedRows,
    line: u64,
    /// The generator's file (or `trace.generate`), for the errors a generator meets as it runs.
    name: String,
}

impl Iterator for GeneratedStream {
    type Item = Result<Request, TraceError>;
    fn next(&mut self) -> Option<Self::Item> {
        let row = match self.rows.next()? {
            Ok(row) => row,
            Err(e) => return Some(Err(locate(Path::new(&self.name), e))),
        };
        self.line += 1;
        Some(Ok(row.to_request(self.line)))
    }
}

/// A generator's rows in arrival order; a generator that meets a problem as it runs (a month
/// window past the agent generator's row limit) ends with that error.
pub type GeneratedRows = Box<dyn Iterator<Item = Result<Row, TraceError>> + Send>;

/// A month's rows, then its error if a window could not be generated.
struct MonthStream {
    rows: MonthRows,
    done: bool,
}

impl Iterator for MonthStream {
    type Item = Result<Row, TraceError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.rows.next() {
            Some(row) => Some(Ok(row)),
            None => {
                self.done = true;
                self.rows.take_error().map(Err)
            }
        }
    }
}

/// serde's "unknown field `x`, expected one of `a`, `b`, …" with the list cut after ten names
/// (the agent generator has 44 keys: the whole list would make a line of a kilobyte).
fn shorten_expected(message: &str) -> String {
    const SHOWN: usize = 10;
    let Some((head, list)) = message.split_once(", expected one of ") else { return message.to_string() };
    let names: Vec<&str> = list.split(", ").collect();
    if names.len() <= SHOWN {
        return message.to_string();
    }
    format!("{head}, expected one of {} and {} more", names[..SHOWN].join(", "), names.len() - SHOWN)
}

/// A generator configuration error (`TraceError::Config`, which names its key) located in the
/// generator file `path`: `g.toml:4: backfill_size: …`, the line from the key path. Other errors
/// are returned as they are; a file that cannot be read gives the error without a line.
pub fn locate(path: &Path, error: TraceError) -> TraceError {
    match error {
        TraceError::Config { field, message } => {
            let line = std::fs::read_to_string(path)
                .ok()
                .and_then(|text| crate::toml_lines::line_of_path(&text, &field));
            TraceError::Generator { file: path.display().to_string(), line, field, message }
        }
        other => other,
    }
}

impl RequestStream for GeneratedStream {
    fn classes(&self) -> ClassTable {
        ClassTable::new()
    }
}

/// The generators, selected in TOML by `generator = "agent" | "month" | "open_loop"`
/// (default `agent`, so older agent configs keep working).
#[derive(Clone, Debug, PartialEq)]
pub enum GeneratorConfig {
    /// About an hour of bursty coding-agent sessions ([`AgentTraceConfig`]).
    Agent(AgentTraceConfig),
    /// Days of agent traffic under a daily curve, streamed window by window ([`MonthConfig`]).
    Month(MonthConfig),
    /// Superposed clients with their own arrival processes ([`OpenLoopConfig`]).
    OpenLoop(OpenLoopConfig),
}

impl GeneratorConfig {
    /// Reads a generator config from a TOML table. Errors are `TraceError::Config` naming the
    /// key path within the table (`agent.session_rate_per_min`, `clients[0].process`).
    pub fn from_table(mut table: toml::Table) -> Result<GeneratorConfig, TraceError> {
        let err = |field: &str, message: String| TraceError::Config { field: field.to_string(), message };
        let kind = match table.remove("generator") {
            None => "agent".to_string(),
            Some(toml::Value::String(s)) => s,
            Some(other) => return Err(err("generator", format!("expected a string, got {other}"))),
        };
        fn typed<T: serde::de::DeserializeOwned>(table: toml::Table) -> Result<T, TraceError> {
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let path = e.path().to_string();
                let message = shorten_expected(e.into_inner().message().replace(['\n', '\r'], " ").trim());
                // An unknown key is reported at its table: name the key itself.
                let unknown = message
                    .strip_prefix("unknown field `")
                    .and_then(|rest| rest.split('`').next())
                    .map(str::to_string);
                let field = match (path.as_str(), unknown) {
                    ("." | "", Some(key)) => key,
                    ("." | "", None) => "generator".to_string(),
                    (path, Some(key)) if path == key || path.ends_with(&format!(".{key}")) => {
                        path.to_string()
                    }
                    (path, Some(key)) => format!("{path}.{key}"),
                    (path, None) => path.to_string(),
                };
                TraceError::Config { field, message }
            })
        }
        match kind.as_str() {
            "agent" => typed(table).map(GeneratorConfig::Agent),
            "month" => typed(table).map(GeneratorConfig::Month),
            "open_loop" => typed(table).map(GeneratorConfig::OpenLoop),
            other => {
                Err(err("generator", format!("unknown generator {other:?} (known: agent, month, open_loop)")))
            }
        }
    }

    /// Reads a generator config file; errors name the file and, when they can, the line
    /// (`g.toml:4: agent.session_rate_per_min: invalid type: …`).
    pub fn load(path: &Path) -> Result<GeneratorConfig, TraceError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TraceError::Io {
            file: name.clone(),
            action: "cannot open",
            source,
        })?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| {
            let (line, message) = crate::toml_lines::syntax_error(&text, &e);
            TraceError::Generator { file: name.clone(), line, field: String::new(), message }
        })?;
        Self::from_table(table).map_err(|e| locate(path, e))
    }

    /// Checks what can be checked before generating: every setting, and the span against
    /// `max_span` (a month's `days`, another generator's `duration`), so that no generator runs
    /// for a simulated decade. `base_dir` resolves the files an open-loop generator reads.
    /// Errors are `TraceError::Config` naming the key ([`locate`] gives them a file and line).
    pub fn check(&self, base_dir: &Path, max_span: crate::time::Duration) -> Result<(), TraceError> {
        match self {
            GeneratorConfig::Agent(c) => c.validate()?,
            GeneratorConfig::Month(c) => c.validate()?,
            GeneratorConfig::OpenLoop(c) => drop(c.rows(base_dir)?),
        }
        let span = self.duration();
        if span > max_span {
            let (field, what) = match self {
                GeneratorConfig::Month(c) => ("days", format!("{} days", c.days)),
                _ => ("duration", span.to_string()),
            };
            return Err(TraceError::Config {
                field: field.into(),
                message: format!(
                    "{what} is beyond the maximum trace span of {max_span} ([trace] max_span in a scenario)"
                ),
            });
        }
        Ok(())
    }

    /// The span the generator covers.
    pub fn duration(&self) -> crate::time::Duration {
        match self {
            GeneratorConfig::Agent(c) => c.duration,
            GeneratorConfig::Month(c) => c.duration(),
            GeneratorConfig::OpenLoop(c) => c.duration,
        }
    }

    /// Sets the seed.
    pub fn set_seed(&mut self, seed: u64) {
        match self {
            GeneratorConfig::Agent(c) => c.seed = seed,
            GeneratorConfig::Month(c) => c.seed = seed,
            GeneratorConfig::OpenLoop(c) => c.seed = seed,
        }
    }

    /// Sets the span (agent and open loop: `duration`; month: whole days, rounded up).
    pub fn set_duration(&mut self, duration: crate::time::Duration) {
        match self {
            GeneratorConfig::Agent(c) => c.duration = duration,
            GeneratorConfig::Month(c) => c.days = duration.as_micros().div_ceil(86_400_000_000).max(1) as u32,
            GeneratorConfig::OpenLoop(c) => c.duration = duration,
        }
    }

    /// The generated rows in arrival order, streamed (the agent generator holds its window).
    pub fn rows(&self, base_dir: &Path) -> Result<GeneratedRows, TraceError> {
        Ok(match self {
            GeneratorConfig::Agent(c) => Box::new(super::generate::generate_rows(c)?.0.into_iter().map(Ok)),
            GeneratorConfig::Month(c) => Box::new(MonthStream { rows: c.rows()?, done: false }),
            GeneratorConfig::OpenLoop(c) => Box::new(c.rows(base_dir)?.map(Ok)),
        })
    }

    /// Writes the generated trace to `out` and returns what it wrote.
    pub fn write<W: Write>(
        &self,
        base_dir: &Path,
        out: &mut TraceWriter<W>,
    ) -> Result<GenSummary, TraceError> {
        let mut summary = GenSummary::new(self.duration());
        for row in self.rows(base_dir)? {
            let row = row?;
            // A session's first call is the only one without a parent.
            if row.session.is_some() && row.parent.is_none() {
                summary.sessions += 1;
            }
            summary.write(&row, out)?;
        }
        Ok(summary)
    }
}

/// Where a simulation's requests come from.
#[derive(Clone, Debug, PartialEq)]
pub enum TraceSource {
    /// A file in one of the [`TraceFormat`]s.
    File { path: PathBuf, format: TraceFormat, options: ImportOptions },
    /// A generator, run afresh by every reader (deterministic).
    Generated {
        config: GeneratorConfig,
        /// Resolves files the generator reads (ServeGen, empirical traces).
        base_dir: PathBuf,
        /// What to call it in messages: the generator file, or `generate`.
        name: String,
    },
}

impl TraceSource {
    /// A routesim CSV.
    pub fn routesim(path: &Path) -> TraceSource {
        TraceSource::File {
            path: path.to_path_buf(),
            format: TraceFormat::Routesim,
            options: ImportOptions::default(),
        }
    }

    /// The name used in messages and summaries.
    pub fn name(&self) -> String {
        match self {
            TraceSource::File { path, .. } => path.display().to_string(),
            TraceSource::Generated { name, .. } => name.clone(),
        }
    }
}

/// Opens a source as a request stream. Every call starts from the beginning, so each strategy
/// of a scenario can stream the trace on its own.
pub fn open_source(source: &TraceSource) -> Result<Box<dyn RequestStream>, TraceError> {
    open_source_within(source, super::DEFAULT_MAX_SPAN)
}

/// [`open_source`] with another trace span limit (see [`super::check_span`]): a request whose
/// arrival, think time or deadline lies beyond `max_span` ends the stream with an input error
/// naming its line, so no time value can make a consumer allocate or run without bound.
pub fn open_source_within(
    source: &TraceSource,
    max_span: crate::time::Duration,
) -> Result<Box<dyn RequestStream>, TraceError> {
    open_source_limited(source, max_span, super::MAX_CLASSES, 1)
}

/// [`open_source_within`] for a run of `strategies` strategies that may track at most
/// `max_classes` distinct classes (built-ins included; see
/// [`crate::scenario::MAX_CLASS_STRATEGY_PAIRS`]): the row that brings one more ends the
/// stream with an input error naming its line.
pub fn open_source_limited(
    source: &TraceSource,
    max_span: crate::time::Duration,
    max_classes: usize,
    strategies: usize,
) -> Result<Box<dyn RequestStream>, TraceError> {
    let imported = matches!(source, TraceSource::File { format, .. } if *format != TraceFormat::Routesim);
    Ok(Box::new(SpanChecked {
        inner: open_unchecked(source)?,
        max_span,
        max_classes,
        strategies,
        name: source.name(),
        imported,
        done: false,
    }))
}

/// A stream whose requests are checked against the trace span limit and the class limit.
struct SpanChecked {
    inner: Box<dyn RequestStream>,
    max_span: crate::time::Duration,
    /// Class ids are issued in order of first appearance: the first id at this value is the
    /// class one too many.
    max_classes: usize,
    /// For the class limit's message.
    strategies: usize,
    name: String,
    /// An import: its times are the log's own (any unit), made relative to the first row.
    imported: bool,
    done: bool,
}

impl Iterator for SpanChecked {
    type Item = Result<Request, TraceError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.inner.next();
        let item = match item {
            Some(Ok(request)) if usize::from(request.class.0) >= self.max_classes => {
                let classes = self.inner.classes();
                let name = classes.iter().nth(usize::from(request.class.0)).map(|(_, n)| n.to_string());
                Some(Err(TraceError::Row {
                    file: self.name.clone(),
                    line: request.line,
                    field: Some("class".to_string()),
                    message: format!(
                        "too many distinct classes for {} strategies (at most {}: classes × strategies at most {}), at \
                         {}; map them to fewer classes or run fewer strategies",
                        self.strategies,
                        self.max_classes,
                        crate::scenario::MAX_CLASS_STRATEGY_PAIRS,
                        super::elide(name.as_deref().unwrap_or("?"))
                    ),
                }))
            }
            Some(Ok(request)) => match super::check_span(&request, self.max_span, &self.name) {
                Ok(()) => Some(Ok(request)),
                Err(_) if self.imported => Some(Err(TraceError::Row {
                    file: self.name.clone(),
                    line: request.line,
                    field: None,
                    message: format!(
                        "this row's time is {} after the start of the trace, beyond the maximum trace span of {}; check the \
                         unit of the timestamps (raise the limit with the scenario's [trace] max_span)",
                        crate::time::Duration::from_micros(request.arrival.as_micros()),
                        self.max_span
                    ),
                })),
                Err(e) => Some(Err(e)),
            },
            other => other,
        };
        self.done = !matches!(item, Some(Ok(_)));
        item
    }
}

impl RequestStream for SpanChecked {
    fn classes(&self) -> ClassTable {
        self.inner.classes()
    }
    fn report(&self) -> Option<ImportReport> {
        self.inner.report()
    }
    fn bytes_read(&self) -> Option<(u64, u64)> {
        self.inner.bytes_read()
    }
    fn links_parents(&self) -> bool {
        self.inner.links_parents()
    }
}

fn open_unchecked(source: &TraceSource) -> Result<Box<dyn RequestStream>, TraceError> {
    match source {
        TraceSource::File { path, format: TraceFormat::Routesim, .. } => {
            Ok(Box::new(TraceReader::open(path)?))
        }
        TraceSource::File { path, format, options } => {
            Ok(Box::new(ImportStream(Importer::open(path, *format, options)?)))
        }
        TraceSource::Generated { config, base_dir, name } => {
            let rows = config.rows(base_dir).map_err(|e| locate(Path::new(name), e))?;
            Ok(Box::new(GeneratedStream { rows, line: 1, name: name.clone() }))
        }
    }
}

/// Converts an import to the routesim CSV; returns the import report.
pub fn convert<W: Write>(
    path: &Path,
    format: TraceFormat,
    options: &ImportOptions,
    out: &mut TraceWriter<W>,
) -> Result<ImportReport, TraceError> {
    let mut importer = Importer::open(path, format, options)?;
    while let Some(row) = importer.next() {
        let imported: ImportedRow = row?;
        out.write(&imported.row.trace_row(importer.classes().name(imported.row.class)))?;
    }
    Ok(importer.report())
}

/// The `[trace]` section's source settings as written in a scenario, before validation.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    /// File, relative to the scenario.
    pub file: Option<PathBuf>,
    /// Format of `file`. Default routesim.
    pub format: Option<String>,
    /// Import options.
    pub import: Option<ImportOptions>,
    /// An inline generator config.
    pub generate: Option<toml::Table>,
    /// A generator config file, relative to the scenario.
    pub generator: Option<PathBuf>,
}

/// A `[trace]` section that does not resolve to a [`TraceSource`].
#[derive(Debug, thiserror::Error)]
pub enum SourceSectionError {
    /// A field of the section is invalid; `field` is its path from the scenario's root
    /// (`trace`, `trace.format`, `trace.import.window`, …).
    #[error("{field}: {message}")]
    Field { field: String, message: String },
    /// The import options or the generator configuration (inline or file) are invalid.
    #[error(transparent)]
    Trace(#[from] TraceError),
}

impl SourceSectionError {
    fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        SourceSectionError::Field { field: field.into(), message: message.into() }
    }
}

impl SourceSection {
    /// Validates into a [`TraceSource`]; `base_dir` resolves paths, `max_span` bounds a
    /// generator's span. Errors name the field under the scenario's `trace.` path (a generator
    /// file's own errors follow it with that file and line: `trace.generator: g.toml:4: …`).
    pub fn resolve(
        &self,
        base_dir: &Path,
        max_span: crate::time::Duration,
    ) -> Result<TraceSource, SourceSectionError> {
        let given = [self.file.is_some(), self.generate.is_some(), self.generator.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(SourceSectionError::field("trace", "give exactly one of file, generate, generator"));
        }
        if let Some(file) = &self.file {
            let format = match &self.format {
                None => TraceFormat::Routesim,
                Some(name) => TraceFormat::parse(name)
                    .map_err(|m| SourceSectionError::field("trace.format", m.to_string()))?,
            };
            let options = self.import.clone().unwrap_or_default();
            if format == TraceFormat::Routesim && self.import.is_some() {
                return Err(SourceSectionError::field(
                    "trace.import",
                    format!("import options apply to formats {}", TraceFormat::imported_names()),
                ));
            }
            if format != TraceFormat::Routesim {
                options.validate(format).map_err(|e| match e {
                    TraceError::Import { field, message } => {
                        SourceSectionError::Field { field: format!("trace.import.{field}"), message }
                    }
                    other => SourceSectionError::Trace(other),
                })?;
            }
            return Ok(TraceSource::File { path: base_dir.join(file), format, options });
        }
        if self.format.is_some() || self.import.is_some() {
            return Err(SourceSectionError::field(
                "trace",
                "format and import apply to a file, not to a generator",
            ));
        }
        if let Some(table) = &self.generate {
            let inline = |e: TraceError| match e {
                TraceError::Config { field, message } => {
                    SourceSectionError::Field { field: format!("trace.generate.{field}"), message }
                }
                other => SourceSectionError::Trace(other),
            };
            let config = GeneratorConfig::from_table(table.clone()).map_err(inline)?;
            config.check(base_dir, max_span).map_err(inline)?;
            return Ok(TraceSource::Generated {
                config,
                base_dir: base_dir.to_path_buf(),
                name: "trace.generate".into(),
            });
        }
        let Some(generator) = self.generator.as_ref() else {
            return Err(SourceSectionError::field("trace", "give exactly one of file, generate, generator"));
        };
        let path = base_dir.join(generator);
        let in_file = |e: TraceError| SourceSectionError::field("trace.generator", e.to_string());
        let config = GeneratorConfig::load(&path).map_err(in_file)?;
        let generator_dir = path.parent().unwrap_or(Path::new("."));
        config.check(generator_dir, max_span).map_err(|e| in_file(locate(&path, e)))?;
        Ok(TraceSource::Generated {
            config,
            base_dir: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            name: path.display().to_string(),
        })
    }
}
