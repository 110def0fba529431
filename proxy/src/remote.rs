//! Remote streams (cluster facts 6.7): a subscriber here of a publisher on
//! another proxy. This proxy signs in to the other one (one connection per
//! URL, shared, closed with its last remote publisher), asks it for the
//! publisher's streams and to forward them to a remote publisher on our
//! Janus.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use proto::proxy::{ClientMessage, CommandClient, PublisherStream, ServerMessage};
use sfu_bridge::janus::remote::RemoteController;
use sfu_bridge::proxy::connection::{ProxyClientEvents, ProxyConnection};
use sfu_bridge::sfu::SfuError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ProxyConfig;
use crate::tokens::now_secs;

/// How this proxy signs in to others and where their RTP must go.
pub struct RemoteIdentity {
    pub token_id: String,
    pub token_key: rsa::RsaPrivateKey,
    pub hostname: String,
    /// `wss://` proxies: how their certificates are checked.
    pub tls: Arc<rustls::ClientConfig>,
}

impl RemoteIdentity {
    /// `[app] token_id`, `token_key` and the hostname, when remote streams
    /// are possible; why not is logged.
    pub fn from_config(config: &ProxyConfig) -> Option<RemoteIdentity> {
        let (Some(token_id), Some(key_file)) = (&config.token_id, &config.token_key) else {
            tracing::info!("no [app] token_id/token_key: remote streams are disabled");
            return None;
        };
        let token_key = match proto::proxy_token::read_private_key(key_file) {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(file = %key_file.display(), error = %e, "[app] token_key unusable: remote streams are disabled");
                return None;
            }
        };
        let Some(hostname) = config
            .hostname
            .clone()
            .or_else(crate::localip::first_non_loopback)
        else {
            tracing::warn!("could not determine [app] hostname: remote streams are disabled");
            return None;
        };
        let tls = match transport::tls::client_config(config.skip_verify) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "no TLS for other proxies: remote streams are disabled");
                return None;
            }
        };
        if config.skip_verify {
            tracing::warn!("skipverify: certificates of other proxies are not checked");
        }
        tracing::info!(token_id, hostname, "remote streams enabled");
        Some(RemoteIdentity {
            token_id: token_id.clone(),
            token_key,
            hostname,
            tls,
        })
    }
}

/// What the source side of a remote publisher tells this proxy.
pub trait RemoteEvents: Send + Sync {
    /// The publisher left its proxy (or that proxy is gone).
    fn publisher_gone(&self, publisher_id: &str);
}

struct Remote {
    conn: Arc<ProxyConnection>,
    stop: CancellationToken,
    /// Remote publishers using the connection.
    users: usize,
}

/// The connections to other proxies, by their base URL.
#[derive(Default)]
pub struct RemoteConnections {
    by_url: Mutex<HashMap<String, Remote>>,
    /// The connections' tasks, awaited at exit.
    tasks: TaskTracker,
}

impl RemoteConnections {
    fn acquire(
        &self,
        url: &str,
        identity: &RemoteIdentity,
        timeout: Duration,
        shutdown: &CancellationToken,
    ) -> Arc<ProxyConnection> {
        let mut map = self.by_url.lock();
        let remote = map.entry(url.to_owned()).or_insert_with(|| {
            let (id, key) = (identity.token_id.clone(), identity.token_key.clone());
            let make_token: Box<dyn Fn() -> Option<String> + Send + Sync> =
                Box::new(move || proto::proxy_token::sign(&id, None, &key, now_secs()).ok());
            let stop = shutdown.child_token();
            tracing::info!(url, "connecting to remote proxy");
            Remote {
                conn: ProxyConnection::start(
                    url,
                    None,
                    identity.tls.clone(),
                    make_token,
                    timeout,
                    (stop.clone(), &self.tasks),
                ),
                stop,
                users: 0,
            }
        });
        remote.users += 1;
        remote.conn.clone()
    }

    fn release(&self, url: &str) {
        let mut map = self.by_url.lock();
        let Some(remote) = map.get_mut(url) else {
            return;
        };
        remote.users = remote.users.saturating_sub(1);
        if remote.users == 0 {
            tracing::info!(url, "remote proxy connection closed");
            remote.stop.cancel();
            map.remove(url);
        }
    }

    /// Waits until every connection's task ended (after `shutdown`).
    pub async fn stopped(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    pub fn count(&self) -> usize {
        self.by_url.lock().len()
    }
}

/// The source side of one remote publisher: its proxy and its id there.
pub struct RemotePublisherController {
    events: Weak<dyn RemoteEvents>,
    remotes: Arc<RemoteConnections>,
    url: String,
    publisher_id: String,
    hostname: String,
    conn: Arc<ProxyConnection>,
    /// Per request to the other proxy.
    timeout: Duration,
    /// Itself, as the source proxy's events reach it.
    me: Weak<dyn ProxyClientEvents>,
    /// Set once this controller forwards (only one per publisher does:
    /// others made for the same publisher are dropped unused).
    registered: AtomicBool,
}

impl RemotePublisherController {
    /// A controller for `publisher_id` on the proxy at `url`, sharing
    /// that proxy's connection.
    pub fn new(
        remotes: &Arc<RemoteConnections>,
        events: Weak<dyn RemoteEvents>,
        identity: &RemoteIdentity,
        target: (&str, &str),
        timeout: Duration,
        shutdown: &CancellationToken,
    ) -> Arc<RemotePublisherController> {
        let (url, publisher_id) = target;
        let conn = remotes.acquire(url, identity, timeout, shutdown);
        Arc::new_cyclic(|me: &Weak<RemotePublisherController>| {
            let own: Weak<dyn ProxyClientEvents> = me.clone();
            RemotePublisherController {
                events,
                remotes: remotes.clone(),
                url: url.to_owned(),
                publisher_id: publisher_id.to_owned(),
                hostname: identity.hostname.clone(),
                conn,
                timeout,
                me: own,
                registered: AtomicBool::new(false),
            }
        })
    }

    async fn command(&self, command: CommandClient) -> Result<ServerMessage, SfuError> {
        if !self.conn.wait_connected(self.timeout).await {
            return Err(SfuError::NotConnected);
        }
        self.conn
            .request(ClientMessage {
                kind: "command".into(),
                command: Some(command),
                ..Default::default()
            })
            .await
    }

    fn forward(&self, kind: &str, port: u16, rtcp_port: u16) -> CommandClient {
        CommandClient {
            kind: kind.into(),
            client_id: self.publisher_id.clone(),
            hostname: self.hostname.clone(),
            port: Some(port),
            rtcp_port: Some(rtcp_port),
            ..Default::default()
        }
    }
}

impl Drop for RemotePublisherController {
    fn drop(&mut self) {
        if self.registered.load(Ordering::Acquire) {
            self.conn.unregister_exact(&self.publisher_id, &self.me);
        }
        self.remotes.release(&self.url);
    }
}

#[async_trait::async_trait]
impl RemoteController for RemotePublisherController {
    fn publisher_id(&self) -> &str {
        &self.publisher_id
    }

    async fn streams(&self) -> Result<Vec<PublisherStream>, SfuError> {
        let reply = self
            .command(CommandClient {
                kind: "get-publisher-streams".into(),
                client_id: self.publisher_id.clone(),
                ..Default::default()
            })
            .await?;
        Ok(reply.command.and_then(|c| c.streams).unwrap_or_default())
    }

    async fn start_publishing(&self, port: u16, rtcp_port: u16) -> Result<(), SfuError> {
        // The source proxy tells us with `publisher-closed` (its client
        // id) when the publisher goes away.
        self.conn.register(&self.publisher_id, self.me.clone());
        self.registered.store(true, Ordering::Release);
        self.command(self.forward("publish-remote", port, rtcp_port))
            .await
            .map(|_| ())
    }

    async fn stop_publishing(&self, port: u16, rtcp_port: u16) {
        if let Err(e) = self
            .command(self.forward("unpublish-remote", port, rtcp_port))
            .await
        {
            tracing::debug!(url = self.url, publisher = self.publisher_id, error = %e, "could not stop remote publishing");
        }
    }
}

impl ProxyClientEvents for RemotePublisherController {
    fn on_payload(&self, _: &str, _: &serde_json::Value) {}

    /// The publisher left its proxy (or that proxy is gone): our
    /// subscribers of it close, which tells their signaling servers.
    fn on_closed_by_proxy(&self) {
        if let Some(events) = self.events.upgrade() {
            tracing::info!(
                url = self.url,
                publisher = self.publisher_id,
                "remote publisher closed"
            );
            events.publisher_gone(&self.publisher_id);
        }
    }
}
