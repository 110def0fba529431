//! The files a configuration names (keys, certificates), checked the way
//! start-up will read them, so `--check-config` finds what would stop the
//! server later.

use std::path::Path;

use super::{Config, ConfigError, McuType};

impl Config {
    /// Every named file that cannot be read or parsed, as errors naming
    /// section and key.
    pub fn check_files(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut readable = |section: &str, key: &str, path: Option<&Path>| {
            if let Some(p) = path {
                if let Err(e) = std::fs::metadata(p).and_then(|_| std::fs::read(p).map(|_| ())) {
                    errors.push(ConfigError::invalid(
                        section,
                        key,
                        format!("{}: {e}", p.display()),
                    ));
                }
            }
        };
        if !self.https.listen.is_empty() {
            readable("https", "certificate", self.https.certificate.as_deref());
            readable("https", "key", self.https.key.as_deref());
        }
        let g = &self.grpc;
        readable("grpc", "servercertificate", g.server_certificate.as_deref());
        readable("grpc", "serverkey", g.server_key.as_deref());
        readable("grpc", "serverca", g.server_ca.as_deref());
        readable("grpc", "clientcertificate", g.client_certificate.as_deref());
        readable("grpc", "clientkey", g.client_key.as_deref());
        readable("grpc", "clientca", g.client_ca.as_deref());
        let e = &self.etcd;
        readable("etcd", "clientkey", e.client_key.as_deref());
        readable("etcd", "clientcert", e.client_cert.as_deref());
        readable("etcd", "cacert", e.ca_cert.as_deref());
        if self.mcu.kind == Some(McuType::Proxy) {
            match &self.mcu.token_key {
                None => errors.push(ConfigError::invalid(
                    "mcu",
                    "token_key",
                    "required for type = proxy",
                )),
                Some(p) => {
                    if let Err(e) = proto::proxy_token::read_private_key(p) {
                        errors.push(ConfigError::invalid(
                            "mcu",
                            "token_key",
                            format!("{}: {e}", p.display()),
                        ));
                    }
                }
            }
            if self.mcu.token_id.is_none() {
                errors.push(ConfigError::invalid(
                    "mcu",
                    "token_id",
                    "required for type = proxy",
                ));
            }
        }
        errors
    }
}
