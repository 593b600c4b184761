//! The team's pages: members and invitations (owner, admin), the audit log (owner,
//! admin), your own account (everyone), and accepting an invitation (anyone with a link).

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use flowbot_store::Role;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{lang, page, render, texts, LangQuery, Page};
use crate::api::AuditQuery;
use crate::auth;
use crate::AppState;

/// Entries the audit page shows at once.
const AUDIT_PAGE: i64 = 100;

fn role_name(t: &std::collections::HashMap<&'static str, &'static str>, r: Role) -> String {
    t.get(format!("role_{}", r.as_str()).as_str())
        .copied()
        .unwrap_or(r.as_str())
        .to_string()
}

fn roles(
    t: &std::collections::HashMap<&'static str, &'static str>,
    with_owner: bool,
) -> Vec<Value> {
    Role::ALL
        .into_iter()
        .filter(|r| with_owner || *r != Role::Owner)
        .map(|r| json!({ "id": r.as_str(), "name": role_name(t, r) }))
        .collect()
}

pub(super) async fn members(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let p = match page(&s, &headers, &q).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let t = texts(p.lang);
    let my_id = p.member.as_ref().map(|m| m.id.clone()).unwrap_or_default();
    let list: Vec<Value> = s
        .store
        .members()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            // Only an owner changes an owner; nobody changes themselves here.
            let editable = m.user.id != my_id && (m.user.role != Role::Owner || p.can(crate::routes::Perm::Owner));
            json!({
                "id": m.user.id, "username": m.user.username, "display_name": m.user.display_name,
                "email": m.user.email, "role": m.user.role.as_str(), "role_name": role_name(&t, m.user.role),
                "disabled": m.disabled, "since": p.time(m.created_at), "editable": editable,
                "me": m.user.id == my_id,
            })
        })
        .collect();
    let invitations: Vec<Value> = s
        .store
        .invitations()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|i| {
            json!({ "id": i.id, "email": i.email, "role_name": role_name(&t, i.role),
                    "invited_by": i.invited_by, "expires": p.time(i.expires_at) })
        })
        .collect();
    render(
        &p,
        "members.html",
        t["members"],
        "members",
        json!({ "members": list, "invitations": invitations, "roles": roles(&t, false) }),
    )
}

#[derive(Deserialize, Default)]
pub(super) struct AuditPageQuery {
    lang: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    /// A day, `YYYY-MM-DD` (the member's time zone), from which on.
    from: Option<String>,
    /// A day, `YYYY-MM-DD` (the member's time zone), up to and including.
    to: Option<String>,
    before: Option<i64>,
}

/// Midnight of a `YYYY-MM-DD` day in `tz`, in ms; `next` gives the day after's.
fn day_ms(day: &str, next: bool, tz: &jiff::tz::TimeZone) -> Option<i64> {
    let d: jiff::civil::Date = day.trim().parse().ok()?;
    let d = if next { d.tomorrow().ok()? } else { d };
    Some(d.to_zoned(tz.clone()).ok()?.timestamp().as_millisecond())
}

pub(super) async fn audit(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<AuditPageQuery>,
) -> Response {
    let lq = LangQuery {
        lang: q.lang.clone(),
        project: None,
    };
    let p = match page(&s, &headers, &lq).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let t = texts(p.lang);
    let api = AuditQuery {
        actor: q.actor.clone(),
        action: q.action.clone(),
        target: q.target.clone(),
        since: q.from.as_deref().and_then(|d| day_ms(d, false, &p.tz())),
        until: q.to.as_deref().and_then(|d| day_ms(d, true, &p.tz())),
        before: q.before,
        limit: None,
    };
    let (entries, problem) = match api.filter(AUDIT_PAGE) {
        Ok(f) => match s.store.audit_entries(&f).await {
            Ok(e) => (e, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        },
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let next = (entries.len() as i64 == AUDIT_PAGE)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    let rows: Vec<Value> = entries
        .iter()
        .map(|e| {
            let label = t
                .get(format!("audit_{}", e.action.replace('.', "_")).as_str())
                .copied()
                .unwrap_or("");
            json!({
                "at": p.time(e.at), "actor": e.actor, "address": e.address, "action": e.action,
                "label": label, "target": e.target,
                "detail": if e.detail.as_object().is_some_and(|o| o.is_empty()) { String::new() } else { e.detail.to_string() },
            })
        })
        .collect();
    // The same filters, for the CSV export and the next page.
    let mut params: Vec<(&str, String)> = Vec::new();
    for (k, v) in [
        ("actor", &q.actor),
        ("action", &q.action),
        ("target", &q.target),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.trim().is_empty()) {
            params.push((k, v.trim().to_string()));
        }
    }
    let mut csv: Vec<(&str, String)> = params.clone();
    if let Some(v) = api.since {
        csv.push(("since", v.to_string()));
    }
    if let Some(v) = api.until {
        csv.push(("until", v.to_string()));
    }
    for (k, v) in [("from", &q.from), ("to", &q.to)] {
        if let Some(v) = v.as_deref().filter(|v| !v.trim().is_empty()) {
            params.push((k, v.trim().to_string()));
        }
    }
    let encode = |pairs: &[(&str, String)]| -> String {
        pairs
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
                )
            })
            .collect::<Vec<_>>()
            .join("&")
    };
    let next_link = next.map(|n| {
        let mut pairs = params.clone();
        pairs.push(("before", n.to_string()));
        format!("/audit?{}", encode(&pairs))
    });
    render(
        &p,
        "audit.html",
        t["audit"],
        "audit",
        json!({
            "entries": rows, "problem": problem, "next": next_link,
            "csv": format!("/api/v1/audit.csv?{}", encode(&csv)),
            "f": { "actor": q.actor, "action": q.action, "target": q.target, "from": q.from, "to": q.to },
        }),
    )
}

pub(super) async fn account(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let p = match page(&s, &headers, &q).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let t = texts(p.lang);
    let session = match auth::cookie(&headers, auth::SESSION_COOKIE) {
        Some(tok) => s.store.session(&auth::token_hash(tok)).await.ok().flatten(),
        None => None,
    };
    let Some(me) = session.map(|x| x.user) else {
        return axum::response::IntoResponse::into_response(axum::response::Redirect::to("/login"));
    };
    let tokens: Vec<Value> = s
        .store
        .api_tokens(&me.id)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|k| {
            json!({ "id": k.id, "name": k.name, "read_only": k.read_only, "created": p.time(k.created_at),
                    "used": k.last_used_at.map(|t| p.time(t)) })
        })
        .collect();
    let role = role_name(&t, me.role);
    let two_factor = s
        .store
        .two_factor(&me.id)
        .await
        .ok()
        .flatten()
        .is_some_and(|x| x.enabled);
    render(
        &p,
        "account.html",
        t["account"],
        "account",
        json!({ "me": me, "role_name": role, "tokens": tokens, "two_factor": two_factor }),
    )
}

/// Accepting an invitation: choose a user name and a password.
pub(super) async fn invite(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    let (lang, remember) = lang(&headers, &q);
    let p = Page::anonymous(lang, remember);
    let t = texts(lang);
    let inv = if token.len() <= 128 {
        s.store
            .invitation(&auth::token_hash(&token))
            .await
            .ok()
            .flatten()
    } else {
        None
    };
    let extra = match inv {
        Some(i) => json!({
            "token": token, "email": i.email, "role_name": role_name(&t, i.role), "invited_by": i.invited_by,
            "valid": true, "sso": s.sso.is_some(),
        }),
        None => json!({ "valid": false }),
    };
    render(&p, "invite.html", t["invite_title"], "invite", extra)
}

/// The projects: their flows and connections counted, made, renamed and removed, and each
/// member's role in each (their workspace role unless given one of their own).
pub(super) async fn projects(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let p = match page(&s, &headers, &q).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let t = texts(p.lang);
    let members = s.store.members().await.unwrap_or_default();
    let mut list = Vec::new();
    for x in s.store.projects().await.unwrap_or_default() {
        let own = s.store.project_roles_in(&x.id).await.unwrap_or_default();
        // Owners and admins hold their role everywhere: only the others are listed.
        let rows: Vec<Value> = members
            .iter()
            .filter(|m| !matches!(m.user.role, Role::Owner | Role::Admin) && !m.disabled)
            .map(|m| {
                let here = own.iter().find(|r| r.user_id == m.user.id).map(|r| r.role);
                json!({
                    "id": m.user.id, "username": m.user.username, "display_name": m.user.display_name,
                    "workspace_role": role_name(&t, m.user.role),
                    "role": here.map(|r| r.as_str()).unwrap_or(""),
                })
            })
            .collect();
        list.push(json!({
            "id": x.id, "name": x.name, "flows": x.flows, "connections": x.connections,
            "default": x.id == flowbot_store::DEFAULT_PROJECT, "members": rows,
        }));
    }
    let roles: Vec<Value> = [Role::Editor, Role::Viewer, Role::Operator]
        .into_iter()
        .map(|r| json!({ "id": r.as_str(), "name": role_name(&t, r) }))
        .collect();
    render(
        &p,
        "projects.html",
        t["projects"],
        "projects",
        json!({ "list": list, "roles": roles }),
    )
}
