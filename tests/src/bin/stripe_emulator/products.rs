//! `/v1/products`: create (with an optional custom id), retrieve, update, delete, list,
//! search.

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::events;
use crate::list;
use crate::params::{Params, apply_metadata, set_nullable};
use crate::search::Query;
use crate::state::{Ctx, Kind, State};

const WRITABLE: &[&str] = &[
    "active",
    "description",
    "images",
    "marketing_features",
    "metadata",
    "name",
    "package_dimensions",
    "shippable",
    "statement_descriptor",
    "tax_code",
    "tax_details",
    "unit_label",
    "url",
];
const CREATE_ONLY: &[&str] = &["id", "default_price_data", "type"];
const UPDATE_ONLY: &[&str] = &["default_price"];

pub fn create(state: &mut State, ctx: &Ctx, params: &Params) -> ApiResult<Value> {
    params.allow(&[WRITABLE, CREATE_ONLY].concat())?;
    let name = params.required_str("name")?;
    let id = match params.str("id")? {
        Some(id) if state.kind_of(&id).is_some() => {
            return Err(ApiError::param("id", "Product already exists.")
                .with_code("resource_already_exists"));
        }
        Some(id) if id.is_empty() => return Err(ApiError::missing_param("id")),
        Some(id) => id,
        None => crate::ids::with_len("prod_", 14),
    };
    let now = crate::ids::now();
    let mut product = state.template("product");
    product["id"] = json!(id);
    product["name"] = json!(name);
    product["created"] = json!(now);
    product["updated"] = json!(now);
    if let Some(t) = params.choice("type", &["good", "service"])? {
        product["type"] = json!(t);
    }
    apply(&mut product, params)?;
    state.put(Kind::Product, product.clone());
    events::emit(state, ctx, "product.created", product.clone(), None);
    if let Some(price_data) = params.hash("default_price_data")? {
        let price = crate::prices::create_for_product(state, ctx, &id, &price_data)?;
        let old = product.clone();
        product["default_price"] = price["id"].clone();
        state.put(Kind::Product, product.clone());
        events::emit_updated(state, ctx, "product.updated", &old, &product);
    }
    Ok(product)
}

pub fn retrieve(state: &State, id: &str) -> ApiResult<Value> {
    if state.is_deleted(id) {
        return Err(ApiError::no_such("product", id, "id"));
    }
    state.find(Kind::Product, id, "id")
}

pub fn update(state: &mut State, ctx: &Ctx, id: &str, params: &Params) -> ApiResult<Value> {
    params.allow(&[WRITABLE, UPDATE_ONLY].concat())?;
    let old = retrieve(state, id)?;
    let mut product = old.clone();
    if params.has("name") {
        product["name"] = json!(params.required_str("name")?);
    }
    apply(&mut product, params)?;
    if let Some(default_price) = params.nullable_str("default_price")? {
        if let Some(price_id) = &default_price {
            let price = state.find(Kind::Price, price_id, "default_price")?;
            if price["product"] != json!(id) {
                return Err(ApiError::param(
                    "default_price",
                    format!("The price `{price_id}` does not belong to product `{id}`."),
                ));
            }
        }
        product["default_price"] = json!(default_price);
    }
    if product != old {
        product["updated"] = json!(crate::ids::now());
    }
    state.put(Kind::Product, product.clone());
    events::emit_updated(state, ctx, "product.updated", &old, &product);
    Ok(product)
}

pub fn delete(state: &mut State, ctx: &Ctx, id: &str) -> ApiResult<Value> {
    let product = retrieve(state, id)?;
    let has_prices = state
        .table(Kind::Price)
        .newest_first()
        .any(|p| p["product"] == json!(id));
    if has_prices {
        return Err(ApiError::invalid(
            "This product cannot be deleted because it has one or more user-created prices.",
        ));
    }
    let stub = state.delete(Kind::Product, id);
    events::emit(state, ctx, "product.deleted", product, None);
    Ok(stub)
}

pub fn list(state: &State, params: &Params) -> ApiResult<Value> {
    list::allow(
        params,
        &["active", "ids", "created", "shippable", "type", "url"],
    )?;
    let active = params.bool("active")?;
    let ids = params.strings("ids")?;
    let items = live(state)
        .filter(|p| active.is_none_or(|a| p["active"] == json!(a)))
        .filter(|p| ids.is_empty() || ids.iter().any(|id| p["id"] == json!(id)))
        .cloned()
        .collect();
    list::page(items, params, "/v1/products")
}

pub fn search(state: &State, params: &Params) -> ApiResult<Value> {
    params.allow(&["query", "limit", "page", "expand"])?;
    let query = Query::parse(
        &params.required_str("query")?,
        &[
            "active",
            "name",
            "description",
            "url",
            "shippable",
            "created",
        ],
    )?;
    let items = live(state).filter(|p| query.matches(p)).cloned().collect();
    list::search_page(items, params, "/v1/products/search")
}

fn live(state: &State) -> impl Iterator<Item = &Value> {
    state
        .table(Kind::Product)
        .newest_first()
        .filter(|p| !state.is_deleted(p["id"].as_str().unwrap_or_default()))
}

fn apply(product: &mut Value, params: &Params) -> ApiResult<()> {
    for key in [
        "description",
        "statement_descriptor",
        "unit_label",
        "url",
        "tax_code",
    ] {
        set_nullable(product, params, key)?;
    }
    if let Some(active) = params.bool("active")? {
        product["active"] = json!(active);
    }
    if let Some(shippable) = params.bool("shippable")? {
        product["shippable"] = json!(shippable);
    }
    if params.has("images") {
        product["images"] = json!(params.strings("images")?);
    }
    if params.has("marketing_features") {
        let features: ApiResult<Vec<Value>> = params
            .list("marketing_features")?
            .iter()
            .map(|f| Ok(json!({ "name": f.required_str("name")? })))
            .collect();
        product["marketing_features"] = json!(features?);
    }
    if let Some(update) = params.metadata("metadata")? {
        apply_metadata(&mut product["metadata"], update, "metadata")?;
    }
    Ok(())
}
