//! A retry layer above the router: what an agent SDK's `max_retries` or an agent harness's own
//! attempts do around a gateway. When the router gives up on a failure such a layer would
//! retry, the layer waits (its own backoff, or the last 429's `retry-after` if longer) and
//! re-issues the call, which the router sees as a fresh one. Layers stack by nesting, so one
//! 429 can become `(harness + 1) × (sdk + 1) × router` attempts, as in the issue threads.
//!
//! It owns only the layer's own budget per request; it must not know what the router inside
//! does, nor the engine.

use super::config::{check_backoff, nested, Catalog, PolicyConfig, PolicyError};
use super::{AttemptReport, Backoff, Decision, History, Policy};
use crate::provider::FailureKind;
use crate::rng::SplitMix64;
use crate::time::{Duration, Instant};
use crate::trace::Request;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// The `retry_layer` policy's options.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetryLayerConfig {
    /// The router (or the next layer down).
    pub inner: Box<PolicyConfig>,
    /// Calls re-issued after the first (an SDK's `max_retries`; 2 for the Anthropic and OpenAI
    /// SDKs).
    pub max_retries: u32,
    #[serde(default)]
    pub backoff: Backoff,
    /// The layer's name in the results' per-layer breakdown (`retries_by_layer.sdk`).
    #[serde(default = "default_layer_name")]
    pub layer: String,
    /// Whether a stream that broke after its first token is retried. The Anthropic and OpenAI
    /// SDKs do not retry an error inside a stream that already started (the caller has seen
    /// output): default false; an agent harness that restarts the turn sets it.
    #[serde(default)]
    pub retry_mid_stream: bool,
}

fn default_layer_name() -> String {
    "retry_layer".into()
}

/// A retry layer around a router.
pub struct RetryLayer {
    inner: Box<dyn Policy>,
    max_retries: u32,
    backoff: Backoff,
    layer: Arc<str>,
    retry_mid_stream: bool,
    /// Calls re-issued so far, per request in flight.
    retried: HashMap<u64, u32>,
}

impl RetryLayer {
    pub fn build(config: &RetryLayerConfig, catalog: &Catalog) -> Result<RetryLayer, PolicyError> {
        check_backoff(&config.backoff)?;
        let name = config.layer.trim();
        if name.is_empty() || name.contains(|c: char| c.is_control() || c == '.' || c.is_whitespace()) {
            return Err(PolicyError::new(
                "layer",
                format!("must be a non-empty name without dots, spaces or control characters (it is a metric name), got {:?}", config.layer),
            ));
        }
        Ok(RetryLayer {
            layer: Arc::from(name),
            retry_mid_stream: config.retry_mid_stream,
            inner: nested("inner", config.inner.build(catalog))?,
            max_retries: config.max_retries,
            backoff: config.backoff,
            retried: HashMap::new(),
        })
    }
}

/// What an SDK retries: rate limits, server errors and overloads, timeouts, and (if the layer
/// says so) broken streams; not a request no limit can pass, a quota exhausted until its
/// period ends (the provider marks it non-retryable), nor batch or cancellation outcomes.
fn layer_retries(kind: FailureKind, retry_mid_stream: bool) -> bool {
    match kind {
        FailureKind::RateLimited
        | FailureKind::ServerError
        | FailureKind::Overloaded
        | FailureKind::Timeout
        | FailureKind::SlowFirstToken => true,
        FailureKind::MidStream => retry_mid_stream,
        _ => false,
    }
}

impl Policy for RetryLayer {
    fn inner(&mut self) -> Option<&mut dyn Policy> {
        Some(self.inner.as_mut())
    }

    fn inner_ref(&self) -> Option<&dyn Policy> {
        Some(self.inner.as_ref())
    }

    fn route(
        &mut self,
        now: Instant,
        request: &Request,
        history: &mut History,
        rng: &mut SplitMix64,
    ) -> Decision {
        let decision = self.inner.route(now, request, history, rng);
        let retryable = match decision {
            Decision::GiveUp => history
                .last()
                .and_then(AttemptReport::failure)
                .is_some_and(|kind| layer_retries(kind, self.retry_mid_stream)),
            // LiteLLM answers "no deployments available" as a 429: SDKs retry it.
            Decision::Reject { reason } => reason == "no_deployments_available",
            _ => return decision,
        };
        let retried = self.retried.entry(request.id).or_default();
        if !retryable || *retried >= self.max_retries {
            return decision;
        }
        let delay = self.backoff.delay(*retried, rng);
        *retried += 1;
        let delay = history.last().and_then(|l| l.retry_after).map_or(delay, |after| after.max(delay));
        // The router will see a new call: it forgets this one, the history starts afresh.
        self.inner.forget(now, request.id);
        history.restart_call(&self.layer);
        Decision::Wait { until: now + delay.max(Duration::from_micros(1)) }
    }

    fn forget(&mut self, now: Instant, request_id: u64) {
        self.retried.remove(&request_id);
        self.inner.forget(now, request_id);
    }
}
