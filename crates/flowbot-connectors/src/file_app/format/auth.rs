//! How an app file signs in: the auth kinds, tokens, and a connection's rate limit.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{BodySpec, HttpMethod};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub requests: u32,
    /// A duration such as `1s`, `1m`.
    pub per: String,
}

impl RateLimit {
    pub fn window(&self) -> Option<std::time::Duration> {
        flowbot_core::model::parse_duration(&self.per)
    }
}

/// How every request signs in. Values are templates over `connection`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    #[default]
    None,
    /// A key in a header or in the query string.
    ApiKey {
        #[serde(rename = "in")]
        place: KeyPlace,
        name: String,
        value: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer { token: String },
    /// `Authorization: Basic base64(username:password)`.
    Basic { username: String, password: String },
    /// OAuth 2.0: a token from `token_url`, sent as `Authorization: Bearer`. With
    /// `authorization_code` the user connects through the app's approval page (PKCE) and the
    /// refresh token is kept in the connection (a rotated one is saved back); with
    /// `client_credentials` the client id and secret are enough.
    #[serde(rename = "oauth2")]
    OAuth2 {
        grant: Grant,
        /// The approval page (authorization code only); a template over `connection`.
        #[serde(default)]
        authorize_url: Option<String>,
        token_url: String,
        #[serde(default)]
        scopes: Vec<String>,
        client_id: String,
        #[serde(default)]
        client_secret: Option<String>,
        #[serde(default)]
        token: TokenRead,
    },
    /// A sign-in request that answers a token (many Japanese SaaS APIs): the token is kept
    /// until it expires (or a 401), then asked for again.
    TokenExchange {
        request: Box<SignIn>,
        #[serde(default)]
        token: TokenRead,
        /// How each request carries the token (a template over `token`); by default
        /// `Authorization: Bearer {{ token }}`.
        #[serde(default)]
        header: Option<HeaderTemplate>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    AuthorizationCode,
    ClientCredentials,
}

/// Where a token answer's parts are: templates over `response` (`status`, `headers`, `body`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRead {
    #[serde(default = "default_access_token")]
    pub access_token: String,
    /// Seconds the token lives; without it (or when it renders to null), one hour.
    #[serde(default = "default_expires_in")]
    pub expires_in: String,
    #[serde(default = "default_refresh_token")]
    pub refresh_token: String,
}

impl Default for TokenRead {
    fn default() -> Self {
        TokenRead {
            access_token: default_access_token(),
            expires_in: default_expires_in(),
            refresh_token: default_refresh_token(),
        }
    }
}

fn default_access_token() -> String {
    "{{ response.body.access_token }}".into()
}
fn default_expires_in() -> String {
    "{{ response.body.expires_in }}".into()
}
fn default_refresh_token() -> String {
    "{{ response.body.refresh_token }}".into()
}

/// The sign-in request of `token_exchange`: templates over `connection`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    #[serde(default = "post")]
    pub method: HttpMethod,
    /// A whole URL, or a path after the connection's base URL.
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<BodySpec>,
}

fn post() -> HttpMethod {
    HttpMethod::Post
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderTemplate {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyPlace {
    Header,
    Query,
}
