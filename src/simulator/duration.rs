//! ISO-8601 durations as sent in the `mas-jwt-expiry-duration` request header.

use std::time::Duration;

use thiserror::Error;

const SECONDS_PER_MINUTE: f64 = 60.0;
const SECONDS_PER_HOUR: f64 = 3_600.0;
const SECONDS_PER_DAY: f64 = 86_400.0;
const SECONDS_PER_WEEK: f64 = 7.0 * SECONDS_PER_DAY;
// NOTE: ISO-8601 leaves the length of a year and a month to the calendar. MAS does not say how
// it counts them, so the simulator uses 365 and 30 days.
const SECONDS_PER_MONTH: f64 = 30.0 * SECONDS_PER_DAY;
const SECONDS_PER_YEAR: f64 = 365.0 * SECONDS_PER_DAY;

/// Reasons an ISO-8601 duration is rejected.
#[derive(Debug, Error, PartialEq)]
pub enum DurationError {
    #[error("ISO-8601 duration {value:?} must start with 'P', for example PT1H or P1D")]
    MissingDesignator { value: String },
    #[error("ISO-8601 duration {value:?} has no components, for example PT30S")]
    Empty { value: String },
    #[error("ISO-8601 duration {value:?} has an invalid component at byte {position}")]
    InvalidComponent { value: String, position: usize },
    #[error("ISO-8601 duration {value:?} is too long to represent")]
    Overflow { value: String },
}

/// Parses an ISO-8601 duration such as `PT1H`, `PT30S`, `P1DT12H` or `P2W`.
///
/// Components must appear in the standard order (`Y M W D` before `T`, `H M S` after it);
/// the seconds component may have a fraction (`PT1.5S`, or `PT1,5S`). Negative durations
/// are not part of the format and are rejected.
pub fn parse_iso8601_duration(value: &str) -> Result<Duration, DurationError> {
    let Some(rest) = value.strip_prefix('P') else {
        return Err(DurationError::MissingDesignator {
            value: value.to_owned(),
        });
    };

    let (date_part, time_part) = match rest.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (rest, None),
    };
    let time_offset = value.len() - time_part.map_or(0, str::len);

    let mut total_seconds = 0.0;
    let mut components = 0;
    let date_units = [
        ('Y', SECONDS_PER_YEAR),
        ('M', SECONDS_PER_MONTH),
        ('W', SECONDS_PER_WEEK),
        ('D', SECONDS_PER_DAY),
    ];
    components += add_components(value, date_part, 1, &date_units, &mut total_seconds)?;

    if let Some(time_part) = time_part {
        let time_units = [
            ('H', SECONDS_PER_HOUR),
            ('M', SECONDS_PER_MINUTE),
            ('S', 1.0),
        ];
        let time_components = add_components(
            value,
            time_part,
            time_offset,
            &time_units,
            &mut total_seconds,
        )?;
        if time_components == 0 {
            return Err(DurationError::Empty {
                value: value.to_owned(),
            });
        }
        components += time_components;
    }

    if components == 0 {
        return Err(DurationError::Empty {
            value: value.to_owned(),
        });
    }
    Duration::try_from_secs_f64(total_seconds).map_err(|_| DurationError::Overflow {
        value: value.to_owned(),
    })
}

/// Adds the `<number><unit>` components of one part (date or time) to `total_seconds` and
/// returns how many there were. `units` lists the allowed units in their required order.
fn add_components(
    value: &str,
    part: &str,
    offset: usize,
    units: &[(char, f64)],
    total_seconds: &mut f64,
) -> Result<usize, DurationError> {
    let invalid = |position: usize| DurationError::InvalidComponent {
        value: value.to_owned(),
        position: offset + position,
    };

    let mut next_unit = 0;
    let mut count = 0;
    let mut start = 0;
    for (position, character) in part.char_indices() {
        if character.is_ascii_digit() || character == '.' || character == ',' {
            continue;
        }
        let number = &part[start..position];
        let unit_index = units[next_unit..]
            .iter()
            .position(|(unit, _)| *unit == character)
            .map(|index| index + next_unit)
            .ok_or_else(|| invalid(position))?;
        let is_seconds = units[unit_index].0 == 'S';
        let amount = parse_number(number, is_seconds).ok_or_else(|| invalid(start))?;

        *total_seconds += amount * units[unit_index].1;
        next_unit = unit_index + 1;
        count += 1;
        start = position + character.len_utf8();
    }

    if start != part.len() {
        return Err(invalid(start));
    }
    Ok(count)
}

/// Parses a non-negative component number; only seconds may carry a fraction.
fn parse_number(number: &str, allow_fraction: bool) -> Option<f64> {
    let normalized = number.replace(',', ".");
    let (whole, fraction) = match normalized.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (normalized.as_str(), None),
    };
    let digits_only = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());

    if !digits_only(whole) {
        return None;
    }
    if let Some(fraction) = fraction
        && (!allow_fraction || !digits_only(fraction))
    {
        return None;
    }
    normalized.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let cases = [
            ("PT1H", 3_600.0),
            ("PT30S", 30.0),
            ("PT0S", 0.0),
            ("P1D", 86_400.0),
            ("P1DT12H", 129_600.0),
            ("PT1H30M", 5_400.0),
            ("P2W", 1_209_600.0),
            ("PT1.5S", 1.5),
            ("PT1,5S", 1.5),
            ("P1M", 2_592_000.0),
            ("P1Y", 31_536_000.0),
        ];
        for (text, seconds) in cases {
            let parsed = parse_iso8601_duration(text).unwrap();
            assert_eq!(parsed.as_secs_f64(), seconds, "{text}");
        }
    }

    #[test]
    fn rejects_invalid_forms() {
        let cases = [
            "", "1H", "P", "PT", "PT1", "PT1X", "P1H", "PTS", "PT-1S", "PT1M1H", "P1.5D", "PT1.S",
            "P1DT", "pt1h",
        ];
        for text in cases {
            assert!(parse_iso8601_duration(text).is_err(), "{text:?} accepted");
        }
    }

    #[test]
    fn error_names_position() {
        let error = parse_iso8601_duration("PT5X").unwrap_err();
        assert_eq!(
            error,
            DurationError::InvalidComponent {
                value: "PT5X".to_owned(),
                position: 3
            }
        );
    }
}
