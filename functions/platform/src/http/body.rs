//! Request bodies: the one media type the API takes, and JSON parsed strictly.
//!
//! `serde_json` resolves a member given twice to its last value; a body like
//! `{"productId":"p-1","productId":"p-4"}` would then mean something other than what a reader
//! (or a proxy, or a signature check) sees first. [`UniqueJson`] builds the same `Value` in one
//! pass and refuses a repeated member instead. Written by hand: no maintained crate parses JSON
//! into `serde_json::Value` with duplicate members refused.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Whether a `Content-Type` is JSON as the API takes it: `application/json`, optionally with
/// `charset=utf-8` (any case, any spacing, quoted or not), and no other parameter.
pub fn is_json_media_type(content_type: &str) -> bool {
    let mut parts = content_type.split(';');
    let media_type = parts.next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return false;
    }
    parts.all(|parameter| {
        let parameter = parameter.trim();
        if parameter.is_empty() {
            return true;
        }
        let Some((name, value)) = parameter.split_once('=') else {
            return false;
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        name.trim().eq_ignore_ascii_case("charset") && value.eq_ignore_ascii_case("utf-8")
    })
}

/// A JSON value in which no object has the same member twice.
#[derive(Debug, Clone, PartialEq)]
pub struct UniqueJson(pub Value);

impl<'de> Deserialize<'de> for UniqueJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor).map(UniqueJson)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number JSON cannot hold"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        UniqueJson::deserialize(deserializer).map(|v| v.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueJson(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "the member \"{key}\" appears more than once"
                )));
            }
            let UniqueJson(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_with_a_utf8_charset_in_any_spelling_is_json() {
        for accepted in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=UTF-8",
            "application/json ;  Charset = \"utf-8\" ",
            "application/json;",
        ] {
            assert!(is_json_media_type(accepted), "{accepted}");
        }
        for refused in [
            "",
            "text/plain",
            "application/json-patch+json",
            "application/jsonx",
            "application/json; charset=latin1",
            "application/json; charset=utf-16",
            "application/json; boundary=x",
            "application/json; charset",
        ] {
            assert!(!is_json_media_type(refused), "{refused}");
        }
    }

    #[test]
    fn a_member_given_twice_is_refused_at_any_depth() {
        let parse = |text: &str| serde_json::from_str::<UniqueJson>(text).map(|v| v.0);
        let value = parse(r#"{"a":[1,-2,2.5,{"b":null}],"c":"d","e":true}"#).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"a": [1, -2, 2.5, {"b": null}], "c": "d", "e": true})
        );
        let top = parse(r#"{"productId":"p-1","productId":"p-4","quantity":1}"#).unwrap_err();
        assert!(
            top.to_string()
                .contains("\"productId\" appears more than once")
        );
        assert!(parse(r#"{"items":[{"quantity":1,"quantity":2}]}"#).is_err());
        assert!(parse(r#"{"a":{"x":1},"b":{"x":1}}"#).is_ok());
    }
}
