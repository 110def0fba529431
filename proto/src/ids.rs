//! Newtypes for the ids that travel on the wire. They serialize as plain
//! strings; the types keep a public id from being used where a resume id or a
//! Talk room session id is expected (facts 1.8, 5.6).

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_owned())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// The public session id: used for addressing and in events.
    PublicSessionId
);
string_id!(
    /// The private session id (`resumeid`), only ever given to its owner.
    PrivateSessionId
);
string_id!(
    /// The Nextcloud Talk session id a client sends in `room.sessionid`.
    RoomSessionId
);
string_id!(
    /// A Talk room token.
    RoomId
);
string_id!(
    /// The id of a configured backend (section name, `compat`, or etcd key).
    BackendId
);
