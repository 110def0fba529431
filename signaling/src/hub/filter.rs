//! Per-receiver rewriting of chat relay events and display names
//! (facts 1.15.3, 1.15.4). Pure functions over JSON; the session decides
//! when to apply them.

use proto::event::JoinEntry;
use proto::RawJson;
use serde_json::{Map, Value};

fn raw(v: &Value) -> Option<RawJson> {
    serde_json::value::to_raw_value(v).ok()
}

fn comment_present(c: &Value) -> bool {
    match c {
        Value::Null => false,
        Value::Object(o) => !o.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

/// Rewrites a room `message` event's data for one receiver. Returns `None`
/// when the data passes unchanged, else the data of each event to send
/// (possibly several: one per comment).
pub fn chat_relay(data: &RawJson, chat_relay: bool, hide_names: bool) -> Option<Vec<RawJson>> {
    let v: Value = serde_json::from_str(data.get()).ok()?;
    if v.get("type").and_then(Value::as_str) != Some("chat") {
        return None;
    }
    let chat = v.get("chat")?.as_object()?;
    let comment = chat.get("comment").cloned().unwrap_or(Value::Null);
    let comments: Vec<Value> = chat
        .get("comments")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let has_comments = comment_present(&comment) || comments.iter().any(comment_present);
    if !has_comments {
        return None;
    }
    let refresh = chat
        .get("refresh")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if refresh && !chat_relay {
        return Some(
            raw(&serde_json::json!({"type": "chat", "chat": {"refresh": true}}))
                .into_iter()
                .collect(),
        );
    }
    let all = std::iter::once(comment)
        .chain(comments)
        .filter(comment_present);
    Some(
        all.filter_map(|mut c| {
            if hide_names {
                if let Some(o) = c.as_object_mut() {
                    if o.get("actorDisplayName")
                        .and_then(Value::as_str)
                        .is_some_and(|s| !s.is_empty())
                    {
                        o.insert("actorDisplayName".into(), Value::String(String::new()));
                    }
                }
            }
            let mut chat = Map::new();
            chat.insert("comment".into(), c);
            raw(&serde_json::json!({"type": "chat", "chat": chat}))
        })
        .collect(),
    )
}

/// Removes `displayname` from a join entry's user data.
pub fn hide_display_name(entry: &mut JoinEntry) {
    let Some(user) = &entry.user else { return };
    let Ok(Value::Object(mut o)) = serde_json::from_str::<Value>(user.get()) else {
        return;
    };
    if o.remove("displayname").is_none() {
        return;
    }
    entry.user = if o.is_empty() {
        None
    } else {
        raw(&Value::Object(o))
    };
}

/// True for message data whose `type` is `nickChanged`.
pub fn is_nick_changed(data: &RawJson) -> bool {
    #[derive(serde::Deserialize)]
    struct T {
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    serde_json::from_str::<T>(data.get()).is_ok_and(|t| t.kind.as_deref() == Some("nickChanged"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(v: Value) -> RawJson {
        serde_json::value::to_raw_value(&v).unwrap()
    }

    fn vals(v: Option<Vec<RawJson>>) -> Option<Vec<Value>> {
        v.map(|l| {
            l.iter()
                .map(|x| serde_json::from_str(x.get()).unwrap())
                .collect()
        })
    }

    #[test]
    fn refresh_with_comment() {
        let data = r(
            json!({"type": "chat", "chat": {"refresh": true, "comment": {"id": 1, "actorDisplayName": "A"}}}),
        );
        assert_eq!(
            vals(chat_relay(&data, false, false)),
            Some(vec![json!({"type": "chat", "chat": {"refresh": true}})])
        );
        assert_eq!(
            vals(chat_relay(&data, true, false)),
            Some(vec![
                json!({"type": "chat", "chat": {"comment": {"id": 1, "actorDisplayName": "A"}}})
            ])
        );
        assert_eq!(
            vals(chat_relay(&data, true, true)),
            Some(vec![
                json!({"type": "chat", "chat": {"comment": {"id": 1, "actorDisplayName": ""}}})
            ])
        );
    }

    #[test]
    fn comments_are_split_and_plain_refresh_passes() {
        let data = r(
            json!({"type": "chat", "chat": {"refresh": true, "comment": {"id": 1}, "comments": [{"id": 2}, {}, null]}}),
        );
        let out = vals(chat_relay(&data, true, false)).unwrap();
        assert_eq!(
            out,
            vec![
                json!({"type": "chat", "chat": {"comment": {"id": 1}}}),
                json!({"type": "chat", "chat": {"comment": {"id": 2}}})
            ]
        );
        assert!(chat_relay(
            &r(json!({"type": "chat", "chat": {"refresh": true}})),
            true,
            false
        )
        .is_none());
        assert!(chat_relay(&r(json!({"type": "other"})), true, true).is_none());
        assert!(chat_relay(&r(json!("text")), true, true).is_none());
    }

    #[test]
    fn display_names() {
        let mut e = JoinEntry {
            sessionid: "s".into(),
            userid: "u".into(),
            user: Some(r(json!({"displayname": "D"}))),
            roomsessionid: String::new(),
            features: vec![],
            federated: false,
        };
        hide_display_name(&mut e);
        assert!(e.user.is_none());
        e.user = Some(r(json!({"displayname": "D", "x": 1})));
        hide_display_name(&mut e);
        assert_eq!(e.user.unwrap().get(), r#"{"x":1}"#);
        assert!(is_nick_changed(&r(
            json!({"type": "nickChanged", "name": "n"})
        )));
        assert!(!is_nick_changed(&r(json!({"type": "offer"}))));
    }
}
