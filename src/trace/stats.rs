//! `sim trace stats`: what a trace looks like, in one streaming pass.
//!
//! Owns [`TraceStats`] (requests, span, rates, peaks, inter-arrival CV, index of dispersion at
//! 1 s and 60 s, idle shares, token percentiles, class mix, session shape, a per-minute
//! series) and its terminal rendering with a sparkline. It must not know where the requests
//! come from: it takes any stream of [`Request`]s in arrival order.
//!
//! Memory: counters, three HDR histograms, one counter per minute of span, and — for session
//! depth — one entry per request that belongs to a session. (`sim trace stats` also checks
//! parent links with [`super::source::check_parent_links`]: one id per row of a CSV with a
//! `parent` column.)

use super::{ClassTable, Request, TraceError};
use crate::time::{MICROS_PER_MIN, MICROS_PER_S};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::HashMap;

/// Percentiles of a token count.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TokenPercentiles {
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
    /// Sum over the trace.
    pub total: u64,
}

/// Shape of the agent sessions in a trace.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SessionStats {
    /// Distinct sessions.
    pub sessions: u64,
    /// Requests that belong to a session.
    pub requests_in_sessions: u64,
    pub mean_calls_per_session: f64,
    pub max_calls_per_session: u64,
    /// Depth of the parent chain (a call without a parent has depth 1).
    pub mean_depth: f64,
    pub max_depth: u64,
}

/// Everything `sim trace stats` reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TraceStats {
    pub requests: u64,
    /// From the first to the last arrival, s.
    pub duration_s: f64,
    /// Requests per second over the span (requests / duration).
    pub mean_rate_per_s: f64,
    /// Most requests in one second (seconds counted from the first arrival).
    pub peak_per_s: u64,
    /// Most requests in one minute.
    pub peak_per_min: u64,
    /// Coefficient of variation of the gaps between consecutive arrivals (1 for Poisson).
    pub interarrival_cv: f64,
    /// Variance / mean of the per-second counts (1 for Poisson; ≫ 1 bursty).
    pub dispersion_1s: f64,
    /// Variance / mean of the per-minute counts.
    pub dispersion_60s: f64,
    /// Share of seconds of the span without any arrival.
    pub idle_seconds_share: f64,
    /// Share of minutes of the span without any arrival.
    pub idle_minutes_share: f64,
    pub input_tokens: TokenPercentiles,
    pub cached_input_tokens: TokenPercentiles,
    pub output_tokens: TokenPercentiles,
    /// Cached input / input over the trace.
    pub cached_share: f64,
    /// (class, requests), in class-id order, classes with requests only.
    pub classes: Vec<(String, u64)>,
    pub sessions: SessionStats,
    /// Requests per minute from the first arrival's minute.
    pub per_minute: Vec<u64>,
}

/// Streaming counts of one bucket width.
struct Buckets {
    width_us: u64,
    current: Option<u64>,
    count: u64,
    sum: f64,
    sum_sq: f64,
    peak: u64,
    nonempty: u64,
}

impl Buckets {
    fn new(width_us: u64) -> Self {
        Buckets { width_us, current: None, count: 0, sum: 0.0, sum_sq: 0.0, peak: 0, nonempty: 0 }
    }

    fn add(&mut self, relative_us: u64) {
        let bucket = relative_us / self.width_us;
        if self.current != Some(bucket) {
            self.close();
            self.current = Some(bucket);
        }
        self.count += 1;
    }

    fn close(&mut self) {
        if self.count > 0 {
            let c = self.count as f64;
            self.sum += c;
            self.sum_sq += c * c;
            self.peak = self.peak.max(self.count);
            self.nonempty += 1;
        }
        self.count = 0;
    }

    /// (index of dispersion, idle share) over the `n` complete buckets of the span, empty ones
    /// included. The last bucket (the one holding the last arrival) is only partly covered
    /// by the span, so it counts toward the peak but not toward dispersion or idle share.
    fn finish(&mut self, n: u64) -> (f64, f64) {
        self.peak = self.peak.max(self.count);
        self.count = 0;
        if n < 2 {
            return (0.0, 0.0);
        }
        let nf = n as f64;
        let mean = self.sum / nf;
        let var = (self.sum_sq - nf * mean * mean) / (nf - 1.0);
        let idle = 1.0 - self.nonempty as f64 / nf;
        (if mean > 0.0 { var / mean } else { 0.0 }, idle)
    }
}

fn histogram() -> Histogram<u64> {
    // Up to 10¹² tokens at 3 significant figures.
    Histogram::new_with_bounds(1, 1_000_000_000_000, 3).expect("valid bounds")
}

fn percentiles(h: &Histogram<u64>, total: u64) -> TokenPercentiles {
    if h.is_empty() {
        return TokenPercentiles::default();
    }
    TokenPercentiles {
        mean: h.mean(),
        p50: h.value_at_quantile(0.5),
        p90: h.value_at_quantile(0.9),
        p99: h.value_at_quantile(0.99),
        max: h.max(),
        total,
    }
}

/// Reads `requests` to the end and returns their statistics; `classes` is called at the end
/// to name the class ids met.
pub fn compute<I>(requests: I, classes: impl FnOnce(&I) -> ClassTable) -> Result<TraceStats, TraceError>
where
    I: Iterator<Item = Result<Request, TraceError>>,
{
    let mut requests = requests;
    let mut first_us: Option<u64> = None;
    let mut last_us = 0;
    let mut n: u64 = 0;
    let (mut seconds, mut minutes) = (Buckets::new(MICROS_PER_S), Buckets::new(MICROS_PER_MIN));
    let mut per_minute: Vec<u64> = Vec::new();
    // Welford on the gaps.
    let (mut gaps, mut gap_mean, mut gap_m2) = (0u64, 0.0f64, 0.0f64);
    let (mut input, mut cached, mut output) = (histogram(), histogram(), histogram());
    let (mut input_total, mut cached_total, mut output_total) = (0u64, 0u64, 0u64);
    let mut class_counts: Vec<u64> = Vec::new();
    let mut session_calls: HashMap<u64, u64> = HashMap::new();
    let mut depth_of: HashMap<u64, u64> = HashMap::new();
    let (mut depth_sum, mut max_depth, mut in_sessions) = (0u64, 0u64, 0u64);

    for request in requests.by_ref() {
        let r = request?;
        let t = r.arrival.as_micros();
        let origin = *first_us.get_or_insert(t);
        if n > 0 {
            let gap = (t - last_us) as f64;
            gaps += 1;
            let delta = gap - gap_mean;
            gap_mean += delta / gaps as f64;
            gap_m2 += delta * (gap - gap_mean);
        }
        last_us = t;
        n += 1;
        let relative = t - origin;
        seconds.add(relative);
        minutes.add(relative);
        let minute = (relative / MICROS_PER_MIN) as usize;
        if per_minute.len() <= minute {
            per_minute.resize(minute + 1, 0);
        }
        per_minute[minute] += 1;
        input.saturating_record(r.input_tokens);
        cached.saturating_record(r.cached_input_tokens);
        output.saturating_record(r.output_tokens);
        input_total += r.input_tokens;
        cached_total += r.cached_input_tokens;
        output_total += r.output_tokens;
        let class = usize::from(r.class.0);
        if class_counts.len() <= class {
            class_counts.resize(class + 1, 0);
        }
        class_counts[class] += 1;
        if let Some(session) = r.session {
            in_sessions += 1;
            *session_calls.entry(session).or_insert(0) += 1;
            let depth = r.parent.and_then(|p| depth_of.get(&p)).map_or(1, |d| d + 1);
            depth_of.insert(r.id, depth);
            depth_sum += depth;
            max_depth = max_depth.max(depth);
        }
    }
    let table = classes(&requests);
    let span_us = first_us.map_or(0, |f| last_us - f);
    let (dispersion_1s, idle_s) = seconds.finish(span_us / MICROS_PER_S);
    let (dispersion_60s, idle_m) = minutes.finish(span_us / MICROS_PER_MIN);
    let duration_s = span_us as f64 / MICROS_PER_S as f64;
    let gap_sd = if gaps > 1 { (gap_m2 / (gaps - 1) as f64).sqrt() } else { 0.0 };
    Ok(TraceStats {
        requests: n,
        duration_s,
        mean_rate_per_s: if duration_s > 0.0 { n as f64 / duration_s } else { 0.0 },
        peak_per_s: seconds.peak,
        peak_per_min: minutes.peak,
        interarrival_cv: if gap_mean > 0.0 { gap_sd / gap_mean } else { 0.0 },
        dispersion_1s,
        dispersion_60s,
        idle_seconds_share: idle_s,
        idle_minutes_share: idle_m,
        cached_share: if input_total > 0 { cached_total as f64 / input_total as f64 } else { 0.0 },
        input_tokens: percentiles(&input, input_total),
        cached_input_tokens: percentiles(&cached, cached_total),
        output_tokens: percentiles(&output, output_total),
        classes: class_counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| {
                let name = if i < table.len() {
                    table.name(super::ClassId(i as u16)).to_string()
                } else {
                    format!("#{i}")
                };
                (name, *c)
            })
            .collect(),
        sessions: SessionStats {
            sessions: session_calls.len() as u64,
            requests_in_sessions: in_sessions,
            mean_calls_per_session: if session_calls.is_empty() {
                0.0
            } else {
                in_sessions as f64 / session_calls.len() as f64
            },
            max_calls_per_session: session_calls.values().copied().max().unwrap_or(0),
            mean_depth: if in_sessions > 0 { depth_sum as f64 / in_sessions as f64 } else { 0.0 },
            max_depth,
        },
        per_minute,
    })
}

/// At most this many characters of sparkline.
const SPARK_WIDTH: usize = 72;

/// A one-line picture of a series: each character the mean of a run of values, scaled to the
/// largest.
pub fn sparkline(values: &[u64]) -> String {
    const BARS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    if values.is_empty() {
        return String::new();
    }
    let per_char = values.len().div_ceil(SPARK_WIDTH);
    let means: Vec<f64> =
        values.chunks(per_char).map(|c| c.iter().sum::<u64>() as f64 / c.len() as f64).collect();
    let max = means.iter().cloned().fold(0.0, f64::max);
    means
        .iter()
        .map(|&m| if max == 0.0 || m == 0.0 { BARS[0] } else { BARS[1 + ((m / max) * 7.0).round() as usize] })
        .collect()
}

fn si(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2} G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

impl TraceStats {
    /// A verdict on burstiness. Second-scale counts separate on/off traffic (long silences,
    /// dense bursts) from Poisson-like traffic; minute-scale dispersion with few idle seconds
    /// is a rate that drifts rather than bursts.
    pub fn burstiness(&self) -> &'static str {
        if self.requests < 2 || self.duration_s < 120.0 {
            "too short to tell"
        } else if self.idle_seconds_share > 0.3 && self.dispersion_1s > 3.0 {
            "on/off bursty: long silences and dense bursts"
        } else if self.dispersion_1s > 2.0 {
            "bursty at the second scale"
        } else if self.dispersion_60s > 5.0 {
            "near-Poisson at the second scale, with a rate drifting over minutes"
        } else {
            "near-Poisson"
        }
    }

    /// The terminal report.
    pub fn to_text(&self, name: &str) -> String {
        let mut s = String::new();
        let per_min = self.per_minute.len().max(1);
        s.push_str(&format!(
            "{name}\n  requests      {} over {:.1} min  (mean {:.2}/s, peak {}/s, peak {}/min)\n",
            self.requests,
            self.duration_s / 60.0,
            self.mean_rate_per_s,
            self.peak_per_s,
            self.peak_per_min
        ));
        s.push_str(&format!(
            "  burstiness    inter-arrival CV {:.2}; dispersion {:.2} at 1 s, {:.2} at 60 s; idle {:.0}% of seconds, {:.0}% of minutes: {}\n",
            self.interarrival_cv,
            self.dispersion_1s,
            self.dispersion_60s,
            100.0 * self.idle_seconds_share,
            100.0 * self.idle_minutes_share,
            self.burstiness()
        ));
        s.push_str(&format!(
            "  per minute    |{}|  ({} min per char, max {})\n",
            sparkline(&self.per_minute),
            per_min.div_ceil(SPARK_WIDTH),
            self.per_minute.iter().max().unwrap_or(&0)
        ));
        s.push_str("  tokens        mean      p50      p90      p99      max    total\n");
        for (label, t) in [
            ("input", &self.input_tokens),
            ("cached", &self.cached_input_tokens),
            ("output", &self.output_tokens),
        ] {
            s.push_str(&format!(
                "    {label:<10}{:>8} {:>8} {:>8} {:>8} {:>8} {:>8}\n",
                si(t.mean),
                si(t.p50 as f64),
                si(t.p90 as f64),
                si(t.p99 as f64),
                si(t.max as f64),
                si(t.total as f64)
            ));
        }
        s.push_str(&format!("  cached share  {:.1}% of input tokens\n", 100.0 * self.cached_share));
        let total = self.requests.max(1) as f64;
        s.push_str(&format!(
            "  classes       {}\n",
            self.classes
                .iter()
                .map(|(c, n)| format!("{c} {n} ({:.1}%)", 100.0 * *n as f64 / total))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let ss = &self.sessions;
        if ss.sessions > 0 {
            s.push_str(&format!(
                "  sessions      {} ({} requests); calls per session mean {:.1}, max {}; depth mean {:.1}, max {}\n",
                ss.sessions, ss.requests_in_sessions, ss.mean_calls_per_session, ss.max_calls_per_session, ss.mean_depth, ss.max_depth
            ));
        } else {
            s.push_str("  sessions      none\n");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::TraceReader;

    fn stats_of(csv: &str) -> TraceStats {
        let reader = TraceReader::from_reader(csv.as_bytes(), "t.csv").unwrap();
        compute(reader, |r| r.classes().clone()).unwrap()
    }

    #[test]
    fn hand_worked_trace() {
        // Arrivals at 0, 0.5, 1, 3 s and 61 s. The span is 61 s: 61 complete seconds with
        // counts 2,1,0,1,0… (the arrival at 61 s is in the partial last second) → mean 4/61,
        // Σc² = 4+1+1 = 6. Minutes: one complete minute (count 4), so no dispersion.
        let csv = "id,arrival_ms,class,input_tokens,cached_input_tokens,output_tokens,session,parent\n\
                   a,0,interactive,100,0,10,s,\n\
                   b,500,hard,200,100,20,s,a\n\
                   c,1000,hard,300,200,30,s,b\n\
                   d,3000,bulk,400,0,40,,\n\
                   e,61000,hard,500,0,50,t,\n";
        let s = stats_of(csv);
        assert_eq!(s.requests, 5);
        assert_eq!(s.duration_s, 61.0);
        assert_eq!((s.peak_per_s, s.peak_per_min), (2, 4));
        let (n, mean) = (61.0, 4.0 / 61.0);
        let var = (6.0 - n * mean * mean) / (n - 1.0);
        assert!((s.dispersion_1s - var / mean).abs() < 1e-12);
        assert_eq!(s.dispersion_60s, 0.0);
        assert!((s.idle_seconds_share - 58.0 / 61.0).abs() < 1e-12);
        // Gaps 0.5, 0.5, 2, 58 s: mean 15.25, sample sd computed directly.
        let g = [0.5f64, 0.5, 2.0, 58.0];
        let m = g.iter().sum::<f64>() / 4.0;
        let sd = (g.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 3.0).sqrt();
        assert!((s.interarrival_cv - sd / m).abs() < 1e-9);
        assert_eq!(s.input_tokens.total, 1500);
        assert_eq!(s.input_tokens.max, 500);
        assert_eq!(s.input_tokens.p50, 300);
        assert!((s.cached_share - 300.0 / 1500.0).abs() < 1e-12);
        assert_eq!(s.classes, vec![("interactive".into(), 1), ("hard".into(), 3), ("bulk".into(), 1)]);
        assert_eq!(s.sessions.sessions, 2);
        assert_eq!(s.sessions.requests_in_sessions, 4);
        assert_eq!(s.sessions.max_depth, 3);
        assert!((s.sessions.mean_depth - (1.0 + 2.0 + 3.0 + 1.0) / 4.0).abs() < 1e-12);
        assert_eq!(s.per_minute, vec![4, 1]);
        let text = s.to_text("t.csv");
        assert!(text.contains("peak 2/s, peak 4/min"), "{text}");
    }

    #[test]
    fn sparkline_scales_to_the_maximum() {
        assert_eq!(sparkline(&[0, 1, 2, 4, 8]), " ▂▃▅█");
        assert_eq!(sparkline(&[]), "");
        // 144 values → 2 per character, 72 characters.
        assert_eq!(sparkline(&vec![3; 144]).chars().count(), 72);
    }
}
