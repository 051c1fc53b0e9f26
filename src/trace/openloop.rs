//! Open-loop synthetic traffic: a superposition of clients, each with its own arrival process
//! (ServeGen-style) and token-length distributions.
//!
//! Owns the client configuration ([`OpenLoopConfig`], [`ClientConfig`]), the token-length
//! samplers ([`TokenDist`]: lognormal, gamma, Zipf, empirical, or empirical from a trace's
//! column) and the streaming merge of the clients' arrival streams through a heap keyed by next
//! arrival. It must not know about the engine; arrival processes live in [`super::arrivals`].
//! Memory is one pending arrival per client, whatever the duration.

use super::arrivals::{Process, ProcessConfig};
use super::Row;
use super::{ClassId, TraceError, TraceReader, BUILTIN_CLASSES};
use crate::dist::{Dist, DistConfig};
use crate::rng::{hash_str, DrawKey, Purpose, SplitMix64};
use crate::time::{Duration, MICROS_PER_S};
use serde::Deserialize;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};

/// An open-loop generator: `clients` superposed over `duration`.
///
/// ```toml
/// generator = "open_loop"
/// seed = 7
/// duration = "1h"
/// [[clients]]
/// name = "chat"
/// class = "interactive"
/// count = 20                      # 20 independent clients with this description
/// process = { kind = "gamma", rate_per_s = 0.05, cv = 3.0 }
/// input_tokens = { dist = "lognormal", median = 2000, sigma = 1.0 }
/// output_tokens = { dist = "zipf", exponent = 1.2, min = 16, max = 4096 }
/// cached_fraction = 0.5
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenLoopConfig {
    #[serde(default = "default_seed")]
    pub seed: u64,
    pub duration: Duration,
    pub clients: Vec<ClientConfig>,
}

fn default_seed() -> u64 {
    1
}

/// One kind of client.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Id prefix of its requests.
    pub name: String,
    /// A built-in class (`interactive`, `hard`, `bulk`, `async`). Default `interactive`.
    #[serde(default = "default_class")]
    pub class: String,
    /// Independent copies of this client (each its own process and draws). Default 1.
    #[serde(default = "default_count")]
    pub count: u32,
    pub process: ProcessConfig,
    pub input_tokens: TokenDist,
    pub output_tokens: TokenDist,
    /// Share of each prompt read from cache. Default 0.
    #[serde(default)]
    pub cached_fraction: f64,
}

fn default_class() -> String {
    "interactive".into()
}

fn default_count() -> u32 {
    1
}

/// A token-length distribution, tagged by `dist`: `constant`, `uniform`, `lognormal`,
/// `gamma`, `empirical` (as in scenarios), plus `zipf` (P(k) ∝ k^−exponent on [min, max]) and
/// `trace` (the empirical distribution of a routesim trace's `column`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "dist", rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenDist {
    Constant {
        value: f64,
    },
    Uniform {
        min: f64,
        max: f64,
    },
    Lognormal {
        median: f64,
        sigma: Option<f64>,
        p90: Option<f64>,
    },
    Gamma {
        mean: f64,
        cv: f64,
    },
    Empirical {
        values: Vec<f64>,
    },
    Zipf {
        exponent: f64,
        #[serde(default = "one")]
        min: u64,
        max: u64,
    },
    Trace {
        file: PathBuf,
        /// `input_tokens`, `cached_input_tokens` or `output_tokens`.
        column: String,
    },
}

fn one() -> u64 {
    1
}

/// Most values a Zipf table or a trace sample holds.
const MAX_TABLE: u64 = 10_000_000;
/// Values kept from a trace for an empirical distribution (reservoir sample).
const TRACE_SAMPLE: usize = 100_000;

/// A validated token sampler.
#[derive(Clone, Debug)]
pub enum TokenSampler {
    Dist(Dist),
    /// Cumulative weights of min, min+1, …, max.
    Zipf {
        min: u64,
        cdf: Vec<f64>,
    },
}

impl TokenSampler {
    /// One draw, rounded to whole tokens.
    pub fn sample(&self, rng: &mut SplitMix64) -> u64 {
        match self {
            TokenSampler::Dist(d) => d.sample(rng).round() as u64,
            TokenSampler::Zipf { min, cdf } => {
                let u = rng.next_open01() * cdf[cdf.len() - 1];
                min + cdf.partition_point(|&c| c < u) as u64
            }
        }
    }
}

impl TokenDist {
    /// Validates; `base_dir` resolves a trace file; errors name `field`.
    pub fn build(&self, base_dir: &Path, field: &str) -> Result<TokenSampler, TraceError> {
        let err = |message: String| TraceError::Config { field: field.to_string(), message };
        let dist = |config: DistConfig| {
            Dist::try_from(config).map(TokenSampler::Dist).map_err(|e| err(e.to_string()))
        };
        match self {
            TokenDist::Constant { value } => dist(DistConfig::Constant { value: *value }),
            TokenDist::Uniform { min, max } => dist(DistConfig::Uniform { min: *min, max: *max }),
            TokenDist::Lognormal { median, sigma, p90 } => {
                dist(DistConfig::Lognormal { median: *median, sigma: *sigma, p90: *p90 })
            }
            TokenDist::Gamma { mean, cv } => {
                dist(DistConfig::Gamma { shape: None, scale: None, mean: Some(*mean), cv: Some(*cv) })
            }
            TokenDist::Empirical { values } => dist(DistConfig::Empirical { values: values.clone() }),
            TokenDist::Zipf { exponent, min, max } => {
                if !crate::validate::is_positive(*exponent) {
                    return Err(err(format!("zipf: exponent must be finite and > 0, got {exponent}")));
                }
                if *min == 0 || min > max || max - min >= MAX_TABLE {
                    return Err(err(format!(
                        "zipf: need 1 <= min <= max and max - min < {MAX_TABLE}, got min {min}, max {max}"
                    )));
                }
                let mut total = 0.0;
                let cdf = (*min..=*max)
                    .map(|k| {
                        total += (k as f64).powf(-exponent);
                        total
                    })
                    .collect();
                Ok(TokenSampler::Zipf { min: *min, cdf })
            }
            TokenDist::Trace { file, column } => {
                let path = base_dir.join(file);
                let pick: fn(&super::Request) -> u64 = match column.as_str() {
                    "input_tokens" => |r| r.input_tokens,
                    "cached_input_tokens" => |r| r.cached_input_tokens,
                    "output_tokens" => |r| r.output_tokens,
                    other => {
                        return Err(err(format!(
                            "trace: column must be input_tokens, cached_input_tokens or output_tokens, got {other:?}"
                        )))
                    }
                };
                // Reservoir sample (Algorithm R) with a fixed seed: the same file, the same values.
                let mut rng = SplitMix64::new(hash_str(column));
                let mut values: Vec<f64> = Vec::new();
                for (n, request) in TraceReader::open(&path)?.enumerate() {
                    let v = pick(&request?) as f64;
                    if values.len() < TRACE_SAMPLE {
                        values.push(v);
                    } else {
                        let j = (rng.next_open01() * (n + 1) as f64) as usize;
                        if j < TRACE_SAMPLE {
                            values[j] = v;
                        }
                    }
                }
                if values.is_empty() {
                    return Err(err(format!("trace: {} has no rows", path.display())));
                }
                dist(DistConfig::Empirical { values })
            }
        }
    }
}

/// One running client instance.
struct Instance {
    prefix: String,
    class: ClassId,
    process: Process,
    input: TokenSampler,
    output: TokenSampler,
    cached_fraction: f64,
    tokens_rng: SplitMix64,
    next_n: u64,
}

/// The merged stream of all clients' requests, in arrival order (ties: client order).
pub struct OpenLoopRows {
    instances: Vec<Instance>,
    heap: BinaryHeap<Reverse<(u64, usize)>>,
    end_us: u64,
    seq: u64,
}

/// At most this many clients (the sum of every `count`) in one open-loop generator.
pub const MAX_CLIENTS: u64 = 100_000;

impl OpenLoopConfig {
    /// Validates and starts the generator; `base_dir` resolves files.
    pub fn rows(&self, base_dir: &Path) -> Result<OpenLoopRows, TraceError> {
        let err = |field: String, message: &str| TraceError::Config { field, message: message.to_string() };
        if self.duration.is_zero() {
            return Err(err("duration".into(), "must be longer than zero"));
        }
        if self.clients.is_empty() {
            return Err(err("clients".into(), "at least one [[clients]] is required"));
        }
        // Memory is one pending arrival per client, and rows come at the clients' total rate:
        // both are bounded before anything is built.
        let mut total_clients: u64 = 0;
        let mut total_rate_per_s = 0.0;
        for (i, client) in self.clients.iter().enumerate() {
            total_clients += u64::from(client.count);
            if total_clients > MAX_CLIENTS {
                return Err(TraceError::Config {
                    field: format!("clients[{i}].count"),
                    message: format!(
                        "{} clients in all is above the maximum of {MAX_CLIENTS}",
                        total_clients
                    ),
                });
            }
            total_rate_per_s += client.process.mean_rate_per_s().unwrap_or(0.0) * f64::from(client.count);
            if total_rate_per_s > super::arrivals::MAX_RATE_PER_S {
                return Err(TraceError::Config {
                    field: format!("clients[{i}]"),
                    message: format!(
                        "the clients' total mean rate {total_rate_per_s} per second is above the maximum of {} per second",
                        super::arrivals::MAX_RATE_PER_S
                    ),
                });
            }
        }
        let mut instances = Vec::new();
        for (i, client) in self.clients.iter().enumerate() {
            let path = format!("clients[{i}]");
            let Some(class) = BUILTIN_CLASSES.iter().position(|c| *c == client.class) else {
                return Err(err(format!("{path}.class"), "must be one of interactive, hard, bulk, async"));
            };
            if client.name.trim().is_empty() {
                return Err(err(format!("{path}.name"), "must not be empty"));
            }
            if !crate::validate::is_probability(client.cached_fraction) {
                return Err(err(format!("{path}.cached_fraction"), "must be between 0 and 1"));
            }
            let input = client.input_tokens.build(base_dir, &format!("{path}.input_tokens"))?;
            let output = client.output_tokens.build(base_dir, &format!("{path}.output_tokens"))?;
            for copy in 0..client.count {
                let key = |purpose: &str| DrawKey {
                    seed: self.seed,
                    request: (i as u64) << 32 | u64::from(copy),
                    attempt: 0,
                    deployment: hash_str(purpose),
                    purpose: Purpose::TraceGen,
                };
                instances.push(Instance {
                    prefix: if client.count == 1 {
                        client.name.clone()
                    } else {
                        format!("{}{copy}", client.name)
                    },
                    class: ClassId(class as u16),
                    process: client.process.build(
                        key("open-loop-process").rng(),
                        base_dir,
                        &format!("{path}.process"),
                    )?,
                    input: input.clone(),
                    output: output.clone(),
                    cached_fraction: client.cached_fraction,
                    tokens_rng: key("open-loop-tokens").rng(),
                    next_n: 0,
                });
            }
        }
        let mut rows =
            OpenLoopRows { instances, heap: BinaryHeap::new(), end_us: self.duration.as_micros(), seq: 0 };
        for index in 0..rows.instances.len() {
            rows.schedule(index);
        }
        Ok(rows)
    }
}

impl OpenLoopRows {
    fn schedule(&mut self, index: usize) {
        if let Some(t_s) = self.instances[index].process.next() {
            let t_us = (t_s * MICROS_PER_S as f64).round();
            if t_us < self.end_us as f64 {
                self.heap.push(Reverse((t_us as u64, index)));
            }
        }
    }
}

impl Iterator for OpenLoopRows {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        let Reverse((arrival_us, index)) = self.heap.pop()?;
        let instance = &mut self.instances[index];
        let rng = &mut instance.tokens_rng;
        let input_tokens = instance.input.sample(rng).max(1);
        let output_tokens = instance.output.sample(rng);
        let cached_input_tokens = (input_tokens as f64 * instance.cached_fraction).round() as u64;
        let row = Row {
            arrival_us,
            seq: self.seq,
            id: format!("{}-{}", instance.prefix, instance.next_n),
            class: instance.class,
            input_tokens,
            cached_input_tokens: cached_input_tokens.min(input_tokens),
            cache_write_tokens: 0,
            output_tokens,
            max_tokens: output_tokens,
            session: None,
            parent: None,
            think_us: 0,
            deadline_ms: None,
        };
        instance.next_n += 1;
        self.seq += 1;
        self.schedule(index);
        Some(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> OpenLoopConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn superposed_clients_are_merged_in_order_at_the_summed_rate() {
        // 50 Poisson clients at 0.02/s and one Hawkes client with μ = 0.5, n = 0.5 (mean 1/s)
        // over 20,000 s: expected 20,000 + 20,000 requests. The Poisson part has SE √20,000
        // ≈ 141; the Hawkes part Var N ≈ μT/(1−n)³ = 80,000, SE ≈ 283; together SE ≈ 316,
        // 5 SE ≈ 1,600.
        let c = config(
            r#"
seed = 3
duration = "20000s"
[[clients]]
name = "p"
count = 50
process = { kind = "poisson", rate_per_s = 0.02 }
input_tokens = { dist = "constant", value = 100 }
output_tokens = { dist = "zipf", exponent = 1.1, min = 1, max = 1000 }
[[clients]]
name = "h"
class = "hard"
process = { kind = "hawkes", base_rate_per_s = 0.5, branching_ratio = 0.5, mean_delay = "2s" }
input_tokens = { dist = "lognormal", median = 1000, sigma = 0.5 }
output_tokens = { dist = "constant", value = 10 }
cached_fraction = 0.25
"#,
        );
        let rows: Vec<Row> = c.rows(Path::new(".")).unwrap().collect();
        assert!((rows.len() as f64 - 40_000.0).abs() < 1_600.0, "{}", rows.len());
        assert!(rows.windows(2).all(|w| w[0].arrival_us <= w[1].arrival_us));
        assert!(rows.iter().all(|r| r.arrival_us < 20_000 * MICROS_PER_S));
        let hard: Vec<&Row> = rows.iter().filter(|r| r.class == ClassId::HARD).collect();
        assert!(hard.iter().all(|r| r.cached_input_tokens == (r.input_tokens as f64 * 0.25).round() as u64));
        // Zipf(1.1) on 1..=1000: P(1) = 1 / H where H = Σ k^−1.1 ≈ 6.05 (computed below);
        // SE of the share over ~20,000 draws ≈ √(p(1−p)/n) ≈ 0.0034; 5 SE ≈ 0.017.
        let h: f64 = (1..=1000).map(|k| (k as f64).powf(-1.1)).sum();
        let poisson: Vec<&Row> = rows.iter().filter(|r| r.class == ClassId::INTERACTIVE).collect();
        let ones = poisson.iter().filter(|r| r.output_tokens == 1).count() as f64 / poisson.len() as f64;
        assert!((ones - 1.0 / h).abs() < 0.017, "P(1) {ones} vs {}", 1.0 / h);
        assert!(poisson.iter().all(|r| (1..=1000).contains(&r.output_tokens)));
        // Same seed, same rows.
        let again: Vec<Row> = c.rows(Path::new(".")).unwrap().collect();
        assert_eq!(rows, again);
    }

    #[test]
    fn bad_client_fields_are_named() {
        let c = config(
            r#"
duration = "1h"
[[clients]]
name = "x"
class = "vip"
process = { kind = "poisson", rate_per_s = 1 }
input_tokens = { dist = "constant", value = 1 }
output_tokens = { dist = "constant", value = 1 }
"#,
        );
        let err = c.rows(Path::new(".")).err().unwrap().to_string();
        assert_eq!(err, "trace generator: clients[0].class: must be one of interactive, hard, bulk, async");
        let mut c2 = c.clone();
        c2.clients[0].class = "bulk".into();
        c2.clients[0].output_tokens = TokenDist::Zipf { exponent: 1.0, min: 5, max: 2 };
        let err = c2.rows(Path::new(".")).err().unwrap().to_string();
        assert!(
            err.starts_with("trace generator: clients[0].output_tokens: zipf: need 1 <= min <= max"),
            "{err}"
        );
    }
}
