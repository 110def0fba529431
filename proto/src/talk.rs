//! The Nextcloud backend API in both directions (facts 2, 3).
//!
//! - [`ocs`]: the OCS envelope every Talk reply is wrapped in.
//! - [`request`]: requests the signaling server posts to Talk (auth, room,
//!   ping, session) and Talk's replies.
//! - [`notify`]: notifications Talk posts to `/api/v1/room/{roomid}`.
//! - [`capabilities`]: the parts of `/ocs/v2.php/cloud/capabilities` we use.

pub mod capabilities;
pub mod notify;
pub mod ocs;
pub mod request;

/// Path of the signaling backend below a Nextcloud base URL (facts 2.1).
pub const BACKEND_PATH_V1: &str = "ocs/v2.php/apps/spreed/api/v1/signaling/backend";
/// The same path when Talk advertises `signaling-v3`.
pub const BACKEND_PATH_V3: &str = "ocs/v2.php/apps/spreed/api/v3/signaling/backend";
/// Path of the capabilities below a Nextcloud base URL (facts 2.6).
pub const CAPABILITIES_PATH: &str = "ocs/v2.php/cloud/capabilities";
