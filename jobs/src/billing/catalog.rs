//! The plan catalogue in Stripe: one product per paid plan (`catalytic_<plan>`) with a
//! monthly and a yearly price found by lookup key (`catalytic_<plan>_month`, `_year`), and
//! the way back from a price to a plan.

use std::fmt;
use std::str::FromStr;

use catalytic_db::plans::{self, Plan};
use catalytic_db::{Conn, Pool};
use stripe_product::price::{
    CreatePrice, CreatePriceRecurring, CreatePriceRecurringInterval, ListPrice,
};
use stripe_product::product::{CreateProduct, RetrieveProduct, UpdateProduct};
use stripe_product::{Price, RecurringInterval};
use stripe_types::Currency;

use crate::billing::{BillingError, Stripe};

/// A billing interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interval {
    Month,
    Year,
}

impl Interval {
    pub const ALL: [Interval; 2] = [Interval::Month, Interval::Year];

    pub const fn as_str(self) -> &'static str {
        match self {
            Interval::Month => "month",
            Interval::Year => "year",
        }
    }

    /// The plan's price for this interval, in cents.
    pub fn cents(self, plan: &Plan) -> i64 {
        match self {
            Interval::Month => plan.price_monthly_cents,
            Interval::Year => plan.price_yearly_cents,
        }
    }

    /// The plan's Stripe price for this interval, once `stripe-sync` has run.
    pub fn price_id(self, plan: &Plan) -> Option<&str> {
        match self {
            Interval::Month => plan.stripe_price_monthly_id.as_deref(),
            Interval::Year => plan.stripe_price_yearly_id.as_deref(),
        }
    }

    fn of_price(price: &Price) -> Option<Self> {
        match price.recurring.as_ref()?.interval {
            RecurringInterval::Month => Some(Interval::Month),
            RecurringInterval::Year => Some(Interval::Year),
            _ => None,
        }
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Interval {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "month" => Ok(Interval::Month),
            "year" => Ok(Interval::Year),
            _ => Err("must be month or year".into()),
        }
    }
}

/// Whether a plan is sold through Stripe (Free is not).
pub fn is_paid(plan: &Plan) -> bool {
    plan.price_monthly_cents > 0 || plan.price_yearly_cents > 0
}

/// The Stripe product id of a plan.
pub fn product_id(plan_code: &str) -> String {
    format!("catalytic_{plan_code}")
}

/// The lookup key of a plan's price for an interval.
pub fn lookup_key(plan_code: &str, interval: Interval) -> String {
    format!("catalytic_{plan_code}_{interval}")
}

/// What `stripe-sync` did for one plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedPlan {
    pub code: String,
    pub product_id: String,
    pub monthly_price_id: String,
    pub yearly_price_id: String,
    /// Objects created or changed in Stripe by this run (empty when all was in place).
    pub changes: Vec<String>,
}

/// Creates or updates the product and prices of every paid plan and stores their ids.
/// Idempotent: a second run finds everything by id and lookup key and changes nothing.
pub async fn sync(stripe: &Stripe, db: &Pool) -> Result<Vec<SyncedPlan>, BillingError> {
    let all = {
        let mut conn = db.get().await?;
        plans::list(&mut conn).await?
    };
    let mut out = Vec::new();
    for plan in all.iter().filter(|p| is_paid(p)) {
        let mut changes = Vec::new();
        let product = ensure_product(stripe, plan, &mut changes).await?;
        let monthly = ensure_price(stripe, plan, &product, Interval::Month, &mut changes).await?;
        let yearly = ensure_price(stripe, plan, &product, Interval::Year, &mut changes).await?;
        let mut conn = db.get().await?;
        plans::set_stripe_ids(&mut conn, plan.id, &product, &monthly, &yearly).await?;
        out.push(SyncedPlan {
            code: plan.code.clone(),
            product_id: product,
            monthly_price_id: monthly,
            yearly_price_id: yearly,
            changes,
        });
    }
    Ok(out)
}

async fn ensure_product(
    stripe: &Stripe,
    plan: &Plan,
    changes: &mut Vec<String>,
) -> Result<String, BillingError> {
    let id = product_id(&plan.code);
    match RetrieveProduct::new(id.as_str())
        .send(stripe.client())
        .await
    {
        Ok(product) => {
            if product.name != plan.name || !product.active {
                UpdateProduct::new(id.as_str())
                    .name(plan.name.as_str())
                    .active(true)
                    .send(stripe.client())
                    .await?;
                changes.push(format!("updated product {id}"));
            }
        }
        Err(e) => match BillingError::from(e) {
            BillingError::NotFound(_) => {
                CreateProduct::new(plan.name.as_str())
                    .id(id.as_str())
                    .metadata([("plan_code".to_owned(), plan.code.clone())])
                    .send(stripe.client())
                    .await?;
                changes.push(format!("created product {id}"));
            }
            other => return Err(other),
        },
    }
    Ok(id)
}

async fn ensure_price(
    stripe: &Stripe,
    plan: &Plan,
    product: &str,
    interval: Interval,
    changes: &mut Vec<String>,
) -> Result<String, BillingError> {
    let key = lookup_key(&plan.code, interval);
    let cents = interval.cents(plan);
    let currency = Currency::from_str(&plan.currency)
        .map_err(|_| BillingError::Invalid(format!("unknown currency {:?}", plan.currency)))?;
    let found = ListPrice::new()
        .lookup_keys(vec![key.clone()])
        .send(stripe.client())
        .await?;
    if let Some(price) = found.data.iter().find(|p| {
        p.active
            && p.unit_amount == Some(cents)
            && p.currency == currency
            && Interval::of_price(p) == Some(interval)
            && p.product.id().as_str() == product
    }) {
        return Ok(price.id.to_string());
    }
    // None yet, or the amount changed: a new price takes the lookup key over. Existing
    // subscriptions keep the old price (its metadata still names the plan).
    let price = CreatePrice::new(currency)
        .product(product)
        .unit_amount(cents)
        .recurring(CreatePriceRecurring::new(match interval {
            Interval::Month => CreatePriceRecurringInterval::Month,
            Interval::Year => CreatePriceRecurringInterval::Year,
        }))
        .lookup_key(key.as_str())
        .transfer_lookup_key(true)
        .metadata([
            ("plan_code".to_owned(), plan.code.clone()),
            ("interval".to_owned(), interval.as_str().to_owned()),
        ])
        .send(stripe.client())
        .await?;
    changes.push(format!("created price {} ({key})", price.id));
    Ok(price.id.to_string())
}

/// The plan a Stripe price bills, and its interval: by the ids `stripe-sync` stored, else
/// by the price's `plan_code` metadata, lookup key or product id (a price replaced since).
pub async fn plan_of_price(
    conn: &mut Conn,
    price: &Price,
) -> Result<Option<(Plan, Interval)>, BillingError> {
    let interval = Interval::of_price(price);
    if let Some((plan, stored)) = plans::by_stripe_price(conn, price.id.as_str()).await? {
        let stored = stored.parse().unwrap_or(Interval::Month);
        return Ok(Some((plan, interval.unwrap_or(stored))));
    }
    let Some(interval) = interval else {
        return Ok(None);
    };
    let product = price.product.id().to_string();
    let code = price
        .metadata
        .get("plan_code")
        .cloned()
        .or_else(|| {
            price.lookup_key.as_deref().and_then(|k| {
                k.strip_prefix("catalytic_")
                    .and_then(|rest| rest.rsplit_once('_'))
                    .map(|(code, _)| code.to_owned())
            })
        })
        .or_else(|| product.strip_prefix("catalytic_").map(str::to_owned));
    let Some(code) = code else {
        return Ok(None);
    };
    match plans::by_code(conn, &code).await {
        Ok(plan) => Ok(Some((plan, interval))),
        Err(catalytic_db::DbError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_keys_and_product_ids_name_the_plan() {
        assert_eq!(
            lookup_key("starter", Interval::Month),
            "catalytic_starter_month"
        );
        assert_eq!(
            lookup_key("professional", Interval::Year),
            "catalytic_professional_year"
        );
        assert_eq!(product_id("enterprise"), "catalytic_enterprise");
        assert_eq!("year".parse::<Interval>(), Ok(Interval::Year));
        assert!("week".parse::<Interval>().is_err());
    }
}
