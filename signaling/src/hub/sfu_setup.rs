//! The SFU `[mcu]` names, built when the hub is.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::HubSetupError;
use crate::config::Config;

/// The SFU `[mcu]` asks for; it connects in the background.
type ConfiguredSfu = (
    Option<Arc<dyn sfu_bridge::sfu::Sfu>>,
    Option<sfu_bridge::proxy::ProxySfu>,
);

pub(super) fn sfu_from_config(
    config: &Config,
    shutdown: &CancellationToken,
) -> Result<ConfiguredSfu, HubSetupError> {
    use crate::config::McuType;
    let mcu = &config.mcu;
    match mcu.kind {
        Some(McuType::Janus) => {
            let Some(url) = mcu.urls.first().filter(|u| !u.is_empty()) else {
                return Err(HubSetupError::Sfu("type = janus needs url".into()));
            };
            let janus = sfu_bridge::janus::JanusSfu::start(
                sfu_bridge::janus::JanusConfig {
                    url: url.clone(),
                    timeout: mcu.timeout,
                    max_stream_bitrate: mcu.max_stream_bitrate,
                    max_screen_bitrate: mcu.max_screen_bitrate,
                },
                shutdown.child_token(),
            );
            Ok((Some(Arc::new(janus)), None))
        }
        Some(McuType::Proxy) => {
            let (Some(token_id), Some(key_file)) = (&mcu.token_id, &mcu.token_key) else {
                return Err(HubSetupError::Sfu(
                    "type = proxy needs token_id and token_key".into(),
                ));
            };
            let key = proto::proxy_token::read_private_key(key_file).map_err(|e| {
                HubSetupError::Sfu(format!("token_key {}: {e}", key_file.display()))
            })?;
            let tls = transport::tls::client_config(mcu.skip_verify)
                .map_err(|e| HubSetupError::Sfu(format!("TLS for proxies: {e}")))?;
            if mcu.skip_verify {
                tracing::warn!("[mcu] skipverify: certificates of proxies are not checked");
            }
            let sfu = sfu_bridge::proxy::ProxySfu::start(
                sfu_bridge::proxy::ProxySfuConfig {
                    // Set by `ProxyDiscovery` once running.
                    urls: Vec::new(),
                    token_id: token_id.clone(),
                    token_key: key,
                    timeout: mcu.proxy_timeout,
                    publisher_wait: mcu.timeout,
                    max_stream_bitrate: mcu.max_stream_bitrate,
                    max_screen_bitrate: mcu.max_screen_bitrate,
                    continent_overrides: config.geoip.continent_overrides.clone(),
                    tls,
                },
                shutdown.child_token(),
            );
            Ok((Some(Arc::new(sfu.clone())), Some(sfu)))
        }
        None => Ok((None, None)),
    }
}
