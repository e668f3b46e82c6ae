//! The `watch` request (docs/PROTOCOL.md section 5.7): instead of one
//! landmark, a stream of them. The server looks at the landmark every
//! period and pushes a `landmark` frame when it changes (a hang included:
//! the main thread's silence past the answer deadline is a change to
//! `fail`), and a heartbeat when it has been quiet for the heartbeat.
//!
//! A [`WatchRequest`] names the component and the client's wishes for the
//! period and the heartbeat; each frame of the stream is a
//! [`crate::LandmarkReply`] with [`Push`] saying why it was sent and the
//! period and heartbeat the server chose.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::LandmarkReply;

/// Payload of a `watch` request. An empty payload means `{}`: the whole
/// service, with the server's default period and heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WatchRequest {
    /// Component to watch; absent or empty means the whole service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// How often the server should look at the landmark, in milliseconds;
    /// the server keeps it within its bounds. Absent: the server's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_ms: Option<u64>,
    /// The longest the server may stay silent, in milliseconds; the server
    /// keeps it within its bounds. Absent: the server's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_ms: Option<u64>,
}

impl WatchRequest {
    /// The component asked for, treating `""` as "the whole service".
    pub fn component(&self) -> Option<&str> {
        self.component.as_deref().filter(|c| !c.is_empty())
    }

    /// The period asked for, if any.
    pub fn period(&self) -> Option<Duration> {
        self.period_ms.map(Duration::from_millis)
    }

    /// The heartbeat asked for, if any.
    pub fn heartbeat(&self) -> Option<Duration> {
        self.heartbeat_ms.map(Duration::from_millis)
    }
}

/// Why a frame of a `watch` stream was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Push {
    /// The stream's first frame: the landmark when the watch began.
    First,
    /// The landmark changed (`state`, `detail`, `weight`, `components` or
    /// `established`), a hang included.
    Change,
    /// Nothing changed for the heartbeat: the stream and the server live.
    Heartbeat,
}

impl Push {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Push::First => "first",
            Push::Change => "change",
            Push::Heartbeat => "heartbeat",
        }
    }
}

impl fmt::Display for Push {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `now` is a change from `before`, as a stream counts one
/// (section 5.7): a different `state`, `detail`, `weight`, `components` or
/// `established`; `fields` and the timings do not count.
pub fn changed(before: &LandmarkReply, now: &LandmarkReply) -> bool {
    before.landmark.state != now.landmark.state
        || before.landmark.detail != now.landmark.detail
        || before.landmark.weight != now.landmark.weight
        || before.landmark.components != now.landmark.components
        || before.established != now.established
}
