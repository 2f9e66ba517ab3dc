//! Input validation shared by handlers: each check returns a field error, and handlers
//! collect them into one 422.

use crate::error::{ApiError, FieldError};

/// Collects field errors; `finish` turns any into a 422.
#[derive(Default)]
pub struct Checks(Vec<FieldError>);

impl Checks {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn check(&mut self, result: Result<(), FieldError>) -> &mut Self {
        if let Err(e) = result {
            self.0.push(e);
        }
        self
    }

    pub fn finish(&mut self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(std::mem::take(&mut self.0)))
        }
    }
}

/// Normalises an email (trim, lower case) and checks its shape: one `@`, a dot in the
/// domain, no spaces or control characters (so no header injection), at most 254 bytes.
pub fn email(field: &str, raw: &str) -> Result<String, FieldError> {
    let e = raw.trim().to_lowercase();
    let bad = || FieldError::new(field, "must be a valid email address");
    if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = e.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || e.contains(['<', '>', ',', ';', '"'])
    {
        return Err(bad());
    }
    Ok(e)
}

/// A required text of 1..=max characters, without control characters.
pub fn text(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    let n = value.trim().chars().count();
    if n == 0 {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if n > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value.chars().any(|c| c.is_control()) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// A one-line value (an identifier, a filter, an email to look up) without control
/// characters: PostgreSQL cannot store a NUL, and none of these has a use for the others.
pub fn no_control(field: &str, value: &str) -> Result<(), FieldError> {
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Multi-line text (an email body): tabs and line breaks allowed, no other control
/// characters (no NUL, which PostgreSQL cannot store).
pub fn multiline(field: &str, value: &str) -> Result<(), FieldError> {
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(FieldError::new(
            field,
            "must not contain control characters other than tabs and line breaks",
        ));
    }
    Ok(())
}

/// Every string and key of a JSON value checked as [`multiline`] text (jsonb cannot store
/// a `\u0000`).
pub fn json_text(field: &str, value: &serde_json::Value) -> Result<(), FieldError> {
    use serde_json::Value;
    match value {
        Value::String(s) => multiline(field, s),
        Value::Array(items) => items.iter().try_for_each(|v| json_text(field, v)),
        Value::Object(map) => map
            .iter()
            .try_for_each(|(k, v)| multiline(field, k).and_then(|()| json_text(field, v))),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

/// A URL-safe slug from a company name: lower-case ASCII letters, digits and dashes.
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let mut s: String = out.trim_matches('-').chars().take(48).collect();
    s = s.trim_matches('-').to_owned();
    if s.is_empty() { "org".to_owned() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            email("email", " Ada@Example.COM ").as_deref(),
            Ok("ada@example.com")
        );
        for bad in [
            "ada",
            "ada@",
            "@x.io",
            "a@b",
            "a b@x.io",
            "a@x.io\r\nBcc: z@z.io",
            "a@@x.io",
        ] {
            assert!(email("email", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn control_characters_are_refused() {
        assert!(no_control("f", "starter").is_ok());
        for bad in ["a\0b", "\u{0}", "a\nb", "\u{7f}"] {
            assert!(no_control("f", bad).is_err(), "{bad:?} accepted");
        }
        assert!(multiline("f", "line 1\r\n\tline 2").is_ok());
        assert!(multiline("f", "a\0b").is_err());
        let ok = serde_json::json!({"a": ["x\ny", 1, null, {"b": "c"}]});
        assert!(json_text("data", &ok).is_ok());
        assert!(json_text("data", &serde_json::json!({"a": [{"b": "c\0"}]})).is_err());
        assert!(json_text("data", &serde_json::json!({"k\0": 1})).is_err());
    }

    #[test]
    fn slugs_are_url_safe() {
        assert_eq!(slugify("Acme Rockets, Inc."), "acme-rockets-inc");
        assert_eq!(slugify("  ---  "), "org");
        assert_eq!(slugify("Ünïcode Ltd"), "n-code-ltd");
    }
}
