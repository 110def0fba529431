//! The test world most end-to-end tests start from: a Talk emulator with
//! users alice and bob, some rooms, optionally a real Janus, and one
//! signaling server using them. Tests with other shapes (several nodes,
//! proxies, federation) build on the same parts.

use crate::janus::{Janus, JanusOptions};
use crate::server::{TestServer, TestServerBuilder, TALK_SECRET};
use crate::talk::{Room, Talk, User};

pub struct World {
    pub talk: Talk,
    pub server: TestServer,
    pub alice: User,
    pub bob: User,
    /// Set with [`WorldBuilder::janus`].
    pub janus: Option<Janus>,
}

pub struct WorldBuilder {
    rooms: Vec<(String, Room)>,
    janus: Option<(JanusOptions, String)>,
    server: Box<dyn FnOnce(TestServerBuilder) -> TestServerBuilder>,
}

impl World {
    pub fn builder() -> WorldBuilder {
        WorldBuilder {
            rooms: Vec::new(),
            janus: None,
            server: Box::new(|b| b),
        }
    }

    /// The Janus of a world built with one.
    pub fn janus(&self) -> &Janus {
        self.janus.as_ref().expect("world built with .janus()")
    }
}

impl WorldBuilder {
    /// An open room; the title of `room1`/`room2` is "Room one"/"Room two".
    pub fn room(self, token: &str) -> Self {
        let title = match token {
            "room1" => "Room one",
            "room2" => "Room two",
            other => other,
        };
        self.room_with(token, Room::open(title))
    }

    pub fn room_with(mut self, token: &str, room: Room) -> Self {
        self.rooms.push((token.to_owned(), room));
        self
    }

    /// A real Janus the server uses as `[mcu] type = janus`; `mcu_extra`
    /// is appended to that section.
    pub fn janus(mut self, options: JanusOptions, mcu_extra: &str) -> Self {
        self.janus = Some((options, mcu_extra.to_owned()));
        self
    }

    /// Further settings of the server.
    pub fn server(
        mut self,
        f: impl FnOnce(TestServerBuilder) -> TestServerBuilder + 'static,
    ) -> Self {
        self.server = Box::new(f);
        self
    }

    pub async fn start(self) -> World {
        let janus = match &self.janus {
            Some((options, _)) => Some(Janus::start(options.clone()).await),
            None => None,
        };
        let talk = Talk::start(TALK_SECRET).await;
        let alice = talk.add_user("alice", "Alice");
        let bob = talk.add_user("bob", "Bob");
        for (token, room) in self.rooms {
            talk.add_room(&token, room);
        }
        let mut builder = (self.server)(TestServer::builder().talk(&talk));
        if let (Some(j), Some((_, extra))) = (&janus, &self.janus) {
            builder = builder.extra(&format!(
                "\n[mcu]\ntype = janus\nurl = {}\ntimeout = 2\n{extra}",
                j.url
            ));
        }
        let server = builder.start().await;
        World {
            talk,
            server,
            alice,
            bob,
            janus,
        }
    }
}
