//! `server.conf` from environment variables, with the names the
//! reference's container image reads (`HASH_KEY`, `BACKENDS`,
//! `BACKEND_<ID>_URLS`, `NATS_URL`, ...), so users of that image can
//! switch by changing the image name. Used by `--config-from-env` when
//! the configuration file does not exist; nothing is written to disk.

use config_source::ini::Env;

/// One `[section] key` filled from one variable when it is set.
const SIMPLE: &[(&str, &str, &str)] = &[
    ("HTTP_LISTEN", "http", "listen"),
    ("HTTP_READ_TIMEOUT", "http", "readtimeout"),
    ("HTTP_WRITE_TIMEOUT", "http", "writetimeout"),
    ("HTTPS_LISTEN", "https", "listen"),
    ("HTTPS_READ_TIMEOUT", "https", "readtimeout"),
    ("HTTPS_WRITE_TIMEOUT", "https", "writetimeout"),
    ("HTTPS_CERTIFICATE", "https", "certificate"),
    ("HTTPS_KEY", "https", "key"),
    ("TRUSTED_PROXIES", "app", "trustedproxies"),
    ("SHUTDOWN_GRACE", "app", "shutdowngrace"),
    ("HASH_KEY", "sessions", "hashkey"),
    ("BLOCK_KEY", "sessions", "blockkey"),
    ("INTERNAL_SHARED_SECRET_KEY", "clients", "internalsecret"),
    ("FEDERATION_TIMEOUT", "federation", "timeout"),
    ("BACKENDS_ALLOWALL", "backend", "allowall"),
    ("BACKENDS_ALLOWALL_SECRET", "backend", "secret"),
    ("BACKENDS_TIMEOUT", "backend", "timeout"),
    ("CONNECTIONS_PER_HOST", "backend", "connectionsperhost"),
    ("SKIP_VERIFY", "backend", "skipverify"),
    ("ETCD_ENDPOINTS", "etcd", "endpoints"),
    ("ETCD_DISCOVERY_SRV", "etcd", "discoverysrv"),
    ("ETCD_DISCOVERY_SERVICE", "etcd", "discoveryservice"),
    ("ETCD_CLIENT_KEY", "etcd", "clientkey"),
    ("ETCD_CLIENT_CERTIFICATE", "etcd", "clientcert"),
    ("ETCD_CLIENT_CA", "etcd", "cacert"),
    ("MAX_STREAM_BITRATE", "mcu", "maxstreambitrate"),
    ("MAX_SCREEN_BITRATE", "mcu", "maxscreenbitrate"),
    ("ALLOWED_CANDIDATES", "mcu", "allowedcandidates"),
    ("BLOCKED_CANDIDATES", "mcu", "blockedcandidates"),
    ("TURN_API_KEY", "turn", "apikey"),
    ("TURN_SECRET", "turn", "secret"),
    ("TURN_SERVERS", "turn", "servers"),
    ("GEOIP_LICENSE", "geoip", "license"),
    ("GEOIP_URL", "geoip", "url"),
    ("STATS_IPS", "stats", "allowed_ips"),
    ("GRPC_LISTEN", "grpc", "listen"),
    ("GRPC_SERVER_CERTIFICATE", "grpc", "servercertificate"),
    ("GRPC_SERVER_KEY", "grpc", "serverkey"),
    ("GRPC_SERVER_CA", "grpc", "serverca"),
    ("GRPC_CLIENT_CERTIFICATE", "grpc", "clientcertificate"),
    ("GRPC_CLIENT_KEY", "grpc", "clientkey"),
    ("GRPC_CLIENT_CA", "grpc", "clientca"),
];

/// Per backend `<ID>` listed in `BACKENDS`: `BACKEND_<ID>_<suffix>`.
const PER_BACKEND: &[(&str, &str)] = &[
    ("SHARED_SECRET", "secret"),
    ("SESSION_LIMIT", "sessionlimit"),
    ("MAX_STREAM_BITRATE", "maxstreambitrate"),
    ("MAX_SCREEN_BITRATE", "maxscreenbitrate"),
];

#[derive(Default)]
struct Ini {
    sections: Vec<(String, Vec<(String, String)>)>,
}

impl Ini {
    fn set(&mut self, section: &str, key: &str, value: &str) {
        let pos = match self.sections.iter().position(|(s, _)| s == section) {
            Some(p) => p,
            None => {
                self.sections.push((section.to_owned(), Vec::new()));
                self.sections.len() - 1
            }
        };
        let keys = &mut self.sections[pos].1;
        keys.retain(|(k, _)| k != key);
        keys.push((key.to_owned(), value.to_owned()));
    }

    fn text(&self) -> String {
        let mut out = String::from("# Generated from environment variables (--config-from-env).\n");
        for (section, keys) in &self.sections {
            out.push_str(&format!("\n[{section}]\n"));
            for (k, v) in keys {
                out.push_str(&format!("{k} = {v}\n"));
            }
        }
        out
    }
}

fn set_flag(env: &dyn Env, name: &str) -> bool {
    env.var(name)
        .is_some_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// The configuration text the variables describe. The reference image's
/// defaults apply where it has them: listening on 0.0.0.0:8080 and the
/// in-process bus without `NATS_URL`.
pub fn ini_from_env(env: &dyn Env) -> String {
    let get = |name: &str| env.var(name).filter(|v| !v.is_empty());
    let mut ini = Ini::default();
    ini.set("http", "listen", "0.0.0.0:8080");
    ini.set("nats", "url", "nats://loopback");
    for (var, section, key) in SIMPLE {
        if let Some(v) = get(var) {
            ini.set(section, key, &v);
        }
    }
    if let Some(v) = get("NATS_URL") {
        ini.set("nats", "url", &v);
    }
    if set_flag(env, "USE_JANUS") {
        ini.set("mcu", "type", "janus");
        if let Some(v) = get("JANUS_URL") {
            ini.set("mcu", "url", &v);
        }
    } else if set_flag(env, "USE_PROXY") {
        ini.set("mcu", "type", "proxy");
        for (var, key) in [
            ("PROXY_TOKEN_ID", "token_id"),
            ("PROXY_TOKEN_KEY", "token_key"),
            ("PROXY_TIMEOUT", "proxytimeout"),
        ] {
            if let Some(v) = get(var) {
                ini.set("mcu", key, &v);
            }
        }
        if set_flag(env, "PROXY_ETCD") {
            ini.set("mcu", "urltype", "etcd");
            if let Some(v) = get("PROXY_KEY_PREFIX") {
                ini.set("mcu", "keyprefix", &v);
            }
        } else {
            if let Some(v) = get("PROXY_URLS") {
                ini.set("mcu", "url", &v);
            }
            if set_flag(env, "PROXY_DNS_DISCOVERY") {
                ini.set("mcu", "dnsdiscovery", "true");
            }
        }
    }
    if get("GRPC_LISTEN").is_some() {
        if set_flag(env, "GRPC_ETCD") {
            ini.set("grpc", "targettype", "etcd");
            if let Some(v) = get("GRPC_TARGET_PREFIX") {
                ini.set("grpc", "targetprefix", &v);
            }
        } else if let Some(v) = get("GRPC_TARGETS") {
            ini.set("grpc", "targets", &v);
            if set_flag(env, "GRPC_DNS_DISCOVERY") {
                ini.set("grpc", "dnsdiscovery", "true");
            }
        }
    }
    // Space separated `<address or network> = <country>` entries.
    for (var, section) in [
        ("GEOIP_OVERRIDES", "geoip-overrides"),
        ("CONTINENT_OVERRIDES", "continent-overrides"),
    ] {
        for entry in get(var).unwrap_or_default().split_whitespace() {
            if let Some((k, v)) = entry.split_once('=') {
                ini.set(section, k.trim(), v.trim());
            }
        }
    }
    if let Some(list) = get("BACKENDS") {
        let ids: Vec<&str> = list.split([' ', ',']).filter(|s| !s.is_empty()).collect();
        ini.set("backend", "backends", &ids.join(", "));
        for id in ids {
            let upper = id.to_ascii_uppercase();
            let urls = get(&format!("BACKEND_{upper}_URLS"))
                .or_else(|| get(&format!("BACKEND_{upper}_URL")));
            if let Some(urls) = urls {
                ini.set(id, "urls", &urls);
            }
            for (suffix, key) in PER_BACKEND {
                if let Some(v) = get(&format!("BACKEND_{upper}_{suffix}")) {
                    ini.set(id, key, &v);
                }
            }
        }
    } else if let Some(allowed) = get("BACKENDS_COMPAT_ALLOWED") {
        ini.set("backend", "allowed", &allowed);
        if let Some(secret) = get("BACKENDS_COMPAT_SECRET") {
            ini.set("backend", "secret", &secret);
        }
    }
    ini.text()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::{Config, McuType};

    fn env(vars: &[(&str, &str)]) -> BTreeMap<String, String> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_typical_container_setup_loads() {
        let e = env(&[
            ("HASH_KEY", "0123456789abcdef0123456789abcdef"),
            ("BLOCK_KEY", "0123456789abcdef"),
            ("INTERNAL_SHARED_SECRET_KEY", "internal"),
            ("BACKENDS", "nc1 nc2"),
            ("BACKEND_NC1_URLS", "https://one.example/"),
            ("BACKEND_NC1_SHARED_SECRET", "s1"),
            ("BACKEND_NC1_SESSION_LIMIT", "100"),
            ("BACKEND_NC2_URL", "https://two.example/"),
            ("BACKEND_NC2_SHARED_SECRET", "s2"),
            ("NATS_URL", "nats://nats:4222"),
            ("USE_PROXY", "1"),
            ("PROXY_URLS", "https://proxy.example/"),
            ("PROXY_TOKEN_ID", "server1"),
            ("PROXY_TOKEN_KEY", "/etc/signaling/token.key"),
            ("GRPC_LISTEN", "0.0.0.0:9090"),
            ("GRPC_TARGETS", "signaling-grpc:9090"),
            ("GRPC_DNS_DISCOVERY", "true"),
            ("TURN_API_KEY", "k"),
            ("TURN_SECRET", "t"),
            ("TURN_SERVERS", "turn:turn.example:3478"),
            ("GEOIP_OVERRIDES", "10.0.0.0/8=DE 192.168.0.0/16=FR"),
            ("TRUSTED_PROXIES", "10.0.0.0/8"),
        ]);
        let text = ini_from_env(&e);
        let c = Config::from_ini_str(&text, &e).unwrap_or_else(|err| panic!("{err}\n{text}"));
        assert!(c.warnings.is_empty(), "{:?}\n{text}", c.warnings);
        assert_eq!(c.backend.backends.len(), 2);
        assert_eq!(c.backend.backends[0].session_limit, 100);
        assert_eq!(c.backend.backends[1].urls, vec!["https://two.example/"]);
        assert_eq!(c.nats.urls, vec!["nats://nats:4222"]);
        assert_eq!(c.mcu.kind, Some(McuType::Proxy));
        assert_eq!(c.mcu.urls, vec!["https://proxy.example/"]);
        assert!(c.grpc.dns_discovery);
        assert_eq!(c.turn.servers.len(), 1);
        assert_eq!(c.geoip.overrides.len(), 2);
        assert_eq!(c.http.listen.len(), 1);
    }

    #[test]
    fn defaults_are_the_reference_images() {
        let e = env(&[("HASH_KEY", "0123456789abcdef0123456789abcdef")]);
        let c = Config::from_ini_str(&ini_from_env(&e), &e).unwrap();
        assert!(c.nats.is_loopback());
        assert!(c.mcu.kind.is_none());
    }
}
