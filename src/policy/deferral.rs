//! Deadline-aware scheduling of work that can wait: a request with a deadline (by default the
//! `async` class) is held while the system is busy — the router has more than
//! `busy_in_flight` attempts in flight, or saw a 429 in the last `calm_for` — and released in
//! a quiet moment, or at the latest when only `slack` remains before its deadline. Held work
//! is checked again every `recheck`.

use super::classes::class_id;
use super::config::{nested, Catalog, PolicyConfig};
use super::{AttemptOutcome, AttemptReport, Decision, HedgeAttempt, History, Policy};
use crate::policy::config::PolicyError;
use crate::provider::FailureKind;
use crate::rng::SplitMix64;
use crate::time::{Duration, Instant};
use crate::trace::{ClassId, Request};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// The `deferral` policy's options.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeferralConfig {
    pub inner: Box<PolicyConfig>,
    /// Classes that may be held (they must also carry a deadline).
    #[serde(default = "default_classes")]
    pub classes: Vec<String>,
    /// Busy while more attempts than this are in flight through this policy.
    pub busy_in_flight: u32,
    /// Busy for this long after any 429.
    #[serde(default = "default_calm")]
    pub calm_for: Duration,
    #[serde(default = "default_recheck")]
    pub recheck: Duration,
    /// Release no later than this long before the deadline.
    #[serde(default = "default_slack")]
    pub slack: Duration,
}

fn default_classes() -> Vec<String> {
    vec!["async".into()]
}
fn default_calm() -> Duration {
    Duration::from_secs(60)
}
fn default_recheck() -> Duration {
    Duration::from_secs(30)
}
fn default_slack() -> Duration {
    Duration::from_mins(30)
}

pub struct Deferral {
    inner: Box<dyn Policy>,
    classes: Vec<ClassId>,
    config: DeferralConfig,
    in_flight: HashSet<(u64, u32)>,
    last_429: Option<Instant>,
}

impl Deferral {
    pub fn build(config: &DeferralConfig, catalog: &Catalog) -> Result<Deferral, PolicyError> {
        if config.recheck.is_zero() {
            return Err(PolicyError::new("recheck", "must be > 0"));
        }
        let classes = config
            .classes
            .iter()
            .enumerate()
            .map(|(i, c)| class_id(&format!("classes[{i}]"), c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Deferral {
            inner: nested("inner", config.inner.build(catalog))?,
            classes,
            config: config.clone(),
            in_flight: HashSet::new(),
            last_429: None,
        })
    }

    fn busy(&self, now: Instant) -> bool {
        self.in_flight.len() > self.config.busy_in_flight as usize
            || self.last_429.is_some_and(|at| now.saturating_since(at) < self.config.calm_for)
    }
}

impl Policy for Deferral {
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
        if history.attempts() == 0 && self.classes.contains(&request.class) {
            if let Some(deadline) = request.deadline {
                let release_by = history.started_at() + (deadline - self.config.slack);
                if self.busy(now) && now < release_by {
                    return Decision::Wait { until: (now + self.config.recheck).min(release_by) };
                }
            }
        }
        let decision = self.inner.route(now, request, history, rng);
        if matches!(decision, Decision::Attempt { .. }) {
            self.in_flight.insert((request.id, history.next_attempt()));
        }
        decision
    }

    fn hedge(
        &mut self,
        now: Instant,
        request: &Request,
        history: &History,
        rng: &mut SplitMix64,
    ) -> Option<HedgeAttempt> {
        let hedge = self.inner.hedge(now, request, history, rng)?;
        self.in_flight.insert((request.id, history.next_attempt()));
        Some(hedge)
    }

    fn observe(&mut self, now: Instant, report: &AttemptReport) {
        self.in_flight.remove(&(report.request_id, report.attempt));
        if report.outcome == AttemptOutcome::Failed(FailureKind::RateLimited) {
            self.last_429 = Some(now);
        }
        self.inner.observe(now, report);
    }
}
