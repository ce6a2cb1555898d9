//! Grafana's expansion of a SQL panel's query: template variables, global
//! variables, then the PostgreSQL datasource's macros.

use super::*;

/// A template variable's value: one (inserted as is, quotes doubled), or
/// several (each quoted, comma separated), as Grafana's SQL datasources do.
#[derive(Clone, Debug)]
pub(crate) enum VarValue {
    Single(String),
    Multi(Vec<String>),
}

/// What a query is expanded with: the time range (ms since the epoch),
/// the interval, and the variables' values.
#[derive(Clone, Debug)]
pub(crate) struct Ctx {
    pub(crate) from_ms: i64,
    pub(crate) to_ms: i64,
    pub(crate) interval_ms: i64,
    pub(crate) vars: BTreeMap<String, VarValue>,
}

impl Ctx {
    /// For the structure check: expansion must succeed, whatever the values.
    pub(crate) fn example() -> Ctx {
        Ctx { from_ms: 1_764_633_600_000, to_ms: 1_764_655_200_000, interval_ms: 60_000, vars: BTreeMap::new() }
    }
}

/// Step 1, the frontend's: template variables (longest names first, so
/// `$hosts` is not read as `$host` + `s`).
pub(crate) fn interpolate_vars(sql: &str, vars: &BTreeMap<String, VarValue>) -> String {
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut s = sql.to_string();
    for name in names {
        let text = match &vars[name] {
            VarValue::Single(v) => v.replace('\'', "''"),
            VarValue::Multi(vs) => vs.iter().map(|v| format!("'{}'", v.replace('\'', "''"))).collect::<Vec<_>>().join(","),
        };
        s = s.replace(&format!("${{{name}}}"), &text).replace(&format!("[[{name}]]"), &text);
        let pat = format!("${name}");
        let mut out = String::new();
        let mut rest = s.as_str();
        while let Some(i) = rest.find(&pat) {
            let after = rest[i + pat.len()..].chars().next();
            out.push_str(&rest[..i]);
            if after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                out.push_str(&pat);
            } else {
                out.push_str(&text);
            }
            rest = &rest[i + pat.len()..];
        }
        out.push_str(rest);
        s = out;
    }
    s
}

/// Go's `%v` of a float64 (strconv 'g', shortest): Grafana prints interval
/// seconds this way into `$__timeGroup` and `$__unixEpochGroup`.
pub(crate) fn go_float(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap();
    let exp: i32 = exp.parse().unwrap();
    if !(-4..6).contains(&exp) {
        format!("{mantissa}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    } else {
        format!("{v}")
    }
}

/// gtime.FormatInterval: the largest whole unit, truncated.
pub(crate) fn format_interval(ms: i64) -> String {
    let (s, m, h, d, y) = (1_000, 60_000, 3_600_000, 86_400_000, 31_536_000_000);
    match ms {
        _ if ms >= y => format!("{}y", ms / y),
        _ if ms >= d => format!("{}d", ms / d),
        _ if ms >= h => format!("{}h", ms / h),
        _ if ms >= m => format!("{}m", ms / m),
        _ if ms >= s => format!("{}s", ms / s),
        _ if ms >= 1 => format!("{ms}ms"),
        _ => "1ms".into(),
    }
}

/// gtime.ParseInterval for the units dashboards use (months and years,
/// which Grafana measures from now, are refused here).
pub(crate) fn parse_interval(text: &str) -> Result<f64, String> {
    let t = text.trim_matches('\'');
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').ok_or_else(|| format!("interval {text:?} has no unit"))?;
    let (n, unit) = t.split_at(split);
    let n: f64 = n.parse().map_err(|_| format!("error parsing interval {text}"))?;
    let secs = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        "w" => 604800.0,
        _ => return Err(format!("error parsing interval {text}")),
    };
    Ok(n * secs)
}

/// Go's RFC3339Nano in UTC: trailing zeros of the fraction dropped.
pub(crate) fn rfc3339_nano(ms: i64) -> String {
    let t = chrono::DateTime::from_timestamp_millis(ms).unwrap();
    let frac = format!("{:09}", t.timestamp_subsec_nanos());
    let frac = frac.trim_end_matches('0');
    let base = t.format("%Y-%m-%dT%H:%M:%S");
    if frac.is_empty() { format!("{base}Z") } else { format!("{base}.{frac}Z") }
}

/// One macro, as Grafana's PostgreSQL macro engine writes it (TimescaleDB off).
pub(crate) fn eval_macro(name: &str, args: &[&str], c: &Ctx) -> Result<String, String> {
    let (from_s, to_s) = (c.from_ms.div_euclid(1000), c.to_ms.div_euclid(1000));
    let col = || args.first().filter(|a| !a.is_empty()).copied().ok_or_else(|| format!("missing time column argument for macro {name}"));
    let group = || -> Result<f64, String> {
        if args.len() < 2 {
            return Err(format!("macro {name} needs time column and interval and optional fill value"));
        }
        parse_interval(args[1])
    };
    Ok(match name {
        "__time" => format!("{} AS \"time\"", col()?),
        "__timeEpoch" => format!("extract(epoch from {}) as \"time\"", col()?),
        "__timeFilter" => format!("{} BETWEEN '{}' AND '{}'", col()?, rfc3339_nano(c.from_ms), rfc3339_nano(c.to_ms)),
        "__timeFrom" => format!("'{}'", rfc3339_nano(c.from_ms)),
        "__timeTo" => format!("'{}'", rfc3339_nano(c.to_ms)),
        "__timeGroup" => {
            let s = go_float(group()?);
            format!("floor(extract(epoch from {})/{s})*{s}", args[0])
        }
        "__timeGroupAlias" => format!("{} AS \"time\"", eval_macro("__timeGroup", args, c)?),
        "__unixEpochFilter" => format!("{0} >= {from_s} AND {0} <= {to_s}", col()?),
        "__unixEpochNanoFilter" => format!("{0} >= {1} AND {0} <= {2}", col()?, c.from_ms as i128 * 1_000_000, c.to_ms as i128 * 1_000_000),
        "__unixEpochNanoFrom" => format!("{}", c.from_ms as i128 * 1_000_000),
        "__unixEpochNanoTo" => format!("{}", c.to_ms as i128 * 1_000_000),
        "__unixEpochGroup" => {
            let s = go_float(group()?);
            format!("floor(({})/{s})*{s}", args[0])
        }
        "__unixEpochGroupAlias" => format!("{} AS \"time\"", eval_macro("__unixEpochGroup", args, c)?),
        _ => return Err(format!("unknown macro \"{name}\"")),
    })
}

/// A query as Grafana sends it to PostgreSQL: template variables, then the
/// global substitutions (`$__interval_ms` before `$__interval`, then
/// `$__unixEpochFrom()` and `$__unixEpochTo()`), then every
/// `\$(\w+)\(([^)]*)\)` through the macro engine, arguments split on commas
/// and trimmed of spaces. Anything left that looks like a variable or a
/// macro is an error here (Grafana would send it and PostgreSQL refuse it).
pub(crate) fn expand(sql: &str, c: &Ctx) -> Result<String, String> {
    let s = interpolate_vars(sql, &c.vars);
    let s = s
        .replace("$__interval_ms", &c.interval_ms.to_string())
        .replace("$__interval", &format_interval(c.interval_ms))
        .replace("$__unixEpochFrom()", &c.from_ms.div_euclid(1000).to_string())
        .replace("$__unixEpochTo()", &c.to_ms.div_euclid(1000).to_string());
    let mut out = String::new();
    let mut i = 0;
    let b = s.as_bytes();
    while i < b.len() {
        if b[i] == b'$' {
            let n = b[i + 1..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
            if n > 0 && b.get(i + 1 + n) == Some(&b'(') {
                let open = i + 1 + n;
                if let Some(close) = s[open..].find(')') {
                    let mut name = &s[i + 1..open];
                    // Grafana's pre-5.3 compatibility: $__timeGroup(…) followed by ',' gets AS "time".
                    if name == "__timeGroup" && b.get(open + close + 1) == Some(&b',') {
                        name = "__timeGroupAlias";
                    }
                    let args: Vec<&str> = s[open + 1..open + close].split(',').map(|a| a.trim_matches(' ')).collect();
                    out.push_str(&eval_macro(name, &args, c)?);
                    i = open + close + 1;
                    continue;
                }
            }
        }
        out.push(b[i] as char);
        i += 1;
    }
    if let Some(left) = variable_refs(&out).first() {
        return Err(format!("${left} is left after expansion"));
    }
    Ok(out)
}

#[test]
pub(crate) fn the_expander_writes_what_grafana_writes() {
    // 2018-04-12T18:00:00Z to 18:05:00Z, the range of Grafana's own macro tests.
    let c = Ctx { from_ms: 1_523_556_000_000, to_ms: 1_523_556_300_000, interval_ms: 300_000, vars: BTreeMap::new() };
    let e = |s: &str| expand(s, &c).unwrap();
    assert_eq!(e("WHERE $__timeFilter(time_column)"), "WHERE time_column BETWEEN '2018-04-12T18:00:00Z' AND '2018-04-12T18:05:00Z'");
    assert_eq!(e("GROUP BY $__timeGroup(time_column,'5m')"), "GROUP BY floor(extract(epoch from time_column)/300)*300");
    assert_eq!(e("SELECT $__timeGroup(time_column,'5m'), 1"), "SELECT floor(extract(epoch from time_column)/300)*300 AS \"time\", 1");
    assert_eq!(e("$__timeGroupAlias(t, $__interval)"), "floor(extract(epoch from t)/300)*300 AS \"time\"");
    assert_eq!(e("$__unixEpochFilter(time)"), "time >= 1523556000 AND time <= 1523556300");
    assert_eq!(e("$__unixEpochGroupAlias(start_us / 1000000, '1h')"), "floor((start_us / 1000000)/3600)*3600 AS \"time\"");
    assert_eq!(e("$__unixEpochFrom() $__unixEpochTo() $__interval_ms $__interval"), "1523556000 1523556300 300000 5m");
    assert_eq!(e("$__time(t) $__timeFrom() $__timeTo()"), "t AS \"time\" '2018-04-12T18:00:00Z' '2018-04-12T18:05:00Z'");
    assert_eq!(e("$__unixEpochNanoFilter(t)"), "t >= 1523556000000000000 AND t <= 1523556300000000000");
    assert_eq!(e("$__unixEpochGroup(t, '2w')"), "floor((t)/1.2096e+06)*1.2096e+06");
    assert!(expand("$__timeFilterr(t)", &c).unwrap_err().contains("unknown macro"));
    assert!(expand("$__timeGroup(t)", &c).is_err());
    assert!(expand("WHERE tenant = '$tenant'", &c).unwrap_err().contains("$tenant"));
    // Variables: one value as is (quotes doubled), several quoted; longer names first.
    let mut v = c.clone();
    v.vars.insert("tenant".into(), VarValue::Single("o'brien".into()));
    v.vars.insert("host".into(), VarValue::Multi(vec!["a".into(), "b".into()]));
    v.vars.insert("hosts".into(), VarValue::Single("x".into()));
    assert_eq!(expand("'$tenant' IN ($host) ${host} [[hosts]] $hosts", &v).unwrap(), "'o''brien' IN ('a','b') 'a','b' x x");
    assert_eq!((format_interval(90_000), format_interval(7_200_000), format_interval(500), format_interval(0)), ("1m".into(), "2h".into(), "500ms".into(), "1ms".into()));
    assert_eq!((go_float(3600.0), go_float(0.5), go_float(86400.0), go_float(1e6)), ("3600".into(), "0.5".into(), "86400".into(), "1e+06".into()));
}
