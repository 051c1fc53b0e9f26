//! Month-scale agent traffic, streamed: the agent generator of [`super::generate`] run window by
//! window under a daily (and weekly) rate curve.
//!
//! Owns [`MonthConfig`] and [`MonthRows`], the iterator that generates one window (by default
//! one hour) at a time, shifts it to its place in the month and hands its rows out in order.
//! Memory is one window's rows (about 10,000 for the seed story), whatever the number of days.
//! It must not know about the engine or the CSV format.
//!
//! Each window is an independent draw of [`super::generate::AgentTraceConfig`] with its own seed
//! and with session and bulk rates scaled by `hourly[hour of day]` (× `weekend` on days 6 and
//! 7), so sessions that would run past the end of their window are cut there, as the agent
//! generator cuts at its `duration`. Ids get a `w<window>-` prefix so they stay unique.

use super::generate::{generate_rows, AgentTraceConfig};
use super::Row;
use super::TraceError;
use crate::rng::mix64;
use crate::time::{Duration, MICROS_PER_HOUR};
use serde::Deserialize;

/// A month (or any number of days) of agent traffic.
///
/// ```toml
/// generator = "month"
/// seed = 2026
/// days = 30
/// window = "1h"
/// hourly = [0.3, 0.2, ...]     # 24 multipliers of the session and bulk rates
/// weekend = 0.4
/// [agent]                      # AgentTraceConfig fields for one window (duration ignored)
/// session_rate_per_min = 2.0
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonthConfig {
    #[serde(default = "default_seed")]
    pub seed: u64,
    pub days: u32,
    /// Length of one generated window; must divide a day. Default 1h.
    #[serde(default = "default_window")]
    pub window: Duration,
    /// 24 multipliers (hour of day) of `session_rate_per_min` and `bulk_rate_per_min`.
    /// Default all 1.
    #[serde(default = "flat_day")]
    pub hourly: Vec<f64>,
    /// Extra multiplier on days 6 and 7 of each week. Default 1.
    #[serde(default = "one")]
    pub weekend: f64,
    /// The agent generator's settings for one window.
    #[serde(default)]
    pub agent: AgentTraceConfig,
}

fn default_seed() -> u64 {
    1
}

fn default_window() -> Duration {
    Duration::from_mins(60)
}

fn flat_day() -> Vec<f64> {
    vec![1.0; 24]
}

fn one() -> f64 {
    1.0
}

impl MonthConfig {
    /// Checks the month-level fields; each window's agent config is checked when generated.
    pub fn validate(&self) -> Result<(), TraceError> {
        let err = |field: &str, message: String| Err(TraceError::Config { field: field.into(), message });
        if self.days == 0 {
            return err("days", "must be >= 1".into());
        }
        let day_us = 24 * MICROS_PER_HOUR;
        let w = self.window.as_micros();
        if w == 0 || !day_us.is_multiple_of(w) {
            return err("window", "must be longer than zero and divide a day (e.g. \"1h\", \"30m\")".into());
        }
        if self.hourly.len() != 24 {
            return err("hourly", format!("must hold 24 multipliers, got {}", self.hourly.len()));
        }
        if let Some(bad) =
            self.hourly.iter().chain([&self.weekend]).find(|m| !crate::validate::is_non_negative(**m))
        {
            return err("hourly", format!("multipliers must be finite and >= 0, got {bad}"));
        }
        let mut probe = self.agent.clone();
        probe.duration = self.window;
        probe.validate().map_err(|e| match e {
            TraceError::Config { field, message } => {
                TraceError::Config { field: format!("agent.{field}"), message }
            }
            other => other,
        })?;
        // The busiest window's rates must pass too (a refused window would end the stream).
        let busiest = self.hourly.iter().fold(0.0, |m: f64, h| m.max(*h)) * self.weekend.max(1.0);
        let mut busy = probe.clone();
        busy.session_rate_per_min *= busiest;
        busy.bulk_rate_per_min *= busiest;
        busy.backfill_bursts_per_hour *= busiest;
        busy.validate().map_err(|e| match e {
            TraceError::Config { field, message } => TraceError::Config {
                field: "hourly".into(),
                message: format!(
                    "the busiest hour's multiplier {busiest} takes the agent's rates out of bounds: agent.{field}: {message}"
                ),
            },
            other => other,
        })
    }

    /// Number of windows in the month.
    pub fn windows(&self) -> u64 {
        u64::from(self.days) * 24 * MICROS_PER_HOUR / self.window.as_micros().max(1)
    }

    /// The whole span generated.
    pub fn duration(&self) -> Duration {
        Duration::from_micros(u64::from(self.days) * 24 * MICROS_PER_HOUR)
    }

    /// The multiplier of window `index`'s session and bulk rates: `hourly[hour]`, × `weekend`
    /// on days 6 and 7.
    fn multiplier(&self, index: u64) -> f64 {
        let start_us = index * self.window.as_micros();
        let hour = (start_us / MICROS_PER_HOUR) % 24;
        let day = start_us / (24 * MICROS_PER_HOUR);
        let weekend = if day % 7 >= 5 { self.weekend } else { 1.0 };
        self.hourly[hour as usize] * weekend
    }

    /// The agent configuration of window `index`.
    fn window_config(&self, index: u64) -> AgentTraceConfig {
        let multiplier = self.multiplier(index);
        let mut c = self.agent.clone();
        c.seed = mix64(self.seed ^ mix64(index.wrapping_add(0x6d6f_6e74)));
        c.duration = self.window;
        c.session_rate_per_min *= multiplier;
        c.bulk_rate_per_min *= multiplier;
        c.backfill_bursts_per_hour *= multiplier;
        c
    }

    /// Starts the stream.
    pub fn rows(&self) -> Result<MonthRows, TraceError> {
        self.validate()?;
        Ok(MonthRows {
            config: self.clone(),
            next_window: 0,
            current: Vec::new().into_iter(),
            sessions: 0,
            error: None,
        })
    }
}

/// The month's rows in arrival order, one window in memory at a time.
pub struct MonthRows {
    config: MonthConfig,
    next_window: u64,
    current: std::vec::IntoIter<Row>,
    sessions: u64,
    /// Why the stream ended early: a window the agent generator refused.
    error: Option<TraceError>,
}

impl MonthRows {
    /// Sessions generated so far.
    pub fn sessions(&self) -> u64 {
        self.sessions
    }

    /// Once the rows have ended: the error that ended them early, if any (a window whose
    /// scaled rates the agent generator refused; nothing is skipped silently).
    pub fn take_error(&mut self) -> Option<TraceError> {
        self.error.take()
    }
}

impl Iterator for MonthRows {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        loop {
            if let Some(row) = self.current.next() {
                return Some(row);
            }
            if self.next_window >= self.config.windows() {
                return None;
            }
            let index = self.next_window;
            self.next_window += 1;
            let config = self.config.window_config(index);
            // Validated in `rows()` at the largest multiplier; a window that still fails (more
            // rows than the agent generator holds) ends the stream with its error.
            let (mut rows, sessions) = match generate_rows(&config) {
                Ok(generated) => generated,
                Err(e) => {
                    self.error = Some(match e {
                        TraceError::Config { field, message } => TraceError::Config {
                            field: format!("agent.{field}"),
                            message: format!(
                                "window {index} (×{:.3} by hourly and weekend): {message}",
                                self.config.multiplier(index)
                            ),
                        },
                        other => other,
                    });
                    self.next_window = self.config.windows();
                    return None;
                }
            };
            self.sessions += sessions;
            let offset_us = index * self.config.window.as_micros();
            let prefix = format!("w{index}-");
            for row in &mut rows {
                row.arrival_us += offset_us;
                row.id.insert_str(0, &prefix);
                if let Some(s) = &mut row.session {
                    s.insert_str(0, &prefix);
                }
                if let Some(p) = &mut row.parent {
                    p.insert_str(0, &prefix);
                }
            }
            self.current = rows.into_iter();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::MICROS_PER_MS;

    #[test]
    fn windows_follow_the_curve_and_stay_in_order() {
        // Two days, hour 10 at 4× hour 3, weekend irrelevant (days 1-2). Sessions and bulk
        // scale with the multiplier; async bursts do not, so compare agent calls only
        // (sessions are Poisson-ish in count: compare totals over both days with a wide band).
        let mut hourly = vec![1.0; 24];
        hourly[3] = 0.5;
        hourly[10] = 2.0;
        let config = MonthConfig {
            seed: 9,
            days: 2,
            window: Duration::from_mins(60),
            hourly,
            weekend: 1.0,
            agent: AgentTraceConfig::default(),
        };
        let rows: Vec<Row> = config.rows().unwrap().collect();
        assert!(rows.windows(2).all(|w| w[0].arrival_us / MICROS_PER_MS <= w[1].arrival_us / MICROS_PER_MS));
        let mut ids = std::collections::HashSet::new();
        assert!(rows.iter().all(|r| ids.insert(r.id.clone())), "ids are unique");
        let agent_calls_in = |hour: u64| {
            rows.iter()
                .filter(|r| r.session.is_some() && (r.arrival_us / MICROS_PER_HOUR) % 24 == hour)
                .count() as f64
        };
        let (low, high) = (agent_calls_in(3), agent_calls_in(10));
        // Expected ratio 4. Session counts per hour are ~Poisson with on/off modulation and
        // ~35 calls per session, so each count has a large relative SD (~30%); require only
        // that the busy hour is clearly busier (ratio > 1.5).
        assert!(high > 1.5 * low, "hour 10: {high}, hour 3: {low}");
        // Windows are cut at their end: every child starts within its parent's window.
        for r in rows.iter().filter(|r| r.parent.is_some()) {
            let window: u64 = r.id[1..r.id.find('-').unwrap()].parse().unwrap();
            assert_eq!(r.arrival_us / MICROS_PER_HOUR, window);
        }
    }

    #[test]
    fn bad_window_is_refused() {
        let mut config: MonthConfig = toml::from_str("days = 1\nwindow = \"7m\"").unwrap();
        assert!(config
            .rows()
            .err()
            .unwrap()
            .to_string()
            .contains("window: must be longer than zero and divide a day"));
        config.window = Duration::from_mins(30);
        assert_eq!(config.windows(), 48);
        config.hourly = vec![1.0; 3];
        assert_eq!(
            config.rows().err().unwrap().to_string(),
            "trace generator: hourly: must hold 24 multipliers, got 3"
        );
    }
}
