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
CREATE FUNCTION invoice_lines_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT status FROM invoices WHERE id = COALESCE(NEW.invoice_id, OLD.invoice_id)) <> 'draft' THEN
        RAISE EXCEPTION 'invoice lines change only while the invoice is a draft';
    END IF;
    RETURN COALESCE(NEW, OLD);
END $$;
CREATE TRIGGER invoice_lines_frozen BEFORE INSERT OR UPDATE OR DELETE ON invoice_lines FOR EACH ROW EXECUTE FUNCTION invoice_lines_frozen();
CREATE FUNCTION invoices_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.status <> 'draft' THEN RAISE EXCEPTION 'issued and void invoices are kept'; END IF;
        RETURN OLD;
    END IF;
    IF OLD.status = 'void' OR (OLD.status = 'issued' AND (NEW.status <> 'void' OR NEW.total_minor <> OLD.total_minor OR NEW.number IS DISTINCT FROM OLD.number)) THEN
        RAISE EXCEPTION 'an issued invoice never changes; only voiding it is allowed';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER invoices_frozen BEFORE UPDATE OR DELETE ON invoices FOR EACH ROW EXECUTE FUNCTION invoices_frozen();
