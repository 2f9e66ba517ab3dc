//! Stripe's search query language, the part the emulator needs: clauses
//! `field:'value'` (exact), `field~'value'` (substring), `-field:'value'` (negation),
//! `metadata['key']:'value'`, joined all by `AND` or all by `OR`.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};

#[derive(Debug)]
struct Clause {
    field: String,
    metadata_key: Option<String>,
    substring: bool,
    negated: bool,
    value: String,
}

#[derive(Debug)]
pub struct Query {
    clauses: Vec<Clause>,
    any: bool,
}

impl Query {
    /// Parses `query`, accepting only the given fields (plus `metadata[...]`).
    pub fn parse(query: &str, fields: &[&str]) -> ApiResult<Self> {
        let bad =
            |why: &str| ApiError::param("query", format!("Invalid search query `{query}`: {why}"));
        let mut clauses = Vec::new();
        let mut joiners = Vec::new();
        let mut rest = query.trim();
        loop {
            let (clause, after) =
                parse_clause(rest).ok_or_else(|| bad("expected field:'value'"))?;
            let known = clause.metadata_key.is_some() || fields.contains(&clause.field.as_str());
            if !known {
                return Err(bad(&format!(
                    "`{}` is not a searchable field",
                    clause.field
                )));
            }
            clauses.push(clause);
            rest = after.trim_start();
            if rest.is_empty() {
                break;
            }
            let (word, after) = rest
                .split_once(char::is_whitespace)
                .ok_or_else(|| bad("expected AND or OR"))?;
            match word {
                "AND" | "OR" => joiners.push(word == "OR"),
                _ => return Err(bad("expected AND or OR")),
            }
            rest = after.trim_start();
        }
        if joiners.windows(2).any(|w| w[0] != w[1]) {
            return Err(bad("AND and OR cannot be combined in one query"));
        }
        Ok(Self {
            clauses,
            any: joiners.first().copied().unwrap_or(false),
        })
    }

    pub fn matches(&self, object: &Value) -> bool {
        let test = |c: &Clause| {
            let field = match &c.metadata_key {
                Some(key) => &object["metadata"][key],
                None => &object[c.field.as_str()],
            };
            let text = match field {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            let hit = if c.substring {
                text.to_lowercase().contains(&c.value.to_lowercase())
            } else {
                text == c.value
            };
            hit != c.negated
        };
        if self.any {
            self.clauses.iter().any(test)
        } else {
            self.clauses.iter().all(test)
        }
    }
}

/// One clause and what follows it.
fn parse_clause(input: &str) -> Option<(Clause, &str)> {
    let (negated, input) = match input.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, input),
    };
    let op = input.find([':', '~'])?;
    let lhs = &input[..op];
    let substring = input[op..].starts_with('~');
    let (field, metadata_key) = match lhs.strip_prefix("metadata[") {
        Some(rest) => {
            let key = rest.strip_suffix(']')?;
            let key = unquote_whole(key)?;
            ("metadata".to_owned(), Some(key))
        }
        None => (lhs.to_owned(), None),
    };
    let after_op = &input[op + 1..];
    let quote = after_op
        .chars()
        .next()
        .filter(|c| *c == '\'' || *c == '"')?;
    let body = &after_op[1..];
    let end = body.find(quote)?;
    let clause = Clause {
        field,
        metadata_key,
        substring,
        negated,
        value: body[..end].to_owned(),
    };
    Some((clause, &body[end + 1..]))
}

fn unquote_whole(s: &str) -> Option<String> {
    let q = s.chars().next()?;
    if (q == '\'' || q == '"') && s.len() >= 2 && s.ends_with(q) {
        Some(s[1..s.len() - 1].to_owned())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn clauses_and_joiners() {
        let q = Query::parse(
            "lookup_key:'starter_month' AND active:'true'",
            &["lookup_key", "active"],
        )
        .unwrap();
        assert!(q.matches(&json!({"lookup_key": "starter_month", "active": true})));
        assert!(!q.matches(&json!({"lookup_key": "starter_month", "active": false})));
        let q = Query::parse("metadata['plan']:\"pro\" OR -name~'x'", &["name"]).unwrap();
        assert!(q.matches(&json!({"metadata": {"plan": "pro"}, "name": "x"})));
        assert!(q.matches(&json!({"metadata": {}, "name": "y"})));
        assert!(Query::parse("a:'1' AND b:'2' OR c:'3'", &["a", "b", "c"]).is_err());
        assert!(Query::parse("nope:'1'", &["a"]).is_err());
        assert!(Query::parse("a:1", &["a"]).is_err());
    }
}
