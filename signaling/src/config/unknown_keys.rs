//! The keys `server.conf` knows, per section: anything else is reported
//! as ignored (a misspelt key otherwise fails silently).

use config_source::Reader;

use super::Config;

const KNOWN: &[(&str, &[&str])] = &[
    ("http", &["listen", "readtimeout", "writetimeout"]),
    (
        "https",
        &[
            "listen",
            "readtimeout",
            "writetimeout",
            "certificate",
            "key",
        ],
    ),
    (
        "app",
        &[
            "debug",
            "allowsubscribeany",
            "trustedproxies",
            "shutdowngrace",
        ],
    ),
    ("sessions", &["hashkey", "blockkey"]),
    ("clients", &["internalsecret"]),
    ("federation", &["skipverify", "timeout"]),
    (
        "backend",
        &[
            "backendtype",
            "backends",
            "backendprefix",
            "allowall",
            "secret",
            "timeout",
            "connectionsperhost",
            "skipverify",
            "allowed",
            "allowhttp",
            "sessionlimit",
            "maxstreambitrate",
            "maxscreenbitrate",
        ],
    ),
    ("nats", &["url"]),
    (
        "mcu",
        &[
            "type",
            "url",
            "maxstreambitrate",
            "maxscreenbitrate",
            "allowedcandidates",
            "blockedcandidates",
            "timeout",
            "proxytimeout",
            "urltype",
            "skipverify",
            "token_id",
            "token_key",
            "dnsdiscovery",
            "keyprefix",
        ],
    ),
    ("turn", &["apikey", "secret", "servers"]),
    ("geoip", &["license", "url"]),
    ("stats", &["allowed_ips"]),
    ("etcd", &["loglevel"]),
    (
        "grpc",
        &[
            "listen",
            "servercertificate",
            "serverkey",
            "serverca",
            "clientcertificate",
            "clientkey",
            "clientca",
            "targettype",
            "targets",
            "dnsdiscovery",
            "targetprefix",
        ],
    ),
];

/// The etcd client's keys, read from `[etcd]` and, for a proxy list of
/// its own, from `[mcu]`.
const ETCD_CLIENT_KEYS: &[&str] = &[
    "endpoints",
    "discoverysrv",
    "discoveryservice",
    "clientkey",
    "clientcert",
    "cacert",
];
const WITH_ETCD_CLIENT: &[&str] = &["mcu", "etcd"];

const BACKEND_SECTION_KEYS: &[&str] = &[
    "urls",
    "url",
    "secret",
    "sessionlimit",
    "maxstreambitrate",
    "maxscreenbitrate",
];

pub(super) fn warn_unknown(r: &mut Reader<'_>, config: &Config) {
    let backend_ids: Vec<&str> = config
        .backend
        .backends
        .iter()
        .map(|b| b.id.as_str())
        .collect();
    let mut warnings = Vec::new();
    for section in r.ini.sections() {
        if matches!(section, "geoip-overrides" | "continent-overrides") {
            continue;
        }
        let known: Option<&[&str]> = KNOWN
            .iter()
            .find(|(s, _)| *s == section)
            .map(|(_, k)| *k)
            .or_else(|| {
                (backend_ids.contains(&section)
                    || r.list("backend", "backends").iter().any(|b| b == section))
                .then_some(BACKEND_SECTION_KEYS)
            });
        match known {
            None => warnings.push(format!("unknown section [{section}] is ignored")),
            Some(keys) => {
                let etcd_client = WITH_ETCD_CLIENT.contains(&section);
                for (key, _) in r.ini.keys(section) {
                    let known =
                        keys.contains(&key) || (etcd_client && ETCD_CLIENT_KEYS.contains(&key));
                    if !known {
                        warnings.push(format!("unknown key [{section}] {key} is ignored"));
                    }
                }
            }
        }
    }
    for w in warnings {
        r.warn(w);
    }
}
