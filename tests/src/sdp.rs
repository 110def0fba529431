//! Synthetic WebRTC offers for signaling-level SFU tests: valid enough for
//! Janus to negotiate (ICE credentials, DTLS fingerprint, codecs), without
//! a real peer behind them.

/// An offer with the given media sections (`audio`, `video`), each
/// `sendonly`, as a browser publishing would send.
pub fn publisher_offer(media: &[&str]) -> String {
    let mut sdp =
        String::from("v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
    let mids: Vec<String> = (0..media.len()).map(|i| i.to_string()).collect();
    sdp.push_str(&format!("a=group:BUNDLE {}\r\n", mids.join(" ")));
    sdp.push_str("a=msid-semantic: WMS stream\r\n");
    for (i, kind) in media.iter().enumerate() {
        let (pt, rtpmap) = match *kind {
            "audio" => (111, "opus/48000/2"),
            _ => (96, "VP8/90000"),
        };
        sdp.push_str(&format!(
            "m={kind} 9 UDP/TLS/RTP/SAVPF {pt}\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
             a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n\
             a=fingerprint:sha-256 {FP}\r\na=setup:actpass\r\na=mid:{i}\r\na=sendonly\r\n\
             a=msid:stream track{i}\r\na=rtcp-mux\r\na=rtpmap:{pt} {rtpmap}\r\n\
             a=ssrc:{ssrc} cname:test\r\n",
            ssrc = 1000 + i
        ));
    }
    sdp
}

/// An answer to an SFU offer: every media section `recvonly`, same mids.
pub fn subscriber_answer(offer: &str) -> String {
    let mut sdp =
        String::from("v=0\r\no=- 4611731400430051337 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
    let mut mids = Vec::new();
    let mut sections = Vec::new();
    for line in offer.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            sections.push((m.to_owned(), String::new(), Vec::<String>::new()));
        } else if let Some((_, mid, rtpmaps)) = sections.last_mut() {
            if let Some(v) = line.strip_prefix("a=mid:") {
                *mid = v.to_owned();
            } else if line.starts_with("a=rtpmap:") {
                rtpmaps.push(line.to_owned());
            }
        }
    }
    for (_, mid, _) in &sections {
        mids.push(mid.clone());
    }
    sdp.push_str(&format!("a=group:BUNDLE {}\r\n", mids.join(" ")));
    for (m, mid, rtpmaps) in sections {
        let mut parts = m.split_whitespace();
        let kind = parts.next().unwrap_or("video");
        let fmt: Vec<&str> = parts.skip(2).collect();
        let dir = if kind == "application" {
            ""
        } else {
            "a=recvonly\r\n"
        };
        sdp.push_str(&format!(
            "m={kind} 9 {} {}\r\nc=IN IP4 0.0.0.0\r\n\
             a=ice-ufrag:efgh\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
             a=fingerprint:sha-256 {FP}\r\na=setup:active\r\na=mid:{mid}\r\n{dir}a=rtcp-mux\r\n",
            if kind == "application" {
                "UDP/DTLS/SCTP"
            } else {
                "UDP/TLS/RTP/SAVPF"
            },
            fmt.join(" "),
        ));
        for r in rtpmaps {
            sdp.push_str(&r);
            sdp.push_str("\r\n");
        }
    }
    sdp
}

const FP: &str = "12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0";
