//! The built-in bursty coding-agent trace generator.
//!
//! Models an hour (by default) of an engineering team's LLM traffic, shaped after the
//! published statistics in `PROVIDERS.md` ("Agent traffic shape"):
//!
//! - **Agent sessions** start by an on/off-modulated Poisson process: quiet periods at
//!   `session_rate_per_min`, bursts at `burst_multiplier` times that rate, both with
//!   exponential lengths (the Azure code trace alternates silences of minutes and bursts).
//!   A session has about 4 turns (geometric); a turn is a closed-loop chain of about 8 calls
//!   (geometric) separated by tool time (lognormal). The first call of a turn is `interactive`
//!   (a human typed and waits) and follows a user think time; the others are `hard`. Each call's
//!   `parent` is the previous call of the session. In some turns the agent fans out 2–4
//!   parallel sub-agent calls sharing one parent; the chain then continues from the sub-agent
//!   that finishes last (nominally).
//! - **Retry storms** (off by default): with `retry_storm_probability` a call fails and the
//!   agent retries it, geometric(`retry_storm_mean_retries`) times with doubling backoff; each
//!   retry repeats the prompt (fully cached) as a child of the previous attempt.
//! - **Context** grows along a session from about 8k tokens by each call's output and each
//!   tool result, up to `max_context_tokens` where the agent compacts it. A warm call reads
//!   about `warm_cached_fraction` of its prompt from the cache and writes the new part; a
//!   cold call (first of a session, after compaction, or after more than `cache_ttl` idle)
//!   reads only the shared system prompt. Output is about input / 128 (lognormal).
//! - **Background**: `bulk` calls (summaries, classification: medium prompts, no cache) as a
//!   Poisson stream with occasional backfill bursts, and `async` jobs arriving in periodic
//!   bursts with a deadline (24 h by default).
//!
//! Children's `arrival_ms` is their *nominal* start: parent arrival + nominal latency
//! (`nominal_first_token` + output / `nominal_output_tokens_per_s`) + think time. In
//! closed-loop replay the engine decides the real start from the parent's real completion.
//!
//! Deterministic: every stream draws from its own [`DrawKey`] (purpose [`Purpose::TraceGen`])
//! derived from `seed`, so a seed gives byte-identical output.
//!
//! Rows are collected in memory and sorted by arrival before writing: fine for the hours of
//! traffic this generator targets (thousands to a few hundred thousand rows). Month-scale
//! traffic streams one window at a time through [`super::month`].

use super::{ClassId, Row, TraceError, TraceWriter, BUILTIN_CLASSES};
use crate::dist::{exponential, standard_normal};
use crate::rng::{hash_str, DrawKey, Purpose, SplitMix64};
use crate::time::{Duration, MICROS_PER_HOUR, MICROS_PER_MIN, MICROS_PER_MS, MICROS_PER_S};
use crate::validate::{is_non_negative, is_positive, is_probability};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::io::Write;

/// Configuration of [`generate_agent_trace`]. Every field has a default (see
/// [`AgentTraceConfig::default`]); in TOML, durations are strings with a unit (`"90s"`).
/// The defaults give about 3,000–6,000 requests per hour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentTraceConfig {
    /// Seed of every random draw; the same seed gives a byte-identical trace. Default 1.
    pub seed: u64,
    /// Length of the generated window; calls that would start later are dropped. Default 1h.
    pub duration: Duration,

    // --- agent sessions ---
    /// Session starts per minute in quiet periods. Default 0.8.
    pub session_rate_per_min: f64,
    /// Session start rate during bursts, as a multiple of the quiet rate. Default 5.
    pub burst_multiplier: f64,
    /// Mean length of a burst (exponential). Default 3m.
    pub mean_on: Duration,
    /// Mean length of a quiet period (exponential). Default 8m.
    pub mean_off: Duration,
    /// Mean turns per session (geometric, at least 1). Default 4.
    pub turns_per_session: f64,
    /// Mean LLM calls per turn, excluding fan-out sub-agent calls (geometric, at least 1).
    /// Default 8.
    pub calls_per_turn: f64,
    /// Probability that a turn fans out into parallel sub-agent calls. Default 0.1.
    pub fan_out_probability: f64,
    /// Fewest parallel sub-agent calls in a fan-out. Default 2.
    pub fan_out_min: u32,
    /// Most parallel sub-agent calls in a fan-out (uniform between min and max). Default 4.
    pub fan_out_max: u32,
    /// The agent harness's cap on sub-agents running at once (Claude Code's default is 20):
    /// sub-agent k of a fan-out, k >= the cap, starts when sub-agent k − cap finishes (its
    /// `parent`). Default none (every sub-agent at once).
    pub max_parallel_subagents: Option<u32>,
    /// Probability that a call fails and the agent retries it (a retry storm). Default 0.
    pub retry_storm_probability: f64,
    /// Mean retries in a storm (geometric, at least 1). Default 3.
    pub retry_storm_mean_retries: f64,
    /// Median wait before the first retry (lognormal, spread 0.5); it doubles with each
    /// retry, as SDK backoff does. Default 1s.
    pub retry_backoff_median: Duration,
    /// Median tool time between a call's completion and the next call (lognormal): the
    /// `think_ms` of `hard` calls. Default 3s.
    pub tool_time_median: Duration,
    /// Log-scale spread of tool time. Default 1.0.
    pub tool_time_sigma: f64,
    /// Median time a user takes before the next turn (lognormal): the `think_ms` of the
    /// `interactive` calls after the first turn. Default 30s.
    pub user_think_median: Duration,
    /// Log-scale spread of user think time. Default 1.0.
    pub user_think_sigma: f64,

    // --- tokens of agent calls ---
    /// Median prompt of a session's first call (lognormal, spread 0.3). Default 8000.
    pub initial_context_tokens: u64,
    /// Median tokens a tool result (or user message) adds to the context (lognormal, spread
    /// 1.0). Default 2500.
    pub tool_result_median_tokens: u64,
    /// Context size at which the agent compacts its context. Default 150000.
    pub max_context_tokens: u64,
    /// Context size right after compaction (a cold cache). Default 30000.
    pub compacted_context_tokens: u64,
    /// Shared system prompt: the part of a cold call's prompt still read from cache.
    /// Default 6000.
    pub system_prompt_tokens: u64,
    /// Mean share of a warm call's prompt read from cache; the rest is written to cache.
    /// With cold calls the trace-wide share lands near the published 86%. Default 0.88.
    pub warm_cached_fraction: f64,
    /// An idle gap longer than this between two calls of a session makes the next one cold.
    /// Default 5m.
    pub cache_ttl: Duration,
    /// Mean prompt : completion ratio of agent calls (published ≈ 128 : 1). Default 128.
    pub input_output_ratio: f64,
    /// Log-scale spread of output tokens around input / ratio. Default 0.6.
    pub output_sigma: f64,
    /// Smallest `max_tokens` an agent call asks for; larger outputs round up to a power of two.
    /// Default 8192.
    pub agent_max_tokens: u64,
    /// Nominal time to first token, used only to place children in time. Default 2s.
    pub nominal_first_token: Duration,
    /// Nominal output speed, used only to place children in time. Default 60.
    pub nominal_output_tokens_per_s: f64,

    // --- background traffic ---
    /// Poisson rate of `bulk` calls per minute. Default 6.
    pub bulk_rate_per_min: f64,
    /// Poisson rate of bulk backfill bursts per hour. Default 2.
    pub backfill_bursts_per_hour: f64,
    /// `bulk` calls per backfill burst. Default 200.
    pub backfill_size: u64,
    /// A backfill burst's calls arrive uniformly over this span. Default 2m.
    pub backfill_spread: Duration,
    /// Median prompt of a `bulk` call (lognormal). Default 3000.
    pub bulk_input_median_tokens: u64,
    /// Median output of a `bulk` call (lognormal). Default 200.
    pub bulk_output_median_tokens: u64,
    /// Period of `async` job bursts (cron-like; the first at a random offset). Default 20m.
    pub async_burst_interval: Duration,
    /// `async` jobs per burst. Default 100.
    pub async_jobs_per_burst: u64,
    /// An async burst's jobs arrive uniformly over this span. Default 1m.
    pub async_burst_spread: Duration,
    /// Median prompt of an `async` job (lognormal). Default 6000.
    pub async_input_median_tokens: u64,
    /// Median output of an `async` job (lognormal). Default 800.
    pub async_output_median_tokens: u64,
    /// Deadline of `async` jobs, relative to arrival. Default 24h.
    pub async_deadline: Duration,
    /// Log-scale spread of background prompts and outputs. Default 0.8.
    pub background_token_sigma: f64,
}

impl Default for AgentTraceConfig {
    fn default() -> Self {
        AgentTraceConfig {
            seed: 1,
            duration: Duration::from_mins(60),
            session_rate_per_min: 0.8,
            burst_multiplier: 5.0,
            mean_on: Duration::from_mins(3),
            mean_off: Duration::from_mins(8),
            turns_per_session: 4.0,
            calls_per_turn: 8.0,
            fan_out_probability: 0.1,
            fan_out_min: 2,
            fan_out_max: 4,
            max_parallel_subagents: None,
            retry_storm_probability: 0.0,
            retry_storm_mean_retries: 3.0,
            retry_backoff_median: Duration::from_secs(1),
            tool_time_median: Duration::from_secs(3),
            tool_time_sigma: 1.0,
            user_think_median: Duration::from_secs(30),
            user_think_sigma: 1.0,
            initial_context_tokens: 8_000,
            tool_result_median_tokens: 2_500,
            max_context_tokens: 150_000,
            compacted_context_tokens: 30_000,
            system_prompt_tokens: 6_000,
            warm_cached_fraction: 0.88,
            cache_ttl: Duration::from_mins(5),
            input_output_ratio: 128.0,
            output_sigma: 0.6,
            agent_max_tokens: 8_192,
            nominal_first_token: Duration::from_secs(2),
            nominal_output_tokens_per_s: 60.0,
            bulk_rate_per_min: 6.0,
            backfill_bursts_per_hour: 2.0,
            backfill_size: 200,
            backfill_spread: Duration::from_mins(2),
            bulk_input_median_tokens: 3_000,
            bulk_output_median_tokens: 200,
            async_burst_interval: Duration::from_mins(20),
            async_jobs_per_burst: 100,
            async_burst_spread: Duration::from_mins(1),
            async_input_median_tokens: 6_000,
            async_output_median_tokens: 800,
            async_deadline: Duration::from_secs(86_400),
            background_token_sigma: 0.8,
        }
    }
}

impl AgentTraceConfig {
    /// Checks every value; the error names the field.
    pub fn validate(&self) -> Result<(), TraceError> {
        let err = |field: &str, message: &str| {
            Err(TraceError::Config { field: field.to_string(), message: message.to_string() })
        };
        let non_negative = [
            ("session_rate_per_min", self.session_rate_per_min),
            ("burst_multiplier", self.burst_multiplier),
            ("tool_time_sigma", self.tool_time_sigma),
            ("user_think_sigma", self.user_think_sigma),
            ("output_sigma", self.output_sigma),
            ("bulk_rate_per_min", self.bulk_rate_per_min),
            ("backfill_bursts_per_hour", self.backfill_bursts_per_hour),
            ("background_token_sigma", self.background_token_sigma),
        ];
        for (field, value) in non_negative {
            if !is_non_negative(value) {
                return err(field, "must be a finite number >= 0");
            }
        }
        for (field, value) in
            [("turns_per_session", self.turns_per_session), ("calls_per_turn", self.calls_per_turn)]
        {
            if !(1.0..=1_000.0).contains(&value) {
                return err(field, "must be between 1 and 1000");
            }
        }
        if !(1.0..=1_000.0).contains(&self.retry_storm_mean_retries) {
            return err("retry_storm_mean_retries", "must be between 1 and 1000");
        }
        for (field, value) in [
            ("retry_storm_probability", self.retry_storm_probability),
            ("fan_out_probability", self.fan_out_probability),
            ("warm_cached_fraction", self.warm_cached_fraction),
        ] {
            if !is_probability(value) {
                return err(field, "must be between 0 and 1");
            }
        }
        for (field, value) in [
            ("input_output_ratio", self.input_output_ratio),
            ("nominal_output_tokens_per_s", self.nominal_output_tokens_per_s),
        ] {
            if !is_positive(value) {
                return err(field, "must be a finite number > 0");
            }
        }
        for (field, value) in [
            ("duration", self.duration),
            ("mean_on", self.mean_on),
            ("mean_off", self.mean_off),
            ("async_burst_interval", self.async_burst_interval),
        ] {
            if value.is_zero() {
                return err(field, "must be longer than zero");
            }
        }
        for (field, value, max) in [
            ("session_rate_per_min", self.session_rate_per_min, 10_000.0),
            ("burst_multiplier", self.burst_multiplier, 1_000.0),
            ("bulk_rate_per_min", self.bulk_rate_per_min, 600_000.0),
            ("backfill_bursts_per_hour", self.backfill_bursts_per_hour, 3_600.0),
            ("backfill_size", self.backfill_size as f64, MAX_AGENT_ROWS as f64),
        ] {
            if value > max {
                return Err(TraceError::Config {
                    field: field.to_string(),
                    message: format!("{value} is above the maximum of {max}"),
                });
            }
        }
        if self.fan_out_min == 0 || self.fan_out_min > self.fan_out_max {
            return err("fan_out_min", "must be >= 1 and <= fan_out_max");
        }
        if self.max_parallel_subagents == Some(0) {
            return err("max_parallel_subagents", "must be >= 1 (omit it for no cap)");
        }
        if self.initial_context_tokens == 0 {
            return err("initial_context_tokens", "must be > 0");
        }
        if self.compacted_context_tokens >= self.max_context_tokens {
            return err("compacted_context_tokens", "must be smaller than max_context_tokens");
        }
        Ok(())
    }

    /// This configuration with one field set from text, as a `--set key=value` flag would:
    /// `value` is read as a TOML value (`3`, `0.5`, `"2h"`) or, failing that, as a string
    /// (`2h`). Unknown keys and ill-typed values are errors naming the key.
    pub fn with_override(&self, key: &str, value: &str) -> Result<Self, TraceError> {
        let config_err = |message: String| TraceError::Config { field: key.to_string(), message };
        let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        let mut table = toml::Table::try_from(self).map_err(|e| config_err(e.to_string()))?;
        table.insert(key.to_string(), value);
        AgentTraceConfig::deserialize(toml::Value::Table(table))
            .map_err(|e| config_err(e.to_string().trim().to_string()))
    }
}

/// What [`generate_agent_trace`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GenSummary {
    /// Rows written.
    pub requests: u64,
    /// Agent sessions with at least one call in the window.
    pub sessions: u64,
    /// Rows per class, in built-in class order (`interactive`, `hard`, `bulk`, `async`).
    pub by_class: Vec<(String, u64)>,
    /// Sum of `input_tokens` (cached included).
    pub input_tokens: u64,
    /// Sum of `cached_input_tokens`.
    pub cached_input_tokens: u64,
    /// Sum of `output_tokens`.
    pub output_tokens: u64,
    /// The generated window (the configured `duration`), in ms.
    pub duration_ms: u64,
}

/// Writes a bursty agent trace for `config` to `out` (rows sorted by arrival) and returns what
/// it wrote. The writer is not finished: call [`TraceWriter::finish`] afterwards.
pub fn generate_agent_trace<W: Write>(
    config: &AgentTraceConfig,
    out: &mut TraceWriter<W>,
) -> Result<GenSummary, TraceError> {
    let (rows, sessions) = generate_rows(config)?;
    let mut summary = GenSummary::new(config.duration);
    summary.sessions = sessions;
    for row in &rows {
        summary.write(row, out)?;
    }
    Ok(summary)
}

/// The rows of one agent trace, sorted by arrival (then generation order), and the number of
/// sessions with a call in the window. Held in memory: one window's worth.
pub(crate) fn generate_rows(config: &AgentTraceConfig) -> Result<(Vec<Row>, u64), TraceError> {
    config.validate()?;
    let mut generator =
        Generator { config, end_us: config.duration.as_micros(), rows: Vec::new(), overflow: false };
    let starts = generator.session_starts();
    generator.overflow = starts.len() > MAX_AGENT_ROWS;
    let mut sessions = 0;
    for (index, start_us) in starts.into_iter().enumerate() {
        if generator.overflow {
            break;
        }
        if generator.session(index as u64, start_us) {
            sessions += 1;
        }
    }
    if !generator.overflow {
        generator.bulk();
        generator.async_jobs();
    }
    if generator.overflow {
        return Err(TraceError::Config {
            field: "duration".into(),
            message: format!(
                "the agent generator would hold more than {MAX_AGENT_ROWS} rows in memory; lower its rates, \
                 sizes or duration, or use generator = \"month\" (it streams)"
            ),
        });
    }

    let mut rows = generator.rows;
    // Generation order is causal within a session, so it breaks ties after rounding to ms.
    rows.sort_by_key(|row| (row.arrival_us / MICROS_PER_MS, row.seq));
    Ok((rows, sessions))
}

impl GenSummary {
    /// An empty summary of a trace spanning `duration`.
    pub(crate) fn new(duration: Duration) -> Self {
        GenSummary {
            by_class: BUILTIN_CLASSES.iter().map(|c| (c.to_string(), 0)).collect(),
            duration_ms: duration.as_micros() / MICROS_PER_MS,
            ..GenSummary::default()
        }
    }

    /// Writes `row` and counts it.
    pub(crate) fn write<W: Write>(&mut self, row: &Row, out: &mut TraceWriter<W>) -> Result<(), TraceError> {
        out.write(&row.trace_row(BUILTIN_CLASSES[usize::from(row.class.0)]))?;
        self.count(row);
        Ok(())
    }

    /// Counts `row` (class must be a built-in).
    pub(crate) fn count(&mut self, row: &Row) {
        self.requests += 1;
        if let Some(entry) = self.by_class.get_mut(usize::from(row.class.0)) {
            entry.1 += 1;
        }
        self.input_tokens += row.input_tokens;
        self.cached_input_tokens += row.cached_input_tokens;
        self.output_tokens += row.output_tokens;
    }
}

/// The last call of a session's chain: the parent of the next one.
struct Link {
    id: String,
    /// Nominal completion: arrival + nominal latency.
    done_us: u64,
}

/// The evolving state of one agent session.
struct Session {
    name: String,
    context_tokens: u64,
    /// Arrival of the session's latest call (the cache's last use).
    last_use_us: Option<u64>,
    cold: bool,
}

struct Generator<'a> {
    config: &'a AgentTraceConfig,
    end_us: u64,
    rows: Vec<Row>,
    /// More than [`MAX_AGENT_ROWS`] rows were asked for (the rest were not kept).
    overflow: bool,
}

/// The agent generator holds its whole window in memory (to sort it): it refuses to build
/// more rows than this. The month generator streams and has no such limit.
pub const MAX_AGENT_ROWS: usize = 1_000_000;

impl Generator<'_> {
    fn rng(&self, stream: &str, index: u64) -> SplitMix64 {
        DrawKey {
            seed: self.config.seed,
            request: index,
            attempt: 0,
            deployment: hash_str(stream),
            purpose: Purpose::TraceGen,
        }
        .rng()
    }

    fn push(&mut self, mut row: Row) {
        if self.rows.len() >= MAX_AGENT_ROWS {
            self.overflow = true;
            return;
        }
        row.seq = self.rows.len() as u64;
        self.rows.push(row);
    }

    /// Session start instants (µs) of the on/off-modulated Poisson process.
    fn session_starts(&self) -> Vec<u64> {
        let c = self.config;
        let mut rng = self.rng("sessions", 0);
        let (mean_on, mean_off) = (c.mean_on.as_micros() as f64, c.mean_off.as_micros() as f64);
        // Start in the stationary state distribution.
        let mut on = rng.next_open01() < mean_on / (mean_on + mean_off);
        let mut starts = Vec::new();
        let mut t = 0.0;
        while t < self.end_us as f64 {
            let state_end = t + exponential(&mut rng, if on { mean_on } else { mean_off });
            let rate_per_min = c.session_rate_per_min * if on { c.burst_multiplier } else { 1.0 };
            if rate_per_min > 0.0 {
                let mean_gap = MICROS_PER_MIN as f64 / rate_per_min;
                loop {
                    t += exponential(&mut rng, mean_gap);
                    if t >= state_end || t >= self.end_us as f64 {
                        break;
                    }
                    if starts.len() > MAX_AGENT_ROWS {
                        return starts; // every session has a call: more is an overflow
                    }
                    starts.push(t as u64);
                }
            }
            // Poisson arrivals are memoryless: restarting the clock at the switch is exact.
            t = state_end;
            on = !on;
        }
        starts
    }

    /// Generates one session; true if at least one of its calls is in the window.
    fn session(&mut self, index: u64, start_us: u64) -> bool {
        let c = self.config;
        let mut rng = self.rng("session", index);
        let mut session = Session {
            name: format!("s{index}"),
            context_tokens: lognormal(&mut rng, c.initial_context_tokens as f64, 0.3).max(1.0) as u64,
            last_use_us: None,
            cold: true,
        };
        let turns = geometric(&mut rng, c.turns_per_session);
        let mut prev: Option<Link> = None;
        for turn in 0..turns {
            let calls = geometric(&mut rng, c.calls_per_turn);
            let fan_out_after =
                (rng.next_open01() < c.fan_out_probability).then(|| uniform_int(&mut rng, 0, calls - 1));
            for call in 0..calls {
                let (class, think_us) = match (call, turn) {
                    (0, 0) => (ClassId::INTERACTIVE, 0),
                    (0, _) => (
                        ClassId::INTERACTIVE,
                        duration_draw(&mut rng, c.user_think_median, c.user_think_sigma),
                    ),
                    _ => (ClassId::HARD, duration_draw(&mut rng, c.tool_time_median, c.tool_time_sigma)),
                };
                let arrival_us = prev.as_ref().map_or(start_us, |p| p.done_us + think_us);
                if arrival_us >= self.end_us {
                    return prev.is_some();
                }
                let id = format!("s{index}-t{turn}-c{call}");
                let link =
                    self.agent_call(&mut rng, &mut session, id, class, arrival_us, think_us, prev.as_ref());
                session.context_tokens += link.1;
                prev = Some(link.0);
                // Drawn only when enabled, so configs without storms keep their numbers.
                if c.retry_storm_probability > 0.0 && rng.next_open01() < c.retry_storm_probability {
                    prev = self.retry_storm(&mut rng, prev.take().expect("a call was just generated"));
                    if prev.is_none() {
                        return true;
                    }
                }

                if fan_out_after == Some(call) {
                    let parent = prev.take().expect("a call was just generated");
                    let think_us = duration_draw(&mut rng, c.tool_time_median, c.tool_time_sigma);
                    let arrival_us = parent.done_us + think_us;
                    if arrival_us >= self.end_us {
                        return true;
                    }
                    let width = uniform_int(&mut rng, u64::from(c.fan_out_min), u64::from(c.fan_out_max));
                    let mut added = 0;
                    let mut subs: Vec<Link> = Vec::new();
                    for sub in 0..width {
                        let id = format!("s{index}-t{turn}-c{call}-f{sub}");
                        // Past the harness's cap, a sub-agent waits for the one `cap` places
                        // earlier to finish, and starts at once.
                        let waits_for = c
                            .max_parallel_subagents
                            .and_then(|cap| (sub as usize).checked_sub(cap as usize))
                            .map(|earlier| &subs[earlier]);
                        let (sub_parent, sub_arrival_us, sub_think_us) = match waits_for {
                            None => (&parent, arrival_us, think_us),
                            Some(earlier) => (earlier, earlier.done_us, 0),
                        };
                        if sub_arrival_us >= self.end_us {
                            break;
                        }
                        let sub_parent = Link { id: sub_parent.id.clone(), done_us: sub_parent.done_us };
                        let (link, grown) = self.agent_call(
                            &mut rng,
                            &mut session,
                            id,
                            ClassId::HARD,
                            sub_arrival_us,
                            sub_think_us,
                            Some(&sub_parent),
                        );
                        added += grown;
                        subs.push(link);
                    }
                    session.context_tokens += added;
                    // The chain continues from the sub-agent that finishes last (the first of
                    // equals, as before).
                    prev = subs
                        .into_iter()
                        .reduce(|last, link| if link.done_us > last.done_us { link } else { last });
                }
            }
        }
        true
    }

    /// Emits one agent call and returns its link and how much it grows the context.
    #[allow(clippy::too_many_arguments)]
    fn agent_call(
        &mut self,
        rng: &mut SplitMix64,
        session: &mut Session,
        id: String,
        class: ClassId,
        arrival_us: u64,
        think_us: u64,
        parent: Option<&Link>,
    ) -> (Link, u64) {
        let c = self.config;
        if session.context_tokens > c.max_context_tokens {
            session.context_tokens = c.compacted_context_tokens.max(1);
            session.cold = true;
        }
        let idle = session.last_use_us.is_none_or(|t| arrival_us.saturating_sub(t) > c.cache_ttl.as_micros());
        let input_tokens = session.context_tokens;
        let cached_input_tokens = if session.cold || idle {
            c.system_prompt_tokens.min(input_tokens)
        } else {
            // The new part's share has mean 1 - warm_cached_fraction (lognormal, mean-scaled).
            const SPREAD: f64 = 0.5;
            let share =
                (1.0 - c.warm_cached_fraction) * lognormal(rng, 1.0, SPREAD) / (SPREAD * SPREAD / 2.0).exp();
            let new_tokens = (input_tokens as f64 * share.min(1.0)).round() as u64;
            input_tokens - new_tokens.min(input_tokens)
        };
        session.cold = false;
        session.last_use_us = Some(arrival_us);
        let mean_output = input_tokens as f64 / c.input_output_ratio;
        let output_tokens = (mean_output * lognormal(rng, 1.0, c.output_sigma)
            / (c.output_sigma * c.output_sigma / 2.0).exp())
        .round()
        .max(16.0) as u64;
        let tool_result = lognormal(rng, c.tool_result_median_tokens as f64, 1.0).round() as u64;
        let done_us = arrival_us + nominal_latency_us(c, output_tokens);
        self.push(Row {
            arrival_us,
            seq: 0,
            id: id.clone(),
            class,
            input_tokens,
            cached_input_tokens,
            cache_write_tokens: input_tokens - cached_input_tokens,
            output_tokens,
            max_tokens: c.agent_max_tokens.max(output_tokens.next_power_of_two()),
            session: Some(session.name.clone()),
            parent: parent.map(|p| p.id.clone()),
            think_us,
            deadline_ms: None,
        });
        (Link { id, done_us }, output_tokens + tool_result)
    }

    /// A failed call retried with exponential backoff: each retry repeats the last row's
    /// prompt (now fully cached) as a child of the previous attempt. Returns the link of the
    /// last retry, or `None` if the storm runs past the window.
    fn retry_storm(&mut self, rng: &mut SplitMix64, failed: Link) -> Option<Link> {
        let c = self.config;
        let retries = geometric(rng, c.retry_storm_mean_retries);
        let template = self.rows.last().expect("the failed call was just pushed").clone();
        let mut prev = failed;
        for r in 0..retries {
            let backoff =
                Duration::from_micros(c.retry_backoff_median.as_micros().saturating_mul(1 << r.min(20)));
            let think_us = duration_draw(rng, backoff, 0.5);
            let arrival_us = prev.done_us + think_us;
            if arrival_us >= self.end_us {
                return None;
            }
            let id = format!("{}-r{r}", template.id);
            self.push(Row {
                arrival_us,
                id: id.clone(),
                cached_input_tokens: template.input_tokens,
                cache_write_tokens: 0,
                parent: Some(prev.id.clone()),
                think_us,
                ..template.clone()
            });
            prev = Link { id, done_us: arrival_us + nominal_latency_us(c, template.output_tokens) };
        }
        Some(prev)
    }

    /// Poisson `bulk` calls plus backfill bursts.
    fn bulk(&mut self) {
        let c = self.config;
        let mut rng = self.rng("bulk", 0);
        let mut n = 0;
        if c.bulk_rate_per_min > 0.0 {
            let mean_gap = MICROS_PER_MIN as f64 / c.bulk_rate_per_min;
            let mut t = exponential(&mut rng, mean_gap);
            while t < self.end_us as f64 && !self.overflow {
                self.background(&mut rng, format!("b{n}"), ClassId::BULK, t as u64);
                n += 1;
                t += exponential(&mut rng, mean_gap);
            }
        }
        if c.backfill_bursts_per_hour > 0.0 && c.backfill_size > 0 {
            let mut bursts = self.rng("backfill", 0);
            let mean_gap = MICROS_PER_HOUR as f64 / c.backfill_bursts_per_hour;
            let mut t = exponential(&mut bursts, mean_gap);
            let mut burst = 0;
            while t < self.end_us as f64 && !self.overflow {
                let mut rng = self.rng("backfill", burst + 1);
                self.burst(
                    &mut rng,
                    &format!("bf{burst}"),
                    ClassId::BULK,
                    t as u64,
                    c.backfill_size,
                    c.backfill_spread,
                );
                burst += 1;
                t += exponential(&mut bursts, mean_gap);
            }
        }
    }

    /// Periodic bursts of `async` jobs.
    fn async_jobs(&mut self) {
        let c = self.config;
        if c.async_jobs_per_burst == 0 {
            return;
        }
        let interval = c.async_burst_interval.as_micros();
        let mut rng = self.rng("async", 0);
        let mut t = (rng.next_open01() * interval as f64) as u64;
        let mut burst = 0;
        while t < self.end_us && !self.overflow {
            let mut rng = self.rng("async", burst + 1);
            self.burst(
                &mut rng,
                &format!("a{burst}"),
                ClassId::ASYNC,
                t,
                c.async_jobs_per_burst,
                c.async_burst_spread,
            );
            burst += 1;
            t += interval;
        }
    }

    /// `count` background calls spread uniformly over `[start_us, start_us + spread)`.
    fn burst(
        &mut self,
        rng: &mut SplitMix64,
        prefix: &str,
        class: ClassId,
        start_us: u64,
        count: u64,
        spread: Duration,
    ) {
        for j in 0..count {
            if self.overflow {
                return;
            }
            let arrival_us = start_us + (rng.next_open01() * spread.as_micros() as f64) as u64;
            if arrival_us < self.end_us {
                self.background(rng, format!("{prefix}-{j}"), class, arrival_us);
            }
        }
    }

    /// One `bulk` or `async` call: no session, no cache.
    fn background(&mut self, rng: &mut SplitMix64, id: String, class: ClassId, arrival_us: u64) {
        let c = self.config;
        let (input_median, output_median, max_floor, deadline_ms) = if class == ClassId::ASYNC {
            (
                c.async_input_median_tokens,
                c.async_output_median_tokens,
                4_096,
                Some(c.async_deadline.as_micros() / MICROS_PER_MS),
            )
        } else {
            (c.bulk_input_median_tokens, c.bulk_output_median_tokens, 1_024, None)
        };
        let sigma = c.background_token_sigma;
        let input_tokens =
            (lognormal(rng, input_median as f64, sigma).round() as u64).clamp(1, c.max_context_tokens.max(1));
        let output_tokens = (lognormal(rng, output_median as f64, sigma).round() as u64).max(16);
        self.push(Row {
            arrival_us,
            seq: 0,
            id,
            class,
            input_tokens,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
            output_tokens,
            max_tokens: output_tokens.next_power_of_two().max(max_floor),
            session: None,
            parent: None,
            think_us: 0,
            deadline_ms,
        });
    }
}

/// Nominal latency of a call: first token plus output at the nominal speed.
fn nominal_latency_us(c: &AgentTraceConfig, output_tokens: u64) -> u64 {
    c.nominal_first_token.as_micros()
        + (output_tokens as f64 / c.nominal_output_tokens_per_s * MICROS_PER_S as f64) as u64
}

/// Lognormal draw with the given median and log-scale spread.
// Not dist.rs's lognormal: that one computes exp(ln(median) + σz), this median·exp(σz), which
// differs in the last bits and would change generated traces.
fn lognormal(rng: &mut SplitMix64, median: f64, sigma: f64) -> f64 {
    median * (sigma * standard_normal(rng)).exp()
}

/// A lognormal duration in µs.
fn duration_draw(rng: &mut SplitMix64, median: Duration, sigma: f64) -> u64 {
    lognormal(rng, median.as_micros() as f64, sigma).round() as u64
}

/// Geometric count on 1, 2, … with the given mean (>= 1).
fn geometric(rng: &mut SplitMix64, mean: f64) -> u64 {
    if mean <= 1.0 {
        return 1;
    }
    let p = 1.0 / mean;
    1 + (rng.next_open01().ln() / (1.0 - p).ln()).floor() as u64
}

/// Uniform integer in `[lo, hi]`.
fn uniform_int(rng: &mut SplitMix64, lo: u64, hi: u64) -> u64 {
    lo + rng.next_u64() % (hi - lo + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Request, TraceReader};
    use std::collections::HashSet;

    fn generate(config: &AgentTraceConfig) -> (Vec<u8>, GenSummary) {
        let mut writer = TraceWriter::new(Vec::new()).unwrap();
        let summary = generate_agent_trace(config, &mut writer).unwrap();
        (writer.finish().unwrap(), summary)
    }

    fn read(bytes: &[u8]) -> Vec<Request> {
        TraceReader::from_reader(bytes, "generated.csv").unwrap().collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn retry_storms_repeat_the_failed_prompt_with_doubling_backoff() {
        // Storms off by default: the default trace has no retry ids and is unchanged.
        let (plain, _) = generate(&AgentTraceConfig::default());
        assert!(!String::from_utf8_lossy(&plain).contains("-r0,"));
        let config = AgentTraceConfig {
            retry_storm_probability: 0.2,
            retry_storm_mean_retries: 3.0,
            duration: Duration::from_mins(120),
            ..AgentTraceConfig::default()
        };
        let (rows, _) = generate_rows(&config).unwrap();
        let by_id: std::collections::HashMap<&str, &Row> = rows.iter().map(|r| (r.id.as_str(), r)).collect();
        let retries: Vec<&Row> = rows.iter().filter(|r| r.id.contains("-r")).collect();
        let first: Vec<&&Row> = retries.iter().filter(|r| r.id.ends_with("-r0")).collect();
        // Storms follow non-fan-out agent calls with probability 0.2; geometric(3) retries each.
        // Storm count ~ Binomial(calls, 0.2): SE √(0.16·calls); 5 SE. Mean retries per storm:
        // geometric with mean 3 has sd √6 ≈ 2.45 → SE 2.45/√storms; 5 SE (storms cut by the
        // window end are slightly shorter, a small downward bias, inside the band).
        let calls = rows
            .iter()
            .filter(|r| r.session.is_some() && !r.id.contains("-r") && !r.id.contains("-f"))
            .count() as f64;
        let storms = first.len() as f64;
        assert!(
            (storms - 0.2 * calls).abs() < 5.0 * (0.16 * calls).sqrt(),
            "{storms} storms after {calls} calls"
        );
        let mean_retries = retries.len() as f64 / storms;
        assert!((mean_retries - 3.0).abs() < 5.0 * 2.45 / storms.sqrt(), "{mean_retries}");
        for retry in &retries {
            let parent = by_id[retry.parent.as_deref().unwrap()];
            assert_eq!(retry.input_tokens, parent.input_tokens, "a retry repeats the prompt");
            assert_eq!(retry.cached_input_tokens, retry.input_tokens, "and finds it cached");
            assert!(retry.arrival_us > parent.arrival_us);
        }
        // Backoff doubles: the median think time of retry k is about 2^k s (lognormal median).
        let median_think = |k: usize| {
            let mut t: Vec<u64> =
                retries.iter().filter(|r| r.id.ends_with(&format!("-r{k}"))).map(|r| r.think_us).collect();
            t.sort();
            t[t.len() / 2] as f64 / 1e6
        };
        let (m0, m1) = (median_think(0), median_think(1));
        assert!((0.8..1.25).contains(&m0) && (1.6..2.5).contains(&m1), "medians {m0} s, {m1} s");
    }

    #[test]
    fn a_subagent_cap_makes_later_subagents_wait_for_earlier_ones() {
        let config = AgentTraceConfig {
            fan_out_probability: 1.0,
            fan_out_min: 10,
            fan_out_max: 10,
            max_parallel_subagents: Some(3),
            duration: Duration::from_mins(30),
            ..AgentTraceConfig::default()
        };
        let (rows, _) = generate_rows(&config).unwrap();
        let by_id: std::collections::HashMap<&str, &Row> = rows.iter().map(|r| (r.id.as_str(), r)).collect();
        let subs: Vec<&Row> = rows.iter().filter(|r| r.id.contains("-f") && !r.id.contains("-r")).collect();
        assert!(subs.len() > 100, "{} sub-agent calls", subs.len());
        let mut waited = 0;
        for sub in &subs {
            let (group, k) = sub.id.rsplit_once("-f").unwrap();
            let k: usize = k.parse().unwrap();
            let parent = sub.parent.as_deref().unwrap();
            if k < 3 {
                // The first three start together, after the call that fanned out.
                assert!(!parent.contains("-f"), "{} waits for {parent}", sub.id);
                assert_eq!(sub.arrival_us, by_id[format!("{group}-f0").as_str()].arrival_us);
            } else {
                assert_eq!(parent, format!("{group}-f{}", k - 3), "sub-agent {k} waits for {}", k - 3);
                assert_eq!(sub.think_us, 0, "and starts at once");
                assert!(sub.arrival_us > by_id[parent].arrival_us);
                waited += 1;
            }
        }
        assert!(waited > 0);
        // Without the cap, every sub-agent of a fan-out has the same parent.
        let (rows, _) =
            generate_rows(&AgentTraceConfig { max_parallel_subagents: None, ..config.clone() }).unwrap();
        assert!(rows.iter().filter(|r| r.id.contains("-f")).all(|r| !r
            .parent
            .as_deref()
            .unwrap()
            .contains("-f")));
        let refused = AgentTraceConfig { max_parallel_subagents: Some(0), ..config }.validate();
        assert!(refused.unwrap_err().to_string().contains("max_parallel_subagents"));
    }

    #[test]
    fn same_seed_same_bytes_different_seed_different_bytes() {
        let config = AgentTraceConfig::default();
        let (a, _) = generate(&config);
        let (b, _) = generate(&config);
        assert_eq!(a, b);
        let (c, _) = generate(&AgentTraceConfig { seed: 2, ..config });
        assert_ne!(a, c);
    }

    #[test]
    fn default_trace_is_sorted_linked_and_shaped_like_agent_traffic() {
        let (bytes, summary) = generate(&AgentTraceConfig::default());
        let rows = read(&bytes);
        assert_eq!(rows.len() as u64, summary.requests);
        assert!((3_000..=6_000).contains(&summary.requests), "requests {}", summary.requests);
        assert_eq!(summary.duration_ms, 3_600_000);
        assert!(rows.windows(2).all(|w| w[0].arrival <= w[1].arrival));
        assert!(rows.iter().all(|r| r.arrival.as_micros() < 3_600_000_000));

        // Every parent is an earlier row, and a child starts after its parent.
        let mut seen = HashSet::new();
        let mut arrival_of = std::collections::HashMap::new();
        for row in &rows {
            if let Some(parent) = row.parent {
                assert!(seen.contains(&parent), "line {}: parent not seen earlier", row.line);
                assert!(row.arrival > arrival_of[&parent], "line {}", row.line);
                assert!(row.session.is_some());
            }
            assert!(seen.insert(row.id), "line {}: duplicate id", row.line);
            arrival_of.insert(row.id, row.arrival);
        }

        // All four classes, with the agent classes dominating.
        let count = |class| rows.iter().filter(|r| r.class == class).count() as u64;
        for (i, (name, n)) in summary.by_class.iter().enumerate() {
            assert_eq!(name, BUILTIN_CLASSES[i]);
            assert_eq!(*n, count(ClassId(i as u16)));
            assert!(*n > 0, "no {name} rows");
        }
        assert!(count(ClassId::HARD) > count(ClassId::INTERACTIVE) * 4);

        // Agent calls: ~86% cached, prompt : completion near 128 : 1, context up to ~150k.
        let agent: Vec<&Request> =
            rows.iter().filter(|r| r.class == ClassId::HARD || r.class == ClassId::INTERACTIVE).collect();
        let input: u64 = agent.iter().map(|r| r.input_tokens).sum();
        let cached: u64 = agent.iter().map(|r| r.cached_input_tokens).sum();
        let output: u64 = agent.iter().map(|r| r.output_tokens).sum();
        let cached_share = cached as f64 / input as f64;
        assert!((0.80..=0.92).contains(&cached_share), "cached share {cached_share}");
        let ratio = input as f64 / output as f64;
        assert!((50.0..=250.0).contains(&ratio), "input/output {ratio}");
        let max_input = agent.iter().map(|r| r.input_tokens).max().unwrap();
        assert!((100_000..=200_000).contains(&max_input), "max input {max_input}");
        assert!(agent.iter().all(|r| r.session.is_some() && r.max_tokens >= 8_192 && r.output_tokens >= 16));
        assert!(agent.iter().all(|r| r.cache_write_tokens == r.uncached_input_tokens()));

        // Background: no session, no cache; async jobs carry the 24 h deadline.
        for r in rows.iter().filter(|r| r.class == ClassId::BULK || r.class == ClassId::ASYNC) {
            assert_eq!((r.session, r.parent, r.cached_input_tokens), (None, None, 0));
            let deadline = (r.class == ClassId::ASYNC).then_some(Duration::from_secs(86_400));
            assert_eq!(r.deadline, deadline);
        }

        // Fan-out: some parent has several children.
        let mut children = std::collections::HashMap::<u64, u32>::new();
        for parent in rows.iter().filter_map(|r| r.parent) {
            *children.entry(parent).or_default() += 1;
        }
        assert!(children.values().any(|&n| n >= 2));

        assert_eq!(summary.input_tokens, rows.iter().map(|r| r.input_tokens).sum::<u64>());
        assert_eq!(summary.cached_input_tokens, rows.iter().map(|r| r.cached_input_tokens).sum::<u64>());
        assert_eq!(summary.output_tokens, rows.iter().map(|r| r.output_tokens).sum::<u64>());
        assert!(summary.sessions > 20, "sessions {}", summary.sessions);
    }

    #[test]
    fn session_starts_are_bursty() {
        // Per-minute session starts: the variance exceeds the mean (a Poisson process has 1).
        let config = AgentTraceConfig { duration: Duration::from_mins(600), ..Default::default() };
        let generator = Generator {
            config: &config,
            end_us: config.duration.as_micros(),
            rows: Vec::new(),
            overflow: false,
        };
        let starts = generator.session_starts();
        let mut per_min = vec![0.0; 600];
        for s in &starts {
            per_min[(*s / MICROS_PER_MIN) as usize] += 1.0;
        }
        let mean = per_min.iter().sum::<f64>() / 600.0;
        let var = per_min.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / 599.0;
        // Stationary mean rate: 0.8 × (8 + 5 × 3) / 11 ≈ 1.67 per minute.
        assert!((1.2..=2.2).contains(&mean), "mean {mean}");
        assert!(var / mean > 1.5, "index of dispersion {}", var / mean);
    }

    #[test]
    fn config_reads_from_toml_with_defaults_and_refuses_typos() {
        let config: AgentTraceConfig =
            toml::from_str("seed = 9\nduration = \"2h\"\nfan_out_probability = 0.2\n").unwrap();
        assert_eq!(config.seed, 9);
        assert_eq!(config.duration, Duration::from_mins(120));
        assert_eq!(config.calls_per_turn, 8.0);
        let err = toml::from_str::<AgentTraceConfig>("sesion_rate_per_min = 2.0\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `sesion_rate_per_min`"), "{err}");
    }

    #[test]
    fn overrides_set_one_field_like_a_cli_flag() {
        let base = AgentTraceConfig::default();
        let config = base
            .with_override("duration", "10m")
            .unwrap()
            .with_override("seed", "42")
            .unwrap()
            .with_override("session_rate_per_min", "3")
            .unwrap();
        assert_eq!(config.duration, Duration::from_mins(10));
        assert_eq!(config.seed, 42);
        assert_eq!(config.session_rate_per_min, 3.0);
        let err = base.with_override("sead", "1").unwrap_err().to_string();
        assert!(err.starts_with("trace generator: sead: unknown field"), "{err}");
        assert!(base.with_override("seed", "abc").is_err());
    }

    #[test]
    fn invalid_config_is_refused_naming_the_field() {
        let config = AgentTraceConfig { fan_out_probability: 1.5, ..Default::default() };
        let mut writer = TraceWriter::new(Vec::new()).unwrap();
        let err = generate_agent_trace(&config, &mut writer).unwrap_err().to_string();
        assert_eq!(err, "trace generator: fan_out_probability: must be between 0 and 1");
        let config = AgentTraceConfig { mean_on: Duration::ZERO, ..Default::default() };
        assert!(config.validate().is_err());
        let config = AgentTraceConfig { session_rate_per_min: f64::NAN, ..Default::default() };
        assert!(config.validate().is_err());
    }

    #[test]
    fn quiet_config_yields_only_background_traffic() {
        let config = AgentTraceConfig {
            session_rate_per_min: 0.0,
            duration: Duration::from_mins(30),
            ..Default::default()
        };
        let (bytes, summary) = generate(&config);
        assert_eq!(summary.sessions, 0);
        assert_eq!(summary.by_class[0].1 + summary.by_class[1].1, 0);
        assert_eq!(read(&bytes).len() as u64, summary.requests);
        assert!(summary.by_class[2].1 > 0 && summary.by_class[3].1 > 0);
    }

    #[test]
    fn samplers_have_the_intended_means() {
        let mut rng = SplitMix64::new(5);
        let n = 200_000;
        let geo = (0..n).map(|_| geometric(&mut rng, 8.0) as f64).sum::<f64>() / n as f64;
        assert!((geo - 8.0).abs() < 0.15, "geometric mean {geo}");
        let exp = (0..n).map(|_| exponential(&mut rng, 3.0)).sum::<f64>() / n as f64;
        assert!((exp - 3.0).abs() < 0.05, "exponential mean {exp}");
        let mut logs: Vec<f64> = (0..n).map(|_| lognormal(&mut rng, 100.0, 1.0)).collect();
        logs.sort_by(f64::total_cmp);
        let median = logs[n / 2];
        assert!((median - 100.0).abs() < 2.0, "lognormal median {median}");
        assert!((0..1000).all(|_| (2..=4).contains(&uniform_int(&mut rng, 2, 4))));
    }
}
