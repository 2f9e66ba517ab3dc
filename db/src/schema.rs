//! Diesel table definitions, matching `migrations/` (checked by the migration tests).

diesel::table! {
    subscription_plans (id) {
        id -> Uuid,
        code -> Text,
        name -> Text,
        currency -> Text,
        price_monthly_cents -> Int8,
        price_yearly_cents -> Int8,
        api_calls_per_month -> Nullable<Int8>,
        max_lattices -> Nullable<Int4>,
        max_users -> Nullable<Int4>,
        storage_bytes -> Nullable<Int8>,
        max_dimensions -> Int4,
        max_size -> Nullable<Int8>,
        max_vertices -> Nullable<Int8>,
        rate_limit_per_minute -> Int4,
        sort_order -> Int4,
        stripe_product_id -> Nullable<Text>,
        stripe_price_monthly_id -> Nullable<Text>,
        stripe_price_yearly_id -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    tenants (id) {
        id -> Uuid,
        name -> Text,
        slug -> Text,
        status -> Text,
        suspended_at -> Nullable<Timestamptz>,
        limit_overrides -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        suspension_reason -> Nullable<Text>,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        email -> Text,
        password_hash -> Text,
        first_name -> Text,
        last_name -> Text,
        role -> Text,
        is_active -> Bool,
        is_platform_admin -> Bool,
        last_login_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    tenant_subscriptions (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        plan_id -> Uuid,
        pending_plan_id -> Nullable<Uuid>,
        status -> Text,
        billing_interval -> Nullable<Text>,
        stripe_subscription_id -> Nullable<Text>,
        current_period_start -> Nullable<Timestamptz>,
        current_period_end -> Nullable<Timestamptz>,
        cancel_at_period_end -> Bool,
        trial_end -> Nullable<Timestamptz>,
        past_due_since -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        stripe_synced_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    stripe_customers (tenant_id) {
        tenant_id -> Uuid,
        stripe_customer_id -> Text,
        email -> Nullable<Text>,
        name -> Nullable<Text>,
        address -> Nullable<Jsonb>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    stripe_payment_methods (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        stripe_payment_method_id -> Text,
        brand -> Nullable<Text>,
        last4 -> Nullable<Text>,
        exp_month -> Nullable<Int4>,
        exp_year -> Nullable<Int4>,
        is_default -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    invoices (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        stripe_invoice_id -> Text,
        stripe_subscription_id -> Nullable<Text>,
        number -> Nullable<Text>,
        status -> Text,
        currency -> Text,
        amount_due_cents -> Int8,
        amount_paid_cents -> Int8,
        hosted_invoice_url -> Nullable<Text>,
        period_start -> Nullable<Timestamptz>,
        period_end -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        stripe_synced_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    usage_records (tenant_id, hour, metric) {
        tenant_id -> Uuid,
        hour -> Timestamptz,
        metric -> Text,
        count -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    usage_rollup_buckets (tenant_id, minute) {
        tenant_id -> Uuid,
        minute -> Timestamptz,
        rolled_at -> Timestamptz,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        created_by -> Nullable<Uuid>,
        name -> Text,
        prefix -> Text,
        key_hash -> Text,
        role -> Text,
        expires_at -> Nullable<Timestamptz>,
        last_used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    audit_logs (id) {
        id -> Uuid,
        tenant_id -> Nullable<Uuid>,
        actor_user_id -> Nullable<Uuid>,
        actor_api_key_id -> Nullable<Uuid>,
        action -> Text,
        target_type -> Nullable<Text>,
        target_id -> Nullable<Text>,
        ip -> Nullable<Text>,
        request_id -> Nullable<Text>,
        details -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    notifications (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        user_id -> Nullable<Uuid>,
        kind -> Text,
        title -> Text,
        body -> Text,
        data -> Jsonb,
        dedupe_key -> Nullable<Text>,
        read_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    lattices (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        name -> Text,
        dimensions -> Int4,
        size -> Int8,
        obstacle_density -> Float8,
        seed -> Int8,
        boundary -> Text,
        vertices -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    jobs (id) {
        id -> Uuid,
        tenant_id -> Nullable<Uuid>,
        lattice_id -> Nullable<Uuid>,
        queue -> Text,
        kind -> Text,
        params -> Jsonb,
        status -> Text,
        progress -> Int2,
        attempts -> Int4,
        max_attempts -> Int4,
        result -> Nullable<Jsonb>,
        error -> Nullable<Text>,
        cancel_requested -> Bool,
        idempotency_key -> Nullable<Text>,
        request_hash -> Nullable<Text>,
        request_id -> Nullable<Text>,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        enqueued_at -> Nullable<Timestamptz>,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    stripe_events (id) {
        id -> Uuid,
        stripe_event_id -> Text,
        event_type -> Text,
        livemode -> Bool,
        payload -> Jsonb,
        status -> Text,
        attempts -> Int4,
        error -> Nullable<Text>,
        event_created -> Nullable<Timestamptz>,
        received_at -> Timestamptz,
        processed_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    email_outbox (id) {
        id -> Uuid,
        tenant_id -> Nullable<Uuid>,
        to_address -> Text,
        template -> Text,
        data -> Jsonb,
        status -> Text,
        message_id -> Text,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        smtp_response -> Nullable<Text>,
        created_at -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Uuid,
        user_id -> Uuid,
        tenant_id -> Uuid,
        family_id -> Uuid,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    password_reset_tokens (id) {
        id -> Uuid,
        user_id -> Uuid,
        token_hash -> Text,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(users -> tenants (tenant_id));
diesel::joinable!(tenant_subscriptions -> tenants (tenant_id));
diesel::joinable!(stripe_customers -> tenants (tenant_id));
diesel::joinable!(invoices -> tenants (tenant_id));
diesel::joinable!(api_keys -> tenants (tenant_id));
diesel::joinable!(lattices -> tenants (tenant_id));
diesel::joinable!(jobs -> lattices (lattice_id));
diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(password_reset_tokens -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    subscription_plans,
    tenants,
    users,
    tenant_subscriptions,
    stripe_customers,
    stripe_payment_methods,
    invoices,
    usage_records,
    usage_rollup_buckets,
    api_keys,
    audit_logs,
    notifications,
    lattices,
    jobs,
    stripe_events,
    email_outbox,
    refresh_tokens,
    password_reset_tokens,
);
