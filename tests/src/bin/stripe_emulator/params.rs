//! Typed access to a parsed form, with Stripe's validation messages. Every accessor names
//! the parameter the way Stripe does (`line_items[0][price]`) when it rejects a value.

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, Default)]
pub struct Params {
    map: Map<String, Value>,
    prefix: String,
}

/// A metadata change: `metadata=` clears it, `metadata[k]=` removes a key.
pub enum MetadataUpdate {
    Clear,
    Set(Vec<(String, Option<String>)>),
}

impl Params {
    pub fn new(map: Map<String, Value>) -> Self {
        Self {
            map,
            prefix: String::new(),
        }
    }

    fn nested(map: Map<String, Value>, prefix: String) -> Self {
        Self { map, prefix }
    }

    /// The name Stripe gives `key` at this level: `key` or `prefix[key]`.
    pub fn name(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}[{key}]", self.prefix)
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.map.keys()
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key)
    }

    /// Rejects any parameter not in `allowed`, as Stripe does.
    pub fn allow(&self, allowed: &[&str]) -> ApiResult<()> {
        match self.map.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(unknown) => Err(ApiError::unknown_param(&self.name(unknown))),
            None => Ok(()),
        }
    }

    fn scalar(&self, key: &str) -> ApiResult<Option<&str>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::param(
                self.name(key),
                format!("Invalid string: {} must be a string", self.name(key)),
            )),
        }
    }

    /// A string, absent or present (an empty string counts as present).
    pub fn str(&self, key: &str) -> ApiResult<Option<String>> {
        Ok(self.scalar(key)?.map(str::to_owned))
    }

    pub fn required_str(&self, key: &str) -> ApiResult<String> {
        match self.scalar(key)? {
            Some(s) if !s.is_empty() => Ok(s.to_owned()),
            _ => Err(ApiError::missing_param(&self.name(key))),
        }
    }

    /// A field that may be unset with an empty string: `None` absent, `Some(None)` unset.
    pub fn nullable_str(&self, key: &str) -> ApiResult<Option<Option<String>>> {
        Ok(self
            .scalar(key)?
            .map(|s| (!s.is_empty()).then(|| s.to_owned())))
    }

    pub fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.scalar(key)? {
            None => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| ApiError::param(self.name(key), format!("Invalid integer: {s}"))),
        }
    }

    /// A non-negative integer.
    pub fn count(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.int(key)? {
            Some(n) if n < 0 => Err(ApiError::param(
                self.name(key),
                "This value must be greater than or equal to 0.",
            )),
            other => Ok(other),
        }
    }

    pub fn bool(&self, key: &str) -> ApiResult<Option<bool>> {
        match self.scalar(key)? {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(s) => Err(ApiError::param(
                self.name(key),
                format!("Invalid boolean: {s}"),
            )),
        }
    }

    /// One of a fixed set of values.
    pub fn choice(&self, key: &str, allowed: &[&str]) -> ApiResult<Option<String>> {
        match self.scalar(key)? {
            None => Ok(None),
            Some(s) if allowed.contains(&s) => Ok(Some(s.to_owned())),
            Some(s) => Err(ApiError::param(
                self.name(key),
                format!(
                    "Invalid {}: must be one of {} (got `{s}`)",
                    self.name(key),
                    allowed.join(", ")
                ),
            )),
        }
    }

    /// A list of strings (`expand[]=a`, `lookup_keys[0]=a`); absent is empty.
    pub fn strings(&self, key: &str) -> ApiResult<Vec<String>> {
        match self.map.get(key) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(self.not_a_list(key)),
                })
                .collect(),
            Some(_) => Err(self.not_a_list(key)),
        }
    }

    fn not_a_list(&self, key: &str) -> ApiError {
        ApiError::param(
            self.name(key),
            format!(
                "Invalid array: {} must be an array of strings",
                self.name(key)
            ),
        )
    }

    /// A list of hashes (`line_items[0][price]`), each as nested params.
    pub fn list(&self, key: &str) -> ApiResult<Vec<Params>> {
        match self.map.get(key) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Object(m) => Ok(Params::nested(
                        m.clone(),
                        format!("{}[{i}]", self.name(key)),
                    )),
                    _ => Err(ApiError::param(
                        format!("{}[{i}]", self.name(key)),
                        format!("Invalid hash: {}[{i}] must be a hash", self.name(key)),
                    )),
                })
                .collect(),
            Some(_) => Err(ApiError::param(
                self.name(key),
                format!("Invalid array: {} must be an array", self.name(key)),
            )),
        }
    }

    /// A hash (`recurring[interval]`): `None` absent, `Some(None)` unset with an empty string.
    pub fn object(&self, key: &str) -> ApiResult<Option<Option<Params>>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(Some(None)),
            Some(Value::Object(m)) => Ok(Some(Some(Params::nested(m.clone(), self.name(key))))),
            Some(_) => Err(ApiError::param(
                self.name(key),
                format!("Invalid hash: {} must be a hash", self.name(key)),
            )),
        }
    }

    /// A hash that may not be unset.
    pub fn hash(&self, key: &str) -> ApiResult<Option<Params>> {
        match self.object(key)? {
            None | Some(None) => Ok(None),
            Some(Some(p)) => Ok(Some(p)),
        }
    }

    pub fn metadata(&self, key: &str) -> ApiResult<Option<MetadataUpdate>> {
        let Some(object) = self.object(key)? else {
            return Ok(None);
        };
        let Some(params) = object else {
            return Ok(Some(MetadataUpdate::Clear));
        };
        let mut entries = Vec::new();
        for (k, v) in &params.map {
            let Value::String(v) = v else {
                return Err(ApiError::param(
                    params.name(k),
                    "Invalid metadata value: metadata values must be strings",
                ));
            };
            if k.chars().count() > 40 {
                return Err(ApiError::param(
                    params.name(k),
                    "Metadata keys can have up to 40 characters.",
                ));
            }
            if v.chars().count() > 500 {
                return Err(ApiError::param(
                    params.name(k),
                    "Metadata values can have up to 500 characters.",
                ));
            }
            entries.push((k.clone(), (!v.is_empty()).then(|| v.clone())));
        }
        Ok(Some(MetadataUpdate::Set(entries)))
    }
}

/// Applies a metadata change to an object's `metadata` map (Stripe allows 50 keys).
pub fn apply_metadata(target: &mut Value, update: MetadataUpdate, param: &str) -> ApiResult<()> {
    let mut map = match target.take() {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    match update {
        MetadataUpdate::Clear => map.clear(),
        MetadataUpdate::Set(entries) => {
            for (k, v) in entries {
                match v {
                    Some(v) => {
                        map.insert(k, Value::String(v));
                    }
                    None => {
                        map.remove(&k);
                    }
                }
            }
        }
    }
    if map.len() > 50 {
        return Err(ApiError::param(
            param,
            "You can have up to 50 metadata keys.",
        ));
    }
    *target = Value::Object(map);
    Ok(())
}

/// Sets `target[key]` from a nullable string parameter, if it was given.
pub fn set_nullable(target: &mut Value, params: &Params, key: &str) -> ApiResult<()> {
    if let Some(value) = params.nullable_str(key)? {
        target[key] = value.map_or(Value::Null, Value::String);
    }
    Ok(())
}
