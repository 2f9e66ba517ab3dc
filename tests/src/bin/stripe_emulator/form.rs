//! Stripe's request encoding: `application/x-www-form-urlencoded` with bracket notation
//! (`metadata[tenant_id]=t`, `line_items[0][price]=p`, `expand[]=x`, `expand[0]=x`), parsed
//! into a JSON tree whose leaves are strings. Maps whose keys are all indices become arrays.

use serde_json::{Map, Value};

/// Parses a form body or query string. The error is a human-readable reason.
pub fn parse(input: &str) -> Result<Map<String, Value>, String> {
    let mut root = Value::Object(Map::new());
    for pair in input.split('&').filter(|p| !p.is_empty()) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(raw_key)?;
        let value = decode(raw_value)?;
        let path = split_key(&key);
        insert(&mut root, &path, value, &key)?;
    }
    match normalise(root) {
        Value::Object(map) => Ok(map),
        _ => Ok(Map::new()),
    }
}

/// Percent-decoding with `+` as a space, as browsers and Stripe's clients encode forms.
pub fn decode(input: &str) -> Result<String, String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("invalid percent-encoding in `{input}`"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("invalid UTF-8 in `{input}`"))
}

#[derive(Debug, PartialEq)]
enum Segment {
    Key(String),
    Push,
}

/// `a[b][0][]` → `a`, `b`, `0`, push. A key that is not well formed stays one literal key.
fn split_key(key: &str) -> Vec<Segment> {
    let Some(open) = key.find('[') else {
        return vec![Segment::Key(key.to_owned())];
    };
    let mut segments = vec![Segment::Key(key[..open].to_owned())];
    let mut rest = &key[open..];
    while !rest.is_empty() {
        let Some(inner) = rest.strip_prefix('[') else {
            return vec![Segment::Key(key.to_owned())];
        };
        let Some(close) = inner.find(']') else {
            return vec![Segment::Key(key.to_owned())];
        };
        let name = &inner[..close];
        segments.push(if name.is_empty() {
            Segment::Push
        } else {
            Segment::Key(name.to_owned())
        });
        rest = &inner[close + 1..];
    }
    segments
}

fn insert(slot: &mut Value, path: &[Segment], value: String, key: &str) -> Result<(), String> {
    let Some((first, rest)) = path.split_first() else {
        *slot = Value::String(value);
        return Ok(());
    };
    if slot.is_null() {
        *slot = match first {
            Segment::Key(_) => Value::Object(Map::new()),
            Segment::Push => Value::Array(Vec::new()),
        };
    }
    match (first, slot) {
        (Segment::Key(name), Value::Object(map)) => {
            let child = map.entry(name.clone()).or_insert(Value::Null);
            insert(child, rest, value, key)
        }
        (Segment::Push, Value::Array(items)) => {
            // `items[][price]=a&items[][quantity]=1`: a repeated inner key starts a new element.
            let reuse = match (rest.first(), items.last()) {
                (Some(Segment::Key(inner)), Some(Value::Object(last))) => !last.contains_key(inner),
                _ => false,
            };
            if !reuse {
                items.push(Value::Null);
            }
            let last = items.len() - 1;
            insert(&mut items[last], rest, value, key)
        }
        _ => Err(format!("conflicting shapes for parameter `{key}`")),
    }
}

/// Turns maps keyed only by indices (`line_items[0]`, `line_items[1]`) into arrays.
fn normalise(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let indexed = !map.is_empty() && map.keys().all(|k| k.parse::<usize>().is_ok());
            if indexed {
                let mut entries: Vec<(usize, Value)> = map
                    .into_iter()
                    .filter_map(|(k, v)| k.parse().ok().map(|i| (i, normalise(v))))
                    .collect();
                entries.sort_by_key(|(i, _)| *i);
                Value::Array(entries.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(map.into_iter().map(|(k, v)| (k, normalise(v))).collect())
            }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(normalise).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn brackets_nest_and_indices_become_arrays() {
        let parsed = parse(
            "mode=subscription&line_items%5B0%5D%5Bprice%5D=price_1&line_items[0][quantity]=1\
             &metadata[tenant_id]=t+1&expand[]=a&expand[]=b&lookup_keys[1]=y&lookup_keys[0]=x",
        )
        .unwrap();
        assert_eq!(
            Value::Object(parsed),
            json!({
                "mode": "subscription",
                "line_items": [{"price": "price_1", "quantity": "1"}],
                "metadata": {"tenant_id": "t 1"},
                "expand": ["a", "b"],
                "lookup_keys": ["x", "y"],
            })
        );
    }

    #[test]
    fn empty_values_and_conflicts() {
        let parsed = parse("metadata=&description=").unwrap();
        assert_eq!(
            Value::Object(parsed),
            json!({"metadata": "", "description": ""})
        );
        assert!(parse("a=1&a[b]=2").is_err());
        assert!(parse("a=%zz").is_err());
    }
}
