//! `signaling`: command line, configuration, listeners and signals.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use signaling::config::{Config, ListenAddr};
use signaling::server::Listener;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(version, about = "Nextcloud Talk signaling server")]
struct Cli {
    /// Path of the server.conf file (also from the CONFIG variable, as
    /// the reference's image reads it). Without it the server runs on the
    /// embedded default (single node, 127.0.0.1:8080, no SFU).
    #[arg(long, short = 'c', env = "CONFIG")]
    config: Option<PathBuf>,
    /// When the --config file does not exist, build the configuration
    /// from the environment variables of the reference's container image
    /// (HASH_KEY, BACKENDS, BACKEND_<ID>_URLS, NATS_URL, ...;
    /// docs/operations.md). Nothing is written.
    #[arg(long)]
    config_from_env: bool,
    /// Replaces `[http] listen` (space separated addresses).
    #[arg(long)]
    listen: Option<String>,
    /// Reads and checks the configuration (and the files it names),
    /// prints it with secrets masked and exits: 0 if it is valid,
    /// 1 with every error (section and key) otherwise.
    #[arg(long)]
    check_config: bool,
}

/// The configuration the command line names: the file, the environment
/// (`--config-from-env` and no such file) or the embedded default.
fn load_config(cli: &Cli) -> Result<Config, signaling::config::ConfigError> {
    match &cli.config {
        Some(path) if cli.config_from_env && !path.exists() => {
            let env = config_source::ini::ProcessEnv;
            Config::from_ini_str(&signaling::config::from_env::ini_from_env(&env), &env)
        }
        Some(path) => Config::load(path),
        None => Ok(Config::embedded_default()),
    }
}

/// `--check-config`: the exit code.
fn check_config(cli: &Cli) -> std::process::ExitCode {
    config_source::report_check(load_config(cli), |c| &c.warnings, Config::check_files)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
}

async fn bind(addrs: &[ListenAddr]) -> anyhow::Result<Vec<Listener>> {
    let mut out = Vec::new();
    for a in addrs {
        match a {
            ListenAddr::Tcp(sa) => {
                let l = tokio::net::TcpListener::bind(sa)
                    .await
                    .with_context(|| format!("could not listen on {sa}"))?;
                tracing::info!(addr = %l.local_addr()?, "listening");
                out.push(Listener::Tcp(l));
            }
            ListenAddr::Unix(path) => {
                let _ = std::fs::remove_file(path);
                let l = tokio::net::UnixListener::bind(path)
                    .with_context(|| format!("could not listen on {}", path.display()))?;
                tracing::info!(path = %path.display(), "listening");
                out.push(Listener::Unix(l));
            }
        }
    }
    Ok(out)
}

/// `[https] listen` with its certificate (checked here, so a bad one
/// stops start-up).
async fn bind_https(https: &signaling::config::HttpsConfig) -> anyhow::Result<Vec<Listener>> {
    if https.listen.is_empty() {
        return Ok(Vec::new());
    }
    let (Some(cert), Some(key)) = (&https.certificate, &https.key) else {
        anyhow::bail!("[https] listen needs certificate and key");
    };
    let cert = transport::tls::ReloadingCert::load(cert, key).context("[https] certificate")?;
    let mut out = Vec::new();
    for a in &https.listen {
        let ListenAddr::Tcp(sa) = a else {
            anyhow::bail!("[https] listen: only TCP addresses");
        };
        let l = tokio::net::TcpListener::bind(sa)
            .await
            .with_context(|| format!("could not listen on {sa}"))?;
        tracing::info!(addr = %l.local_addr()?, "listening (https)");
        out.push(Listener::Https(l, cert.clone()));
    }
    Ok(out)
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    if cli.check_config {
        return Ok(check_config(&cli));
    }
    init_logging();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the runtime")?
        .block_on(serve(cli))?;
    Ok(std::process::ExitCode::SUCCESS)
}

async fn serve(cli: Cli) -> anyhow::Result<()> {
    match &cli.config {
        None => tracing::info!("no --config given: running on the embedded default"),
        Some(p) if cli.config_from_env && !p.exists() => tracing::info!(
            file = %p.display(),
            "no configuration file: built from environment variables"
        ),
        Some(_) => {}
    }
    let mut config = load_config(&cli).with_context(|| match &cli.config {
        Some(p) => format!("invalid configuration {}", p.display()),
        None => "invalid configuration".to_owned(),
    })?;
    if let Some(listen) = &cli.listen {
        let text = format!("[sessions]\nhashkey = x\n[http]\nlisten = {listen}\n");
        let parsed = Config::from_ini_str(&text, &config_source::ini::ProcessEnv)
            .context("invalid --listen")?;
        config.http.listen = parsed.http.listen;
    }
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    for hint in config.deployment_hints() {
        tracing::warn!("{hint}");
    }
    if config.http.listen.is_empty() && config.https.listen.is_empty() {
        anyhow::bail!("[http] listen: no listener configured");
    }
    let hub = signaling::build_hub(&config).await?;
    let mut listeners = bind(&config.http.listen).await?;
    listeners.extend(bind_https(&config.https).await?);

    let shutdown = CancellationToken::new();
    let discovery = signaling::Discovery::start(&config, &hub, &shutdown);
    hub.tasks().spawn(signals(
        shutdown.clone(),
        hub.clone(),
        discovery,
        cli.config.clone(),
        config.app.shutdown_grace,
    ));
    tracing::info!(version = proto::SERVER_VERSION, "signaling server started");
    signaling::run(&config, hub, listeners, shutdown).await?;
    tracing::info!("signaling server stopped");
    Ok(())
}

/// How long a drained node waits for other nodes to take its sessions.
const HANDOVER_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// SIGINT stops the server at once. SIGUSR1 drains: no new clients,
/// readiness false, exit once the last client has left. SIGTERM drains
/// for `grace` (`[app] shutdowngrace`), then hands the remaining sessions
/// to other nodes (when there are any) and closes the rest; with no grace,
/// or on a second SIGTERM, it stops at once.
/// SIGHUP reloads what `Hub::reload` and `Discovery::reload` list.
async fn signals(
    shutdown: CancellationToken,
    hub: signaling::hub::Hub,
    discovery: signaling::Discovery,
    config_path: Option<PathBuf>,
    grace: std::time::Duration,
) {
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
        let drained = async {
            if hub.is_draining() {
                hub.no_clients().await
            } else {
                std::future::pending().await
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = drained => {
                tracing::info!("all clients disconnected, shutting down");
                break;
            }
            _ = grace_over => {
                tracing::info!(sessions = hub.session_count(), "shutdown grace over");
                // In a cluster the remaining clients are asked to
                // reconnect; they resume on other nodes, which take their
                // sessions over (`hub::handover`). The rest are closed.
                if hub.has_peers() && hub.release_clients() > 0 {
                    let _ = tokio::time::timeout(HANDOVER_WAIT, hub.no_clients()).await;
                }
                break;
            }
            _ = int.recv() => break,
            _ = term.recv() => {
                if grace.is_zero() || deadline.is_some() {
                    break;
                }
                hub.schedule_shutdown();
                deadline = Some(tokio::time::Instant::now() + grace);
            }
            _ = usr1.recv() => {
                hub.schedule_shutdown();
            }
            _ = hup.recv() => {
                let Some(path) = &config_path else { continue };
                match Config::load(path) {
                    Ok(c) => {
                        hub.reload(&c);
                        discovery.reload(&c);
                        tracing::info!("configuration reloaded");
                    }
                    Err(e) => tracing::error!(error = %e, "reload failed, keeping the old configuration"),
                }
            }
        }
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
