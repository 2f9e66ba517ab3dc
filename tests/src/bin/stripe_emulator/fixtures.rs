//! Stripe's official example objects (`fixtures3.json`, the file stripe-mock serves): every
//! object the emulator answers with starts as a deep copy of the fixture of its type, so it
//! carries every field of the current API in the right shape. The fixtures fill optional
//! fields with example data (a discount on the customer, a pending update on the
//! subscription, …); a template resets those to what a fresh object of that type has.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

/// The fixture types the emulator builds objects from.
const KINDS: &[&str] = &[
    "customer",
    "product",
    "price",
    "plan",
    "checkout.session",
    "item",
    "billing_portal.session",
    "subscription",
    "subscription_item",
    "invoice",
    "line_item",
    "event",
];

#[derive(Debug, Clone)]
pub struct Fixtures {
    resources: Map<String, Value>,
}

impl Fixtures {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading Stripe fixtures from {}", path.display()))?;
        let mut root: Value = serde_json::from_str(&text)
            .with_context(|| format!("parsing Stripe fixtures {}", path.display()))?;
        let Some(Value::Object(resources)) = root.get_mut("resources").map(Value::take) else {
            bail!(
                "{}: no `resources` map (expected stripe-mock's fixtures3.json)",
                path.display()
            );
        };
        for kind in KINDS {
            match resources.get(*kind) {
                Some(Value::Object(_)) => {}
                _ => bail!("{}: no `{kind}` fixture", path.display()),
            }
        }
        Ok(Self { resources })
    }

    /// A fresh object of `kind`: the fixture with its example-only fields reset.
    pub fn template(&self, kind: &str) -> Value {
        let mut object = self
            .resources
            .get(kind)
            .cloned()
            .unwrap_or_else(|| json!({}));
        if let (Value::Object(target), Value::Object(overrides)) = (&mut object, overrides(kind)) {
            for (k, v) in overrides {
                target.insert(k, v);
            }
        }
        object
    }
}

/// Per type, the fields whose fixture values are examples rather than defaults.
fn overrides(kind: &str) -> Value {
    match kind {
        "customer" => json!({
            "address": null, "balance": 0, "currency": null, "default_source": null,
            "delinquent": false, "description": null, "discount": null, "email": null,
            "metadata": {}, "name": null, "next_invoice_sequence": 1, "phone": null,
            "preferred_locales": [], "shipping": null, "tax_exempt": "none", "test_clock": null,
            "livemode": false,
        }),
        "product" => json!({
            "active": true, "default_price": null, "description": null, "images": [],
            "marketing_features": [], "metadata": {}, "package_dimensions": null,
            "shippable": null, "statement_descriptor": null, "tax_code": null,
            "unit_label": null, "url": null, "type": "service", "livemode": false,
        }),
        "price" => json!({
            "active": true, "billing_scheme": "per_unit", "custom_unit_amount": null,
            "lookup_key": null, "metadata": {}, "nickname": null, "recurring": null,
            "tax_behavior": "unspecified", "tiers_mode": null, "transform_quantity": null,
            "type": "one_time", "livemode": false,
        }),
        "plan" => json!({
            "active": true, "billing_scheme": "per_unit", "metadata": {}, "meter": null,
            "nickname": null, "tiers_mode": null, "transform_usage": null,
            "trial_period_days": null, "usage_type": "licensed", "livemode": false,
        }),
        "checkout.session" => json!({
            "after_expiration": null, "allow_promotion_codes": null, "amount_subtotal": null,
            "amount_total": null,
            "automatic_tax": {"enabled": false, "liability": null, "status": null, "provider": null},
            "billing_address_collection": null, "client_reference_id": null,
            "client_secret": null, "consent": null, "consent_collection": null,
            "currency": null, "custom_fields": [],
            "custom_text": {"after_submit": null, "shipping_address": null, "submit": null,
                            "terms_of_service_acceptance": null},
            "customer": null, "customer_creation": null, "customer_details": null,
            "customer_email": null, "invoice": null, "invoice_creation": null,
            "livemode": false, "locale": null, "metadata": {}, "payment_intent": null,
            "payment_link": null, "payment_method_collection": "always",
            "payment_method_configuration_details": null, "payment_method_options": null,
            "payment_method_types": ["card"], "payment_status": "unpaid",
            "phone_number_collection": {"enabled": false}, "recovered_from": null,
            "saved_payment_method_options": null, "setup_intent": null,
            "shipping_address_collection": null, "shipping_cost": null, "shipping_options": [],
            "status": "open", "submit_type": null, "subscription": null,
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "ui_mode": "hosted", "adaptive_pricing": {"enabled": false}, "discounts": [],
            "collected_information": null, "permissions": null, "wallet_options": null,
            "origin_context": null, "currency_conversion": null, "customer_account": null,
            "integration_identifier": null, "managed_payments": null,
        }),
        "item" => json!({
            "amount_discount": 0, "amount_tax": 0, "metadata": null, "adjustable_quantity": null,
        }),
        "billing_portal.session" => json!({
            "flow": null, "livemode": false, "locale": null, "on_behalf_of": null,
            "customer_account": null,
        }),
        "subscription" => json!({
            "application": null, "application_fee_percent": null,
            "automatic_tax": {"enabled": false, "liability": null, "disabled_reason": null},
            "billing_cycle_anchor_config": null, "cancel_at": null, "canceled_at": null,
            "cancellation_details": {"comment": null, "feedback": null, "reason": null},
            "cancel_at_period_end": false, "default_payment_method": null,
            "default_source": null, "default_tax_rates": [], "description": null,
            "discounts": [], "ended_at": null,
            "invoice_settings": {"account_tax_ids": null, "issuer": {"type": "self"}},
            "latest_invoice": null, "livemode": false, "metadata": {},
            "next_pending_invoice_item_invoice": null, "on_behalf_of": null,
            "pause_collection": null,
            "payment_settings": {"payment_method_options": null, "payment_method_types": null,
                                 "save_default_payment_method": "off"},
            "pending_invoice_item_interval": null, "pending_setup_intent": null,
            "pending_update": null, "schedule": null, "test_clock": null,
            "transfer_data": null, "trial_end": null, "trial_start": null,
            "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
            "billing_thresholds": null,
            "billing_mode": {"type": "classic", "flexible": null},
            "customer_account": null, "managed_payments": null, "billing_schedules": [],
        }),
        "subscription_item" => json!({
            "billing_thresholds": null, "discounts": [], "metadata": {}, "tax_rates": [],
        }),
        "invoice" => json!({
            "account_country": "US", "account_name": "Stripe emulator", "account_tax_ids": null,
            "amount_overpaid": 0, "amount_shipping": 0, "application": null,
            "attempt_count": 0, "attempted": false, "auto_advance": true,
            "automatic_tax": {"enabled": false, "liability": null, "status": null,
                              "disabled_reason": null, "provider": null},
            "automatically_finalizes_at": null, "custom_fields": null,
            "customer_address": null, "customer_email": null, "customer_name": null,
            "customer_phone": null, "customer_shipping": null, "customer_tax_exempt": "none",
            "customer_tax_ids": [], "default_payment_method": null, "default_source": null,
            "default_tax_rates": [], "description": null, "discounts": [], "due_date": null,
            "ending_balance": 0, "footer": null, "from_invoice": null,
            "invoice_pdf": null, "last_finalization_error": null, "latest_revision": null,
            "livemode": false, "metadata": {}, "next_payment_attempt": null,
            "on_behalf_of": null,
            "payment_settings": {"default_mandate": null, "payment_method_options": null,
                                 "payment_method_types": null},
            "post_payment_credit_notes_amount": 0, "pre_payment_credit_notes_amount": 0,
            "receipt_number": null, "shipping_cost": null, "shipping_details": null,
            "starting_balance": 0, "statement_descriptor": null, "test_clock": null,
            "total_discount_amounts": [], "total_pretax_credit_amounts": [], "total_taxes": [],
            "webhooks_delivered_at": null, "customer_account": null,
        }),
        "line_item" => json!({
            "discount_amounts": [], "discountable": true, "discounts": [], "livemode": false,
            "metadata": {}, "pretax_credit_amounts": [], "taxes": [], "quantity_decimal": null,
        }),
        "event" => json!({
            "livemode": false, "pending_webhooks": 0,
            "request": {"id": null, "idempotency_key": null},
        }),
        _ => json!({}),
    }
}
