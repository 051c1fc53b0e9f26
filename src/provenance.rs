//! Provenance of the built-in presets (`presets/providers.toml`): which of a model's or a
//! preset's numbers come from a named public source and which are assumptions.
//!
//! A `[models.*]` or `[presets.*]` table may carry two keys beside its deployment fields:
//!
//! ```toml
//! sources = { prices = "https://…", limits = "https://…" }   # part → URL it was read from
//! assumed = ["latency", "batch.completion_ms"]               # parts with no published figure
//! ```
//!
//! A *part* is a section of the deployment schema (`prices`, `limits`, `latency`, `errors`,
//! `batch`, `incidents`, `incident_process`) or one field of it (`limits.burst`); the list is
//! [`KNOWN_PARTS`]. Every key is used or refused: an unknown part, a source that is not an
//! `http(s)://` URL, a part listed twice or both sourced and assumed is a [`ProvenanceError`].
//! A preset's provenance is its model's plus its own.
//!
//! Provenance is documentation only: the scenario loader removes both keys ([`strip`]) before
//! a preset is merged, so it never changes a simulation. It must not know the deployment
//! schema's types (only the names in [`KNOWN_PARTS`]) nor the engine.

use std::collections::BTreeMap;
use std::fmt;

/// The key naming each part's source.
pub const SOURCES_KEY: &str = "sources";
/// The key listing the assumed parts.
pub const ASSUMED_KEY: &str = "assumed";

/// The parts a provenance may name: each section of a deployment and each of its fields.
pub const KNOWN_PARTS: &[&str] = &[
    "prices",
    "prices.input_usd_per_mtok",
    "prices.output_usd_per_mtok",
    "prices.cache_read_usd_per_mtok",
    "prices.cache_write_usd_per_mtok",
    "prices.cache_write_1h_usd_per_mtok",
    "prices.cache_write_ttl",
    "prices.batch_price_factor",
    "limits",
    "limits.rpm",
    "limits.itpm",
    "limits.otpm",
    "limits.tpm",
    "limits.max_in_flight",
    "limits.burst",
    "limits.cache_reads_count_toward_itpm",
    "limits.acceleration",
    "limits.quotas",
    "latency",
    "latency.ttft_ms",
    "latency.ttft_ms_per_1k_uncached_input",
    "latency.output_tokens_per_s",
    "latency.error_response_ms",
    "latency.rate_limit_response",
    "latency.retry_after_granularity",
    "errors",
    "errors.server_error_rate",
    "errors.overloaded_rate",
    "errors.rate_limited_rate",
    "errors.rate_limited_retry_after",
    "errors.mid_stream_error_rate",
    "batch",
    "batch.completion_ms",
    "batch.max_completion",
    "batch.max_queue",
    "batch.max_queue_tokens",
    "incidents",
    "incident_process",
];

/// Provenance that cannot be used. Display is one line: `models.x.sources.pricse: …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{table}.{key}: {message}")]
pub struct ProvenanceError {
    /// The model or preset table, e.g. `presets."anthropic-tier1-opus-4.1"`.
    pub table: String,
    /// The key inside it, e.g. `sources.pricse` or `assumed[2]`.
    pub key: String,
    pub message: String,
}

/// Which parts are sourced (part → URL) and which assumed, in the order written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    pub sources: BTreeMap<String, String>,
    pub assumed: Vec<String>,
}

impl Provenance {
    /// Removes `sources` and `assumed` from `table` and validates them; `name` is the
    /// table's path for errors.
    pub fn take(table: &mut toml::Table, name: &str) -> Result<Provenance, ProvenanceError> {
        let fail = |key: String, message: String| ProvenanceError { table: name.to_string(), key, message };
        let mut provenance = Provenance::default();
        if let Some(sources) = table.remove(SOURCES_KEY) {
            let toml::Value::Table(sources) = sources else {
                return Err(fail(SOURCES_KEY.into(), "must be a table of part = \"URL\"".into()));
            };
            for (part, url) in sources {
                let key = format!("{SOURCES_KEY}.{part}");
                known_part(&part).map_err(|e| fail(key.clone(), e.to_string()))?;
                let Some(url) = url.as_str() else {
                    return Err(fail(key, "must be a string (the URL the figures were read from)".into()));
                };
                if !is_url(url) {
                    return Err(fail(key, format!("must be an http(s):// URL without spaces, got {url:?}")));
                }
                provenance.sources.insert(part, url.to_string());
            }
        }
        if let Some(assumed) = table.remove(ASSUMED_KEY) {
            let toml::Value::Array(assumed) = assumed else {
                return Err(fail(ASSUMED_KEY.into(), "must be an array of part names".into()));
            };
            for (i, part) in assumed.iter().enumerate() {
                let key = format!("{ASSUMED_KEY}[{i}]");
                let Some(part) = part.as_str() else {
                    return Err(fail(key, "must be a string (a part name)".into()));
                };
                known_part(part).map_err(|e| fail(key.clone(), e.to_string()))?;
                if provenance.assumed.iter().any(|p| p == part) {
                    return Err(fail(key, format!("{part:?} is listed twice")));
                }
                if provenance.sources.contains_key(part) {
                    return Err(fail(
                        key,
                        format!("{part:?} is also in {SOURCES_KEY}: a part is sourced or assumed"),
                    ));
                }
                provenance.assumed.push(part.to_string());
            }
        }
        Ok(provenance)
    }

    /// A model's provenance with a preset's laid over it (`name` is the preset, for errors):
    /// the preset may add parts, not state the opposite of its model for the same part.
    pub fn with(mut self, overlay: Provenance, name: &str) -> Result<Provenance, ProvenanceError> {
        let conflict = |key: String, part: &str| ProvenanceError {
            table: name.to_string(),
            key,
            message: format!("{part:?} is marked the other way in its model: a part is sourced or assumed"),
        };
        for (part, url) in overlay.sources {
            if self.assumed.contains(&part) {
                return Err(conflict(format!("{SOURCES_KEY}.{part}"), &part));
            }
            self.sources.insert(part, url);
        }
        for (i, part) in overlay.assumed.into_iter().enumerate() {
            if self.sources.contains_key(&part) {
                return Err(conflict(format!("{ASSUMED_KEY}[{i}]"), &part));
            }
            if !self.assumed.contains(&part) {
                self.assumed.push(part);
            }
        }
        Ok(self)
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty() && self.assumed.is_empty()
    }
}

/// Removes the provenance keys from a model or preset table without reading them: what the
/// scenario loader does, so provenance never reaches a simulation.
pub fn strip(table: &mut toml::Table) {
    table.remove(SOURCES_KEY);
    table.remove(ASSUMED_KEY);
}

/// `limits.quotas[N]`: one entry of the quotas list (a preset's quotas may mix sourced and
/// assumed figures).
fn is_quota_entry(part: &str) -> bool {
    part.strip_prefix("limits.quotas[")
        .and_then(|rest| rest.strip_suffix(']'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `part` names a part a provenance may name.
pub fn is_known_part(part: &str) -> bool {
    KNOWN_PARTS.contains(&part) || is_quota_entry(part)
}

/// A part name that is not in [`KNOWN_PARTS`]; `Display` suggests the nearest and lists the
/// sections.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown part {part:?}{} (a section or section.field of a deployment: {})",
    crate::suggest::suggestion(.part, KNOWN_PARTS),
    KNOWN_PARTS.iter().filter(|p| !p.contains('.')).copied().collect::<Vec<_>>().join(", ")
)]
pub struct UnknownPart {
    pub part: String,
}

fn known_part(part: &str) -> Result<(), UnknownPart> {
    if is_known_part(part) {
        Ok(())
    } else {
        Err(UnknownPart { part: part.to_string() })
    }
}

fn is_url(s: &str) -> bool {
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.chars().any(|c| c.is_whitespace() || c.is_control()))
}

/// One built-in preset as `sim presets` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresetInfo {
    pub name: String,
    /// The `[models.*]` it starts from (empty if none).
    pub model: String,
    pub provenance: Provenance,
}

impl fmt::Display for PresetInfo {
    /// `name  model=m  sourced: prices <url>, limits <url>  assumed: latency, errors`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}  model={}", self.name, if self.model.is_empty() { "-" } else { &self.model })?;
        let p = &self.provenance;
        if p.is_empty() {
            return write!(f, "  provenance: none recorded");
        }
        let sourced: Vec<String> = p.sources.iter().map(|(part, url)| format!("{part} <{url}>")).collect();
        let or_dash = |v: String| if v.is_empty() { "-".to_string() } else { v };
        write!(f, "  sourced: {}  assumed: {}", or_dash(sourced.join(", ")), or_dash(p.assumed.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(text: &str) -> Result<Provenance, String> {
        let mut table: toml::Table = text.parse().unwrap();
        let p = Provenance::take(&mut table, "models.m").map_err(|e| e.to_string())?;
        assert!(!table.contains_key(SOURCES_KEY) && !table.contains_key(ASSUMED_KEY), "keys removed");
        Ok(p)
    }

    #[test]
    fn sources_and_assumed_are_read_and_removed() {
        let p = take(
            "provider = \"x\"\nsources = { prices = \"https://a.example/p\", \"limits.rpm\" = \"http://b.example\" }\nassumed = [\"latency\", \"limits.burst\"]",
        )
        .unwrap();
        assert_eq!(p.sources["prices"], "https://a.example/p");
        assert_eq!(p.sources["limits.rpm"], "http://b.example");
        assert_eq!(p.assumed, ["latency", "limits.burst"]);
        assert!(take("provider = \"x\"").unwrap().is_empty());
    }

    #[test]
    fn every_bad_key_is_refused_with_its_path() {
        let e = take("sources = { pricse = \"https://a\" }").unwrap_err();
        assert!(
            e.starts_with("models.m.sources.pricse: unknown part \"pricse\"; did you mean \"prices\"?"),
            "{e}"
        );
        let e = take("sources = { prices = \"see PROVIDERS.md\" }").unwrap_err();
        assert!(e.starts_with("models.m.sources.prices: must be an http(s):// URL"), "{e}");
        let e = take("sources = { prices = 3 }").unwrap_err();
        assert!(e.starts_with("models.m.sources.prices: must be a string"), "{e}");
        let e = take("sources = \"https://a\"").unwrap_err();
        assert!(e.starts_with("models.m.sources: must be a table"), "{e}");
        let e = take("assumed = \"latency\"").unwrap_err();
        assert!(e.starts_with("models.m.assumed: must be an array"), "{e}");
        let e = take("assumed = [\"latency\", \"latency\"]").unwrap_err();
        assert_eq!(e, "models.m.assumed[1]: \"latency\" is listed twice");
        let e = take("assumed = [\"limits.brust\"]").unwrap_err();
        assert!(
            e.contains("assumed[0]: unknown part \"limits.brust\"; did you mean \"limits.burst\"?"),
            "{e}"
        );
        let e = take("sources = { latency = \"https://a\" }\nassumed = [\"latency\"]").unwrap_err();
        assert!(e.contains("assumed[0]: \"latency\" is also in sources"), "{e}");
    }

    #[test]
    fn a_preset_adds_to_its_model_but_cannot_contradict_it() {
        let model = take("sources = { prices = \"https://a\" }\nassumed = [\"latency\"]").unwrap();
        let preset = take("sources = { limits = \"https://b\" }\nassumed = [\"limits.burst\"]").unwrap();
        let both = model.clone().with(preset, "presets.p").unwrap();
        assert_eq!(both.sources.keys().collect::<Vec<_>>(), ["limits", "prices"]);
        assert_eq!(both.assumed, ["latency", "limits.burst"]);
        let e = model.with(take("sources = { latency = \"https://c\" }").unwrap(), "presets.p").unwrap_err();
        assert!(
            e.to_string().starts_with("presets.p.sources.latency: \"latency\" is marked the other way"),
            "{e}"
        );
    }

    #[test]
    fn a_line_names_model_sourced_and_assumed_parts() {
        let info = PresetInfo {
            name: "p".into(),
            model: "m".into(),
            provenance: take("sources = { prices = \"https://a\" }\nassumed = [\"latency\"]").unwrap(),
        };
        assert_eq!(info.to_string(), "p  model=m  sourced: prices <https://a>  assumed: latency");
        let bare = PresetInfo { name: "q".into(), model: String::new(), provenance: Provenance::default() };
        assert_eq!(bare.to_string(), "q  model=-  provenance: none recorded");
    }
}
