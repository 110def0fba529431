//! What another Janus needs to know about a publisher's media to receive
//! it as a remote publisher (cluster facts 5.8): one entry per negotiated
//! m-line, read off the publisher's offer and Janus's answer.

use proto::proxy::PublisherStream;

const EXT_PLAYOUT_DELAY: &str = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay";
const EXT_VIDEO_ORIENTATION: &str = "urn:3gpp:video-orientation";

/// One `m=` section: the media line's words and its attributes.
struct Section<'a> {
    media: &'a str,
    formats: Vec<&'a str>,
    attributes: Vec<(&'a str, &'a str)>,
}

impl<'a> Section<'a> {
    fn attribute(&self, key: &str) -> Option<&'a str> {
        self.attributes
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    /// `a=<key>:<pt> <rest>` for one payload type.
    fn for_payload(&self, key: &str, pt: &str) -> Option<&'a str> {
        self.attributes
            .iter()
            .filter(|(k, _)| *k == key)
            .find_map(|(_, v)| {
                let (p, rest) = v.split_once(' ')?;
                (p == pt).then_some(rest.trim())
            })
    }

    /// A `simulcast` attribute or an `ssrc-group:SIM`.
    fn simulcast(&self) -> bool {
        self.attributes
            .iter()
            .any(|(k, v)| *k == "simulcast" || (*k == "ssrc-group" && v.starts_with("SIM ")))
    }
}

fn sections(sdp: &str) -> Vec<Section<'_>> {
    let mut out: Vec<Section<'_>> = Vec::new();
    for line in sdp.lines().map(|l| l.trim_end_matches('\r')) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut words = m.split_whitespace();
            let media = words.next().unwrap_or_default();
            let formats = words.skip(2).collect();
            out.push(Section {
                media,
                formats,
                attributes: Vec::new(),
            });
        } else if let (Some(a), Some(section)) = (line.strip_prefix("a="), out.last_mut()) {
            let (key, value) = a.split_once(':').unwrap_or((a, ""));
            section.attributes.push((key, value));
        }
    }
    out
}

/// `key=value` of an fmtp parameter list, case-insensitive key.
fn fmtp_value<'a>(fmtp: &'a str, key: &str) -> Option<&'a str> {
    fmtp.split(';').find_map(|part| {
        let (k, v) = part.split_once('=')?;
        k.trim().eq_ignore_ascii_case(key).then(|| v.trim())
    })
}

/// The streams of a publisher from its offer and the answer Janus gave.
pub fn publisher_streams(offer: &str, answer: &str) -> Vec<PublisherStream> {
    let offer = sections(offer);
    let mut streams = Vec::new();
    for (index, m) in sections(answer).iter().enumerate() {
        let Some(mid) = m.attribute("mid") else {
            continue;
        };
        let Some(first) = m.formats.first() else {
            continue;
        };
        let mut s = PublisherStream {
            mid: mid.to_owned(),
            mindex: index,
            kind: m.media.to_owned(),
            ..Default::default()
        };
        if m.media.eq_ignore_ascii_case("application")
            && first.eq_ignore_ascii_case("webrtc-datachannel")
        {
            s.kind = "data".into();
            streams.push(s);
            continue;
        }
        let Some(codec) = m
            .for_payload("rtpmap", first)
            .and_then(|r| r.split('/').next())
        else {
            continue;
        };
        let fmtp = m.for_payload("fmtp", first).unwrap_or_default();
        let enabled = |key: &str| fmtp_value(fmtp, key) == Some("1");
        if m.media.eq_ignore_ascii_case("audio") {
            s.codec = codec.to_owned();
            s.fec = enabled("useinbandfec");
            s.dtx = enabled("usedtx");
            s.stereo = enabled("stereo");
        } else if m.media.eq_ignore_ascii_case("video") {
            s.codec = codec.to_owned();
            if codec.eq_ignore_ascii_case("vp9") {
                s.vp9_profile = fmtp_value(fmtp, "profile-id")
                    .unwrap_or_default()
                    .to_owned();
            } else if codec.eq_ignore_ascii_case("h264") {
                s.h264_profile = fmtp_value(fmtp, "profile-level-id")
                    .unwrap_or_default()
                    .to_owned();
            }
            for (key, value) in &m.attributes {
                if *key != "extmap" {
                    continue;
                }
                let mut words = value.split_whitespace();
                let id = words
                    .next()
                    .and_then(|w| w.split('/').next())
                    .and_then(|w| w.parse::<u32>().ok());
                match (id, words.next()) {
                    (Some(id), Some(EXT_PLAYOUT_DELAY)) => s.playoutdelay_ext_id = id,
                    (Some(id), Some(EXT_VIDEO_ORIENTATION)) => s.videoorient_ext_id = id,
                    _ => {}
                }
            }
            s.simulcast = m.simulcast() || offer.get(index).is_some_and(Section::simulcast);
        } else {
            continue;
        }
        streams.push(s);
    }
    streams
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 98\r\na=mid:1\r\na=rtpmap:96 VP8/90000\r\n\
        a=ssrc-group:SIM 1 2 3\r\n\
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n";

    const ANSWER: &str = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n\
        a=fmtp:111 minptime=10;useinbandfec=1; usedtx=0;stereo=1\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 98\r\na=mid:1\r\na=rtpmap:98 VP9/90000\r\n\
        a=fmtp:98 profile-id=2\r\n\
        a=extmap:4 urn:3gpp:video-orientation\r\n\
        a=extmap:6/recvonly http://www.webrtc.org/experiments/rtp-hdrext/playout-delay\r\n\
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n\
        m=video 0 UDP/TLS/RTP/SAVPF 0\r\n";

    #[test]
    fn streams_from_offer_and_answer() {
        let s = publisher_streams(OFFER, ANSWER);
        assert_eq!(s.len(), 3, "{s:?}");
        assert_eq!(
            s[0],
            PublisherStream {
                mid: "0".into(),
                mindex: 0,
                kind: "audio".into(),
                codec: "opus".into(),
                fec: true,
                stereo: true,
                ..Default::default()
            }
        );
        assert_eq!(s[1].kind, "video");
        assert_eq!(s[1].codec, "VP9");
        assert_eq!(s[1].vp9_profile, "2");
        assert_eq!(s[1].videoorient_ext_id, 4);
        assert_eq!(s[1].playoutdelay_ext_id, 6);
        // Simulcast is announced in the offer only.
        assert!(s[1].simulcast);
        assert_eq!(s[2].kind, "data");
        assert_eq!(s[2].mindex, 2);
    }

    #[test]
    fn wire_names_match_janus() {
        let s = publisher_streams(OFFER, ANSWER);
        let v = serde_json::to_value(&s[1]).unwrap();
        assert_eq!(v["type"], "video");
        assert_eq!(v["vp9_profile"], "2");
        assert_eq!(v["playoutdelay_ext_id"], 6);
        assert!(v.get("fec").is_none());
        assert!(v.get("h264_profile").is_none());
    }

    #[test]
    fn lines_without_mid_or_rtpmap_are_skipped() {
        let answer = "m=audio 9 RTP/AVP 111\r\na=rtpmap:111 opus/48000\r\n\
                      m=video 9 RTP/AVP 100\r\na=mid:v\r\n";
        assert!(publisher_streams("", answer).is_empty());
    }
}
