-- The four plans of ARCHITECTURE.md. NULL limits are unlimited; 1 GB = 10^9 bytes.
INSERT INTO subscription_plans
    (code, name, price_monthly_cents, price_yearly_cents, api_calls_per_month, max_lattices, max_users,
     storage_bytes, max_dimensions, max_size, max_vertices, rate_limit_per_minute, sort_order)
VALUES
    ('free',         'Free',         0,     0,      100,   1,    1,    1000000000,   3,  10,   1000,       60,   0),
    ('starter',      'Starter',      2900,  29000,  1000,  5,    3,    10000000000,  4,  NULL, 100000,     300,  1),
    ('professional', 'Professional', 9900,  99000,  10000, 25,   10,   100000000000, 10, NULL, 10000000,   1200, 2),
    ('enterprise',   'Enterprise',   49900, 499000, NULL,  NULL, NULL, NULL,         10, NULL, 1000000000, 6000, 3);
