-- A counter bumped by every change to hosts, VMs and placements, in the
-- same transaction: the placement endpoint keeps the fleet's capacity in
-- memory and re-reads it only when this moves (on every replica).
CREATE TABLE registry_generation (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    gen BIGINT NOT NULL
);
INSERT INTO registry_generation (id, gen) VALUES (1, 0);

CREATE FUNCTION bump_registry_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE registry_generation SET gen = gen + 1 WHERE id = 1;
    RETURN NULL;
END $$;
CREATE TRIGGER hosts_gen AFTER INSERT OR UPDATE OR DELETE ON hosts FOR EACH STATEMENT EXECUTE FUNCTION bump_registry_generation();
CREATE TRIGGER vms_gen AFTER INSERT OR UPDATE OR DELETE ON vms FOR EACH STATEMENT EXECUTE FUNCTION bump_registry_generation();
CREATE TRIGGER vm_placements_gen AFTER INSERT OR UPDATE OR DELETE ON vm_placements FOR EACH STATEMENT EXECUTE FUNCTION bump_registry_generation();
