//! Timer trigger schedules, as Azure Functions' `timerTrigger` `schedule`
//! accepts them: a six-field NCRONTAB expression
//! (`second minute hour day month day-of-week`) or a TimeSpan
//! `[d.]hh:mm:ss` (`00:05:00`, `1.00:00:00`).
//!
//! All times are UTC, in milliseconds since the Unix epoch.
//!
//! Day matching follows NCRONTAB, which Azure uses: a time matches only if
//! BOTH its day of the month AND its day of the week match. This differs
//! from Vixie cron, which fires when either one matches (when both are
//! restricted). So `0 0 12 13 * Fri` fires at noon on each Friday the 13th
//! only. A `*` field matches every value, so `0 0 9 * * Mon-Fri` fires on
//! every weekday.

use std::fmt;
use std::time::Duration;

use crate::events::time::{civil_from_days, days_from_civil};

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// A six-field NCRONTAB expression.
    Cron(Cron),
    /// A fixed interval (a TimeSpan): each occurrence is this long after the
    /// previous one.
    Every(Duration),
}

/// A six-field NCRONTAB expression.
///
/// Each field is a bitset: bit `n` is set when value `n` matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    /// The expression as written, trimmed.
    text: String,
    /// Seconds, bits 0..=59.
    seconds: u64,
    /// Minutes, bits 0..=59.
    minutes: u64,
    /// Hours, bits 0..=23.
    hours: u32,
    /// Days of the month, bits 1..=31.
    days_of_month: u32,
    /// Months, bits 1..=12.
    months: u16,
    /// Days of the week, bits 0..=6, Sunday = 0.
    days_of_week: u8,
}

/// How one cron field is written and what it accepts.
struct Field {
    /// The field's name in error messages.
    name: &'static str,
    /// The smallest value; also the value of `names[0]`.
    min: u32,
    /// The largest value `*` and `N/STEP` reach.
    max: u32,
    /// The largest value accepted when written (7 for day-of-week).
    limit: u32,
    /// Three-letter names, matched case-insensitively.
    names: &'static [&'static str],
}

/// Month names; `Jan` is 1.
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
/// Day names; `Sun` is 0.
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// The six fields, in order.
#[rustfmt::skip]
const FIELDS: [Field; 6] = [
    Field { name: "second", min: 0, max: 59, limit: 59, names: &[] },
    Field { name: "minute", min: 0, max: 59, limit: 59, names: &[] },
    Field { name: "hour", min: 0, max: 23, limit: 23, names: &[] },
    Field { name: "day", min: 1, max: 31, limit: 31, names: &[] },
    Field { name: "month", min: 1, max: 12, limit: 12, names: &MONTHS },
    Field { name: "day-of-week", min: 0, max: 6, limit: 7, names: &WEEKDAYS },
];

/// How far `next_after` searches a cron schedule: 5 years (with 2 leap days), in s.
const HORIZON_S: i64 = (5 * 365 + 2) * 86_400;

impl Schedule {
    /// Parses `text`: an NCRONTAB expression of six fields (second minute hour day-of-month month day-of-week), or a TimeSpan `[d.]hh:mm:ss` (as Azure allows, e.g. `00:05:00`, `1.00:00:00`).
    /// Errors are one sentence naming what is wrong, e.g. `"61 * * * * *": second 61 is out of range 0-59`, `"* * * * *": 5 fields; a schedule has 6 (second minute hour day month day-of-week) or is a TimeSpan such as 00:05:00`, `"": empty`.
    ///
    /// Text with a `:` and no whitespace is read as a TimeSpan; anything
    /// else as NCRONTAB. Fields are separated by spaces or tabs.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let t = text.trim_matches([' ', '\t', '\r', '\n']);
        let parsed = if t.is_empty() {
            Err("empty".to_owned())
        } else if t.contains(':') && !t.contains([' ', '\t']) {
            parse_timespan(t).map(Schedule::Every)
        } else {
            parse_cron(t).map(Schedule::Cron)
        };
        parsed.map_err(|e| format!("{text:?}: {e}"))
    }

    /// The first occurrence strictly after `after_ms` (UTC). For `Every(d)`: `after_ms + d` (the caller passes the last occurrence). For `Cron`: the next whole second that matches; None if none within the next 5 years (e.g. `0 0 0 30 2 *`).
    ///
    /// For `Every(d)`, `d` is rounded down to whole milliseconds; the result
    /// is None if that is zero or the sum overflows.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        match self {
            Schedule::Every(d) => {
                let ms = i64::try_from(d.as_millis()).ok().filter(|&ms| ms > 0)?;
                after_ms.checked_add(ms)
            }
            Schedule::Cron(c) => c.next_after(after_ms),
        }
    }
}

impl fmt::Display for Schedule {
    /// A cron schedule as written; an interval as `hh:mm:ss` or
    /// `d.hh:mm:ss` (with `.fff` milliseconds if it has a fraction).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Cron(c) => f.write_str(&c.text),
            Schedule::Every(d) => {
                let s = d.as_secs();
                let (days, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
                if days > 0 {
                    write!(f, "{days}.")?;
                }
                write!(f, "{h:02}:{m:02}:{s:02}")?;
                if d.subsec_nanos() != 0 {
                    write!(f, ".{:03}", d.subsec_millis())?;
                }
                Ok(())
            }
        }
    }
}

impl Cron {
    /// The first matching whole second strictly after `after_ms`, in ms;
    /// None if there is none within five years.
    fn next_after(&self, after_ms: i64) -> Option<i64> {
        let mut t = after_ms.div_euclid(1000) + 1;
        let end = t.saturating_add(HORIZON_S);
        while t <= end {
            let days = t.div_euclid(86_400);
            let sod = t.rem_euclid(86_400);
            let (y, mo, d) = civil_from_days(days);
            if self.months & (1 << mo) == 0 {
                let (ny, nm) = if mo == 12 { (y + 1, 1) } else { (y, mo + 1) };
                t = days_from_civil(ny, nm, 1) * 86_400;
                continue;
            }
            // 1970-01-01 (day 0) was a Thursday (4).
            let dow = (days + 4).rem_euclid(7);
            if self.days_of_month & (1 << d) == 0 || self.days_of_week & (1 << dow) == 0 {
                t = (days + 1) * 86_400;
                continue;
            }
            let (h, mi, s) = (sod / 3600, sod / 60 % 60, sod % 60);
            if self.hours & (1 << h) == 0 {
                t = days * 86_400 + (h + 1) * 3600;
            } else if self.minutes & (1 << mi) == 0 {
                t = days * 86_400 + h * 3600 + (mi + 1) * 60;
            } else if self.seconds & (1 << s) == 0 {
                t += 1;
            } else {
                return t.checked_mul(1000);
            }
        }
        None
    }
}

/// Parses a trimmed, non-empty NCRONTAB expression.
fn parse_cron(t: &str) -> Result<Cron, String> {
    let parts: Vec<&str> = t.split([' ', '\t']).filter(|p| !p.is_empty()).collect();
    if parts.len() != FIELDS.len() {
        let n = parts.len();
        let noun = if n == 1 { "field" } else { "fields" };
        return Err(format!(
            "{n} {noun}; a schedule has 6 (second minute hour day month day-of-week) \
             or is a TimeSpan such as 00:05:00"
        ));
    }
    let mut bits = [0u64; 6];
    for ((b, field), part) in bits.iter_mut().zip(&FIELDS).zip(&parts) {
        *b = parse_field(field, part)?;
    }
    // 7 is another way to write Sunday (0).
    let dow = (bits[5] | (bits[5] >> 7)) & 0x7f;
    Ok(Cron {
        text: t.to_owned(),
        seconds: bits[0],
        minutes: bits[1],
        hours: bits[2] as u32,
        days_of_month: bits[3] as u32,
        months: bits[4] as u16,
        days_of_week: dow as u8,
    })
}

/// Parses one field (`*`, `N`, `N-M`, each optionally `/STEP`, comma-separated)
/// into a bitset.
fn parse_field(f: &Field, text: &str) -> Result<u64, String> {
    let name = f.name;
    let mut bits = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!("{name} field {text} has an empty item"));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        let step = match step {
            None => 1,
            Some(s) => match s.parse::<u32>() {
                Ok(0) => return Err(format!("{name} step 0 in {item} must be at least 1")),
                Ok(n) if s.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(format!("{name} step {s:?} in {item} is not a number")),
            },
        };
        let (lo, hi) = if range == "*" {
            (f.min, f.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (lo, hi) = (value(f, a)?, value(f, b)?);
            if lo > hi {
                return Err(format!("{name} range {range} runs backwards ({lo} > {hi})"));
            }
            (lo, hi)
        } else {
            let n = value(f, range)?;
            if item.contains('/') {
                (n, f.max.max(n))
            } else {
                (n, n)
            }
        };
        for v in (lo..=hi).step_by(step as usize) {
            bits |= 1 << v;
        }
    }
    Ok(bits)
}

/// Parses one value of field `f`: a number or (for month and day-of-week) a
/// three-letter name, checked against the field's range.
fn value(f: &Field, text: &str) -> Result<u32, String> {
    let name = f.name;
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(v) if (f.min..=f.limit).contains(&v) => Ok(v),
            _ => Err(format!(
                "{name} {text} is out of range {}-{}",
                f.min, f.limit
            )),
        };
    }
    if let Some(i) = f.names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        return Ok(f.min + i as u32);
    }
    match (f.names.first(), f.names.last()) {
        (Some(a), Some(z)) => Err(format!("{name} {text:?} is not a number or a name {a}-{z}")),
        _ => Err(format!("{name} {text:?} is not a number")),
    }
}

/// Parses a trimmed TimeSpan `[d.]hh:mm:ss` into a non-zero duration.
fn parse_timespan(t: &str) -> Result<Duration, String> {
    let shape = "a TimeSpan is [d.]hh:mm:ss, such as 00:05:00 or 1.00:00:00";
    let (days, hms) = match t.split_once('.') {
        Some((d, _)) if d.contains(':') => {
            return Err(format!("fractions of a second are not supported; {shape}"));
        }
        Some((d, rest)) => (Some(number("day", d)?), rest),
        None => (None, t),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    let [h, m, s] = parts[..] else {
        return Err(format!("{} parts separated by ':'; {shape}", parts.len()));
    };
    let (h, m, s) = (
        number("hour", h)?,
        number("minute", m)?,
        number("second", s)?,
    );
    // .NET reads `24:00:00` as 24 days, not hours: refused rather than
    // guessed either way.
    if h >= 24 {
        return Err(format!(
            "hour {h} is out of range 0-23 (write a day as 1.00:00:00)"
        ));
    }
    if m >= 60 {
        return Err(format!("minute {m} is out of range 0-59"));
    }
    if s >= 60 {
        return Err(format!("second {s} is out of range 0-59"));
    }
    let total = days
        .unwrap_or(0)
        .checked_mul(86_400)
        .and_then(|d| d.checked_add(h.checked_mul(3600)?))
        .and_then(|x| x.checked_add(m * 60 + s))
        .filter(|&x| x <= i64::MAX as u64 / 1000)
        .ok_or_else(|| "the TimeSpan is too long".to_owned())?;
    if total == 0 {
        return Err("a TimeSpan of zero length would never advance".to_owned());
    }
    Ok(Duration::from_secs(total))
}

/// Parses one all-digit TimeSpan part named `name`.
fn number(name: &str, text: &str) -> Result<u64, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("TimeSpan {name} {text:?} is not a number"));
    }
    text.parse()
        .map_err(|_| format!("TimeSpan {name} {text} is too large"))
}

/// Tests.
#[cfg(test)]
mod tests {
    use super::*;

    /// UTC civil time → ms since the epoch.
    fn at(y: i64, mo: u32, d: u32, h: i64, mi: i64, s: i64) -> i64 {
        (days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s) * 1000
    }

    /// Parses `text`, which must be a cron schedule.
    fn cron_bits(text: &str) -> Cron {
        let Ok(Schedule::Cron(c)) = Schedule::parse(text) else {
            panic!("{text:?} is not a cron schedule");
        };
        c
    }

    /// Parses `text`, which must be a cron schedule, as a [`Schedule`].
    fn cron(text: &str) -> Schedule {
        Schedule::Cron(cron_bits(text))
    }

    /// A UTC civil time `(y, mo, d, h, mi, s)`.
    type Civil = (i64, u32, u32, i64, i64, i64);

    #[test]
    fn cron_next_after() {
        let ms = |(y, mo, d, h, mi, s): Civil| at(y, mo, d, h, mi, s);
        // 2026-01-01 was a Thursday: 01-03 is a Saturday, 01-04 a Sunday.
        #[rustfmt::skip]
        let cases: &[(&str, Civil, Option<Civil>)] = &[
            ("*/2 * * * * *", (2026, 1, 1, 10, 0, 2), Some((2026, 1, 1, 10, 0, 4))),
            ("0 */5 * * * *", (2026, 1, 1, 10, 3, 7), Some((2026, 1, 1, 10, 5, 0))),
            ("0 */5 * * * *", (2026, 1, 1, 23, 59, 0), Some((2026, 1, 2, 0, 0, 0))),
            ("0 0 9 * * Mon-Fri", (2026, 1, 3, 10, 0, 0), Some((2026, 1, 5, 9, 0, 0))),
            ("0 0 9 * * Mon-Fri", (2026, 1, 5, 9, 0, 0), Some((2026, 1, 6, 9, 0, 0))),
            ("0 30 4 1 Jan *", (2026, 1, 1, 5, 0, 0), Some((2027, 1, 1, 4, 30, 0))),
            ("0 30 4 1 Jan *", (2026, 6, 15, 0, 0, 0), Some((2027, 1, 1, 4, 30, 0))),
            ("0 30 4 1 jan *", (2025, 12, 31, 23, 0, 0), Some((2026, 1, 1, 4, 30, 0))),
            ("0 0 0 29 2 *", (2026, 3, 1, 0, 0, 0), Some((2028, 2, 29, 0, 0, 0))),
            ("0 0 0 30 2 *", (2026, 1, 1, 0, 0, 0), None),
            ("0 0 0 31 Apr,Jun *", (2026, 1, 1, 0, 0, 0), None),
            // AND, not Vixie's OR: Tuesday 2026-01-13 does not match.
            ("0 0 12 13 * Fri", (2026, 1, 1, 0, 0, 0), Some((2026, 2, 13, 12, 0, 0))),
            ("0 0 12 13 * Fri", (2026, 2, 13, 12, 0, 0), Some((2026, 3, 13, 12, 0, 0))),
            ("0 0 12 13 * Fri", (2026, 3, 14, 0, 0, 0), Some((2026, 11, 13, 12, 0, 0))),
            ("0 0 * * * 7", (2026, 1, 1, 0, 0, 0), Some((2026, 1, 4, 0, 0, 0))),
            ("0 0 * * * SUN", (2026, 1, 4, 0, 0, 0), Some((2026, 1, 4, 1, 0, 0))),
            ("0 0 * * * SUN", (2026, 1, 4, 23, 0, 0), Some((2026, 1, 11, 0, 0, 0))),
        ];
        for &(text, after, want) in cases {
            let got = cron(text).next_after(ms(after));
            assert_eq!(got, want.map(ms), "{text} after {after:?}");
        }
        // 2026-11-13 is a Friday (day-of-week 5).
        assert_eq!((days_from_civil(2026, 11, 13) + 4).rem_euclid(7), 5);
        let two = cron("*/2 * * * * *");
        let half = at(2026, 1, 1, 10, 0, 0) + 500;
        assert_eq!(two.next_after(half), Some(at(2026, 1, 1, 10, 0, 2)));
        assert_eq!(two.next_after(-500), Some(0));
    }

    #[test]
    fn lists_ranges_and_steps() {
        let s = cron("5,10-12/2 * * * * *");
        let mut t = at(2026, 1, 1, 10, 0, 0);
        let mut seen = Vec::new();
        for _ in 0..4 {
            t = s.next_after(t).unwrap();
            seen.push((t - at(2026, 1, 1, 10, 0, 0)) / 1000);
        }
        assert_eq!(seen, [5, 10, 12, 65]);
        assert_eq!(cron_bits("50/5 * * * * *").seconds, (1 << 50) | (1 << 55));
        assert_eq!(cron_bits("* * * * * */2").days_of_week, 0b101_0101);
        assert_eq!(cron_bits(" 0\t0  * * * *  ").text, "0\t0  * * * *");
    }

    #[test]
    fn seven_is_sunday() {
        let seven = cron_bits("0 0 * * * 7");
        assert_eq!(seven.days_of_week, 1);
        assert_eq!(seven.days_of_week, cron_bits("0 0 * * * Sun").days_of_week);
        assert_eq!(seven.days_of_week, cron_bits("0 0 * * * 0").days_of_week);
        assert_eq!(cron_bits("0 0 * * * 5-7").days_of_week, 0b110_0001);
    }

    #[test]
    fn timespans() {
        let five = Schedule::parse("00:05:00").unwrap();
        assert_eq!(five, Schedule::Every(Duration::from_secs(300)));
        let x = at(2026, 1, 1, 10, 3, 7) + 123;
        assert_eq!(five.next_after(x), Some(x + 300_000));
        assert_eq!(five.to_string(), "00:05:00");
        let long = Schedule::parse("1.02:03:04").unwrap();
        assert_eq!(
            long,
            Schedule::Every(Duration::from_secs(86_400 + 2 * 3600 + 3 * 60 + 4))
        );
        assert_eq!(long.to_string(), "1.02:03:04");
        let err = Schedule::parse("36:00:00").unwrap_err();
        assert!(
            err.contains("hour 36") && err.contains("1.00:00:00"),
            "{err}"
        );
        assert_eq!(
            Schedule::parse("1.00:00:00").unwrap().to_string(),
            "1.00:00:00"
        );
        assert_eq!(Schedule::Every(Duration::ZERO).next_after(x), None);
        assert_eq!(cron("0 */5 * * * *").to_string(), "0 */5 * * * *");
    }

    #[test]
    fn errors_name_the_field_and_the_text() {
        let cases: &[(&str, &[&str])] = &[
            ("61 * * * * *", &["second 61 is out of range 0-59"]),
            ("* * * * *", &["\"* * * * *\": 5 fields; a schedule has 6"]),
            ("* * * * * * *", &["7 fields"]),
            ("", &["\"\": empty"]),
            ("   ", &["empty"]),
            ("*/0 * * * * *", &["second", "*/0"]),
            ("5-2 * * * * *", &["second", "5-2"]),
            ("* * 24 * * *", &["hour", "24"]),
            ("* * * 0 * *", &["day", "0"]),
            ("* * * * 13 *", &["month", "13"]),
            ("* * * * * 8", &["day-of-week", "8"]),
            ("* * * * Foo *", &["month", "Foo"]),
            ("* 1,,2 * * * *", &["minute", "1,,2"]),
            ("* * * * * ?", &["day-of-week", "?"]),
            ("00:00:00", &["\"00:00:00\"", "zero"]),
            ("00:61:00", &["minute", "61"]),
            ("00:00:60", &["second", "60"]),
            ("1.24:00:00", &["hour", "24"]),
            ("00:05", &["\"00:05\"", "[d.]hh:mm:ss"]),
            ("abc", &["\"abc\"", "1 field;"]),
        ];
        for (text, wants) in cases {
            let err = Schedule::parse(text).unwrap_err();
            for want in *wants {
                assert!(err.contains(want), "{text:?}: {err:?} lacks {want:?}");
            }
        }
    }
}
