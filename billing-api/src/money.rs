//! Money: currencies and their minor units, tariffs per region with
//! time-of-use windows, and the price of a kWh at a given hour.
//!
//! Prices are exact decimals (`rust_decimal`), stored as strings (SQLite has
//! no decimal type); amounts on invoices are integers in the currency's
//! minor unit, each line rounded half away from zero, so an invoice's total
//! is the sum of its lines exactly.
//!
//! `POST /v1/tariffs` (finance) adds a tariff: it applies in its region from
//! `valid_from` until the region's next tariff. `GET /v1/tariffs` lists them.

use std::str::FromStr;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{Datelike, TimeZone, Timelike, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::{Role, authenticate};
use crate::db::now_us;
use crate::error::{ApiError, Result};
use crate::params::{check_id, format_time, json_body, parse_time};

/// µJ in a kWh.
pub const UJ_PER_KWH: i64 = 3_600_000_000_000;

/// Digits after the decimal point of an ISO 4217 currency. Only currencies
/// listed here are accepted, so a typo is caught at registration.
pub fn minor_exponent(code: &str) -> Result<u32> {
    const ZERO: [&str; 6] = ["JPY", "KRW", "ISK", "CLP", "VND", "HUF"];
    const THREE: [&str; 5] = ["BHD", "KWD", "OMR", "JOD", "TND"];
    const TWO: [&str; 24] = [
        "EUR", "USD", "GBP", "CHF", "SEK", "NOK", "DKK", "PLN", "CZK", "RON", "BGN", "CAD", "AUD", "NZD", "SGD", "HKD", "CNY", "INR", "BRL", "MXN", "ZAR", "TRY", "ILS", "AED",
    ];
    if ZERO.contains(&code) {
        Ok(0)
    } else if THREE.contains(&code) {
        Ok(3)
    } else if TWO.contains(&code) {
        Ok(2)
    } else {
        Err(ApiError::BadRequest(format!("currency {code:?}: expected an ISO 4217 code such as EUR, USD, GBP, JPY")))
    }
}

/// `amount` in minor units, rounded half away from zero.
pub fn to_minor(amount: Decimal, exponent: u32) -> Result<i64> {
    let scaled = amount.round_dp_with_strategy(exponent, RoundingStrategy::MidpointAwayFromZero) * Decimal::from(10i64.pow(exponent));
    i64::try_from(scaled.trunc()).map_err(|_| ApiError::BadRequest(format!("amount {amount} does not fit")))
}

/// Minor units as a decimal string: 12345, 2 → "123.45".
pub fn format_minor(minor: i64, exponent: u32) -> String {
    Decimal::new(minor, exponent).to_string()
}

fn parse_price(what: &str, s: &str) -> Result<Decimal> {
    let p = Decimal::from_str(s).map_err(|e| ApiError::BadRequest(format!("{what} {s:?}: {e}")))?;
    if p.is_sign_negative() || p > Decimal::from(1000) || p.scale() > 8 {
        return Err(ApiError::BadRequest(format!("{what} {s:?}: a price per kWh from 0 to 1000 with at most 8 decimals")));
    }
    Ok(p)
}

/// A time-of-use window: on `days` (ISO weekdays, 1 = Monday; empty: all),
/// local hours `[from_hour, to_hour)` (wrapping past midnight when
/// `to_hour <= from_hour`), the kWh costs `price_per_kwh`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Window {
    #[serde(default)]
    pub days: Vec<u32>,
    pub from_hour: u32,
    pub to_hour: u32,
    pub price_per_kwh: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TariffBody {
    pub id: String,
    pub region: String,
    pub currency: String,
    pub price_per_kwh: String,
    pub valid_from: String,
    #[serde(default)]
    pub utc_offset_min: i64,
    #[serde(default)]
    pub windows: Vec<Window>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tariff {
    pub id: String,
    pub region: String,
    pub currency: String,
    pub price_per_kwh: String,
    pub valid_from: String,
    pub utc_offset_min: i64,
    pub windows: Vec<Window>,
}

/// A tariff parsed for pricing.
#[derive(Clone, Debug)]
pub struct Priced {
    pub id: String,
    pub currency: String,
    pub base: Decimal,
    pub windows: Vec<(Vec<u32>, u32, u32, Decimal)>,
    pub offset_us: i64,
    pub valid_from_us: i64,
}

impl Priced {
    /// The price of a kWh in the hour starting at `hour_us`.
    pub fn at(&self, hour_us: i64) -> Decimal {
        let Some(local) = Utc.timestamp_micros(hour_us + self.offset_us).single() else { return self.base };
        let (day, hour) = (local.weekday().number_from_monday(), local.hour());
        for (days, from, to, price) in &self.windows {
            let in_hours = if from < to { (*from..*to).contains(&hour) } else { hour >= *from || hour < *to };
            if in_hours && (days.is_empty() || days.contains(&day)) {
                return *price;
            }
        }
        self.base
    }

    fn from_row(id: String, currency: String, base: &str, windows: &str, offset_min: i64, valid_from_us: i64) -> Result<Priced> {
        let ws: Vec<Window> = serde_json::from_str(windows).map_err(|e| ApiError::Database(format!("tariff {id}: stored windows: {e}")))?;
        let windows = ws.iter().map(|w| Ok((w.days.clone(), w.from_hour, w.to_hour, parse_price("window price", &w.price_per_kwh)?))).collect::<Result<_>>()?;
        Ok(Priced { base: parse_price("price", base)?, id, currency, windows, offset_us: offset_min * 60_000_000, valid_from_us })
    }
}

/// The tariffs of a region in force at some time in `[from, to)`, oldest first.
#[derive(Clone, Debug, Default)]
pub struct RegionTariffs(pub Vec<Priced>);

impl RegionTariffs {
    pub async fn load(db: &crate::Db, region: &str, from: i64, to: i64) -> Result<RegionTariffs> {
        let rows: Vec<(String, String, String, String, i64, i64)> = sqlx::query_as(
            "SELECT id, currency, price_per_kwh, windows, utc_offset_min, valid_from_us FROM tariffs WHERE region = $1 AND valid_from_us < $2 \
             AND valid_from_us >= COALESCE((SELECT MAX(valid_from_us) FROM tariffs WHERE region = $1 AND valid_from_us <= $3), $3) ORDER BY valid_from_us",
        )
        .bind(region)
        .bind(to)
        .bind(from)
        .fetch_all(&db.pool)
        .await?;
        Ok(RegionTariffs(rows.into_iter().map(|(id, c, p, w, o, v)| Priced::from_row(id, c, &p, &w, o, v)).collect::<Result<_>>()?))
    }

    /// The tariff in force at `hour_us`, if any.
    pub fn at(&self, hour_us: i64) -> Option<&Priced> {
        self.0.iter().rev().find(|t| t.valid_from_us <= hour_us)
    }
}

pub async fn post_tariff(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse> {
    authenticate(&state.db, &req).await?.require(&[Role::Finance])?;
    let b: TariffBody = json_body(&body)?;
    check_id("tariff", &b.id)?;
    check_id("region", &b.region)?;
    minor_exponent(&b.currency)?;
    parse_price("price_per_kwh", &b.price_per_kwh)?;
    let valid_from = parse_time("valid_from", &b.valid_from)?;
    if b.utc_offset_min.abs() > 14 * 60 {
        return Err(ApiError::BadRequest("utc_offset_min must be within ±840".into()));
    }
    for (i, w) in b.windows.iter().enumerate() {
        parse_price(&format!("windows[{i}].price_per_kwh"), &w.price_per_kwh)?;
        if w.from_hour > 23 || w.to_hour > 24 || w.from_hour == w.to_hour || w.days.iter().any(|d| !(1..=7).contains(d)) {
            return Err(ApiError::BadRequest(format!("windows[{i}]: hours 0–24 (from ≠ to), days 1 (Monday) to 7")));
        }
    }
    let mut tx = state.db.begin_write().await?;
    let other: Option<(String,)> = sqlx::query_as("SELECT currency FROM tariffs WHERE region = $1 AND currency <> $2 LIMIT 1").bind(&b.region).bind(&b.currency).fetch_optional(&mut *tx).await?;
    if let Some((c,)) = other {
        return Err(ApiError::Conflict(format!("region {} is priced in {c}; one currency per region", b.region)));
    }
    let done = sqlx::query(
        "INSERT INTO tariffs (id, region, currency, price_per_kwh, windows, utc_offset_min, valid_from_us, created_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
    )
    .bind(&b.id)
    .bind(&b.region)
    .bind(&b.currency)
    .bind(&b.price_per_kwh)
    .bind(serde_json::to_string(&b.windows).unwrap_or_else(|_| "[]".into()))
    .bind(b.utc_offset_min)
    .bind(valid_from)
    .bind(now_us())
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::Conflict(format!("tariff {} or another tariff of {} from {} exists; tariffs are never changed, add a newer one", b.id, b.region, b.valid_from)));
    }
    crate::db::bump_generation(&mut tx).await?;
    tx.commit().await?;
    let t = Tariff { id: b.id, region: b.region, currency: b.currency, price_per_kwh: b.price_per_kwh, valid_from: format_time(valid_from), utc_offset_min: b.utc_offset_min, windows: b.windows };
    Ok(HttpResponse::Created().json(t))
}

pub async fn list_tariffs(req: HttpRequest, state: web::Data<AppState>, page: web::Query<crate::params::Page>) -> Result<HttpResponse> {
    authenticate(&state.db, &req).await?.require(&[Role::Finance, Role::Ops, Role::Placement])?;
    let (limit, offset) = page.get()?;
    let rows: Vec<(String, String, String, String, String, i64, i64)> =
        sqlx::query_as("SELECT id, region, currency, price_per_kwh, windows, utc_offset_min, valid_from_us FROM tariffs ORDER BY region, valid_from_us LIMIT $1 OFFSET $2")
            .bind(limit)
            .bind(offset)
            .fetch_all(&state.db.pool)
            .await?;
    let out: Vec<Tariff> = rows
        .into_iter()
        .map(|(id, region, currency, price_per_kwh, w, utc_offset_min, v)| Tariff {
            id,
            region,
            currency,
            price_per_kwh,
            valid_from: format_time(v),
            utc_offset_min,
            windows: serde_json::from_str(&w).unwrap_or_default(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_units_round_half_away_from_zero() {
        assert_eq!(to_minor(Decimal::from_str("1.005").unwrap(), 2).unwrap(), 101);
        assert_eq!(to_minor(Decimal::from_str("-1.005").unwrap(), 2).unwrap(), -101);
        assert_eq!(to_minor(Decimal::from_str("1.0049").unwrap(), 2).unwrap(), 100);
        assert_eq!(to_minor(Decimal::from_str("12.5").unwrap(), 0).unwrap(), 13);
        assert_eq!(format_minor(12345, 2), "123.45");
        assert_eq!(format_minor(-5, 3), "-0.005");
        assert_eq!(minor_exponent("JPY").unwrap(), 0);
        assert!(minor_exponent("EURO").is_err());
    }

    #[test]
    fn time_of_use_windows_pick_the_local_hour() {
        let w = r#"[{"days":[1,2,3,4,5],"from_hour":17,"to_hour":21,"price_per_kwh":"0.40"},{"from_hour":23,"to_hour":6,"price_per_kwh":"0.10"}]"#;
        let t = Priced::from_row("t".into(), "EUR".into(), "0.25", w, 60, 0).unwrap();
        // 2026-11-30 is a Monday; 16:00 UTC is 17:00 at UTC+1.
        let monday_16_utc = Utc.with_ymd_and_hms(2026, 11, 30, 16, 0, 0).unwrap().timestamp_micros();
        assert_eq!(t.at(monday_16_utc).to_string(), "0.40");
        assert_eq!(t.at(monday_16_utc - 3_600_000_000).to_string(), "0.25");
        // Sunday evening: no weekday window; 23:00 local wraps to the night rate.
        let sunday_22_utc = Utc.with_ymd_and_hms(2026, 11, 29, 22, 0, 0).unwrap().timestamp_micros();
        assert_eq!(t.at(sunday_22_utc - 5 * 3_600_000_000).to_string(), "0.25");
        assert_eq!(t.at(sunday_22_utc).to_string(), "0.10");
        assert_eq!(t.at(sunday_22_utc + 6 * 3_600_000_000).to_string(), "0.10");
        assert_eq!(t.at(sunday_22_utc + 7 * 3_600_000_000).to_string(), "0.25");
    }
}
