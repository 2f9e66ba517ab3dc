-- Billing: why a tenant is suspended (a billing suspension is lifted by a payment, an
-- operator's is not), when each Stripe-derived row was last read from Stripe (the
-- reconciliation writes a row only from a read at least as recent as the one it holds,
-- so concurrent reconciliations cannot leave an older state behind), and the inbox's
-- staleness clock for the sweeper.
ALTER TABLE tenants
    ADD COLUMN suspension_reason text CHECK (suspension_reason IN ('billing', 'operator'));

ALTER TABLE tenant_subscriptions ADD COLUMN stripe_synced_at timestamptz;
ALTER TABLE invoices ADD COLUMN stripe_synced_at timestamptz;

ALTER TABLE stripe_events ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX stripe_events_stale_idx ON stripe_events (updated_at) WHERE status = 'pending';
DROP INDEX stripe_events_pending_idx;
