//! A DNS server on UDP for tests: answers A and SRV questions from a fixed
//! table, NXDOMAIN for other names, and an empty answer for other types of
//! known names (so resolvers asking A and AAAA at once do not wait).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::UdpSocket;

const TYPE_A: u16 = 1;
const TYPE_SRV: u16 = 33;

/// One record of the table.
#[derive(Debug, Clone)]
pub enum Record {
    A(Ipv4Addr),
    Srv { port: u16, target: String },
}

pub struct DnsServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn encode_name(name: &str, out: &mut Vec<u8>) {
    for label in name.trim_end_matches('.').split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

/// The question of a query: (name, type, end of the question section).
fn question(q: &[u8]) -> Option<(String, u16, usize)> {
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    Some((labels.join("."), qtype, i + 4))
}

fn answer(query: &[u8], table: &[(String, Record)]) -> Option<Vec<u8>> {
    let (name, qtype, end) = question(query)?;
    let known: Vec<&Record> = table
        .iter()
        .filter(|(n, _)| n.trim_end_matches('.').eq_ignore_ascii_case(&name))
        .map(|(_, r)| r)
        .collect();
    let answers: Vec<&Record> = known
        .iter()
        .copied()
        .filter(|r| match r {
            Record::A(_) => qtype == TYPE_A,
            Record::Srv { .. } => qtype == TYPE_SRV,
        })
        .collect();
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&query[0..2]);
    let rcode = if known.is_empty() { 3 } else { 0 };
    out.extend_from_slice(&[0x81, 0x80 | rcode]);
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&query[12..end]);
    for r in answers {
        out.extend_from_slice(&[0xc0, 0x0c]);
        let (rtype, rdata) = match r {
            Record::A(ip) => (TYPE_A, ip.octets().to_vec()),
            Record::Srv { port, target } => {
                let mut d = vec![0, 10, 0, 10];
                d.extend_from_slice(&port.to_be_bytes());
                encode_name(target, &mut d);
                (TYPE_SRV, d)
            }
        };
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&5u32.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    Some(out)
}

impl DnsServer {
    /// Serves `table` on `addr` (port 53 needs a namespace of one's own).
    pub async fn start(addr: SocketAddr, table: Vec<(String, Record)>) -> DnsServer {
        let socket = UdpSocket::bind(addr).await.expect("bind the DNS port");
        let addr = socket.local_addr().expect("local addr");
        let table = Arc::new(table);
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                if let Some(reply) = answer(&buf[..n], &table) {
                    let _ = socket.send_to(&reply, from).await;
                }
            }
        });
        DnsServer { addr, task }
    }
}
