//! Reading the provisioning file and checking a dashboard's structure.

use super::*;

/// A provisioned datasource: its uid, plugin type and minimum interval.
#[derive(Clone, Debug)]
pub(crate) struct Datasource {
    pub(crate) uid: String,
    pub(crate) kind: String,
    pub(crate) time_interval: Option<String>,
}

/// The datasources of a Grafana provisioning file, read line by line:
/// each `- ` item under `datasources:` is one, and only its plain scalar
/// keys are needed (`uid`, `type`, `timeInterval`), so no YAML library.
pub(crate) fn parse_datasources(yaml: &str) -> Vec<Datasource> {
    let mut out: Vec<BTreeMap<String, String>> = Vec::new();
    let mut inside = false;
    for line in yaml.lines() {
        let t = line.trim_start();
        if t.starts_with('#') || t.is_empty() {
            continue;
        }
        if !line.starts_with(' ') && !line.starts_with('-') {
            inside = t.starts_with("datasources:");
            continue;
        }
        if !inside {
            continue;
        }
        let t = match t.strip_prefix("- ") {
            Some(rest) if line.len() - t.len() <= 2 => {
                out.push(BTreeMap::new());
                rest
            }
            _ => t,
        };
        if let (Some(entry), Some((k, v))) = (out.last_mut(), t.split_once(':')) {
            let v = v.split(" #").next().unwrap_or("").trim().trim_matches('"').trim_matches('\'');
            if !v.is_empty() {
                entry.entry(k.trim().to_string()).or_insert_with(|| v.to_string());
            }
        }
    }
    out.into_iter()
        .map(|e| Datasource { uid: e.get("uid").cloned().unwrap_or_default(), kind: e.get("type").cloned().unwrap_or_default(), time_interval: e.get("timeInterval").cloned() })
        .collect()
}

pub(crate) fn datasources() -> Vec<Datasource> {
    let path = repo().join("dashboards/provisioning/datasources/fairwatt.yaml");
    parse_datasources(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Every `*.json` in `dashboards/`, parsed, by file name.
pub(crate) fn dashboards() -> Vec<(String, Value)> {
    let dir = repo().join("dashboards");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().to_string(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

// -------------------------------------------------------- structure checks

/// Panels, with those inside collapsed rows.
pub(crate) fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

/// `$name`, `${name…}` and `[[name]]` references in `text`, as Grafana's
/// template service finds them.
pub(crate) fn variable_refs(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() && b[i + 1] == b'{' {
            let end = text[i..].find('}').map_or(b.len(), |e| i + e);
            let inner = &text[i + 2..end];
            out.push(inner.split([':', '.']).next().unwrap_or("").to_string());
            i = end;
        } else if b[i] == b'$' {
            let n = b[i + 1..].iter().take_while(|c| word(**c)).count();
            if n > 0 {
                out.push(text[i + 1..i + 1 + n].to_string());
            }
            i += n;
        } else if text[i..].starts_with("[[")
            && let Some(e) = text[i..].find("]]")
        {
            out.push(text[i + 2..i + e].split(':').next().unwrap_or("").to_string());
            i += e;
        }
        i += 1;
    }
    out
}

/// What is wrong with one dashboard (empty: nothing).
pub(crate) fn check_dashboard(d: &Value, ds: &[Datasource]) -> Vec<String> {
    let mut bad = Vec::new();
    let uid = d["uid"].as_str().unwrap_or("");
    if uid.is_empty() || d["title"].as_str().unwrap_or("").is_empty() {
        bad.push("dashboard without uid or title".to_string());
    }
    if !d["schemaVersion"].as_u64().is_some_and(|v| (36..=41).contains(&v)) {
        bad.push(format!("{uid}: schemaVersion {} (expected about 39)", d["schemaVersion"]));
    }
    let ds_type = |r: &Value| -> Result<String, String> {
        let u = r["uid"].as_str().ok_or_else(|| format!("datasource {r} without uid"))?;
        let found = ds.iter().find(|x| x.uid == u).ok_or_else(|| format!("datasource uid {u:?} is not provisioned"))?;
        match r["type"].as_str() {
            Some(t) if t != found.kind => Err(format!("datasource {u:?} has type {t:?}, provisioned as {:?}", found.kind)),
            _ => Ok(found.kind.clone()),
        }
    };
    // Template variables: defined once, each from a provisioned datasource.
    let mut vars = BTreeSet::new();
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        let name = v["name"].as_str().unwrap_or("").to_string();
        if !vars.insert(name.clone()) {
            bad.push(format!("{uid}: variable {name:?} defined twice"));
        }
        if v["type"] == "query" {
            if let Err(e) = ds_type(&v["datasource"]) {
                bad.push(format!("{uid}: variable {name}: {e}"));
            }
            if v["query"].as_str().unwrap_or("").trim().is_empty() {
                bad.push(format!("{uid}: variable {name} has no query"));
            }
        }
    }
    let refs_ok = |what: &str, text: &str, allow_macros: bool, bad: &mut Vec<String>| {
        for r in variable_refs(text) {
            if let Some(builtin) = r.strip_prefix("__") {
                let is_macro = MACROS.contains(&r.as_str()) && text.contains(&format!("${r}("));
                if !(BUILTINS.contains(&r.as_str()) || allow_macros && is_macro) {
                    bad.push(format!("{what}: unknown macro or built-in variable $__{builtin}"));
                }
            } else if !vars.contains(&r) {
                bad.push(format!("{what}: undefined variable ${r}"));
            }
        }
    };
    // Expansion must succeed with any values of the defined variables.
    let mut example = Ctx::example();
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        let value = if v["multi"] == true || v["includeAll"] == true { VarValue::Multi(vec!["a".into(), "b".into()]) } else { VarValue::Single("a".into()) };
        example.vars.insert(v["name"].as_str().unwrap_or("").to_string(), value);
    }
    let mut ids = BTreeSet::new();
    let mut boxes: Vec<(u64, [i64; 4])> = Vec::new();
    for p in panels(d) {
        let id = p["id"].as_u64().unwrap_or(0);
        let what = format!("{uid} panel {id} ({})", p["title"].as_str().unwrap_or("?"));
        if id == 0 {
            bad.push(format!("{what}: no positive id"));
        } else if !ids.insert(id) {
            bad.push(format!("{what}: duplicate panel id {id}"));
        }
        if p["type"].as_str().unwrap_or("").is_empty() || p["title"].as_str().unwrap_or("").is_empty() {
            bad.push(format!("{what}: no type or title"));
        }
        refs_ok(&what, p["title"].as_str().unwrap_or(""), false, &mut bad);
        let g = &p["gridPos"];
        let n = |k: &str| g[k].as_i64();
        match (n("x"), n("y"), n("w"), n("h")) {
            (Some(x), Some(y), Some(w), Some(h)) => {
                if x < 0 || y < 0 || w <= 0 || h <= 0 || x + w > 24 {
                    bad.push(format!("{what}: gridPos {g} is not inside the 24-column grid (x + w <= 24, w and h > 0)"));
                }
                for (other, [ox, oy, ow, oh]) in &boxes {
                    if x < ox + ow && *ox < x + w && y < oy + oh && *oy < y + h {
                        bad.push(format!("{what}: gridPos overlaps panel {other}"));
                    }
                }
                boxes.push((id, [x, y, w, h]));
            }
            _ => bad.push(format!("{what}: no gridPos with x, y, w and h")),
        }
        if p["type"] == "row" {
            continue;
        }
        let panel_kind = match ds_type(&p["datasource"]) {
            Ok(k) => Some(k),
            Err(e) => {
                bad.push(format!("{what}: {e}"));
                None
            }
        };
        let targets = p["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            bad.push(format!("{what}: no targets"));
        }
        let mut refids = BTreeSet::new();
        for t in &targets {
            let refid = t["refId"].as_str().unwrap_or("");
            if refid.is_empty() {
                bad.push(format!("{what}: a target without refId"));
            } else if !refids.insert(refid) {
                bad.push(format!("{what}: refId {refid} twice"));
            }
            let kind = match ds_type(&t["datasource"]) {
                Ok(k) => k,
                Err(e) => {
                    bad.push(format!("{what} target {refid}: {e}"));
                    continue;
                }
            };
            if panel_kind.as_ref().is_some_and(|pk| *pk != kind) || t["datasource"]["uid"] != p["datasource"]["uid"] {
                bad.push(format!("{what} target {refid}: another datasource than its panel's"));
            }
            if kind == PG_TYPE {
                let raw = t["rawSql"].as_str().unwrap_or("");
                if raw.trim().is_empty() || t["rawQuery"] != true || t["editorMode"] != "code" {
                    bad.push(format!("{what} target {refid}: an SQL target needs rawSql, rawQuery true and editorMode code"));
                }
                // Without a format Grafana takes time_series, which needs a time column.
                let format = t["format"].as_str().unwrap_or("");
                if format != "table" && format != "time_series" {
                    bad.push(format!("{what} target {refid}: format {format:?} (table or time_series)"));
                }
                refs_ok(&format!("{what} target {refid}"), raw, true, &mut bad);
                match EXPECTED.iter().find(|(u, pid, r, _)| *u == uid && *pid == id && *r == refid) {
                    None => bad.push(format!("{what} target {refid}: no expected columns declared in EXPECTED")),
                    Some((_, _, _, cols)) if format == "time_series" && cols.first() != Some(&"time") => {
                        bad.push(format!("{what} target {refid}: a time series must return a time column first"))
                    }
                    Some(_) => {}
                }
                if let Err(e) = expand(raw, &example) {
                    bad.push(format!("{what} target {refid}: {e}"));
                }
            } else if kind == PROM_TYPE {
                let expr = t["expr"].as_str().unwrap_or("");
                if expr.trim().is_empty() {
                    bad.push(format!("{what} target {refid}: a Prometheus target needs expr"));
                }
                refs_ok(&format!("{what} target {refid}"), expr, false, &mut bad);
            }
        }
    }
    // Declared expectations that name no target: a panel was removed or renumbered.
    for (u, pid, r, _) in EXPECTED.iter().filter(|e| e.0 == uid) {
        let found = panels(d).iter().any(|p| p["id"].as_u64() == Some(*pid) && p["targets"].as_array().into_iter().flatten().any(|t| t["refId"] == *r));
        if !found {
            bad.push(format!("{u}: EXPECTED names panel {pid} target {r}, which does not exist"));
        }
    }
    bad
}
