//! `/v1/billing_portal/sessions`: a session whose `url` opens the emulator's portal page.

use serde_json::{Value, json};

use crate::error::ApiResult;
use crate::params::Params;
use crate::state::{Ctx, Kind, State};

pub fn create(state: &mut State, _ctx: &Ctx, params: &Params) -> ApiResult<Value> {
    params.allow(&[
        "customer",
        "return_url",
        "configuration",
        "flow_data",
        "locale",
        "on_behalf_of",
        "customer_account",
    ])?;
    let customer = params.required_str("customer")?;
    crate::customers::live(state, &customer, "customer")?;
    let id = crate::ids::with_len("bps_", 24);
    let mut session = state.template("billing_portal.session");
    session["id"] = json!(id);
    session["created"] = json!(crate::ids::now());
    session["customer"] = json!(customer);
    session["configuration"] = json!(
        params
            .str("configuration")?
            .unwrap_or_else(|| state.portal_configuration.clone())
    );
    session["return_url"] = json!(params.str("return_url")?);
    session["locale"] = json!(params.str("locale")?);
    session["url"] = json!(format!("{}/billing_portal/{id}", state.base_url));
    state.put(Kind::PortalSession, session.clone());
    Ok(session)
}
