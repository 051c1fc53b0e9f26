//! Hedged requests: if an attempt has no first token after a delay (by default the observed
//! p90 time to first token of its deployment), send a second attempt elsewhere; the first
//! answer wins and the loser is cancelled, billed for what it consumed (the engine cancels it
//! at the winner's first token and the provider model bills the prompt and any streamed
//! output). A hedge budget caps the share of requests that may hedge, so hedging cannot
//! double the load in an overload.

use super::config::{nested, Catalog, PolicyConfig};
use super::observed::Observed;
use super::{AttemptReport, Decision, HedgeAttempt, History, Policy};
use crate::policy::config::PolicyError;
use crate::provider::{AttemptOptions, DeploymentId};
use crate::rng::SplitMix64;
use crate::time::{Duration, Instant};
use crate::trace::Request;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The `hedge` policy's options.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HedgeConfig {
    /// Decides the first attempt (and every retry).
    pub inner: Box<PolicyConfig>,
    /// Where hedges go, in order of preference (the first that is not the first attempt's).
    pub hedge_to: Vec<String>,
    /// Hedge after this quantile of the deployment's observed time to first token.
    #[serde(default = "default_quantile")]
    pub quantile: f64,
    /// Delay used until a deployment has been observed, and the floor of the delay.
    #[serde(default = "default_min_delay")]
    pub min_delay: Duration,
    /// At most this fraction of requests may hedge (a running budget).
    #[serde(default = "default_budget")]
    pub max_hedge_fraction: f64,
}

fn default_quantile() -> f64 {
    0.9
}
fn default_min_delay() -> Duration {
    Duration::from_secs(2)
}
fn default_budget() -> f64 {
    0.1
}

pub struct Hedge {
    inner: Box<dyn Policy>,
    hedge_to: Vec<DeploymentId>,
    observed: Observed,
    min_delay: Duration,
    max_hedge_fraction: f64,
    /// Where the request's current first attempt went.
    first_target: HashMap<u64, DeploymentId>,
    requests_seen: u64,
    /// Hedge attempts sent so far.
    pub hedges: u64,
}

impl Hedge {
    pub fn build(config: &HedgeConfig, catalog: &Catalog) -> Result<Hedge, PolicyError> {
        if !(crate::validate::is_positive(config.quantile) && config.quantile < 1.0) {
            return Err(PolicyError::new("quantile", format!("must be in (0, 1), got {}", config.quantile)));
        }
        super::config::check_fraction("max_hedge_fraction", config.max_hedge_fraction)?;
        if config.hedge_to.is_empty() {
            return Err(PolicyError::new("hedge_to", "name at least one deployment"));
        }
        let hedge_to = config
            .hedge_to
            .iter()
            .enumerate()
            .map(|(i, n)| catalog.id(&format!("hedge_to[{i}]"), n))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Hedge {
            inner: nested("inner", config.inner.build(catalog))?,
            hedge_to,
            observed: Observed::new(catalog.deployments.len(), None, vec![config.quantile], Vec::new()),
            min_delay: config.min_delay,
            max_hedge_fraction: config.max_hedge_fraction,
            first_target: HashMap::new(),
            requests_seen: 0,
            hedges: 0,
        })
    }
}

impl Policy for Hedge {
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
        if history.attempts() == 0 {
            self.requests_seen += 1;
        }
        match self.inner.route(now, request, history, rng) {
            Decision::Attempt { deployment, options, .. } if !options.batch => {
                self.first_target.insert(request.id, deployment);
                let observed = self.observed.ttft_ms(deployment, now, 0).map(Duration::from_millis_f64);
                let delay = observed.unwrap_or(self.min_delay).max(self.min_delay);
                Decision::Attempt { deployment, options, hedge_after: Some(delay) }
            }
            other => other,
        }
    }

    fn hedge(
        &mut self,
        now: Instant,
        request: &Request,
        history: &History,
        _rng: &mut SplitMix64,
    ) -> Option<HedgeAttempt> {
        let budget_left = (self.hedges as f64) < self.max_hedge_fraction * self.requests_seen as f64;
        let first = self.first_target.get(&request.id).copied();
        let target = self.hedge_to.iter().copied().find(|d| Some(*d) != first && history.available(*d, now));
        match (budget_left, target) {
            (true, Some(deployment)) => {
                self.hedges += 1;
                Some(HedgeAttempt { deployment, options: AttemptOptions::default() })
            }
            _ => None,
        }
    }

    fn observe(&mut self, now: Instant, report: &AttemptReport) {
        self.observed.record(report);
        self.inner.observe(now, report);
    }

    fn forget(&mut self, now: Instant, request_id: u64) {
        self.first_target.remove(&request_id);
        self.inner.forget(now, request_id);
    }
}
