//! The checked-in spec matches what the code produces.

#[test]
fn the_checked_in_openapi_spec_matches_the_code() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi");
    let json =
        std::fs::read_to_string(format!("{root}/openapi.json")).expect("openapi/openapi.json");
    let yaml =
        std::fs::read_to_string(format!("{root}/openapi.yaml")).expect("openapi/openapi.yaml");
    let hint = "regenerate with: cargo run -q -p catalytic-api -- openapi > openapi/openapi.json \
                && cargo run -q -p catalytic-api -- openapi --format yaml > openapi/openapi.yaml";
    assert!(
        json.trim() == catalytic_api::app::spec_json().trim(),
        "openapi.json drifted; {hint}"
    );
    assert!(
        yaml.trim() == catalytic_api::app::spec_yaml().trim(),
        "openapi.yaml drifted; {hint}"
    );
}

#[test]
fn every_operation_has_an_operation_id_and_declares_the_error_shape() {
    let spec: serde_json::Value = serde_json::from_str(&catalytic_api::app::spec_json()).unwrap();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op["operationId"].is_string(),
                "{method} {path} has no operationId"
            );
            if path != "/health" && path != "/api/auth/health" && path != "/.well-known/jwks.json" {
                assert!(
                    op["responses"]["422"].is_object() || op["responses"]["400"].is_object(),
                    "{method} {path} declares no error responses"
                );
            }
        }
    }
}
