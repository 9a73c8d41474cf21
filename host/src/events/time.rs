//! Timestamps as the APIs show them: milliseconds since the Unix epoch in
//! storage, RFC 3339 (`2026-11-23T04:01:23.123Z`) on the admin API,
//! `2026-11-23 04:01:23.123` (UTC) on the SCF-compatible API.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in ms since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// (year, month, day) → days since 1970-01-01.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn parts(ms: i64) -> (i64, u32, u32, i64, i64, i64, i64) {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, mo, d) = civil_from_days(days);
    (
        y,
        mo,
        d,
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    )
}

/// `2026-11-23T04:01:23.123Z`.
pub fn rfc3339(ms: i64) -> String {
    let (y, mo, d, h, mi, s, milli) = parts(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// `2026-11-23 04:01:23.123` (UTC).
pub fn scf(ms: i64) -> String {
    let (y, mo, d, h, mi, s, milli) = parts(ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{milli:03}")
}

/// Parses ms since the epoch, RFC 3339 (`...Z`, `z` or a `±HH:MM`
/// offset), or `YYYY-MM-DD HH:MM:SS[.fff]` (UTC).
pub fn parse(text: &str) -> Option<i64> {
    // Only times RFC 3339 can write back: years 0001 to 9999.
    const FIRST_MS: i64 = -62_135_596_800_000; // 0001-01-01T00:00:00Z
    const LAST_MS: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    parse_unbounded(text).filter(|ms| (FIRST_MS..=LAST_MS).contains(ms))
}

fn parse_unbounded(text: &str) -> Option<i64> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().ok();
    }
    let (t, offset_ms) = split_offset(t)?;
    let (date, time) = t.split_once(['T', 't', ' '])?;
    let mut dp = date.split('-');
    let (y, mo, d): (i64, u32, u32) = (
        dp.next()?.parse().ok()?,
        dp.next()?.parse().ok()?,
        dp.next()?.parse().ok()?,
    );
    if dp.next().is_some()
        || !(1..=9999).contains(&y)
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
    {
        return None;
    }
    let (hms, frac) = match time.split_once('.') {
        Some((a, f)) => (a, Some(f)),
        None => (time, None),
    };
    let mut tp = hms.split(':');
    let (h, mi, s): (i64, i64, i64) = (
        tp.next()?.parse().ok()?,
        tp.next()?.parse().ok()?,
        tp.next()?.parse().ok()?,
    );
    // Signs are not digits: "-00125367790" minutes once read as a time
    // decades before year 1 (found by the fuzz target `list_query`).
    let fields = [date, hms];
    if fields.iter().any(|f| f.contains('+'))
        || [h, mi, s].iter().any(|n| *n < 0)
        || date
            .split('-')
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
        || hms
            .split(':')
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    if tp.next().is_some() || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let milli = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
            let f3: String = f.chars().chain("000".chars()).take(3).collect();
            f3.parse().ok()?
        }
        Some(_) => return None,
    };
    let local =
        days_from_civil(y, mo, d) * 86_400_000 + h * 3_600_000 + mi * 60_000 + s * 1000 + milli;
    Some(local - offset_ms)
}

/// The text before a time's zone designator, and the zone's offset from
/// UTC in ms (none: UTC). `None` when an offset is malformed.
fn split_offset(t: &str) -> Option<(&str, i64)> {
    if let Some(rest) = t.strip_suffix(['Z', 'z']) {
        return Some((rest, 0));
    }
    // `±HH:MM` after the time (a date's own `-` comes before the `T`).
    let b = t.as_bytes();
    if b.len() > 6 && matches!(b[b.len() - 6], b'+' | b'-') && b[b.len() - 3] == b':' {
        let (rest, zone) = t.split_at(t.len() - 6);
        if !rest.contains(['T', 't', ' ']) {
            return Some((t, 0));
        }
        let hours: i64 = zone[1..3].parse().ok()?;
        let minutes: i64 = zone[4..6].parse().ok()?;
        if !zone[1..3].bytes().all(|c| c.is_ascii_digit())
            || !zone[4..6].bytes().all(|c| c.is_ascii_digit())
            || hours > 23
            || minutes > 59
        {
            return None;
        }
        let ms = (hours * 60 + minutes) * 60_000;
        return Some((rest, if zone.starts_with('-') { -ms } else { ms }));
    }
    Some((t, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        let ms = 1_795_406_483_123; // 2026-11-23T04:01:23.123Z
        assert_eq!(rfc3339(ms), "2026-11-23T04:01:23.123Z");
        assert_eq!(scf(ms), "2026-11-23 04:01:23.123");
        assert_eq!(parse("2026-11-23T04:01:23.123Z"), Some(ms));
        assert_eq!(parse("2026-11-23 04:01:23.123"), Some(ms));
        assert_eq!(parse("2026-11-23 04:01:23"), Some(ms - 123));
        // Any offset, and RFC 3339's lower-case designators.
        assert_eq!(parse("2026-11-23T06:31:23.123+02:30"), Some(ms));
        assert_eq!(parse("2026-11-22T23:01:23.123-05:00"), Some(ms));
        assert_eq!(parse("2026-11-23t04:01:23.123z"), Some(ms));
        assert_eq!(parse("2026-11-23T04:01:23.123+24:00"), None);
        assert_eq!(parse("2026-11-23T04:01:23.123+0x:00"), None);
        assert_eq!(parse(&ms.to_string()), Some(ms));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            parse("2024-02-29T12:00:00Z").map(rfc3339).as_deref(),
            Some("2024-02-29T12:00:00.000Z")
        );
    }

    #[test]
    fn signed_fields_and_years_outside_0001_to_9999_are_refused() {
        // The fuzz target's find: negative minutes and seconds.
        assert_eq!(parse("207-1-23T0:-00125367790:-00125367677"), None);
        assert_eq!(parse("2026-12-04T+1:00:00Z"), None);
        assert_eq!(parse("2026-+12-04T01:00:00Z"), None);
        assert_eq!(
            parse("0001-01-01T00:00:00+00:30"),
            None,
            "before year 1 in UTC"
        );
        assert_eq!(parse("253402300800000"), None, "after 9999 as ms");
        assert_eq!(parse("0001-01-01T00:00:00Z"), Some(-62_135_596_800_000));
        assert_eq!(parse("253402300799999"), Some(253_402_300_799_999));
        for ms in [-62_135_596_800_000, 0, 253_402_300_799_999] {
            assert_eq!(parse(&rfc3339(ms)), Some(ms), "{}", rfc3339(ms));
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "yesterday",
            "300000000000-01-01T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-23",
            "2026-11-23T25:00:00Z",
            "2026-11-23T01:02:03.x",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
