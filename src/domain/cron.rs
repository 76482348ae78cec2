//! Five-field cron expressions (`minute hour day-of-month month day-of-week`, with
//! `*`, lists, ranges and steps) evaluated in a time zone, for scheduled scaling
//! bounds.

use crate::domain::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    dom: Vec<bool>,
    months: Vec<bool>,
    dow: Vec<bool>,
    dom_any: bool,
    dow_any: bool,
}

/// Why a cron expression is not one: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CronError {
    #[error("expected 5 fields (minute hour day month weekday), got {0}")]
    Fields(usize),
    #[error("{field}: {reason}")]
    Field { field: &'static str, reason: String },
}

fn field(s: &str, lo: u32, hi: u32, names: &[&str]) -> Result<(Vec<bool>, bool), String> {
    let mut set = vec![false; hi as usize + 1];
    let any = s == "*";
    let val = |x: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(x)) {
            return Ok(i as u32 + lo);
        }
        x.parse::<u32>().map_err(|_| format!("`{x}` is not a number"))
    };
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => (r, st.parse::<u32>().map_err(|_| format!("bad step `{st}`"))?),
            None => (part, 1),
        };
        if step == 0 {
            return Err("a step of 0".into());
        }
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (val(a)?, val(b)?)
        } else {
            let v = val(range)?;
            (v, if part.contains('/') { hi } else { v })
        };
        if a < lo || b > hi || a > b {
            return Err(format!("`{part}` is outside {lo}-{hi}"));
        }
        for v in (a..=b).step_by(step as usize) {
            if let Some(x) = set.get_mut(v as usize) {
                *x = true;
            }
        }
    }
    Ok((set, any))
}

impl Cron {
    pub fn parse(s: &str) -> Result<Cron, CronError> {
        let f: Vec<&str> = s.split_whitespace().collect();
        let [mi, h, d, mo, w] = f.as_slice() else {
            return Err(CronError::Fields(f.len()));
        };
        let named = |field: &'static str| move |reason: String| CronError::Field { field, reason };
        let (minutes, _) = field(mi, 0, 59, &[]).map_err(named("minute"))?;
        let (hours, _) = field(h, 0, 23, &[]).map_err(named("hour"))?;
        let (dom, dom_any) = field(d, 1, 31, &[]).map_err(named("day of month"))?;
        let (months, _) =
            field(mo, 1, 12, &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])
                .map_err(named("month"))?;
        let (mut dow, dow_any) =
            field(w.replace('7', "0").as_str(), 0, 6, &["sun", "mon", "tue", "wed", "thu", "fri", "sat"])
                .map_err(named("weekday"))?;
        dow.resize(7, false);
        Ok(Cron { minutes, hours, dom, months, dow, dom_any, dow_any })
    }

    fn day_matches(&self, d: jiff::civil::Date) -> bool {
        let at = |set: &[bool], i: i8| set.get(i as usize).copied().unwrap_or(false);
        if !at(&self.months, d.month()) {
            return false;
        }
        let dom = at(&self.dom, d.day());
        let dow = at(&self.dow, d.weekday().to_sunday_zero_offset());
        // Vixie cron: with both fields restricted, either may match.
        match (self.dom_any, self.dow_any) {
            (true, true) => true,
            (true, false) => dow,
            (false, true) => dom,
            (false, false) => dom || dow,
        }
    }

    /// The latest minute at or before `t` (civil time) that matches, within 400 days.
    pub fn prev(&self, t: jiff::civil::DateTime) -> Option<jiff::civil::DateTime> {
        let mut day = t.date();
        for k in 0..400 {
            if self.day_matches(day) {
                let max_h = if k == 0 { t.hour() as u32 } else { 23 };
                for h in (0..=max_h).rev() {
                    if !self.hours.get(h as usize).copied().unwrap_or(false) {
                        continue;
                    }
                    let max_m = if k == 0 && h == t.hour() as u32 { t.minute() as u32 } else { 59 };
                    if let Some(m) = (0..=max_m).rev().find(|m| self.minutes.get(*m as usize).copied().unwrap_or(false))
                    {
                        return day.at(h as i8, m as i8, 0, 0).into();
                    }
                }
            }
            day = day.yesterday().ok()?;
        }
        None
    }
}

impl Cron {
    /// The earliest minute strictly after `t` (civil time) that matches, within 400 days.
    pub fn next(&self, t: jiff::civil::DateTime) -> Option<jiff::civil::DateTime> {
        let start = t.checked_add(jiff::SignedDuration::from_secs(60)).ok()?;
        let mut day = start.date();
        for k in 0..400 {
            if self.day_matches(day) {
                let min_h = if k == 0 { start.hour() as u32 } else { 0 };
                for h in min_h..24 {
                    if !self.hours.get(h as usize).copied().unwrap_or(false) {
                        continue;
                    }
                    let min_m = if k == 0 && h == start.hour() as u32 { start.minute() as u32 } else { 0 };
                    if let Some(m) = (min_m..60).find(|m| self.minutes.get(*m as usize).copied().unwrap_or(false)) {
                        return day.at(h as i8, m as i8, 0, 0).into();
                    }
                }
            }
            day = day.tomorrow().ok()?;
        }
        None
    }
}

/// A time zone: an IANA name (`Europe/Paris`), `UTC`, or a fixed offset (`+02:00`).
pub fn parse_tz(s: &str) -> Option<jiff::tz::TimeZone> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("utc") || s == "Z" {
        return Some(jiff::tz::TimeZone::UTC);
    }
    if let Some(sign) = s.chars().next().filter(|c| *c == '+' || *c == '-') {
        let rest = crate::domain::text::skip(s, 1);
        let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
        let secs = h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60;
        let secs = if sign == '-' { -secs } else { secs };
        return jiff::tz::Offset::from_seconds(secs).ok().map(jiff::tz::TimeZone::fixed);
    }
    jiff::tz::TimeZone::get(s).ok()
}

/// `t` as civil time in `tz`.
pub fn local(t: &Timestamp, tz: &jiff::tz::TimeZone) -> Option<jiff::civil::DateTime> {
    let ts = jiff::Timestamp::from_second(t.timestamp()).ok()?;
    Some(tz.to_datetime(ts))
}

/// Whether a window that opens at `start` and closes at `end` is open at `t`.
pub fn window_open(start: &Cron, end: &Cron, t: &Timestamp, tz: &jiff::tz::TimeZone) -> bool {
    let Some(now) = local(t, tz) else { return false };
    match (start.prev(now), end.prev(now)) {
        (Some(s), Some(e)) => s > e,
        (Some(_), None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        crate::domain::time::parse_timestamp(s).unwrap()
    }

    #[test]
    fn parses_and_rejects() {
        assert!(Cron::parse("0 8 * * 1-5").is_ok());
        assert!(Cron::parse("*/15 * * * *").is_ok());
        assert!(Cron::parse("0 8 * * mon-fri").is_ok());
        assert!(Cron::parse("0 24 * * *").is_err());
        assert!(Cron::parse("0 8 * *").is_err());
        assert!(Cron::parse("x 8 * * *").is_err());
    }

    #[test]
    fn business_hours_window_in_a_time_zone() {
        let start = Cron::parse("0 8 * * 1-5").unwrap();
        let end = Cron::parse("0 20 * * 1-5").unwrap();
        let paris = parse_tz("Europe/Paris").unwrap();
        // Wednesday 2026-11-25: 08:00 Paris is 07:00 UTC in winter.
        assert!(!window_open(&start, &end, &at("2026-11-25T06:59:00Z"), &paris));
        assert!(window_open(&start, &end, &at("2026-11-25T07:00:00Z"), &paris));
        assert!(window_open(&start, &end, &at("2026-11-25T18:59:00Z"), &paris));
        assert!(!window_open(&start, &end, &at("2026-11-25T19:00:00Z"), &paris));
        // Saturday: closed all day.
        assert!(!window_open(&start, &end, &at("2026-11-28T12:00:00Z"), &paris));
        assert!(window_open(&start, &end, &at("2026-11-25T08:30:00Z"), &parse_tz("+01:00").unwrap()));
        assert!(parse_tz("Mars/Olympus").is_none());
    }
}
