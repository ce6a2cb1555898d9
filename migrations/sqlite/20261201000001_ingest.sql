-- API keys, ingest batches and the received intervals (SQLite).
-- Keys are stored as SHA-256 of the whole key, never in plain text.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('tenant', 'finance', 'ops', 'placement', 'collector')),
    tenant TEXT,
    created_us BIGINT NOT NULL,
    revoked_us BIGINT,
    CHECK ((role = 'tenant') = (tenant IS NOT NULL))
);

-- One row per accepted batch: a resend of the same id returns this row.
CREATE TABLE ingest_batches (
    batch_id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL REFERENCES api_keys (id),
    received_us BIGINT NOT NULL,
    intervals BIGINT NOT NULL,
    duplicates BIGINT NOT NULL,
    energy_uj BIGINT NOT NULL
);

-- Each host interval once, whichever batch brought it first.
CREATE TABLE intervals (
    host TEXT NOT NULL,
    seq BIGINT NOT NULL,
    start_us BIGINT NOT NULL,
    end_us BIGINT NOT NULL,
    batch_id TEXT NOT NULL REFERENCES ingest_batches (batch_id),
    record TEXT NOT NULL,
    PRIMARY KEY (host, seq)
);

-- Measured energy per interval and domain, integer microjoules.
CREATE TABLE interval_energy (
    host TEXT NOT NULL,
    seq BIGINT NOT NULL,
    domain TEXT NOT NULL,
    energy_uj BIGINT NOT NULL CHECK (energy_uj >= 0),
    PRIMARY KEY (host, seq, domain),
    FOREIGN KEY (host, seq) REFERENCES intervals (host, seq)
);
CREATE INDEX interval_energy_by_time ON intervals (start_us);
