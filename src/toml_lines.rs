//! Lines of TOML errors, for the error contract `file:line: key.path: what is wrong`.
//!
//! Owns the one mapping from a TOML text to line numbers: of a syntax or type error (from
//! toml's span, with a message folded onto one line and never empty), and of a key path as
//! validation errors spell it (`deployments."anthropic/sonnet".limits.rpm`, `strategy[1].policy`),
//! found through toml_edit's spans (the deepest key of the path that the text writes: a value
//! inherited from a preset points at its deployment's table). Scenarios, sweeps and generator
//! configs use it; it must not know their schemas.

/// The 1-based line of byte offset `byte` (lines end at LF; a CRLF counts once).
pub fn line_of(text: &str, byte: usize) -> usize {
    text.as_bytes()[..byte.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
}

/// A TOML parse or deserialisation error as (line, one-line message).
pub fn syntax_error(text: &str, error: &toml::de::Error) -> (Option<usize>, String) {
    let start = error.span().map(|s| s.start.min(text.len()));
    let line = start.map(|s| line_of(text, s));
    let mut message = error
        .message()
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    if let Some(start) = start {
        // A bare CR (old Mac line endings) on the error's line is the likely cause.
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let bytes = text.as_bytes();
        let bare_cr = (line_start..line_end).any(|i| bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n'));
        if bare_cr {
            message = "bare carriage return (CR) as a line ending: TOML lines end with LF or CRLF".into();
        } else if message.is_empty() {
            message = match text[start..].chars().next() {
                Some(c) if c.is_control() => {
                    format!(
                        "invalid control character U+{:04X} (not allowed in TOML, even in comments)",
                        c as u32
                    )
                }
                Some(c) => format!("invalid TOML at {c:?}"),
                None => "unexpected end of file".into(),
            };
        }
    } else if message.is_empty() {
        message = "invalid TOML".into();
    }
    (line, message)
}

/// The line of the deepest key of `path` that `text` writes, if any.
pub fn line_of_path(text: &str, path: &str) -> Option<usize> {
    let doc: toml_edit::ImDocument<&str> = toml_edit::ImDocument::parse(text).ok()?;
    let mut best = None;
    let mut node = Node::Table(doc.as_table());
    for segment in segments(path) {
        let next = match (&segment, node) {
            (Segment::Key(k), Node::Table(t)) => t
                .get_key_value(k)
                .map(|(key, child)| (key.span().or_else(|| child.span()), Node::of_item(child))),
            (Segment::Key(k), Node::Inline(t)) => t
                .get_key_value(k)
                .map(|(key, child)| (key.span().or_else(|| child.span()), Node::of_item(child))),
            (Segment::Index(i), Node::Tables(a)) => {
                a.get(*i).map(|t| (t.span().or_else(|| first_key_span(t)), Node::Table(t)))
            }
            (Segment::Index(i), Node::Array(a)) => a.get(*i).map(|v| (v.span(), Node::of_value(v))),
            _ => None,
        };
        let Some((span, child)) = next else { break };
        if let Some(span) = span {
            best = Some(span.start);
        }
        node = child;
    }
    best.map(|b| line_of(text, b))
}

/// A place in a TOML document that a key path can walk into.
#[derive(Clone, Copy)]
enum Node<'a> {
    Table(&'a toml_edit::Table),
    Inline(&'a toml_edit::InlineTable),
    Tables(&'a toml_edit::ArrayOfTables),
    Array(&'a toml_edit::Array),
    Leaf,
}

impl<'a> Node<'a> {
    fn of_item(item: &'a toml_edit::Item) -> Node<'a> {
        match item {
            toml_edit::Item::Table(t) => Node::Table(t),
            toml_edit::Item::ArrayOfTables(a) => Node::Tables(a),
            toml_edit::Item::Value(v) => Node::of_value(v),
            toml_edit::Item::None => Node::Leaf,
        }
    }
    fn of_value(value: &'a toml_edit::Value) -> Node<'a> {
        match value {
            toml_edit::Value::InlineTable(t) => Node::Inline(t),
            toml_edit::Value::Array(a) => Node::Array(a),
            _ => Node::Leaf,
        }
    }
}

/// The line for a validation message that starts with a key path (`a.b[2].c: what`), if the
/// text writes any of it.
pub fn line_of_message(text: &str, message: &str) -> Option<usize> {
    let path = path_of_message(message)?;
    line_of_path(text, path)
}

/// The key path a message starts with: everything before the first `: ` outside quotes.
pub fn path_of_message(message: &str) -> Option<&str> {
    let mut quoted = false;
    let bytes = message.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b':' if !quoted && bytes.get(i + 1) == Some(&b' ') => return Some(&message[..i]),
            b' ' if !quoted => return None, // a sentence, not a path
            _ => {}
        }
    }
    None
}

enum Segment {
    Key(String),
    Index(usize),
}

/// `deployments."a/b".limits[0].rpm` → Key(deployments), Key(a/b), Key(limits), Index(0), Key(rpm).
fn segments(path: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut chars = path.chars().peekable();
    let mut key = String::new();
    let flush = |key: &mut String, out: &mut Vec<Segment>| {
        if !key.is_empty() {
            out.push(Segment::Key(std::mem::take(key)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                for q in chars.by_ref() {
                    if q == '"' {
                        break;
                    }
                    key.push(q);
                }
            }
            '.' => flush(&mut key, &mut out),
            '[' => {
                flush(&mut key, &mut out);
                let digits: String = chars.by_ref().take_while(|d| *d != ']').collect();
                match digits.parse() {
                    Ok(i) => out.push(Segment::Index(i)),
                    Err(_) => return out,
                }
            }
            c => key.push(c),
        }
    }
    flush(&mut key, &mut out);
    out
}

fn first_key_span(table: &toml_edit::Table) -> Option<std::ops::Range<usize>> {
    table.iter().filter_map(|(k, _)| table.key(k).and_then(|key| key.span())).min_by_key(|s| s.start)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "seed = 1\n[deployments.\"a/b\"]\npreset = \"p\"\nlimits.rpm = 5\n[[strategy]]\nname = \"x\"\n[[strategy]]\nname = \"y\"\npolicy = { kind = \"single\", chain = [\"a\", \"b\"] }\n";

    #[test]
    fn key_paths_find_their_deepest_written_key() {
        assert_eq!(line_of_path(TEXT, "seed"), Some(1));
        assert_eq!(line_of_path(TEXT, "deployments.\"a/b\".limits.rpm"), Some(4));
        // Not written (a preset's): the deployment's own line.
        assert_eq!(line_of_path(TEXT, "deployments.\"a/b\".latency.ttft_ms"), Some(2));
        assert_eq!(line_of_path(TEXT, "strategy[1].policy.chain[1]"), Some(9));
        assert_eq!(line_of_path(TEXT, "strategy[1].name"), Some(8));
        assert_eq!(line_of_path(TEXT, "nothing.here"), None);
        assert_eq!(line_of_message(TEXT, "strategy[0].name: bad"), Some(6));
        assert_eq!(line_of_message(TEXT, "at least one deployment is required"), None);
    }

    #[test]
    fn syntax_errors_are_one_line_and_never_empty() {
        for text in ["a = [1,\n", "a = 1\n# form\u{c}feed\n", "a = \"x\"\rb = 2\n", "[a]\n[a]\n"] {
            let e = toml::from_str::<toml::Table>(text).unwrap_err();
            let (line, message) = syntax_error(text, &e);
            assert!(line.is_some(), "{text:?}");
            assert!(!message.is_empty() && !message.contains('\n'), "{text:?}: {message:?}");
        }
        let text = "a = 1\n# form\u{c}feed\n";
        let (line, message) = syntax_error(text, &toml::from_str::<toml::Table>(text).unwrap_err());
        assert_eq!(line, Some(2));
        assert!(message.contains("U+000C"), "{message}");
    }
}
