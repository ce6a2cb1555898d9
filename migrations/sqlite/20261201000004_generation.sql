-- A counter bumped by every write that changes what usage queries return
-- (ledger rollups, hosts, tariffs), in the same transaction: API replicas
-- compare it to know whether a cached answer still holds.
CREATE TABLE ledger_generation (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    gen BIGINT NOT NULL
);
INSERT INTO ledger_generation (id, gen) VALUES (1, 0);
