//! Calibration input from a gateway's own logs (`sim calibrate --from-log FORMAT:FILE`): the
//! rows of a LiteLLM proxy spend log (`litellm_spend`) or the GenAI inference spans of an
//! OpenTelemetry export (`otel_genai`), read by the trace importers' readers
//! ([`crate::trace::import::litellm_spend`], [`crate::trace::import::otel`]), turned into the
//! observed-attempt records ([`AttemptRecord`]) that calibration fits, as one [`ObservedRun`]
//! per file.
//!
//! Each row becomes one attempt: its start, its first token (LiteLLM `completionStartTime`
//! unless it equals `endTime`, which LiteLLM writes for a call that was not streamed; OTel
//! `gen_ai.response.time_to_first_chunk`), its end, its tokens, and its outcome as an HTTP
//! status and error type ([`failure_status`]: 429 rate limited, 529 overloaded, other 5xx,
//! a timeout of the gateway's own). Its deployment is the base scenario's that the row's names
//! stand for ([`DeploymentMap`], then [`crate::provider::deployment_for_model`]); rows of no
//! deployment, failures of no known status and successes without a first-token time are
//! counted and reported ([`LogReport`]), never dropped silently. A log has no rate-limit
//! headers, so limits, burst and `retry-after` cannot be fitted from it: the report says so
//! ([`LOG_NOTE`]).
//!
//! It owns that conversion and its report. It must not know the fit itself ([`super::fit_runs`]
//! fits the records as it fits `sim observe`'s) nor the formats' field syntax (the readers').

use super::observed::{status_of, STATUS_CLIENT_CLOSED};
use super::{CalibrateError, ObservedRun};
use crate::attempt_log::AttemptRecord;
use crate::limiter::Meter;
use crate::policy::AttemptOutcome;
use crate::provider::{deployment_for_model, Deployment, FailureKind};
use crate::scenario::Scenario;
use crate::trace::import::litellm_spend::{Purpose, SpendLogReader, SpendRow};
use crate::trace::import::otel::read_spans;
use crate::trace::import::{describe_keys, KeyTally, NameCounts, TraceFormat};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// What every deployment fitted from a gateway log could not be fitted on, in its notes.
pub const LOG_NOTE: &str = "gateway log: limits, burst and retry-after are not in a gateway log (no rate-limit headers): not fitted; its 429s are errors.rate_limited_rate at the load observed";

/// What a LiteLLM spend-log row is, in the notes of the deployments fitted from one.
pub const SPEND_LOG_NOTE: &str = "LiteLLM spend log: a row is one proxy request, not one provider attempt: with router retries or fallbacks its times include the attempts before it, which the log does not hold";

/// The per-minute limits of a base deployment, `rpm 50, itpm 30000`, if it has any: what a
/// table fitted from a log leaves out.
pub fn base_limits(d: &Deployment) -> Option<String> {
    let axes = [
        (Meter::Requests, "rpm"),
        (Meter::InputTokens, "itpm"),
        (Meter::OutputTokens, "otpm"),
        (Meter::Tokens, "tpm"),
    ];
    let parts: Vec<String> =
        axes.iter().filter_map(|(m, name)| d.limits.per_minute(*m).map(|n| format!("{name} {n}"))).collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// One `--from-log FORMAT:FILE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSpec {
    pub format: TraceFormat,
    pub path: PathBuf,
}

impl LogSpec {
    /// Parses `FORMAT:FILE`, FORMAT a gateway log format (`litellm_spend`, `otel_genai`).
    pub fn parse(spec: &str) -> Result<LogSpec, CalibrateError> {
        let gateway_formats = || {
            TraceFormat::ALL
                .iter()
                .filter(|f| f.is_gateway_log())
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let usage = |message: String| CalibrateError::Usage(format!("--from-log {spec:?}: {message}"));
        let Some((format, file)) = spec.split_once(':') else {
            return Err(usage(format!("expected FORMAT:FILE, FORMAT one of {}", gateway_formats())));
        };
        let format = TraceFormat::parse(format.trim())
            .ok()
            .filter(|f| f.is_gateway_log())
            .ok_or_else(|| usage(format!("unknown log format {format:?} (known: {})", gateway_formats())))?;
        if file.trim().is_empty() {
            return Err(usage("no file after the format".into()));
        }
        Ok(LogSpec { format, path: PathBuf::from(file) })
    }
}

/// `--deployment-map NAME=DEPLOYMENT`: a name a log gives (a LiteLLM `model_id`, `model`,
/// `model_group` or `api_base`; an OTel span's request or response model or `server.address`)
/// and the base scenario's deployment it stands for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeploymentMap {
    names: BTreeMap<String, String>,
}

impl DeploymentMap {
    /// Parses `NAME=DEPLOYMENT` specs; a deployment the scenario lacks is an error listing
    /// the ones it has.
    pub fn parse(specs: &[String], deployments: &[Deployment]) -> Result<DeploymentMap, CalibrateError> {
        let mut names = BTreeMap::new();
        for spec in specs {
            let usage =
                |message: String| CalibrateError::Usage(format!("--deployment-map {spec:?}: {message}"));
            let Some((name, deployment)) = spec.rsplit_once('=') else {
                return Err(usage("expected NAME=DEPLOYMENT".into()));
            };
            let (name, deployment) = (name.trim(), deployment.trim());
            if name.is_empty() {
                return Err(usage("empty NAME".into()));
            }
            if !deployments.iter().any(|d| d.name == deployment) {
                let known: Vec<&str> = deployments.iter().map(|d| d.name.as_str()).collect();
                return Err(usage(format!(
                    "no deployment {deployment:?} in the base scenario (known: {})",
                    known.join(", ")
                )));
            }
            names.insert(name.to_string(), deployment.to_string());
        }
        Ok(DeploymentMap { names })
    }

    /// The deployment of the first of `mapped` the map names, else of the first of `named`
    /// that names a deployment or the one deployment serving it
    /// ([`deployment_for_model`]), else of the one deployment whose `api_model` it is.
    fn resolve<'a>(&'a self, base: &'a Scenario, mapped: &[&str], named: &[&str]) -> Option<&'a str> {
        let by_api_model = |name: &str| {
            let mut serving = base
                .deployments
                .iter()
                .zip(&base.apis)
                .filter(|(_, api)| api.model.as_deref() == Some(name))
                .map(|(d, _)| d.name.as_str());
            match (serving.next(), serving.next()) {
                (Some(d), None) => Some(d),
                _ => None,
            }
        };
        mapped
            .iter()
            .find_map(|n| self.names.get(*n).map(String::as_str))
            .or_else(|| {
                named.iter().find_map(|n| deployment_for_model(&base.deployments, n).map(|d| d.name.as_str()))
            })
            .or_else(|| named.iter().find_map(|n| by_api_model(n)))
    }
}

/// What became of one log's rows: `rows_read` = `attempts` + `unmatched` + `unclassified`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogReport {
    pub file: String,
    /// Provider calls read (proxy cache hits and spans that are not inferences are not).
    pub rows_read: u64,
    /// Rows turned into attempts.
    pub attempts: u64,
    /// Rows of no deployment of the base scenario, by the name they gave.
    pub unmatched: NameCounts,
    /// Failed rows whose status and error say neither 429, 529, 5xx, 4xx nor timeout, by
    /// their error.
    pub unclassified: NameCounts,
    /// Successful attempts without a first-token time (not streamed, or no
    /// `time_to_first_chunk`): counted as other outcomes, in neither the TTFT nor the speed fit.
    pub no_first_token: u64,
    /// The keys of the rows and the records that were not provider calls.
    pub keys: KeyTally,
}

impl LogReport {
    /// One line per fact worth telling, for the calibration report.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = vec![format!("{} provider calls read, {} attempts", self.rows_read, self.attempts)];
        if !self.unmatched.is_empty() {
            notes.push(format!(
                "{} rows of no deployment of the base scenario, ignored ({}); map them with --deployment-map NAME=DEPLOYMENT",
                self.unmatched.total(),
                self.unmatched.describe()
            ));
        }
        if !self.unclassified.is_empty() {
            notes.push(format!(
                "{} failed rows of no known status (429, 529, 5xx, 4xx, timeout), ignored ({})",
                self.unclassified.total(),
                self.unclassified.describe()
            ));
        }
        if self.no_first_token > 0 {
            notes.push(format!(
                "{} successes without a first-token time (not streamed): outcome other, not in the TTFT or speed fit",
                self.no_first_token
            ));
        }
        notes.extend(describe_keys(&self.keys.ignored, &self.keys.unknown, &self.keys.not_calls));
        notes
    }
}

/// One log read as an observed run, with its report.
#[derive(Clone, Debug)]
pub struct LogRun {
    pub run: ObservedRun,
    pub report: LogReport,
}

/// One row before it is placed on the run's clock.
struct LogRow {
    line: u64,
    request_id: String,
    start_us: i64,
    first_token_us: Option<i64>,
    end_us: i64,
    deployment: String,
    status: u16,
    error_type: Option<String>,
    input_tokens: u64,
    cached_input_tokens: u64,
    output_tokens: u64,
}

/// What a row's failure fields say.
struct Failure<'a> {
    /// A numeric code (`metadata.error_information.error_code`, `http.response.status_code`).
    code: Option<&'a str>,
    /// A name (`error_class`, `error.type`), which may be a status itself.
    name: Option<&'a str>,
}

/// The failure kind a provider's or library's error name stands for (`RateLimitError`,
/// `rate_limit_error`, `overloaded_error`, `Timeout`, `InternalServerError`, …).
fn kind_of_name(name: &str) -> Option<FailureKind> {
    let key: String =
        name.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_ascii_lowercase();
    if key.contains("ratelimit") {
        Some(FailureKind::RateLimited)
    } else if key.contains("overloaded") {
        Some(FailureKind::Overloaded)
    } else if key.contains("timeout") || key.contains("timedout") {
        Some(FailureKind::Timeout)
    } else if ["internalserver", "serviceunavailable", "apierror", "servererror", "badgateway"]
        .iter()
        .any(|k| key.contains(k))
    {
        Some(FailureKind::ServerError)
    } else {
        None
    }
}

/// The HTTP status and error type an attempt log records for a failed row (the names
/// [`super::observed::Outcome::of`] reads back): a timeout named anywhere is the gateway giving
/// up (499 `timeout`, as `sim observe` records its own); else a numeric code (429 and 529 with
/// their error types, 408 as a timeout, other 4xx and 5xx as sent); else a name. `None` when
/// nothing says what happened.
fn failure_status(failure: &Failure<'_>) -> Option<(u16, String)> {
    let canonical = |kind: FailureKind| {
        status_of(AttemptOutcome::Failed(kind)).and_then(|(s, e)| Some((s, e?.to_string())))
    };
    let name_kind = failure.name.and_then(kind_of_name);
    if name_kind == Some(FailureKind::Timeout) {
        return canonical(FailureKind::Timeout);
    }
    let as_status = |c: &str| c.trim().parse::<u16>().ok().filter(|s| (100..=599).contains(s));
    let numeric = failure.code.and_then(as_status).or_else(|| failure.name.and_then(as_status));
    if let Some(status) = numeric {
        let named = failure.name.filter(|n| as_status(n).is_none()).map(str::to_string);
        return match status {
            429 => canonical(FailureKind::RateLimited),
            529 => canonical(FailureKind::Overloaded),
            408 | STATUS_CLIENT_CLOSED => canonical(FailureKind::Timeout),
            500..=599 => Some((status, named.unwrap_or_else(|| "api_error".into()))),
            _ => Some((status, named.unwrap_or_else(|| "error".into()))),
        };
    }
    name_kind.and_then(canonical)
}

/// The failure a row reports, for the report: its first name, or its code.
fn failure_label(failure: &Failure<'_>) -> String {
    failure.name.or(failure.code).map_or_else(|| "no error given".to_string(), str::to_string)
}

/// Reads `spec`'s file as one observed run of the base scenario's deployments. Rows are
/// ordered by start (a spend-log export need not be); times are ms since the earliest
/// start. A malformed row is an error naming file, line and field; a log none of whose rows
/// is a deployment of the scenario is an error listing the names seen.
pub fn read_log(spec: &LogSpec, base: &Scenario, map: &DeploymentMap) -> Result<LogRun, CalibrateError> {
    let mut report = LogReport { file: spec.path.display().to_string(), ..LogReport::default() };
    let rows = match spec.format {
        TraceFormat::LitellmSpend => spend_rows(&spec.path, base, map, &mut report)?,
        TraceFormat::OtelGenai => span_rows(&spec.path, base, map, &mut report)?,
        other => {
            return Err(CalibrateError::Usage(format!(
                "--from-log: {} is not a gateway log format",
                other.name()
            )))
        }
    };
    if rows.is_empty() {
        let message = if report.unmatched.is_empty() {
            "no provider calls (nothing to fit)".to_string()
        } else {
            let known: Vec<&str> = base.deployments.iter().map(|d| d.name.as_str()).collect();
            format!(
                "no row is a deployment of the base scenario (rows name: {}; deployments: {}); map them with --deployment-map NAME=DEPLOYMENT",
                report.unmatched.describe(),
                known.join(", ")
            )
        };
        return Err(CalibrateError::GatewayLog { file: report.file, message });
    }
    Ok(LogRun { run: to_run(&report.file, rows), report })
}

/// Places rows on the run's clock (ms since the earliest start), in start order, numbering
/// the attempts of each request id.
fn to_run(file: &str, mut rows: Vec<LogRow>) -> ObservedRun {
    // A stable sort: rows starting together keep their file order.
    rows.sort_by_key(|r| r.start_us);
    let origin = rows.first().map_or(0, |r| r.start_us);
    let ms = |us: i64| (us - origin) as f64 / 1000.0;
    let mut attempts: HashMap<String, u32> = HashMap::new();
    let records = rows
        .into_iter()
        .map(|r| {
            let attempt = attempts.entry(r.request_id.clone()).or_default();
            *attempt += 1;
            let record = AttemptRecord {
                request_id: r.request_id,
                deployment: r.deployment,
                attempt: *attempt,
                start_ms: ms(r.start_us),
                first_token_ms: r.first_token_us.map(|t| ms(t.clamp(r.start_us, r.end_us))),
                end_ms: ms(r.end_us),
                status: r.status,
                error_type: r.error_type,
                retry_after_s: None,
                headers: BTreeMap::new(),
                input_tokens: r.input_tokens,
                cached_input_tokens: r.cached_input_tokens.min(r.input_tokens),
                output_tokens: r.output_tokens,
            };
            (r.line, record)
        })
        .collect();
    ObservedRun { file: file.to_string(), records }
}

/// Status and error type of a row (success: 200), or `None` counted as unclassified.
fn row_status(failed: bool, failure: &Failure<'_>, report: &mut LogReport) -> Option<(u16, Option<String>)> {
    if !failed {
        return Some((200, None));
    }
    match failure_status(failure) {
        Some((status, error)) => Some((status, Some(error))),
        None => {
            report.unclassified.add(&failure_label(failure));
            None
        }
    }
}

fn spend_rows(
    path: &Path,
    base: &Scenario,
    map: &DeploymentMap,
    report: &mut LogReport,
) -> Result<Vec<LogRow>, CalibrateError> {
    let mut reader = SpendLogReader::open(path, Purpose::Attempts)?;
    let mut rows = Vec::new();
    for row in reader.by_ref() {
        let r: SpendRow = row?;
        report.rows_read += 1;
        let mapped: Vec<&str> = [&r.model_id, &r.model, &r.model_group, &r.api_base]
            .into_iter()
            .filter_map(|n| n.as_deref())
            .filter(|n| !n.is_empty())
            .collect();
        // Every name but `api_base`, a URL no deployment is named or serves.
        let named: Vec<&str> = mapped.iter().copied().filter(|n| r.api_base.as_deref() != Some(*n)).collect();
        let Some(deployment) = map.resolve(base, &mapped, &named) else {
            report.unmatched.add(r.model_group.as_deref().or(r.model.as_deref()).unwrap_or("(no model)"));
            continue;
        };
        let failure = Failure { code: r.error_code.as_deref(), name: r.error_class.as_deref() };
        let Some((status, error_type)) = row_status(r.failed, &failure, report) else { continue };
        let end_us = r.end_us.unwrap_or(r.start_us);
        // LiteLLM writes `endTime` as the first token of a call that was not streamed.
        let first_token_us = r.completion_start_us.filter(|t| *t < end_us && !r.failed);
        if !r.failed && first_token_us.is_none() {
            report.no_first_token += 1;
        }
        rows.push(LogRow {
            line: r.line,
            request_id: r.request_id,
            start_us: r.start_us,
            first_token_us,
            end_us,
            deployment: deployment.to_string(),
            status,
            error_type,
            input_tokens: r.prompt_tokens,
            cached_input_tokens: r.cached_tokens,
            output_tokens: r.completion_tokens,
        });
        report.attempts += 1;
    }
    report.keys = reader.keys().clone();
    Ok(rows)
}

fn span_rows(
    path: &Path,
    base: &Scenario,
    map: &DeploymentMap,
    report: &mut LogReport,
) -> Result<Vec<LogRow>, CalibrateError> {
    let file = read_spans(path, Purpose::Attempts, 0)?;
    if let Some(error) = file.errors.into_iter().next() {
        return Err(error.into());
    }
    report.keys = file.keys;
    let mut rows = Vec::new();
    for s in file.spans {
        report.rows_read += 1;
        let text = |v: &Option<std::sync::Arc<str>>| v.as_deref().unwrap_or("").to_string();
        let (request, response) = (text(&s.request_model), text(&s.response_model));
        let provider_model = match (&s.provider, &s.request_model) {
            (Some(p), Some(m)) => format!("{p}/{m}"),
            _ => String::new(),
        };
        let server = text(&s.server_address);
        let mapped: Vec<&str> = [request.as_str(), response.as_str(), server.as_str()]
            .into_iter()
            .filter(|n| !n.is_empty())
            .collect();
        let named: Vec<&str> = [provider_model.as_str(), request.as_str(), response.as_str()]
            .into_iter()
            .filter(|n| !n.is_empty())
            .collect();
        let Some(deployment) = map.resolve(base, &mapped, &named) else {
            let name = [request.as_str(), response.as_str()].into_iter().find(|n| !n.is_empty());
            report.unmatched.add(name.unwrap_or("(no model)"));
            continue;
        };
        let code = s.http_status.map(|c| c.to_string());
        let failed = s.failed || s.http_status.is_some_and(|c| c >= 400);
        let failure = Failure { code: code.as_deref(), name: s.error_type.as_deref() };
        let Some((status, error_type)) = row_status(failed, &failure, report) else { continue };
        let first_token_us = s.ttft_us.filter(|_| !failed).map(|t| s.start_us.saturating_add(t as i64));
        if !failed && first_token_us.is_none() {
            report.no_first_token += 1;
        }
        let request_id = if s.span_id.is_empty() { format!("line-{}", s.line) } else { s.span_id.clone() };
        rows.push(LogRow {
            line: s.line,
            request_id,
            start_us: s.start_us,
            first_token_us,
            end_us: s.end_us,
            deployment: deployment.to_string(),
            status,
            error_type,
            input_tokens: s.input_tokens,
            cached_input_tokens: s.cached_tokens,
            output_tokens: s.output_tokens,
        });
        report.attempts += 1;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: Option<&str>, name: Option<&str>) -> Option<(u16, String)> {
        failure_status(&Failure { code, name })
    }

    #[test]
    fn failures_read_as_the_statuses_calibration_knows() {
        let s = |status: u16, error: &str| Some((status, error.to_string()));
        assert_eq!(status(Some("429"), Some("RateLimitError")), s(429, "rate_limit_error"));
        assert_eq!(status(None, Some("rate_limit_error")), s(429, "rate_limit_error"));
        assert_eq!(status(Some("529"), None), s(529, "overloaded_error"));
        assert_eq!(status(None, Some("overloaded_error")), s(529, "overloaded_error"));
        assert_eq!(status(Some("503"), Some("ServiceUnavailableError")), s(503, "ServiceUnavailableError"));
        assert_eq!(status(None, Some("InternalServerError")), s(500, "api_error"));
        // A timeout is the gateway's own, whatever its code.
        assert_eq!(status(Some("408"), Some("Timeout")), s(STATUS_CLIENT_CLOSED, "timeout"));
        assert_eq!(status(Some("500"), Some("APITimeoutError")), s(STATUS_CLIENT_CLOSED, "timeout"));
        // OTel's error.type may be the status itself.
        assert_eq!(status(None, Some("429")), s(429, "rate_limit_error"));
        assert_eq!(status(Some("400"), Some("BadRequestError")), s(400, "BadRequestError"));
        assert_eq!(status(None, Some("_OTHER")), None);
        assert_eq!(status(None, None), None);
    }

    #[test]
    fn rows_are_ordered_by_start_and_numbered_per_request() {
        let row = |line: u64, id: &str, start_us: i64, status: u16| LogRow {
            line,
            request_id: id.into(),
            start_us,
            first_token_us: (status == 200).then_some(start_us + 400_000),
            end_us: start_us + 1_000_000,
            deployment: "d".into(),
            status,
            error_type: (status != 200).then(|| "rate_limit_error".into()),
            input_tokens: 100,
            cached_input_tokens: 150,
            output_tokens: 10,
        };
        // An export in reverse order: the retry of "a" (line 2) started 2.5 s after its 429
        // (line 4); "b" started between them.
        let run = to_run(
            "x.json",
            vec![row(2, "a", 7_500_000, 200), row(3, "b", 6_000_000, 200), row(4, "a", 5_000_000, 429)],
        );
        // (line, request, attempt, start, first token, end, cached input)
        type Got<'a> = (u64, &'a str, u32, f64, Option<f64>, f64, u64);
        let got: Vec<Got<'_>> = run
            .records
            .iter()
            .map(|(line, r)| {
                (
                    *line,
                    r.request_id.as_str(),
                    r.attempt,
                    r.start_ms,
                    r.first_token_ms,
                    r.end_ms,
                    r.cached_input_tokens,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (4, "a", 1, 0.0, None, 1000.0, 100),
                (3, "b", 1, 1000.0, Some(1400.0), 2000.0, 100),
                (2, "a", 2, 2500.0, Some(2900.0), 3500.0, 100),
            ]
        );
    }

    #[test]
    fn specs_parse_or_say_why_not() {
        assert_eq!(
            LogSpec::parse("litellm_spend:logs/spend.json").unwrap(),
            LogSpec { format: TraceFormat::LitellmSpend, path: PathBuf::from("logs/spend.json") }
        );
        assert_eq!(LogSpec::parse("otel_genai:a:b.json").unwrap().path, PathBuf::from("a:b.json"));
        let error = LogSpec::parse("azure:x.csv").unwrap_err().to_string();
        assert_eq!(
            error,
            "--from-log \"azure:x.csv\": unknown log format \"azure\" (known: litellm_spend, otel_genai)"
        );
        assert!(LogSpec::parse("spend.json").unwrap_err().to_string().contains("expected FORMAT:FILE"));
    }
}
