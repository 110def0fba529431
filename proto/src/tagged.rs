//! Decoding helper for tagged JSON objects whose payloads hold raw JSON
//! (serde's derive buffers those and loses the raw bytes).

use serde::de::{DeserializeOwned, Error};
use serde::Deserialize;
use serde_json::{Map, Value};

pub(crate) struct Tagged<E> {
    pub tag: String,
    pub obj: Map<String, Value>,
    _err: std::marker::PhantomData<E>,
}

impl<E: Error> Tagged<E> {
    pub fn read<'de, D: serde::Deserializer<'de, Error = E>>(d: D, key: &str) -> Result<Self, E> {
        match Value::deserialize(d)? {
            Value::Object(obj) => Self::from_map(obj, key),
            _ => Err(E::custom("expected a JSON object")),
        }
    }

    pub fn from_map(obj: Map<String, Value>, key: &str) -> Result<Self, E> {
        let tag = obj
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| E::custom(format!("missing {key:?}")))?
            .to_owned();
        Ok(Tagged {
            tag,
            obj,
            _err: std::marker::PhantomData,
        })
    }
}

pub(crate) fn take<T: DeserializeOwned, E: Error>(
    o: &mut Map<String, Value>,
    key: &str,
) -> Result<T, E> {
    let v = o
        .remove(key)
        .ok_or_else(|| E::custom(format!("missing {key:?}")))?;
    serde_json::from_value(v).map_err(E::custom)
}

pub(crate) fn take_opt<T: DeserializeOwned, E: Error>(
    o: &mut Map<String, Value>,
    key: &str,
) -> Result<Option<T>, E> {
    match o.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v).map(Some).map_err(E::custom),
    }
}
