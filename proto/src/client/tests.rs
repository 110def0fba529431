//! Client message decoding, against the examples of seed 004 (with the
//! documented DOC DIFFs of upstream-facts applied).

use super::*;
use crate::error::ErrorCode;

fn decode(s: &str) -> Result<ClientMessage, DecodeError> {
    ClientMessage::decode(s.as_bytes())
}

fn code(s: &str) -> (Option<String>, ErrorCode) {
    let e = decode(s).unwrap_err();
    (e.id, e.error.code)
}

#[test]
fn hello_v1_seed_example() {
    let m = decode(
        r#"{"id":"unique-request-id","type":"hello","hello":{"version":"1.0",
            "features":["chat-relay"],"auth":{"url":"https://cloud.example.com/ocs/v2.php/apps/spreed/api/v3/signaling/backend",
            "params":{"userid":"alice","ticket":"t"}}}}"#,
    )
    .unwrap();
    assert_eq!(m.id.as_deref(), Some("unique-request-id"));
    let ClientRequest::Hello(h) = m.body else {
        panic!()
    };
    assert_eq!(h.version, HelloVersion::V1);
    assert_eq!(h.features, vec!["chat-relay"]);
    let HelloAuth::ClientV1 { url, params } = h.auth else {
        panic!()
    };
    assert_eq!(url, "https://cloud.example.com/");
    assert_eq!(params.get(), r#"{"userid":"alice","ticket":"t"}"#);
}

#[test]
fn hello_url_normalization() {
    assert_eq!(
        normalize_hello_url("https://cloud.example.com:443/nextcloud").unwrap(),
        "https://cloud.example.com/nextcloud/"
    );
    assert_eq!(
        normalize_hello_url("http://h:80/ocs/v2.php/apps/spreed/api/v1/signaling/backend").unwrap(),
        "http://h/"
    );
    assert_eq!(
        normalize_hello_url("http://h:8080/x/").unwrap(),
        "http://h:8080/x/"
    );
    assert!(normalize_hello_url("").is_err());
    assert!(normalize_hello_url("not a url").is_err());
}

#[test]
fn hello_v2_internal_resume() {
    let m = decode(r#"{"id":"a","type":"hello","hello":{"version":"2.0","auth":{"type":"client","url":"https://c/","params":{"token":"x.y.z"}}}}"#).unwrap();
    assert!(
        matches!(m.body, ClientRequest::Hello(HelloRequest { auth: HelloAuth::ClientV2 { ref token, .. }, .. }) if token == "x.y.z")
    );
    // v2 without a token is malformed.
    assert_eq!(
        code(
            r#"{"id":"a","type":"hello","hello":{"version":"2.0","auth":{"url":"https://c/","params":{}}}}"#
        ),
        (Some("a".into()), ErrorCode::InvalidFormat)
    );

    let m = decode(r#"{"type":"hello","hello":{"version":"1.0","auth":{"type":"internal","params":{"random":"r","token":"t","backend":"https://c:443/nc"}}}}"#).unwrap();
    let ClientRequest::Hello(HelloRequest {
        auth: HelloAuth::Internal { backend, .. },
        ..
    }) = m.body
    else {
        panic!()
    };
    assert_eq!(backend, "https://c/nc/");
    assert_eq!(code(r#"{"type":"hello","hello":{"version":"1.0","auth":{"type":"internal","params":{"random":"r","token":"t"}}}}"#).1, ErrorCode::InvalidFormat);

    let m =
        decode(r#"{"id":"r","type":"hello","hello":{"version":"1.0","resumeid":"the-resume-id"}}"#)
            .unwrap();
    assert!(
        matches!(m.body, ClientRequest::Hello(HelloRequest { auth: HelloAuth::Resume(ref r), .. }) if r.as_str() == "the-resume-id")
    );
}

#[test]
fn hello_errors() {
    assert_eq!(
        code(r#"{"id":"v","type":"hello","hello":{"version":"3.0","resumeid":"x"}}"#),
        (Some("v".into()), ErrorCode::InvalidHelloVersion)
    );
    assert_eq!(
        code(r#"{"id":"v","type":"hello","hello":{"version":"1.0"}}"#).1,
        ErrorCode::InvalidFormat
    );
    assert_eq!(
        code(r#"{"id":"v","type":"hello","hello":{"version":"1.0","auth":{"url":"https://c/"}}}"#)
            .1,
        ErrorCode::InvalidFormat
    );
    assert_eq!(code(r#"{"id":"v","type":"hello","hello":{"version":"1.0","auth":{"type":"bogus","url":"https://c/","params":{}}}}"#).1, ErrorCode::InvalidFormat);
    assert_eq!(
        code(r#"{"id":"v","type":"hello"}"#).1,
        ErrorCode::InvalidFormat
    );
    assert_eq!(
        code(r#"{"id":"v","type":"hello","hello":null}"#).1,
        ErrorCode::InvalidFormat
    );
}

#[test]
fn envelope_errors() {
    assert_eq!(code("not json"), (None, ErrorCode::InvalidFormat));
    assert_eq!(
        code(r#"{"id":"x"}"#),
        (Some("x".into()), ErrorCode::InvalidFormat)
    );
    // Numeric ids are a schema error; no id to echo.
    assert_eq!(
        code(r#"{"id":5,"type":"bye"}"#),
        (None, ErrorCode::InvalidFormat)
    );
    // Wrong payload type, id still echoed.
    assert_eq!(
        code(r#"{"id":"w","type":"room","room":"x"}"#),
        (Some("w".into()), ErrorCode::InvalidFormat)
    );
    let m = decode(r#"{"id":"u","type":"whatever","whatever":{}}"#).unwrap();
    assert!(matches!(m.body, ClientRequest::Unknown(ref t) if t == "whatever"));
}

#[test]
fn bye_and_room() {
    assert!(matches!(
        decode(r#"{"id":"b","type":"bye","bye":{}}"#).unwrap().body,
        ClientRequest::Bye
    ));
    assert!(matches!(
        decode(r#"{"id":"b","type":"bye"}"#).unwrap().body,
        ClientRequest::Bye
    ));
    let m = decode(r#"{"id":"j","type":"room","room":{"roomid":"the-room-id","sessionid":"the-nextcloud-session-id"}}"#).unwrap();
    let ClientRequest::Room(r) = m.body else {
        panic!()
    };
    assert_eq!(r.room_id.as_str(), "the-room-id");
    assert_eq!(r.session_id.as_str(), "the-nextcloud-session-id");
    let m = decode(r#"{"id":"l","type":"room","room":{"roomid":""}}"#).unwrap();
    assert!(matches!(m.body, ClientRequest::Room(ref r) if r.room_id.is_empty()));
    let fed = r#"{"id":"f","type":"room","room":{"roomid":"local","sessionid":"s","federation":{"signaling":"wss://remote.domain.invalid/path/to/signaling/","url":"https://remote.domain.invalid/path/to/nextcloud/","roomid":"remote","token":"tok"}}}"#;
    assert!(matches!(
        decode(fed).unwrap().body,
        ClientRequest::Room(RoomRequest {
            federation: Some(_),
            ..
        })
    ));
    let bad_fed = r#"{"id":"f","type":"room","room":{"roomid":"local","federation":{"signaling":"","url":"x","token":""}}}"#;
    assert_eq!(code(bad_fed).1, ErrorCode::InvalidFormat);
}

#[test]
fn messages_all_recipients() {
    for (json, want) in [
        (
            r#"{"type":"session","sessionid":"the-session-id-to-send-to"}"#,
            Recipient::Session("the-session-id-to-send-to".into()),
        ),
        (
            r#"{"type":"user","userid":"the-user-id-to-send-to"}"#,
            Recipient::User("the-user-id-to-send-to".into()),
        ),
        (r#"{"type":"room"}"#, Recipient::Room),
        (r#"{"type":"call"}"#, Recipient::Call),
    ] {
        let frame = format!(
            r#"{{"id":"m","type":"message","message":{{"recipient":{json},"data":{{"type":"offer"}}}}}}"#
        );
        let ClientRequest::Message(m) = decode(&frame).unwrap().body else {
            panic!()
        };
        assert_eq!(m.recipient, want);
        assert_eq!(m.data.get(), r#"{"type":"offer"}"#);
        let control = frame.replace("\"message\"", "\"control\"");
        assert!(matches!(
            decode(&control).unwrap().body,
            ClientRequest::Control(_)
        ));
    }
    for bad in [
        r#"{"recipient":{"type":"session"},"data":{}}"#,
        r#"{"recipient":{"type":"user","userid":""},"data":{}}"#,
        r#"{"recipient":{"type":"nobody"},"data":{}}"#,
        r#"{"recipient":{"type":"room"}}"#,
    ] {
        let frame = format!(r#"{{"id":"m","type":"message","message":{bad}}}"#);
        assert_eq!(
            code(&frame),
            (Some("m".into()), ErrorCode::InvalidFormat),
            "{bad}"
        );
    }
    // Seed control payloads (mute / hangup / dtmf).
    for data in [
        r#"{"type":"mute","audio":1}"#,
        r#"{"type":"hangup"}"#,
        r##"{"type":"dtmf","digit":"#"}"##,
    ] {
        let frame = format!(
            r#"{{"id":"c","type":"control","control":{{"recipient":{{"type":"session","sessionid":"s"}},"data":{data}}}}}"#
        );
        let ClientRequest::Control(m) = decode(&frame).unwrap().body else {
            panic!()
        };
        assert_eq!(m.data.get(), data);
    }
}

#[test]
fn transient_and_internal() {
    let ClientRequest::Transient(TransientRequest::Set { key, value, ttl_ns }) = decode(r#"{"type":"transient","transient":{"type":"set","key":"sample-key","value":{"a":1},"ttl":5000000000}}"#).unwrap().body else { panic!() };
    assert_eq!(
        (key.as_str(), value.unwrap().get(), ttl_ns),
        ("sample-key", r#"{"a":1}"#, 5_000_000_000)
    );
    assert!(matches!(
        decode(r#"{"type":"transient","transient":{"type":"set","key":"k","value":null}}"#)
            .unwrap()
            .body,
        ClientRequest::Transient(TransientRequest::Set { value: None, .. })
    ));
    assert!(matches!(
        decode(r#"{"type":"transient","transient":{"type":"remove","key":"sample-key"}}"#)
            .unwrap()
            .body,
        ClientRequest::Transient(TransientRequest::Remove { .. })
    ));
    assert!(matches!(
        decode(r#"{"type":"transient","transient":{"type":"frob","key":"k"}}"#)
            .unwrap()
            .body,
        ClientRequest::Transient(TransientRequest::Other(_))
    ));
    assert_eq!(
        code(r#"{"type":"transient","transient":{"type":"set","key":"k","ttl":"5s"}}"#).1,
        ErrorCode::InvalidFormat
    );
    assert_eq!(
        code(r#"{"type":"transient","transient":{"type":"set"}}"#).1,
        ErrorCode::InvalidFormat
    );

    let add = r#"{"type":"internal","internal":{"type":"addsession","addsession":{"sessionid":"the-virtual-sessionid","roomid":"the-room-id-to-add-the-session","userid":"optional-user-id","user":{"displayname":"Phone"},"flags":1,"incall":9,"options":{"actorId":"a","actorType":"phones"}}}}"#;
    assert!(matches!(
        decode(add).unwrap().body,
        ClientRequest::Internal(InternalRequest::AddSession(_))
    ));
    let upd = r#"{"type":"internal","internal":{"type":"updatesession","updatesession":{"sessionid":"v","roomid":"r","flags":2,"incall":1}}}"#;
    assert!(matches!(
        decode(upd).unwrap().body,
        ClientRequest::Internal(InternalRequest::UpdateSession(_))
    ));
    let rem = r#"{"type":"internal","internal":{"type":"removesession","removesession":{"sessionid":"v","roomid":"r","userid":"u"}}}"#;
    assert!(matches!(
        decode(rem).unwrap().body,
        ClientRequest::Internal(InternalRequest::RemoveSession(_))
    ));
    let inc = r#"{"type":"internal","internal":{"type":"incall","incall":{"incall":-3}}}"#;
    assert!(matches!(
        decode(inc).unwrap().body,
        ClientRequest::Internal(InternalRequest::InCall(0))
    ));
    let missing_room =
        r#"{"type":"internal","internal":{"type":"addsession","addsession":{"sessionid":"v"}}}"#;
    assert_eq!(code(missing_room).1, ErrorCode::InvalidFormat);
    let bad_dialout =
        r#"{"type":"internal","internal":{"type":"dialout","dialout":{"type":"status"}}}"#;
    assert_eq!(code(bad_dialout).1, ErrorCode::InvalidFormat);
}

/// What a test client serializes decodes back into the same request.
#[test]
fn wire_structs_round_trip() {
    let wire = ClientMessageWire {
        id: Some("1".into()),
        kind: "room".into(),
        room: Some(RoomWire {
            roomid: "r".into(),
            sessionid: "s".into(),
            federation: None,
        }),
        ..Default::default()
    };
    let json = serde_json::to_string(&wire).unwrap();
    assert_eq!(
        json,
        r#"{"id":"1","type":"room","room":{"roomid":"r","sessionid":"s"}}"#
    );
    assert!(matches!(
        decode(&json).unwrap().body,
        ClientRequest::Room(_)
    ));
}
