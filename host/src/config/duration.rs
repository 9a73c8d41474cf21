//! `hh:mm:ss[.fraction]` time spans, the format `host.json` users know.

use std::time::Duration;

/// Parses `hh:mm:ss` with an optional fraction of a second (`00:00:00.250`)
/// and an optional leading day count (`1.02:00:00`).
pub fn parse_timespan(text: &str) -> Result<Duration, String> {
    let bad =
        || format!("\"{text}\" is not a time span; expected \"hh:mm:ss\" such as \"00:05:00\"");
    let parts: Vec<&str> = text.trim().split(':').collect();
    let [h, m, s] = parts.as_slice() else {
        return Err(bad());
    };
    let (days, hours) = match h.split_once('.') {
        Some((d, h)) => (d.parse::<u64>().map_err(|_| bad())?, h),
        None => (0, *h),
    };
    let hours: u64 = hours.parse().map_err(|_| bad())?;
    let minutes: u64 = m.parse().map_err(|_| bad())?;
    let (secs, frac) = match s.split_once('.') {
        Some((s, f)) => (s, Some(f)),
        None => (*s, None),
    };
    let secs: u64 = secs.parse().map_err(|_| bad())?;
    if minutes >= 60 || secs >= 60 || hours >= 24 && days > 0 {
        return Err(bad());
    }
    let nanos = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            f.parse::<u32>().map_err(|_| bad())? * 10u32.pow(9 - f.len() as u32)
        }
        Some(_) => return Err(bad()),
    };
    // Unchecked, a span of 2^64 seconds or more wrapped (or panicked in a
    // debug build): "23372036854775808:00:00" read as a short span.
    let total = days
        .checked_mul(24)
        .and_then(|h| h.checked_add(hours))
        .and_then(|h| h.checked_mul(3600))
        .and_then(|s| s.checked_add(minutes * 60 + secs))
        .ok_or_else(|| format!("\"{text}\" is too long a time span"))?;
    Ok(Duration::new(total, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse_timespan("00:05:00"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_timespan("01:00:01"), Ok(Duration::from_secs(3601)));
        assert_eq!(parse_timespan("00:00:00.5"), Ok(Duration::from_millis(500)));
        assert_eq!(
            parse_timespan("00:00:01.250"),
            Ok(Duration::from_millis(1250))
        );
        assert_eq!(
            parse_timespan("1.00:00:00"),
            Ok(Duration::from_secs(86_400))
        );
    }

    #[test]
    fn rejects_malformed_spans() {
        for bad in [
            "",
            "5",
            "00:05",
            "00:60:00",
            "00:00:61",
            "aa:00:00",
            "00:00:01.",
            "00:00:01.x",
        ] {
            assert!(parse_timespan(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn a_span_past_u64_seconds_is_refused_not_wrapped() {
        // Found by the fuzz target `host_json` (a restart window).
        let err = parse_timespan("23372036854775808:0:0").unwrap_err();
        assert!(err.contains("too long"), "{err}");
        assert!(parse_timespan("213503982334602.00:00:00").is_err());
        let max_hours = u64::MAX / 3600;
        assert_eq!(
            parse_timespan(&format!("{max_hours}:00:00")),
            Ok(Duration::from_secs(max_hours * 3600))
        );
    }
}
