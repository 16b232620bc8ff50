//! The `high-availability.zookeeper.client.*` options as a value: the ZooKeeper session's
//! timings. The session that runs on them is `external::ha::client::session`.

use std::time::Duration;

/// The `high-availability.zookeeper.client.*` options the client uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionConfig {
    /// `session-timeout`, default 60 s.
    pub session_timeout: Duration,
    /// `retry-wait`, default 5 s: the interval between re-sends of an unanswered request.
    pub retry_wait: Duration,
    /// `tolerate-suspended-connections`, default false.
    pub tolerate_suspended_connections: bool,
}

impl Default for SessionConfig {
    fn default() -> SessionConfig {
        SessionConfig {
            session_timeout: Duration::from_secs(60),
            retry_wait: Duration::from_secs(5),
            tolerate_suspended_connections: false,
        }
    }
}

impl SessionConfig {
    /// Nothing answered for this long (after the request was sent): `Suspended`.
    pub fn suspend_after(&self) -> Duration {
        self.session_timeout * 2 / 3
    }

    /// The ping interval while connected (ZooKeeper pings at half the read timeout).
    pub fn ping_interval(&self) -> Duration {
        self.session_timeout / 3
    }
}
