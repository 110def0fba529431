use super::*;
use crate::error::ErrorCode;

#[test]
fn hello_always_has_resumeid_and_token() {
    let m = ClientMessage {
        id: Some("1".into()),
        kind: "hello".into(),
        hello: Some(HelloClient {
            version: PROXY_VERSION.into(),
            token: "t".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let v = serde_json::to_value(&m).unwrap();
    assert_eq!(v["hello"]["resumeid"], "");
    assert_eq!(v["hello"]["token"], "t");
    assert!(ClientMessage::decode(v.to_string().as_bytes()).is_ok());
}

#[test]
fn validation() {
    let bad = [
        r#"{"type":"hello","hello":{"version":"2.0","token":"t"}}"#,
        r#"{"type":"hello","hello":{"version":"1.0"}}"#,
        r#"{"type":"command","command":{"type":"create-publisher"}}"#,
        r#"{"type":"command","command":{"type":"create-subscriber","publisherId":"p","streamType":"video","remoteUrl":"wss://x"}}"#,
        r#"{"type":"payload","payload":{"type":"offer","clientId":"c"}}"#,
        r#"{"type":"other"}"#,
        "not json",
    ];
    for b in bad {
        let (_, e) = ClientMessage::decode(b.as_bytes()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidFormat, "{b}");
    }
    let ok = r#"{"id":"7","type":"payload","payload":{"type":"endOfCandidates","clientId":"c"}}"#;
    let r = ClientMessage::decode(ok.as_bytes()).unwrap();
    assert_eq!(r.id.as_deref(), Some("7"));
    assert!(matches!(
        r.body,
        ClientBody::Payload(PayloadRequest {
            kind: PayloadKind::EndOfCandidates,
            ..
        })
    ));
}

#[test]
fn commands_are_typed() {
    let decode = |s: &str| match ClientMessage::decode(s.as_bytes()).unwrap().body {
        ClientBody::Command(c) => c,
        other => panic!("{other:?}"),
    };
    // Deprecated top-level fields fill in missing publisherSettings.
    let c = decode(
        r#"{"type":"command","command":{"type":"create-publisher","streamType":"video","bitrate":5,"mediatypes":3,"publisherSettings":{"bitrate":7}}}"#,
    );
    let Command::CreatePublisher { settings, .. } = c else {
        panic!("{c:?}")
    };
    assert_eq!((settings.bitrate, settings.mediatypes), (Some(7), Some(3)));
    let c = decode(
        r#"{"type":"command","command":{"type":"publish-remote","clientId":"c","hostname":"h","port":1,"rtcpPort":2}}"#,
    );
    assert_eq!(
        c,
        Command::PublishRemote {
            client_id: "c".into(),
            target: RemoteTarget {
                hostname: "h".into(),
                port: 1,
                rtcp_port: 2
            }
        }
    );
    let c = decode(
        r#"{"type":"command","command":{"type":"create-subscriber","publisherId":"p","streamType":"screen","remoteUrl":"wss://x","remoteToken":"t"}}"#,
    );
    assert!(matches!(
        c,
        Command::CreateSubscriber {
            remote: Some(_),
            ..
        }
    ));
    let c = decode(r#"{"type":"command","command":{"type":"frobnicate"}}"#);
    assert_eq!(c, Command::Unsupported("frobnicate".into()));
    assert_eq!(c.name(), "frobnicate");
}
