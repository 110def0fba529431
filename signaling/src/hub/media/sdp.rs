//! Just enough SDP for the SFU path (facts 4.3, 4.7): which media an offer
//! carries, that every candidate in it parses, and removing candidates the
//! operator does not allow.

use std::net::IpAddr;

/// What the hub needs to know of a session description.
#[derive(Debug, PartialEq, Eq)]
pub struct Sdp {
    /// The kind of every `m=` line, in order (`audio`, `video`, ...).
    pub media: Vec<String>,
}

/// Parses `sdp`; the error says what is wrong.
pub fn parse(sdp: &str) -> Result<Sdp, String> {
    let mut lines = sdp.lines().map(|l| l.trim_end_matches('\r'));
    if lines.next() != Some("v=0") {
        return Err("Error parsing SDP from payload.".into());
    }
    let mut media = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let Some((kind, value)) = line.split_once('=') else {
            return Err("Error parsing SDP from payload.".into());
        };
        match kind {
            "m" => media.push(
                value
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            "a" => {
                if let Some(c) = value.strip_prefix("candidate:") {
                    if !c.is_empty() && candidate_address(value).is_none() {
                        return Err("Error parsing candidate from media description.".into());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(Sdp { media })
}

/// The connection address of a candidate line (`candidate:...`), if it is
/// well-formed; `Some(None)` when the address is not an IP literal (mDNS).
fn candidate_address(line: &str) -> Option<Option<IpAddr>> {
    let line = line.strip_prefix("a=").unwrap_or(line);
    let rest = line.strip_prefix("candidate:")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.len() < 8 || fields[6] != "typ" {
        return None;
    }
    fields[3].parse::<u64>().ok()?;
    fields[5].parse::<u16>().ok()?;
    Some(fields[4].parse().ok())
}

/// Whether a candidate line may reach the SFU: a parseable IP address
/// that is not unspecified and that `allowed` accepts.
pub fn candidate_allowed(line: &str, allowed: &dyn Fn(IpAddr) -> bool) -> bool {
    match candidate_address(line) {
        Some(Some(ip)) => !ip.is_unspecified() && allowed(ip),
        _ => false,
    }
}

/// `sdp` without the candidates that are not allowed; `None` when nothing
/// was removed.
pub fn filter_candidates(sdp: &str, allowed: &dyn Fn(IpAddr) -> bool) -> Option<String> {
    let mut removed = false;
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\r', '\n']);
        if let Some(value) = bare.strip_prefix("a=candidate:") {
            if !value.is_empty() && !candidate_allowed(bare, allowed) {
                removed = true;
                continue;
            }
        }
        out.push_str(line);
    }
    removed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=candidate:1 1 udp 2122260223 10.0.0.5 50000 typ host\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=candidate:2 1 udp 2122260223 abc.local 50001 typ host\r\n\
        a=candidate:3 1 udp 2122260223 192.168.1.2 50002 typ host\r\n";

    #[test]
    fn media_and_candidates() {
        let sdp = parse(OFFER).unwrap();
        assert_eq!(sdp.media, vec!["audio", "video"]);
        assert!(parse("not sdp").is_err());
        assert!(parse("v=0\r\na=candidate:1 1 udp x 10.0.0.1 5 typ host\r\n").is_err());
    }

    #[test]
    fn filtering() {
        let no_private_10 = |ip: IpAddr| !matches!(ip, IpAddr::V4(v4) if v4.octets()[0] == 10);
        let filtered = filter_candidates(OFFER, &no_private_10).unwrap();
        assert!(!filtered.contains("10.0.0.5"));
        assert!(
            !filtered.contains("abc.local"),
            "mDNS candidates are dropped"
        );
        assert!(filtered.contains("192.168.1.2"));
        assert!(filtered.contains("m=video"));
        let only_public = "v=0\r\na=candidate:3 1 udp 2122260223 192.168.1.2 50002 typ host\r\n";
        assert_eq!(filter_candidates(only_public, &|_| true), None);
        assert!(!candidate_allowed(
            "candidate:1 1 udp 1 0.0.0.0 9 typ host",
            &|_| true
        ));
    }
}
