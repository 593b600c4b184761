//! Files sent with form answers, downloaded: streamed from the store chunk by chunk, for
//! those who may read the flow they came to, or who were asked something in its run.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use flowbot_store::ProjectOf;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::{op, Perm, Routes};
use crate::AppState;

pub(super) fn routes() -> Routes {
    Routes::default().add(
        op(
            "get",
            "/api/v1/files/{id}",
            "A file sent with a form answer (for those who may read its flow, or were asked something in its run)",
        )
        .needs(Perm::Own)
        .answers("application/octet-stream", 200),
        download,
    )
}

/// `attachment; filename*=UTF-8''…`: the name percent-encoded, so any name is safe here.
pub(super) fn disposition(name: &str) -> HeaderValue {
    let encoded: String = name
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    HeaderValue::from_str(&format!("attachment; filename*=UTF-8''{encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

async fn download(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound(format!("file {id} not found"));
    let file = s.store.file(&id).await.map_err(|_| not_found())?;
    if file.event_id.is_none() {
        return Err(not_found());
    }
    let readable = match s.store.project_of(ProjectOf::Flow, &file.flow_id).await? {
        Some(project) => caller.may_in(&project, Perm::Read, &Method::GET),
        None => false,
    };
    let asked = match s.store.run_of_file(&id).await? {
        Some(run) if !readable => s.store.asked_in_run(&run, &caller.user.username).await?,
        _ => false,
    };
    if !readable && !asked {
        return Err(not_found());
    }
    let store = s.store.clone();
    let stream = futures_util::stream::unfold(0i64, move |seq| {
        let (store, id) = (store.clone(), id.clone());
        async move {
            match store.file_chunk(&id, seq).await {
                Ok(Some(chunk)) => Some((Ok::<_, std::io::Error>(chunk), seq + 1)),
                Ok(None) => None,
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), i64::MAX)),
            }
        }
    });
    let mut r = Body::from_stream(stream).into_response();
    let h = r.headers_mut();
    // Never shown in the browser: always a download, whatever the sender called it.
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_DISPOSITION, disposition(&file.name));
    if let Ok(v) = HeaderValue::from_str(&file.size.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    Ok(r)
}
