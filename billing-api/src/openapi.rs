//! The API's table of routes, and what is made from it: the OpenAPI 3
//! document at `/openapi.json` (utoipa) and the docs page at `/docs`.
//!
//! [`ROUTES`] names, per endpoint, the roles it admits and whether tenant
//! keys are limited to their own objects there. The authorization matrix
//! test drives every route in it with every role, so the spec cannot claim
//! an access rule the server does not keep.

use actix_web::HttpResponse;
use utoipa::ToSchema;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ComponentsBuilder, Ref};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Required};

use crate::auth::Role;
use crate::auth::Role::{Collector as C, Finance as F, Ops as O, Placement as P, Tenant as T};

pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub roles: &'static [Role],
    /// Tenant keys reach only their own tenant's objects here (others: 404).
    pub scoped: bool,
    /// Query parameters: name, required.
    pub query: &'static [(&'static str, bool)],
    pub body: Option<&'static str>,
    pub response: Option<&'static str>,
}

const fn r(method: &'static str, path: &'static str, summary: &'static str, roles: &'static [Role], scoped: bool) -> Route {
    Route { method, path, summary, roles, scoped, query: &[], body: None, response: None }
}

const WINDOW: &[(&str, bool)] = &[("from", true), ("to", true)];
const PAGE: &[(&str, bool)] = &[("limit", false), ("offset", false)];

pub const ROUTES: &[Route] = &[
    Route { body: Some("Batch"), response: Some("IngestResult"), ..r("POST", "/v1/ingest", "Ingest a batch of interval records (idempotent by batch_id)", &[C], false) },
    Route {
        query: &[("from", false), ("to", false), ("window", false), ("aggregate", false), ("step", false), ("cost", false)],
        response: Some("Usage"),
        ..r("GET", "/v1/usage", "Attributed energy and cost by tenant, region, host, VM or domain (tenant keys: their own VMs only)", &[T, F, O, P], false)
    },
    Route { query: PAGE, response: Some("Tenant"), ..r("GET", "/v1/tenants", "List tenants", &[F, O], false) },
    Route { body: Some("TenantBody"), response: Some("Tenant"), ..r("PUT", "/v1/tenants/{id}", "Create or update a tenant", &[O, F], false) },
    Route { response: Some("Tenant"), ..r("GET", "/v1/tenants/{id}", "A tenant", &[T, F, O], true) },
    Route { query: PAGE, response: Some("Vm"), ..r("GET", "/v1/tenants/{id}/vms", "A tenant's VMs with their placements", &[T, F, O], true) },
    Route { query: PAGE, response: Some("Summary"), ..r("GET", "/v1/tenants/{id}/invoices", "A tenant's invoices and credit notes", &[T, F], true) },
    Route { body: Some("PeriodBody"), response: Some("Invoice"), ..r("POST", "/v1/tenants/{id}/invoices", "Draft (and optionally issue) the tenant's invoice for a period", &[F], false) },
    Route { body: Some("InstrumentBody"), response: Some("Instrument"), ..r("POST", "/v1/tenants/{id}/instruments", "Add a certificate or PPA (market-based carbon)", &[F], false) },
    Route { query: PAGE, response: Some("Host"), ..r("GET", "/v1/hosts", "List hosts", &[O, F, P], false) },
    Route { body: Some("HostBody"), response: Some("Host"), ..r("PUT", "/v1/hosts/{id}", "Create or update a host (region, PUE, embodied carbon)", &[O], false) },
    Route { body: Some("VmBody"), response: Some("Vm"), ..r("PUT", "/v1/vms/{id}", "Create or update a VM; another host is a migration", &[O], false) },
    Route { response: Some("Vm"), ..r("GET", "/v1/vms/{id}", "A VM and its placements", &[T, F, O, P], true) },
    Route { response: Some("Vm"), ..r("DELETE", "/v1/vms/{id}", "End a VM", &[O], false) },
    Route { query: PAGE, response: Some("Tariff"), ..r("GET", "/v1/tariffs", "List tariffs", &[F, O, P], false) },
    Route { body: Some("TariffBody"), response: Some("Tariff"), ..r("POST", "/v1/tariffs", "Add a tariff (price per kWh, time-of-use windows)", &[F], false) },
    Route { query: &[("region", true), ("from", true), ("to", true)], response: Some("IntensityPoint"), ..r("GET", "/v1/carbon/intensity", "Grid intensity per hour as billing reads it", &[T, F, O, P], false) },
    Route { query: &[("format", false)], response: Some("Invoice"), ..r("GET", "/v1/invoices/{id}", "An invoice as JSON, CSV or PDF (Accept or ?format=)", &[T, F], true) },
    Route { response: Some("Invoice"), ..r("POST", "/v1/invoices/{id}/issue", "Issue a draft: recomputed, numbered, frozen", &[F], false) },
    Route { body: Some("ReasonBody"), response: Some("Invoice"), ..r("POST", "/v1/invoices/{id}/credit-notes", "Credit lines of an issued invoice", &[F], false) },
    Route { body: Some("ReasonBody"), response: Some("Invoice"), ..r("POST", "/v1/invoices/{id}/void", "Void an invoice", &[F], false) },
    Route { body: Some("PeriodBody"), response: Some("RunResult"), ..r("POST", "/v1/invoice-runs", "Invoice every tenant for a period", &[F], false) },
    Route { query: &[("period", true)], ..r("GET", "/v1/exports/focus", "FinOps FOCUS 1.0 CSV of a period's issued invoices", &[F], false) },
    Route { query: WINDOW, response: Some("HostPower"), ..r("GET", "/v1/placement/power", "Mean measured and attributed power per host and VM", &[P, O], false) },
    Route { body: Some("DecideBody"), response: Some("Decision"), ..r("POST", "/v1/placement/decide", "The host for a new VM (the served RL model, or least added power from the ledger), or 409 no capacity", &[P, O], false) },
];

/// Endpoints that take no key.
pub const PUBLIC: &[(&str, &str)] = &[("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/openapi.json"), ("GET", "/docs")];

fn method(m: &str) -> HttpMethod {
    match m {
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "DELETE" => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

fn roles_text(route: &Route) -> String {
    let names: Vec<&str> = route.roles.iter().map(|r| r.as_str()).collect();
    let scope = if route.scoped && route.roles.contains(&Role::Tenant) { "; tenant keys: own tenant only" } else { "" };
    format!("Roles: {}{scope}.", names.join(", "))
}

fn components() -> ComponentsBuilder {
    fn add<S: ToSchema>(c: ComponentsBuilder) -> ComponentsBuilder {
        let mut deps = Vec::new();
        S::schemas(&mut deps);
        c.schema_from::<S>().schemas_from_iter(deps)
    }
    let mut c = ComponentsBuilder::new();
    c = add::<crate::registry::TenantBody>(c);
    c = add::<crate::registry::Tenant>(c);
    c = add::<crate::registry::HostBody>(c);
    c = add::<crate::registry::Host>(c);
    c = add::<crate::registry::VmBody>(c);
    c = add::<crate::registry::Vm>(c);
    c = add::<crate::money::TariffBody>(c);
    c = add::<crate::money::Tariff>(c);
    c = add::<crate::carbon::InstrumentBody>(c);
    c = add::<crate::carbon::Instrument>(c);
    c = add::<crate::carbon::IntensityPoint>(c);
    c = add::<crate::invoices::Invoice>(c);
    c = add::<crate::invoices::Summary>(c);
    c = add::<crate::invoices::PeriodBody>(c);
    c = add::<crate::invoices::ReasonBody>(c);
    c = add::<crate::invoices::RunResult>(c);
    c = add::<crate::usage::Usage>(c);
    c = add::<crate::ingest::IngestResult>(c);
    c = add::<crate::placement::HostPower>(c);
    c = add::<crate::decide::DecideBody>(c);
    c = add::<crate::decide::Decision>(c);
    // The batch carries records in the trace format (docs/trace-format.md).
    let batch = utoipa::openapi::ObjectBuilder::new()
        .property("batch_id", utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::String))
        .property("records", utoipa::openapi::ArrayBuilder::new().items(utoipa::openapi::ObjectBuilder::new()))
        .required("batch_id")
        .required("records")
        .description(Some("A batch of interval records in fairwatt's trace format (docs/trace-format.md)"));
    c.schema("Batch", batch).security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()))
}

/// The OpenAPI 3 document.
pub fn spec() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for route in ROUTES {
        let mut op = OperationBuilder::new()
            .summary(Some(route.summary))
            .description(Some(roles_text(route)))
            .operation_id(Some(format!("{} {}", route.method, route.path)))
            .security(SecurityRequirement::new("bearer", Vec::<String>::new()));
        for seg in route.path.split('/').filter(|s| s.starts_with('{')) {
            op = op.parameter(ParameterBuilder::new().name(seg.trim_matches(|c| c == '{' || c == '}')).parameter_in(ParameterIn::Path).required(Required::True));
        }
        for (name, req) in route.query {
            op = op.parameter(ParameterBuilder::new().name(*name).parameter_in(ParameterIn::Query).required(if *req { Required::True } else { Required::False }));
        }
        if let Some(b) = route.body {
            op = op.request_body(Some(RequestBodyBuilder::new().required(Some(Required::True)).content("application/json", Content::new(Some(Ref::from_schema_name(b)))).build()));
        }
        let mut ok = ResponseBuilder::new().description("success");
        if let Some(resp) = route.response {
            ok = ok.content("application/json", Content::new(Some(Ref::from_schema_name(resp))));
        }
        op = op
            .response("200", ok.build())
            .response("400", ResponseBuilder::new().description("malformed request; the message names the problem").build())
            .response("401", ResponseBuilder::new().description("missing or unknown API key").build())
            .response("403", ResponseBuilder::new().description("this role may not do this").build())
            .response("404", ResponseBuilder::new().description("no such object (or another tenant's)").build())
            .response("503", ResponseBuilder::new().description("database unavailable; retry").build());
        paths = paths.path(route.path, PathItem::new(method(route.method), op.build()));
    }
    OpenApiBuilder::new()
        .info(InfoBuilder::new().title("fairwatt billing API").version(env!("CARGO_PKG_VERSION")).description(Some("Energy ingest, ledger, registry, carbon, invoices and exports")).build())
        .paths(paths.build())
        .components(Some(components().build()))
        .build()
}

pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(spec().to_json().unwrap_or_else(|_| "{}".into()))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A page for people, made from the same table as the spec (no scripts,
/// nothing fetched from elsewhere).
pub async fn docs() -> HttpResponse {
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>fairwatt billing API</title><style>body{font-family:sans-serif;max-width:70em;margin:2em auto}\
         td,th{padding:.3em .6em;border-bottom:1px solid #ddd;text-align:left}code{font-size:95%}</style></head><body><h1>fairwatt billing API</h1>\
         <p>Send <code>Authorization: Bearer KEY</code> (keys from <code>fairwatt keys create</code>). Errors are JSON <code>{\"error\", \"message\"}</code>. \
         Machine-readable: <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI 3).</p><table><tr><th>Method</th><th>Path</th><th>What</th><th>Query</th><th>Body</th><th>Who</th></tr>",
    );
    for r in ROUTES {
        let q: Vec<String> = r.query.iter().map(|(n, req)| if *req { n.to_string() } else { format!("[{n}]") }).collect();
        html.push_str(&format!(
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.method,
            esc(r.path),
            esc(r.summary),
            esc(&q.join(", ")),
            r.body.unwrap_or(""),
            esc(&roles_text(r))
        ));
    }
    html.push_str("</table><p>Without a key: ");
    html.push_str(&PUBLIC.iter().map(|(m, p)| format!("<code>{m} {p}</code>")).collect::<Vec<_>>().join(", "));
    html.push_str(".</p></body></html>");
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(html)
}
