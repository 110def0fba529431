//! `signaling-proxy --config proxy.conf`: SIGHUP reloads the token keys,
//! SIGUSR1 drains (no new publishers, exit when the last client is gone),
//! SIGINT/SIGTERM stop.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use signaling_proxy::config::ProxyConfig;
use signaling_proxy::server::{router, AppState, Proxy};
use signaling_proxy::tokens::TokenStore;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(version, about = "Signaling proxy in front of Janus")]
struct Cli {
    #[arg(long, default_value = "proxy.conf")]
    config: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let config = ProxyConfig::load(&cli.config)
        .with_context(|| format!("invalid configuration {}", cli.config.display()))?;
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    if config.listen.is_empty() {
        anyhow::bail!("[http] listen: no listener configured");
    }
    let tokens = match &config.etcd_tokens {
        Some((formats, etcd)) => TokenStore::etcd(etcd.clone(), formats.clone()),
        None => TokenStore::load(&config.tokens)?,
    };
    let mut listeners = Vec::new();
    for addr in &config.listen {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("could not listen on {addr}"))?;
        tracing::info!(addr = %l.local_addr()?, "listening");
        listeners.push(l);
    }
    let shutdown = CancellationToken::new();
    let proxy = Proxy::new(config, tokens, shutdown.clone());
    tokio::spawn(proxy.clone().report_load());
    tokio::spawn(proxy.clone().expire_sessions());
    tokio::spawn(signals(proxy.clone(), cli.config.clone()));
    let app = router(AppState(proxy.clone()));
    let timeouts = proxy.config.lock().http_timeouts;
    let mut servers = tokio::task::JoinSet::new();
    for l in listeners {
        servers.spawn(transport::http_serve::serve(
            transport::listener::nodelay(l),
            app.clone(),
            timeouts,
            |addr: &std::net::SocketAddr| transport::PeerAddr(addr.ip()),
            shutdown.clone(),
        ));
    }
    tracing::info!(version = proto::SERVER_VERSION, "signaling proxy started");
    while servers.join_next().await.is_some() {}
    tracing::info!("signaling proxy stopped");
    Ok(())
}

async fn signals(proxy: Arc<Proxy>, path: PathBuf) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup), Ok(mut usr1)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
        signal(SignalKind::user_defined1()),
    ) else {
        tracing::error!("could not install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = proxy.shutdown.cancelled() => return,
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = usr1.recv() => proxy.drain(),
            _ = hup.recv() => match ProxyConfig::load(&path) {
                Ok(c) => {
                    proxy.tokens.reload(&c.tokens);
                    let mut current = proxy.config.lock();
                    current.stats_allowed = c.stats_allowed;
                    current.incoming_limit = c.incoming_limit;
                    current.outgoing_limit = c.outgoing_limit;
                    current.trusted_proxies = c.trusted_proxies;
                }
                Err(e) => tracing::error!(error = %e, "reload failed, keeping the old configuration"),
            },
        }
    }
    proxy.shutdown.cancel();
}
