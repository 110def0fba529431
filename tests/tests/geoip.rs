//! Client countries from a GeoIP database: the server downloads a
//! MaxMind-style `.tar.gz` (served here on loopback), reads the country
//! database in it, and puts the country of each client (its address from
//! a trusted `X-Real-IP`) into `welcome`; `[geoip-overrides]` win.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::Duration;

use tests::client::TestClient;
use tests::server::{TestServer, TALK_SECRET};
use tests::talk::Talk;

const FR_NET: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 0);

fn database() -> Vec<u8> {
    tests::mmdb::country_db(&[(FR_NET, 24, "FR"), (Ipv4Addr::new(192, 0, 2, 0), 24, "BR")])
}

/// The database the test writes is one MaxMind's reader accepts.
#[test]
fn written_database_reads_back() {
    let db = maxminddb::Reader::from_source(database()).unwrap();
    let country = |ip: [u8; 4]| -> Option<String> {
        let c: Option<maxminddb::geoip2::Country<'_>> =
            db.lookup(IpAddr::V4(Ipv4Addr::from(ip))).unwrap();
        c.and_then(|c| c.country?.iso_code.map(str::to_owned))
    };
    assert_eq!(country([198, 51, 100, 200]).as_deref(), Some("FR"));
    assert_eq!(country([192, 0, 2, 1]).as_deref(), Some("BR"));
    assert_eq!(country([203, 0, 113, 1]), None);
}

/// `GeoLite2-Country_<date>/GeoLite2-Country.mmdb` in a `.tar.gz`, like
/// MaxMind's downloads.
fn archive(dir: &std::path::Path) -> Vec<u8> {
    let inner = dir.join("GeoLite2-Country_20261201");
    std::fs::create_dir_all(&inner).unwrap();
    std::fs::write(inner.join("COPYRIGHT.txt"), "test data").unwrap();
    std::fs::write(inner.join("GeoLite2-Country.mmdb"), database()).unwrap();
    let out = Command::new("tar")
        .arg("czf")
        .arg("-")
        .arg("-C")
        .arg(dir)
        .arg("GeoLite2-Country_20261201")
        .output()
        .expect("run tar");
    assert!(out.status.success(), "tar failed");
    out.stdout
}

async fn welcome_country(server: &TestServer, ip: &str) -> serde_json::Value {
    let (c, welcome) = TestClient::connect_as(server, ip).await;
    c.close().await;
    welcome["welcome"]["country"].clone()
}

#[tokio::test]
async fn countries_from_a_downloaded_database() {
    let dir = tempfile::tempdir().unwrap();
    let body = archive(dir.path());
    let app = axum::Router::new().route(
        "/GeoLite2-Country.tar.gz",
        axum::routing::get(move || {
            let body = body.clone();
            async move { body }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let talk = Talk::start(TALK_SECRET).await;
    let server = TestServer::builder()
        .talk(&talk)
        .extra(&format!(
            "\n[geoip]\nurl = http://127.0.0.1:{port}/GeoLite2-Country.tar.gz\n\n\
             [geoip-overrides]\n198.51.100.0/28 = DE\n"
        ))
        .start()
        .await;
    let loaded = tests::wait::eventually(Duration::from_secs(10), || async {
        (welcome_country(&server, "198.51.100.200").await == "FR").then_some(())
    })
    .await;
    assert!(loaded.is_some(), "database not used");
    assert_eq!(welcome_country(&server, "192.0.2.77").await, "BR");
    // The override comes first; unknown addresses have no country.
    assert_eq!(welcome_country(&server, "198.51.100.7").await, "DE");
    assert!(welcome_country(&server, "203.0.113.5").await.is_null());
}

/// A plain `.mmdb` from a `file://` URL.
#[tokio::test]
async fn countries_from_a_local_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("GeoLite2-Country.mmdb");
    std::fs::write(&path, database()).unwrap();
    let talk = Talk::start(TALK_SECRET).await;
    let server = TestServer::builder()
        .talk(&talk)
        .extra(&format!("\n[geoip]\nurl = file://{}\n", path.display()))
        .start()
        .await;
    let loaded = tests::wait::eventually(Duration::from_secs(10), || async {
        (welcome_country(&server, "198.51.100.1").await == "FR").then_some(())
    })
    .await;
    assert!(loaded.is_some(), "database not used");
}

/// SIGHUP re-reads `[geoip-overrides]` and `[app] trustedproxies` for new
/// connections.
#[tokio::test]
async fn overrides_and_trusted_proxies_reload() {
    let talk = Talk::start(TALK_SECRET).await;
    let server = TestServer::builder()
        .talk(&talk)
        .extra("\n[geoip-overrides]\n203.0.113.0/24 = DE\n")
        .start()
        .await;
    assert_eq!(welcome_country(&server, "203.0.113.5").await, "DE");
    server.reload(|c| c.replace("= DE", "= IT"));
    let changed = tests::wait::eventually(Duration::from_secs(5), || async {
        (welcome_country(&server, "203.0.113.5").await == "IT").then_some(())
    })
    .await;
    assert!(changed.is_some(), "override not reloaded");
    // Loopback no longer trusted: X-Real-IP is ignored, and loopback has
    // no country.
    server.reload(|c| format!("{c}\n[app]\ntrustedproxies = 192.0.2.0/24\n"));
    let untrusted = tests::wait::eventually(Duration::from_secs(5), || async {
        welcome_country(&server, "203.0.113.5")
            .await
            .is_null()
            .then_some(())
    })
    .await;
    assert!(untrusted.is_some(), "trusted proxies not reloaded");
}
