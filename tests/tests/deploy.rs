//! The files in `deploy/` stay true to the binaries: the Helm chart's
//! configurations load without errors or unknown keys, the example
//! `proxy.conf` loads, and every metric the Grafana dashboard queries is
//! exported by the server, the SFU bridge or the proxy.

use config_source::ini::Env;
use signaling_proxy::config::ProxyConfig;

struct NoEnv;
impl Env for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

use std::path::{Path, PathBuf};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file)
}

/// The block scalar `<key>: |` inside the top-level `<section>:` of a
/// Helm values file, dedented.
fn values_block(text: &str, section: &str, key: &str) -> String {
    let mut lines = text
        .lines()
        .skip_while(|l| *l != format!("{section}:"))
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .skip_while(|l| l.trim() != format!("{key}: |"));
    let header = lines.next().unwrap_or_default();
    let indent = header.len() - header.trim_start().len() + 2;
    lines
        .take_while(|l| l.is_empty() || l.len() - l.trim_start().len() >= indent)
        .map(|l| l.get(indent..).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The configurations the Helm chart ships, and those of the value sets
/// CI renders it with, are read without errors or unknown keys.
#[test]
fn helm_chart_configs_load() {
    let values = std::fs::read_to_string(deploy("helm/signaling/values.yaml")).unwrap();
    let server = values_block(&values, "signaling", "config");
    assert!(server.contains("[sessions]"), "{server}");
    // The defaults carry placeholders the chart refuses to render
    // (deploy/helm/check.py); with them filled in, the file loads.
    assert!(server.contains("change-me"));
    let filled = server
        .replace(
            "hashkey = change-me",
            "hashkey = 0123456789abcdef0123456789abcdef",
        )
        .replace("blockkey = change-me", "blockkey = 0123456789abcdef")
        .replace("change-me", "a-real-secret");
    let c = signaling::config::Config::from_ini_str(&filled, &NoEnv).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.http.listen.len(), 1);
    assert_eq!(c.app.shutdown_grace.as_secs(), 30);
    let proxy = values_block(&values, "proxy", "config");
    assert!(proxy.contains("[tokens]"), "{proxy}");
    let p = ProxyConfig::from_ini_str(&proxy, &NoEnv).unwrap();
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.tokens.static_keys().len(), 1);
    assert_eq!(p.shutdown_grace.as_secs(), 840);
    let mut checked = 0;
    for entry in std::fs::read_dir(deploy("helm/ci")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let server = values_block(&text, "signaling", "config");
        let c = signaling::config::Config::from_ini_str(&server, &NoEnv)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            c.warnings.is_empty(),
            "{}: {:?}",
            path.display(),
            c.warnings
        );
        checked += 1;
    }
    assert_eq!(checked, 4);
}

/// Every metric the Grafana dashboard queries is one we export.
#[test]
fn dashboard_metrics_exist() {
    let dashboard = std::fs::read_to_string(deploy("grafana/signaling.json")).unwrap();
    let mut sources = String::new();
    for file in [
        "../signaling/src/metrics.rs",
        "../sfu-bridge/src/metrics.rs",
        "../proxy/src/metrics.rs",
    ] {
        sources.push_str(
            &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap(),
        );
    }
    let mut checked = 0;
    for part in dashboard.split("signaling_").skip(1) {
        let name: String = part
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        let name = name.trim_end_matches("_bucket");
        assert!(
            sources.contains(&format!("\"signaling_{name}\"")),
            "signaling_{name} is not exported"
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} metrics found");
}

/// The dashboard has job and instance variables and every query is
/// filtered by them; the new operator metrics have panels.
#[test]
fn dashboard_filters_by_job_and_instance() {
    let text = std::fs::read_to_string(deploy("grafana/signaling.json")).unwrap();
    let d: serde_json::Value = serde_json::from_str(&text).unwrap();
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert!(
        vars.contains(&"job") && vars.contains(&"instance"),
        "{vars:?}"
    );
    let mut exprs = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            exprs.push(t["expr"].as_str().unwrap().to_owned());
        }
    }
    for e in &exprs {
        assert!(
            e.contains("job=~\"$job\"") && e.contains("instance=~\"$instance\""),
            "not filtered: {e}"
        );
    }
    for metric in [
        "signaling_call_sessions",
        "signaling_mcu_backend_load",
        "signaling_mcu_backend_usage",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(metric)),
            "{metric} has no panel"
        );
    }
}

/// The shipped example must stay loadable.
#[test]
fn example_config_loads() {
    let path = deploy("proxy.conf.example");
    let c = ProxyConfig::load(&path).unwrap();
    assert_eq!(c.tokens.static_keys().len(), 1);
    assert_eq!(c.listen.len(), 1);
}

/// Both systemd units are hardened: `systemd-analyze security` rates each
/// at most 2.0 (of 10; an unhardened unit is about 8.5), and they pass
/// systemd's own unit checks.
#[test]
fn systemd_units_are_hardened() {
    for unit in ["signaling.service", "signaling-proxy.service"] {
        let path = deploy(&format!("systemd/{unit}"));
        let out = std::process::Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=20"])
            .arg(&path)
            .output()
            .expect("systemd-analyze (package systemd)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{unit} exposed:\n{}",
            text.lines().last().unwrap_or_default()
        );
        assert!(text.contains("Overall exposure level"), "{text}");
    }
    let sysusers = std::fs::read_to_string(deploy("systemd/signaling.sysusers.conf")).unwrap();
    assert!(sysusers.lines().any(|l| l.starts_with("u signaling ")));
}
