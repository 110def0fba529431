use std::collections::BTreeMap;
use std::time::Duration;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    let mut env = BTreeMap::new();
    env.insert(
        "HASHKEY".to_string(),
        "0123456789abcdef0123456789abcdef".to_string(),
    );
    env.insert("NC_SECRET".to_string(), "from-env".to_string());
    Config::from_ini_str(text, &env)
}

const MINIMAL: &str = "[sessions]\nhashkey = 0123456789abcdef0123456789abcdef\n";

#[test]
fn defaults_match_the_reference() {
    let c = parse(MINIMAL).unwrap();
    assert!(c.http.listen.is_empty());
    assert_eq!(c.http.read_timeout, Duration::from_secs(15));
    assert_eq!(c.http.write_timeout, Duration::from_secs(30));
    assert_eq!(c.backend.timeout, Duration::from_secs(10));
    assert_eq!(c.backend.connections_per_host, 8);
    assert_eq!(c.nats.urls, vec!["nats://127.0.0.1:4222"]);
    assert!(c.mcu.kind.is_none());
    assert_eq!(c.mcu.max_stream_bitrate, 1_048_576);
    assert_eq!(c.mcu.max_screen_bitrate, 2_097_152);
    assert_eq!(c.stats.allowed_ips.len(), 2);
    assert_eq!(c.app.trusted_proxies.len(), 2);
    assert_eq!(c.federation.timeout, Duration::from_secs(10));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn hashkey_required_and_blockkey_checked() {
    let err = parse("[http]\nlisten = 127.0.0.1:1\n").unwrap_err();
    assert_eq!(err.to_string(), "[sessions] hashkey: required");
    let err = parse(&format!("{MINIMAL}blockkey = short\n")).unwrap_err();
    assert!(err.to_string().starts_with("[sessions] blockkey:"), "{err}");
    let c = parse(&format!("{MINIMAL}blockkey = -encryption-key-\n")).unwrap();
    assert!(c.sessions.block_key.is_some());
    let c = parse("[sessions]\nhashkey = short\n").unwrap();
    assert!(c.warnings.iter().any(|w| w.contains("hashkey")));
}

#[test]
fn env_substitution_on_env_keys() {
    let c = parse("[sessions]\nhashkey = $(HASHKEY)\n[backend]\nbackends = nc\n[nc]\nurls = https://cloud.example.com\nsecret = $(NC_SECRET)\n").unwrap();
    assert_eq!(
        c.sessions.hash_key.expose(),
        "0123456789abcdef0123456789abcdef"
    );
    assert_eq!(c.backend.backends[0].secret.expose(), "from-env");
}

#[test]
fn backends_sections() {
    let c = parse(&format!(
        "{MINIMAL}[backend]\nbackends = one, two, one\nsecret = common\n\
         [one]\nurls = https://a.example.com:443/nc, https://b.example.com\nsessionlimit = 5\nmaxstreambitrate = 100\n\
         [two]\nurl = http://c.example.com/\nsecret = own\n"
    ))
    .unwrap();
    let b = &c.backend.backends;
    assert_eq!(b.len(), 2);
    assert_eq!(b[0].id, "one");
    assert_eq!(
        b[0].urls,
        vec!["https://a.example.com/nc/", "https://b.example.com/"]
    );
    assert_eq!(b[0].secret.expose(), "common");
    assert_eq!(b[0].session_limit, 5);
    assert_eq!(b[0].max_stream_bitrate, 100);
    assert!(!b[0].allow_http);
    assert_eq!(b[1].secret.expose(), "own");
    assert!(b[1].allow_http);
    assert!(c.backend.compat.is_none());
}

#[test]
fn allowall_needs_secret() {
    let err = parse(&format!("{MINIMAL}[backend]\nallowall = true\n")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "[backend] secret: required with allowall or allowed"
    );
    let c = parse(&format!(
        "{MINIMAL}[backend]\nallowall = true\nsecret = s\n"
    ))
    .unwrap();
    let compat = c.backend.compat.unwrap();
    assert_eq!(compat.id, "compat");
    assert!(compat.urls.is_empty());
}

#[test]
fn invalid_values_name_section_and_key() {
    for (text, want) in [
        ("[http]\nlisten = nonsense\n", "[http] listen:"),
        ("[app]\ndebug = maybe\n", "[app] debug:"),
        ("[backend]\ntimeout = ten\n", "[backend] timeout:"),
        (
            "[backend]\nbackendtype = consul\n",
            "[backend] backendtype:",
        ),
        ("[stats]\nallowed_ips = 1.2.3.4.5\n", "[stats] allowed_ips:"),
        ("[mcu]\ntype = mediasoup\n", "[mcu] type:"),
        ("[mcu]\ntype = proxy\nurltype = consul\n", "[mcu] urltype:"),
        ("[grpc]\ntargettype = dns\n", "[grpc] targettype:"),
        ("[turn]\nservers = turn:x\n", "[turn] apikey:"),
        ("[https]\nlisten = 127.0.0.1:8443\n", "[https] certificate:"),
        (
            "[backend]\nbackends = b\nsecret = s\n[b]\nurls = ftp://x\n",
            "[b] urls:",
        ),
    ] {
        let err = parse(&format!("{MINIMAL}{text}")).unwrap_err();
        assert!(err.to_string().starts_with(want), "{text}: {err}");
    }
}

#[test]
fn unknown_keys_and_sections_are_warned_about() {
    let c = parse(&format!(
        "{MINIMAL}[http]\nlisten = 127.0.0.1:1\nlisten_typo = 1\n[bogus]\nx = 1\n"
    ))
    .unwrap();
    assert!(
        c.warnings
            .iter()
            .any(|w| w == "unknown key [http] listen_typo is ignored"),
        "{:?}",
        c.warnings
    );
    assert!(c
        .warnings
        .iter()
        .any(|w| w == "unknown section [bogus] is ignored"));
}

#[test]
fn listeners_and_nats() {
    let c = parse(&format!(
        "{MINIMAL}[http]\nlisten = 127.0.0.1:8080 /tmp/sock\n[nats]\nurl = nats://loopback\n"
    ))
    .unwrap();
    assert_eq!(c.http.listen.len(), 2);
    assert!(matches!(c.http.listen[1], ListenAddr::Unix(_)));
    assert!(c.nats.is_loopback());
}

#[test]
fn embedded_default_runs_single_node() {
    let c = Config::embedded_default();
    assert_eq!(
        c.http.listen,
        vec![ListenAddr::Tcp("127.0.0.1:8080".parse().unwrap())]
    );
    assert!(c.nats.is_loopback());
    assert!(c.mcu.kind.is_none());
    assert!(c.sessions.generated_hashkey);
    assert!(!c.deployment_hints().is_empty());
    assert!(!format!("{:?}", c.sessions.hash_key).contains(c.sessions.hash_key.expose()));
}

/// The shipped example must stay loadable.
#[test]
fn example_config_loads() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/server.conf.example");
    let text = std::fs::read_to_string(&path).unwrap();
    struct Env;
    impl config_source::ini::Env for Env {
        fn var(&self, _: &str) -> Option<String> {
            Some("0123456789abcdef0123456789abcdef".into())
        }
    }
    let c = crate::config::Config::from_ini_str(&text, &Env).unwrap();
    assert!(c.mcu.kind.is_none(), "the example runs without an SFU");
}

#[test]
fn fuzz_config_files() {
    proto::fuzzing::run_str(
        "server_conf",
        &[
            include_str!("../../../deploy/server.conf.example"),
            "[http]\nlisten = 127.0.0.1:8080\n[sessions]\nhashkey = $(HASHKEY)\n[backend]\nbackends = a\n[a]\nurls = https://a/\nsecret = $(NC_SECRET)\n[mcu]\ntype = proxy\nurl = https://p1 https://p2\n[grpc]\ntargets = a:1, b:2\n",
        ],
        |t| {
            let _ = parse(t);
        },
    );
}

#[test]
fn etcd_client_keys_are_known_in_mcu_and_etcd_only() {
    let c = parse(&format!(
        "{MINIMAL}[etcd]\nendpoints = http://127.0.0.1:2379\nloglevel = info\n\
         [mcu]\nclientcert = /c.pem\n[grpc]\nclientcert = /c.pem\n"
    ))
    .unwrap();
    assert_eq!(
        c.warnings
            .iter()
            .filter(|w| w.starts_with("unknown"))
            .collect::<Vec<_>>(),
        vec!["unknown key [grpc] clientcert is ignored"],
    );
}
