//! Single sign-on through the company's identity provider (OpenID Connect, authorization
//! code with PKCE). The `openidconnect` crate reads the discovery document and checks the
//! ID token — its signature against the provider's published keys (RS256 and the other
//! asymmetric algorithms; never `none` or a shared secret), issuer, audience, expiry and
//! the nonce this sign-in sent. A sign-in under way is kept in the store, so the callback
//! may reach any server, and is taken once: a replayed callback finds nothing.
//!
//! A member is found by their subject at the provider, else linked by a verified email, else
//! made on the spot when their email's domain is allowed (or when they accept an invitation
//! through the provider). A groups claim may map to roles; an owner's role is never
//! changed by it. Password sign-in can be kept for owners only (the break-glass account).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use flowbot_store::{Actor, Member, NewUser, PendingSso, Role};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IdToken, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
};
use serde::{Deserialize, Serialize};

use crate::auth;
use crate::AppState;

/// How an identity provider is used; from `flowbot serve`'s options.
#[derive(Clone)]
pub struct SsoConfig {
    /// The issuer URL; its `/.well-known/openid-configuration` is read.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// The claim holding the member's groups (`groups`, `roles`, …).
    pub groups_claim: String,
    /// A group at the provider → the role its members get (the highest wins).
    pub role_map: Vec<(String, Role)>,
    /// Email domains whose people become members on their first sign-in.
    pub allowed_domains: Vec<String>,
    /// The role of a member made on the spot when no group maps to one.
    pub default_role: Role,
    /// Password sign-in for owners only (the break-glass account); SSO for everyone else.
    pub owners_only_passwords: bool,
}

// The client secret never reaches a log.
impl std::fmt::Debug for SsoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("groups_claim", &self.groups_claim)
            .field("role_map", &self.role_map)
            .field("allowed_domains", &self.allowed_domains)
            .field("default_role", &self.default_role)
            .field("owners_only_passwords", &self.owners_only_passwords)
            .finish_non_exhaustive()
    }
}

/// The cookie that ties a sign-in to the browser that started it.
const BROWSER_COOKIE: &str = "flowbot_sso";

/// The provider's discovery document (with its keys), read again after this long.
const METADATA_TTL: Duration = Duration::from_secs(300);
/// The most a provider's answer may hold.
const MAX_ANSWER: usize = 1024 * 1024;

/// A configured provider, with its discovery document cached.
pub struct Sso {
    pub config: SsoConfig,
    http: reqwest::Client,
    metadata: Mutex<Option<(Instant, CoreProviderMetadata)>>,
}

/// Claims besides the standard ones: whatever the provider sends, for the groups claim.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Extra(HashMap<String, serde_json::Value>);
impl AdditionalClaims for Extra {}

type GroupsIdToken =
    IdToken<Extra, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

/// Why a sign-in through the provider was refused (said to the person, and recorded).
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("the identity provider cannot be reached or answered wrongly: {0}")]
    Provider(String),
    #[error("this sign-in link was used already or has expired; start again")]
    UnknownState,
    #[error("this sign-in was started in another browser; start again here")]
    OtherBrowser,
    #[error("the identity provider's answer did not check out: {0}")]
    BadToken(String),
    #[error("{0}")]
    NotAllowed(String),
    #[error(transparent)]
    Store(#[from] flowbot_store::StoreError),
}

type HttpFuture = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<openidconnect::HttpResponse, std::io::Error>>
            + Send,
    >,
>;

/// An HTTP request of the OpenID Connect client, made with reqwest: no redirects followed
/// (a redirect is a way into internal addresses), bounded in time and size.
async fn send(
    http: &reqwest::Client,
    req: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, std::io::Error> {
    let io = |e: reqwest::Error| std::io::Error::other(e.to_string());
    let (parts, body) = req.into_parts();
    let mut resp = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(io)?;
    let mut out = openidconnect::http::Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        out = out.header(k, v);
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(io)? {
        if bytes.len() + chunk.len() > MAX_ANSWER {
            return Err(std::io::Error::other("the answer is larger than 1 MiB"));
        }
        bytes.extend_from_slice(&chunk);
    }
    out.body(bytes).map_err(std::io::Error::other)
}

impl Sso {
    pub fn new(config: SsoConfig) -> Sso {
        Sso {
            config,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client builds"),
            metadata: Mutex::new(None),
        }
    }

    /// The client the OpenID Connect library calls: owned, its futures boxed and `Send`
    /// (so the handlers' futures are too).
    fn http_client(
        &self,
    ) -> impl Fn(openidconnect::HttpRequest) -> HttpFuture + Send + Sync + 'static {
        let http = self.http.clone();
        move |req| {
            let http = http.clone();
            Box::pin(async move { send(&http, req).await })
        }
    }

    async fn metadata(&self, fresh: bool) -> Result<CoreProviderMetadata, SsoError> {
        if !fresh {
            if let Some((at, m)) = self.metadata.lock().expect("metadata").as_ref() {
                if at.elapsed() < METADATA_TTL {
                    return Ok(m.clone());
                }
            }
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone())
            .map_err(|e| SsoError::Provider(format!("the issuer URL: {e}")))?;
        let http = self.http_client();
        let m = CoreProviderMetadata::discover_async(issuer, &http)
            .await
            .map_err(|e| SsoError::Provider(error_chain(&e)))?;
        *self.metadata.lock().expect("metadata") = Some((Instant::now(), m.clone()));
        Ok(m)
    }

    fn redirect_uri(base: &str) -> Result<RedirectUrl, SsoError> {
        RedirectUrl::new(format!("{}/auth/sso/callback", base.trim_end_matches('/')))
            .map_err(|e| SsoError::Provider(format!("the callback URL: {e}")))
    }

    /// Where to send the browser to sign in, after remembering this sign-in for the browser
    /// holding `browser` (the hash of a value in its cookie).
    pub async fn start(
        &self,
        s: &AppState,
        base: &str,
        return_to: String,
        invitation: Option<String>,
        browser: String,
    ) -> Result<String, SsoError> {
        let client = self.client(self.metadata(false).await?, base)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = auth::random_token();
        let nonce = auth::random_token();
        let (st, no) = (state.clone(), nonce.clone());
        let (url, _, _) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(st),
                move || Nonce::new(no),
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .url();
        s.store
            .sso_begin(
                &state,
                &PendingSso {
                    verifier: verifier.secret().clone(),
                    nonce,
                    return_to,
                    invitation,
                    browser,
                },
            )
            .await?;
        Ok(url.to_string())
    }

    /// The callback: the code exchanged, the ID token checked, the member found or made.
    /// Returns the member and where to go.
    pub async fn finish(
        &self,
        s: &AppState,
        base: &str,
        code: &str,
        state: &str,
        browser: Option<&str>,
        address: &str,
    ) -> Result<(flowbot_store::User, String), SsoError> {
        // Taken first, whatever happens next: a replayed callback finds nothing.
        let pending = s
            .store
            .sso_take(state)
            .await?
            .ok_or(SsoError::UnknownState)?;
        // Back in the browser that started it: nobody can finish their own sign-in in
        // someone else's browser.
        if !browser.is_some_and(|b| crate::same(&auth::token_hash(b), &pending.browser)) {
            return Err(SsoError::OtherBrowser);
        }
        let raw = self.exchange(base, code, &pending).await?;
        let claims = match self.verify(&raw, &pending, false).await {
            // The provider may have rotated its keys since its document was read.
            Err(SsoError::BadToken(_)) => self.verify(&raw, &pending, true).await,
            other => other,
        }?;
        let member = self.member(s, &claims, &pending, address).await?;
        Ok((member, pending.return_to))
    }

    fn client(
        &self,
        metadata: CoreProviderMetadata,
        base: &str,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        SsoError,
    > {
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(self.config.client_secret.clone())),
        )
        .set_redirect_uri(Self::redirect_uri(base)?))
    }

    /// The code exchanged (with the PKCE verifier) for the raw ID token.
    async fn exchange(
        &self,
        base: &str,
        code: &str,
        pending: &PendingSso,
    ) -> Result<String, SsoError> {
        let client = self.client(self.metadata(false).await?, base)?;
        let http = self.http_client();
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| SsoError::Provider(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
            .request_async(&http)
            .await
            .map_err(|e| SsoError::Provider(error_chain(&e)))?;
        use openidconnect::TokenResponse;
        Ok(tokens
            .id_token()
            .ok_or_else(|| SsoError::BadToken("no ID token came back".into()))?
            .to_string())
    }

    /// The ID token's signature, issuer, audience, expiry and nonce checked; what it says.
    async fn verify(
        &self,
        raw: &str,
        pending: &PendingSso,
        fresh: bool,
    ) -> Result<Claims, SsoError> {
        // The redirect URI plays no part in checking a token.
        let client = self.client(self.metadata(fresh).await?, "http://localhost")?;
        let token: GroupsIdToken = raw
            .parse()
            .map_err(|e| SsoError::BadToken(format!("the ID token cannot be read: {e}")))?;
        let verifier = client.id_token_verifier();
        let claims = token
            .claims(&verifier, &Nonce::new(pending.nonce.clone()))
            .map_err(|e| SsoError::BadToken(e.to_string()))?;
        let groups = match claims.additional_claims().0.get(&self.config.groups_claim) {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect(),
            Some(serde_json::Value::String(g)) => vec![g.clone()],
            _ => Vec::new(),
        };
        Ok(Claims {
            subject: claims.subject().to_string(),
            email: claims.email().map(|e| e.to_string()).unwrap_or_default(),
            email_verified: claims.email_verified() == Some(true),
            name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.to_string())
                .unwrap_or_default(),
            groups,
        })
    }

    /// The highest role the member's groups map to.
    fn mapped_role(&self, groups: &[String]) -> Option<Role> {
        let rank = |r: Role| match r {
            Role::Owner => 5,
            Role::Admin => 4,
            Role::Editor => 3,
            Role::Viewer => 2,
            Role::Operator => 1,
        };
        self.config
            .role_map
            .iter()
            .filter(|(g, _)| groups.contains(g))
            .map(|(_, r)| *r)
            .filter(|r| *r != Role::Owner)
            .max_by_key(|r| rank(*r))
    }

    async fn member(
        &self,
        s: &AppState,
        c: &Claims,
        pending: &PendingSso,
        address: &str,
    ) -> Result<flowbot_store::User, SsoError> {
        let store = &s.store;
        let actor = Actor::new("sso", address);
        let found: Option<Member> = match store.member_by_subject(&c.subject).await? {
            Some(m) => Some(m),
            // An existing member is linked by email only when the provider vouches for it.
            None if c.email_verified && !c.email.is_empty() => {
                match store.member_by_email(&c.email).await? {
                    Some(m) => {
                        store
                            .link_subject(&m.user.id, &c.subject, actor.clone())
                            .await?;
                        Some(m)
                    }
                    None => None,
                }
            }
            None => None,
        };
        let member = match found {
            Some(m) if m.disabled => {
                return Err(SsoError::NotAllowed(format!(
                    "`{}` is disabled in flowbot; ask an owner or admin",
                    m.user.username
                )))
            }
            Some(m) => m.user,
            None => self.make_member(s, c, pending, address).await?,
        };
        // The provider's groups decide the role at every sign-in (never an owner's).
        match self.mapped_role(&c.groups) {
            Some(role) if member.role != role && member.role != Role::Owner => {
                Ok(store.set_role(&member.id, role, actor).await?)
            }
            _ => Ok(member),
        }
    }

    /// A member made at their first sign-in: through an invitation, or by an allowed
    /// email domain.
    async fn make_member(
        &self,
        s: &AppState,
        c: &Claims,
        pending: &PendingSso,
        address: &str,
    ) -> Result<flowbot_store::User, SsoError> {
        if !c.email_verified || c.email.is_empty() {
            return Err(SsoError::NotAllowed(
                "the identity provider did not vouch for an email address".into(),
            ));
        }
        let username = free_username(s, &c.email).await?;
        let new = NewUser {
            display_name: if c.name.is_empty() {
                username.clone()
            } else {
                c.name.chars().take(100).collect()
            },
            email: c.email.clone(),
            // The provider vouched for it (checked above).
            email_verified: true,
            oidc_subject: Some(c.subject.clone()),
            // Never signed in with: only the provider lets them in.
            ..NewUser::basic(&username, "sso-only", self.config.default_role)
        };
        if let Some(hash) = &pending.invitation {
            let invited = s.store.invitation(hash).await?.ok_or_else(|| {
                SsoError::NotAllowed("the invitation is used, expired or revoked".into())
            })?;
            if !invited.email.eq_ignore_ascii_case(&c.email) {
                return Err(SsoError::NotAllowed(format!(
                    "the invitation is for {}, but the identity provider signed in {}",
                    invited.email, c.email
                )));
            }
            return Ok(s.store.accept_invitation(hash, new, address).await?);
        }
        let domain = c
            .email
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        if !self
            .config
            .allowed_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(&domain))
        {
            return Err(SsoError::NotAllowed(format!(
                "{} is not a member of this flowbot; ask an owner or admin for an invitation",
                c.email
            )));
        }
        let new = NewUser {
            role: self
                .mapped_role(&c.groups)
                .unwrap_or(self.config.default_role),
            ..new
        };
        Ok(s.store.create_user(new, Actor::new("sso", address)).await?)
    }
}

/// What the checked ID token says of the person.
struct Claims {
    subject: String,
    email: String,
    email_verified: bool,
    name: String,
    groups: Vec<String>,
}

/// The local part of the email, made free: `hanako`, else `hanako-2`, …
async fn free_username(s: &AppState, email: &str) -> Result<String, SsoError> {
    let local: String = email
        .split('@')
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(48)
        .collect();
    let base = if local.is_empty() {
        "member".to_string()
    } else {
        local
    };
    for n in 1..100 {
        let name = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        if s.store.member(&name).await.is_err() {
            return Ok(name);
        }
    }
    Err(SsoError::NotAllowed(
        "no free user name could be made from the email".into(),
    ))
}

/// An error and its causes, on one line (the provider's own words are in the causes).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[derive(Deserialize, Default)]
pub(crate) struct StartQuery {
    /// The page to land on (a path on this server).
    next: Option<String>,
    /// An invitation link's token, accepted through the provider.
    invite: Option<String>,
}

/// Only a path on this server: never another site (an open redirect; browsers drop tabs
/// and newlines from a `Location`, so `/\t/evil` would become `//evil`).
fn local_path(p: Option<&str>) -> String {
    match p {
        Some(p) if crate::api::is_local_path(p) => p.to_string(),
        _ => "/".into(),
    }
}

/// `GET /auth/sso`: off to the identity provider.
pub(crate) async fn start(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<StartQuery>,
) -> Response {
    let Some(sso) = s.sso.clone() else {
        return crate::ui::sso_refused(&headers, "single sign-on is not configured");
    };
    let base = crate::ui::public_url(&s).await;
    let invitation = q
        .invite
        .as_deref()
        .filter(|t| t.len() <= 128)
        .map(auth::token_hash);
    let browser = auth::random_token();
    match sso
        .start(
            &s,
            &base,
            local_path(q.next.as_deref()),
            invitation,
            auth::token_hash(&browser),
        )
        .await
    {
        Ok(url) => {
            // Only for the way back from the provider (a top-level GET: Lax sends it).
            let cookie = format!(
                "{BROWSER_COOKIE}={browser}; Path=/auth/sso; HttpOnly; SameSite=Lax; Max-Age=600"
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to(&url)).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "single sign-on could not start");
            crate::ui::sso_refused(&headers, &e.to_string())
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /auth/sso/callback`: back from the identity provider.
pub(crate) async fn callback(
    State(s): State<AppState>,
    headers: HeaderMap,
    info: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let address = auth::peer(info.map(|Extension(i)| i));
    let Some(sso) = s.sso.clone() else {
        return crate::ui::sso_refused(&headers, "single sign-on is not configured");
    };
    let refuse = |why: String| {
        let (s, headers, address) = (s.clone(), headers.clone(), address.clone());
        async move {
            // Recorded without the code or any token: only why.
            let _ = s
                .store
                .record_audit(
                    Actor::new("sso", address),
                    "session.sso_refused",
                    "",
                    serde_json::json!({ "reason": why }),
                )
                .await;
            crate::ui::sso_refused(&headers, &why)
        }
    };
    if let Some(err) = q.error {
        let why = format!(
            "the identity provider said {}: {}",
            err.chars().take(100).collect::<String>(),
            q.error_description
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect::<String>()
        );
        return refuse(why).await;
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return refuse("the identity provider sent no code".into()).await;
    };
    if code.len() > 4096 || state.len() > 256 {
        return refuse("the identity provider's answer is too long".into()).await;
    }
    let base = crate::ui::public_url(&s).await;
    let browser = auth::cookie(&headers, BROWSER_COOKIE);
    match sso
        .finish(&s, &base, &code, &state, browser, &address)
        .await
    {
        Ok((user, next)) => match crate::api::session::signed_in(&s, user, &address).await {
            Ok((cookie, _)) => {
                ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
            }
            Err(e) => e.into_response(),
        },
        Err(e) => {
            tracing::info!(error = %e, address = %address, "single sign-on refused");
            refuse(e.to_string()).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_landed_on() {
        assert_eq!(local_path(Some("/runs?x=1")), "/runs?x=1");
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil",
            "",
            "/\t/evil.example",
            "/\n/evil.example",
        ] {
            assert_eq!(local_path(Some(bad)), "/", "{bad}");
        }
        assert_eq!(local_path(None), "/");
    }
}
