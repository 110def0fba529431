//! Counting, latency histograms, `/proc` sampling and output.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Counters shared by every client task.
#[derive(Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub delivered: AtomicU64,
    pub errors: AtomicU64,
}

impl Counters {
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}

/// A histogram of microseconds, 1 us .. 60 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn from(h: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// CPU time and memory of a process, from `/proc`.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct ProcSample {
    pub cpu_seconds: f64,
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Some(ProcSample {
        cpu_seconds: (utime + stime) / clock_ticks(),
        rss_kib: kib("VmRSS:"),
        peak_rss_kib: kib("VmHWM:"),
    })
}

/// The result of one run.
#[derive(Debug, Serialize, Default)]
pub struct Report {
    pub scenario: String,
    pub server: String,
    pub clients: usize,
    pub seconds: f64,
    pub sent: u64,
    pub delivered: u64,
    pub expected: u64,
    pub errors: u64,
    pub sent_per_sec: f64,
    pub delivered_per_sec: f64,
    pub latency: Latency,
    /// Server CPU seconds used during the measured phase.
    pub server_cpu_seconds: Option<f64>,
    pub server_cpu_ms_per_1000_msgs: Option<f64>,
    pub server_rss_kib: Option<u64>,
    pub server_peak_rss_kib: Option<u64>,
    /// Idle scenario: server memory per connection.
    pub rss_bytes_per_connection: Option<f64>,
    /// Storm scenarios: completed operations per second.
    pub ops_per_sec: Option<f64>,
}

impl Report {
    pub fn apply_proc(&mut self, before: Option<ProcSample>, after: Option<ProcSample>) {
        if let (Some(b), Some(a)) = (before, after) {
            let cpu = a.cpu_seconds - b.cpu_seconds;
            self.server_cpu_seconds = Some(cpu);
            if self.delivered > 0 {
                self.server_cpu_ms_per_1000_msgs =
                    Some(cpu * 1000.0 / (self.delivered as f64 / 1000.0));
            }
            self.server_rss_kib = Some(a.rss_kib);
            self.server_peak_rss_kib = Some(a.peak_rss_kib);
        }
    }

    pub fn text(&self) -> String {
        let mut s = format!(
            "{} against {} with {} clients for {:.1} s\n  sent {} ({:.0}/s), delivered {} of {} ({:.0}/s), errors {}\n  latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} samples)\n",
            self.scenario,
            self.server,
            self.clients,
            self.seconds,
            self.sent,
            self.sent_per_sec,
            self.delivered,
            self.expected,
            self.delivered_per_sec,
            self.errors,
            self.latency.p50_ms,
            self.latency.p90_ms,
            self.latency.p99_ms,
            self.latency.p999_ms,
            self.latency.max_ms,
            self.latency.count,
        );
        if let Some(ops) = self.ops_per_sec {
            s.push_str(&format!("  {ops:.0} operations/s\n"));
        }
        if let Some(cpu) = self.server_cpu_seconds {
            s.push_str(&format!("  server CPU {cpu:.2} s"));
            if let Some(per) = self.server_cpu_ms_per_1000_msgs {
                s.push_str(&format!(" ({per:.1} ms per 1000 messages)"));
            }
            s.push('\n');
        }
        if let (Some(rss), Some(peak)) = (self.server_rss_kib, self.server_peak_rss_kib) {
            s.push_str(&format!(
                "  server RSS {} MiB, peak {} MiB\n",
                rss / 1024,
                peak / 1024
            ));
        }
        if let Some(b) = self.rss_bytes_per_connection {
            s.push_str(&format!("  {:.1} KiB per idle connection\n", b / 1024.0));
        }
        s
    }
}

/// Prints a progress line every second until `stop` fires.
pub async fn progress(counters: std::sync::Arc<Counters>, stop: tokio_util_stop::Stop) {
    let start = std::time::Instant::now();
    let mut last = (0u64, 0u64);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.wait() => return,
            _ = tick.tick() => {}
        }
        let (s, d) = (counters.sent(), counters.delivered());
        eprintln!(
            "  t={:>4.0}s sent {:>9} (+{:>7}/s) delivered {:>9} (+{:>7}/s) errors {}",
            start.elapsed().as_secs_f64(),
            s,
            s - last.0,
            d,
            d - last.1,
            counters.errors()
        );
        last = (s, d);
    }
}

/// A one-shot stop signal (a tiny stand-in for a cancellation token).
pub mod tokio_util_stop {
    use std::sync::Arc;
    use tokio::sync::watch;

    #[derive(Clone)]
    pub struct Stop(Arc<watch::Sender<bool>>, watch::Receiver<bool>);

    impl Default for Stop {
        fn default() -> Self {
            let (tx, rx) = watch::channel(false);
            Stop(Arc::new(tx), rx)
        }
    }

    impl Stop {
        pub fn fire(&self) {
            let _ = self.0.send(true);
        }
        pub fn fired(&self) -> bool {
            *self.1.borrow()
        }
        pub async fn wait(&self) {
            let mut rx = self.1.clone();
            let _ = rx.wait_for(|v| *v).await;
        }
    }
}
