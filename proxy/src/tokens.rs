//! Public keys of the signaling servers allowed to use this proxy:
//! `[tokens] <token id> = <RSA public key PEM file>` (cluster facts 6.3).
//! Keys are read at start (invalid entries are fatal) and on SIGHUP
//! (invalid entries are skipped with a warning).

use std::collections::HashMap;
use std::path::PathBuf;

use parking_lot::RwLock;
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

#[derive(Default)]
pub struct TokenStore {
    keys: RwLock<HashMap<String, TokenKey>>,
}

fn read_key(id: &str, path: &PathBuf) -> Result<TokenKey, TokenStoreError> {
    let fail = |message: String| TokenStoreError::Key {
        id: id.to_owned(),
        path: path.display().to_string(),
        message,
    };
    let pem = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    match TokenKey::parse(&pem).map_err(|e| fail(e.to_string()))? {
        key @ TokenKey::Rsa(_) => Ok(key),
        _ => Err(fail("not an RSA public key".into())),
    }
}

impl TokenStore {
    /// Loads every key; any bad entry is an error.
    pub fn load(entries: &[(String, PathBuf)]) -> Result<TokenStore, TokenStoreError> {
        let mut keys = HashMap::new();
        for (id, path) in entries {
            keys.insert(id.clone(), read_key(id, path)?);
        }
        Ok(TokenStore {
            keys: RwLock::new(keys),
        })
    }

    /// Replaces the keys; bad entries are skipped.
    pub fn reload(&self, entries: &[(String, PathBuf)]) {
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
        *self.keys.write() = keys;
    }

    pub fn get(&self, id: &str) -> Option<TokenKey> {
        self.keys.read().get(id).cloned()
    }
}
