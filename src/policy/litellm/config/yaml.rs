//! YAML as LiteLLM reads it: PyYAML's `safe_load`, which is YAML 1.1. A document becomes a
//! tree of [`Node`]s that remember their line, so the importer can say where a key is.
//!
//! Parsing (the syntax) is `saphyr-parser`'s; what a plain scalar means is decided here with
//! PyYAML's YAML 1.1 implicit resolvers, not YAML 1.2's core schema: `20_000` and `0x1F` are
//! integers, `1_000.5` is a float, `yes`/`no`/`on`/`off` are booleans, `010` is octal,
//! `1:30` is sexagesimal (90), `1e5` is a string (1.1 floats need a dot), and `~`, `null` or
//! nothing is null. Anchors, aliases and merge keys (`<<: *base`) work as in PyYAML: keys
//! written in the mapping win over merged ones, and a later duplicate key replaces an earlier
//! one. Quoted and block scalars are strings; `!!str`, `!!int`, `!!float`, `!!bool` and
//! `!!null` tags are honoured; other tags are refused, as `safe_load` refuses them.
//!
//! Aliases are expanded into copies, as PyYAML's constructor shares them; so that a few
//! hundred bytes of nested aliases (a "billion laughs" document) cannot grow without bound,
//! a document may hold at most [`MAX_NODES`] nodes and [`MAX_SCALAR_BYTES`] bytes of scalar
//! text once its aliases are expanded (the copies kept for anchors count too). Beyond either,
//! it is refused at the alias or value that passes the budget: `alias expands beyond …`.
//!
//! It owns YAML and nothing about LiteLLM's keys (that is [`super`], the importer).

use saphyr_parser::{Event, Parser, ScalarStyle, Span, SpannedEventReceiver};
use std::collections::BTreeMap;
use std::fmt;

/// A value with the (1-based) line it starts on.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub line: usize,
    pub value: Value,
}

/// A YAML 1.1 value, resolved as PyYAML resolves it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in document order; keys are unique (a later duplicate replaced the earlier).
    Map(Vec<(Node, Node)>),
}

/// A document that is not YAML, with the line of the problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

impl Node {
    /// The entries of a mapping, if this is one.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value under `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?.iter().find(|(k, _)| k.key_text() == key).map(|(_, v)| v)
    }

    /// A mapping key as text: strings as they are, other scalars as PyYAML would print them
    /// (`True`, `1`), collections as `[…]`/`{…}`.
    pub fn key_text(&self) -> String {
        match &self.value {
            Value::Str(s) => s.clone(),
            Value::Null => "null".into(),
            Value::Bool(b) => if *b { "True" } else { "False" }.into(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Seq(_) => "[…]".into(),
            Value::Map(_) => "{…}".into(),
        }
    }

    /// Whether this value leaves a setting as LiteLLM's default would: null, false, 0, an
    /// empty string, list or mapping.
    pub fn is_inert(&self) -> bool {
        match &self.value {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::Int(i) => *i == 0,
            Value::Float(f) => *f == 0.0,
            Value::Str(s) => s.is_empty(),
            Value::Seq(items) => items.is_empty(),
            Value::Map(entries) => entries.is_empty(),
        }
    }
}

/// A value as an error message shows it: strings quoted, collections by kind.
impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => {
                f.write_str("\"")?;
                for c in s.chars().take(60) {
                    match c {
                        '"' => f.write_str("\\\"")?,
                        '\\' => f.write_str("\\\\")?,
                        '\n' => f.write_str("\\n")?,
                        c => write!(f, "{c}")?,
                    }
                }
                if s.chars().count() > 60 {
                    f.write_str("…")?;
                }
                f.write_str("\"")
            }
            Value::Seq(_) => f.write_str("a list"),
            Value::Map(_) => f.write_str("a mapping"),
        }
    }
}

/// At most this many nodes (scalars, lists and mappings) in one document, counting every
/// alias as the copy it expands to and each anchor's kept copy. A LiteLLM config has hundreds
/// or thousands; a million nodes are under 100 MB.
pub const MAX_NODES: u64 = 1_000_000;

/// At most this many bytes of scalar text in one document, counted like [`MAX_NODES`]: an
/// alias of a long string costs its length again.
pub const MAX_SCALAR_BYTES: u64 = 32 << 20;

/// At most this many lists and mappings nested in one another (block lists can nest on one
/// line, `- - - x`); deeper would only exhaust the stack when the tree is walked or dropped.
/// Flow collections (`[[…]]`) are limited to 255 levels by the parser itself.
pub const MAX_DEPTH: usize = 256;

/// What a node costs against the budget: nodes and scalar bytes of its subtree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Cost {
    nodes: u64,
    bytes: u64,
}

impl Cost {
    fn add(&mut self, other: Cost) {
        self.nodes = self.nodes.saturating_add(other.nodes);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

/// Parses one YAML document. `Ok(None)` for an empty stream (PyYAML's `None`).
pub fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    let mut builder = Builder::default();
    // The parser's events one by one (its `load` recurses once per nesting level, so a deep
    // document would overflow the stack before the builder could refuse it); the first
    // problem, of syntax or of the builder, ends the parse.
    for event in Parser::new_from_str(text) {
        let (event, span) =
            event.map_err(|e| SyntaxError { line: e.marker().line(), message: e.info().to_string() })?;
        builder.on_event(event, span);
        if let Some(error) = builder.error.take() {
            return Err(error);
        }
    }
    match builder.documents.len() {
        0 | 1 => Ok(builder.documents.pop().flatten()),
        _ => Err(SyntaxError {
            line: builder.second_document_line,
            message: "expected a single document, found a second one".into(),
        }),
    }
}

/// Builds nodes from the parser's events.
#[derive(Default)]
struct Builder {
    /// Collections being filled: (node so far, anchor id, pending key of a mapping, cost of
    /// the node so far).
    stack: Vec<(Node, usize, Option<Node>, Cost)>,
    /// Anchored nodes with their cost (an alias of one adds that cost again).
    anchors: BTreeMap<usize, (Node, Cost)>,
    /// Everything built so far, aliases expanded and anchor copies included.
    spent: Cost,
    /// Whether an alias has been expanded (what the budget error blames).
    aliases_expanded: bool,
    documents: Vec<Option<Node>>,
    in_document: bool,
    second_document_line: usize,
    error: Option<SyntaxError>,
}

impl Builder {
    fn fail(&mut self, line: usize, message: String) {
        if self.error.is_none() {
            self.error = Some(SyntaxError { line, message });
        }
    }

    /// Charges `cost` to the document's budget; false (and the error set) past it.
    fn spend(&mut self, line: usize, cost: Cost) -> bool {
        self.spent.add(cost);
        if self.spent.nodes > MAX_NODES || self.spent.bytes > MAX_SCALAR_BYTES {
            let what = if self.aliases_expanded { "alias expands" } else { "the document grows" };
            self.fail(
                line,
                format!(
                    "{what} beyond the budget of {MAX_NODES} nodes and {} MiB of text in one document \
                     (an alias counts as the copy it expands to, an anchor as its kept copy)",
                    MAX_SCALAR_BYTES >> 20
                ),
            );
            return false;
        }
        true
    }

    /// Places a finished node, whose subtree costs `cost`, into its parent (or makes it the
    /// document).
    fn push(&mut self, node: Node, anchor: usize, cost: Cost) {
        if anchor > 0 {
            // The kept copy costs as much again.
            if !self.spend(node.line, cost) {
                return;
            }
            self.anchors.insert(anchor, (node.clone(), cost));
        }
        match self.stack.last_mut() {
            None => {
                if let Some(doc) = self.documents.last_mut() {
                    *doc = Some(node);
                }
            }
            Some((parent, _, pending, parent_cost)) => match &mut parent.value {
                Value::Seq(items) => {
                    parent_cost.add(cost);
                    items.push(node)
                }
                Value::Map(entries) => {
                    parent_cost.add(cost);
                    match pending.take() {
                        None => *pending = Some(node),
                        Some(key) => insert(entries, key, node),
                    }
                }
                _ => {}
            },
        }
    }
}

/// Inserts an entry; a duplicate key replaces the earlier value (PyYAML keeps the last).
fn insert(entries: &mut Vec<(Node, Node)>, key: Node, value: Node) {
    match entries.iter_mut().find(|(k, _)| k.value == key.value) {
        Some(entry) => *entry = (key, value),
        None => entries.push((key, value)),
    }
}

/// Applies merge keys (`<<`): merged entries are added where the mapping has no such key.
fn merge_keys(node: &mut Node) -> Result<(), SyntaxError> {
    let Value::Map(entries) = &mut node.value else { return Ok(()) };
    let Some(at) = entries.iter().position(|(k, _)| is_merge_key(k)) else { return Ok(()) };
    let (_, merged) = entries.remove(at);
    let sources: Vec<Node> = match merged.value {
        Value::Map(_) => vec![merged],
        Value::Seq(items) => items,
        _ => {
            return Err(SyntaxError {
                line: merged.line,
                message: "a merge key (<<) needs a mapping or a list of mappings".into(),
            })
        }
    };
    for source in sources {
        let Value::Map(source_entries) = source.value else {
            return Err(SyntaxError {
                line: source.line,
                message: "a merge key (<<) needs a mapping or a list of mappings".into(),
            });
        };
        for (k, v) in source_entries {
            if !entries.iter().any(|(existing, _)| existing.value == k.value) {
                entries.push((k, v));
            }
        }
    }
    Ok(())
}

fn is_merge_key(key: &Node) -> bool {
    matches!(&key.value, Value::Str(s) if s == "<<")
}

impl<'input> SpannedEventReceiver<'input> for Builder {
    fn on_event(&mut self, event: Event<'input>, span: Span) {
        if self.error.is_some() {
            return;
        }
        let line = span.start.line();
        match event {
            Event::DocumentStart(_) => {
                if self.documents.len() == 1 {
                    self.second_document_line = line;
                }
                self.documents.push(None);
                self.in_document = true;
            }
            Event::DocumentEnd => self.in_document = false,
            Event::Alias(id) => match self.anchors.get(&id).map(|(_, cost)| *cost) {
                // Charged before the copy is made: a refused alias never allocates.
                Some(cost) => {
                    self.aliases_expanded = true;
                    if self.spend(line, cost) {
                        let node = self.anchors[&id].0.clone();
                        self.push(Node { line, ..node }, 0, cost)
                    }
                }
                None => self.fail(line, "an alias refers to an unknown anchor".into()),
            },
            Event::Scalar(text, style, anchor, tag) => {
                let tag = tag.map(|t| {
                    if t.handle == "tag:yaml.org,2002:" || t.handle == "!!" {
                        format!("!!{}", t.suffix)
                    } else {
                        format!("{}{}", t.handle, t.suffix)
                    }
                });
                let cost = Cost { nodes: 1, bytes: text.len() as u64 };
                if !self.spend(line, cost) {
                    return;
                }
                match scalar(&text, style, tag.as_deref()) {
                    Ok(value) => self.push(Node { line, value }, anchor, cost),
                    Err(e) => self.fail(line, e.to_string()),
                }
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                let one = Cost { nodes: 1, bytes: 0 };
                if !self.spend(line, one) {
                    return;
                }
                if self.stack.len() >= MAX_DEPTH {
                    self.fail(line, format!("lists and mappings nested deeper than {MAX_DEPTH} levels"));
                    return;
                }
                let value = if matches!(event, Event::SequenceStart(..)) {
                    Value::Seq(Vec::new())
                } else {
                    Value::Map(Vec::new())
                };
                self.stack.push((Node { line, value }, anchor, None, one))
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((mut node, anchor, _, cost)) = self.stack.pop() {
                    if let Err(e) = merge_keys(&mut node) {
                        self.error = Some(e);
                        return;
                    }
                    self.push(node, anchor, cost);
                }
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
    }
}

/// A tagged scalar that cannot be read; the line is attached by the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScalarError {
    /// A tag LiteLLM's `yaml.safe_load` refuses (`!!python/object`, a custom `!tag`).
    #[error("unsupported tag {tag} (LiteLLM's safe_load refuses it)")]
    UnsupportedTag { tag: String },
    /// The text is not a value of its explicit tag (`!!int`, `!!float`, `!!bool`).
    #[error("{text:?} is not a valid {tag}")]
    Invalid { text: String, tag: &'static str },
}

/// A scalar's value: plain scalars are resolved (YAML 1.1), others are strings.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&str>) -> Result<Value, ScalarError> {
    let unsupported = |tag: &str| ScalarError::UnsupportedTag { tag: tag.to_string() };
    let invalid = |tag: &'static str| ScalarError::Invalid { text: text.to_string(), tag };
    match tag {
        None if style == ScalarStyle::Plain => Ok(resolve_plain(text)),
        None => Ok(Value::Str(text.to_string())),
        Some("!!str") => Ok(Value::Str(text.to_string())),
        Some("!!int") => parse_int(text).map(Value::Int).ok_or_else(|| invalid("!!int")),
        Some("!!float") => match resolve_plain(text) {
            Value::Float(f) => Ok(Value::Float(f)),
            Value::Int(i) => Ok(Value::Float(i as f64)),
            _ => Err(invalid("!!float")),
        },
        Some("!!bool") => match resolve_plain(text) {
            Value::Bool(b) => Ok(Value::Bool(b)),
            _ => Err(invalid("!!bool")),
        },
        Some("!!null") => Ok(Value::Null),
        // A lone `!` forces a string, as in PyYAML.
        Some("!") => Ok(Value::Str(text.to_string())),
        Some(other) => Err(unsupported(other)),
    }
}

/// PyYAML's implicit resolvers for a plain scalar (YAML 1.1).
pub fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => return Value::Bool(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Value::Bool(false)
        }
        _ => {}
    }
    if let Some(i) = parse_int(text) {
        return Value::Int(i);
    }
    if let Some(f) = parse_float(text) {
        return Value::Float(f);
    }
    Value::Str(text.to_string())
}

/// Splits an optional sign.
fn sign(text: &str) -> (bool, &str) {
    match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    }
}

/// YAML 1.1 integers: `[-+]?0b[01_]+`, `[-+]?0[0-7_]+` (octal), `[-+]?(0|[1-9][0-9_]*)`,
/// `[-+]?0x[0-9a-fA-F_]+`, and sexagesimal `[-+]?[1-9][0-9_]*(:[0-5]?[0-9])+`. Underscores are
/// dropped, as PyYAML's constructor drops them.
pub fn parse_int(text: &str) -> Option<i128> {
    let (negative, body) = sign(text);
    let digits = |s: &str, radix: u32| -> Option<i128> {
        let cleaned: String = s.chars().filter(|c| *c != '_').collect();
        if cleaned.is_empty() {
            // "0_" is 0 to PyYAML; "0b_" and "0x_" fail its conversion (we keep them strings).
            return (radix == 8).then_some(0);
        }
        i128::from_str_radix(&cleaned, radix).ok()
    };
    let value = if let Some(rest) = body.strip_prefix("0b") {
        if rest.is_empty() || !rest.chars().all(|c| c == '0' || c == '1' || c == '_') {
            return None;
        }
        digits(rest, 2)?
    } else if let Some(rest) = body.strip_prefix("0x") {
        if rest.is_empty() || !rest.chars().all(|c| c.is_ascii_hexdigit() || c == '_') {
            return None;
        }
        digits(rest, 16)?
    } else if body == "0" {
        0
    } else if let Some(rest) = body.strip_prefix('0') {
        if rest.is_empty() || !rest.chars().all(|c| ('0'..='7').contains(&c) || c == '_') {
            return None;
        }
        digits(rest, 8)?
    } else if body.contains(':') {
        i128::from(sexagesimal(body)?)
    } else {
        let mut chars = body.chars();
        if !chars.next().is_some_and(|c| c.is_ascii_digit() && c != '0')
            || !body.chars().all(|c| c.is_ascii_digit() || c == '_')
        {
            return None;
        }
        digits(body, 10)?
    };
    Some(if negative { -value } else { value })
}

/// `1:30:05` style (base 60), integral part only; the first part must start with 1-9.
fn sexagesimal(body: &str) -> Option<u64> {
    let mut parts = body.split(':');
    let first = parts.next()?;
    if !first.chars().next().is_some_and(|c| c.is_ascii_digit() && c != '0')
        || !first.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return None;
    }
    let mut value: u64 = first.chars().filter(|c| *c != '_').collect::<String>().parse().ok()?;
    let mut count = 0;
    for part in parts {
        // `[0-5]?[0-9]`
        let ok = match part.as_bytes() {
            [d] => d.is_ascii_digit(),
            [a, d] => (b'0'..=b'5').contains(a) && d.is_ascii_digit(),
            _ => false,
        };
        if !ok {
            return None;
        }
        value = value.checked_mul(60)?.checked_add(part.parse().ok()?)?;
        count += 1;
    }
    (count > 0).then_some(value)
}

/// YAML 1.1 floats: `[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+][0-9]+)?` (a dot is required, and
/// so is the exponent's sign), sexagesimal `[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*`,
/// `[-+]?.inf`, `.nan`.
pub fn parse_float(text: &str) -> Option<f64> {
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    let (negative, body) = sign(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(at) => (&body[..at], Some(&body[at + 1..])),
        None => (body, None),
    };
    if let Some(exp) = exponent {
        let (s, digits) = exp.split_at(exp.len().min(1));
        if !(s == "+" || s == "-") || digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
    }
    let dot = mantissa.find('.')?;
    let (whole, fraction) = (&mantissa[..dot], &mantissa[dot + 1..]);
    if !fraction.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return None;
    }
    let clean = |s: &str| s.chars().filter(|c| *c != '_').collect::<String>();
    let magnitude = if whole.contains(':') {
        // Sexagesimal: no exponent; the first part may start with 0 here.
        if exponent.is_some() {
            return None;
        }
        let mut parts = whole.split(':');
        let first = parts.next()?;
        if first.is_empty() || !first.chars().all(|c| c.is_ascii_digit() || c == '_') {
            return None;
        }
        let mut value: f64 = clean(first).parse().ok()?;
        for part in parts {
            let ok = match part.as_bytes() {
                [d] => d.is_ascii_digit(),
                [a, d] => (b'0'..=b'5').contains(a) && d.is_ascii_digit(),
                _ => false,
            };
            if !ok {
                return None;
            }
            value = value * 60.0 + part.parse::<f64>().ok()?;
        }
        let f = clean(fraction);
        value + if f.is_empty() { 0.0 } else { format!("0.{f}").parse::<f64>().ok()? }
    } else {
        if whole.is_empty() {
            // `.5`: PyYAML's pattern is `\.[0-9][0-9_]*` without a sign.
            if negative || text.starts_with('+') || !fraction.starts_with(|c: char| c.is_ascii_digit()) {
                return None;
            }
        } else if !whole.starts_with(|c: char| c.is_ascii_digit())
            || !whole.chars().all(|c| c.is_ascii_digit() || c == '_')
        {
            return None;
        }
        let whole = clean(whole);
        let fraction = clean(fraction);
        let literal = format!(
            "{}.{}{}",
            if whole.is_empty() { "0" } else { &whole },
            if fraction.is_empty() { "0" } else { &fraction },
            exponent.map(|e| format!("e{e}")).unwrap_or_default()
        );
        literal.parse().ok()?
    };
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(s: &str) -> Value {
        resolve_plain(s)
    }

    #[test]
    fn integers_as_yaml_1_1() {
        assert_eq!(plain("20_000"), Value::Int(20_000));
        assert_eq!(plain("100_000"), Value::Int(100_000));
        assert_eq!(plain("0x1F"), Value::Int(31));
        assert_eq!(plain("0x_1f"), Value::Int(31));
        assert_eq!(plain("-0x10"), Value::Int(-16));
        assert_eq!(plain("0b1010"), Value::Int(10));
        assert_eq!(plain("010"), Value::Int(8), "a leading 0 is octal in YAML 1.1");
        assert_eq!(plain("0"), Value::Int(0));
        assert_eq!(plain("+7"), Value::Int(7));
        assert_eq!(plain("-7"), Value::Int(-7));
        assert_eq!(plain("1:30"), Value::Int(90), "sexagesimal");
        assert_eq!(plain("1:00:00"), Value::Int(3600));
        assert_eq!(plain("09"), Value::Str("09".into()), "not octal, not decimal");
        assert_eq!(plain("0o17"), Value::Str("0o17".into()), "0o is YAML 1.2 only");
        assert_eq!(plain("1:60"), Value::Str("1:60".into()));
        assert_eq!(plain("12abc"), Value::Str("12abc".into()));
        // Checked against PyYAML 6.0.3's safe_load.
        assert_eq!(plain("0_"), Value::Int(0));
        assert_eq!(plain("00"), Value::Int(0));
        assert_eq!(plain("1_"), Value::Int(1));
        assert_eq!(plain("1__0"), Value::Int(10));
        assert_eq!(plain("-1:30"), Value::Int(-90));
        assert_eq!(plain("1_0:30"), Value::Int(630));
        assert_eq!(plain("0:30"), Value::Str("0:30".into()));
        assert_eq!(plain("_1"), Value::Str("_1".into()));
        assert_eq!(plain("0x"), Value::Str("0x".into()));
    }

    #[test]
    fn floats_as_yaml_1_1() {
        assert_eq!(plain("1_000.5"), Value::Float(1000.5));
        assert_eq!(plain("0.5"), Value::Float(0.5));
        assert_eq!(plain("5."), Value::Float(5.0));
        assert_eq!(plain(".5"), Value::Float(0.5));
        assert_eq!(plain("-1.5"), Value::Float(-1.5));
        assert_eq!(plain("1.0e+3"), Value::Float(1000.0));
        assert_eq!(plain("0.00000015"), Value::Float(0.000_000_15));
        assert_eq!(plain("1:30.5"), Value::Float(90.5));
        assert_eq!(plain(".inf"), Value::Float(f64::INFINITY));
        assert_eq!(plain("-.Inf"), Value::Float(f64::NEG_INFINITY));
        assert!(matches!(plain(".nan"), Value::Float(f) if f.is_nan()));
        // YAML 1.1 needs the dot and the exponent's sign: these are strings to PyYAML.
        assert_eq!(plain("1e5"), Value::Str("1e5".into()));
        assert_eq!(plain("1.0e5"), Value::Str("1.0e5".into()));
        assert_eq!(plain("-.5"), Value::Str("-.5".into()));
        assert_eq!(plain("."), Value::Str(".".into()));
        assert_eq!(plain("+.5"), Value::Str("+.5".into()));
        assert_eq!(plain("._5"), Value::Str("._5".into()));
        assert_eq!(plain("0:30.5"), Value::Float(30.5));
        assert_eq!(plain("1.5E+2"), Value::Float(150.0));
        assert_eq!(plain("0.5_"), Value::Float(0.5));
    }

    #[test]
    fn booleans_and_nulls_as_yaml_1_1() {
        for t in ["yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE"] {
            assert_eq!(plain(t), Value::Bool(true), "{t}");
        }
        for f in ["no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE"] {
            assert_eq!(plain(f), Value::Bool(false), "{f}");
        }
        for n in ["", "~", "null", "Null", "NULL"] {
            assert_eq!(plain(n), Value::Null, "{n}");
        }
        // Not booleans in 1.1 either (PyYAML has no y/n resolver).
        assert_eq!(plain("y"), Value::Str("y".into()));
        assert_eq!(plain("nO"), Value::Str("nO".into()));
    }

    #[test]
    fn quoted_and_tagged_scalars() {
        let doc = parse("a: \"20_000\"\nb: '1'\nc: !!str 5\nd: !!int \"0x10\"\ne: !!float 2\nf: |\n  yes\n")
            .unwrap()
            .unwrap();
        assert_eq!(doc.get("a").unwrap().value, Value::Str("20_000".into()));
        assert_eq!(doc.get("b").unwrap().value, Value::Str("1".into()));
        assert_eq!(doc.get("c").unwrap().value, Value::Str("5".into()));
        assert_eq!(doc.get("d").unwrap().value, Value::Int(16));
        assert_eq!(doc.get("e").unwrap().value, Value::Float(2.0));
        assert_eq!(doc.get("f").unwrap().value, Value::Str("yes\n".into()));
        let e = parse("a: !Ref x\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("unsupported tag !Ref"), "{}", e.message);
    }

    #[test]
    fn an_alias_bomb_is_refused_at_the_alias_that_passes_the_budget() {
        // Nine anchors of nine aliases each: 9^10 strings, 558 bytes.
        let mut text =
            "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n".to_string();
        for i in 1..10 {
            let aliases = vec![format!("*a{}", i - 1); 9].join(",");
            text += &format!("a{i}: &a{i} [{aliases}]\n");
        }
        let e = parse(&text).unwrap_err();
        // a5 is 597,871 nodes: with its anchor's copy (line 6) the document passes a million.
        assert_eq!(e.line, 6, "{e:?}");
        assert!(e.message.starts_with("alias expands beyond the budget of 1000000 nodes"), "{}", e.message);
        // Long strings: the bytes count.
        let long = "x".repeat(1 << 20);
        let text = format!("a: &a \"{long}\"\nb: [{}]\n", vec!["*a"; 40].join(", "));
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("32 MiB of text"), "{}", e.message);
        // Within the budget, aliases expand as before.
        let doc = parse("a: &a [1, 2]\nb: [*a, *a]\n").unwrap().unwrap();
        assert_eq!(doc.get("b").unwrap().as_seq().unwrap()[1].as_seq().unwrap().len(), 2);
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused() {
        let deep = format!("{}x\n", "- ".repeat(MAX_DEPTH + 1));
        let e = parse(&deep).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("nested deeper than 256 levels"), "{}", e.message);
        let ok = format!("{}x\n", "- ".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        // Far deeper (a megabyte of "- "): refused as quickly, no stack overflow.
        let e = parse(&format!("{}x\n", "- ".repeat(500_000))).unwrap_err();
        assert!(e.message.contains("nested deeper"), "{}", e.message);
    }

    #[test]
    fn lines_anchors_merge_keys_and_duplicates() {
        let text = "base: &b\n  rpm: 10\n  tpm: 20\nentry:\n  <<: *b\n  tpm: 30\nlist: [1, 2]\nx: 1\nx: 2\n";
        let doc = parse(text).unwrap().unwrap();
        let entry = doc.get("entry").unwrap();
        assert_eq!(entry.get("tpm").unwrap().value, Value::Int(30), "written keys win over merged");
        assert_eq!(entry.get("rpm").unwrap().value, Value::Int(10));
        assert_eq!(entry.get("tpm").unwrap().line, 6);
        assert_eq!(doc.get("list").unwrap().as_seq().unwrap().len(), 2);
        assert_eq!(doc.get("x").unwrap().value, Value::Int(2), "the last duplicate wins");
        assert_eq!(doc.as_map().unwrap().iter().filter(|(k, _)| k.key_text() == "x").count(), 1);
    }

    #[test]
    fn syntax_errors_have_a_line_and_empty_is_none() {
        let e = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(e.line >= 2, "{e:?}");
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# only a comment\n").unwrap(), None);
        let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn display_quotes_strings_without_debug_formatting() {
        let n = |value| Node { line: 1, value };
        assert_eq!(n(Value::Str("lots".into())).to_string(), "\"lots\"");
        assert_eq!(n(Value::Str("a\"b".into())).to_string(), "\"a\\\"b\"");
        assert_eq!(n(Value::Seq(vec![])).to_string(), "a list");
        assert_eq!(n(Value::Float(1.5)).to_string(), "1.5");
    }
}
