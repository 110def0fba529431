//! `signaling-bench`: load generator for Nextcloud Talk signaling servers.
//!
//! It starts its own Talk backend emulator on 127.0.0.1, so the server
//! under test must accept that backend: configure it with
//! `[backend] allowall = true` and `secret = <--secret>`. Only loopback
//! targets are accepted; every run is bounded by `--duration` and
//! `--clients`.

use std::time::Duration;

use clap::{Parser, ValueEnum};
use tests::bench::{self, scenario, Settings};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Scenario {
    /// Session messages to random peers.
    OneToOne,
    /// Rooms of --room-size members; every message goes to the room.
    Room,
    /// Connect, hello and join as fast as possible.
    JoinStorm,
    /// Drop all sockets and resume the sessions.
    ResumeStorm,
    /// Hold idle connections; reports server memory per connection.
    Idle,
}

#[derive(Parser)]
#[command(about = "Load generator for Nextcloud Talk signaling servers (loopback only)")]
struct Cli {
    #[arg(value_enum)]
    scenario: Scenario,
    /// WebSocket URL of the server; several nodes comma separated (clients
    /// are spread over them round-robin).
    #[arg(long, default_value = "ws://127.0.0.1:8080/spreed")]
    server: String,
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Seconds of the measured phase.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Total offered messages per second; without it clients send as fast
    /// as the server delivers, with --inflight messages outstanding each.
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long, default_value_t = 4)]
    inflight: usize,
    #[arg(long, default_value_t = 10)]
    room_size: usize,
    /// Bytes of padding in each message.
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Connections set up at once.
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// PID of the server, for CPU and memory figures.
    #[arg(long)]
    pid: Option<u32>,
    /// Shared secret the server uses for its (allowall) backend.
    #[arg(long, default_value = "bench-secret")]
    secret: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    for server in cli
        .server
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if let Err(e) = bench::check_loopback(server) {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
    if cli.clients == 0 || cli.clients > bench::MAX_CLIENTS {
        eprintln!("--clients must be between 1 and {}", bench::MAX_CLIENTS);
        std::process::exit(2);
    }
    let duration = Duration::from_secs_f64(cli.duration.max(0.1));
    if duration > bench::MAX_DURATION {
        eprintln!(
            "--duration is limited to {} s",
            bench::MAX_DURATION.as_secs()
        );
        std::process::exit(2);
    }
    let settings = Settings {
        server: cli.server,
        clients: cli.clients,
        duration,
        rate: cli.rate,
        inflight: cli.inflight.max(1),
        room_size: cli.room_size.max(2),
        payload: cli.payload,
        concurrency: cli.concurrency,
        pid: cli.pid,
        secret: cli.secret,
        progress: !cli.quiet && !cli.json,
    };
    let run = async {
        match cli.scenario {
            Scenario::OneToOne => scenario::one_to_one(&settings).await,
            Scenario::Room => scenario::room(&settings).await,
            Scenario::JoinStorm => scenario::join_storm(&settings).await,
            Scenario::ResumeStorm => scenario::resume_storm(&settings).await,
            Scenario::Idle => scenario::idle(&settings).await,
        }
    };
    // Setup and drain are bounded too.
    let limit = duration + Duration::from_secs(300);
    match tokio::time::timeout(limit, run).await {
        Ok(Ok(report)) => {
            if cli.json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                print!("{}", report.text());
            }
        }
        Ok(Err(e)) => {
            eprintln!("benchmark failed: {e}");
            std::process::exit(1);
        }
        Err(_) => {
            eprintln!("benchmark did not finish within {limit:?}");
            std::process::exit(1);
        }
    }
}
