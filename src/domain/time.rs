//! Time: the `Clock` trait every time-dependent component takes, and the lenient
//! timestamp parser that accepts every shape OpenStack services emit.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

pub type Timestamp = DateTime<Utc>;

/// A source of "now". Planners never read a clock; their callers pass `now` in.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Utc::now()
    }
}

/// A clock that only moves when told to (tests, snapshots).
#[derive(Debug, Clone)]
pub struct ManualClock {
    micros: Arc<AtomicI64>,
}

impl ManualClock {
    pub fn new(at: Timestamp) -> Self {
        ManualClock { micros: Arc::new(AtomicI64::new(at.timestamp_micros())) }
    }
    pub fn set(&self, at: Timestamp) {
        self.micros.store(at.timestamp_micros(), Ordering::SeqCst);
    }
    pub fn advance(&self, by: std::time::Duration) {
        self.micros.fetch_add(by.as_micros() as i64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Utc.timestamp_micros(self.micros.load(Ordering::SeqCst)).single().unwrap_or_default()
    }
}

/// Parse a timestamp as OpenStack services write them: RFC 3339 with `Z` or an
/// offset, or naive (taken as UTC), with or without a fraction, `T` or a space
/// between date and time, seconds optional. Returns `None` for anything else
/// (some fixtures carry malformed values such as `2014-06-10T2:55:16Z`).
pub fn parse_timestamp(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    if s.len() < 10 {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    // Offsets without a colon (+0000) and naive forms.
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(t.with_timezone(&Utc));
        }
    }
    let naive = s.strip_suffix('Z').unwrap_or(s);
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, fmt) {
            if strict_fields(naive) {
                return Some(Utc.from_utc_datetime(&t));
            }
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(naive, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| Utc.from_utc_datetime(&t));
    }
    None
}

/// chrono accepts one-digit hours; OpenStack never writes them, and a value like
/// `2014-06-10T2:55:16` is a corrupt fixture, not a time.
fn strict_fields(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 16 && b.get(4) == Some(&b'-') && b.get(7) == Some(&b'-') && b.get(13) == Some(&b':')
}

/// Format a timestamp the way Nova and Keystone do (`2013-09-03T04:01:32Z`).
pub fn format_z(t: &Timestamp) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Format with microseconds and `Z` (Keystone `expires_at`).
pub fn format_micros_z(t: &Timestamp) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Format with microseconds and no zone (Cinder, Nova `launched_at`).
pub fn format_naive_micros(t: &Timestamp) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// Format with `+00:00` (Gnocchi).
pub fn format_offset(t: &Timestamp) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

/// Human "age" of a duration: `42s`, `5m`, `3h`, `2d`.
pub fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    if s < 120 {
        format!("{s}s")
    } else if s < 7200 {
        format!("{}m", s / 60)
    } else if s < 172_800 {
        format!("{}h", s / 3600)
    } else {
        format!("{}d", s / 86_400)
    }
}

/// The longest duration any file may hold (100 years): far beyond every sane
/// setting, and small enough that no conversion overflows.
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 86_400);

/// Parse durations written by people in config and policy files:
/// `500ms`, `30s`, `5m`, `1h`, `2d`, `1h30m`, or a bare number of seconds.
/// Anything longer than [`MAX_DURATION`] is refused, never wrapped or clamped.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<u64>() {
        let d = std::time::Duration::from_secs(n);
        return (d <= MAX_DURATION).then_some(d);
    }
    let mut total_ms: u64 = 0;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        if c.is_whitespace() {
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        let mult = match c {
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1
            }
            's' => 1000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            'w' => 604_800_000,
            _ => return None,
        };
        total_ms = total_ms.checked_add(n.checked_mul(mult)?)?;
        any = true;
    }
    if !num.is_empty() || !any {
        return None;
    }
    let d = std::time::Duration::from_millis(total_ms);
    (d <= MAX_DURATION).then_some(d)
}

/// A duration as config and policy files write it (`500ms`, `30s`, `10m`, `1h`,
/// `2d`, or a whole number of seconds). The one duration type of every file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(pub std::time::Duration);

impl Dur {
    pub const fn secs(n: u64) -> Dur {
        Dur(std::time::Duration::from_secs(n))
    }
    pub const fn millis(n: u64) -> Dur {
        Dur(std::time::Duration::from_millis(n))
    }
    /// As a chrono duration. Files cannot hold more than [`MAX_DURATION`], so this
    /// never overflows; were it to, it saturates (a grace period that never ends
    /// fails closed, it never becomes zero).
    pub fn chrono(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.0).unwrap_or(chrono::Duration::MAX)
    }
}

impl std::fmt::Display for Dur {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl<'de> serde::Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            N(u64),
        }
        let bad = |s: &str| {
            format!("invalid duration `{s}`: expected a number with a unit such as \"500ms\", \"30s\", \"5m\", \"1h\" or \"2d\" (at most 100 years)")
        };
        let raw = Raw::deserialize(d).map_err(|e| {
            // A field left out says so (and which); anything else is a value of the wrong kind.
            let e = e.to_string();
            let m = if e.starts_with("missing field") {
                e
            } else {
                "expected a duration such as \"30s\", \"5m\" or \"1h\"".into()
            };
            serde::de::Error::custom(m)
        })?;
        match raw {
            Raw::N(n) => {
                let d = std::time::Duration::from_secs(n);
                if d > MAX_DURATION {
                    return Err(serde::de::Error::custom(bad(&n.to_string())));
                }
                Ok(Dur(d))
            }
            Raw::S(s) => parse_duration(&s).map(Dur).ok_or_else(|| serde::de::Error::custom(bad(&s))),
        }
    }
}

impl serde::Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

/// An allowed range for a duration setting; `check` says what is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurRange {
    pub min: std::time::Duration,
    pub max: std::time::Duration,
}

impl DurRange {
    pub const fn new(min: Dur, max: Dur) -> DurRange {
        DurRange { min: min.0, max: max.0 }
    }
    pub fn check(&self, d: std::time::Duration) -> Result<(), OutOfRange> {
        if d < self.min || d > self.max {
            Err(OutOfRange { value: d, range: *self })
        } else {
            Ok(())
        }
    }
}

/// A duration outside the range its setting allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} is out of range: expected between {} and {}", format_duration(*.value), format_duration(.range.min), format_duration(.range.max))]
pub struct OutOfRange {
    pub value: std::time::Duration,
    pub range: DurRange,
}

/// Render a duration compactly, the inverse of `parse_duration` for whole units.
pub fn format_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis() as u64;
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    if s != 0 && s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s != 0 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s != 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// An HTTP `Date` header (`Thu, 03 Dec 2026 11:40:55 GMT`).
pub fn parse_http_date(s: &str) -> Option<Timestamp> {
    DateTime::parse_from_rfc2822(s.trim()).ok().map(|t| t.with_timezone(&Utc))
}

/// How far a cloud's clock is ahead of ours (behind when negative), from the
/// `Date` header of an answer received at `local`. The header has whole seconds:
/// the offset is centred on its second, and one under two seconds is taken as
/// none (clocks kept by NTP agree better than the header can tell).
pub fn clock_offset(date: Timestamp, local: Timestamp) -> chrono::Duration {
    let centred = date.checked_add_signed(chrono::Duration::milliseconds(500)).unwrap_or(date);
    let off = centred.signed_duration_since(local);
    if off.num_milliseconds().abs() < 2000 {
        chrono::Duration::zero()
    } else {
        off
    }
}

/// Our `local` time on the clock of a cloud that is `offset` ahead of us.
pub fn on_cloud_clock(local: Timestamp, offset: chrono::Duration) -> Timestamp {
    local.checked_add_signed(offset).unwrap_or(local)
}

/// Whole seconds since `then`, a time the cloud stamped, on the cloud's clock
/// (`local` moved by its `offset`); never below zero.
pub fn cloud_age(local: Timestamp, offset: chrono::Duration, then: Timestamp) -> i64 {
    on_cloud_clock(local, offset).signed_duration_since(then).num_seconds().max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_of_what_a_cloud_stamped_are_measured_on_its_clock() {
        let ours = Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).single().unwrap_or_default();
        // The cloud answered "12:05:00" when our clock said 12:00:00.3.
        let date = parse_http_date("Thu, 03 Dec 2026 12:05:00 GMT").unwrap_or_default();
        let offset = clock_offset(date, ours + chrono::Duration::milliseconds(300));
        assert_eq!(offset.num_milliseconds(), 300_200, "five minutes ahead, centred on the header's second");
        // A server it created at 12:04:00 on its clock is a minute old, not "in the future".
        let created = Utc.with_ymd_and_hms(2026, 12, 3, 12, 4, 0).single().unwrap_or_default();
        assert_eq!(cloud_age(ours, offset, created), 60);
        assert_eq!(cloud_age(ours, chrono::Duration::zero(), created), 0, "on our clock it would read 0s");
        // A cloud ten minutes behind ours: what it stamped 11:49 is a minute old
        // (eleven on our clock).
        let behind = clock_offset(ours - chrono::Duration::minutes(10), ours);
        let stamped = created - chrono::Duration::minutes(15);
        assert_eq!(cloud_age(ours, behind, stamped), 60);
        assert_eq!(cloud_age(ours, chrono::Duration::zero(), stamped), 11 * 60);
        // The header's whole seconds are not a skew.
        assert_eq!(clock_offset(ours, ours + chrono::Duration::milliseconds(900)), chrono::Duration::zero());
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn parses_every_openstack_shape() {
        let cases = [
            ("2013-09-03T04:01:32Z", 1378180892),
            ("2013-09-23T13:53:12.774549", 1379944392),
            ("2015-11-07T02:58:43.578887Z", 1446865123),
            ("2014-10-06T14:00:00+00:00", 1412604000),
            ("2016-03-08T20:19:41", 1457468381),
            ("2014-10-06T14:34", 1412606040),
            ("2018-11-28 06:25:15", 1543386315),
            ("2020-01-01T00:00:00+0100", 1577833200),
        ];
        for (s, epoch) in cases {
            assert_eq!(parse_timestamp(s).map(|t| t.timestamp()), Some(epoch), "{s}");
        }
    }

    #[test]
    fn rejects_corrupt_fixture_values() {
        assert_eq!(parse_timestamp("2014-06-10T2:55:16.806001Z"), None);
        assert_eq!(parse_timestamp("201406-10T20:55:16.806027Z"), None);
        assert_eq!(parse_timestamp(""), None);
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn durations_round_trip() {
        for (s, secs) in [("30s", 30), ("5m", 300), ("1h30m", 5400), ("2d", 172800), ("45", 45)] {
            assert_eq!(parse_duration(s), Some(std::time::Duration::from_secs(secs)), "{s}");
        }
        assert_eq!(parse_duration("250ms"), Some(std::time::Duration::from_millis(250)));
        assert_eq!(parse_duration("5 minutes"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("150000000000d"), None, "too large: refused, never wrapped to 0");
        assert_eq!(parse_duration("18446744073709551615"), None);
        assert_eq!(parse_duration("100y"), None);
        assert_eq!(format_duration(std::time::Duration::from_secs(300)), "5m");
        assert_eq!(format_duration(std::time::Duration::from_secs(90)), "90s");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let t0 = parse_timestamp("2026-01-01T00:00:00Z").unwrap();
        let c = ManualClock::new(t0);
        assert_eq!(c.now(), t0);
        c.advance(std::time::Duration::from_secs(61));
        assert_eq!((c.now() - t0).num_seconds(), 61);
    }
}
