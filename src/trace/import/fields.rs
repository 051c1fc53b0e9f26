//! Field parsing shared by the import sources: token counts, decimal times in a unit, and
//! calendar date-times (UTC, microseconds from the epoch), each failing with a [`FieldError`]
//! that names the field before the file and line are attached.
//!
//! It must not know about file formats, layouts or the import pipeline.

use super::TimeUnit;
use crate::time::{MICROS_PER_MS, MICROS_PER_S};
use crate::validate::is_non_negative;

/// A problem in one field, before file and line are attached.
pub(super) struct FieldError {
    pub(super) field: String,
    pub(super) message: String,
}

pub(super) fn field_error(field: &str, message: String) -> FieldError {
    FieldError { field: field.to_string(), message }
}

/// A token count in a JSON value: an integer, a whole float (`512.0`) or a numeric string.
pub(super) fn json_count(field: &str, value: &serde_json::Value) -> Result<u64, FieldError> {
    match value {
        serde_json::Value::Number(n) => parse_count(field, &n.to_string()),
        serde_json::Value::String(s) => parse_count(field, s),
        other => Err(field_error(
            field,
            format!("expected a non-negative integer, got {}", crate::trace::elide(&other.to_string())),
        )),
    }
}

/// A text in a JSON value: a string (empty or blank is none), a number or a boolean as
/// written, null as none; an array or object is an error.
pub(super) fn json_text(field: &str, value: &serde_json::Value) -> Result<Option<String>, FieldError> {
    match value {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) => Ok((!s.trim().is_empty()).then(|| s.trim().to_string())),
        serde_json::Value::Number(n) => Ok(Some(n.to_string())),
        serde_json::Value::Bool(b) => Ok(Some(b.to_string())),
        other => Err(field_error(
            field,
            format!("expected a string, got {}", crate::trace::elide(&other.to_string())),
        )),
    }
}

/// A calendar date-time in a JSON string, µs since the epoch (see [`parse_datetime_us`]).
pub(super) fn json_datetime(field: &str, value: &serde_json::Value) -> Result<i64, FieldError> {
    match value {
        serde_json::Value::String(s) => parse_time(field, s, TimeUnit::Datetime),
        other => Err(field_error(
            field,
            format!(
                "expected a date-time string like \"2025-01-15T10:00:00.123Z\", got {}",
                crate::trace::elide(&other.to_string())
            ),
        )),
    }
}

pub(super) fn parse_count(field: &str, text: &str) -> Result<u64, FieldError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(field_error(field, "required value is empty".into()));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| field_error(field, format!("{text:?} is too large")));
    }
    // Some exports write counts as floats ("512.0"): accept whole values only.
    match text.parse::<f64>() {
        Ok(v) if is_non_negative(v) && v.fract() == 0.0 && v < 1e18 => Ok(v as u64),
        _ => Err(field_error(field, format!("expected a non-negative integer, got {text:?}"))),
    }
}

/// A decimal number of `unit`s, in µs.
pub(super) fn parse_number_time(field: &str, text: &str, unit_us: f64) -> Result<i64, FieldError> {
    let text = text.trim();
    match text.parse::<f64>() {
        Ok(v) if is_non_negative(v) && v * unit_us < 9.0e18 => Ok((v * unit_us).round() as i64),
        _ => Err(field_error(field, format!("expected a non-negative finite number, got {text:?}"))),
    }
}

pub(super) fn parse_time(field: &str, text: &str, unit: TimeUnit) -> Result<i64, FieldError> {
    match unit {
        TimeUnit::S => parse_number_time(field, text, MICROS_PER_S as f64),
        TimeUnit::Ms => parse_number_time(field, text, MICROS_PER_MS as f64),
        TimeUnit::Us => parse_number_time(field, text, 1.0),
        TimeUnit::Ns => parse_number_time(field, text, 1e-3),
        TimeUnit::Datetime => parse_datetime_us(text.trim())
            .ok_or_else(|| field_error(field, format!("expected a date-time like \"2023-11-16 18:17:03.97996\" or \"2024-05-10 00:00:00.009930+00:00\", got {:?}", text.trim()))),
    }
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian; Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD[ T]HH:MM:SS[.fraction][Z|±HH:MM]` → µs since the Unix epoch (UTC). Fractions
/// beyond µs are rounded (Azure 2023 writes 100 ns digits).
pub fn parse_datetime_us(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(range)?;
        if s.bytes().all(|c| c.is_ascii_digit()) && !s.is_empty() {
            s.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b' ' || b[10] == b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut micros: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let digits_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &text[digits_start..i];
        if digits.is_empty() {
            return None;
        }
        let mut scaled: i64 = 0;
        for k in 0..6 {
            scaled = scaled * 10 + digits.as_bytes().get(k).map_or(0, |d| i64::from(d - b'0'));
        }
        if digits.as_bytes().get(6).is_some_and(|&d| d >= b'5') {
            scaled += 1;
        }
        micros = scaled;
    }
    let offset_s = match b.get(i) {
        None => 0,
        Some(b'Z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
            let s = (num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?) * 60;
            if sign == b'+' {
                s
            } else {
                -s
            }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second - offset_s;
    Some(seconds * MICROS_PER_S as i64 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_to_epoch_microseconds() {
        // Epoch seconds computed independently (Python's datetime, UTC).
        assert_eq!(parse_datetime_us("2023-11-16 18:17:03.9799600"), Some(1_700_158_623_979_960));
        assert_eq!(parse_datetime_us("2024-05-10 00:00:00.009930+00:00"), Some(1_715_299_200_009_930));
        assert_eq!(parse_datetime_us("2024-05-10T02:00:00.5+02:00"), Some(1_715_299_200_500_000));
        assert_eq!(parse_datetime_us("2000-02-29 23:59:59Z"), Some(951_868_799_000_000));
        // The 7th fractional digit rounds: 0.0000005 s → 1 µs.
        assert_eq!(parse_datetime_us("1970-01-01 00:00:00.0000005"), Some(1));
        for bad in ["2023-13-01 00:00:00", "2023-11-16", "2023-11-16 18:17:03.", "2023-11-16 18:17:03+1", "x"]
        {
            assert_eq!(parse_datetime_us(bad), None, "{bad}");
        }
    }
}
