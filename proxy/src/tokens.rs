//! Public keys of the signaling servers allowed to use this proxy
//! (cluster facts 6.3, 3.3):
//! - static: `[tokens] <token id> = <RSA public key PEM file>`, read at
//!   start (invalid entries are fatal) and on SIGHUP (skipped);
//! - etcd: `[app] tokentype = etcd`, raw PEM values at the keys
//!   `[tokens] keyformat` names (`%s` = token id, several patterns tried
//!   in order), read on every hello; parsed keys are cached by etcd key
//!   and parsed again when the bytes change.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use config_source::EtcdConfig;
use parking_lot::{Mutex, RwLock};
use proto::hello_token::TokenKey;

#[derive(Debug, thiserror::Error)]
pub enum TokenStoreError {
    #[error("[tokens] {id}: {path}: {message}")]
    Key {
        id: String,
        path: String,
        message: String,
    },
}

struct EtcdSource {
    config: EtcdConfig,
    formats: Vec<String>,
    /// The connected client; cloned out (a cheap handle), never locked
    /// across a request, so hellos do not wait for each other.
    client: Mutex<Option<config_source::etcd::Client>>,
    /// etcd key -> (bytes, parsed key).
    cache: Mutex<HashMap<String, (Vec<u8>, TokenKey)>>,
}

impl EtcdSource {
    /// The connected client, connecting first if there is none.
    async fn client(&self) -> Result<config_source::etcd::Client, config_source::etcd::EtcdError> {
        if let Some(c) = self.client.lock().clone() {
            return Ok(c);
        }
        let c = config_source::etcd::connect(&self.config).await?;
        *self.client.lock() = Some(c.clone());
        Ok(c)
    }
}

enum Source {
    Static(RwLock<HashMap<String, TokenKey>>),
    Etcd(Box<EtcdSource>),
}

pub struct TokenStore {
    source: Source,
}

fn parse_rsa(pem: &[u8]) -> Result<TokenKey, String> {
    let text = std::str::from_utf8(pem).map_err(|e| e.to_string())?;
    match TokenKey::parse(text).map_err(|e| e.to_string())? {
        key @ TokenKey::Rsa(_) => Ok(key),
        _ => Err("not an RSA public key".into()),
    }
}

fn read_key(id: &str, path: &PathBuf) -> Result<TokenKey, TokenStoreError> {
    let fail = |message: String| TokenStoreError::Key {
        id: id.to_owned(),
        path: path.display().to_string(),
        message,
    };
    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    parse_rsa(&pem).map_err(fail)
}

/// `--check-config`: every `[tokens]` key file that cannot be used.
pub fn check_static_keys(entries: &[(String, PathBuf)]) -> Vec<config_source::ConfigError> {
    entries
        .iter()
        .filter_map(|(id, path)| {
            read_key(id, path)
                .err()
                .map(|e| config_source::ConfigError::invalid("tokens", id, e.to_string()))
        })
        .collect()
}

impl TokenStore {
    /// Static keys; any bad entry is an error.
    pub fn load(entries: &[(String, PathBuf)]) -> Result<TokenStore, TokenStoreError> {
        let mut keys = HashMap::new();
        for (id, path) in entries {
            keys.insert(id.clone(), read_key(id, path)?);
        }
        Ok(TokenStore {
            source: Source::Static(RwLock::new(keys)),
        })
    }

    /// Keys looked up in etcd.
    pub fn etcd(config: EtcdConfig, formats: Vec<String>) -> TokenStore {
        TokenStore {
            source: Source::Etcd(Box::new(EtcdSource {
                config,
                formats,
                client: Mutex::new(None),
                cache: Mutex::default(),
            })),
        }
    }

    /// Replaces static keys (SIGHUP); bad entries are skipped.
    pub fn reload(&self, entries: &[(String, PathBuf)]) {
        let Source::Static(current) = &self.source else {
            return;
        };
        let mut keys = HashMap::new();
        for (id, path) in entries {
            match read_key(id, path) {
                Ok(k) => {
                    keys.insert(id.clone(), k);
                }
                Err(e) => tracing::warn!(error = %e, "token key skipped"),
            }
        }
        tracing::info!(count = keys.len(), "token keys reloaded");
        *current.write() = keys;
    }

    /// `None` for keys from files; for etcd whether it answers now
    /// (connecting first if needed).
    pub async fn etcd_reachable(&self) -> Option<Result<(), String>> {
        let Source::Etcd(etcd) = &self.source else {
            return None;
        };
        let c = match etcd.client().await {
            Ok(c) => c,
            Err(e) => return Some(Err(e.to_string())),
        };
        Some(
            match tokio::time::timeout(Duration::from_secs(1), c.status()).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => {
                    *etcd.client.lock() = None;
                    Err(e.to_string())
                }
                Err(_) => Err("no answer within 1 s".into()),
            },
        )
    }

    /// The key of token id `id`, if any.
    pub async fn get(&self, id: &str) -> Option<TokenKey> {
        match &self.source {
            Source::Static(keys) => keys.read().get(id).cloned(),
            Source::Etcd(etcd) => {
                let EtcdSource {
                    formats,
                    client,
                    cache,
                    ..
                } = etcd.as_ref();
                let c = match etcd.client().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "etcd for token keys unavailable");
                        return None;
                    }
                };
                for format in formats {
                    let key = format.replace("%s", id);
                    let got = tokio::time::timeout(Duration::from_secs(1), c.get(&key)).await;
                    let value = match got {
                        Ok(Ok(value)) => value,
                        Ok(Err(e)) => {
                            tracing::warn!(key, error = %e, "reading token key from etcd failed");
                            *client.lock() = None;
                            return None;
                        }
                        Err(_) => {
                            tracing::warn!(key, "reading token key from etcd timed out");
                            return None;
                        }
                    };
                    let Some(bytes) = value else { continue };
                    let mut cache = cache.lock();
                    if let Some((b, k)) = cache.get(&key) {
                        if *b == bytes {
                            return Some(k.clone());
                        }
                    }
                    match parse_rsa(&bytes) {
                        Ok(k) => {
                            cache.insert(key, (bytes, k.clone()));
                            return Some(k);
                        }
                        Err(e) => {
                            tracing::warn!(key, error = %e, "invalid token key in etcd");
                            return None;
                        }
                    }
                }
                None
            }
        }
    }
}

/// Seconds since the epoch, for issuing and checking tokens.
pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
