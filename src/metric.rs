//! The metric catalogue: every scalar figure of a strategy's results that a user can name, its
//! one spelling, and how it is read from a [`StrategySummary`]. Sweeps tabulate metrics
//! (`results.csv` columns, objectives, constraints), reports plot them and the gate
//! (`sim compare`) judges them, all through this list, so a metric added here exists
//! everywhere and a misspelt one is an error, never a silent empty column.
//!
//! A metric is a figure of the whole strategy (`cost_usd`), of one class
//! (`interactive.ttft_p95_ms`) or of one deployment (`by_deployment.openai/gpt-5.cost_usd`),
//! or a count by cause (`failed_by_cause.max_price`, `fallbacks_by_cause.rate_limited`).
//! It must not know how runs are simulated, tabulated, drawn or judged.

use crate::metrics::{failed_rate, DeploymentSummary, LatencySummary, OutcomeSummary, StrategySummary};
use std::fmt;

/// A name that is not a metric.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown metric \"{name}\": {why}")]
pub struct UnknownMetric {
    pub name: String,
    pub why: String,
}

/// A latency distribution of an outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Latency {
    /// Arrival to first token.
    Ttft,
    /// Arrival to last token.
    E2e,
    /// Arrival to batch result.
    BatchCompletion,
}

impl Latency {
    const ALL: [Latency; 3] = [Latency::Ttft, Latency::E2e, Latency::BatchCompletion];

    fn name(self) -> &'static str {
        match self {
            Latency::Ttft => "ttft",
            Latency::E2e => "e2e",
            Latency::BatchCompletion => "batch_completion",
        }
    }

    fn of(self, o: &OutcomeSummary) -> &LatencySummary {
        match self {
            Latency::Ttft => &o.ttft_ms,
            Latency::E2e => &o.e2e_ms,
            Latency::BatchCompletion => &o.batch_completion_ms,
        }
    }
}

/// A statistic of a latency distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    P50,
    P90,
    P95,
    P99,
    Max,
    Mean,
}

impl Stat {
    const ALL: [Stat; 6] = [Stat::P50, Stat::P90, Stat::P95, Stat::P99, Stat::Max, Stat::Mean];

    fn name(self) -> &'static str {
        match self {
            Stat::P50 => "p50",
            Stat::P90 => "p90",
            Stat::P95 => "p95",
            Stat::P99 => "p99",
            Stat::Max => "max",
            Stat::Mean => "mean",
        }
    }

    fn of(self, l: &LatencySummary) -> f64 {
        match self {
            Stat::P50 => l.p50,
            Stat::P90 => l.p90,
            Stat::P95 => l.p95,
            Stat::P99 => l.p99,
            Stat::Max => l.max,
            Stat::Mean => l.mean,
        }
    }
}

/// A figure of an outcome (a strategy's requests, or one class of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Figure {
    Requests,
    Succeeded,
    RateLimited,
    RateLimitedNeverFit,
    Failed,
    Batched,
    Unfinished,
    Attempts,
    Attempts429,
    /// Share of attempts answered 429.
    Attempt429Rate,
    /// Share of requests that finally failed because of rate limits.
    Request429Rate,
    /// Share of requests lost for any reason (rate limits or another failure).
    FailedRate,
    AttemptsPerRequest,
    CostUsd,
    CostPer1kRequestsUsd,
    /// `<latency>_<stat>_ms`, e.g. `ttft_p95_ms`.
    Latency(Latency, Stat),
}

impl Figure {
    const COUNTS: [Figure; 15] = [
        Figure::Requests,
        Figure::Succeeded,
        Figure::RateLimited,
        Figure::RateLimitedNeverFit,
        Figure::Failed,
        Figure::Batched,
        Figure::Unfinished,
        Figure::Attempts,
        Figure::Attempts429,
        Figure::Attempt429Rate,
        Figure::Request429Rate,
        Figure::FailedRate,
        Figure::AttemptsPerRequest,
        Figure::CostUsd,
        Figure::CostPer1kRequestsUsd,
    ];

    /// Every figure: the counts and rates, then each latency statistic.
    pub fn all() -> impl Iterator<Item = Figure> {
        Figure::COUNTS.into_iter().chain(
            Latency::ALL.into_iter().flat_map(|l| Stat::ALL.into_iter().map(move |s| Figure::Latency(l, s))),
        )
    }

    pub fn name(self) -> String {
        let fixed = match self {
            Figure::Requests => "requests",
            Figure::Succeeded => "succeeded",
            Figure::RateLimited => "rate_limited",
            Figure::RateLimitedNeverFit => "rate_limited_never_fit",
            Figure::Failed => "failed",
            Figure::Batched => "batched",
            Figure::Unfinished => "unfinished",
            Figure::Attempts => "attempts",
            Figure::Attempts429 => "attempts_429",
            Figure::Attempt429Rate => "attempt_429_rate",
            Figure::Request429Rate => "request_429_rate",
            Figure::FailedRate => "failed_rate",
            Figure::AttemptsPerRequest => "attempts_per_request",
            Figure::CostUsd => "cost_usd",
            Figure::CostPer1kRequestsUsd => "cost_per_1k_requests_usd",
            Figure::Latency(l, s) => return format!("{}_{}_ms", l.name(), s.name()),
        };
        fixed.to_string()
    }

    fn parse(name: &str) -> Option<Figure> {
        Figure::all().find(|f| f.name() == name)
    }

    /// The figure's value; `None` when undefined: latency of a distribution with no values
    /// (not 0 ms: a configuration that fails every request must not look fast), a share of
    /// no requests.
    pub fn value(self, o: &OutcomeSummary) -> Option<f64> {
        let count = |n: u64| Some(n as f64);
        match self {
            Figure::Requests => count(o.requests),
            Figure::Succeeded => count(o.succeeded),
            Figure::RateLimited => count(o.rate_limited),
            Figure::RateLimitedNeverFit => count(o.rate_limited_never_fit),
            Figure::Failed => count(o.failed),
            Figure::Batched => count(o.batched),
            Figure::Unfinished => count(o.unfinished),
            Figure::Attempts => count(o.attempts),
            Figure::Attempts429 => count(o.attempts_429),
            Figure::Attempt429Rate => Some(o.attempt_429_rate),
            Figure::Request429Rate => Some(o.request_429_rate),
            Figure::FailedRate => failed_rate(o.requests, o.rate_limited, o.failed),
            Figure::AttemptsPerRequest => Some(o.attempts_per_request),
            Figure::CostUsd => Some(o.cost_usd),
            Figure::CostPer1kRequestsUsd => Some(o.cost_per_1k_requests_usd),
            Figure::Latency(l, s) => {
                let latency = l.of(o);
                (latency.count > 0).then(|| s.of(latency))
            }
        }
    }

    /// The unit shown on an axis: `ms`, `USD`, a share, or a plain count.
    pub fn unit(self) -> Unit {
        match self {
            Figure::Latency(..) => Unit::Milliseconds,
            Figure::CostUsd | Figure::CostPer1kRequestsUsd => Unit::Usd,
            Figure::Attempt429Rate | Figure::Request429Rate | Figure::FailedRate => Unit::Share,
            Figure::Requests
            | Figure::Succeeded
            | Figure::RateLimited
            | Figure::RateLimitedNeverFit
            | Figure::Failed
            | Figure::Batched
            | Figure::Unfinished
            | Figure::Attempts
            | Figure::Attempts429
            | Figure::AttemptsPerRequest => Unit::Count,
        }
    }
}

/// What a metric is measured in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Milliseconds,
    Usd,
    Share,
    Count,
}

/// A figure of one deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeploymentFigure {
    LoadShare,
    Attempts,
    Attempts429,
    Successes,
    BatchAccepted,
    ServerErrors,
    Overloaded,
    Timeouts,
    InputTokens,
    CachedInputTokens,
    OutputTokens,
    CostUsd,
}

impl DeploymentFigure {
    const ALL: [DeploymentFigure; 12] = [
        DeploymentFigure::LoadShare,
        DeploymentFigure::Attempts,
        DeploymentFigure::Attempts429,
        DeploymentFigure::Successes,
        DeploymentFigure::BatchAccepted,
        DeploymentFigure::ServerErrors,
        DeploymentFigure::Overloaded,
        DeploymentFigure::Timeouts,
        DeploymentFigure::InputTokens,
        DeploymentFigure::CachedInputTokens,
        DeploymentFigure::OutputTokens,
        DeploymentFigure::CostUsd,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DeploymentFigure::LoadShare => "load_share",
            DeploymentFigure::Attempts => "attempts",
            DeploymentFigure::Attempts429 => "attempts_429",
            DeploymentFigure::Successes => "successes",
            DeploymentFigure::BatchAccepted => "batch_accepted",
            DeploymentFigure::ServerErrors => "server_errors",
            DeploymentFigure::Overloaded => "overloaded",
            DeploymentFigure::Timeouts => "timeouts",
            DeploymentFigure::InputTokens => "input_tokens",
            DeploymentFigure::CachedInputTokens => "cached_input_tokens",
            DeploymentFigure::OutputTokens => "output_tokens",
            DeploymentFigure::CostUsd => "cost_usd",
        }
    }

    /// What the figure is measured in.
    pub fn unit(self) -> Unit {
        match self {
            DeploymentFigure::LoadShare => Unit::Share,
            DeploymentFigure::CostUsd => Unit::Usd,
            DeploymentFigure::Attempts
            | DeploymentFigure::Attempts429
            | DeploymentFigure::Successes
            | DeploymentFigure::BatchAccepted
            | DeploymentFigure::ServerErrors
            | DeploymentFigure::Overloaded
            | DeploymentFigure::Timeouts
            | DeploymentFigure::InputTokens
            | DeploymentFigure::CachedInputTokens
            | DeploymentFigure::OutputTokens => Unit::Count,
        }
    }

    pub fn value(self, d: &DeploymentSummary) -> f64 {
        let m = &d.metrics;
        match self {
            DeploymentFigure::LoadShare => d.load_share,
            DeploymentFigure::Attempts => m.attempts as f64,
            DeploymentFigure::Attempts429 => m.attempts_429 as f64,
            DeploymentFigure::Successes => m.successes as f64,
            DeploymentFigure::BatchAccepted => m.batch_accepted as f64,
            DeploymentFigure::ServerErrors => m.server_errors as f64,
            DeploymentFigure::Overloaded => m.overloaded as f64,
            DeploymentFigure::Timeouts => m.timeouts as f64,
            DeploymentFigure::InputTokens => m.input_tokens as f64,
            DeploymentFigure::CachedInputTokens => m.cached_input_tokens as f64,
            DeploymentFigure::OutputTokens => m.output_tokens as f64,
            DeploymentFigure::CostUsd => m.cost_usd,
        }
    }
}

/// A metric a user can name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Metric {
    /// A figure of the whole strategy (`class: None`) or of one class.
    Outcome { class: Option<String>, figure: Figure },
    /// Requests that finally failed with this cause (0 when none did).
    FailedByCause { class: Option<String>, cause: String },
    /// Fallbacks fired after a failure of this kind.
    FallbacksByCause(String),
    /// Calls re-issued by the retry layer of this name (0 when it re-issued none).
    RetriesByLayer(String),
    /// Closed-loop children that started late.
    LateChildStarts,
    /// A figure of one deployment.
    Deployment { deployment: String, figure: DeploymentFigure },
}

/// Figures tabulated for the whole strategy in a sweep's `results.csv`, in column order.
pub const SWEEP_FIGURES: [Figure; 10] = [
    Figure::Request429Rate,
    Figure::FailedRate,
    Figure::Attempt429Rate,
    Figure::Latency(Latency::Ttft, Stat::P50),
    Figure::Latency(Latency::Ttft, Stat::P95),
    Figure::Latency(Latency::Ttft, Stat::P99),
    Figure::Latency(Latency::E2e, Stat::P95),
    Figure::CostUsd,
    Figure::CostPer1kRequestsUsd,
    Figure::AttemptsPerRequest,
];

/// Figures tabulated for each class in a sweep's `results.csv`.
pub const SWEEP_CLASS_FIGURES: [Figure; 5] = [
    Figure::Request429Rate,
    Figure::FailedRate,
    Figure::Latency(Latency::Ttft, Stat::P50),
    Figure::Latency(Latency::Ttft, Stat::P95),
    Figure::Latency(Latency::Ttft, Stat::P99),
];

/// The class whose first-token tail the headline, the Pareto front and the default gate use.
pub const HEADLINE_CLASS: &str = "interactive";

impl Metric {
    /// The metrics a report shows first (a sweep's plots, when it has them).
    pub fn headline() -> Vec<Metric> {
        let ttft_p95 = Figure::Latency(Latency::Ttft, Stat::P95);
        vec![
            Metric::overall(Figure::Request429Rate),
            Metric::overall(Figure::FailedRate),
            Metric::overall(Figure::Attempt429Rate),
            Metric::headline_latency(),
            Metric::overall(ttft_p95),
            Metric::overall(Figure::CostUsd),
            Metric::overall(Figure::AttemptsPerRequest),
        ]
    }

    /// The latency a cost-vs-latency picture uses: interactive TTFT p95 if every subject has
    /// it, else the overall TTFT p95.
    pub fn latency_axis(has_headline_class: bool) -> Metric {
        if has_headline_class {
            Metric::headline_latency()
        } else {
            Metric::overall(Figure::Latency(Latency::Ttft, Stat::P95))
        }
    }

    pub fn overall(figure: Figure) -> Metric {
        Metric::Outcome { class: None, figure }
    }

    pub fn of_class(class: &str, figure: Figure) -> Metric {
        Metric::Outcome { class: Some(class.to_string()), figure }
    }

    /// The headline latency: interactive TTFT p95.
    pub fn headline_latency() -> Metric {
        Metric::of_class(HEADLINE_CLASS, Figure::Latency(Latency::Ttft, Stat::P95))
    }

    /// The metrics of a sweep over a trace with these classes, in column order.
    pub fn sweep_columns(class_names: &[String]) -> Vec<Metric> {
        let mut metrics: Vec<Metric> = SWEEP_FIGURES.into_iter().map(Metric::overall).collect();
        for class in class_names {
            metrics.extend(SWEEP_CLASS_FIGURES.into_iter().map(|f| Metric::of_class(class, f)));
        }
        metrics
    }

    /// Parses a metric name. Canonical forms: `cost_usd`, `interactive.ttft_p95_ms`,
    /// `failed_by_cause.max_price`, `bulk.failed_by_cause.timeout`,
    /// `fallbacks_by_cause.rate_limited`, `retries_by_layer.sdk`, `late_child_starts`,
    /// `by_deployment.openai/gpt-5.cost_usd`. Also accepted, as the same metrics:
    /// `by_class.<class>.<figure>` (the path in `summary.json`), `<class>_<latency>_<stat>_ms`
    /// (the gate's older short form, e.g. `interactive_ttft_p95_ms`) and `cost` for `cost_usd`.
    pub fn parse(name: &str) -> Result<Metric, UnknownMetric> {
        let unknown = |why: String| UnknownMetric { name: name.to_string(), why };
        let trimmed = name.trim();
        if trimmed == "cost" {
            return Ok(Metric::overall(Figure::CostUsd));
        }
        if trimmed == "late_child_starts" {
            return Ok(Metric::LateChildStarts);
        }
        if let Some(cause) = trimmed.strip_prefix("fallbacks_by_cause.") {
            return non_empty(cause).map(Metric::FallbacksByCause).ok_or_else(|| unknown("no cause".into()));
        }
        if let Some(layer) = trimmed.strip_prefix("retries_by_layer.") {
            return non_empty(layer).map(Metric::RetriesByLayer).ok_or_else(|| unknown("no layer".into()));
        }
        if let Some(rest) = trimmed.strip_prefix("by_deployment.") {
            let (deployment, figure) = rest
                .rsplit_once('.')
                .ok_or_else(|| unknown("expected by_deployment.<deployment>.<figure>".into()))?;
            let figure = DeploymentFigure::ALL.into_iter().find(|f| f.name() == figure).ok_or_else(|| {
                let known: Vec<&str> = DeploymentFigure::ALL.iter().map(|f| f.name()).collect();
                unknown(format!("deployment figures are {}", known.join(", ")))
            })?;
            let deployment = non_empty(deployment).ok_or_else(|| unknown("no deployment".into()))?;
            return Ok(Metric::Deployment { deployment, figure });
        }
        let rest = trimmed.strip_prefix("by_class.").unwrap_or(trimmed);
        let class_given = rest.len() != trimmed.len();
        // `[<class>.]failed_by_cause.<cause>`
        if let Some((before, cause)) = split_cause(rest) {
            let class = before.map(String::from);
            if class_given && class.is_none() {
                return Err(unknown("expected by_class.<class>.failed_by_cause.<cause>".into()));
            }
            let cause = non_empty(cause).ok_or_else(|| unknown("no cause".into()))?;
            return Ok(Metric::FailedByCause { class, cause });
        }
        // `[<class>.]<figure>`: a class may itself contain dots, a figure never does.
        let (class, figure) = match rest.rsplit_once('.') {
            Some((class, figure)) => (Some(class), figure),
            None if class_given => return Err(unknown("expected by_class.<class>.<figure>".into())),
            None => (None, rest),
        };
        if let Some(figure) = Figure::parse(figure) {
            return Ok(Metric::Outcome { class: class.and_then(non_empty), figure });
        }
        // `<class>_<latency>_<stat>_ms`
        if class.is_none() {
            for f in Figure::all().filter(|f| matches!(f, Figure::Latency(..))) {
                if let Some(class) = rest.strip_suffix(&f.name()).and_then(|c| c.strip_suffix('_')) {
                    if let Some(class) = non_empty(class) {
                        return Ok(Metric::Outcome { class: Some(class), figure: f });
                    }
                }
            }
        }
        Err(unknown(format!(
            "figures are {} (of a class: <class>.<figure>), or failed_by_cause.<cause>, fallbacks_by_cause.<cause>, retries_by_layer.<layer>, late_child_starts, by_deployment.<deployment>.<figure>",
            Figure::all().map(Figure::name).collect::<Vec<_>>().join(", ")
        )))
    }

    /// The metric's value in one strategy's summary; `None` when it has no such class or
    /// deployment, or the figure is undefined there (see [`Figure::value`]).
    pub fn value(&self, s: &StrategySummary) -> Option<f64> {
        let outcome = |class: &Option<String>| match class {
            None => Some(&s.outcome),
            Some(c) => s.by_class.get(c),
        };
        match self {
            Metric::Outcome { class, figure } => figure.value(outcome(class)?),
            Metric::FailedByCause { class, cause } => {
                Some(outcome(class)?.failed_by_cause.get(cause).copied().unwrap_or(0) as f64)
            }
            Metric::FallbacksByCause(cause) => {
                Some(s.fallbacks_by_cause.get(cause).copied().unwrap_or(0) as f64)
            }
            Metric::RetriesByLayer(layer) => Some(s.retries_by_layer.get(layer).copied().unwrap_or(0) as f64),
            Metric::LateChildStarts => Some(s.late_child_starts as f64),
            Metric::Deployment { deployment, figure } => {
                s.by_deployment.get(deployment).map(|d| figure.value(d))
            }
        }
    }

    /// The unit of the metric's values.
    pub fn unit(&self) -> Unit {
        match self {
            Metric::Outcome { figure, .. } => figure.unit(),
            Metric::Deployment { figure, .. } => figure.unit(),
            Metric::FailedByCause { .. }
            | Metric::FallbacksByCause(_)
            | Metric::RetriesByLayer(_)
            | Metric::LateChildStarts => Unit::Count,
        }
    }
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

/// Splits `[<class>.]failed_by_cause.<cause>` into the class (if any) and the cause.
fn split_cause(text: &str) -> Option<(Option<&str>, &str)> {
    const KEY: &str = "failed_by_cause.";
    if let Some(cause) = text.strip_prefix(KEY) {
        return Some((None, cause));
    }
    let at = text.find(&format!(".{KEY}"))?;
    Some((Some(&text[..at]), &text[at + 1 + KEY.len()..]))
}

/// The canonical spelling: what `results.csv` headers, gate rows and plot titles show.
impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Outcome { class: None, figure } => write!(f, "{}", figure.name()),
            Metric::Outcome { class: Some(c), figure } => write!(f, "{c}.{}", figure.name()),
            Metric::FailedByCause { class: None, cause } => write!(f, "failed_by_cause.{cause}"),
            Metric::FailedByCause { class: Some(c), cause } => write!(f, "{c}.failed_by_cause.{cause}"),
            Metric::FallbacksByCause(cause) => write!(f, "fallbacks_by_cause.{cause}"),
            Metric::RetriesByLayer(layer) => write!(f, "retries_by_layer.{layer}"),
            Metric::LateChildStarts => write!(f, "late_child_starts"),
            Metric::Deployment { deployment, figure } => {
                write!(f, "by_deployment.{deployment}.{}", figure.name())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::DeploymentMetrics;

    fn summary() -> StrategySummary {
        let outcome = |requests: u64, failed: u64| OutcomeSummary {
            requests,
            succeeded: requests - failed - 1,
            rate_limited: 1,
            failed,
            failed_by_cause: [("max_price".to_string(), failed)].into(),
            ttft_ms: LatencySummary { count: 3, p95: 1200.0, ..Default::default() },
            cost_usd: 4.5,
            ..Default::default()
        };
        StrategySummary {
            name: "s".into(),
            outcome: outcome(10, 2),
            late_child_starts: 7,
            fallbacks_by_cause: [("rate_limited".to_string(), 5)].into(),
            retries_by_layer: [("sdk".to_string(), 3)].into(),
            by_class: [("interactive".to_string(), outcome(4, 1)), ("a.b".to_string(), outcome(3, 0))].into(),
            by_deployment: [(
                "openai/gpt-4.1".to_string(),
                DeploymentSummary {
                    load_share: 0.25,
                    metrics: DeploymentMetrics { cost_usd: 1.5, ..Default::default() },
                },
            )]
            .into(),
        }
    }

    #[test]
    fn every_spelling_names_one_metric_and_prints_canonically() {
        for (given, canonical) in [
            ("cost_usd", "cost_usd"),
            ("cost", "cost_usd"),
            ("interactive.ttft_p95_ms", "interactive.ttft_p95_ms"),
            ("interactive_ttft_p95_ms", "interactive.ttft_p95_ms"),
            ("by_class.interactive.ttft_p95_ms", "interactive.ttft_p95_ms"),
            ("long_class_e2e_p99_ms", "long_class.e2e_p99_ms"),
            ("a.b.failed_rate", "a.b.failed_rate"),
            ("failed_by_cause.max_price", "failed_by_cause.max_price"),
            ("by_class.bulk.failed_by_cause.timeout", "bulk.failed_by_cause.timeout"),
            ("fallbacks_by_cause.rate_limited", "fallbacks_by_cause.rate_limited"),
            ("retries_by_layer.sdk", "retries_by_layer.sdk"),
            ("late_child_starts", "late_child_starts"),
            ("by_deployment.openai/gpt-4.1.cost_usd", "by_deployment.openai/gpt-4.1.cost_usd"),
            ("batch_completion_p50_ms", "batch_completion_p50_ms"),
        ] {
            let metric = Metric::parse(given).unwrap_or_else(|e| panic!("{given}: {e}"));
            assert_eq!(metric.to_string(), canonical, "{given}");
            assert_eq!(Metric::parse(canonical).unwrap(), metric, "{canonical} round-trips");
        }
    }

    /// Every variant of the figure enums, once. The exhaustive `match` below does not compile
    /// when a variant is added, until it has an arm there; add it to this list beside the arm,
    /// and the test fails until it is in the catalogue's own list too (`Figure::COUNTS`,
    /// `Latency::ALL`, `Stat::ALL` or `DeploymentFigure::ALL`), so that it can be named.
    fn every_variant() -> (Vec<Figure>, Vec<DeploymentFigure>) {
        use DeploymentFigure as D;
        let latencies = [Latency::Ttft, Latency::E2e, Latency::BatchCompletion];
        let stats = [Stat::P50, Stat::P90, Stat::P95, Stat::P99, Stat::Max, Stat::Mean];
        let mut figures = vec![
            Figure::Requests,
            Figure::Succeeded,
            Figure::RateLimited,
            Figure::RateLimitedNeverFit,
            Figure::Failed,
            Figure::Batched,
            Figure::Unfinished,
            Figure::Attempts,
            Figure::Attempts429,
            Figure::Attempt429Rate,
            Figure::Request429Rate,
            Figure::FailedRate,
            Figure::AttemptsPerRequest,
            Figure::CostUsd,
            Figure::CostPer1kRequestsUsd,
        ];
        figures.extend(latencies.into_iter().flat_map(|l| stats.map(|s| Figure::Latency(l, s))));
        let deployment = vec![
            D::LoadShare,
            D::Attempts,
            D::Attempts429,
            D::Successes,
            D::BatchAccepted,
            D::ServerErrors,
            D::Overloaded,
            D::Timeouts,
            D::InputTokens,
            D::CachedInputTokens,
            D::OutputTokens,
            D::CostUsd,
        ];
        for f in &figures {
            match f {
                Figure::Requests
                | Figure::Succeeded
                | Figure::RateLimited
                | Figure::RateLimitedNeverFit
                | Figure::Failed
                | Figure::Batched
                | Figure::Unfinished
                | Figure::Attempts
                | Figure::Attempts429
                | Figure::Attempt429Rate
                | Figure::Request429Rate
                | Figure::FailedRate
                | Figure::AttemptsPerRequest
                | Figure::CostUsd
                | Figure::CostPer1kRequestsUsd => {}
                Figure::Latency(l, s) => {
                    match l {
                        Latency::Ttft | Latency::E2e | Latency::BatchCompletion => {}
                    }
                    match s {
                        Stat::P50 | Stat::P90 | Stat::P95 | Stat::P99 | Stat::Max | Stat::Mean => {}
                    }
                }
            }
        }
        for d in &deployment {
            match d {
                D::LoadShare
                | D::Attempts
                | D::Attempts429
                | D::Successes
                | D::BatchAccepted
                | D::ServerErrors
                | D::Overloaded
                | D::Timeouts
                | D::InputTokens
                | D::CachedInputTokens
                | D::OutputTokens
                | D::CostUsd => {}
            }
        }
        (figures, deployment)
    }

    #[test]
    fn every_variant_is_in_the_catalogue_and_its_name_parses_back() {
        let (figures, deployment) = every_variant();
        let listed: Vec<Figure> = Figure::all().collect();
        assert_eq!(listed.len(), figures.len(), "Figure::all() has each figure once");
        for f in figures {
            assert!(listed.contains(&f), "{f:?} is missing from Figure::COUNTS or Latency/Stat::ALL");
            for metric in [Metric::overall(f), Metric::of_class("a.b", f)] {
                assert_eq!(Metric::parse(&metric.to_string()), Ok(metric.clone()), "{metric}");
                assert_eq!(metric.unit(), f.unit());
            }
        }
        assert_eq!(DeploymentFigure::ALL.len(), deployment.len(), "DeploymentFigure::ALL has each once");
        for figure in deployment {
            assert!(
                DeploymentFigure::ALL.contains(&figure),
                "{figure:?} is missing from DeploymentFigure::ALL"
            );
            let metric = Metric::Deployment { deployment: "openai/gpt-4.1".into(), figure };
            assert_eq!(Metric::parse(&metric.to_string()), Ok(metric.clone()), "{metric}");
            assert_eq!(metric.unit(), figure.unit());
        }
        for metric in [
            Metric::FailedByCause { class: None, cause: "timeout".into() },
            Metric::FailedByCause { class: Some("bulk".into()), cause: "timeout".into() },
            Metric::FallbacksByCause("rate_limited".into()),
            Metric::RetriesByLayer("sdk".into()),
            Metric::LateChildStarts,
        ] {
            assert_eq!(Metric::parse(&metric.to_string()), Ok(metric.clone()), "{metric}");
            assert_eq!(metric.unit(), Unit::Count);
        }
    }

    #[test]
    fn units_are_those_the_plots_and_tables_show() {
        let unit = |name: &str| Metric::parse(name).unwrap().unit();
        assert_eq!(unit("interactive.ttft_p95_ms"), Unit::Milliseconds);
        assert_eq!(unit("cost_per_1k_requests_usd"), Unit::Usd);
        assert_eq!(unit("failed_rate"), Unit::Share);
        assert_eq!(unit("attempts_per_request"), Unit::Count);
        assert_eq!(unit("by_deployment.a/b.load_share"), Unit::Share);
        assert_eq!(unit("by_deployment.a/b.cost_usd"), Unit::Usd);
        assert_eq!(unit("by_deployment.a/b.input_tokens"), Unit::Count);
    }

    #[test]
    fn misspelt_names_are_errors_saying_what_exists() {
        for bad in [
            "cost_eur",
            "ttft_p96_ms",
            "interactive.",
            "by_class.x",
            "by_deployment.a.price",
            "failed_by_cause.",
        ] {
            let e = Metric::parse(bad).expect_err(bad);
            assert!(e.to_string().starts_with(&format!("unknown metric \"{bad}\"")), "{e}");
        }
        assert!(Metric::parse("cost_eur").unwrap_err().why.contains("cost_usd"));
    }

    #[test]
    fn values_come_from_the_summary_and_undefined_ones_are_none() {
        let s = summary();
        let v = |name: &str| Metric::parse(name).unwrap().value(&s);
        assert_eq!(v("cost_usd"), Some(4.5));
        assert_eq!(v("interactive.ttft_p95_ms"), Some(1200.0));
        // (rate_limited + failed) / requests: (1 + 2) / 10 and (1 + 1) / 4.
        assert_eq!(v("failed_rate"), Some(0.3));
        assert_eq!(v("interactive.failed_rate"), Some(0.5));
        assert_eq!(v("a.b.failed_rate"), Some(0.333333));
        assert_eq!(v("failed_by_cause.max_price"), Some(2.0));
        assert_eq!(v("failed_by_cause.timeout"), Some(0.0));
        assert_eq!(v("fallbacks_by_cause.rate_limited"), Some(5.0));
        assert_eq!(v("retries_by_layer.sdk"), Some(3.0));
        assert_eq!(v("retries_by_layer.harness"), Some(0.0));
        assert_eq!(v("late_child_starts"), Some(7.0));
        assert_eq!(v("by_deployment.openai/gpt-4.1.load_share"), Some(0.25));
        assert_eq!(v("by_deployment.openai/gpt-4.1.cost_usd"), Some(1.5));
        // No such class or deployment; a latency with no values; a share of no requests.
        assert_eq!(v("bulk.cost_usd"), None);
        assert_eq!(v("by_deployment.x.cost_usd"), None);
        assert_eq!(v("e2e_p95_ms"), None);
        assert_eq!(failed_rate(0, 0, 0), None);
    }

    #[test]
    fn sweep_columns_are_the_overall_figures_then_each_class() {
        let names: Vec<String> =
            Metric::sweep_columns(&["bulk".into()]).iter().map(|m| m.to_string()).collect();
        assert_eq!(names.len(), SWEEP_FIGURES.len() + SWEEP_CLASS_FIGURES.len());
        assert_eq!(names[0], "request_429_rate");
        assert_eq!(
            names[10..],
            [
                "bulk.request_429_rate",
                "bulk.failed_rate",
                "bulk.ttft_p50_ms",
                "bulk.ttft_p95_ms",
                "bulk.ttft_p99_ms"
            ]
        );
    }
}
