//! Rewriting messages between the local client and the remote server
//! (facts 6.5): session ids, room ids, `sd:` keys and actors.

use serde_json::{Map, Value};

/// What the rewrites need to know about one federated session.
#[derive(Debug, Clone)]
pub struct Ids {
    pub local_id: String,
    pub remote_id: String,
    pub local_room: String,
    pub remote_room: String,
    /// `@host/path` of the local Nextcloud.
    pub local_cloud: String,
    /// `@host/path` of the remote Nextcloud.
    pub remote_cloud: String,
}

/// `https://cloud.example.com/nc/` -> `@cloud.example.com/nc`.
pub fn cloud_suffix(url: &str) -> String {
    let no_scheme = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let cut = no_scheme
        .find("/ocs/v")
        .map(|p| &no_scheme[..p])
        .unwrap_or(no_scheme);
    format!("@{}", cut.trim_end_matches('/'))
}

fn replace_str(v: &mut Value, from: &str, to: &str) {
    if v.as_str() == Some(from) {
        *v = Value::String(to.to_owned());
    }
}

fn get_mut<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    let mut cur = v;
    for p in path {
        cur = cur.as_object_mut()?.get_mut(*p)?;
    }
    Some(cur)
}

impl Ids {
    fn room(&self, v: &mut Value) {
        if self.local_room != self.remote_room {
            replace_str(v, &self.remote_room, &self.local_room);
        }
    }

    fn session(&self, v: &mut Value) {
        replace_str(v, &self.remote_id, &self.local_id);
    }

    /// Actor rewrite on `actorId`/`actorType`-like key pairs.
    fn actor(&self, obj: &mut Map<String, Value>, id_key: &str, type_key: &str) {
        let (Some(Value::String(id)), Some(Value::String(kind))) =
            (obj.get(id_key).cloned(), obj.get(type_key).cloned())
        else {
            return;
        };
        if kind == "federated_users" {
            if let Some(local) = id.strip_suffix(&self.local_cloud) {
                obj.insert(id_key.into(), Value::String(local.to_owned()));
                obj.insert(type_key.into(), Value::String("users".into()));
            }
        } else if kind == "users" {
            obj.insert(
                id_key.into(),
                Value::String(format!("{id}{}", self.remote_cloud)),
            );
            obj.insert(type_key.into(), Value::String("federated_users".into()));
        }
    }

    fn participants(&self, list: Option<&mut Value>) {
        let Some(Value::Array(list)) = list else {
            return;
        };
        let mut own_done = false;
        for entry in list.iter_mut() {
            let Some(obj) = entry.as_object_mut() else {
                continue;
            };
            self.actor(obj, "actorId", "actorType");
            if !own_done {
                for key in ["sessionId", "sessionid"] {
                    if obj.get(key).and_then(Value::as_str) == Some(self.remote_id.as_str()) {
                        obj.insert(key.into(), Value::String(self.local_id.clone()));
                        own_done = true;
                    }
                }
            }
        }
    }

    fn comment(&self, c: &mut Value) {
        let Some(obj) = c.as_object_mut() else { return };
        self.actor(obj, "actorId", "actorType");
        self.actor(obj, "lastEditActorId", "lastEditActorType");
        if let Some(t) = obj.get_mut("token") {
            self.room(t);
        }
        if let Some(parent) = obj.get_mut("parent") {
            self.comment(parent);
        }
    }

    /// Remote -> local, applied to every message before it is relayed.
    pub fn incoming(&self, msg: &mut Value) {
        let kind = msg
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        match kind.as_str() {
            "message" | "control" => {
                let Some(m) = msg.get_mut(&kind) else { return };
                if let Some(s) = get_mut(m, &["sender", "sessionid"]) {
                    self.session(s);
                }
                if m.pointer("/recipient/type").and_then(Value::as_str) == Some("session") {
                    if let Some(r) = get_mut(m, &["recipient", "sessionid"]) {
                        self.session(r);
                    }
                }
                if let Some(data) = m.get_mut("data").and_then(Value::as_object_mut) {
                    if kind == "message"
                        && matches!(
                            data.get("type").and_then(Value::as_str),
                            Some("offer" | "answer")
                        )
                    {
                        for k in ["from", "to"] {
                            if let Some(v) = data.get_mut(k) {
                                self.session(v);
                            }
                        }
                    }
                    if kind == "control"
                        && data.get("action").and_then(Value::as_str) == Some("forceMute")
                    {
                        if let Some(v) = data.get_mut("peerId") {
                            self.session(v);
                        }
                    }
                }
            }
            "event" => {
                let Some(ev) = msg.get_mut("event") else {
                    return;
                };
                let target = ev
                    .get("target")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let etype = ev
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                match (target.as_str(), etype.as_str()) {
                    ("participants", "update") => {
                        if let Some(u) = ev.get_mut("update") {
                            if let Some(r) = u.get_mut("roomid") {
                                self.room(r);
                            }
                            self.participants(u.get_mut("users"));
                            self.participants(u.get_mut("changed"));
                        }
                    }
                    ("participants", "flags") => {
                        if let Some(f) = ev.get_mut("flags") {
                            if let Some(r) = f.get_mut("roomid") {
                                self.room(r);
                            }
                            if let Some(s) = f.get_mut("sessionid") {
                                self.session(s);
                            }
                        }
                    }
                    ("room", "join") => {
                        if let Some(Value::Array(list)) = ev.get_mut("join") {
                            for e in list {
                                if let Some(s) = e.get_mut("sessionid") {
                                    self.session(s);
                                }
                            }
                        }
                    }
                    ("room", "leave") => {
                        if let Some(Value::Array(list)) = ev.get_mut("leave") {
                            for s in list {
                                self.session(s);
                            }
                        }
                    }
                    ("room", "message") => {
                        if let Some(m) = ev.get_mut("message") {
                            if let Some(r) = m.get_mut("roomid") {
                                self.room(r);
                            }
                            if m.pointer("/data/type").and_then(Value::as_str) == Some("chat") {
                                if let Some(c) = m.pointer_mut("/data/chat/comment") {
                                    self.comment(c);
                                }
                            }
                        }
                    }
                    ("roomlist", sub) => {
                        if let Some(r) = ev.get_mut(sub).and_then(|p| p.get_mut("roomid")) {
                            self.room(r);
                        }
                    }
                    _ => {}
                }
            }
            "error"
                if msg.pointer("/error/code").and_then(Value::as_str) == Some("already_joined") =>
            {
                if let Some(r) = msg.pointer_mut("/error/details/room/roomid") {
                    self.room(r);
                }
            }
            "room" => {
                if let Some(r) = msg.pointer_mut("/room/roomid") {
                    self.room(r);
                }
            }
            "transient" => {
                let remote_key = format!("sd:{}", self.remote_id);
                if let Some(k) = msg.pointer_mut("/transient/key") {
                    replace_str(k, &remote_key, &format!("sd:{}", self.local_id));
                }
            }
            _ => {}
        }
    }

    /// Local -> remote, for forwarded client messages.
    pub fn outgoing(&self, msg: &mut Value) {
        match msg.get("type").and_then(Value::as_str) {
            Some("message")
                if msg
                    .pointer("/message/recipient/type")
                    .and_then(Value::as_str)
                    == Some("session") =>
            {
                if let Some(s) = msg.pointer_mut("/message/recipient/sessionid") {
                    replace_str(s, &self.local_id, &self.remote_id);
                }
            }
            Some("transient") => {
                let local_key = format!("sd:{}", self.local_id);
                if let Some(k) = msg.pointer_mut("/transient/key") {
                    replace_str(k, &local_key, &format!("sd:{}", self.remote_id));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ids() -> Ids {
        Ids {
            local_id: "LOCAL".into(),
            remote_id: "REMOTE".into(),
            local_room: "lroom".into(),
            remote_room: "rroom".into(),
            local_cloud: cloud_suffix("https://local.example/"),
            remote_cloud: cloud_suffix("https://remote.example/nc/ocs/v2.php/x"),
        }
    }

    #[test]
    fn cloud_suffixes() {
        assert_eq!(cloud_suffix("https://local.example/"), "@local.example");
        assert_eq!(
            cloud_suffix("https://remote.example/nc/ocs/v2.php/x"),
            "@remote.example/nc"
        );
    }

    #[test]
    fn incoming_rewrites() {
        let ids = ids();
        let mut m = json!({"type": "message", "message": {"sender": {"type": "session", "sessionid": "REMOTE"}, "recipient": {"type": "session", "sessionid": "REMOTE"}, "data": {"type": "offer", "from": "X", "to": "REMOTE"}}});
        ids.incoming(&mut m);
        assert_eq!(m["message"]["sender"]["sessionid"], "LOCAL");
        assert_eq!(m["message"]["recipient"]["sessionid"], "LOCAL");
        assert_eq!(m["message"]["data"]["to"], "LOCAL");
        assert_eq!(m["message"]["data"]["from"], "X");

        let mut p = json!({"type": "event", "event": {"target": "participants", "type": "update", "update": {"roomid": "rroom", "users": [
            {"sessionId": "REMOTE", "actorType": "federated_users", "actorId": "alice@local.example"},
            {"sessionId": "OTHER", "actorType": "users", "actorId": "bob"}]}}});
        ids.incoming(&mut p);
        let u = &p["event"]["update"];
        assert_eq!(u["roomid"], "lroom");
        assert_eq!(u["users"][0]["sessionId"], "LOCAL");
        assert_eq!(u["users"][0]["actorType"], "users");
        assert_eq!(u["users"][0]["actorId"], "alice");
        assert_eq!(u["users"][1]["actorType"], "federated_users");
        assert_eq!(u["users"][1]["actorId"], "bob@remote.example/nc");

        let mut j = json!({"type": "event", "event": {"target": "room", "type": "join", "join": [{"sessionid": "REMOTE", "userid": "a"}]}});
        ids.incoming(&mut j);
        assert_eq!(j["event"]["join"][0]["sessionid"], "LOCAL");
        let mut r = json!({"type": "room", "room": {"roomid": "rroom"}});
        ids.incoming(&mut r);
        assert_eq!(r["room"]["roomid"], "lroom");
        let mut t = json!({"type": "transient", "transient": {"type": "set", "key": "sd:REMOTE", "value": 1}});
        ids.incoming(&mut t);
        assert_eq!(t["transient"]["key"], "sd:LOCAL");
    }

    #[test]
    fn outgoing_rewrites() {
        let ids = ids();
        let mut m = json!({"type": "message", "message": {"recipient": {"type": "session", "sessionid": "LOCAL"}, "data": {}}});
        ids.outgoing(&mut m);
        assert_eq!(m["message"]["recipient"]["sessionid"], "REMOTE");
        let mut t = json!({"type": "transient", "transient": {"type": "set", "key": "sd:LOCAL"}});
        ids.outgoing(&mut t);
        assert_eq!(t["transient"]["key"], "sd:REMOTE");
    }
}
