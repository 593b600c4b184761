//! Projects against real SQLite and (with TEST_DATABASE_URL) real PostgreSQL: a flow uses
//! only the connections its project sees, whether bound, moved or unshared; runs filter by
//! project; members' own roles per project.

mod common;

use common::*;
use flowbot_store::{NewFlow, NewUser, ProjectOf, Role, RunFilter, StoreError, DEFAULT_PROJECT};
use serde_json::{json, Map, Value};

fn settings() -> Map<String, Value> {
    match json!({ "token": "t" }) {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn a_flow_uses_only_what_its_project_sees_and_moving_keeps_its_history() {
    for t in stores().await {
        let s = &t.store;
        let sales = s.create_project("営業", "owner").await.unwrap();
        assert!(matches!(
            s.create_project("営業", "owner").await,
            Err(StoreError::Conflict(_))
        ));
        let f = s
            .import_flow_as(
                "sync",
                "sync",
                FLOW,
                "owner",
                NewFlow {
                    project: Some(sales.id.clone()),
                    ..NewFlow::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(f.project_id, sales.id, "{}", t.name);
        // A new version stays where the flow is, whatever the import asks.
        let v2 = s
            .import_flow("sync", "sync", &FLOW.replace("x: 1", "x: 2"), "owner")
            .await
            .unwrap();
        assert_eq!(v2.project_id, sales.id);
        let own = s
            .save_connection("shop", "manual", &settings(), "owner")
            .await
            .unwrap();
        assert_eq!(own.project_id, DEFAULT_PROJECT);
        // The default project's connection is not the sales flow's to use…
        assert!(matches!(
            s.bind_connection("sync", "shop", &own.id, "owner").await,
            Err(StoreError::Conflict(_))
        ));
        // …until it is shared with it; then the share cannot be withdrawn while used.
        s.share_connection(&own.id, std::slice::from_ref(&sales.id), "owner")
            .await
            .unwrap();
        s.bind_connection("sync", "shop", &own.id, "owner")
            .await
            .unwrap();
        assert_eq!(
            s.connections_for(&sales.id).await.unwrap().len(),
            1,
            "{}",
            t.name
        );
        assert!(matches!(
            s.share_connection(&own.id, &[], "owner").await,
            Err(StoreError::Conflict(_))
        ));
        // A run, then a move: the run goes with the flow.
        enabled_run(s).await;
        let in_sales = RunFilter {
            projects: Some(vec![sales.id.clone()]),
            limit: 10,
            ..RunFilter::default()
        };
        assert_eq!(s.runs(&in_sales).await.unwrap().len(), 1);
        let other = s.create_project("経理", "owner").await.unwrap();
        assert!(
            matches!(
                s.move_flow("sync", &other.id, "owner").await,
                Err(StoreError::Conflict(_))
            ),
            "{}: the target does not see the connection",
            t.name
        );
        s.move_flow("sync", DEFAULT_PROJECT, "owner").await.unwrap();
        assert_eq!(s.runs(&in_sales).await.unwrap().len(), 0);
        let in_default = RunFilter {
            projects: Some(vec![DEFAULT_PROJECT.into()]),
            limit: 10,
            ..RunFilter::default()
        };
        assert_eq!(s.runs(&in_default).await.unwrap().len(), 1, "history kept");
        assert_eq!(s.flow_versions("sync").await.unwrap().len(), 2);
        assert_eq!(
            s.project_of(ProjectOf::Flow, "sync").await.unwrap(),
            Some(DEFAULT_PROJECT.into())
        );
        // An empty project goes; the default one and a full one stay.
        assert!(s.delete_project(DEFAULT_PROJECT, "owner").await.is_err());
        s.share_connection(&own.id, &[], "owner").await.unwrap();
        s.delete_project(&sales.id, "owner").await.unwrap();
        let names: Vec<String> = s
            .projects()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["Default", "経理"], "{}", t.name);
    }
}

async fn enabled_run(s: &flowbot_store::Store) {
    s.set_enabled("sync", true, "owner").await.unwrap();
    s.enqueue(event("c1")).await.unwrap();
}

#[tokio::test]
async fn a_member_may_have_a_role_of_their_own_in_a_project() {
    for t in stores().await {
        let s = &t.store;
        let p = s.create_project("営業", "owner").await.unwrap();
        let u = s
            .create_user(NewUser::basic("taro", "h", Role::Viewer), "owner")
            .await
            .unwrap();
        s.set_project_role(&p.id, &u.id, Some(Role::Editor), "owner")
            .await
            .unwrap();
        assert_eq!(
            s.project_roles_of(&u.id).await.unwrap().get(&p.id),
            Some(&Role::Editor),
            "{}",
            t.name
        );
        assert_eq!(s.project_roles_in(&p.id).await.unwrap()[0].username, "taro");
        s.set_project_role(&p.id, &u.id, None, "owner")
            .await
            .unwrap();
        assert!(s.project_roles_of(&u.id).await.unwrap().is_empty());
    }
}
