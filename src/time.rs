//! Virtual time: the simulator's clock values.
//!
//! Owns [`Instant`] (a point on the virtual clock) and [`Duration`] (a span), both integer
//! microseconds, plus parsing of human durations such as `"250ms"`, `"1.5s"`, `"5m"`, `"24h"`.
//! Integer time keeps every run exact and reproducible; `f64` appears only when reporting.
//! It must not know about the engine: the limiter and policies take an `Instant` as an
//! argument, and a live gateway builds one from the wall clock.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::ops::{Add, AddAssign, Sub};
use std::str::FromStr;

/// Microseconds in one millisecond, second, minute and hour.
pub const MICROS_PER_MS: u64 = 1_000;
pub const MICROS_PER_S: u64 = 1_000_000;
pub const MICROS_PER_MIN: u64 = 60 * MICROS_PER_S;
pub const MICROS_PER_HOUR: u64 = 60 * MICROS_PER_MIN;

/// A point on the virtual clock, in microseconds since the start of the simulation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

/// A non-negative span of virtual time, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(u64);

impl Instant {
    /// The start of the simulation.
    pub const ZERO: Instant = Instant(0);
    /// Later than any instant a simulation reaches; used for "never".
    pub const FAR_FUTURE: Instant = Instant(u64::MAX);

    pub const fn from_micros(micros: u64) -> Self {
        Instant(micros)
    }
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms.saturating_mul(MICROS_PER_MS))
    }
    pub const fn as_micros(self) -> u64 {
        self.0
    }
    /// Milliseconds as a float, for reporting only.
    pub fn as_millis_f64(self) -> f64 {
        self.0 as f64 / MICROS_PER_MS as f64
    }
    /// Time elapsed since `earlier`, or zero if `earlier` is later (a clock step backwards).
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
    /// The index of the whole minute this instant falls in (0 for the first minute).
    pub const fn minute_index(self) -> u64 {
        self.0 / MICROS_PER_MIN
    }
}

impl Duration {
    pub const ZERO: Duration = Duration(0);
    pub const MAX: Duration = Duration(u64::MAX);

    pub const fn from_micros(micros: u64) -> Self {
        Duration(micros)
    }
    pub const fn from_millis(ms: u64) -> Self {
        Duration(ms.saturating_mul(MICROS_PER_MS))
    }
    pub const fn from_secs(s: u64) -> Self {
        Duration(s.saturating_mul(MICROS_PER_S))
    }
    pub const fn from_mins(m: u64) -> Self {
        Duration(m.saturating_mul(MICROS_PER_MIN))
    }
    /// From fractional seconds, rounded to the nearest microsecond; negative and NaN give zero.
    pub fn from_secs_f64(s: f64) -> Self {
        Self::from_millis_f64(s * 1_000.0)
    }
    /// From fractional milliseconds, rounded to the nearest microsecond; negative and NaN give zero.
    pub fn from_millis_f64(ms: f64) -> Self {
        let micros = (ms * MICROS_PER_MS as f64).round();
        if micros.is_nan() || micros <= 0.0 {
            Duration(0)
        } else if micros >= u64::MAX as f64 {
            Duration(u64::MAX)
        } else {
            Duration(micros as u64)
        }
    }
    pub const fn as_micros(self) -> u64 {
        self.0
    }
    pub fn as_millis_f64(self) -> f64 {
        self.0 as f64 / MICROS_PER_MS as f64
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / MICROS_PER_S as f64
    }
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
    pub fn saturating_mul_f64(self, factor: f64) -> Duration {
        Duration::from_millis_f64(self.as_millis_f64() * factor)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_add(rhs.0))
    }
}
impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, rhs: Duration) {
        self.0 = self.0.saturating_add(rhs.0);
    }
}
impl Add for Duration {
    type Output = Duration;
    fn add(self, rhs: Duration) -> Duration {
        Duration(self.0.saturating_add(rhs.0))
    }
}
impl Sub for Duration {
    type Output = Duration;
    /// Saturating: a span is never negative.
    fn sub(self, rhs: Duration) -> Duration {
        Duration(self.0.saturating_sub(rhs.0))
    }
}

/// A duration string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (expected a number with a unit, e.g. \"250ms\", \"1.5s\", \"5m\", \"24h\")")]
pub struct ParseDurationError {
    pub input: String,
    pub reason: &'static str,
}

impl FromStr for Duration {
    type Err = ParseDurationError;

    /// Parses `<number><unit>` with unit `us`, `ms`, `s`, `m`, `h` or `d`; the number may be
    /// fractional. Whitespace around the number is allowed; negative, NaN and infinite are not.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| ParseDurationError { input: input.to_string(), reason };
        let text = input.trim();
        let split = text.find(|c: char| c.is_ascii_alphabetic()).ok_or_else(|| err("missing unit"))?;
        let (number, unit) = text.split_at(split);
        let number = number.trim();
        if number.is_empty() {
            return Err(err("missing number"));
        }
        if number.starts_with('-') {
            return Err(err("negative durations are not allowed"));
        }
        let value: f64 = number.parse().map_err(|_| err("not a number"))?;
        if !value.is_finite() {
            return Err(err("not a finite number"));
        }
        let micros_per_unit = match unit {
            "us" | "µs" => 1,
            "ms" => MICROS_PER_MS,
            "s" => MICROS_PER_S,
            "m" | "min" => MICROS_PER_MIN,
            "h" => MICROS_PER_HOUR,
            "d" => 24 * MICROS_PER_HOUR,
            _ => return Err(err("unknown unit (use us, ms, s, m, h or d)")),
        };
        let micros = (value * micros_per_unit as f64).round();
        if micros > u64::MAX as f64 {
            return Err(err("too large"));
        }
        Ok(Duration(micros as u64))
    }
}

impl fmt::Display for Duration {
    /// The shortest exact form among `h`, `m`, `s`, `ms`, `us`: parses back to the same value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.0;
        for (unit, per) in
            [("h", MICROS_PER_HOUR), ("m", MICROS_PER_MIN), ("s", MICROS_PER_S), ("ms", MICROS_PER_MS)]
        {
            if micros >= per && micros.is_multiple_of(per) {
                return write!(f, "{}{unit}", micros / per);
            }
        }
        if micros >= MICROS_PER_S {
            return write!(f, "{}s", micros as f64 / MICROS_PER_S as f64);
        }
        write!(f, "{micros}us")
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t+{}", Duration(self.0))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    /// Durations in configuration files are strings with a unit: `"250ms"`, `"1.5s"`, `"5m"`.
    /// A bare number is refused because its unit would be a guess.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration string with a unit, e.g. \"250ms\", \"1.5s\", \"5m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!("250ms".parse::<Duration>().unwrap(), Duration::from_millis(250));
        assert_eq!("1.5s".parse::<Duration>().unwrap(), Duration::from_millis(1_500));
        assert_eq!("5m".parse::<Duration>().unwrap(), Duration::from_secs(300));
        assert_eq!("24h".parse::<Duration>().unwrap(), Duration::from_secs(86_400));
        assert_eq!("7us".parse::<Duration>().unwrap(), Duration::from_micros(7));
        assert_eq!(" 2 s ".parse::<Duration>().unwrap(), Duration::from_secs(2));
        assert_eq!("1d".parse::<Duration>().unwrap(), Duration::from_secs(86_400));
    }

    #[test]
    fn refuses_bad_durations_with_a_reason() {
        for bad in ["", "5", "ms", "-1s", "1.5x", "NaNs", "infs", "1e400s"] {
            let err = bad.parse::<Duration>().unwrap_err();
            assert_eq!(err.input, bad);
        }
        assert_eq!("-1s".parse::<Duration>().unwrap_err().reason, "negative durations are not allowed");
    }

    #[test]
    fn display_round_trips() {
        for micros in [0, 1, 999, 1_000, 1_500, 1_000_000, 1_500_000, 60_000_000, 90_000_000, 3_600_000_000] {
            let d = Duration::from_micros(micros);
            assert_eq!(d.to_string().parse::<Duration>().unwrap(), d, "{d}");
        }
        assert_eq!(Duration::from_millis(1_500).to_string(), "1500ms");
        assert_eq!(Duration::from_secs(300).to_string(), "5m");
    }

    #[test]
    fn arithmetic_saturates_instead_of_wrapping() {
        assert_eq!(Instant::FAR_FUTURE + Duration::from_secs(1), Instant::FAR_FUTURE);
        assert_eq!(Duration::from_secs(1) - Duration::from_secs(2), Duration::ZERO);
        assert_eq!(Instant::from_millis(5).saturating_since(Instant::from_millis(9)), Duration::ZERO);
        assert_eq!(Instant::from_millis(61_000).minute_index(), 1);
        assert_eq!(Duration::from_millis_f64(f64::NAN), Duration::ZERO);
        assert_eq!(Duration::from_millis_f64(-3.0), Duration::ZERO);
        assert_eq!(Duration::from_millis_f64(1.0004), Duration::from_micros(1_000));
    }
}
