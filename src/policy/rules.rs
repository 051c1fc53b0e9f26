//! Class rules — the routing story's buckets: match a request on its class, token sizes and
//! deadline, and hand it to a sub-policy (any policy, rules included, so rules nest).
//! Interactive → the fastest acceptable path, hard → a premium chain, bulk → the cheapest
//! good-enough model, async → the batch queue. The first matching rule wins; `default`
//! takes the rest.
//!
//! Each request stays with the sub-policy that first took it (its attempts' reports go back
//! to that sub-policy only, so per-request bookkeeping such as in-flight counts stays right).

use super::classes::class_id;
use super::config::{nested, Catalog, PolicyConfig};
use super::dispatch::Dispatch;
use super::{AttemptReport, Decision, HedgeAttempt, History, Policy, SharedDelta};
use crate::policy::config::PolicyError;
use crate::rng::SplitMix64;
use crate::time::{Duration, Instant};
use crate::trace::{ClassId, Request};
use serde::{Deserialize, Serialize};

/// What a rule matches; every given condition must hold.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// Any of these classes (built-in names: interactive, hard, bulk, async).
    #[serde(default)]
    pub class: Vec<String>,
    pub min_input_tokens: Option<u64>,
    pub max_input_tokens: Option<u64>,
    pub min_output_tokens: Option<u64>,
    /// Whether the request carries a deadline.
    pub has_deadline: Option<bool>,
    /// Deadline at least this far from arrival.
    pub min_deadline: Option<Duration>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A label for reports and errors.
    pub name: Option<String>,
    #[serde(rename = "match", default)]
    pub when: Match,
    pub policy: Box<PolicyConfig>,
}

/// The `rules` policy's options.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    pub rules: Vec<Rule>,
    /// The policy for requests no rule matches.
    pub default: Box<PolicyConfig>,
}

struct CompiledMatch {
    classes: Vec<ClassId>,
    when: Match,
}

impl CompiledMatch {
    fn matches(&self, r: &Request) -> bool {
        use crate::trace::matching::TokenBounds;
        let w = &self.when;
        // The output bound is on the reservation (`max_tokens`): what a router sees up front.
        (self.classes.is_empty() || self.classes.contains(&r.class))
            && TokenBounds::new(w.min_input_tokens, w.max_input_tokens).contains(r.input_tokens)
            && TokenBounds::new(w.min_output_tokens, None).contains(r.max_tokens)
            && w.has_deadline.is_none_or(|h| r.deadline.is_some() == h)
            && w.min_deadline.is_none_or(|m| r.deadline.is_some_and(|d| d >= m))
    }
}

/// The rules policy.
pub struct Rules {
    matches: Vec<CompiledMatch>,
    /// One per rule, then the default.
    policies: Dispatch,
}

impl Rules {
    pub fn build(config: &RulesConfig, catalog: &Catalog) -> Result<Rules, PolicyError> {
        let mut matches = Vec::new();
        let mut policies = Vec::new();
        for (i, rule) in config.rules.iter().enumerate() {
            let field = format!("rules[{i}]");
            let classes = rule
                .when
                .class
                .iter()
                .enumerate()
                .map(|(j, c)| class_id(&format!("{field}.match.class[{j}]"), c))
                .collect::<Result<Vec<_>, _>>()?;
            matches.push(CompiledMatch { classes, when: rule.when.clone() });
            policies.push(nested(&format!("{field}.policy"), rule.policy.build(catalog))?);
        }
        policies.push(nested("default", config.default.build(catalog))?);
        Ok(Rules { matches, policies: Dispatch::new(policies) })
    }

    fn rule_for(&self, request: &Request) -> usize {
        self.matches.iter().position(|m| m.matches(request)).unwrap_or(self.matches.len())
    }
}

impl Policy for Rules {
    fn route(
        &mut self,
        now: Instant,
        request: &Request,
        history: &mut History,
        rng: &mut SplitMix64,
    ) -> Decision {
        // A request keeps the rule that first took it (rules read only fixed request fields, so
        // it would match the same one again; the owner is what routes its reports back).
        let rule = self.policies.owner_of(request).unwrap_or_else(|| self.rule_for(request));
        self.policies.route(rule, now, request, history, rng)
    }

    fn hedge(
        &mut self,
        now: Instant,
        request: &Request,
        history: &History,
        rng: &mut SplitMix64,
    ) -> Option<HedgeAttempt> {
        self.policies.hedge(now, request, history, rng)
    }

    fn observe(&mut self, now: Instant, report: &AttemptReport) {
        self.policies.observe(now, report);
    }

    fn forget(&mut self, now: Instant, request_id: u64) {
        self.policies.forget(now, request_id);
    }

    fn unpark(&mut self, now: Instant, woken: &mut Vec<u64>) {
        self.policies.unpark(now, woken);
    }

    fn wants_rate_limit_headers(&self) -> bool {
        self.policies.wants_rate_limit_headers()
    }

    fn start_sharing(&mut self) {
        self.policies.start_sharing();
    }

    fn export_shared(&mut self) -> SharedDelta {
        self.policies.export_shared()
    }

    fn import_shared(&mut self, at: Instant, delta: &SharedDelta) {
        self.policies.import_shared(at, delta);
    }
}
