//! The JSON form of bus messages between nodes (cluster-sfu-facts 1.3):
//! `{"sendtime": RFC 3339, "type": "message"|"room"|"sessionjoined", ...}`.

use proto::ids::{PublicSessionId, RoomId};
use proto::server::ServerMessage;
use proto::talk::notify::RoomNotification;
use serde::{Deserialize, Serialize};

use super::bus::{BusMessage, BusPayload, RoomNotice};

#[derive(Serialize, Deserialize)]
struct RoomWire {
    roomid: RoomId,
    #[serde(flatten)]
    notification: serde_json::Value,
    received: i64,
}

#[derive(Serialize, Deserialize)]
struct JoinedWire {
    roomid: RoomId,
    sessionid: PublicSessionId,
    node: u64,
}

#[derive(Serialize, Deserialize)]
struct AsyncMessage {
    sendtime: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    room: Option<RoomWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    asyncroom: Option<JoinedWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    transient: Option<TransientWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    claim: Option<ClaimWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    members: Option<MembersWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sendoffer: Option<SendOfferWire>,
}

#[derive(Serialize, Deserialize)]
struct SendOfferWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    messageid: Option<String>,
    sessionid: PublicSessionId,
    data: serde_json::Value,
}

#[derive(Serialize, Deserialize, Default)]
struct MembersWire {
    #[serde(default)]
    roomid: RoomId,
    #[serde(default)]
    sessions: Vec<PublicSessionId>,
    node: u64,
    #[serde(default, skip_serializing_if = "std::collections::HashMap::is_empty")]
    counts: std::collections::HashMap<String, u64>,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    transientdata: serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
struct ClaimWire {
    backend: proto::ids::BackendId,
    roomsessionid: proto::ids::RoomSessionId,
    sessionid: PublicSessionId,
    node: u64,
}

#[derive(Serialize, Deserialize)]
struct TransientWire {
    roomid: RoomId,
    #[serde(flatten)]
    change: serde_json::Value,
}

/// Unix microseconds as RFC 3339 UTC with microseconds.
pub fn format_time(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let micros = us.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Parses what [`format_time`] writes (any fraction length, `Z` only).
pub fn parse_time(s: &str) -> Option<i64> {
    let (date, time) = s.strip_suffix('Z')?.split_once('T')?;
    let mut dp = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, d) = (dp.next()?.ok()?, dp.next()?.ok()?, dp.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut tp = hms.split(':').map(|p| p.parse::<i64>());
    let (hh, mm, ss) = (tp.next()?.ok()?, tp.next()?.ok()?, tp.next()?.ok()?);
    let frac6: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
    let micros: i64 = frac6.parse().ok()?;
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000) + micros)
}

pub fn encode(m: &BusMessage) -> Vec<u8> {
    let mut out = AsyncMessage {
        sendtime: format_time(m.send_time_us),
        kind: String::new(),
        message: None,
        room: None,
        asyncroom: None,
        transient: None,
        claim: None,
        members: None,
        sendoffer: None,
    };
    match &m.payload {
        BusPayload::Message(_) => {
            out.kind = "message".into();
            out.message = serde_json::from_str(&m.json()).ok();
        }
        BusPayload::Room(n) => {
            out.kind = "room".into();
            out.room = Some(RoomWire {
                roomid: n.room.clone(),
                notification: serde_json::to_value(&n.notification).unwrap_or_default(),
                received: n.received_us * 1000,
            });
        }
        BusPayload::RoomSessionClaimed {
            backend,
            room_session,
            claimer,
            node,
        } => {
            out.kind = "claim".into();
            out.claim = Some(ClaimWire {
                backend: backend.clone(),
                roomsessionid: room_session.clone(),
                sessionid: claimer.clone(),
                node: *node,
            });
        }
        BusPayload::Members {
            room,
            sessions,
            node,
            transient,
        } => {
            out.kind = "members".into();
            out.members = Some(MembersWire {
                roomid: room.clone(),
                sessions: sessions.clone(),
                node: *node,
                transientdata: transient.clone(),
                ..Default::default()
            });
        }
        BusPayload::SessionLeft {
            room,
            session,
            node,
        } => {
            out.kind = "sessionleft".into();
            out.members = Some(MembersWire {
                roomid: room.clone(),
                sessions: vec![session.clone()],
                node: *node,
                ..Default::default()
            });
        }
        BusPayload::Heartbeat { node, counts } => {
            out.kind = "heartbeat".into();
            out.members = Some(MembersWire {
                node: *node,
                counts: counts.clone(),
                ..Default::default()
            });
        }
        BusPayload::RoomSessionReleased {
            room_session,
            session,
        } => {
            out.kind = "release".into();
            out.claim = Some(ClaimWire {
                backend: proto::ids::BackendId::default(),
                roomsessionid: room_session.clone(),
                sessionid: session.clone(),
                node: 0,
            });
        }
        BusPayload::Transient { room, change } => {
            out.kind = "transient".into();
            out.transient = Some(TransientWire {
                roomid: room.clone(),
                change: serde_json::to_value(change).unwrap_or_default(),
            });
        }
        BusPayload::SendOffer {
            message_id,
            sender,
            data,
        } => {
            out.kind = "sendoffer".into();
            out.sendoffer = Some(SendOfferWire {
                messageid: message_id.clone(),
                sessionid: sender.clone(),
                data: data.clone(),
            });
        }
        BusPayload::HandoverMarker { session, token } => {
            out.kind = "handover".into();
            out.claim = Some(ClaimWire {
                backend: proto::ids::BackendId::default(),
                roomsessionid: proto::ids::RoomSessionId(token.clone()),
                sessionid: session.clone(),
                node: 0,
            });
        }
        BusPayload::SessionJoined {
            room,
            session,
            node,
        } => {
            out.kind = "asyncroom".into();
            out.asyncroom = Some(JoinedWire {
                roomid: room.clone(),
                sessionid: session.clone(),
                node: *node,
            });
        }
    }
    serde_json::to_vec(&out).unwrap_or_default()
}

pub fn decode(bytes: &[u8]) -> Option<BusMessage> {
    let a: AsyncMessage = serde_json::from_slice(bytes).ok()?;
    let send_time_us = parse_time(&a.sendtime)?;
    let payload = match a.kind.as_str() {
        "message" => BusPayload::Message(serde_json::from_value::<ServerMessage>(a.message?).ok()?),
        "room" => {
            let r = a.room?;
            BusPayload::Room(Box::new(RoomNotice {
                room: r.roomid,
                notification: serde_json::from_value::<RoomNotification>(r.notification).ok()?,
                received_us: r.received / 1000,
            }))
        }
        "asyncroom" => {
            let j = a.asyncroom?;
            BusPayload::SessionJoined {
                room: j.roomid,
                session: j.sessionid,
                node: j.node,
            }
        }
        "claim" => {
            let c = a.claim?;
            BusPayload::RoomSessionClaimed {
                backend: c.backend,
                room_session: c.roomsessionid,
                claimer: c.sessionid,
                node: c.node,
            }
        }
        "members" => {
            let m = a.members?;
            BusPayload::Members {
                room: m.roomid,
                sessions: m.sessions,
                node: m.node,
                transient: m.transientdata,
            }
        }
        "sessionleft" => {
            let m = a.members?;
            BusPayload::SessionLeft {
                room: m.roomid,
                session: m.sessions.into_iter().next()?,
                node: m.node,
            }
        }
        "heartbeat" => {
            let m = a.members?;
            BusPayload::Heartbeat {
                node: m.node,
                counts: m.counts,
            }
        }
        "sendoffer" => {
            let o = a.sendoffer?;
            BusPayload::SendOffer {
                message_id: o.messageid,
                sender: o.sessionid,
                data: o.data,
            }
        }
        "release" => {
            let c = a.claim?;
            BusPayload::RoomSessionReleased {
                room_session: c.roomsessionid,
                session: c.sessionid,
            }
        }
        "handover" => {
            let c = a.claim?;
            BusPayload::HandoverMarker {
                session: c.sessionid,
                token: c.roomsessionid.0,
            }
        }
        "transient" => {
            let t = a.transient?;
            BusPayload::Transient {
                room: t.roomid,
                change: serde_json::from_value(t.change).ok()?,
            }
        }
        _ => return None,
    };
    Some(BusMessage::with_time(send_time_us, payload))
}

#[cfg(test)]
mod tests {
    #[test]
    fn fuzz_bus_payloads() {
        let seeds: Vec<Vec<u8>> = vec![
            encode(&BusMessage::new(ServerMessage::new(proto::server::ServerBody::Bye {
                bye: Some(proto::server::ByeMessage { reason: "x".into() }),
            }))),
            encode(&BusMessage::with_time(
                5,
                BusPayload::SessionJoined {
                    room: "r".into(),
                    session: "s".into(),
                    node: 7,
                },
            )),
            encode(&BusMessage::with_time(
                3,
                BusPayload::SendOffer {
                    message_id: Some("m".into()),
                    sender: "s".into(),
                    data: serde_json::json!({"type": "sendoffer", "roomType": "screen"}),
                },
            )),
            br#"{"sendtime":"2026-01-01T00:00:00.000001Z","type":"room","room":{"roomid":"r","type":"incall","incall":{"incall":7,"users":[{"sessionId":"s"}]},"received":1}}"#.to_vec(),
            br#"{"sendtime":"2026-01-01T00:00:00Z","type":"members","members":{"roomid":"r","sessions":["a"],"node":1,"transientdata":{"k":1}}}"#.to_vec(),
        ];
        let refs: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
        proto::fuzzing::run("nats_payloads", &refs, |b| {
            let _ = decode(b);
        });
    }

    use super::*;

    #[test]
    fn time_round_trip() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            format_time(1_700_000_000_123_456),
            "2023-11-14T22:13:20.123456Z"
        );
        for t in [
            0,
            1_700_000_000_123_456,
            951_782_400_000_001,
            4_102_444_800_000_000,
        ] {
            assert_eq!(parse_time(&format_time(t)), Some(t));
        }
        assert_eq!(
            parse_time("2023-11-14T22:13:20.1Z"),
            Some(1_700_000_000_100_000)
        );
        assert_eq!(parse_time("garbage"), None);
    }

    #[test]
    fn messages_round_trip() {
        let msg = ServerMessage::new(proto::server::ServerBody::Bye {
            bye: Some(proto::server::ByeMessage { reason: "x".into() }),
        });
        let b = BusMessage::new(msg);
        let back = decode(&encode(&b)).unwrap();
        assert_eq!(back.send_time_us, b.send_time_us);
        assert_eq!(&*back.json(), &*b.json());
        let j = BusMessage::with_time(
            5,
            BusPayload::SessionJoined {
                room: "r".into(),
                session: "s".into(),
                node: 7,
            },
        );
        assert!(matches!(
            decode(&encode(&j)).unwrap().payload,
            BusPayload::SessionJoined { node: 7, .. }
        ));
        let h = BusMessage::with_time(
            4,
            BusPayload::HandoverMarker {
                session: "s".into(),
                token: "t1".into(),
            },
        );
        assert!(matches!(
            decode(&encode(&h)).unwrap().payload,
            BusPayload::HandoverMarker { session, token } if session.0 == "s" && token == "t1"
        ));
        let o = BusMessage::with_time(
            3,
            BusPayload::SendOffer {
                message_id: Some("m1".into()),
                sender: "s".into(),
                data: serde_json::json!({"type": "sendoffer", "roomType": "screen"}),
            },
        );
        let wire: serde_json::Value = serde_json::from_slice(&encode(&o)).unwrap();
        assert_eq!(wire["type"], "sendoffer");
        assert_eq!(
            wire["sendoffer"],
            serde_json::json!({"messageid": "m1", "sessionid": "s", "data": {"type": "sendoffer", "roomType": "screen"}})
        );
        assert!(matches!(
            decode(&encode(&o)).unwrap().payload,
            BusPayload::SendOffer { message_id: Some(m), .. } if m == "m1"
        ));
        let t = BusMessage::with_time(
            9,
            BusPayload::Transient {
                room: "r".into(),
                change: crate::cluster::bus::TransientChange::Set {
                    key: "k".into(),
                    value: serde_json::json!({"a": [1, 2]}),
                    ttl_ns: 5,
                },
            },
        );
        match decode(&encode(&t)).unwrap().payload {
            BusPayload::Transient {
                change: crate::cluster::bus::TransientChange::Set { key, value, ttl_ns },
                ..
            } => assert_eq!(
                (key.as_str(), value, ttl_ns),
                ("k", serde_json::json!({"a": [1, 2]}), 5)
            ),
            other => panic!("{other:?}"),
        }
        assert!(decode(b"{}").is_none());
    }
}
