//! Invoice documents: CSV (one row per line) and PDF (for people), both
//! from the stored invoice, so every format shows the same numbers.

use crate::error::{ApiError, Result};
use crate::invoices::Invoice;
use crate::money::{format_minor, minor_exponent};
use crate::params::format_time;
use crate::pdf::{Block, Column, Doc, render};

fn kwh(uj: i64) -> String {
    format!("{:.6}", uj as f64 / 3.6e12)
}

fn grams(mg: i64) -> String {
    format!("{:.3}", mg as f64 / 1000.0)
}

pub fn csv(inv: &Invoice) -> Result<Vec<u8>> {
    let exp = minor_exponent(&inv.currency)?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| ApiError::Database(format!("writing CSV: {e}"));
    w.write_record([
        "invoice", "number", "tenant", "period", "line", "vm", "region", "charge", "usage_start", "usage_end", "adjustment", "kwh", "energy_uj", "gco2e_location", "gco2e_market",
        "gco2e_embodied", "unit_price", "currency", "amount", "description",
    ])
    .map_err(err)?;
    for l in &inv.lines {
        w.write_record([
            inv.id.as_str(),
            inv.number.as_deref().unwrap_or(""),
            &inv.tenant,
            &inv.period,
            &l.line_no.to_string(),
            &l.vm,
            &l.region,
            &l.charge,
            &format_time(l.usage_start_us),
            &format_time(l.usage_end_us),
            if l.adjustment { "true" } else { "false" },
            &kwh(l.energy_uj),
            &l.energy_uj.to_string(),
            &grams(l.co2_location_mg),
            &grams(l.co2_market_mg),
            &grams(l.co2_embodied_mg),
            &l.unit_price,
            &inv.currency,
            &format_minor(l.cost_minor, exp),
            &l.description,
        ])
        .map_err(err)?;
    }
    w.into_inner().map_err(|e| ApiError::Database(format!("writing CSV: {e}")))
}

pub fn pdf(inv: &Invoice) -> Vec<u8> {
    let exp = minor_exponent(&inv.currency).unwrap_or(2);
    let title = match inv.kind.as_str() {
        "credit_note" => "Credit note",
        _ => "Invoice",
    };
    let number = inv.number.clone().unwrap_or_else(|| format!("{} (not issued)", inv.status.to_uppercase()));
    let mut blocks = vec![
        Block::Heading(format!("{title} {number}")),
        Block::KeyValues(vec![
            ("Issuer".into(), inv.issuer.clone()),
            ("Tenant".into(), inv.tenant.clone()),
            ("Period".into(), format!("{} ({} to {})", inv.period, inv.period_start, inv.period_end)),
            ("Status".into(), inv.status.clone()),
            ("Issued".into(), inv.issued.clone().unwrap_or_else(|| "-".into())),
            ("Invoice id".into(), inv.id.clone()),
        ]),
        Block::Spacer,
    ];
    if let Some(c) = &inv.corrects {
        blocks.push(Block::Text(format!("Corrects invoice {c}. Reason: {}", inv.reason.clone().unwrap_or_default())));
    }
    let columns = vec![
        Column { title: "#".into(), width_mm: 8.0, align_right: true },
        Column { title: "VM".into(), width_mm: 34.0, align_right: false },
        Column { title: "Charge".into(), width_mm: 18.0, align_right: false },
        Column { title: "kWh".into(), width_mm: 22.0, align_right: true },
        Column { title: "gCO2e loc.".into(), width_mm: 22.0, align_right: true },
        Column { title: "gCO2e mkt.".into(), width_mm: 22.0, align_right: true },
        Column { title: "gCO2e emb.".into(), width_mm: 20.0, align_right: true },
        Column { title: format!("Amount {}", inv.currency), width_mm: 28.0, align_right: true },
    ];
    let mut rows: Vec<Vec<String>> = inv
        .lines
        .iter()
        .map(|l| {
            let charge = if l.adjustment { format!("{} (adj.)", l.charge) } else { l.charge.clone() };
            vec![
                l.line_no.to_string(),
                l.vm.clone(),
                charge,
                format!("{:.3}", l.energy_uj as f64 / 3.6e12),
                grams(l.co2_location_mg),
                grams(l.co2_market_mg),
                grams(l.co2_embodied_mg),
                format_minor(l.cost_minor, exp),
            ]
        })
        .collect();
    rows.push(vec![
        String::new(),
        "Total".into(),
        String::new(),
        format!("{:.3}", inv.energy_kwh),
        grams((inv.co2e_location_g * 1000.0).round() as i64),
        grams((inv.co2e_market_g * 1000.0).round() as i64),
        grams((inv.co2e_embodied_g * 1000.0).round() as i64),
        inv.total.clone(),
    ]);
    blocks.push(Block::Table { columns, rows, bold_last_row: true });
    blocks.push(Block::Spacer);
    blocks.push(Block::Text(format!("Total due: {} {}", inv.total, inv.currency)));
    if inv.lines.iter().any(|l| l.adjustment) {
        blocks.push(Block::Text("Lines marked (adj.) are adjustments: energy for an earlier, already invoiced period that reached the ledger after that invoice was issued.".into()));
    }
    blocks.push(Block::Heading("Methodology".into()));
    let m = &inv.methodology;
    let mut kv = vec![("Idle policy".into(), m.idle_policy.clone()), ("Market-based".into(), m.market_based.clone()), ("Embodied".into(), m.embodied.clone())];
    kv.extend(m.attribution.iter().map(|a| ("Attribution".to_string(), a.clone())));
    kv.extend(m.intensity_sources.iter().map(|a| ("Grid intensity".to_string(), a.clone())));
    kv.extend(m.pue.iter().map(|a| ("PUE".to_string(), a.clone())));
    kv.extend(m.tariffs.iter().map(|a| ("Tariff".to_string(), a.clone())));
    kv.extend(m.notes.iter().map(|a| ("Note".to_string(), a.clone())));
    blocks.push(Block::KeyValues(kv));
    render(&Doc { title: format!("{title} {number}"), blocks })
}
