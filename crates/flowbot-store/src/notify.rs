//! The failure-notification settings: the channels (email, Slack, Chatwork connections)
//! and the public address links point at. Sending is the engine's (`flowbot_engine::notify`).

use serde::{Deserialize, Serialize};

use crate::{Result, Store};

/// The setting key of the channel list.
pub const NOTIFICATIONS: &str = "notifications";
/// The setting key of the address users reach the server at (for links).
pub const PUBLIC_URL: &str = "public_url";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Notifications {
    pub channels: Vec<Channel>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Channel {
    /// `email`, `slack` or `chatwork`.
    pub app: String,
    pub connection_id: String,
    /// Email addresses (comma-separated), for email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The room, for Chatwork.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<String>,
}

impl Store {
    pub async fn notifications(&self) -> Result<Notifications> {
        Ok(self
            .setting(NOTIFICATIONS)
            .await?
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default())
    }
}
