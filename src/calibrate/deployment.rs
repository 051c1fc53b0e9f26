//! Fitting one deployment from its observed attempts: a pure function from records to a
//! [`DeploymentConfig`] (the scenario schema) and a [`FitReport`] saying how well each part
//! fits and from how many samples.
//!
//! What is fitted, and how:
//! - **TTFT** = a base distribution + `ttft_ms_per_1k_uncached_input` × uncached input / 1000,
//!   as [`crate::provider`] draws it: the slope by least squares of TTFT on uncached input,
//!   then the family of the base (TTFT − slope × input) by [`fit::fit_best`].
//! - **Output speed**: output tokens / (end − first token) of successes, family by fit.
//! - **Error rates** per admitted attempt (529, other 5xx; broken streams per stream), and the
//!   round trips of error and 429 answers; the `retry-after` granularity.
//! - **Limits** per axis: the most frequent `*-limit` header value.
//! - **Burst**: the capacities of each axis's bucket consistent with every admission and
//!   refusal ([`bucket`]), as seconds of refill; 429s are attributed to the one axis that could
//!   have refused them, iterating as the bounds tighten.
//!
//! Not fitted (kept from the base deployment, if any, and said in the notes): prices, provider
//! and model names, `max_in_flight` (no header reports it), the acceleration rule (429s no
//! bucket explains are counted as its evidence), incidents and the batch API.
//!
//! It must not know about files or the command line.

use super::bucket::{AxisReplay, BucketEvent, CapacityBounds};
use super::fit::{self, DistFit, LinearFit, Proportion};
use super::observed::{header_number, limit_headers, LimitHeader, Outcome};
use super::CalibrateError;
use crate::attempt_log::AttemptRecord;
use crate::dist::DistConfig;
use crate::limiter::Meter;
use crate::provider::{
    BatchConfig, CacheWriteTtl, Deployment, DeploymentConfig, ErrorsConfig, LatencyConfig, LimitsConfig,
    PricesConfig,
};
use crate::time::Duration;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// One observed run's attempts at one deployment, with what the whole run says about each
/// request.
pub struct RunAttempts<'a> {
    /// The attempt log's name, for errors.
    pub file: &'a str,
    /// (line, record), in file order.
    pub records: Vec<(u64, &'a AttemptRecord)>,
    /// Output tokens reserved per request id: the largest output any attempt of the request
    /// reported. The log does not carry `max_tokens`, so the replay of the output axis
    /// assumes `max_tokens` = the request's output.
    pub reserve_tokens: &'a HashMap<&'a str, u64>,
}

/// How calibration treats its input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FitOptions {
    /// How far apart (ms) two observed events may be while the limiter saw them in the other
    /// order: observed times are the client's, the limiter's are the server's. Events closer
    /// than this are replayed in every order ([`super::bucket`]).
    /// In wall-clock time: a run observed on a faster provider's clock (`observation.json`'s
    /// `time_scale`) widens it by that factor.
    pub clock_tolerance_ms: f64,
}

/// The default [`FitOptions::clock_tolerance_ms`]: loopback jitter on a loaded machine, small
/// against the gaps between requests up to some hundreds per second.
pub const DEFAULT_CLOCK_TOLERANCE_MS: f64 = 5.0;

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions { clock_tolerance_ms: DEFAULT_CLOCK_TOLERANCE_MS }
    }
}

/// Attempts by outcome.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OutcomeCounts {
    pub success: u64,
    pub mid_stream: u64,
    pub rate_limited: u64,
    pub overloaded: u64,
    pub server_error: u64,
    pub cancelled: u64,
    pub other: u64,
}

impl OutcomeCounts {
    fn add(&mut self, outcome: Outcome) {
        let count = match outcome {
            Outcome::Success => &mut self.success,
            Outcome::MidStream => &mut self.mid_stream,
            Outcome::RateLimited => &mut self.rate_limited,
            Outcome::Overloaded => &mut self.overloaded,
            Outcome::ServerError => &mut self.server_error,
            Outcome::Cancelled => &mut self.cancelled,
            Outcome::Other => &mut self.other,
        };
        *count += 1;
    }
}

/// The TTFT model: base distribution plus a prefill slope.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TtftFit {
    /// The base (TTFT less the prefill term).
    pub base: DistFit,
    /// Least squares of TTFT on uncached input / 1000; `None` when the prompts give no spread.
    pub regression: Option<LinearFit>,
    /// The slope written (ms per 1,000 uncached input tokens; a negative estimate is 0).
    pub slope_ms_per_1k: f64,
    /// Base values at or below 0 (the slope overshot on them), floored to fit positive families.
    pub floored: usize,
}

/// One limiter axis.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AxisFit {
    pub axis: Meter,
    /// The header the limit came from.
    pub header: String,
    /// The limit written (the most frequent value seen).
    pub limit_per_min: u64,
    /// Every value seen with its count, most frequent first.
    pub values_seen: Vec<(u64, u64)>,
    /// The bucket's capacity consistent with the observations (tokens), every run together.
    pub capacity: CapacityBounds,
    /// The 429s attributed to this axis.
    pub refusals_attributed: u64,
}

impl AxisFit {
    /// The capacity interval as seconds of refill: `60 × capacity / limit`.
    pub fn burst_s(&self) -> (f64, Option<f64>) {
        let per = 60.0 / self.limit_per_min as f64;
        (self.capacity.low_tokens * per, self.capacity.high_tokens.map(|h| h * per))
    }
}

/// The burst every bucket of the deployment shares.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BurstFit {
    /// The value written: the middle of the interval, or its lower end when nothing bounds it
    /// above (the smallest bucket that admits everything observed), rounded to the ms.
    pub estimate_s: f64,
    /// The interval every axis allows (the intersection of theirs).
    pub low_s: f64,
    pub high_s: Option<f64>,
    /// False when the axes' intervals do not overlap (the estimate is then the lower end).
    pub consistent: bool,
}

/// How well each part of one deployment's model fits, and from how many samples.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FitReport {
    pub attempts: u64,
    pub requests: u64,
    pub outcomes: OutcomeCounts,
    pub ttft: Option<TtftFit>,
    pub output_speed: Option<DistFit>,
    pub error_response: Option<DistFit>,
    /// Median round trip of a 429 (ms) and its sample size.
    pub rate_limit_response_ms: Option<(f64, usize)>,
    pub retry_after_granularity: Option<Duration>,
    /// 529s per admitted attempt.
    pub overloaded: Proportion,
    /// Other 5xx per admitted attempt.
    pub server_error: Proportion,
    /// Broken streams per stream that started.
    pub mid_stream: Proportion,
    /// 429s per attempt when no limit headers explain them (modelled as `rate_limited_rate`).
    pub rate_limited: Option<Proportion>,
    pub axes: Vec<AxisFit>,
    pub burst: Option<BurstFit>,
    /// 429s that no fitted bucket could have refused (acceleration, concurrency, or a 429
    /// the limits do not explain).
    pub unexplained_429: u64,
    pub notes: Vec<String>,
}

/// One deployment's calibrated configuration and its report.
#[derive(Clone, Debug, Serialize)]
pub struct DeploymentFit {
    pub name: String,
    pub config: DeploymentConfig,
    pub report: FitReport,
}

/// Defaults of the schema for parts nothing supplies (no observation, no base).
const DEFAULT_TTFT_MS: f64 = 1_000.0;
const DEFAULT_OUTPUT_TOKENS_PER_S: f64 = 50.0;

/// Iterations of 429 attribution (each tightens the bounds the next attributes with).
const MAX_ATTRIBUTION_ROUNDS: usize = 6;

fn round(x: f64) -> f64 {
    fit::round_significant(x, fit::SIGNIFICANT_DIGITS)
}

/// Fits deployment `name` from its attempts in each run. `base` supplies what observation
/// cannot (prices, names, flags); without it the provider and model come from the name
/// (`provider/model`) and prices are zero.
pub fn fit_deployment(
    name: &str,
    runs: &[RunAttempts<'_>],
    base: Option<&Deployment>,
    options: FitOptions,
) -> Result<DeploymentFit, CalibrateError> {
    let mut notes = Vec::new();
    let mut outcomes = OutcomeCounts::default();
    let mut attempts = 0;
    let mut requests = std::collections::BTreeSet::new();
    let (mut ttft_x, mut ttft_y, mut speeds, mut error_ms, mut refused_ms, mut retry_after_s) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (run_index, run) in runs.iter().enumerate() {
        for (_, r) in &run.records {
            let outcome = Outcome::of(r);
            outcomes.add(outcome);
            attempts += 1;
            requests.insert((run_index, r.request_id.as_str()));
            match outcome {
                Outcome::Success | Outcome::MidStream => {
                    if let Some(ttft) = r.ttft_ms() {
                        ttft_x.push((r.input_tokens - r.cached_input_tokens) as f64 / 1000.0);
                        ttft_y.push(ttft);
                    }
                    let decode_ms = r.first_token_ms.map_or(0.0, |first| r.end_ms - first);
                    if outcome == Outcome::Success && r.output_tokens > 0 && decode_ms > 0.0 {
                        speeds.push(r.output_tokens as f64 / (decode_ms / 1000.0));
                    }
                }
                Outcome::Overloaded | Outcome::ServerError => error_ms.push(r.end_ms - r.start_ms),
                Outcome::RateLimited => {
                    refused_ms.push(r.end_ms - r.start_ms);
                    retry_after_s.extend(r.retry_after_s);
                }
                Outcome::Cancelled | Outcome::Other => {}
            }
        }
    }

    // TTFT: slope by least squares, then the base's family.
    let regression = fit::least_squares(&ttft_x, &ttft_y);
    let slope_ms_per_1k = match &regression {
        None if !ttft_y.is_empty() => {
            notes.push("ttft slope: not identifiable (every prompt had the same uncached size): 0".into());
            0.0
        }
        None => 0.0,
        Some(r) if r.slope < 0.0 => {
            notes
                .push(format!("ttft slope: estimated {:.3} ms per 1k uncached input, written as 0", r.slope));
            0.0
        }
        Some(r) => round(r.slope),
    };
    let mut floored = 0;
    let base_ms: Vec<f64> = ttft_x
        .iter()
        .zip(&ttft_y)
        .map(|(x, y)| {
            let b = y - slope_ms_per_1k * x;
            // Positive families need positive values; a microsecond stands in for "nothing".
            if b <= 0.001 {
                floored += 1;
                0.001
            } else {
                b
            }
        })
        .collect();
    let ttft = fit::fit_best(&base_ms).map(|base| TtftFit { base, regression, slope_ms_per_1k, floored });
    if floored > 0 {
        notes.push(format!("ttft: {floored} base values at or below 0 after the slope, floored to 1 µs"));
    }
    let output_speed = fit::fit_best(&speeds);
    let error_response = fit::fit_best(&error_ms);
    let rate_limit_response_ms = fit::median(&refused_ms).map(|m| (m, refused_ms.len()));
    let retry_after_granularity = granularity(&retry_after_s);

    // Limits from the headers.
    let mut axes_seen: Vec<(LimitHeader, Vec<(u64, u64)>)> = Vec::new();
    for header in limit_headers() {
        let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
        for run in runs {
            for (line, r) in &run.records {
                let read = |name: &str| {
                    header_number(r, name).map_err(|source| CalibrateError::Header {
                        file: run.file.to_string(),
                        line: *line,
                        source,
                    })
                };
                // `remaining` is read later by the replay; a bad one is an error here too.
                read(&header.remaining)?;
                if let Some(v) = read(&header.limit)? {
                    *counts.entry(v.round() as u64).or_default() += 1;
                }
            }
        }
        if counts.is_empty() {
            continue;
        }
        let mut values: Vec<(u64, u64)> = counts.into_iter().collect();
        // Most frequent first; on a tie the larger limit.
        values.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
        if values[0].0 == 0 {
            notes.push(format!("{}: a limit of 0 is no limit the schema can hold: ignored", header.limit));
            continue;
        }
        axes_seen.push((header, values));
    }
    // Anthropic's own `tokens-*` headers repeat the most restrictive of input and output.
    let separate = |a: Meter| axes_seen.iter().find(|(h, _)| h.axis == a).map(|(_, v)| v[0].0);
    let (itpm, otpm) = (separate(Meter::InputTokens), separate(Meter::OutputTokens));
    axes_seen.retain(|(h, v)| {
        let repeat = h.limit == "anthropic-ratelimit-tokens-limit" && [itpm, otpm].contains(&Some(v[0].0));
        !repeat
    });
    // One header family per axis: the one seen most often.
    let mut chosen: Vec<(LimitHeader, Vec<(u64, u64)>)> = Vec::new();
    for (header, values) in axes_seen {
        let total: u64 = values.iter().map(|(_, n)| n).sum();
        match chosen.iter_mut().find(|(h, _)| h.axis == header.axis) {
            Some(existing) if existing.1.iter().map(|(_, n)| n).sum::<u64>() >= total => {}
            Some(existing) => *existing = (header, values),
            None => chosen.push((header, values)),
        }
    }
    for (header, values) in &chosen {
        if values.len() > 1 {
            let seen: Vec<String> = values.iter().map(|(v, n)| format!("{v} ×{n}")).collect();
            notes.push(format!(
                "{}: several values seen ({}): the most frequent",
                header.limit,
                seen.join(", ")
            ));
        }
    }

    let counting = Counting { cache_reads_count: base.is_some_and(|b| b.cache_reads_count_toward_itpm) };
    let (axes, unexplained_429) = fit_buckets(&chosen, runs, retry_after_granularity, counting, options);
    let burst = burst_of(&axes);
    if burst.as_ref().is_some_and(|b| !b.consistent) {
        notes.push(
            "burst: the axes' intervals do not overlap; the estimate is the largest lower bound".into(),
        );
    }
    let rate_limited_total = outcomes.rate_limited;
    let no_limits = chosen.is_empty();
    if unexplained_429 > 0 && !no_limits {
        notes.push(format!(
            "acceleration: not fitted; {unexplained_429} of {rate_limited_total} 429s no fitted bucket explains (an acceleration or concurrency limit?)"
        ));
    } else {
        notes.push("acceleration: not fitted (no 429 the buckets do not explain)".into());
    }

    // Error rates per admitted attempt. Without limit headers every 429 is "rate limited
    // although admitted" (`rate_limited_rate`): there is no limiter to blame.
    let admitted = if no_limits { attempts } else { attempts - rate_limited_total };
    let overloaded = fit::proportion(outcomes.overloaded, admitted);
    let server_error = fit::proportion(outcomes.server_error, admitted);
    let mid_stream = fit::proportion(outcomes.mid_stream, outcomes.success + outcomes.mid_stream);
    let rate_limited =
        (no_limits && rate_limited_total > 0).then(|| fit::proportion(rate_limited_total, attempts));

    let config = build_config(
        name,
        base,
        &Fitted {
            ttft: ttft.as_ref(),
            output_speed: output_speed.as_ref(),
            error_response: error_response.as_ref(),
            rate_limit_response_ms: rate_limit_response_ms.map(|(m, _)| m),
            retry_after_granularity,
            overloaded: overloaded.rate,
            server_error: server_error.rate,
            mid_stream: mid_stream.rate,
            rate_limited: rate_limited.map(|p| p.rate),
            rate_limited_retry_after: rate_limited.and_then(|_| fit::median(&retry_after_s)),
            axes: &axes,
            burst: burst.as_ref(),
        },
        &mut notes,
    );
    let report = FitReport {
        attempts,
        requests: requests.len() as u64,
        outcomes,
        ttft,
        output_speed,
        error_response,
        rate_limit_response_ms,
        retry_after_granularity,
        overloaded,
        server_error,
        mid_stream,
        rate_limited,
        axes,
        burst,
        unexplained_429,
        notes,
    };
    Ok(DeploymentFit { name: name.to_string(), config, report })
}

/// The coarsest of 1 s, 100 ms, 10 ms and 1 ms every `retry-after` (in s) is a multiple of.
fn granularity(values_s: &[f64]) -> Option<Duration> {
    if values_s.is_empty() {
        return None;
    }
    let g_ms = [1000u64, 100, 10, 1].into_iter().find(|g| {
        values_s.iter().all(|v| {
            let units = v * 1000.0 / *g as f64;
            (units - units.round()).abs() < 1e-6
        })
    });
    Some(Duration::from_millis(g_ms.unwrap_or(1)))
}

/// How the deployment counts an attempt: its output reservation and whether cache reads count
/// toward ITPM/TPM (the base deployment's flag; modern models: they do not).
#[derive(Clone, Copy)]
struct Counting {
    cache_reads_count: bool,
}

impl Counting {
    fn input_tokens(self, r: &AttemptRecord) -> f64 {
        if self.cache_reads_count {
            r.input_tokens as f64
        } else {
            (r.input_tokens - r.cached_input_tokens) as f64
        }
    }
}

/// What one attempt costs `axis` at admission (tokens).
fn axis_cost(axis: Meter, r: &AttemptRecord, reserve_tokens: u64, counting: Counting) -> f64 {
    let input = counting.input_tokens(r);
    match axis {
        Meter::Requests => 1.0,
        Meter::InputTokens => input,
        Meter::OutputTokens => reserve_tokens as f64,
        Meter::Tokens => input + reserve_tokens as f64,
        Meter::SpendUsd => 0.0,
    }
}

/// The replay events of one run on one axis: admitted attempts take their cost at start and
/// settle their output reservation at the end; `refusals` are the 429s attributed to it.
fn axis_events(
    axis: Meter,
    run: &RunAttempts<'_>,
    refusals: &[(usize, bool)],
    granularity_ms: f64,
    counting: Counting,
) -> Vec<BucketEvent> {
    let mut events = Vec::new();
    for (index, (_, r)) in run.records.iter().enumerate() {
        let reserve = run.reserve_tokens.get(r.request_id.as_str()).copied().unwrap_or(r.output_tokens);
        let outcome = Outcome::of(r);
        if outcome == Outcome::RateLimited {
            if refusals.iter().any(|(i, attributed)| *i == index && *attributed) {
                events.push(BucketEvent::Refused {
                    at_ms: r.start_ms,
                    tokens: axis_cost(axis, r, reserve, counting),
                    retry_after_ms: r.retry_after_s.map(|s| s * 1000.0),
                    granularity_ms,
                });
            }
            continue;
        }
        if !Outcome::admitted(r) {
            continue;
        }
        events.push(BucketEvent::Take { at_ms: r.start_ms, tokens: axis_cost(axis, r, reserve, counting) });
        if matches!(axis, Meter::OutputTokens | Meter::Tokens) {
            // Settlement to what streamed: an answer without a first token produced nothing.
            let actual = if r.first_token_ms.is_some() { r.output_tokens } else { 0 };
            let event = if actual <= reserve {
                BucketEvent::Refund { at_ms: r.end_ms, tokens: (reserve - actual) as f64 }
            } else {
                BucketEvent::Debit { at_ms: r.end_ms, tokens: (actual - reserve) as f64 }
            };
            events.push(event);
        }
    }
    events
}

/// The largest level a run's `remaining` headers show on an axis, less their rounding (every
/// value was checked when the limits were read).
fn level_seen(header: &LimitHeader, run: &RunAttempts<'_>) -> f64 {
    run.records
        .iter()
        .filter_map(|(_, r)| header_number(r, &header.remaining).ok().flatten())
        .fold(0.0, f64::max)
        - header.rounding_tokens
}

/// Capacity bounds per limited axis, attributing each 429 to the one axis that could have
/// refused it under the current lower bounds (sound: the true capacity is at least the lower
/// bound, so an axis that could not refuse then cannot have refused at all). Returns the
/// axes and the count of 429s no axis could have refused.
fn fit_buckets(
    chosen: &[(LimitHeader, Vec<(u64, u64)>)],
    runs: &[RunAttempts<'_>],
    granularity: Option<Duration>,
    counting: Counting,
    options: FitOptions,
) -> (Vec<AxisFit>, u64) {
    let granularity_ms = granularity.map_or(1_000.0, |g| g.as_millis_f64());
    // Per run: the 429s as (record index, attributed to axis k?) per axis.
    let refusal_indices: Vec<Vec<usize>> = runs
        .iter()
        .map(|run| {
            run.records
                .iter()
                .enumerate()
                .filter(|(_, (_, r))| Outcome::of(r) == Outcome::RateLimited)
                .map(|(i, _)| i)
                .collect()
        })
        .collect();
    let mut attribution: Vec<Vec<Option<usize>>> =
        refusal_indices.iter().map(|indices| vec![None; indices.len()]).collect();
    let bounds_with = |attribution: &[Vec<Option<usize>>]| -> Vec<CapacityBounds> {
        chosen
            .iter()
            .enumerate()
            .map(|(k, (header, values))| {
                runs.iter()
                    .zip(&refusal_indices)
                    .zip(attribution)
                    .map(|((run, indices), attributed)| {
                        let refusals: Vec<(usize, bool)> =
                            indices.iter().zip(attributed).map(|(i, a)| (*i, *a == Some(k))).collect();
                        let events = axis_events(header.axis, run, &refusals, granularity_ms, counting);
                        AxisReplay::new(values[0].0, events, options.clock_tolerance_ms)
                            .bounds(level_seen(header, run))
                    })
                    .reduce(CapacityBounds::intersect)
                    .unwrap_or(CapacityBounds { low_tokens: 0.0, high_tokens: None, takes: 0, refusals: 0 })
            })
            .collect()
    };
    let mut bounds = bounds_with(&attribution);
    let mut unexplained = 0;
    for _ in 0..MAX_ATTRIBUTION_ROUNDS {
        let mut next = attribution.clone();
        unexplained = 0;
        for ((run, indices), attributed) in runs.iter().zip(&refusal_indices).zip(&mut next) {
            // Which axes could refuse each 429 of this run under the current lower bounds.
            let could: Vec<Vec<bool>> = chosen
                .iter()
                .zip(&bounds)
                .map(|((header, values), b)| {
                    let events = axis_events(header.axis, run, &[], granularity_ms, counting);
                    let replay = AxisReplay::new(values[0].0, events, options.clock_tolerance_ms);
                    let probes: Vec<(f64, f64)> = indices
                        .iter()
                        .map(|i| {
                            let r = run.records[*i].1;
                            let reserve = run
                                .reserve_tokens
                                .get(r.request_id.as_str())
                                .copied()
                                .unwrap_or(r.output_tokens);
                            (r.start_ms, axis_cost(header.axis, r, reserve, counting))
                        })
                        .collect();
                    replay.could_refuse(b.low_tokens, &probes)
                })
                .collect();
            for (j, slot) in attributed.iter_mut().enumerate() {
                let candidates: Vec<usize> = (0..chosen.len()).filter(|k| could[*k][j]).collect();
                *slot = match candidates[..] {
                    [k] => Some(k),
                    _ => None,
                };
                if candidates.is_empty() {
                    unexplained += 1;
                }
            }
        }
        if next == attribution {
            break;
        }
        attribution = next;
        bounds = bounds_with(&attribution);
    }
    let axes = chosen
        .iter()
        .zip(bounds)
        .enumerate()
        .map(|(k, ((header, values), capacity))| AxisFit {
            axis: header.axis,
            header: header.limit.clone(),
            limit_per_min: values[0].0,
            values_seen: values.clone(),
            capacity,
            refusals_attributed: attribution.iter().flatten().filter(|a| **a == Some(k)).count() as u64,
        })
        .collect();
    (axes, unexplained)
}

/// The burst all axes allow: the intersection of their intervals in seconds.
fn burst_of(axes: &[AxisFit]) -> Option<BurstFit> {
    if axes.is_empty() {
        return None;
    }
    let low_s = axes.iter().map(|a| a.burst_s().0).fold(0.0, f64::max);
    let high_s = axes.iter().filter_map(|a| a.burst_s().1).reduce(f64::min);
    let consistent = high_s.is_none_or(|h| h >= low_s) && axes.iter().all(|a| a.capacity.is_consistent());
    let estimate = match high_s {
        Some(h) if consistent => 0.5 * (low_s + h),
        _ => low_s,
    };
    // Rounded to the ms, at least 1 ms (the schema needs a positive burst).
    let estimate_s = ((estimate * 1000.0).round() / 1000.0).max(0.001);
    Some(BurstFit { estimate_s, low_s, high_s, consistent })
}

/// The fitted parts, for [`build_config`].
struct Fitted<'a> {
    ttft: Option<&'a TtftFit>,
    output_speed: Option<&'a DistFit>,
    error_response: Option<&'a DistFit>,
    rate_limit_response_ms: Option<f64>,
    retry_after_granularity: Option<Duration>,
    overloaded: f64,
    server_error: f64,
    mid_stream: f64,
    rate_limited: Option<f64>,
    rate_limited_retry_after: Option<f64>,
    axes: &'a [AxisFit],
    burst: Option<&'a BurstFit>,
}

/// Prices per million tokens back from a validated deployment's per-token figures.
fn prices_config(d: &Deployment) -> PricesConfig {
    let per_mtok = |per_token: f64| fit::round_significant(per_token * 1e6, 9);
    PricesConfig {
        input_usd_per_mtok: per_mtok(d.prices.input_usd_per_token),
        output_usd_per_mtok: per_mtok(d.prices.output_usd_per_token),
        cache_read_usd_per_mtok: Some(per_mtok(d.prices.cache_read_usd_per_token)),
        // The effective write price, whatever lifetime chose it: the default "5m" field.
        cache_write_usd_per_mtok: Some(per_mtok(d.prices.cache_write_usd_per_token)),
        cache_write_1h_usd_per_mtok: None,
        cache_write_ttl: CacheWriteTtl::default(),
        batch_price_factor: d.prices.batch_price_factor,
    }
}

fn build_config(
    name: &str,
    base: Option<&Deployment>,
    f: &Fitted<'_>,
    notes: &mut Vec<String>,
) -> DeploymentConfig {
    let (provider, model) = match base {
        Some(b) => (b.provider.clone(), b.model.clone()),
        None => match name.split_once('/') {
            Some((p, m)) => (p.to_string(), m.to_string()),
            None => (name.to_string(), name.to_string()),
        },
    };
    let prices = match base {
        Some(b) => prices_config(b),
        None => {
            notes.push("prices: not observable and no --base deployment: written as 0".into());
            PricesConfig {
                input_usd_per_mtok: 0.0,
                output_usd_per_mtok: 0.0,
                cache_read_usd_per_mtok: None,
                cache_write_usd_per_mtok: None,
                cache_write_1h_usd_per_mtok: None,
                cache_write_ttl: CacheWriteTtl::default(),
                batch_price_factor: 0.5,
            }
        }
    };
    let axis_limit = |axis: Meter| f.axes.iter().find(|a| a.axis == axis).map(|a| a.limit_per_min);
    if base.is_some_and(|b| b.limits.max_in_flight.is_some()) {
        notes.push("max_in_flight: not observable; kept from the base deployment".into());
    }
    let limits = LimitsConfig {
        rpm: axis_limit(Meter::Requests),
        itpm: axis_limit(Meter::InputTokens),
        otpm: axis_limit(Meter::OutputTokens),
        tpm: axis_limit(Meter::Tokens),
        max_in_flight: base.and_then(|b| b.limits.max_in_flight),
        burst: f.burst.map(|b| Duration::from_millis_f64(b.estimate_s * 1000.0)),
        cache_reads_count_toward_itpm: base.is_some_and(|b| b.cache_reads_count_toward_itpm),
        acceleration: None,
        quotas: Vec::new(),
    };
    if base.is_some_and(|b| b.limits.acceleration.is_some()) {
        notes.push("acceleration: the base deployment's rule is not carried over (not fitted)".into());
    }
    let mut dist_or = |fitted: Option<&DistFit>,
                       from_base: Option<DistConfig>,
                       default: DistConfig,
                       what: &str| match (fitted, from_base) {
        (Some(fit), _) => fit.chosen.config.clone(),
        (None, Some(config)) => {
            notes.push(format!("{what}: no samples; kept from the base deployment"));
            config
        }
        (None, None) => {
            notes.push(format!("{what}: no samples; the schema's default"));
            default
        }
    };
    let ttft_ms = dist_or(
        f.ttft.map(|t| &t.base),
        base.map(|b| b.ttft_ms.config()),
        DistConfig::Constant { value: DEFAULT_TTFT_MS },
        "latency.ttft_ms",
    );
    let output_tokens_per_s = dist_or(
        f.output_speed,
        base.map(|b| b.output_tokens_per_s.config()),
        DistConfig::Constant { value: DEFAULT_OUTPUT_TOKENS_PER_S },
        "latency.output_tokens_per_s",
    );
    let error_response_ms = match (f.error_response, base) {
        (Some(fit), _) => fit.chosen.config.clone(),
        (None, Some(b)) => b.error_response_ms.config(),
        (None, None) => DistConfig::Constant { value: 500.0 },
    };
    let millis = |ms: f64| Duration::from_millis(ms.round().max(1.0) as u64);
    let latency = LatencyConfig {
        ttft_ms,
        ttft_ms_per_1k_uncached_input: f
            .ttft
            .map_or_else(|| base.map_or(0.0, |b| b.ttft_ms_per_1k_uncached_input), |t| t.slope_ms_per_1k),
        output_tokens_per_s,
        error_response_ms,
        rate_limit_response: f
            .rate_limit_response_ms
            .map(millis)
            .or(base.map(|b| b.rate_limit_response))
            .unwrap_or(Duration::from_millis(150)),
        retry_after_granularity: f
            .retry_after_granularity
            .or(base.map(|b| b.retry_after_granularity))
            .unwrap_or(Duration::from_secs(1)),
    };
    let errors = ErrorsConfig {
        server_error_rate: round(f.server_error),
        overloaded_rate: round(f.overloaded),
        rate_limited_rate: f.rate_limited.map_or(0.0, round),
        rate_limited_retry_after: f.rate_limited_retry_after.map(|s| millis(s * 1000.0)),
        mid_stream_error_rate: round(f.mid_stream),
    };
    let batch = base.and_then(|b| b.batch.as_ref()).map(|b| BatchConfig {
        completion_ms: b.completion_ms.config(),
        max_completion: b.max_completion,
        max_queue: b.max_queue,
        max_queue_tokens: b.max_queue_tokens,
    });
    DeploymentConfig {
        provider,
        model,
        credential: base.and_then(|b| b.credential.clone()),
        prices,
        limits,
        latency,
        errors,
        incidents: Vec::new(),
        incident_process: None,
        batch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: usize, start_ms: f64, status: u16, input_tokens: u64) -> AttemptRecord {
        let ok = status == 200;
        // TTFT = 300 + 20 ms per 1k uncached input, exactly; 100 output tokens at 50 tok/s.
        let ttft_ms = 300.0 + 20.0 * input_tokens as f64 / 1000.0;
        let mut headers =
            BTreeMap::from([("anthropic-ratelimit-requests-limit".to_string(), "60".to_string())]);
        let retry_after_s = (!ok).then_some(1.0);
        if !ok {
            headers.insert("retry-after".into(), "1".into());
        }
        AttemptRecord {
            request_id: format!("r{id}"),
            deployment: "anthropic/sonnet".into(),
            attempt: 1,
            start_ms,
            first_token_ms: ok.then_some(start_ms + ttft_ms),
            end_ms: if ok { start_ms + ttft_ms + 2_000.0 } else { start_ms + 150.0 },
            status,
            error_type: (!ok).then(|| "rate_limit_error".to_string()),
            retry_after_s,
            headers,
            input_tokens,
            cached_input_tokens: 0,
            output_tokens: 100,
        }
    }

    /// The hand-worked bucket of `bucket`'s tests as attempt records: 60 RPM, ten requests
    /// admitted 1 ms apart from t = 0, the 11th and 12th refused with `retry-after: 1`. The
    /// limit is the header's, exactly; the capacity lies in [9.991, 10.989] requests, so the
    /// burst in [9.991 s, 10.989 s] and its estimate is the middle, 10.49 s.
    #[test]
    fn limit_burst_and_ttft_of_a_hand_worked_run() {
        let records: Vec<(u64, AttemptRecord)> = (0..12)
            .map(|i| {
                (i as u64 + 1, record(i, i as f64, if i < 10 { 200 } else { 429 }, 1_000 * (i as u64 + 1)))
            })
            .collect();
        let reserve: HashMap<&str, u64> = records.iter().map(|(_, r)| (r.request_id.as_str(), 100)).collect();
        let run = RunAttempts {
            file: "a.jsonl",
            records: records.iter().map(|(l, r)| (*l, r)).collect(),
            reserve_tokens: &reserve,
        };
        let options = FitOptions { clock_tolerance_ms: 0.0 };
        let fitted = fit_deployment("anthropic/sonnet", &[run], None, options).unwrap();
        let r = &fitted.report;
        assert_eq!(fitted.config.limits.rpm, Some(60));
        assert_eq!((fitted.config.limits.itpm, fitted.config.limits.otpm), (None, None));
        let burst = r.burst.as_ref().unwrap();
        assert!(
            (burst.low_s - 9.991).abs() < 1e-6 && (burst.high_s.unwrap() - 10.989).abs() < 1e-6,
            "{burst:?}"
        );
        assert_eq!(fitted.config.limits.burst, Some(Duration::from_millis(10_490)));
        assert_eq!((r.axes[0].refusals_attributed, r.unexplained_429), (2, 0));
        // Exact linear TTFT: the slope is 20 ms per 1k, the base a constant 300 ms.
        assert_eq!(fitted.config.latency.ttft_ms_per_1k_uncached_input, 20.0);
        assert_eq!(fitted.config.latency.ttft_ms, DistConfig::Constant { value: 300.0 });
        assert_eq!(fitted.config.latency.output_tokens_per_s, DistConfig::Constant { value: 50.0 });
        assert_eq!(fitted.config.latency.rate_limit_response, Duration::from_millis(150));
        assert_eq!(fitted.config.latency.retry_after_granularity, Duration::from_secs(1));
        assert_eq!((fitted.config.provider.as_str(), fitted.config.model.as_str()), ("anthropic", "sonnet"));
        Deployment::from_config("anthropic/sonnet", &fitted.config).unwrap();
    }

    #[test]
    fn a_header_that_does_not_parse_names_its_line() {
        let mut bad = record(0, 0.0, 200, 1_000);
        bad.headers.insert("anthropic-ratelimit-requests-limit".into(), "lots".into());
        let reserve = HashMap::new();
        let run =
            RunAttempts { file: "run/attempts.jsonl", records: vec![(7, &bad)], reserve_tokens: &reserve };
        let error = fit_deployment("d", &[run], None, FitOptions::default()).unwrap_err().to_string();
        assert_eq!(
            error,
            "run/attempts.jsonl:7: field \"headers.anthropic-ratelimit-requests-limit\": expected a number >= 0, got \"lots\""
        );
    }
}
