//! The number checks every validator shares (scenario deployments, policies, the distribution
//! and generator configs, sweep axes, command-line flags, trace fields, recorded headers and
//! the fits of `sim calibrate`): what "a finite number >= 0", "> 0" and "a probability" mean,
//! decided in one place.
//!
//! It owns only the predicates; each caller keeps its own error type and message, which name
//! the field in the caller's terms. It must not know about any schema.

/// Finite and `>= 0` (NaN and infinities are refused).
pub fn is_non_negative(x: f64) -> bool {
    x.is_finite() && x >= 0.0
}

/// Finite and `> 0`.
pub fn is_positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

/// In `[0, 1]` (NaN refused).
pub fn is_probability(x: f64) -> bool {
    (0.0..=1.0).contains(&x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_and_infinities_are_refused_everywhere() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(!is_non_negative(bad) && !is_positive(bad) && !is_probability(bad), "{bad}");
        }
        assert!(is_non_negative(0.0) && !is_positive(0.0) && is_probability(0.0));
        assert!(is_probability(1.0) && !is_probability(1.0 + f64::EPSILON));
        assert!(!is_non_negative(-0.1) && !is_probability(-0.1));
    }
}
