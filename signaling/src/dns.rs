//! Names resolved again every second, for `dnsdiscovery` of gRPC targets
//! and of signaling proxies (cluster facts 2.5, 6.8): one connection per
//! address a name currently resolves to.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often names are resolved again.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Resolves `dial` (`host:port`) every [`INTERVAL`] until `stop`; calls
/// `on_change` with the addresses the first time and whenever they differ
/// from the last call (a failed lookup counts as none). Nothing is called
/// once stopped: the owner decides what a stopped name leaves behind, and
/// must check `stop` under its own lock in `on_change`, because a lookup
/// may finish just as it is stopped.
pub async fn watch(
    dial: String,
    stop: CancellationToken,
    mut on_change: impl FnMut(&BTreeSet<SocketAddr>) + Send,
) {
    let mut last: Option<BTreeSet<SocketAddr>> = None;
    loop {
        if stop.is_cancelled() {
            break;
        }
        let addrs: BTreeSet<SocketAddr> = match tokio::net::lookup_host(&dial).await {
            Ok(a) => a.collect(),
            Err(e) => {
                tracing::debug!(name = dial, error = %e, "DNS lookup failed");
                BTreeSet::new()
            }
        };
        if last.as_ref() != Some(&addrs) {
            on_change(&addrs);
            last = Some(addrs);
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(INTERVAL) => {}
        }
    }
}
