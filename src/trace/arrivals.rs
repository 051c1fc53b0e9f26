//! Arrival processes: when requests arrive, in open loop.
//!
//! Owns the configurable point processes — Poisson, Gamma renewal (by CV), Weibull renewal,
//! on/off, two-state MMPP, Hawkes (self-exciting, exponential kernel), a daily rate curve and
//! ServeGen-style per-client 10-minute windows — as streams of arrival times in seconds, and
//! their analytic mean rates. It must not know about tokens, classes or the trace format:
//! [`super::openloop`] puts requests on these instants.
//!
//! Every process draws from one [`SplitMix64`] handed to it (seeded by the caller from a
//! [`crate::rng::DrawKey`]), produces arrivals in increasing order and never looks ahead, so
//! memory is constant however long it runs. Interval samplers reuse [`crate::dist::Dist`].

use super::TraceError;
use crate::dist::{ln_gamma, Dist, DistConfig};
use crate::rng::SplitMix64;
use crate::time::Duration;
use crate::validate::{is_non_negative, is_positive};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Highest arrival rate a process accepts (any rate field, and a daily curve's peak): beyond
/// it a generator would emit rows faster than any simulation could use them.
pub const MAX_RATE_PER_S: f64 = 10_000.0;

/// An arrival process as written in a generator config, tagged by `kind`:
///
/// ```toml
/// process = { kind = "poisson", rate_per_s = 2.0 }
/// process = { kind = "gamma", rate_per_s = 2.0, cv = 3.0 }
/// process = { kind = "weibull", rate_per_s = 2.0, shape = 0.5 }
/// process = { kind = "on_off", on_rate_per_s = 10.0, off_rate_per_s = 0.0, mean_on = "2m", mean_off = "10m" }
/// process = { kind = "mmpp", rates_per_s = [10.0, 1.0], mean_sojourn = ["10s", "30s"] }
/// process = { kind = "hawkes", base_rate_per_s = 1.0, branching_ratio = 0.6, mean_delay = "2s" }
/// process = { kind = "daily", rate_per_s = 3.0, hourly = [0.2, 0.2, ..., 1.0] }   # 24 values
/// process = { kind = "servegen", file = "../shared/traces/servegen/language_m-large_chunk-0-trace.csv" }
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProcessConfig {
    /// Exponential gaps: index of dispersion 1 at every scale.
    Poisson { rate_per_s: f64 },
    /// Gamma-distributed gaps with the given coefficient of variation; counts over long
    /// windows have index of dispersion → cv².
    Gamma { rate_per_s: f64, cv: f64 },
    /// Weibull-distributed gaps with the given shape (< 1: bursty); scale set by the rate.
    Weibull { rate_per_s: f64, shape: f64 },
    /// Poisson at `on_rate_per_s` during exponential "on" periods and at `off_rate_per_s`
    /// (default 0) during exponential "off" periods.
    OnOff {
        on_rate_per_s: f64,
        #[serde(default)]
        off_rate_per_s: f64,
        mean_on: Duration,
        mean_off: Duration,
    },
    /// Two-state Markov-modulated Poisson process: rate λᵢ in state i, exponential sojourns.
    Mmpp { rates_per_s: [f64; 2], mean_sojourn: [Duration; 2] },
    /// Self-exciting: immigrants at `base_rate_per_s`; each arrival triggers on average
    /// `branching_ratio` (< 1) follow-ups after exponential delays of mean `mean_delay`.
    Hawkes { base_rate_per_s: f64, branching_ratio: f64, mean_delay: Duration },
    /// Non-homogeneous Poisson: `rate_per_s × hourly[hour of day]`, 24 multipliers.
    Daily { rate_per_s: f64, hourly: Vec<f64> },
    /// One ServeGen client: CSV rows `start_s,rate_rps,cv,dist,shape,scale`, one per window.
    /// Within a window, gaps are Gamma (mean 1/rate, the window's cv), Weibull (the window's
    /// shape, scaled to mean 1/rate) or exponential (blank dist); rate 0 is idle. The rate is
    /// authoritative: the files' Weibull scales do not always match it.
    Servegen { file: PathBuf },
}

impl ProcessConfig {
    /// The long-run mean arrival rate per second, from the formulas (ServeGen: the time-average
    /// of its windows' rates, which needs the file: `None`).
    pub fn mean_rate_per_s(&self) -> Option<f64> {
        Some(match self {
            ProcessConfig::Poisson { rate_per_s }
            | ProcessConfig::Gamma { rate_per_s, .. }
            | ProcessConfig::Weibull { rate_per_s, .. } => *rate_per_s,
            ProcessConfig::OnOff { on_rate_per_s, off_rate_per_s, mean_on, mean_off } => {
                mmpp_mean_rate([*on_rate_per_s, *off_rate_per_s], [*mean_on, *mean_off])
            }
            ProcessConfig::Mmpp { rates_per_s, mean_sojourn } => mmpp_mean_rate(*rates_per_s, *mean_sojourn),
            ProcessConfig::Hawkes { base_rate_per_s, branching_ratio, .. } => {
                base_rate_per_s / (1.0 - branching_ratio)
            }
            ProcessConfig::Daily { rate_per_s, hourly } => {
                rate_per_s * hourly.iter().sum::<f64>() / hourly.len().max(1) as f64
            }
            ProcessConfig::Servegen { .. } => return None,
        })
    }

    /// Validates and builds the process; `base_dir` resolves a ServeGen file. Errors name
    /// `field` (the config path of this process).
    pub fn build(&self, rng: SplitMix64, base_dir: &Path, field: &str) -> Result<Process, TraceError> {
        let err =
            |name: &str, message: String| TraceError::Config { field: format!("{field}.{name}"), message };
        let rate = |name: &str, v: f64, allow_zero: bool| {
            let in_range = if allow_zero { is_non_negative(v) } else { is_positive(v) };
            if v > MAX_RATE_PER_S && v.is_finite() {
                Err(err(name, format!("{v} is above the maximum of {MAX_RATE_PER_S} per second")))
            } else if in_range {
                Ok(v)
            } else {
                Err(err(
                    name,
                    format!("must be a finite number {} 0, got {v}", if allow_zero { ">=" } else { ">" }),
                ))
            }
        };
        let positive_duration = |name: &str, d: Duration| {
            if d.is_zero() {
                Err(err(name, "must be longer than zero".into()))
            } else {
                Ok(d.as_secs_f64())
            }
        };
        let kind = match self {
            ProcessConfig::Poisson { rate_per_s } => {
                Kind::Renewal(Interval::Exponential { mean_s: 1.0 / rate("rate_per_s", *rate_per_s, false)? })
            }
            ProcessConfig::Gamma { rate_per_s, cv } => {
                let mean = 1.0 / rate("rate_per_s", *rate_per_s, false)?;
                let dist = Dist::try_from(DistConfig::Gamma {
                    shape: None,
                    scale: None,
                    mean: Some(mean),
                    cv: Some(*cv),
                })
                .map_err(|e| err("cv", e.to_string()))?;
                Kind::Renewal(Interval::Dist(dist))
            }
            ProcessConfig::Weibull { rate_per_s, shape } => {
                let mean = 1.0 / rate("rate_per_s", *rate_per_s, false)?;
                let shape = rate("shape", *shape, false)?;
                Kind::Renewal(Interval::Weibull { scale_s: mean / weibull_mean_factor(shape), shape })
            }
            ProcessConfig::OnOff { on_rate_per_s, off_rate_per_s, mean_on, mean_off } => {
                Kind::Mmpp(Mmpp::new(
                    [
                        rate("on_rate_per_s", *on_rate_per_s, true)?,
                        rate("off_rate_per_s", *off_rate_per_s, true)?,
                    ],
                    [positive_duration("mean_on", *mean_on)?, positive_duration("mean_off", *mean_off)?],
                ))
            }
            ProcessConfig::Mmpp { rates_per_s, mean_sojourn } => Kind::Mmpp(Mmpp::new(
                [
                    rate("rates_per_s[0]", rates_per_s[0], true)?,
                    rate("rates_per_s[1]", rates_per_s[1], true)?,
                ],
                [
                    positive_duration("mean_sojourn[0]", mean_sojourn[0])?,
                    positive_duration("mean_sojourn[1]", mean_sojourn[1])?,
                ],
            )),
            ProcessConfig::Hawkes { base_rate_per_s, branching_ratio, mean_delay } => {
                let n = *branching_ratio;
                if !(0.0..1.0).contains(&n) {
                    return Err(err(
                        "branching_ratio",
                        format!("must be >= 0 and < 1 (else the process explodes), got {n}"),
                    ));
                }
                Kind::Hawkes {
                    mu: rate("base_rate_per_s", *base_rate_per_s, false)?,
                    jump: n / positive_duration("mean_delay", *mean_delay)?,
                    decay: 1.0 / mean_delay.as_secs_f64(),
                    excitation: 0.0,
                }
            }
            ProcessConfig::Daily { rate_per_s, hourly } => {
                let rate_per_s = rate("rate_per_s", *rate_per_s, false)?;
                if hourly.len() != 24 {
                    return Err(err("hourly", format!("must hold 24 multipliers, got {}", hourly.len())));
                }
                if let Some(bad) = hourly.iter().find(|m| !crate::validate::is_non_negative(**m)) {
                    return Err(err("hourly", format!("multipliers must be finite and >= 0, got {bad}")));
                }
                let max = hourly.iter().cloned().fold(0.0, f64::max);
                if max == 0.0 {
                    return Err(err("hourly", "at least one multiplier must be > 0".into()));
                }
                if rate_per_s * max > MAX_RATE_PER_S {
                    return Err(err(
                        "hourly",
                        format!(
                            "peak rate {} per second is above the maximum of {MAX_RATE_PER_S}",
                            rate_per_s * max
                        ),
                    ));
                }
                Kind::Daily {
                    rates_per_s: hourly.iter().map(|m| m * rate_per_s).collect(),
                    max_rate_per_s: max * rate_per_s,
                }
            }
            ProcessConfig::Servegen { file } => {
                Kind::Servegen { windows: read_servegen(&base_dir.join(file))?, index: 0 }
            }
        };
        Ok(Process { kind, rng, t_s: 0.0 })
    }
}

/// (λ₁r₂ + λ₂r₁)/(r₁ + r₂) with rᵢ = 1/mean sojourn in state i.
fn mmpp_mean_rate(rates: [f64; 2], sojourn: [Duration; 2]) -> f64 {
    let (r1, r2) = (1.0 / sojourn[0].as_secs_f64(), 1.0 / sojourn[1].as_secs_f64());
    (rates[0] * r2 + rates[1] * r1) / (r1 + r2)
}

/// Γ(1 + 1/k): the mean of a Weibull with scale 1.
fn weibull_mean_factor(shape: f64) -> f64 {
    ln_gamma(1.0 + 1.0 / shape).exp()
}

/// The coefficient of variation of Weibull gaps with this shape: √(Γ(1+2/k)/Γ(1+1/k)² − 1).
pub fn weibull_cv(shape: f64) -> f64 {
    (ln_gamma(1.0 + 2.0 / shape).exp() / weibull_mean_factor(shape).powi(2) - 1.0).sqrt()
}

/// A gap sampler for renewal processes.
#[derive(Clone, Debug)]
enum Interval {
    Exponential { mean_s: f64 },
    Dist(Dist),
    Weibull { scale_s: f64, shape: f64 },
}

impl Interval {
    fn sample(&self, rng: &mut SplitMix64) -> f64 {
        match self {
            Interval::Exponential { mean_s } => crate::dist::exponential(rng, *mean_s),
            Interval::Dist(dist) => dist.sample(rng),
            // Inverse CDF: F⁻¹(u) = λ(−ln(1−u))^(1/k).
            Interval::Weibull { scale_s, shape } => scale_s * (-rng.next_open01().ln()).powf(1.0 / shape),
        }
    }
}

#[derive(Clone, Debug)]
struct Mmpp {
    rates: [f64; 2],
    /// Leave rates rᵢ = 1 / mean sojourn.
    leave: [f64; 2],
    /// None until the first draw picks the stationary starting state.
    state: Option<usize>,
}

impl Mmpp {
    fn new(rates: [f64; 2], sojourn_s: [f64; 2]) -> Mmpp {
        Mmpp { rates, leave: [1.0 / sojourn_s[0], 1.0 / sojourn_s[1]], state: None }
    }
}

/// One ServeGen window.
#[derive(Clone, Debug)]
struct Window {
    start_s: f64,
    end_s: f64,
    interval: Option<Interval>,
}

#[derive(Clone, Debug)]
enum Kind {
    Renewal(Interval),
    Mmpp(Mmpp),
    /// Ogata thinning with an exponential kernel: intensity μ + excitation, where each
    /// arrival adds `jump` and excitation decays at rate `decay`.
    Hawkes {
        mu: f64,
        jump: f64,
        decay: f64,
        excitation: f64,
    },
    Daily {
        rates_per_s: Vec<f64>,
        max_rate_per_s: f64,
    },
    Servegen {
        windows: Vec<Window>,
        index: usize,
    },
}

/// A running arrival process: [`Iterator`] of arrival instants in seconds, increasing.
#[derive(Clone, Debug)]
pub struct Process {
    kind: Kind,
    rng: SplitMix64,
    /// Time of the previous arrival (or of the last state change), s.
    t_s: f64,
}

impl Iterator for Process {
    type Item = f64;

    /// The next arrival; `None` only when a ServeGen file's windows are exhausted.
    fn next(&mut self) -> Option<f64> {
        let rng = &mut self.rng;
        match &mut self.kind {
            Kind::Renewal(interval) => {
                self.t_s += interval.sample(rng);
                Some(self.t_s)
            }
            Kind::Mmpp(m) => {
                let mut state = *m.state.get_or_insert_with(|| {
                    // Stationary start: P(state 0) = r₁ / (r₀ + r₁).
                    usize::from(rng.next_open01() >= m.leave[1] / (m.leave[0] + m.leave[1]))
                });
                loop {
                    // Competing exponentials: an arrival at λ or a switch at r.
                    let total = m.rates[state] + m.leave[state];
                    self.t_s += -rng.next_open01().ln() / total;
                    if rng.next_open01() * total < m.rates[state] {
                        m.state = Some(state);
                        return Some(self.t_s);
                    }
                    state = 1 - state;
                }
            }
            Kind::Hawkes { mu, jump, decay, excitation } => loop {
                // Between arrivals the intensity only decays, so its current value bounds it.
                let bound = *mu + *excitation;
                let gap = -rng.next_open01().ln() / bound;
                self.t_s += gap;
                *excitation *= (-*decay * gap).exp();
                if rng.next_open01() * bound <= *mu + *excitation {
                    *excitation += *jump;
                    return Some(self.t_s);
                }
            },
            Kind::Daily { rates_per_s, max_rate_per_s } => loop {
                self.t_s += -rng.next_open01().ln() / *max_rate_per_s;
                let hour = ((self.t_s / 3_600.0) as u64 % 24) as usize;
                if rng.next_open01() * *max_rate_per_s < rates_per_s[hour] {
                    return Some(self.t_s);
                }
            },
            Kind::Servegen { windows, index } => loop {
                let window = windows.get(*index)?;
                self.t_s = self.t_s.max(window.start_s);
                // Each window restarts its renewal process at its start (the files give no
                // phase), which is exact for exponential gaps.
                if let Some(interval) = &window.interval {
                    let t = self.t_s + interval.sample(rng);
                    if t < window.end_s {
                        self.t_s = t;
                        return Some(t);
                    }
                }
                *index += 1;
                self.t_s = window.end_s;
            },
        }
    }
}

/// Reads a ServeGen client file (`start_s,rate_rps,cv,dist,shape,scale`, optional header).
fn read_servegen(path: &Path) -> Result<Vec<Window>, TraceError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| TraceError::Io {
        file: name.clone(),
        action: "cannot open",
        source,
    })?;
    let mut windows: Vec<Window> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i as u64 + 1;
        let row_err = |field: &str, message: String| TraceError::Row {
            file: name.clone(),
            line: line_no,
            field: Some(field.to_string()),
            message,
        };
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if line.trim().is_empty() || (line_no == 1 && fields[0].parse::<f64>().is_err()) {
            continue; // blank line or header
        }
        if fields.len() != 6 {
            return Err(TraceError::Row {
                file: name.clone(),
                line: line_no,
                field: None,
                message: format!(
                    "expected 6 fields (start_s,rate_rps,cv,dist,shape,scale), found {}",
                    fields.len()
                ),
            });
        }
        let number = |k: usize, field: &str| -> Result<f64, TraceError> {
            match fields[k].parse::<f64>() {
                Ok(v) if crate::validate::is_non_negative(v) => Ok(v),
                _ => Err(row_err(field, format!("expected a non-negative number, got {:?}", fields[k]))),
            }
        };
        let start_s = number(0, "start_s")?;
        let rate = number(1, "rate_rps")?;
        let cv = number(2, "cv")?;
        let shape = number(4, "shape")?;
        if let Some(prev) = windows.last_mut() {
            if start_s <= prev.start_s {
                return Err(row_err(
                    "start_s",
                    format!("{start_s} is not after the previous window's {}", prev.start_s),
                ));
            }
            prev.end_s = start_s;
        }
        let interval = if rate == 0.0 {
            None
        } else {
            let mean = 1.0 / rate;
            Some(match fields[3] {
                "Gamma" if cv > 0.0 => Interval::Dist(
                    Dist::try_from(DistConfig::Gamma {
                        shape: None,
                        scale: None,
                        mean: Some(mean),
                        cv: Some(cv),
                    })
                    .map_err(|e| row_err("cv", e.to_string()))?,
                ),
                "Weibull" if shape > 0.0 => {
                    Interval::Weibull { scale_s: mean / weibull_mean_factor(shape), shape }
                }
                "" | "Gamma" | "Weibull" | "Exponential" | "Poisson" => {
                    Interval::Exponential { mean_s: mean }
                }
                other => {
                    return Err(row_err("dist", format!("expected Gamma, Weibull or blank, got {other:?}")))
                }
            })
        };
        windows.push(Window { start_s, end_s: start_s + 600.0, interval });
    }
    Ok(windows)
}

/// Time-average arrival rate of a ServeGen file (for reports and tests).
pub fn servegen_mean_rate_per_s(path: &Path) -> Result<f64, TraceError> {
    let windows = read_servegen(path)?;
    let span: f64 = windows.iter().map(|w| w.end_s - w.start_s).sum();
    let arrivals: f64 = windows
        .iter()
        .map(|w| match &w.interval {
            None => 0.0,
            Some(Interval::Exponential { mean_s }) => (w.end_s - w.start_s) / mean_s,
            Some(Interval::Dist(d)) => (w.end_s - w.start_s) / d.mean(),
            Some(Interval::Weibull { scale_s, shape }) => {
                (w.end_s - w.start_s) / (scale_s * weibull_mean_factor(*shape))
            }
        })
        .sum();
    Ok(if span > 0.0 { arrivals / span } else { 0.0 })
}

#[cfg(test)]
mod tests {
    //! Statistical checks against closed forms. Each tolerance is a multiple (≥ 4) of the
    //! estimator's standard error, derived in the comment beside it, so a correct generator
    //! fails with probability below ~1e-4 and a wrong formula fails for sure.
    use super::*;

    fn process(config: ProcessConfig, seed: u64) -> Process {
        config.build(SplitMix64::new(seed), Path::new("."), "process").unwrap()
    }

    /// Arrivals in [0, horizon_s).
    fn arrivals(config: ProcessConfig, seed: u64, horizon_s: f64) -> Vec<f64> {
        process(config, seed).take_while(|&t| t < horizon_s).collect()
    }

    /// Index of dispersion (variance / mean) of counts in windows of `width_s`.
    fn dispersion(times: &[f64], width_s: f64, horizon_s: f64) -> f64 {
        let n = (horizon_s / width_s) as usize;
        let mut counts = vec![0.0f64; n];
        for &t in times {
            if let Some(c) = counts.get_mut((t / width_s) as usize) {
                *c += 1.0;
            }
        }
        let mean = counts.iter().sum::<f64>() / n as f64;
        let var = counts.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        var / mean
    }

    fn cv_of_gaps(times: &[f64]) -> f64 {
        let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / (gaps.len() - 1) as f64;
        var.sqrt() / mean
    }

    #[test]
    fn poisson_rate_and_dispersion_one() {
        // 10/s for 20,000 s. Rate: SE = √(λ/T) = 0.022; 5 SE = 0.11.
        // Dispersion of 20,000 1-s Poisson counts: SE ≈ √(2/(n−1)) = 0.010; 5 SE = 0.05.
        let horizon = 20_000.0;
        let t = arrivals(ProcessConfig::Poisson { rate_per_s: 10.0 }, 1, horizon);
        assert!((t.len() as f64 / horizon - 10.0).abs() < 0.11, "rate {}", t.len() as f64 / horizon);
        let d = dispersion(&t, 1.0, horizon);
        assert!((d - 1.0).abs() < 0.05, "dispersion {d}");
        assert!(t.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn gamma_renewal_cv_and_dispersion_tend_to_cv_squared() {
        // cv = 2 (shape k = 1/4), mean gap 1 s, 500,000 s.
        // Gap CV: var of the sample variance ≈ σ⁴(2 + κ)/n with excess kurtosis κ = 6/k = 24,
        // so the relative SE of s² is √(26/n) ≈ 0.0072 and of the CV about half: 0.0036;
        // 5 SE ≈ 2% → |cv − 2| < 0.04 (the mean's error adds < 0.3%).
        let horizon = 500_000.0;
        let t = arrivals(ProcessConfig::Gamma { rate_per_s: 1.0, cv: 2.0 }, 2, horizon);
        let cv = cv_of_gaps(&t);
        assert!((cv - 2.0).abs() < 0.04, "cv {cv}");
        // Counts in 500-s windows: for a renewal process Var N(T) = (σ²/μ³)T + c + o(1) with
        // c = 1/12 + 5σ⁴/(4μ⁴) − 2E[X³]/(3μ³) = 1/12 + 20 − 30 ≈ −9.9 (E[X³] = k(k+1)(k+2)θ³
        // = 45), so IDC(500 s) ≈ 4 − 9.9/500 = 3.98. With 1,000 windows the relative SE of the
        // variance is about √(2/999) = 4.5%; 4.5 SE ≈ 20% → |IDC − 3.98| < 0.8 (and far from
        // the Poisson value 1).
        let d = dispersion(&t, 500.0, horizon);
        assert!((d - 3.98).abs() < 0.8, "dispersion {d}");
    }

    #[test]
    fn weibull_cv_matches_the_gamma_function_formula() {
        // shape 0.5: CV² = Γ(5)/Γ(3)² − 1 = 24/4 − 1 = 5 → CV = √5 ≈ 2.236 (checks weibull_cv).
        assert!((weibull_cv(0.5) - 5f64.sqrt()).abs() < 1e-9);
        // Sample: raw moments of Weibull(0.5, scale 1) are Γ(1 + 2n) = 2, 24, 720, 40,320, so
        // σ² = 20 and the kurtosis E[(X−μ)⁴]/σ⁴ = 35,088/400 ≈ 88; the relative SE of s² over
        // 300,000 gaps is √(87/n) ≈ 1.7% and of the CV ≈ 0.85%: 0.2 is about 10 SE (heavy
        // tails make the normal approximation loose). Rate: Var N ≈ cv²·λT, SE = √(5·2/T)
        // ≈ 0.0082, 5 SE ≈ 0.045.
        let horizon = 150_000.0;
        let t = arrivals(ProcessConfig::Weibull { rate_per_s: 2.0, shape: 0.5 }, 3, horizon);
        let cv = cv_of_gaps(&t);
        assert!((cv - 5f64.sqrt()).abs() < 0.2, "cv {cv}");
        assert!((t.len() as f64 / horizon - 2.0).abs() < 0.045, "rate {}", t.len() as f64 / horizon);
    }

    #[test]
    fn mmpp_and_on_off_mean_rates_match_the_formula() {
        // λ = (10, 1)/s, sojourns 10 s and 30 s: r = (0.1, 1/30), mean = (λ₁r₂ + λ₂r₁)/(r₁ + r₂)
        // = 3.25/s. Var N(T) ≈ mean·T + 2T·Var(Λ)/(r₁+r₂) with Var(Λ) = (λ₁−λ₂)²r₁r₂/(r₁+r₂)², so
        // the asymptotic IDC is 1 + 2(λ₁−λ₂)²r₁r₂/((r₁+r₂)³·mean) ≈ 71 and the rate
        // over T = 200,000 s has SE = √(71·3.25/T) ≈ 0.034; 5 SE = 0.17.
        let config = ProcessConfig::Mmpp {
            rates_per_s: [10.0, 1.0],
            mean_sojourn: [Duration::from_secs(10), Duration::from_secs(30)],
        };
        assert!((config.mean_rate_per_s().unwrap() - 3.25).abs() < 1e-12);
        let horizon = 200_000.0;
        let t = arrivals(config, 4, horizon);
        let rate = t.len() as f64 / horizon;
        assert!((rate - 3.25).abs() < 0.17, "rate {rate}");
        // IDC over 1,000-s windows ≈ 71 (minus a small finite-window correction); 200 windows
        // give a relative SE of √(2/199) = 10%: check it is clearly bursty (> 40).
        let d = dispersion(&t, 1_000.0, horizon);
        assert!(d > 40.0 && d < 100.0, "dispersion {d}");

        // On/off with 6/s for 1 min, silent for 4 min: mean 6·60/300 = 1.2/s.
        let on_off = ProcessConfig::OnOff {
            on_rate_per_s: 6.0,
            off_rate_per_s: 0.0,
            mean_on: Duration::from_mins(1),
            mean_off: Duration::from_mins(4),
        };
        assert!((on_off.mean_rate_per_s().unwrap() - 1.2).abs() < 1e-12);
        // IDC ≈ 1 + 2λ²r₁r₂/((r₁+r₂)³·mean) = 1 + 2·36·(1/60)(1/240)/((1/48)³·1.2) ≈ 462;
        // SE of the rate over 200,000 s ≈ √(462·1.2/T) = 0.053; 5 SE = 0.27.
        let t = arrivals(on_off, 5, horizon);
        let rate = t.len() as f64 / horizon;
        assert!((rate - 1.2).abs() < 0.27, "rate {rate}");
    }

    #[test]
    fn hawkes_mean_rate_is_mu_over_one_minus_n() {
        // μ = 2/s, n = 0.5, mean delay 1 s → 4/s. Var N(T)/T → μ/(1−n)³ = 16, so the rate over
        // T = 50,000 s has SE = √(16/T) ≈ 0.018; 5 SE = 0.09.
        let config = ProcessConfig::Hawkes {
            base_rate_per_s: 2.0,
            branching_ratio: 0.5,
            mean_delay: Duration::from_secs(1),
        };
        assert!((config.mean_rate_per_s().unwrap() - 4.0).abs() < 1e-12);
        let horizon = 50_000.0;
        let t = arrivals(config, 6, horizon);
        let rate = t.len() as f64 / horizon;
        assert!((rate - 4.0).abs() < 0.09, "rate {rate}");
        // Long-window IDC → 1/(1−n)² = 4; 500 windows of 100 s (≫ the 1-s kernel, a finite-
        // window correction of a few %): relative SE √(2/499) = 6.3%; 4.5 SE ≈ 30%.
        let d = dispersion(&t, 100.0, horizon);
        assert!((d - 4.0).abs() < 1.2, "dispersion {d}");
    }

    #[test]
    fn daily_curve_shapes_hourly_counts() {
        // Hour 9 at 3× hour 0, 20 simulated days at 1/s base: 72,000 expected arrivals in
        // hour 0 (SE √72,000 ≈ 268) and 216,000 in hour 9; the ratio's relative SE ≈ √(1/72,000
        // + 1/216,000) = 0.43%; 5 SE ≈ 2.2% → ratio within 0.07 of 3.
        let mut hourly = vec![1.0; 24];
        hourly[9] = 3.0;
        let horizon = 20.0 * 86_400.0;
        let t = arrivals(ProcessConfig::Daily { rate_per_s: 1.0, hourly }, 7, horizon);
        let mut per_hour = [0.0f64; 24];
        for x in &t {
            per_hour[((x / 3_600.0) as usize) % 24] += 1.0;
        }
        let ratio = per_hour[9] / per_hour[0];
        assert!((ratio - 3.0).abs() < 0.07, "ratio {ratio}");
    }

    #[test]
    fn servegen_windows_follow_their_rates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.csv");
        // 100 windows alternating 2/s (Gamma cv 3) and idle; the last window closes at 60,000 s.
        let mut text = String::new();
        for w in 0..100 {
            if w % 2 == 0 {
                text.push_str(&format!("{},2.0,3.0,Gamma,0.11,4.5\n", w * 600));
            } else {
                text.push_str(&format!("{},0,0,,0,0\n", w * 600));
            }
        }
        std::fs::write(&path, text).unwrap();
        let config = ProcessConfig::Servegen { file: path.clone() };
        let t: Vec<f64> = config.build(SplitMix64::new(8), Path::new("."), "p").unwrap().collect();
        // Idle windows hold nothing.
        assert!(t.iter().all(|x| ((x / 600.0) as u64).is_multiple_of(2)));
        // 50 busy windows × 600 s × 2/s = 60,000 expected. Gamma cv 3 gaps: Var N ≈ cv²·N, so
        // SE ≈ √(9·60,000) ≈ 735 (window restarts only lower it); 5 SE ≈ 3,700.
        assert!((t.len() as f64 - 60_000.0).abs() < 3_700.0, "{}", t.len());
        assert!((servegen_mean_rate_per_s(&path).unwrap() - 1.0).abs() < 1e-9);
        // Bad rows name file, line and field.
        std::fs::write(&path, "0,1,1,Gamma,1,1\n600,x,1,Gamma,1,1\n").unwrap();
        let err = config.build(SplitMix64::new(8), Path::new("."), "p").unwrap_err().to_string();
        assert_eq!(
            err,
            format!("{}:2: field \"rate_rps\": expected a non-negative number, got \"x\"", path.display())
        );
    }

    #[test]
    fn bad_parameters_name_the_field() {
        let err = |c: ProcessConfig| {
            c.build(SplitMix64::new(1), Path::new("."), "clients[0].process").unwrap_err().to_string()
        };
        assert_eq!(
            err(ProcessConfig::Hawkes { base_rate_per_s: 1.0, branching_ratio: 1.0, mean_delay: Duration::from_secs(1) }),
            "trace generator: clients[0].process.branching_ratio: must be >= 0 and < 1 (else the process explodes), got 1"
        );
        assert_eq!(
            err(ProcessConfig::Poisson { rate_per_s: f64::NAN }),
            "trace generator: clients[0].process.rate_per_s: must be a finite number > 0, got NaN"
        );
        assert!(err(ProcessConfig::Daily { rate_per_s: 1.0, hourly: vec![1.0; 3] })
            .contains("hourly: must hold 24"));
    }
}
