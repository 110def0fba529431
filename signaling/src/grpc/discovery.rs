//! Where the peers come from (cluster facts 2.5): `[grpc] targets`, each
//! name optionally resolved every second to one peer per address
//! (`dnsdiscovery`), or the documents below `[grpc] targetprefix` in etcd.

use config_source::SourceType;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Weak};

use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::peers::{Peers, Target};
use crate::config::{EtcdConfig, GrpcConfig};
use config_source::etcd::EtcdStatus;

const STATIC_GROUP: &str = "static";
const ETCD_GROUP: &str = "etcd";

/// Runs target discovery; `reload` applies a changed static list.
pub struct Discovery {
    /// Owns the watchers; the hub waits for them at shutdown.
    tasks: TaskTracker,
    peers: Arc<Peers>,
    /// Stops the DNS monitors of the current static list.
    static_tasks: parking_lot::Mutex<CancellationToken>,
    shutdown: CancellationToken,
}

impl Discovery {
    /// Starts discovery as configured; tasks end with `shutdown`.
    pub fn start(
        peers: Arc<Peers>,
        grpc: &GrpcConfig,
        etcd: &EtcdConfig,
        etcd_status: EtcdStatus,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Arc<Discovery> {
        tasks.spawn(peers.clone().watch_tls(shutdown.clone()));
        let d = Arc::new(Discovery {
            tasks: tasks.clone(),
            peers,
            static_tasks: parking_lot::Mutex::new(shutdown.child_token()),
            shutdown,
        });
        if grpc.target_type == SourceType::Etcd {
            match &grpc.target_prefix {
                Some(prefix) if !prefix.is_empty() => {
                    let peers = d.peers.clone();
                    d.tasks.spawn(config_source::etcd::watch_prefix(
                        etcd.clone(),
                        prefix.clone(),
                        etcd_status,
                        d.shutdown.clone(),
                        move |docs| {
                            let targets = docs
                                .iter()
                                .filter_map(|(key, value)| parse_etcd(key, value))
                                .collect::<BTreeSet<_>>()
                                .into_iter()
                                .filter_map(|a| Target::parse(&a))
                                .collect();
                            peers.set_group(ETCD_GROUP, targets);
                        },
                    ));
                }
                _ => tracing::error!("[grpc] targettype = etcd needs targetprefix"),
            }
        } else {
            d.apply_static(grpc);
        }
        d
    }

    /// SIGHUP: a new static target list (etcd targets follow etcd).
    pub fn reload(self: &Arc<Self>, grpc: &GrpcConfig) {
        if grpc.target_type != SourceType::Etcd {
            self.apply_static(grpc);
        }
    }

    fn apply_static(self: &Arc<Self>, grpc: &GrpcConfig) {
        let token = self.shutdown.child_token();
        let mut monitors = self.static_tasks.lock();
        std::mem::replace(&mut *monitors, token.clone()).cancel();
        let mut fixed = Vec::new();
        let mut names = Vec::new();
        for name in &grpc.targets {
            match Target::parse(name) {
                Some(t) if grpc.dns_discovery && t.host.parse::<IpAddr>().is_err() => names.push(t),
                Some(t) => fixed.push(t),
                None => tracing::warn!(target = name, "invalid gRPC target ignored"),
            }
        }
        self.peers.set_group(STATIC_GROUP, fixed);
        // A name still listed keeps its peers until its new monitor
        // answers; the groups of names no longer listed are emptied.
        let listed: BTreeSet<String> = names.iter().map(|t| dns_group(&t.name)).collect();
        for group in self.peers.group_names() {
            if group.starts_with(DNS_GROUP_PREFIX) && !listed.contains(&group) {
                self.peers.set_group(&group, Vec::new());
            }
        }
        for t in names {
            self.tasks
                .spawn(monitor_dns(Arc::downgrade(self), t, token.clone()));
        }
    }
}

const DNS_GROUP_PREFIX: &str = "dns:";

fn dns_group(name: &str) -> String {
    format!("{DNS_GROUP_PREFIX}{name}")
}

/// Keeps one peer per address of a name.
async fn monitor_dns(discovery: Weak<Discovery>, target: Target, stop: CancellationToken) {
    let group = dns_group(&target.name);
    let check = stop.clone();
    crate::dns::watch(target.dial.clone(), stop, |addrs: &BTreeSet<SocketAddr>| {
        let Some(d) = discovery.upgrade() else { return };
        // Under the lock `apply_static` replaces monitors with: a monitor
        // of a replaced list never overwrites what the new one set.
        let _current = d.static_tasks.lock();
        if check.is_cancelled() {
            return;
        }
        let targets = addrs
            .iter()
            .map(|a| Target {
                name: target.name.clone(),
                ip: Some(a.ip()),
                dial: a.to_string(),
                host: target.host.clone(),
            })
            .collect();
        d.peers.set_group(&group, targets);
    })
    .await;
}

#[derive(Deserialize)]
struct TargetDoc {
    #[serde(default)]
    address: String,
}

/// The address of one etcd document (facts 3.3), without a trailing `/`.
fn parse_etcd(key: &str, value: &[u8]) -> Option<String> {
    match serde_json::from_slice::<TargetDoc>(value) {
        Ok(d) if !d.address.is_empty() => Some(d.address.trim_end_matches('/').to_owned()),
        Ok(_) => {
            tracing::warn!(key, "gRPC target document without address ignored");
            None
        }
        Err(e) => {
            tracing::warn!(key, error = %e, "invalid gRPC target document ignored");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_etcd;

    #[test]
    fn fuzz_target_documents() {
        proto::fuzzing::run(
            "etcd_grpc_target",
            &[br#"{"address":"10.0.0.1:9090/"}"#],
            |b| {
                let _ = parse_etcd("/k", b);
            },
        );
    }

    #[test]
    fn etcd_documents() {
        assert_eq!(
            parse_etcd("/k", br#"{"address":"10.0.0.1:9090/","other":1}"#).as_deref(),
            Some("10.0.0.1:9090")
        );
        assert_eq!(parse_etcd("/k", br#"{"other":1}"#), None);
        assert_eq!(parse_etcd("/k", b"not json"), None);
    }
}
