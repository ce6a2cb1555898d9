//! `GET /v1/exports/focus?period=YYYY-MM` (finance): the issued invoices
//! and credit notes of a billing period as a FinOps FOCUS 1.0 CSV, one row
//! per invoice line.
//!
//! Mapping: the billing account is the tenant (it receives the invoice);
//! the VM is the resource; a line's usage period is the charge period, so an
//! adjustment for an earlier month carries that month with ChargeClass
//! `Correction`, as do credit-note lines. Carbon goes in `x_` columns.
//!
//! Besides the spec's names, the columns `InvoiceIssuer`, `Provider`,
//! `Publisher`, `ResourceID` and `ChargeType` are written too: the FinOps
//! `focus-validator` 1.0.0 checks those older names. Every decimal is
//! written with a decimal point, since the validator types a column of
//! whole numbers as integers.

use actix_web::{HttpRequest, HttpResponse, web};
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::{Role, authenticate};
use crate::error::{ApiError, Result};
use crate::money::minor_exponent;
use crate::params::{format_time, parse_period};

pub const COLUMNS: [&str; 53] = [
    "AvailabilityZone", "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd", "BillingPeriodStart", "ChargeCategory", "ChargeClass",
    "ChargeDescription", "ChargeFrequency", "ChargePeriodEnd", "ChargePeriodStart", "ChargeType", "CommitmentDiscountCategory", "CommitmentDiscountId",
    "CommitmentDiscountName", "CommitmentDiscountStatus", "CommitmentDiscountType", "ConsumedQuantity", "ConsumedUnit", "ContractedCost", "ContractedUnitPrice",
    "EffectiveCost", "InvoiceIssuer", "InvoiceIssuerName", "ListCost", "ListUnitPrice", "PricingCategory", "PricingQuantity", "PricingUnit", "Provider", "ProviderName",
    "Publisher", "PublisherName", "RegionId", "RegionName", "ResourceID", "ResourceId", "ResourceName", "ResourceType", "ServiceCategory", "ServiceName", "SkuId",
    "SkuPriceId", "SubAccountId", "SubAccountName", "Tags", "x_InvoiceNumber", "x_EnergyKwh", "x_CarbonLocationGco2e", "x_CarbonMarketGco2e", "x_CarbonEmbodiedGco2e",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FocusQuery {
    pub period: String,
}

/// A decimal with at least one digit after the point.
fn dec(d: Decimal) -> String {
    let s = d.normalize().to_string();
    if s.contains('.') { s } else { format!("{s}.0") }
}

#[derive(sqlx::FromRow)]
struct Row {
    tenant: String,
    name: String,
    kind: String,
    number: String,
    ps: i64,
    pe: i64,
    currency: String,
    vm: String,
    region: String,
    charge: String,
    us: i64,
    ue: i64,
    adj: i64,
    energy: i64,
    loc: i64,
    mkt: i64,
    emb: i64,
    unit: String,
    cost: i64,
    description: String,
}

/// The CSV for `[from, to)`.
pub async fn export(state: &AppState, from: i64, to: i64) -> Result<Vec<u8>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT i.tenant AS tenant, t.name AS name, i.kind AS kind, COALESCE(i.number, '') AS number, i.period_start_us AS ps, i.period_end_us AS pe, i.currency AS currency, \
         l.vm AS vm, l.region AS region, l.charge AS charge, l.usage_start_us AS us, l.usage_end_us AS ue, l.adjustment AS adj, l.energy_uj AS energy, \
         l.co2_location_mg AS loc, l.co2_market_mg AS mkt, l.co2_embodied_mg AS emb, l.unit_price AS unit, l.cost_minor AS cost, l.description AS description \
         FROM invoices i JOIN invoice_lines l ON l.invoice_id = i.id JOIN tenants t ON t.id = i.tenant \
         WHERE i.status = 'issued' AND i.period_start_us = $1 AND i.period_end_us = $2 ORDER BY i.tenant, i.number, l.line_no",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&state.db.pool)
    .await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| ApiError::Database(format!("writing CSV: {e}"));
    w.write_record(COLUMNS).map_err(err)?;
    let issuer = state.issuer.as_str();
    for r in rows {
        let Row { tenant, name, kind, number, ps, pe, currency, vm, region, charge, us, ue, adj, energy, loc, mkt, emb, unit, cost, description: desc } = r;
        let exp = minor_exponent(&currency)?;
        let cost = dec(Decimal::new(cost, exp));
        let kwh = dec((Decimal::from(energy) / Decimal::from(3_600_000_000_000i64)).round_dp(9));
        let unit_price = unit.parse::<Decimal>().map(dec).unwrap_or_default();
        let correction = adj != 0 || kind == "credit_note";
        let category = if kind == "credit_note" { "Credit" } else { "Usage" };
        let tags = serde_json::json!({ "charge": charge, "kind": kind }).to_string();
        let grams = |mg: i64| dec(Decimal::new(mg, 3));
        let record: [String; 53] = [
            String::new(),
            cost.clone(),
            tenant.clone(),
            name.clone(),
            currency.clone(),
            format_time(pe),
            format_time(ps),
            category.into(),
            if correction { "Correction".into() } else { String::new() },
            desc,
            "Usage-Based".into(),
            format_time(ue),
            format_time(us),
            category.into(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            kwh.clone(),
            "kWh".into(),
            cost.clone(),
            unit_price.clone(),
            cost.clone(),
            issuer.into(),
            issuer.into(),
            cost.clone(),
            unit_price,
            "Standard".into(),
            kwh.clone(),
            "kWh".into(),
            issuer.into(),
            issuer.into(),
            issuer.into(),
            issuer.into(),
            region.clone(),
            region.clone(),
            vm.clone(),
            vm.clone(),
            vm,
            "Virtual Machine".into(),
            "Compute".into(),
            "fairwatt VM energy".into(),
            format!("energy-{charge}"),
            format!("energy-{charge}:{region}"),
            tenant,
            name,
            tags,
            number,
            kwh,
            grams(loc),
            grams(mkt),
            grams(emb),
        ];
        w.write_record(&record).map_err(err)?;
    }
    w.into_inner().map_err(|e| ApiError::Database(format!("writing CSV: {e}")))
}

pub async fn handler(req: HttpRequest, state: web::Data<AppState>, q: web::Query<FocusQuery>) -> Result<HttpResponse> {
    authenticate(&state.db, &req).await?.require(&[Role::Finance])?;
    let (from, to) = parse_period(&q.period)?;
    let body = export(&state, from, to).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("Content-Disposition", format!("attachment; filename=\"focus-{}.csv\"", q.period.replace('/', "_"))))
        .body(body))
}
