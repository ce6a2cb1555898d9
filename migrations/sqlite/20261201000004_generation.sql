-- A counter bumped by every write that changes what usage queries return
-- (ledger rollups, hosts, tariffs), in the same transaction: API replicas
-- compare it to know whether a cached answer still holds.
CREATE TABLE ledger_generation (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    gen BIGINT NOT NULL
);
INSERT INTO ledger_generation (id, gen) VALUES (1, 0);

-- Issued invoices never change, whatever code runs against the store:
-- lines are written only while their invoice is a draft; an issued
-- invoice may only be voided (totals kept); a void one is final.
CREATE TRIGGER invoice_lines_frozen_insert BEFORE INSERT ON invoice_lines
WHEN (SELECT status FROM invoices WHERE id = NEW.invoice_id) <> 'draft'
BEGIN SELECT RAISE(ABORT, 'invoice lines change only while the invoice is a draft'); END;
CREATE TRIGGER invoice_lines_frozen_update BEFORE UPDATE ON invoice_lines
WHEN (SELECT status FROM invoices WHERE id = OLD.invoice_id) <> 'draft'
BEGIN SELECT RAISE(ABORT, 'invoice lines change only while the invoice is a draft'); END;
CREATE TRIGGER invoice_lines_frozen_delete BEFORE DELETE ON invoice_lines
WHEN (SELECT status FROM invoices WHERE id = OLD.invoice_id) <> 'draft'
BEGIN SELECT RAISE(ABORT, 'invoice lines change only while the invoice is a draft'); END;
CREATE TRIGGER invoices_frozen BEFORE UPDATE ON invoices
WHEN OLD.status = 'void' OR (OLD.status = 'issued' AND (NEW.status <> 'void' OR NEW.total_minor <> OLD.total_minor OR NEW.number IS NOT OLD.number))
BEGIN SELECT RAISE(ABORT, 'an issued invoice never changes; only voiding it is allowed'); END;
CREATE TRIGGER invoices_no_delete BEFORE DELETE ON invoices
WHEN OLD.status <> 'draft'
BEGIN SELECT RAISE(ABORT, 'issued and void invoices are kept'); END;
