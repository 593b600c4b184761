//! Projects: the workspace's flows and connections grouped (Yoom's プロジェクト), each member
//! with their workspace role there unless given one of their own.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use flowbot_store::{Project, ProjectRole, Role};
use serde::{Deserialize, Serialize};

use super::ApiResult;
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson};
use crate::routes::{op, Perm, Routes};
use crate::AppState;

pub(super) fn routes() -> Routes {
    Routes::default()
        .add(
            op(
                "get",
                "/api/v1/projects",
                "The projects you may read, with your role in each",
            )
            .needs(Perm::Own)
            .returns::<Vec<ProjectView>>(),
            list,
        )
        .add(
            op("post", "/api/v1/projects", "Make a project")
                .needs(Perm::Admin)
                .json_body::<NameBody>()
                .returns::<Project>()
                .status(201),
            create,
        )
        .add(
            op("patch", "/api/v1/projects/{id}", "Rename a project")
                .needs(Perm::Admin)
                .json_body::<NameBody>()
                .no_content(),
            rename,
        )
        .add(
            op(
                "delete",
                "/api/v1/projects/{id}",
                "Remove an empty project (not the default one)",
            )
            .needs(Perm::Admin)
            .no_content(),
            remove,
        )
        .add(
            op(
                "get",
                "/api/v1/projects/{id}/members",
                "The members with a role of their own in a project",
            )
            .needs(Perm::Admin)
            .returns::<Vec<ProjectRole>>(),
            members,
        )
        .add(
            op(
                "put",
                "/api/v1/projects/{id}/members/{user}",
                "Give a member a role of their own in a project (null: their workspace role)",
            )
            .needs(Perm::Admin)
            .json_body::<RoleBody>()
            .no_content(),
            set_role,
        )
}

#[derive(Serialize, schemars::JsonSchema)]
struct ProjectView {
    #[serde(flatten)]
    project: Project,
    /// Your role in it.
    role: Role,
}

async fn list(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
) -> ApiResult<Json<Vec<ProjectView>>> {
    Ok(Json(
        s.store
            .projects()
            .await?
            .into_iter()
            .filter(|p| Perm::Read.granted(c.role_in(&p.id)))
            .map(|p| ProjectView {
                role: c.role_in(&p.id),
                project: p,
            })
            .collect(),
    ))
}

#[derive(Deserialize, schemars::JsonSchema)]
struct NameBody {
    /// 1 to 100 characters.
    name: String,
}

fn check_name(name: &str) -> Result<String, ApiError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 100 || n.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "a project's name is 1 to 100 characters".into(),
        ));
    }
    Ok(n.to_string())
}

async fn create(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiJson(b): ApiJson<NameBody>,
) -> ApiResult<(StatusCode, Json<Project>)> {
    let p = s
        .store
        .create_project(&check_name(&b.name)?, c.actor())
        .await?;
    Ok((StatusCode::CREATED, Json(p)))
}

async fn rename(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<NameBody>,
) -> ApiResult<StatusCode> {
    s.store
        .rename_project(&id, &check_name(&b.name)?, c.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.store.delete_project(&id, c.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn members(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ProjectRole>>> {
    Ok(Json(s.store.project_roles_in(&id).await?))
}

#[derive(Deserialize, schemars::JsonSchema)]
struct RoleBody {
    /// `editor`, `viewer` or `operator`; null or empty: the member's workspace role
    /// applies.
    role: Option<String>,
}

async fn set_role(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path((id, user)): Path<(String, String)>,
    ApiJson(b): ApiJson<RoleBody>,
) -> ApiResult<StatusCode> {
    let role = match b.role.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(r) => match Role::parse(r) {
            Some(r @ (Role::Editor | Role::Viewer | Role::Operator)) => Some(r),
            _ => {
                return Err(ApiError::BadRequest(
                    "a project role is editor, viewer or operator (owners and admins hold theirs everywhere)"
                        .into(),
                ))
            }
        },
    };
    s.store
        .set_project_role(&id, &user, role, c.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
