-- Registry, grid intensity, tariffs and invoices (PostgreSQL).
-- Units: energy µJ, time µs since the Unix epoch, carbon mgCO2e,
-- intensity mgCO2e/kWh, PUE in thousandths, money in the currency's
-- minor unit (prices per kWh are exact decimal strings).

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    currency TEXT NOT NULL,
    created_us BIGINT NOT NULL
);

CREATE TABLE hosts (
    id TEXT PRIMARY KEY,
    region TEXT NOT NULL,
    pue_milli BIGINT NOT NULL CHECK (pue_milli BETWEEN 1000 AND 5000),
    embodied_gco2e BIGINT NOT NULL CHECK (embodied_gco2e >= 0),
    lifetime_s BIGINT NOT NULL CHECK (lifetime_s > 0),
    vcpus BIGINT NOT NULL CHECK (vcpus > 0),
    memory_mib BIGINT NOT NULL CHECK (memory_mib > 0),
    created_us BIGINT NOT NULL
);

CREATE TABLE vms (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL REFERENCES tenants (id),
    flavor TEXT NOT NULL,
    vcpus BIGINT NOT NULL CHECK (vcpus > 0),
    memory_mib BIGINT NOT NULL CHECK (memory_mib >= 0),
    created_us BIGINT NOT NULL,
    deleted_us BIGINT
);
CREATE INDEX vms_by_tenant ON vms (tenant);

-- Where each VM ran: one open row (to_us NULL) per live VM. A migration
-- closes one row and opens the next; the VM's account is the same.
CREATE TABLE vm_placements (
    vm TEXT NOT NULL REFERENCES vms (id),
    host TEXT NOT NULL REFERENCES hosts (id),
    from_us BIGINT NOT NULL,
    to_us BIGINT,
    PRIMARY KEY (vm, from_us)
);
CREATE INDEX vm_placements_by_host ON vm_placements (host, from_us);

CREATE TABLE carbon_imports (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    file TEXT NOT NULL,
    format TEXT NOT NULL,
    rows_imported BIGINT NOT NULL,
    imported_us BIGINT NOT NULL
);

-- Hourly where known; yearly (or undated) factors are the fallback.
CREATE TABLE grid_intensity (
    region TEXT NOT NULL,
    granularity TEXT NOT NULL CHECK (granularity IN ('hourly', 'yearly', 'constant')),
    start_us BIGINT NOT NULL,
    end_us BIGINT NOT NULL,
    mg_per_kwh BIGINT NOT NULL CHECK (mg_per_kwh >= 0),
    source TEXT NOT NULL,
    import_id BIGINT NOT NULL REFERENCES carbon_imports (id),
    PRIMARY KEY (region, granularity, start_us)
);

-- A tenant's certificates and PPAs: volume_kwh of facility energy (NULL:
-- all of it) in [from_us, to_us), in region (NULL: any), at mg_per_kwh.
CREATE TABLE carbon_instruments (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL REFERENCES tenants (id),
    kind TEXT NOT NULL CHECK (kind IN ('certificate', 'ppa')),
    region TEXT,
    from_us BIGINT NOT NULL,
    to_us BIGINT NOT NULL,
    volume_kwh BIGINT CHECK (volume_kwh > 0),
    mg_per_kwh BIGINT NOT NULL CHECK (mg_per_kwh >= 0),
    description TEXT NOT NULL,
    created_us BIGINT NOT NULL
);

-- Price per kWh in a region from valid_from_us (until the next tariff of
-- the region); windows: JSON time-of-use overrides in local time at
-- utc_offset_min.
CREATE TABLE tariffs (
    id TEXT PRIMARY KEY,
    region TEXT NOT NULL,
    currency TEXT NOT NULL,
    price_per_kwh TEXT NOT NULL,
    windows TEXT NOT NULL,
    utc_offset_min BIGINT NOT NULL,
    valid_from_us BIGINT NOT NULL,
    created_us BIGINT NOT NULL,
    UNIQUE (region, valid_from_us)
);

-- The last number given per issuer: taken in the transaction that issues.
CREATE TABLE invoice_counters (
    issuer TEXT PRIMARY KEY,
    last_number BIGINT NOT NULL
);

CREATE TABLE invoices (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL REFERENCES tenants (id),
    kind TEXT NOT NULL CHECK (kind IN ('invoice', 'credit_note')),
    status TEXT NOT NULL CHECK (status IN ('draft', 'issued', 'void')),
    issuer TEXT NOT NULL,
    number TEXT,
    period_start_us BIGINT NOT NULL,
    period_end_us BIGINT NOT NULL,
    currency TEXT NOT NULL,
    total_minor BIGINT NOT NULL,
    energy_uj BIGINT NOT NULL,
    co2_location_mg BIGINT NOT NULL,
    co2_market_mg BIGINT NOT NULL,
    co2_embodied_mg BIGINT NOT NULL,
    methodology TEXT NOT NULL,
    corrects TEXT REFERENCES invoices (id),
    reason TEXT,
    computed_us BIGINT NOT NULL,
    created_us BIGINT NOT NULL,
    issued_us BIGINT,
    voided_us BIGINT,
    UNIQUE (issuer, number)
);
-- One live invoice per tenant and period; a void one may be replaced.
CREATE UNIQUE INDEX invoices_one_per_period ON invoices (tenant, period_start_us) WHERE kind = 'invoice' AND status <> 'void';
CREATE INDEX invoices_by_tenant ON invoices (tenant, period_start_us);

-- usage_start_us/usage_end_us: the period the usage is from; an
-- adjustment line carries an earlier, already invoiced period.
CREATE TABLE invoice_lines (
    invoice_id TEXT NOT NULL REFERENCES invoices (id),
    line_no BIGINT NOT NULL,
    vm TEXT NOT NULL,
    region TEXT NOT NULL,
    charge TEXT NOT NULL,
    usage_start_us BIGINT NOT NULL,
    usage_end_us BIGINT NOT NULL,
    adjustment BIGINT NOT NULL,
    energy_uj BIGINT NOT NULL,
    co2_location_mg BIGINT NOT NULL,
    co2_market_mg BIGINT NOT NULL,
    co2_embodied_mg BIGINT NOT NULL,
    unit_price TEXT NOT NULL,
    cost_minor BIGINT NOT NULL,
    description TEXT NOT NULL,
    PRIMARY KEY (invoice_id, line_no)
);

-- Sums of top-level domains only (package, DRAM, GPU): core, uncore and
-- psys lie inside them and would count energy twice.
ALTER TABLE usage_hourly ADD COLUMN top_level BIGINT NOT NULL DEFAULT 0;
UPDATE usage_hourly SET top_level = 1 WHERE domain LIKE 'package-%' OR domain LIKE 'dram-%' OR domain LIKE 'gpu-%';

-- Daily rollups: month-long queries read 24× fewer rows.
CREATE TABLE usage_daily (
    day_us BIGINT NOT NULL,
    host TEXT NOT NULL,
    vm TEXT NOT NULL,
    tenant TEXT NOT NULL,
    domain TEXT NOT NULL,
    top_level BIGINT NOT NULL,
    dynamic_uj BIGINT NOT NULL,
    idle_uj BIGINT NOT NULL,
    PRIMARY KEY (day_us, host, vm, domain)
);
CREATE INDEX usage_daily_by_tenant ON usage_daily (tenant, day_us);
INSERT INTO usage_daily (day_us, host, vm, tenant, domain, top_level, dynamic_uj, idle_uj)
    SELECT (hour_us / 86400000000) * 86400000000, host, vm, tenant, domain, top_level, SUM(dynamic_uj), SUM(idle_uj)
    FROM usage_hourly GROUP BY (hour_us / 86400000000) * 86400000000, host, vm, tenant, domain, top_level;
