//! `signaling-proxy --config proxy.conf`: SIGHUP reloads the token keys,
//! SIGUSR1 drains (no new publishers, exit when the last client is gone),
//! SIGTERM drains for `[app] shutdowngrace` and then stops, SIGINT stops.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sfu_bridge::sfu::Sfu;
use signaling_proxy::config::{ProxyConfig, TokenSource};
use signaling_proxy::router::router;
use signaling_proxy::state::Proxy;
use signaling_proxy::tokens::TokenStore;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(version, about = "Signaling proxy in front of Janus")]
struct Cli {
    #[arg(long, default_value = "proxy.conf")]
    config: PathBuf,
    /// Reads and checks the configuration (and the token key files it
    /// names), prints it and exits: 0 if it is valid, 1 with every error
    /// (section and key) otherwise.
    #[arg(long)]
    check_config: bool,
}

/// `--check-config`: the exit code.
fn check_config(path: &std::path::Path) -> std::process::ExitCode {
    config_source::report_check(
        ProxyConfig::load(path),
        |c| &c.warnings,
        |c| signaling_proxy::tokens::check_static_keys(c.tokens.static_keys()),
    )
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    if cli.check_config {
        return Ok(check_config(&cli.config));
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the runtime")?
        .block_on(serve(cli))?;
    Ok(std::process::ExitCode::SUCCESS)
}

async fn serve(cli: Cli) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = ProxyConfig::load(&cli.config)
        .with_context(|| format!("invalid configuration {}", cli.config.display()))?;
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    if config.listen.is_empty() {
        anyhow::bail!("[http] listen: no listener configured");
    }
    let tokens = match &config.tokens {
        TokenSource::Etcd { formats, etcd } => TokenStore::etcd(etcd.clone(), formats.clone()),
        TokenSource::Static(keys) => TokenStore::load(keys)?,
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
    let grace = config.shutdown_grace;
    let proxy = Proxy::new(config, tokens, shutdown.clone());
    proxy.start_background();
    proxy
        .tasks
        .spawn(signals(proxy.clone(), cli.config.clone(), grace));
    let app = router(proxy.clone());
    let timeouts = proxy.config.lock().http_timeouts;
    let mut servers = tokio::task::JoinSet::new();
    for l in listeners {
        servers.spawn(transport::http_serve::serve(
            transport::listener::nodelay(l),
            app.clone(),
            timeouts,
            None,
            |addr: &std::net::SocketAddr| transport::PeerAddr(addr.ip()),
            shutdown.clone(),
        ));
    }
    tracing::info!(version = proto::SERVER_VERSION, "signaling proxy started");
    while servers.join_next().await.is_some() {}
    // Sessions end (their Janus clients close) while Janus is still
    // connected; then the tasks get the grace period to finish.
    proxy.close_all();
    proxy.tasks.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, proxy.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("tasks still running after the grace period");
    }
    proxy.stop_sfu();
    let stopped = async {
        proxy.sfu.stopped().await;
        proxy.remotes.stopped().await;
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, stopped).await.is_err() {
        tracing::warn!("janus or remote proxy connections still open after the grace period");
    }
    tracing::info!("signaling proxy stopped");
    Ok(())
}

/// How long connections and clean-ups get after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

async fn signals(proxy: Arc<Proxy>, path: PathBuf, grace: Duration) {
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
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let grace_over = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = proxy.shutdown.cancelled() => return,
            _ = grace_over => {
                tracing::info!("shutdown grace over, ending the remaining sessions");
                break;
            }
            _ = term.recv() => {
                if grace.is_zero() || deadline.is_some() {
                    break;
                }
                proxy.drain();
                deadline = Some(tokio::time::Instant::now() + grace);
            }
            _ = int.recv() => break,
            _ = usr1.recv() => proxy.drain(),
            _ = hup.recv() => match ProxyConfig::load(&path) {
                Ok(c) => {
                    proxy.tokens.reload(c.tokens.static_keys());
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
