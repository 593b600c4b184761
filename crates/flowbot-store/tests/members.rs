//! Members, invitations and the audit log, against real SQLite and (with
//! TEST_DATABASE_URL) real PostgreSQL.

mod common;

use common::*;
use flowbot_store::{AuditFilter, NewUser, Role, StoreError};

#[tokio::test]
async fn an_invitation_makes_one_member_even_when_used_twice_at_once_and_expires() {
    for t in stores().await {
        let s = &t.store;
        let inv = s
            .create_invitation("a@example.jp", Role::Viewer, "hash-a", 60_000, "owner")
            .await
            .unwrap();
        assert_eq!(
            s.invitations().await.unwrap(),
            vec![inv.clone()],
            "{}",
            t.name
        );
        assert_eq!(s.invitation("hash-a").await.unwrap(), Some(inv));
        let (one, two) = tokio::join!(
            s.accept_invitation(
                "hash-a",
                NewUser::basic("ann", "h", Role::Owner),
                "10.0.0.1"
            ),
            s.accept_invitation(
                "hash-a",
                NewUser::basic("anne", "h", Role::Owner),
                "10.0.0.2"
            ),
        );
        let made: Vec<_> = [one, two].into_iter().filter_map(Result::ok).collect();
        assert_eq!(made.len(), 1, "{}: one member from one link", t.name);
        // The invitation's role and email, whatever the accepting side asked for.
        assert_eq!(made[0].role, Role::Viewer);
        assert_eq!(made[0].email, "a@example.jp");
        assert!(s.invitations().await.unwrap().is_empty());
        // An invitation that has expired opens nothing.
        s.create_invitation("b@example.jp", Role::Editor, "hash-b", 0, "owner")
            .await
            .unwrap();
        assert_eq!(s.invitation("hash-b").await.unwrap(), None);
        assert!(matches!(
            s.accept_invitation("hash-b", NewUser::basic("bob", "h", Role::Editor), "")
                .await,
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(s.count_users().await.unwrap(), 1);
    }
}

#[tokio::test]
async fn the_workspace_keeps_an_owner_and_a_disabled_member_has_no_session() {
    for t in stores().await {
        let s = &t.store;
        let boss = s
            .create_user(NewUser::basic("boss", "h", Role::Owner), "cli")
            .await
            .unwrap();
        let ed = s
            .create_user(NewUser::basic("ed", "h", Role::Editor), "boss")
            .await
            .unwrap();
        for refused in [
            s.set_role(&boss.id, Role::Admin, "x").await.err(),
            s.set_disabled(&boss.id, true, "x").await.err(),
            s.remove_user(&boss.id, "x").await.err(),
        ] {
            assert!(
                matches!(refused, Some(StoreError::Conflict(_))),
                "{}",
                t.name
            );
        }
        s.create_session(&ed.id, "sess", "csrf", 60_000, "ed")
            .await
            .unwrap();
        assert!(s.session("sess").await.unwrap().is_some());
        s.set_disabled(&ed.id, true, "boss").await.unwrap();
        assert!(s.session("sess").await.unwrap().is_none(), "{}", t.name);
        assert!(s.user_for_login("ed").await.unwrap().is_none());
        s.set_disabled(&ed.id, false, "boss").await.unwrap();
        assert!(
            s.session("sess").await.unwrap().is_none(),
            "enabling again brings no old session back"
        );
        // With a second owner, the first may step down.
        s.transfer_ownership(&boss.id, &ed.id, "boss")
            .await
            .unwrap();
        assert_eq!(s.member("ed").await.unwrap().user.role, Role::Owner);
        assert_eq!(s.member("boss").await.unwrap().user.role, Role::Admin);
        let roles = s
            .audit_entries(&AuditFilter {
                action: Some("member".into()),
                limit: 100,
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        let actions: Vec<&str> = roles.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "member.transfer_ownership",
                "member.enable",
                "member.disable",
                "member.add",
                "member.add"
            ],
            "{}",
            t.name
        );
        assert_eq!(roles[0].detail["from"], "boss");
    }
}

#[tokio::test]
async fn audit_entries_filter_by_who_what_and_when_and_go_with_retention() {
    for t in stores().await {
        let s = &t.store;
        for (who, what) in [
            ("ann", "flow.import"),
            ("bob", "flow.delete"),
            ("ann", "run.cancel"),
        ] {
            s.record_audit(
                flowbot_store::Actor::new(who, "192.0.2.1"),
                what,
                "f",
                serde_json::json!({}),
            )
            .await
            .unwrap();
        }
        let q = |actor: Option<&str>, action: Option<&str>| AuditFilter {
            actor: actor.map(str::to_string),
            action: action.map(str::to_string),
            limit: 10,
            ..AuditFilter::default()
        };
        let n = |v: Vec<flowbot_store::AuditEntry>| v.len();
        assert_eq!(
            n(s.audit_entries(&q(Some("ann"), None)).await.unwrap()),
            2,
            "{}",
            t.name
        );
        assert_eq!(n(s.audit_entries(&q(None, Some("flow"))).await.unwrap()), 2);
        assert_eq!(
            n(s.audit_entries(&q(Some("ann"), Some("flow")))
                .await
                .unwrap()),
            1
        );
        assert_eq!(
            n(s.audit_entries(&q(None, Some("flo"))).await.unwrap()),
            0,
            "families are whole"
        );
        let newest = s.audit_entries(&q(None, None)).await.unwrap();
        assert_eq!(newest[0].action, "run.cancel");
        assert_eq!(newest[0].address, "192.0.2.1");
        let older = s
            .audit_entries(&AuditFilter {
                before_id: Some(newest[0].id),
                ..q(None, None)
            })
            .await
            .unwrap();
        assert_eq!(older.len(), 2);
        let future = s
            .audit_entries(&AuditFilter {
                since: Some(newest[0].at + 1),
                ..q(None, None)
            })
            .await
            .unwrap();
        assert!(future.is_empty());
        // Retention takes the log as it takes runs.
        let policy = flowbot_store::Retention {
            max_age: Some(std::time::Duration::from_secs(3600)),
            max_runs_per_flow: None,
            batch: 2,
        };
        s.purge(&policy).await.unwrap();
        assert_eq!(
            s.audit_log(10).await.unwrap().len(),
            3,
            "{}: young entries stay",
            t.name
        );
        t.clock.advance(std::time::Duration::from_secs(3601));
        s.purge(&policy).await.unwrap();
        assert!(s.audit_log(10).await.unwrap().is_empty(), "{}", t.name);
    }
}
