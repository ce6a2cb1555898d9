-- Per attributed interval: |predicted − measured| host power (top-level
-- domains) of the model that split it, in integer milliwatts. NULL without
-- a model (version 0) and for late intervals attributed on their own: the
-- attribution dashboard's model error over time reads it.
ALTER TABLE intervals ADD COLUMN model_error_mw BIGINT CHECK (model_error_mw >= 0);
