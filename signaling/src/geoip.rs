//! Countries of client addresses from a MaxMind GeoIP2/GeoLite2 country
//! database (cluster facts 6.9): downloaded from `[geoip] url` (or
//! MaxMind's URL for `[geoip] license`), `.mmdb` or `.tar.gz`, or read
//! from a `file://` path; refreshed daily. `[geoip-overrides]` come first
//! and are applied by the hub.

use std::io::Read;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;

use crate::config::GeoIpConfig;

const REFRESH: Duration = Duration::from_secs(24 * 60 * 60);
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(5 * 60);
/// Larger downloads are refused (GeoLite2-Country is about 10 MB).
const MAX_SIZE: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum GeoIpError {
    #[error("download failed: {0}")]
    Download(String),
    #[error("could not read {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("no .mmdb file in the archive")]
    NotInArchive,
    #[error("invalid archive: {0}")]
    Archive(std::io::Error),
    #[error("invalid database: {0}")]
    Database(#[from] maxminddb::MaxMindDbError),
    #[error("database larger than {MAX_SIZE} bytes")]
    TooLarge,
}

/// The database, once loaded.
#[derive(Default)]
pub struct GeoIp {
    reader: RwLock<Option<Arc<maxminddb::Reader<Vec<u8>>>>>,
}

impl GeoIp {
    /// The ISO country code of `ip`, if the database has one.
    pub fn country(&self, ip: IpAddr) -> Option<String> {
        let reader = self.reader.read().clone()?;
        let found: Option<maxminddb::geoip2::Country<'_>> = reader.lookup(ip).ok()?;
        found?.country?.iso_code.map(|c| c.to_ascii_uppercase())
    }

    pub fn is_loaded(&self) -> bool {
        self.reader.read().is_some()
    }

    /// Loads from `url` now and then every day until `stop`; failed
    /// loads are retried from one second up to five minutes apart.
    pub async fn run(self: Arc<Self>, url: String, stop: CancellationToken) {
        let mut retry = RETRY_MIN;
        loop {
            let wait = match load(&url).await {
                Ok(reader) => {
                    tracing::info!(url = redact(&url), "GeoIP database loaded");
                    *self.reader.write() = Some(Arc::new(reader));
                    retry = RETRY_MIN;
                    REFRESH
                }
                Err(e) => {
                    tracing::warn!(url = redact(&url), error = %e, retry_in = ?retry, "GeoIP database not loaded");
                    let wait = retry;
                    retry = (retry * 2).min(RETRY_MAX);
                    wait
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Where the database comes from: `[geoip] url`, else MaxMind's download
/// for `[geoip] license`.
pub fn source(config: &GeoIpConfig) -> Option<String> {
    if let Some(url) = &config.url {
        return Some(url.clone());
    }
    config.license.as_ref().filter(|l| !l.is_empty()).map(|l| {
        format!(
            "https://download.maxmind.com/app/geoip_download?edition_id=GeoLite2-Country&license_key={}&suffix=tar.gz",
            l.expose()
        )
    })
}

/// The license key is a secret: keep it out of logs.
fn redact(url: &str) -> String {
    match url.split_once("license_key=") {
        Some((head, tail)) => {
            let rest = tail.split_once('&').map(|(_, r)| r).unwrap_or("");
            format!("{head}license_key=***&{rest}")
        }
        None => url.to_owned(),
    }
}

async fn load(url: &str) -> Result<maxminddb::Reader<Vec<u8>>, GeoIpError> {
    let bytes = match url.strip_prefix("file://") {
        Some(path) => tokio::fs::read(path)
            .await
            .map_err(|source| GeoIpError::File {
                path: path.to_owned(),
                source,
            })?,
        None => download(url).await?,
    };
    let db = if is_gzip(&bytes) {
        tokio::task::spawn_blocking(move || mmdb_from_tar_gz(&bytes))
            .await
            .map_err(|e| GeoIpError::Download(e.to_string()))??
    } else {
        bytes
    };
    Ok(maxminddb::Reader::from_source(db)?)
}

async fn download(url: &str) -> Result<Vec<u8>, GeoIpError> {
    let err = |e: reqwest::Error| GeoIpError::Download(e.without_url().to_string());
    let tls =
        transport::tls::client_config(false).map_err(|e| GeoIpError::Download(e.to_string()))?;
    let resp = reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .build()
        .map_err(err)?
        .get(url)
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .map_err(err)?;
    if !resp.status().is_success() {
        return Err(GeoIpError::Download(format!("status {}", resp.status())));
    }
    if resp.content_length().is_some_and(|l| l > MAX_SIZE as u64) {
        return Err(GeoIpError::TooLarge);
    }
    let body = resp.bytes().await.map_err(err)?;
    if body.len() > MAX_SIZE {
        return Err(GeoIpError::TooLarge);
    }
    Ok(body.to_vec())
}

fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// The first `*.mmdb` file of a `.tar.gz` (MaxMind's archives hold one in
/// a dated directory).
fn mmdb_from_tar_gz(bytes: &[u8]) -> Result<Vec<u8>, GeoIpError> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    for entry in archive.entries().map_err(GeoIpError::Archive)? {
        let entry = entry.map_err(GeoIpError::Archive)?;
        let is_mmdb = entry
            .path()
            .ok()
            .is_some_and(|p| p.extension().is_some_and(|e| e == "mmdb"));
        if !is_mmdb {
            continue;
        }
        if entry.size() > MAX_SIZE as u64 {
            return Err(GeoIpError::TooLarge);
        }
        let mut db = Vec::new();
        entry
            .take(MAX_SIZE as u64)
            .read_to_end(&mut db)
            .map_err(GeoIpError::Archive)?;
        return Ok(db);
    }
    Err(GeoIpError::NotInArchive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        let mut c = GeoIpConfig {
            license: Some(crate::config::Secret::new("secret")),
            url: None,
            overrides: Vec::new(),
            continent_overrides: Vec::new(),
        };
        let url = source(&c).unwrap();
        assert!(url.contains("edition_id=GeoLite2-Country&license_key=secret"));
        assert!(!redact(&url).contains("secret"));
        c.url = Some("file:///var/lib/GeoLite2-Country.mmdb".into());
        assert_eq!(
            source(&c).as_deref(),
            Some("file:///var/lib/GeoLite2-Country.mmdb")
        );
        c.url = None;
        c.license = None;
        assert_eq!(source(&c), None);
    }

    #[test]
    fn archives_without_database_are_refused() {
        assert!(matches!(
            mmdb_from_tar_gz(&[0x1f, 0x8b, 0, 0]),
            Err(GeoIpError::Archive(_) | GeoIpError::NotInArchive)
        ));
    }
}
