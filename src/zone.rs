//! The time zone reports count in: which day and hour a request falls in, and how times are
//! shown (`--tz`).
//!
//! Stores keep every time in UTC. A report in another zone shifts each request's time by the
//! zone's offset at that instant before counting, so days, hours, weekdays, traffic buckets
//! and the visitors of a day are the zone's. Names are IANA's, from the `chrono-tz` crate's
//! copy of the time-zone database, so a report does not depend on the machine's.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// A time zone: UTC, a fixed offset, or a named zone whose offset changes (summer time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Zone {
    #[default]
    Utc,
    /// Seconds east of UTC.
    Fixed(i32),
    Named(Tz),
}

impl Zone {
    /// `UTC`, `local` (the machine's zone: `$TZ`, else `/etc/localtime`), a fixed offset
    /// (`+07:00`, `+0700`, `-04`) or an IANA name (`Asia/Bangkok`).
    pub fn parse(s: &str) -> Result<Zone, String> {
        if s.eq_ignore_ascii_case("utc") || s == "Z" {
            return Ok(Zone::Utc);
        }
        if s == "local" {
            return local();
        }
        if let Some(offset) = parse_offset(s) {
            return offset
                .map(Zone::Fixed)
                .ok_or_else(|| format!("'{s}' is not an offset from -23:59 to +23:59"));
        }
        s.parse::<Tz>().map(Zone::Named).map_err(|_| {
            format!(
                "'{s}' is no time zone: give UTC, local, an offset such as +07:00, or an IANA \
                 name such as Europe/Paris"
            )
        })
    }

    /// How reports name it: `UTC`, `+07:00`, `Asia/Bangkok`.
    pub fn name(&self) -> String {
        match self {
            Zone::Utc => "UTC".into(),
            Zone::Fixed(secs) => offset_text(*secs),
            Zone::Named(tz) => tz.name().into(),
        }
    }

    /// Seconds east of UTC at the instant `utc` (seconds since the epoch).
    pub fn offset_at(&self, utc: i64) -> i32 {
        match self {
            Zone::Utc => 0,
            Zone::Fixed(secs) => *secs,
            Zone::Named(tz) => DateTime::from_timestamp(utc, 0).map_or(0, |t| {
                tz.offset_from_utc_datetime(&t.naive_utc())
                    .fix()
                    .local_minus_utc()
            }),
        }
    }

    /// Whether the zone's clocks ever show `local` (seconds since the epoch, counted in the
    /// zone, as [`Clock::local`] gives them): not in the hour skipped when summer time
    /// begins.
    pub fn shows(&self, local: i64) -> bool {
        match self {
            Zone::Utc | Zone::Fixed(_) => true,
            Zone::Named(tz) => DateTime::from_timestamp(local, 0).is_none_or(|t| {
                !matches!(
                    tz.from_local_datetime(&t.naive_utc()),
                    chrono::LocalResult::None
                )
            }),
        }
    }

    /// The offset at `from`, and each instant in `(from, to]` where it changes, with the
    /// offset from then on: what a store that counts days itself (ClickHouse) needs to
    /// compute this zone's days as [`Clock`] does. Looked for hour by hour: no zone changes
    /// its offset twice within an hour.
    pub fn changes(&self, from: i64, to: i64) -> (i32, Vec<(i64, i32)>) {
        const HOUR: i64 = 3600;
        let first = self.offset_at(from);
        let mut changes = Vec::new();
        if let Zone::Named(_) = self {
            let (mut at, mut offset) = (from, first);
            while at < to {
                let next = (at + HOUR).min(to);
                let then = self.offset_at(next);
                if then != offset {
                    // The first second of `(at, next]` with the new offset.
                    let (mut before, mut after) = (at, next);
                    while after - before > 1 {
                        let mid = before + (after - before) / 2;
                        match self.offset_at(mid) == offset {
                            true => before = mid,
                            false => after = mid,
                        }
                    }
                    changes.push((after, then));
                    offset = then;
                }
                at = next;
            }
        }
        (first, changes)
    }

    /// A time shifted to the zone (see [`Clock`]), as RFC 3339 with the zone's offset:
    /// `2024-01-05T17:00:00+07:00`, or with `Z` in UTC.
    pub fn show(&self, local: i64) -> String {
        let offset = match self {
            Zone::Utc => return crate::entry::Rfc3339(at(local)).to_string(),
            Zone::Fixed(secs) => *secs,
            // The offset of the instant that shows as `local`: around a change of offset,
            // of one of the two instants that do.
            Zone::Named(_) => self.offset_at(local - i64::from(self.offset_at(local))),
        };
        format!(
            "{}{}",
            at(local).naive_utc().format("%Y-%m-%dT%H:%M:%S"),
            offset_text(offset)
        )
    }

    /// The first instant (in UTC) of `day` in the zone; where a change of offset skips its
    /// midnight, the first instant that day has.
    pub fn start_of(&self, day: NaiveDate) -> DateTime<Utc> {
        let midnight = day.and_hms_opt(0, 0, 0).expect("midnight");
        match self {
            Zone::Utc => midnight.and_utc(),
            Zone::Fixed(secs) => midnight.and_utc() - chrono::TimeDelta::seconds(i64::from(*secs)),
            Zone::Named(tz) => first_instant(tz, midnight),
        }
    }

    /// The day it is in the zone at the instant `now`.
    pub fn today(&self, now: DateTime<Utc>) -> NaiveDate {
        let local = now.timestamp() + i64::from(self.offset_at(now.timestamp()));
        at(local).date_naive()
    }
}

/// The offsets a store's lines wrote their times in, as far as the store has seen: what a
/// report counts in when no `--tz` is given. A one-day log written at +0700 is one day in its
/// own offset and two in UTC; a store fed by servers in several zones has no offset of its
/// own, and counts in UTC. A time written without an offset (epoch seconds, W3C) says
/// nothing either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogOffsets {
    /// No line with an offset yet.
    #[default]
    Unknown,
    /// Every line with an offset had this one (seconds east of UTC).
    One(i32),
    /// Lines had different offsets.
    Mixed,
}

impl LogOffsets {
    /// Takes in one line's offset.
    pub fn add(&mut self, offset: Option<i32>) {
        if let Some(offset) = offset {
            self.merge(LogOffsets::One(offset));
        }
    }

    /// Takes in the offsets of more lines.
    pub fn merge(&mut self, other: LogOffsets) {
        *self = match (*self, other) {
            (LogOffsets::Unknown, other) => other,
            (this, LogOffsets::Unknown) => this,
            (LogOffsets::One(a), LogOffsets::One(b)) if a == b => LogOffsets::One(a),
            _ => LogOffsets::Mixed,
        };
    }

    /// As a store records it: `+07:00` or `mixed` (nothing while unknown).
    pub fn to_setting(self) -> Option<String> {
        match self {
            LogOffsets::Unknown => None,
            LogOffsets::One(secs) => Some(offset_text(secs)),
            LogOffsets::Mixed => Some("mixed".to_owned()),
        }
    }

    /// What a store recorded with [`LogOffsets::to_setting`]. Anything else (written by a
    /// later version, or edited) is taken as mixed: the report then counts in UTC, as it
    /// would for a store fed from several zones.
    pub fn from_setting(setting: &str) -> LogOffsets {
        match parse_offset(setting) {
            Some(Some(secs)) if offset_text(secs) == setting => LogOffsets::One(secs),
            _ => LogOffsets::Mixed,
        }
    }

    /// The zone a report counts in when none is asked for: the lines' own offset when they
    /// all share one, else UTC.
    pub fn zone(self) -> Zone {
        match self {
            LogOffsets::One(0) | LogOffsets::Unknown | LogOffsets::Mixed => Zone::Utc,
            LogOffsets::One(secs) => Zone::Fixed(secs),
        }
    }
}

/// A time as a `DateTime` (the epoch for one beyond chrono's range, which no log holds).
fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

fn first_instant(tz: &Tz, local: NaiveDateTime) -> DateTime<Utc> {
    // A gap is at most a few hours: the first minute after it is the day's first instant.
    (0..=24 * 60)
        .find_map(|minutes| {
            let t = local + chrono::TimeDelta::minutes(minutes);
            tz.from_local_datetime(&t).earliest()
        })
        .map_or_else(|| local.and_utc(), |t| t.with_timezone(&Utc))
}

/// `+07:00`, `-04:00`, `+05:45`.
fn offset_text(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let abs = secs.unsigned_abs();
    format!("{sign}{:02}:{:02}", abs / 3600, abs / 60 % 60)
}

/// `+07:00`, `+0700` or `+07` (and `-`): `None` when `s` does not start with a sign, else
/// the offset in seconds, `Some(None)` when it is out of range or malformed.
fn parse_offset(s: &str) -> Option<Option<i32>> {
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let rest = &s[1..];
    if !rest.is_ascii() {
        return Some(None);
    }
    let (hours, minutes) = match rest.len() {
        2 => (rest, "00"),
        4 => (&rest[..2], &rest[2..]),
        5 if rest.as_bytes()[2] == b':' => (&rest[..2], &rest[3..]),
        _ => return Some(None),
    };
    let number = |digits: &str| -> Option<i32> {
        (digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse().ok())
            .flatten()
    };
    Some(match (number(hours), number(minutes)) {
        (Some(h), Some(m)) if h < 24 && m < 60 => Some(sign * (h * 3600 + m * 60)),
        _ => None,
    })
}

/// The machine's zone: `$TZ` when set (an IANA name, or `UTC`), else the one
/// `/etc/localtime` names.
fn local() -> Result<Zone, String> {
    let name = match std::env::var("TZ") {
        Ok(tz) if !tz.is_empty() => tz.trim_start_matches(':').to_string(),
        _ => iana_time_zone::get_timezone()
            .map_err(|e| format!("cannot tell the local time zone ({e}): give its name"))?,
    };
    match Zone::parse(&name) {
        Ok(zone) if name != "local" => Ok(zone),
        _ => Err(format!(
            "the local time zone '{name}' is no IANA name: give --tz a name or an offset"
        )),
    }
}

/// Shifts UTC times into a zone, request after request: the zone's offset is looked up once
/// per quarter hour of requests, not once per request. A quarter hour with a change of
/// offset in it is looked up request by request, so every request gets its own instant's
/// offset.
#[derive(Debug, Clone)]
pub struct Clock {
    zone: Zone,
    /// The quarter hour (since the epoch) whose offset is known to hold throughout, and it.
    quarter: i64,
    offset: i64,
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new(Zone::Utc)
    }
}

/// Seconds in a quarter hour.
const QUARTER: i64 = 900;

impl Clock {
    pub fn new(zone: Zone) -> Clock {
        Clock {
            zone,
            quarter: i64::MIN,
            offset: 0,
        }
    }

    /// `utc` (seconds since the epoch) as the same count of seconds in the zone: its
    /// day, hour and minute are the zone's.
    #[inline]
    pub fn local(&mut self, utc: i64) -> i64 {
        match self.zone {
            Zone::Utc => utc,
            Zone::Fixed(secs) => utc + i64::from(secs),
            Zone::Named(_) => {
                let quarter = utc.div_euclid(QUARTER);
                if quarter != self.quarter {
                    let start = quarter * QUARTER;
                    let (first, last) = (
                        self.zone.offset_at(start),
                        self.zone.offset_at(start + QUARTER - 1),
                    );
                    if first != last {
                        self.quarter = i64::MIN;
                        return utc + i64::from(self.zone.offset_at(utc));
                    }
                    (self.quarter, self.offset) = (quarter, i64::from(first));
                }
                utc + self.offset
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_changes_of_a_zone_give_its_offset_at_every_second() {
        use super::Zone;
        // Paris, around its spring and autumn changes of 2024; a fixed offset, never.
        let paris = Zone::parse("Europe/Paris").unwrap();
        let (from, to) = (1_711_836_000 - 7_200, 1_730_000_000 + 7_200);
        let (first, changes) = paris.changes(from, to);
        assert_eq!(first, 3_600);
        assert_eq!(changes, [(1_711_846_800, 7_200), (1_729_990_800, 3_600)]);
        for t in (from..to)
            .step_by(997)
            .chain([1_711_846_799, 1_729_990_799])
        {
            let known = changes.iter().rev().find(|(at, _)| *at <= t);
            assert_eq!(known.map_or(first, |c| c.1), paris.offset_at(t), "at {t}");
        }
        assert_eq!(Zone::Fixed(-14_400).changes(0, 1 << 40), (-14_400, vec![]));
    }

    #[test]
    fn the_hour_skipped_in_spring_is_never_shown() {
        use super::Zone;
        let paris = Zone::parse("Europe/Paris").unwrap();
        // 2024-03-31, local: 01:59:59 is shown, 02:00:00 to 02:59:59 are not, 03:00 is.
        let two = 1_711_850_400;
        assert!(paris.shows(two - 1));
        assert!(!paris.shows(two) && !paris.shows(two + 3_599));
        assert!(paris.shows(two + 3_600));
        // The hour shown twice in autumn is shown.
        assert!(paris.shows(1_729_994_400));
        assert!(Zone::Fixed(3_600).shows(two));
    }

    #[test]
    fn offsets_are_one_until_two_lines_differ_and_lines_without_one_say_nothing() {
        let mut o = LogOffsets::default();
        o.add(None);
        assert_eq!(o, LogOffsets::Unknown);
        assert_eq!(o.zone(), Zone::Utc);
        o.add(Some(25200));
        o.add(None);
        o.add(Some(25200));
        assert_eq!(o, LogOffsets::One(25200));
        assert_eq!(o.zone(), Zone::Fixed(25200));
        let mut later = LogOffsets::default();
        later.add(Some(-18000));
        o.merge(later);
        assert_eq!(o, LogOffsets::Mixed);
        o.add(Some(25200));
        assert_eq!(o, LogOffsets::Mixed);
        assert_eq!(o.zone(), Zone::Utc);
        assert_eq!(LogOffsets::One(0).zone(), Zone::Utc);
        // As the stores keep them.
        for o in [
            LogOffsets::One(25200),
            LogOffsets::One(-12600),
            LogOffsets::Mixed,
        ] {
            assert_eq!(LogOffsets::from_setting(&o.to_setting().unwrap()), o);
        }
        assert_eq!(LogOffsets::One(-12600).to_setting().unwrap(), "-03:30");
        assert_eq!(LogOffsets::Unknown.to_setting(), None);
        assert_eq!(LogOffsets::from_setting("+0700"), LogOffsets::Mixed);
        assert_eq!(LogOffsets::from_setting("what"), LogOffsets::Mixed);
    }

    use super::*;

    #[test]
    fn zones_are_read_and_named() {
        assert_eq!(Zone::parse("UTC"), Ok(Zone::Utc));
        assert_eq!(Zone::parse("utc"), Ok(Zone::Utc));
        for (text, secs, name) in [
            ("+07:00", 7 * 3600, "+07:00"),
            ("+0700", 7 * 3600, "+07:00"),
            ("-04", -4 * 3600, "-04:00"),
            ("+05:45", 5 * 3600 + 45 * 60, "+05:45"),
            ("-03:30", -(3 * 3600 + 30 * 60), "-03:30"),
        ] {
            let zone = Zone::parse(text).unwrap();
            assert_eq!(
                (zone, zone.name()),
                (Zone::Fixed(secs), name.into()),
                "{text}"
            );
        }
        for bad in [
            "+24:00",
            "+07:60",
            "+7",
            "+07:0",
            "+070",
            "+07-00",
            "Mars/Base",
            "",
        ] {
            assert!(Zone::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Zone::parse("Asia/Bangkok").unwrap().name(), "Asia/Bangkok");
    }

    #[test]
    fn a_named_zone_changes_offset_on_the_right_second() {
        let paris = Zone::parse("Europe/Paris").unwrap();
        // Summer time began on 2024-03-31 at 01:00 UTC.
        let change = DateTime::parse_from_rfc3339("2024-03-31T01:00:00Z")
            .unwrap()
            .timestamp();
        let mut clock = Clock::new(paris);
        for (utc, offset) in [
            (change - 3600, 3600),
            (change - 1, 3600),
            (change, 7200),
            (change + 1, 7200),
            (change - 901, 3600),
        ] {
            assert_eq!(clock.local(utc) - utc, offset, "at {}", utc - change);
        }
        assert_eq!(paris.show(clock.local(change)), "2024-03-31T03:00:00+02:00");
        assert_eq!(
            paris.show(clock.local(change - 1)),
            "2024-03-31T01:59:59+01:00"
        );
        // A change that is not on a quarter hour (Liberia, 1972-01-07, -00:44:30 to UTC).
        let monrovia = Zone::parse("Africa/Monrovia").unwrap();
        let change = DateTime::parse_from_rfc3339("1972-01-07T00:44:30Z")
            .unwrap()
            .timestamp();
        let mut clock = Clock::new(monrovia);
        assert_eq!(clock.local(change - 1) - (change - 1), -2670);
        assert_eq!(clock.local(change) - change, 0);
    }

    #[test]
    fn days_start_at_the_zones_midnight() {
        let day = NaiveDate::from_ymd_opt(2024, 1, 5).unwrap();
        let start = |zone: &str| Zone::parse(zone).unwrap().start_of(day).to_rfc3339();
        assert_eq!(start("UTC"), "2024-01-05T00:00:00+00:00");
        assert_eq!(start("+07:00"), "2024-01-04T17:00:00+00:00");
        assert_eq!(start("America/New_York"), "2024-01-05T05:00:00+00:00");
        // Santiago's summer time began at midnight on 2022-09-11: the day began at 01:00.
        let chile = Zone::parse("America/Santiago").unwrap();
        let day = NaiveDate::from_ymd_opt(2022, 9, 11).unwrap();
        assert_eq!(
            chile.start_of(day).to_rfc3339(),
            "2022-09-11T04:00:00+00:00"
        );
        let now = DateTime::parse_from_rfc3339("2024-01-05T20:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            Zone::parse("+07:00").unwrap().today(now).to_string(),
            "2024-01-06"
        );
        assert_eq!(Zone::Utc.today(now).to_string(), "2024-01-05");
        assert_eq!(Zone::Utc.show(0), "1970-01-01T00:00:00Z");
        assert_eq!(Zone::Fixed(-4 * 3600).show(0), "1970-01-01T00:00:00-04:00");
    }
}
