//! A MaxMind DB (format 2.0) writer for IPv4 country databases: enough
//! to give the server a GeoIP database whose answers the test chooses.

use std::net::Ipv4Addr;

/// Control byte(s) of a field: type and size (< 29).
fn control(out: &mut Vec<u8>, kind: u8, size: usize) {
    assert!(size < 29, "small fields only");
    if kind <= 7 {
        out.push((kind << 5) | size as u8);
    } else {
        out.push(size as u8);
        out.push(kind - 7);
    }
}

fn string(out: &mut Vec<u8>, s: &str) {
    control(out, 2, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn uint(out: &mut Vec<u8>, kind: u8, v: u64, bytes: usize) {
    control(out, kind, bytes);
    out.extend_from_slice(&v.to_be_bytes()[8 - bytes..]);
}

/// Country records for IPv4 networks: `(network, prefix length, ISO code)`.
pub fn country_db(networks: &[(Ipv4Addr, u8, &str)]) -> Vec<u8> {
    // Data section: one `{"country": {"iso_code": CC}}` per network.
    let mut data = Vec::new();
    let mut offsets = Vec::new();
    for (_, _, cc) in networks {
        offsets.push(data.len());
        control(&mut data, 7, 1);
        string(&mut data, "country");
        control(&mut data, 7, 1);
        string(&mut data, "iso_code");
        string(&mut data, cc);
    }
    // Search tree over 32 bits; `None` = no data.
    #[derive(Clone, Copy)]
    enum Rec {
        Empty,
        Node(usize),
        Data(usize),
    }
    let mut nodes: Vec<[Rec; 2]> = vec![[Rec::Empty, Rec::Empty]];
    for ((net, len, _), offset) in networks.iter().zip(&offsets) {
        let bits = u32::from(*net);
        let mut node = 0;
        for depth in 0..*len {
            let bit = ((bits >> (31 - depth)) & 1) as usize;
            if depth + 1 == *len {
                nodes[node][bit] = Rec::Data(*offset);
            } else {
                node = match nodes[node][bit] {
                    Rec::Node(n) => n,
                    _ => {
                        nodes.push([Rec::Empty, Rec::Empty]);
                        let n = nodes.len() - 1;
                        nodes[node][bit] = Rec::Node(n);
                        n
                    }
                };
            }
        }
    }
    let count = nodes.len();
    let mut out = Vec::new();
    for node in &nodes {
        for rec in node {
            let v = match *rec {
                Rec::Empty => count,
                Rec::Node(n) => n,
                Rec::Data(o) => count + 16 + o,
            };
            out.extend_from_slice(&(v as u32).to_be_bytes()[1..]);
        }
    }
    out.extend_from_slice(&[0; 16]);
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    control(&mut out, 7, 9);
    string(&mut out, "node_count");
    uint(&mut out, 6, count as u64, 4);
    string(&mut out, "record_size");
    uint(&mut out, 5, 24, 2);
    string(&mut out, "ip_version");
    uint(&mut out, 5, 4, 2);
    string(&mut out, "database_type");
    string(&mut out, "GeoLite2-Country");
    string(&mut out, "languages");
    control(&mut out, 11, 1);
    string(&mut out, "en");
    string(&mut out, "binary_format_major_version");
    uint(&mut out, 5, 2, 2);
    string(&mut out, "binary_format_minor_version");
    uint(&mut out, 5, 0, 2);
    string(&mut out, "build_epoch");
    uint(&mut out, 9, 1_700_000_000, 8);
    string(&mut out, "description");
    control(&mut out, 7, 1);
    string(&mut out, "en");
    string(&mut out, "test countries");
    out
}
