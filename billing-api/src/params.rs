//! Request parameters shared by the endpoints: ids, times, billing
//! periods, JSON bodies, each refused with a 400 that names the problem.

use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use serde::de::DeserializeOwned;

use fairwatt_core::Timestamp;

use crate::error::{ApiError, Result};

pub const HOUR_US: i64 = 3_600_000_000;
pub const DAY_US: i64 = 24 * HOUR_US;

/// Ids of tenants, hosts, VMs, tariffs: 1–128 of `A–Z a–z 0–9 - _ . :`.
pub fn check_id(what: &str, id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 128 || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c)) {
        return Err(ApiError::BadRequest(format!("{what} id {id:?} must be 1–128 characters of A–Z, a–z, 0–9, -, _, ., :")));
    }
    Ok(())
}

/// An RFC 3339 time as µs since the epoch.
pub fn parse_time(name: &str, s: &str) -> Result<i64> {
    let t: Timestamp = s.parse().map_err(|e| ApiError::BadRequest(format!("{name}: {e}")))?;
    Ok(t.as_micros())
}

/// µs since the epoch as RFC 3339 UTC, to the second when whole (as
/// FOCUS wants it), else to the µs; the raw number if out of range.
pub fn format_time(us: i64) -> String {
    match Utc.timestamp_micros(us).single() {
        Some(t) if us % 1_000_000 == 0 => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        None => us.to_string(),
    }
}

/// A JSON body of type `T`; unknown fields and wrong types are 400s.
pub fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("malformed body: {e}")))
}

/// `?limit=&offset=` of list endpoints: at most [`Page::MAX`] items a page.
#[derive(Clone, Copy, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    #[serde(default = "Page::default_limit")]
    pub limit: i64,
    #[serde(default)]
    pub offset: i64,
}

impl Page {
    pub const MAX: i64 = 1000;
    fn default_limit() -> i64 {
        100
    }

    /// The checked `(limit, offset)`.
    pub fn get(&self) -> Result<(i64, i64)> {
        if !(1..=Self::MAX).contains(&self.limit) || self.offset < 0 {
            return Err(ApiError::BadRequest(format!("limit must be 1–{} and offset not negative", Self::MAX)));
        }
        Ok((self.limit, self.offset))
    }
}

/// A billing period: `YYYY-MM` (a calendar month, UTC), or
/// `START/END` in RFC 3339 on whole hours. Returns `[start, end)` in µs.
pub fn parse_period(s: &str) -> Result<(i64, i64)> {
    let bad = || ApiError::BadRequest(format!("period {s:?}: expected YYYY-MM or START/END (RFC 3339, whole hours)"));
    if let Some((a, b)) = s.split_once('/') {
        let (start, end) = (parse_time("period start", a)?, parse_time("period end", b)?);
        if start % HOUR_US != 0 || end % HOUR_US != 0 || end <= start || end - start > 400 * DAY_US {
            return Err(bad());
        }
        return Ok((start, end));
    }
    let (y, m) = s.split_once('-').ok_or_else(bad)?;
    let (y, m): (i32, u32) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(2000..=2100).contains(&y) || s.len() != 7 {
        return Err(bad());
    }
    let first = NaiveDate::from_ymd_opt(y, m, 1).ok_or_else(bad)?;
    let next = if m == 12 { NaiveDate::from_ymd_opt(y + 1, 1, 1) } else { NaiveDate::from_ymd_opt(y, m + 1, 1) }.ok_or_else(bad)?;
    let us = |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight")).timestamp_micros();
    Ok((us(first), us(next)))
}

/// The last whole calendar month (UTC) before now, as `YYYY-MM`: the
/// default billing period.
pub fn last_month() -> String {
    let now = Utc::now();
    let (y, m) = if now.month() == 1 { (now.year() - 1, 12) } else { (now.year(), now.month() - 1) };
    format!("{y:04}-{m:02}")
}

/// The calendar month `YYYY-MM` that starts at `start_us`, if it is one.
pub fn month_name(start_us: i64, end_us: i64) -> Option<String> {
    let d = Utc.timestamp_micros(start_us).single()?;
    let name = format!("{:04}-{:02}", d.year(), d.month());
    (parse_period(&name).ok()? == (start_us, end_us)).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_months_or_hour_ranges() {
        let (s, e) = parse_period("2026-11").unwrap();
        assert_eq!(format_time(s), "2026-11-01T00:00:00Z");
        assert_eq!(e - s, 30 * DAY_US);
        let (s, e) = parse_period("2026-12").unwrap();
        assert_eq!(format_time(e), "2027-01-01T00:00:00Z");
        assert_eq!(month_name(s, e).as_deref(), Some("2026-12"));
        assert_eq!(parse_period("2026-11-03T00:00:00Z/2026-11-04T00:00:00Z").unwrap().1 - parse_period("2026-11-03T00:00:00Z/2026-11-04T00:00:00Z").unwrap().0, DAY_US);
        for bad in ["2026-13", "26-11", "2026-1", "november", "2026-11-03T00:30:00Z/2026-11-04T00:00:00Z", "2026-11-04T00:00:00Z/2026-11-03T00:00:00Z"] {
            assert!(parse_period(bad).is_err(), "{bad}");
        }
        assert!(month_name(s, s + DAY_US).is_none());
        let (a, b) = parse_period(&last_month()).unwrap();
        assert!(b <= Utc::now().timestamp_micros() && Utc::now().timestamp_micros() - b < 31 * DAY_US && b - a >= 28 * DAY_US);
    }

    #[test]
    fn ids_are_checked() {
        assert!(check_id("tenant", "acme-01.eu:x_y").is_ok());
        for bad in ["", "a b", "ä", &"x".repeat(129), "a/b"] {
            assert!(check_id("tenant", bad).is_err());
        }
    }
}
