//! API keys and roles. A key is `fw_` + 48 hex digits from the kernel's
//! random source; only its SHA-256 is stored, so a leaked database holds no
//! usable key. Requests carry it as `Authorization: Bearer KEY`. Every
//! endpoint names the roles it admits; anything else is refused (deny by
//! default), and endpoints that take an id check the object's tenant.

use std::fmt;
use std::io::Read;
use std::str::FromStr;

use actix_web::HttpRequest;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::db::{Db, now_us};
use crate::error::{ApiError, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sees only its own tenant's objects.
    Tenant,
    Finance,
    Ops,
    Placement,
    /// Agents: may ingest, nothing else.
    Collector,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Tenant, Role::Finance, Role::Ops, Role::Placement, Role::Collector];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Tenant => "tenant",
            Role::Finance => "finance",
            Role::Ops => "ops",
            Role::Placement => "placement",
            Role::Collector => "collector",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ApiError;
    fn from_str(s: &str) -> Result<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| ApiError::BadRequest(format!("unknown role {s:?}: expected tenant, finance, ops, placement or collector")))
    }
}

/// Who is calling: the key's id, role and (for tenants) tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub role: Role,
    pub tenant: Option<String>,
}

impl Principal {
    /// Refuses unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<&Self> {
        if roles.contains(&self.role) {
            Ok(self)
        } else {
            let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::Forbidden(format!("role {} may not do this (allowed: {})", self.role, allowed.join(", "))))
        }
    }
}

impl Principal {
    /// The tenant a tenant key is scoped to; `None` for the other roles.
    pub fn scope(&self) -> Option<&str> {
        match self.role {
            Role::Tenant => Some(self.tenant.as_deref().unwrap_or("")),
            _ => None,
        }
    }

    /// Object-level check: a tenant key may touch only its own tenant's
    /// objects. Another tenant's object is reported as absent (404), so a
    /// key cannot probe which ids exist.
    pub fn may_see(&self, owner: &str, what: &str) -> Result<()> {
        match self.scope() {
            Some(t) if t != owner => Err(ApiError::NotFound(format!("no such {what}"))),
            _ => Ok(()),
        }
    }
}

/// A newly created key; `secret` is shown once and never stored.
#[derive(Clone, Debug, Serialize)]
pub struct ApiKey {
    pub id: String,
    pub secret: String,
    pub role: Role,
    pub tenant: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn random_hex(n: usize) -> Result<String> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| ApiError::Config(format!("reading /dev/urandom for a key: {e}")))?;
    Ok(hex(&buf))
}

/// Creates a key for `role` (tenant keys need `tenant`, others must not have one).
pub async fn create_key(db: &Db, role: Role, tenant: Option<&str>) -> Result<ApiKey> {
    match (role, tenant) {
        (Role::Tenant, None) => return Err(ApiError::BadRequest("a tenant key needs --tenant".into())),
        (r, Some(_)) if r != Role::Tenant => return Err(ApiError::BadRequest(format!("a {r} key is not scoped to a tenant"))),
        (_, Some(t)) if t.is_empty() || t.len() > 128 => return Err(ApiError::BadRequest("tenant ids are 1–128 characters".into())),
        _ => {}
    }
    let id = format!("k_{}", random_hex(8)?);
    let secret = format!("fw_{}", random_hex(24)?);
    sqlx::query("INSERT INTO api_keys (id, hash, role, tenant, created_us) VALUES ($1, $2, $3, $4, $5)")
        .bind(&id)
        .bind(digest(&secret))
        .bind(role.as_str())
        .bind(tenant)
        .bind(now_us())
        .execute(&db.pool)
        .await?;
    Ok(ApiKey { id, secret, role, tenant: tenant.map(String::from), })
}

/// The caller of `req`, from its bearer key.
pub async fn authenticate(db: &Db, req: &HttpRequest) -> Result<Principal> {
    let header = req.headers().get("authorization").and_then(|h| h.to_str().ok()).ok_or(ApiError::Unauthorized)?;
    let secret = header.strip_prefix("Bearer ").ok_or(ApiError::Unauthorized)?.trim();
    if !secret.starts_with("fw_") || secret.len() > 64 {
        return Err(ApiError::Unauthorized);
    }
    let row: Option<(String, String, Option<String>)> =
        sqlx::query_as("SELECT id, role, tenant FROM api_keys WHERE hash = $1 AND revoked_us IS NULL").bind(digest(secret)).fetch_optional(&db.pool).await?;
    let (key_id, role, tenant) = row.ok_or(ApiError::Unauthorized)?;
    Ok(Principal { key_id, role: role.parse().map_err(|_| ApiError::Database(format!("key {role:?} has an unknown role")))?, tenant })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_digests_are_stable() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("root".parse::<Role>().is_err());
        assert_eq!(digest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let p = Principal { key_id: "k".into(), role: Role::Ops, tenant: None };
        assert!(p.require(&[Role::Ops, Role::Finance]).is_ok());
        assert!(matches!(p.require(&[Role::Collector]), Err(ApiError::Forbidden(_))));
        assert_eq!(random_hex(4).unwrap().len(), 8);
    }
}
