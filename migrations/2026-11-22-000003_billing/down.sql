CREATE INDEX stripe_events_pending_idx ON stripe_events (received_at) WHERE status = 'pending';
DROP INDEX stripe_events_stale_idx;
ALTER TABLE stripe_events DROP COLUMN updated_at;
ALTER TABLE invoices DROP COLUMN stripe_synced_at;
ALTER TABLE tenant_subscriptions DROP COLUMN stripe_synced_at;
ALTER TABLE tenants DROP COLUMN suspension_reason;
