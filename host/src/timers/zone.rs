//! The time zone timer schedules are read in: UTC unless the app's
//! settings name another, as Azure's `WEBSITE_TIME_ZONE` (then `TZ`) does,
//! by its IANA name (`Europe/Berlin`), from the system's time zone
//! database.
//!
//! Across a daylight-saving change a schedule follows the wall clock: a
//! time the clocks skip (spring forward) does not run, and a time they
//! repeat (fall back) runs once, at its first occurrence.

use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::Timestamp;

use super::schedule::Schedule;

/// Most wall-clock candidates tried for one next occurrence (a schedule
/// every second inside a skipped hour tries 3,600).
const MAX_CANDIDATES: usize = 10_000;

/// A time zone for schedules.
#[derive(Debug, Clone)]
pub struct Zone {
    name: String,
    tz: TimeZone,
}

impl Default for Zone {
    fn default() -> Self {
        Self {
            name: "UTC".into(),
            tz: TimeZone::UTC,
        }
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Zone {
    /// The zone with IANA name `name` (`UTC` included); the error says why
    /// it is not one.
    pub fn named(name: &str) -> Result<Self, String> {
        let trimmed = name.trim();
        if trimmed.eq_ignore_ascii_case("utc") || trimmed.is_empty() {
            return Ok(Self::default());
        }
        let tz = jiff::tz::db().get(trimmed).map_err(|e| {
            format!("\"{name}\" is not a time zone of the system's database (an IANA name such as Europe/Berlin): {e}")
        })?;
        Ok(Self {
            name: trimmed.to_string(),
            tz,
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The first occurrence of `schedule` strictly after `after_ms`, the
    /// schedule's fields read as this zone's wall clock. A TimeSpan counts
    /// real time and ignores the zone.
    pub fn next_after(&self, schedule: &Schedule, after_ms: i64) -> Option<i64> {
        if matches!(schedule, Schedule::Every(_)) || self.name == "UTC" {
            return schedule.next_after(after_ms);
        }
        // The wall clock as ms of a UTC calendar: the schedule's own search
        // then runs on it unchanged.
        let mut wall = self.wall_ms(after_ms)?;
        for _ in 0..MAX_CANDIDATES {
            wall = schedule.next_after(wall)?;
            let civil = TimeZone::UTC.to_datetime(Timestamp::from_millisecond(wall).ok()?);
            let instant = match self.tz.to_ambiguous_timestamp(civil).offset() {
                AmbiguousOffset::Unambiguous { offset } => civil.to_zoned(offset.to_time_zone()),
                // Skipped by the clocks: it does not run.
                AmbiguousOffset::Gap { .. } => continue,
                // Repeated: only its first occurrence runs.
                AmbiguousOffset::Fold { before, .. } => civil.to_zoned(before.to_time_zone()),
            }
            .ok()?
            .timestamp()
            .as_millisecond();
            if instant > after_ms {
                return Some(instant);
            }
        }
        None
    }

    /// `ms` on this zone's wall clock, as ms of a UTC calendar.
    fn wall_ms(&self, ms: i64) -> Option<i64> {
        let civil = self.tz.to_datetime(Timestamp::from_millisecond(ms).ok()?);
        Some(TimeZone::UTC.to_timestamp(civil).ok()?.as_millisecond())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `2026-mm-dd hh:mm:ss` in `zone`, as ms since the epoch.
    fn at(zone: &str, text: &str) -> i64 {
        let civil: jiff::civil::DateTime = text.parse().unwrap();
        civil
            .to_zoned(jiff::tz::db().get(zone).unwrap())
            .unwrap()
            .timestamp()
            .as_millisecond()
    }

    fn utc(text: &str) -> i64 {
        at("UTC", text)
    }

    #[test]
    fn a_named_zone_reads_the_schedule_on_its_wall_clock() {
        let berlin = Zone::named("Europe/Berlin").unwrap();
        let nine = Schedule::parse("0 0 9 * * *").unwrap();
        // 09:00 in Berlin in winter is 08:00 UTC, in summer 07:00 UTC.
        assert_eq!(
            berlin.next_after(&nine, utc("2026-01-10 12:00:00")),
            Some(utc("2026-01-11 08:00:00"))
        );
        assert_eq!(
            berlin.next_after(&nine, utc("2026-07-10 12:00:00")),
            Some(utc("2026-07-11 07:00:00"))
        );
        assert_eq!(
            Zone::default().next_after(&nine, utc("2026-01-10 12:00:00")),
            Some(utc("2026-01-11 09:00:00"))
        );
    }

    #[test]
    fn a_skipped_hour_does_not_run_and_a_repeated_one_runs_once() {
        let berlin = Zone::named("Europe/Berlin").unwrap();
        // 2026-03-29: clocks go from 02:00 to 03:00. 02:30 does not exist.
        let half_past_two = Schedule::parse("0 30 2 * * *").unwrap();
        assert_eq!(
            berlin.next_after(&half_past_two, at("Europe/Berlin", "2026-03-28 03:00:00")),
            Some(at("Europe/Berlin", "2026-03-30 02:30:00")),
            "the skipped day does not run"
        );
        // 2026-10-25: clocks go from 03:00 back to 02:00. 02:30 happens
        // twice; it runs at the first, then next on the 26th.
        let first = at("Europe/Berlin", "2026-10-25 01:00:00") + 90 * 60_000; // 02:30 CEST
        assert_eq!(
            berlin.next_after(&half_past_two, at("Europe/Berlin", "2026-10-25 01:00:00")),
            Some(first)
        );
        assert_eq!(
            berlin.next_after(&half_past_two, first),
            Some(at("Europe/Berlin", "2026-10-26 02:30:00")),
            "the repeated 02:30 does not run again"
        );
        // Every minute across the repeated hour: no minute runs twice.
        let minutely = Schedule::parse("0 * * * * *").unwrap();
        let mut t = first;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..150 {
            t = berlin.next_after(&minutely, t).unwrap();
            let wall = berlin.wall_ms(t).unwrap();
            assert!(seen.insert(wall), "a wall-clock minute ran twice");
        }
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(Zone::named("UTC").unwrap().name(), "UTC");
        assert_eq!(Zone::named("utc").unwrap().name(), "UTC");
        let err = Zone::named("Mars/Olympus_Mons").unwrap_err();
        assert!(
            err.contains("Mars/Olympus_Mons") && err.contains("IANA"),
            "{err}"
        );
    }
}
