-- A counter bumped by every change to hosts, VMs and placements, in the
-- same transaction: the placement endpoint keeps the fleet's capacity in
-- memory and re-reads it only when this moves (on every replica).
CREATE TABLE registry_generation (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    gen BIGINT NOT NULL
);
INSERT INTO registry_generation (id, gen) VALUES (1, 0);

CREATE TRIGGER hosts_gen_insert AFTER INSERT ON hosts BEGIN UPDATE registry_generation SET gen = gen + 1 WHERE id = 1; END;
CREATE TRIGGER hosts_gen_update AFTER UPDATE ON hosts BEGIN UPDATE registry_generation SET gen = gen + 1 WHERE id = 1; END;
CREATE TRIGGER hosts_gen_delete AFTER DELETE ON hosts BEGIN UPDATE registry_generation SET gen = gen + 1 WHERE id = 1; END;
CREATE TRIGGER vms_gen_insert AFTER INSERT ON vms BEGIN UPDATE registry_generation SET gen = gen + 1 WHERE id = 1; END;
CREATE TRIGGER vms_gen_update AFTER UPDATE ON vms BEGIN UPDATE registry_generation SET gen = gen + 1 WHERE id = 1; END;
CREATE TRIGGER vms_gen_delete AFTER DELETE ON vms BEGIN UPDATE registry_generation SET gen = gen + 1 WHERE id = 1; END;
CREATE TRIGGER vm_placements_gen_insert AFTER INSERT ON vm_placements BEGIN UPDATE registry_generation SET gen = gen + 1 WHERE id = 1; END;
CREATE TRIGGER vm_placements_gen_update AFTER UPDATE ON vm_placements BEGIN UPDATE registry_generation SET gen = gen + 1 WHERE id = 1; END;
CREATE TRIGGER vm_placements_gen_delete AFTER DELETE ON vm_placements BEGIN UPDATE registry_generation SET gen = gen + 1 WHERE id = 1; END;
