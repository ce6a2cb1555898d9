//! Parse grid carbon-intensity CSV files into rows ready for the database.
//!
//! Supported shapes, told apart by their header (never by file name):
//! Ember country averages, Electricity Maps yearly zone averages, the
//! Electricity Maps hourly export, the combined table that merges those with
//! cloud regions, Cloud Carbon Footprint (CCF) cloud-region factors, and
//! fairwatt's own hourly `region,start,gco2e_per_kwh[,source]` format.
//!
//! [`parse`] is all-or-nothing: it collects every problem it finds (up to
//! [`MAX_ERRORS`]) so an operator can fix a file in one pass, and returns no
//! rows at all when there is any error. Rows that are legitimately not
//! importable (aggregates without a region code, market-adjusted factors) are
//! not errors; they are reported in [`Parsed::skipped`].
//!
//! Intensities are stored as integer milligrams CO2e per kWh, converted from
//! the decimal text without going through floating point so that the stored
//! value is exactly what the file says, rounded half away from zero.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime};

/// Errors beyond this many are dropped; a file this broken needs a human anyway.
pub const MAX_ERRORS: usize = 50;
/// 3000 g/kWh is well above the dirtiest real grid (lignite is ~1200); higher is a unit mix-up.
const MAX_MG_PER_KWH: i64 = 3_000_000;
const HOUR_US: i64 = 3_600_000_000;
const FIRST_YEAR: i32 = 1990;
const LAST_YEAR: i32 = 2100;
/// CCF publishes only location-based factors for most regions; the GCP
/// CFE-adjusted ones would collide with them, so only this basis is imported.
const LOCATION_BASIS: &str = "grid_location_based";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Granularity {
    Hourly,
    Yearly,
    /// A factor with no date (CCF); valid for all time.
    Constant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Ember,
    ElectricityMapsYearly,
    ElectricityMapsHourly,
    Combined,
    CloudCarbonFootprint,
    Fairwatt,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IntensityRow {
    /// ISO3 (Ember), zone id (Electricity Maps), `code` (combined),
    /// `provider:region` with a lowercased provider (CCF), as given (fairwatt).
    pub region: String,
    /// Microseconds since the Unix epoch, UTC; `i64::MIN / 2` for Constant.
    pub start_us: i64,
    /// Exclusive; `i64::MAX / 2` for Constant.
    pub end_us: i64,
    pub granularity: Granularity,
    pub mg_per_kwh: i64,
    /// Human-readable provenance; never empty.
    pub source: String,
    /// 1-based line in the file.
    pub line: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    pub format: Format,
    pub rows: Vec<IntensityRow>,
    /// (line, reason) for rows deliberately not imported.
    pub skipped: Vec<(usize, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    UnknownFormat {
        header: String,
    },
    Row {
        line: usize,
        column: String,
        message: String,
    },
    Duplicate {
        line: usize,
        first_line: usize,
        region: String,
    },
    Empty,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownFormat { header } => write!(f, "unrecognised CSV header: {header}"),
            Self::Row {
                line,
                column,
                message,
            } => {
                write!(f, "line {line}, column `{column}`: {message}")
            }
            Self::Duplicate {
                line,
                first_line,
                region,
            } => write!(
                f,
                "line {line}: duplicate of line {first_line} for region `{region}`"
            ),
            Self::Empty => write!(f, "CSV has no data rows"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Where the interesting columns are in this particular file.
struct Cols {
    format: Format,
    /// Column names as written, for error messages.
    headers: Vec<String>,
    region: usize,
    /// Year for yearly formats, hour start for hourly ones.
    when: Option<usize>,
    /// The intensity; for Electricity Maps hourly the life-cycle one when present.
    value: usize,
    /// Electricity Maps hourly: the direct intensity, used when `value` is blank.
    direct: Option<usize>,
    /// CCF splits `provider` from `cloud_region`.
    provider: Option<usize>,
    source: Option<usize>,
    /// CCF `basis` or combined `kind`; decides Constant vs yearly and what is skipped.
    basis: Option<usize>,
    /// A display name that makes skip reasons readable.
    label: Option<usize>,
}

/// Header shapes, tried in order: (format, region column, time column, another
/// required column), normalized, `|` between alternatives. Combined also has
/// `year` and a name column, so it goes first.
const SHAPES: [(Format, &str, &str, &str); 6] = [
    (Format::Combined, "code", "year", "kind"),
    (Format::Ember, "countrycodeiso3", "year", ""),
    (Format::ElectricityMapsYearly, "zone", "year", ""),
    (Format::CloudCarbonFootprint, "cloudregion", "", "provider"),
    (Format::Fairwatt, "region", "start", ""),
    (
        Format::ElectricityMapsHourly,
        "zoneid",
        "datetimeutc|datetime",
        "",
    ),
];

/// Compare header names ignoring case, spacing, punctuation and the subscript
/// in "gCO₂eq", since exports rename those freely.
fn norm(h: &str) -> String {
    h.chars()
        .map(|c| if c == '₂' { '2' } else { c })
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

fn detect(headers: &[String]) -> Option<Cols> {
    let names: Vec<String> = headers.iter().map(|h| norm(h)).collect();
    let find = |want: &str| names.iter().position(|h| want.split('|').any(|w| w == h));
    let intensity = |kind: &str| {
        names
            .iter()
            .position(|h| h.starts_with("carbonintensity") && h.contains(kind))
    };
    let (life, direct) = (intensity("lifecycle"), intensity("direct"));
    SHAPES.iter().find_map(|&(format, region, when, also)| {
        let (value, direct) = match format {
            Format::ElectricityMapsHourly => (life.or(direct)?, direct),
            _ => (find("gco2eperkwh")?, None),
        };
        let when = if when.is_empty() {
            None
        } else {
            Some(find(when)?)
        };
        if !also.is_empty() {
            find(also)?;
        }
        Some(Cols {
            format,
            headers: headers.to_vec(),
            region: find(region)?,
            when,
            value,
            direct,
            provider: find("provider"),
            source: find("source|datasource"),
            basis: find("basis|kind"),
            label: find("countryorregion|zonename|name|location"),
        })
    })
}

/// Parse a grid-intensity CSV. Any error means nothing should be imported.
pub fn parse(text: &str) -> Result<Parsed, Vec<ParseError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true) // so a ragged row becomes a located error, not an opaque csv one
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = match rdr.headers() {
        Ok(h) => h.iter().map(str::to_owned).collect(),
        Err(e) => return Err(vec![row_err(1, "", e.to_string())]),
    };
    if headers.iter().all(String::is_empty) {
        return Err(vec![ParseError::Empty]);
    }
    let Some(cols) = detect(&headers) else {
        let header = headers.join(",");
        return Err(vec![ParseError::UnknownFormat { header }]);
    };

    let (mut rows, mut skipped, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    let mut seen: HashMap<(String, i64, Granularity), usize> = HashMap::new();
    let mut lines = LineCounter::default();
    let mut any_record = false;
    for rec in rdr.records() {
        if errors.len() >= MAX_ERRORS {
            break;
        }
        any_record = true;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| lines.line_at(text, p.byte()));
                errors.push(row_err(line, "", e.to_string()));
                continue;
            }
        };
        let line = rec.position().map_or(0, |p| lines.line_at(text, p.byte()));
        if rec.len() != headers.len() {
            let column = headers.get(rec.len()).map_or("", String::as_str);
            let (n, m) = (rec.len(), headers.len());
            let message = format!("row has {n} fields but the header has {m}");
            errors.push(row_err(line, column, message));
            continue;
        }
        match row(&cols, &rec, line, &mut errors) {
            Some(Outcome::Keep(row)) => {
                let key = (row.region.clone(), row.start_us, row.granularity);
                if let Some(&first_line) = seen.get(&key) {
                    let region = row.region;
                    errors.push(ParseError::Duplicate {
                        line,
                        first_line,
                        region,
                    });
                } else {
                    seen.insert(key, line);
                    rows.push(row);
                }
            }
            Some(Outcome::Skip(reason)) => skipped.push((line, reason)),
            None => {}
        }
    }
    errors.truncate(MAX_ERRORS);
    if !errors.is_empty() {
        return Err(errors);
    }
    if !any_record {
        return Err(vec![ParseError::Empty]);
    }
    let format = cols.format;
    Ok(Parsed {
        format,
        rows,
        skipped,
    })
}

/// The csv crate's own line numbers drift on CRLF files and after blank
/// lines (its positions start at the previous terminator), and real exports
/// are CRLF, so lines are counted here from byte offsets instead.
#[derive(Default)]
struct LineCounter {
    pos: usize,
    /// Lines finished before `pos`.
    done: usize,
}

impl LineCounter {
    /// 1-based line of the first non-terminator byte at or after `byte`;
    /// offsets must not decrease between calls.
    fn line_at(&mut self, text: &str, byte: u64) -> usize {
        let t = text.as_bytes();
        let mut start = usize::try_from(byte).unwrap_or(t.len()).max(self.pos);
        while start < t.len() && matches!(t[start], b'\r' | b'\n') {
            start += 1;
        }
        for i in self.pos..start {
            // "\r\n" is one terminator; a lone "\r" or "\n" is one too.
            let lone_cr = t[i] == b'\r' && t.get(i + 1) != Some(&b'\n');
            self.done += usize::from(t[i] == b'\n' || lone_cr);
        }
        self.pos = start;
        self.done + 1
    }
}

enum Outcome {
    Keep(IntensityRow),
    Skip(String),
}

/// Parse one record, pushing its errors; `None` when it had any.
fn row(
    c: &Cols,
    rec: &csv::StringRecord,
    line: usize,
    errors: &mut Vec<ParseError>,
) -> Option<Outcome> {
    let headers = &c.headers;
    let get = |i: usize| rec.get(i).unwrap_or("");
    let opt = |i: Option<usize>| i.map_or("", get);
    let err = |i: usize, message: String| row_err(line, &headers[i], message);

    let raw = get(c.region);
    if raw.is_empty() {
        if c.format == Format::Fairwatt {
            errors.push(err(c.region, "empty region".into()));
            return None;
        }
        // Upstream files list aggregates (continents, "World", G20) without a code.
        let what = match opt(c.label) {
            "" => String::new(),
            l => format!(" ({l})"),
        };
        return Some(Outcome::Skip(format!("no `{}`{what}", headers[c.region])));
    }
    let cloud = match (c.format, opt(c.basis).split_once(':')) {
        (Format::CloudCarbonFootprint, _) => Some(opt(c.basis)),
        (Format::Combined, Some(("cloud_region", b))) => Some(b),
        _ => None,
    };
    if let Some(b) = cloud
        && !b.is_empty()
        && b != LOCATION_BASIS
    {
        let reason = format!("{raw}: basis `{b}` is not {LOCATION_BASIS}");
        return Some(Outcome::Skip(reason));
    }
    let region = match (c.format, cloud) {
        (Format::CloudCarbonFootprint, _) => cloud_region(&format!("{}:{raw}", opt(c.provider))),
        (_, Some(_)) => cloud_region(raw),
        _ => raw.to_owned(),
    };

    let value_idx = match c.direct {
        Some(direct) if get(c.value).is_empty() => direct,
        _ => c.value,
    };
    let mg = parse_mg(get(value_idx)).map_err(|m| errors.push(err(value_idx, m)));
    let (when_idx, when) = c.when.map_or((0, ""), |i| (i, get(i)));
    let period = match c.format {
        _ if cloud.is_some() => Ok((i64::MIN / 2, i64::MAX / 2, Granularity::Constant)),
        Format::ElectricityMapsHourly | Format::Fairwatt => {
            parse_hour(when, c.format == Format::Fairwatt)
                .map(|s| (s, s + HOUR_US, Granularity::Hourly))
        }
        _ => parse_year(when).map(|(s, e)| (s, e, Granularity::Yearly)),
    };
    let period = period.map_err(|m| errors.push(err(when_idx, m)));
    let (Ok(mg_per_kwh), Ok((start_us, end_us, granularity))) = (mg, period) else {
        return None;
    };

    let src = opt(c.source);
    let or = |default: &str| if src.is_empty() { default } else { src }.to_owned();
    let source = match c.format {
        _ if cloud.is_some() => {
            let src = match c.format {
                Format::CloudCarbonFootprint if !src.is_empty() => {
                    format!("Cloud Carbon Footprint: {src}")
                }
                _ => or("Cloud Carbon Footprint"),
            };
            // Cloud rows carry a data vintage ("2021", "2020?"), not a validity period.
            if when.is_empty() {
                src
            } else {
                format!("{src} ({when})")
            }
        }
        Format::ElectricityMapsHourly => {
            let direct = Some(value_idx) == c.direct;
            let kind = if direct { "direct" } else { "life cycle" };
            match src {
                "" => format!("Electricity Maps hourly ({kind})"),
                ds => format!("Electricity Maps hourly ({kind}; {ds})"),
            }
        }
        Format::Fairwatt => or("fairwatt"),
        Format::Ember => yearly_source(&or("Ember"), when),
        _ => yearly_source(&or("Electricity Maps"), when),
    };
    Some(Outcome::Keep(IntensityRow {
        region,
        start_us,
        end_us,
        granularity,
        mg_per_kwh,
        source,
        line,
    }))
}

fn row_err(line: usize, column: &str, message: String) -> ParseError {
    let column = column.to_owned();
    ParseError::Row {
        line,
        column,
        message,
    }
}

/// `AWS:us-east-1` -> `aws:us-east-1`, so both CCF sources key the same way.
/// CCF marks some Azure regions with a footnote `*`, which is not part of the name.
fn cloud_region(code: &str) -> String {
    let code = code.trim_end_matches('*').trim_end();
    match code.split_once(':') {
        Some((provider, name)) => format!("{}:{name}", provider.to_lowercase()),
        None => code.to_owned(),
    }
}

/// "Ember yearly via co2.js" + 2023 -> "Ember 2023 via co2.js".
fn yearly_source(src: &str, year: &str) -> String {
    if src.contains("yearly") {
        src.replacen("yearly", year, 1)
    } else {
        format!("{src} {year}")
    }
}

fn check_year(year: i32) -> Result<(), String> {
    if (FIRST_YEAR..=LAST_YEAR).contains(&year) {
        Ok(())
    } else {
        Err(format!("year {year} outside {FIRST_YEAR}..={LAST_YEAR}"))
    }
}

fn parse_year(s: &str) -> Result<(i64, i64), String> {
    let year: i32 = s
        .parse()
        .map_err(|_| format!("invalid year {s:?}: not an integer"))?;
    check_year(year)?;
    let jan1 = |y| NaiveDate::from_ymd_opt(y, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0));
    let micros = |y| jan1(y).map_or(0, |d| d.and_utc().timestamp_micros());
    Ok((micros(year), micros(year + 1)))
}

/// Hour start in µs. `strict` (fairwatt's own format) demands RFC 3339 in UTC;
/// otherwise Electricity Maps' zone-less `2024-01-01 00:00:00` is read as UTC
/// because its column is labelled UTC.
fn parse_hour(s: &str, strict: bool) -> Result<i64, String> {
    const NAIVE: [&str; 3] = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ];
    let naive = || {
        NAIVE
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    };
    let utc = if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        if strict && dt.offset().local_minus_utc() != 0 {
            return Err(format!("timestamp {s:?} is not UTC (use Z or +00:00)"));
        }
        dt.to_utc()
    } else if !strict && let Some(dt) = naive() {
        dt.and_utc()
    } else {
        return Err(format!("invalid timestamp {s:?}: expected RFC 3339"));
    };
    check_year(chrono::Datelike::year(&utc)).map_err(|e| format!("timestamp {s:?}: {e}"))?;
    let us = utc.timestamp_micros();
    if us.rem_euclid(HOUR_US) != 0 {
        return Err(format!("timestamp {s:?} is not on the hour"));
    }
    Ok(us)
}

/// Decimal gCO2e/kWh text -> integer mg, exactly, rounding half away from zero.
fn parse_mg(s: &str) -> Result<i64, String> {
    if s.is_empty() {
        return Err("empty intensity".into());
    }
    let bad = |why: &str| Err(format!("invalid intensity {s:?}: {why}"));
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return bad("not a decimal number");
    }
    if neg && digits.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
        return bad("negative");
    }
    // This many integer digits is implausible anyway, and it keeps the sum below from overflowing.
    if int.trim_start_matches('0').len() > 9 {
        return bad("above 3000 gCO2e/kWh, implausible");
    }
    let whole: i64 = int.parse().unwrap_or(0); // digits checked above; only "" fails
    let mut f = frac.bytes().map(|b| i64::from(b - b'0'));
    let milli = (0..3).fold(0, |acc, _| acc * 10 + f.next().unwrap_or(0));
    let mg = whole * 1000 + milli + i64::from(f.next().is_some_and(|d| d >= 5));
    if mg > MAX_MG_PER_KWH {
        return bad("above 3000 gCO2e/kWh, implausible");
    }
    Ok(mg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    const Y2023: i64 = 1_672_531_200_000_000;
    const Y2024: i64 = 1_704_067_200_000_000;
    const Y2025: i64 = 1_735_689_600_000_000;
    const H: i64 = HOUR_US;

    fn ok(text: &str) -> Parsed {
        parse(text).unwrap_or_else(|e| panic!("unexpected errors: {e:?}"))
    }

    fn errs(text: &str) -> Vec<String> {
        parse(text)
            .expect_err("expected errors")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn ember_yearly_with_aggregates_skipped() {
        let p = ok(
            "country_code_iso3,country_or_region,year,gco2e_per_kwh,source\r\n\
                    XAA,Atlantis,2023,412.345,Ember yearly via co2.js\r\n\
                    ,Middle Earth,2024,500,Ember yearly via co2.js\r\n\
                    XBB,\"Lilliput, Isle of\",2024,0,\r\n",
        );
        assert_eq!(p.format, Format::Ember);
        assert_eq!(p.rows.len(), 2);
        let r = &p.rows[0];
        assert_eq!(
            (r.region.as_str(), r.mg_per_kwh, r.line),
            ("XAA", 412_345, 2)
        );
        assert_eq!(
            (r.start_us, r.end_us, r.granularity),
            (Y2023, Y2024, Granularity::Yearly)
        );
        assert_eq!(r.source, "Ember 2023 via co2.js");
        // Blank source column still yields a named source.
        assert_eq!(
            (p.rows[1].mg_per_kwh, p.rows[1].source.as_str()),
            (0, "Ember 2024")
        );
        assert_eq!((p.rows[1].start_us, p.rows[1].end_us), (Y2024, Y2025));
        assert_eq!(p.skipped.len(), 1);
        assert_eq!(p.skipped[0].0, 3);
        assert!(p.skipped[0].1.contains("Middle Earth"), "{:?}", p.skipped);
    }

    #[test]
    fn electricity_maps_yearly_with_quoted_comma() {
        let p = ok(
            "zone,zone_name,year,gco2e_per_kwh,renewable_pct,carbon_free_pct,source\n\
                    XX-N,\"Widgets, Inc. North\",2024,77,50,60,Electricity Maps yearly via co2.js\n\
                    XX-N,\"Widgets, Inc. North\",2023,81.5,50,60,Electricity Maps yearly via co2.js\n",
        );
        assert_eq!(p.format, Format::ElectricityMapsYearly);
        let got: Vec<_> = p
            .rows
            .iter()
            .map(|r| (r.region.as_str(), r.start_us, r.mg_per_kwh))
            .collect();
        assert_eq!(got, [("XX-N", Y2024, 77_000), ("XX-N", Y2023, 81_500)]);
        assert_eq!(p.rows[0].source, "Electricity Maps 2024 via co2.js");
        assert!(p.skipped.is_empty());
    }

    #[test]
    fn electricity_maps_hourly_prefers_life_cycle() {
        let p = ok(
            "Datetime (UTC),Country,Zone name,Zone id,Carbon intensity gCO₂eq/kWh (direct),\
                    Carbon intensity gCO₂eq/kWh (Life cycle),Carbon-free energy percentage (CFE%),Data source\n\
                    2024-01-01 00:00:00,Freedonia,Freedonia,FD,100.25,120.5,40,grid.example\n\
                    2024-01-01T01:00:00.000Z,Freedonia,Freedonia,FD,90,,40,\n\
                    2024-01-01 02:00:00,Freedonia,Freedonia,,90,95,40,\n",
        );
        assert_eq!(p.format, Format::ElectricityMapsHourly);
        assert_eq!(p.rows.len(), 2);
        let (a, b) = (&p.rows[0], &p.rows[1]);
        assert_eq!(
            (a.region.as_str(), a.start_us, a.end_us, a.mg_per_kwh),
            ("FD", Y2024, Y2024 + H, 120_500)
        );
        assert_eq!(a.granularity, Granularity::Hourly);
        assert_eq!(
            a.source,
            "Electricity Maps hourly (life cycle; grid.example)"
        );
        assert_eq!(
            (b.start_us, b.mg_per_kwh, b.source.as_str()),
            (Y2024 + H, 90_000, "Electricity Maps hourly (direct)")
        );
        assert_eq!(p.skipped.len(), 1);
        assert_eq!(p.skipped[0].0, 4);
    }

    #[test]
    fn electricity_maps_hourly_tolerates_header_spelling() {
        let p = ok(
            "datetime_utc,zone_id,carbon intensity gco2eq/kwh (direct)\n2024-01-01T00:00:00+00:00,FD,10\n",
        );
        assert_eq!(p.format, Format::ElectricityMapsHourly);
        assert_eq!(
            (p.rows[0].mg_per_kwh, p.rows[0].source.as_str()),
            (10_000, "Electricity Maps hourly (direct)")
        );
        // Off-the-hour after conversion from a +05:30 offset.
        let e = errs(
            "Datetime (UTC),Zone id,Carbon intensity gCO2eq/kWh (Life cycle)\n2024-01-01T00:00:00+05:30,FD,10\n",
        );
        assert!(
            e[0].starts_with("line 2, column `Datetime (UTC)`") && e[0].contains("not on the hour"),
            "{e:?}"
        );
    }

    #[test]
    fn combined_mixes_yearly_and_constant_rows() {
        let p = ok("name,code,kind,gco2e_per_kwh,year,source,licence\n\
                    Atlantis,XAA,country_or_aggregate,412.3,2023,Ember yearly (via co2.js),CC\n\
                    Middle Earth,,country_or_aggregate,500,2024,Ember yearly (via co2.js),CC\n\
                    \"Widgets, Inc.\",XX-N,electricitymaps_zone,77,2024,Electricity Maps yearly (via co2.js),ODbL\n\
                    Oz,AWS:oz-east-1,cloud_region:grid_location_based,300.1234,2020?,CCF: EPA,Apache\n\
                    Oz,GCP:oz1,cloud_region:gcp_grid_adjusted_by_google_CFE_pct,30,,CCF: Google,Apache\n\
                    Oz,GCP:oz1,cloud_region:grid_location_based,301,,CCF: Google,Apache\n");
        assert_eq!(p.format, Format::Combined);
        let got: Vec<_> = p
            .rows
            .iter()
            .map(|r| (r.region.as_str(), r.granularity, r.mg_per_kwh, r.line))
            .collect();
        assert_eq!(
            got,
            [
                ("XAA", Granularity::Yearly, 412_300, 2),
                ("XX-N", Granularity::Yearly, 77_000, 4),
                ("aws:oz-east-1", Granularity::Constant, 300_123, 5),
                ("gcp:oz1", Granularity::Constant, 301_000, 7),
            ]
        );
        assert_eq!(p.rows[0].source, "Ember 2023 (via co2.js)");
        assert_eq!(
            (p.rows[2].start_us, p.rows[2].end_us),
            (i64::MIN / 2, i64::MAX / 2)
        );
        assert_eq!(p.rows[2].source, "CCF: EPA (2020?)");
        assert_eq!(p.skipped.iter().map(|s| s.0).collect::<Vec<_>>(), [3, 6]);
        assert!(
            p.skipped[1].1.contains("gcp_grid_adjusted"),
            "{:?}",
            p.skipped
        );
    }

    #[test]
    fn ccf_constant_factors() {
        let p = ok(
            "provider,cloud_region,location,us_nerc_region,gco2e_per_kwh,basis,source\n\
                    AWS,oz-east-1,Oz,,381.047,grid_location_based,EPA <https://epa.example>\n\
                    Azure,Oz Central*,\"Emerald City, Oz\",,5.6789,grid_location_based,\n\
                    GCP,oz1,Oz,,34.21,gcp_grid_adjusted_by_google_CFE_pct,Google\n",
        );
        assert_eq!(p.format, Format::CloudCarbonFootprint);
        let got: Vec<_> = p
            .rows
            .iter()
            .map(|r| (r.region.as_str(), r.mg_per_kwh))
            .collect();
        assert_eq!(
            got,
            [("aws:oz-east-1", 381_047), ("azure:Oz Central", 5_679)]
        );
        let r = &p.rows[0];
        assert_eq!(
            (r.start_us, r.end_us, r.granularity),
            (i64::MIN / 2, i64::MAX / 2, Granularity::Constant)
        );
        assert_eq!(
            r.source,
            "Cloud Carbon Footprint: EPA <https://epa.example>"
        );
        assert_eq!(p.rows[1].source, "Cloud Carbon Footprint");
        assert_eq!(p.skipped.len(), 1);
        assert_eq!(p.skipped[0].0, 4);
    }

    #[test]
    fn fairwatt_hourly_with_and_without_source() {
        let p = ok(
            "region,start,gco2e_per_kwh,source\nfw-1,2024-01-01T00:00:00Z,123.4565,meter feed\nfw-1,2024-01-01T01:00:00+00:00,1,\n",
        );
        assert_eq!(p.format, Format::Fairwatt);
        let r = &p.rows[0];
        assert_eq!(
            (r.region.as_str(), r.start_us, r.end_us, r.mg_per_kwh),
            ("fw-1", Y2024, Y2024 + H, 123_457)
        );
        assert_eq!(
            (r.source.as_str(), p.rows[1].source.as_str()),
            ("meter feed", "fairwatt")
        );
        let p = ok("region,start,gco2e_per_kwh\nfw-2,2023-01-01T00:00:00Z,7\n");
        assert_eq!(
            (p.rows[0].start_us, p.rows[0].source.as_str()),
            (Y2023, "fairwatt")
        );
    }

    #[test]
    fn fairwatt_rejects_local_naive_and_unaligned_times() {
        let e = errs(
            "region,start,gco2e_per_kwh\n\
                      fw,2024-01-01T01:00:00+01:00,1\n\
                      fw,2024-01-01 00:00:00,1\n\
                      fw,2024-01-01T00:30:00Z,1\n\
                      ,2024-01-01T00:00:00Z,1\n",
        );
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(
            e[0].starts_with("line 2, column `start`") && e[0].contains("not UTC"),
            "{e:?}"
        );
        assert!(
            e[1].starts_with("line 3, column `start`") && e[1].contains("expected RFC 3339"),
            "{e:?}"
        );
        assert!(
            e[2].starts_with("line 4, column `start`") && e[2].contains("not on the hour"),
            "{e:?}"
        );
        assert_eq!(e[3], "line 5, column `region`: empty region");
    }

    #[test]
    fn bad_intensities_name_column_and_value() {
        let e = errs(
            "zone,year,gco2e_per_kwh\nA,2024,-5\nB,2024,NaN\nC,2024,\nD,2024,12abc\nE,2024,3000.0005\nF,2024,99999999999999999999\n",
        );
        assert_eq!(
            e,
            [
                "line 2, column `gco2e_per_kwh`: invalid intensity \"-5\": negative",
                "line 3, column `gco2e_per_kwh`: invalid intensity \"NaN\": not a decimal number",
                "line 4, column `gco2e_per_kwh`: empty intensity",
                "line 5, column `gco2e_per_kwh`: invalid intensity \"12abc\": not a decimal number",
                "line 6, column `gco2e_per_kwh`: invalid intensity \"3000.0005\": above 3000 gCO2e/kWh, implausible",
                "line 7, column `gco2e_per_kwh`: invalid intensity \"99999999999999999999\": above 3000 gCO2e/kWh, implausible",
            ]
        );
    }

    #[test]
    fn decimal_conversion_is_exact() {
        for (s, mg) in [
            ("379.069", 379_069),
            ("0.0005", 1),
            ("0.00049999", 0),
            ("1.9995", 2_000),
            ("2.0004", 2_000),
            (".5", 500),
            ("5.", 5_000),
            ("+7", 7_000),
            ("-0.0", 0),
            ("0003000", 3_000_000),
            ("0.1", 100), // 0.1 has no exact f64; the text path must not care
        ] {
            assert_eq!(parse_mg(s), Ok(mg), "{s}");
        }
        for s in [".", "-", "1.2.3", "1e3", " ", "inf", "١٢"] {
            assert!(parse_mg(s).is_err(), "{s}");
        }
    }

    #[test]
    fn bad_years_and_row_shape() {
        let e = errs(
            "country_code_iso3,year,gco2e_per_kwh\nXAA,1989,1\nXBB,2101,1\nXCC,20x4,1\nXDD,2024\nXEE,2024,1,extra\n",
        );
        assert_eq!(
            e,
            [
                "line 2, column `year`: year 1989 outside 1990..=2100",
                "line 3, column `year`: year 2101 outside 1990..=2100",
                "line 4, column `year`: invalid year \"20x4\": not an integer",
                "line 5, column `gco2e_per_kwh`: row has 2 fields but the header has 3",
                "line 6, column ``: row has 4 fields but the header has 3",
            ]
        );
        // Both problems of one row are reported.
        assert_eq!(
            errs("country_code_iso3,year,gco2e_per_kwh\nXAA,1900,x\n").len(),
            2
        );
    }

    #[test]
    fn duplicates_are_errors_with_both_lines() {
        let e =
            parse("zone,year,gco2e_per_kwh\nA,2024,1\nB,2024,2\nA,2024,3\nA,2023,4\n").unwrap_err();
        assert_eq!(
            e,
            [ParseError::Duplicate {
                line: 4,
                first_line: 2,
                region: "A".into()
            }]
        );
        assert_eq!(
            e[0].to_string(),
            "line 4: duplicate of line 2 for region `A`"
        );
        let e = errs(
            "region,start,gco2e_per_kwh\nr,2024-01-01T00:00:00Z,1\nr,2024-01-01 00:00:00Z,1\n",
        );
        assert_eq!(e, ["line 3: duplicate of line 2 for region `r`"]);
    }

    #[test]
    fn unknown_and_empty_files() {
        let e = parse("provider,instance_type,total_embodied_kgco2e\nAWS,a1,1\n").unwrap_err();
        assert_eq!(
            e,
            [ParseError::UnknownFormat {
                header: "provider,instance_type,total_embodied_kgco2e".into()
            }]
        );
        assert!(e[0].to_string().contains("provider,instance_type"));
        assert_eq!(parse("").unwrap_err(), [ParseError::Empty]);
        assert_eq!(
            parse("\u{feff}zone,year,gco2e_per_kwh\r\n").unwrap_err(),
            [ParseError::Empty]
        );
        assert_eq!(ParseError::Empty.to_string(), "CSV has no data rows");
    }

    #[test]
    fn columns_are_found_by_name_not_position() {
        let p = ok(
            "source,gco2e_per_kwh,year,country_or_region,country_code_iso3\nEmber,1.5,2024,Atlantis,XAA\n",
        );
        assert_eq!(p.format, Format::Ember);
        let r = &p.rows[0];
        assert_eq!(
            (r.region.as_str(), r.mg_per_kwh, r.source.as_str()),
            ("XAA", 1_500, "Ember 2024")
        );
    }

    #[test]
    fn bom_and_whitespace_tolerated() {
        let p = ok("\u{feff}Zone , Year,GCO2E_PER_KWH\r\n A , 2024 , 12.5 \r\n\r\n");
        assert_eq!(p.format, Format::ElectricityMapsYearly);
        assert_eq!(
            (
                p.rows[0].region.as_str(),
                p.rows[0].mg_per_kwh,
                p.rows[0].line
            ),
            ("A", 12_500, 2)
        );
    }

    #[test]
    fn line_numbers_are_physical_lines() {
        // CRLF, blank lines, a lone-CR line and a quoted field spanning two lines.
        let text = "zone,zone_name,year,gco2e_per_kwh\r\nA,a,2024,1\r\n\r\nB,\"two\r\nlines\",2024,2\r\nC,c,2024,3\rD,d,2024,x\n";
        let e = errs(text);
        assert_eq!(
            e,
            ["line 7, column `gco2e_per_kwh`: invalid intensity \"x\": not a decimal number"]
        );
        let p = ok(&text.replace(",x", ",4"));
        assert_eq!(
            p.rows.iter().map(|r| r.line).collect::<Vec<_>>(),
            [2, 4, 6, 7]
        );
    }

    #[test]
    fn errors_are_capped_and_nothing_is_returned() {
        let mut text = String::from("zone,year,gco2e_per_kwh\nOK,2024,1\n");
        for i in 0..80 {
            text.push_str(&format!("Z{i},2024,bad\n"));
        }
        let e = parse(&text).unwrap_err();
        assert_eq!(e.len(), MAX_ERRORS);
        assert!(
            e[0].to_string()
                .starts_with("line 3, column `gco2e_per_kwh`")
        );
    }

    fn real_dir() -> PathBuf {
        match std::env::var_os("FAIRWATT_SHARED_DATA") {
            Some(d) => Path::new(&d).join("grid-intensity"),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/grid-intensity"),
        }
    }

    #[test]
    fn real_files_parse_cleanly() {
        let dir = real_dir();
        if !dir.is_dir() {
            eprintln!(
                "skipping real_files_parse_cleanly: {} not found",
                dir.display()
            );
            return;
        }
        let mut got = HashMap::new();
        for (file, format) in [
            ("ember_country_grid_intensity_latest.csv", Format::Ember),
            (
                "electricitymaps_zone_grid_intensity_yearly_2021_2025.csv",
                Format::ElectricityMapsYearly,
            ),
            ("grid_intensity_combined.csv", Format::Combined),
            (
                "ccf_cloud_region_emission_factors.csv",
                Format::CloudCarbonFootprint,
            ),
        ] {
            let path = dir.join(file);
            let Ok(text) = std::fs::read_to_string(&path) else {
                eprintln!("skipping {}: unreadable", path.display());
                continue;
            };
            let p = parse(&text).unwrap_or_else(|e| panic!("{file}: {:?}", &e[..e.len().min(5)]));
            assert_eq!(p.format, format, "{file}");
            assert!(p.rows.len() > 100, "{file}: only {} rows", p.rows.len());
            for r in &p.rows {
                assert!(
                    (0..=MAX_MG_PER_KWH).contains(&r.mg_per_kwh),
                    "{file}: {r:?}"
                );
                assert!(
                    !r.region.is_empty() && !r.source.is_empty() && r.start_us < r.end_us,
                    "{file}: {r:?}"
                );
                let yearly_ok = r.granularity != Granularity::Yearly
                    || (r.end_us - r.start_us) / H >= 365 * 24
                        && r.start_us >= Y2023 - 3 * 366 * 24 * H;
                assert!(yearly_ok, "{file}: {r:?}");
            }
            // Only code-less aggregates and CFE-adjusted cloud factors are skipped.
            for (line, why) in &p.skipped {
                assert!(
                    why.starts_with("no `") || why.contains("gcp_grid_adjusted"),
                    "{file}:{line}: {why}"
                );
            }
            let constant = p
                .rows
                .iter()
                .filter(|r| r.granularity == Granularity::Constant)
                .count();
            match format {
                Format::CloudCarbonFootprint => assert_eq!(constant, p.rows.len(), "{file}"),
                Format::Combined => assert!(constant > 0 && constant < p.rows.len(), "{file}"),
                _ => assert_eq!(constant, 0, "{file}"),
            }
            eprintln!("{file}: {} rows, {} skipped", p.rows.len(), p.skipped.len());
            got.insert(format, p);
        }
        // The combined table is the union of the other three; check they agree.
        let (Some(ember), Some(em), Some(comb), Some(ccf)) = (
            got.get(&Format::Ember),
            got.get(&Format::ElectricityMapsYearly),
            got.get(&Format::Combined),
            got.get(&Format::CloudCarbonFootprint),
        ) else {
            return;
        };
        assert_eq!(
            comb.rows.len(),
            ember.rows.len() + em.rows.len() + ccf.rows.len()
        );
        assert_eq!(comb.skipped.len(), ember.skipped.len() + ccf.skipped.len());
        let key = |r: &IntensityRow| (r.region.clone(), r.start_us, r.mg_per_kwh);
        let mut want: Vec<_> = [ember, em, ccf]
            .iter()
            .flat_map(|p| p.rows.iter().map(key))
            .collect();
        let mut have: Vec<_> = comb.rows.iter().map(key).collect();
        want.sort();
        have.sort();
        assert_eq!(have, want);
        assert!(ccf.rows.iter().any(|r| r.region == "aws:us-east-1"));
    }
}
