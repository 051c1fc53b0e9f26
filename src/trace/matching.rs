//! The request-matching vocabulary shared by everything that picks requests by their token
//! counts: import class rules ([`super::import::ClassRule`]) and routing rules
//! (`policy::rules::Match`) both ask "is this count within the bounds given?" here.
//!
//! It owns only the checking, not the schema: each caller keeps its own fields (`serde`'s
//! `flatten` cannot be combined with `deny_unknown_fields`, and unknown keys must keep being
//! refused). It must not know about policies, providers or file formats.

/// Inclusive bounds on a token count; a missing bound does not constrain.
///
/// ```
/// use routesim::trace::matching::TokenBounds;
/// let bounds = TokenBounds::new(Some(10), Some(20));
/// assert!(bounds.contains(10) && bounds.contains(20));
/// assert!(!bounds.contains(9) && !bounds.contains(21));
/// assert!(TokenBounds::new(None, None).contains(u64::MAX));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenBounds {
    pub min_tokens: Option<u64>,
    pub max_tokens: Option<u64>,
}

impl TokenBounds {
    /// Bounds from an optional minimum and maximum (both inclusive).
    pub fn new(min_tokens: Option<u64>, max_tokens: Option<u64>) -> TokenBounds {
        TokenBounds { min_tokens, max_tokens }
    }

    /// Whether `tokens` is at least the minimum and at most the maximum, where given.
    pub fn contains(self, tokens: u64) -> bool {
        self.min_tokens.is_none_or(|m| tokens >= m) && self.max_tokens.is_none_or(|m| tokens <= m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_optional() {
        assert!(TokenBounds::default().contains(0));
        assert!(TokenBounds::new(Some(5), None).contains(5));
        assert!(!TokenBounds::new(Some(5), None).contains(4));
        assert!(TokenBounds::new(None, Some(5)).contains(5));
        assert!(!TokenBounds::new(None, Some(5)).contains(6));
        assert!(!TokenBounds::new(Some(6), Some(5)).contains(5), "empty bounds match nothing");
    }
}
