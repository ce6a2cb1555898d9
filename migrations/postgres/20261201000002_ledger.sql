-- The energy ledger (PostgreSQL): model versions, per-VM shares per interval
-- and domain, the host side of each split, and hourly rollups.
CREATE TABLE models (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    host TEXT NOT NULL,
    method TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_us BIGINT NOT NULL,
    description TEXT NOT NULL
);

-- NULL until the attribution worker has split the interval.
ALTER TABLE intervals ADD COLUMN model_id BIGINT REFERENCES models (id);
CREATE INDEX intervals_unattributed ON intervals (host, seq) WHERE model_id IS NULL;

-- Σ over VMs (dynamic + idle) + unattributed = measured, per interval and domain.
CREATE TABLE ledger_domains (
    host TEXT NOT NULL,
    seq BIGINT NOT NULL,
    domain TEXT NOT NULL,
    measured_uj BIGINT NOT NULL CHECK (measured_uj >= 0),
    idle_uj BIGINT NOT NULL CHECK (idle_uj >= 0),
    unattributed_uj BIGINT NOT NULL CHECK (unattributed_uj >= 0),
    model_id BIGINT NOT NULL REFERENCES models (id),
    PRIMARY KEY (host, seq, domain)
);

CREATE TABLE ledger (
    host TEXT NOT NULL,
    seq BIGINT NOT NULL,
    domain TEXT NOT NULL,
    vm TEXT NOT NULL,
    tenant TEXT NOT NULL,
    dynamic_uj BIGINT NOT NULL CHECK (dynamic_uj >= 0),
    idle_uj BIGINT NOT NULL CHECK (idle_uj >= 0),
    PRIMARY KEY (host, seq, domain, vm)
);
CREATE INDEX ledger_by_vm ON ledger (vm);

-- Per hour (start, µs), host, VM and domain: sums of the ledger.
CREATE TABLE usage_hourly (
    hour_us BIGINT NOT NULL,
    host TEXT NOT NULL,
    vm TEXT NOT NULL,
    tenant TEXT NOT NULL,
    domain TEXT NOT NULL,
    dynamic_uj BIGINT NOT NULL,
    idle_uj BIGINT NOT NULL,
    PRIMARY KEY (hour_us, host, vm, domain)
);
CREATE INDEX usage_hourly_by_tenant ON usage_hourly (tenant, hour_us);
