DELETE FROM subscription_plans WHERE code IN ('free', 'starter', 'professional', 'enterprise');
