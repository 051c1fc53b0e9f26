//! Incidents: the windows during which a deployment's error rates and speeds change, either
//! scheduled or drawn lazily from an on/off process with exponential durations, and the list
//! of windows reports show ([`incident_windows`]).
//!
//! It must not know about attempts, limits or routing: the state of a deployment asks it for
//! the effect in force at an instant.

use super::Deployment;
use crate::rng::{DrawKey, Purpose, SplitMix64};
use crate::time::{Duration, Instant};

/// What an incident changes while it lasts.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentEffect {
    pub server_error_rate: Option<f64>,
    pub overloaded_rate: Option<f64>,
    pub ttft_multiplier: f64,
    pub speed_multiplier: f64,
}

/// A window `[start, end)` during which an incident's effect applies.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentWindow {
    pub start: Instant,
    pub end: Instant,
    pub effect: IncidentEffect,
}

/// The on/off process incidents are drawn from.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentProcess {
    pub uptime: f64,
    pub mean_duration: Duration,
    pub effect: IncidentEffect,
    /// The provider's incidents rather than this deployment's own.
    pub provider_wide: bool,
    /// Seeds the process's draws: the deployment's name hash, or the provider's for a
    /// provider-wide process (so every deployment of the provider draws the same windows).
    pub draws_key: u64,
}

/// Provider-wide processes of one provider must agree on when incidents happen (uptime and
/// mean duration; each deployment keeps its own effect): the first deployment (by index)
/// whose process disagrees with an earlier one of its provider, with the error.
pub fn check_provider_wide(deployments: &[Deployment]) -> Result<(), (usize, super::ConfigError)> {
    let mut first_of_provider: Vec<(&str, &Deployment, &IncidentProcess)> = Vec::new();
    for (index, d) in deployments.iter().enumerate() {
        let Some(process) = d.incident_process.as_ref() else { continue };
        if !process.provider_wide {
            continue;
        }
        match first_of_provider.iter().find(|(provider, ..)| *provider == d.provider) {
            None => first_of_provider.push((&d.provider, d, process)),
            Some((_, first, theirs)) => {
                if (theirs.uptime, theirs.mean_duration) != (process.uptime, process.mean_duration) {
                    return Err((
                        index,
                        super::ConfigError::new(
                            "incident_process",
                            format!(
                                "scope = \"provider\" needs the uptime and mean_duration of {:?}, the first deployment of provider {:?} with a provider-wide process ({} and {}, here {} and {})",
                                first.name, d.provider, theirs.uptime, theirs.mean_duration, process.uptime, process.mean_duration
                            ),
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The draws key of a provider-wide incident process (distinct from any deployment's).
pub fn provider_draws_key(provider: &str) -> u64 {
    crate::rng::hash_str(&format!("provider incidents:{provider}"))
}

/// Incident windows of one deployment: the scheduled ones plus those drawn lazily, in time
/// order, from its on/off process (so no horizon has to be known in advance).
#[derive(Debug)]
pub(super) struct IncidentTimeline {
    /// Drawn windows not yet passed (passed ones are dropped, so memory stays bounded by the
    /// windows that overlap the present, however long the run).
    drawn: std::collections::VecDeque<IncidentWindow>,
    /// End of the last drawn window (or the start of time), from which the next "up" period runs.
    drawn_until: Instant,
    rng: SplitMix64,
    /// Index of the first scheduled/drawn window that may still matter (time only moves forward
    /// for a deployment's attempts, so earlier windows are never looked at again).
    cursor_scheduled: usize,
}

impl IncidentTimeline {
    pub(super) fn new(deployment: &Deployment, seed: u64) -> Self {
        IncidentTimeline {
            drawn: std::collections::VecDeque::new(),
            drawn_until: Instant::ZERO,
            rng: DrawKey {
                seed,
                request: 0,
                attempt: 0,
                deployment: deployment
                    .incident_process
                    .as_ref()
                    .map_or(deployment.name_hash, |p| p.draws_key),
                purpose: Purpose::Incidents,
            }
            .rng(),
            cursor_scheduled: 0,
        }
    }

    /// The next window of the on/off process: an exponential "up" period, then an
    /// exponential "down" period (the incident).
    fn draw_next(&mut self, process: &IncidentProcess) -> IncidentWindow {
        let mean_down_s = process.mean_duration.as_secs_f64();
        let mean_up_s = mean_down_s * process.uptime / (1.0 - process.uptime);
        let up = Duration::from_secs_f64(-mean_up_s * self.rng.next_open01().ln());
        let down =
            Duration::from_secs_f64(-mean_down_s * self.rng.next_open01().ln()).max(Duration::from_micros(1));
        let start = self.drawn_until + up;
        let end = start + down;
        self.drawn_until = end;
        IncidentWindow { start, end, effect: process.effect.clone() }
    }

    pub(super) fn effect_at<'a>(
        &'a mut self,
        deployment: &'a Deployment,
        now: Instant,
    ) -> Option<&'a IncidentEffect> {
        while self.cursor_scheduled < deployment.incidents.len()
            && deployment.incidents[self.cursor_scheduled].end <= now
        {
            self.cursor_scheduled += 1;
        }
        if let Some(process) = &deployment.incident_process {
            while self.drawn_until <= now {
                let window = self.draw_next(process);
                self.drawn.push_back(window);
            }
            while self.drawn.front().is_some_and(|w| w.end <= now) {
                self.drawn.pop_front();
            }
        }
        let scheduled = deployment.incidents[self.cursor_scheduled..]
            .iter()
            .take_while(|w| w.start <= now)
            .find(|w| now < w.end);
        if let Some(w) = scheduled {
            return Some(&w.effect);
        }
        self.drawn.iter().take_while(|w| w.start <= now).find(|w| now < w.end).map(|w| &w.effect)
    }
}

/// Drawn and scheduled incident windows of a deployment up to `until`, for reports.
pub fn incident_windows(deployment: &Deployment, seed: u64, until: Instant) -> Vec<(Instant, Instant)> {
    let mut timeline = IncidentTimeline::new(deployment, seed);
    let mut windows: Vec<(Instant, Instant)> =
        deployment.incidents.iter().filter(|w| w.start < until).map(|w| (w.start, w.end)).collect();
    if let Some(process) = &deployment.incident_process {
        while windows.len() < MAX_REPORTED_INCIDENTS {
            let w = timeline.draw_next(process);
            if w.start >= until {
                break;
            }
            windows.push((w.start, w.end));
        }
    }
    windows.sort();
    windows.truncate(MAX_REPORTED_INCIDENTS);
    windows
}

/// At most this many incident windows per deployment are listed for reports
/// (`incidents.csv`); the simulation itself draws as many as the run needs.
pub const MAX_REPORTED_INCIDENTS: usize = 100_000;

/// Shortest `incident_process.mean_duration` accepted: shorter incidents would be drawn by the
/// million per simulated hour (real incidents last minutes to hours).
pub const MIN_INCIDENT_MEAN_DURATION: Duration = Duration::from_secs(1);
