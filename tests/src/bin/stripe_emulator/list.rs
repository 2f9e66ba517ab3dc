//! List and search results in Stripe's shapes, with cursor (`limit`, `starting_after`,
//! `ending_before`) and page (`page`) pagination.

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::params::Params;

const PAGING: &[&str] = &["limit", "starting_after", "ending_before"];

/// The parameters every list takes, besides its own filters.
pub fn allow(params: &Params, filters: &[&str]) -> ApiResult<()> {
    let allowed: Vec<&str> = PAGING.iter().chain(filters).copied().collect();
    params.allow(&allowed)
}

fn limit(params: &Params) -> ApiResult<usize> {
    match params.int("limit")? {
        None => Ok(10),
        Some(n) if (1..=100).contains(&n) => Ok(n as usize),
        Some(_) => Err(ApiError::param(
            "limit",
            "This value must be between 1 and 100.",
        )),
    }
}

/// A page of `items` (newest first) as `{"object": "list", …}`.
pub fn page(items: Vec<Value>, params: &Params, url: &str) -> ApiResult<Value> {
    let limit = limit(params)?;
    let position = |param: &str| -> ApiResult<Option<usize>> {
        let Some(id) = params.str(param)? else {
            return Ok(None);
        };
        items
            .iter()
            .position(|item| item["id"] == json!(id))
            .map(Some)
            .ok_or_else(|| ApiError::no_such("object", &id, param))
    };
    let (window, has_more): (Vec<Value>, bool) = if let Some(after) = position("starting_after")? {
        let rest = &items[after + 1..];
        (
            rest.iter().take(limit).cloned().collect(),
            rest.len() > limit,
        )
    } else if let Some(before) = position("ending_before")? {
        let head = &items[..before];
        let start = head.len().saturating_sub(limit);
        (head[start..].to_vec(), start > 0)
    } else {
        (
            items.iter().take(limit).cloned().collect(),
            items.len() > limit,
        )
    };
    Ok(json!({ "object": "list", "data": window, "has_more": has_more, "url": url }))
}

/// A page of search hits as `{"object": "search_result", …}`; `page` is an offset token.
pub fn search_page(items: Vec<Value>, params: &Params, url: &str) -> ApiResult<Value> {
    let limit = limit(params)?;
    let offset = match params.str("page")? {
        None => 0,
        Some(token) => token
            .strip_prefix("page_")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| ApiError::param("page", "Invalid page token."))?,
    };
    let total = items.len();
    let data: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    let has_more = offset + data.len() < total;
    Ok(json!({
        "object": "search_result",
        "data": data,
        "has_more": has_more,
        "next_page": has_more.then(|| format!("page_{}", offset + limit)),
        "url": url,
        "total_count": total,
    }))
}
