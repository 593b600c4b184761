//! `flowbot users`, run by the real binary over a data directory: members added, listed,
//! changed, disabled and given new passwords, with the store showing each change and the
//! audit log naming the command line.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use flowbot_store::{Role, Store, StoreConfig};

fn flowbot(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowbot"))
        .arg("users")
        .args(["--data-dir", dir.to_str().unwrap()])
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("FLOWBOT_SECRET_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn open(dir: &std::path::Path) -> Store {
    Store::open(&StoreConfig {
        database_url: None,
        data_dir: dir.into(),
        secret_key: None,
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn members_are_managed_from_the_command_line_and_a_locked_out_owner_gets_back_in() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = flowbot(d, &["add", "boss", "--role", "owner"], None);
    assert!(o.status.success(), "{}", text(&o));
    let shown = text(&o);
    let generated = shown
        .lines()
        .find_map(|l| l.strip_prefix("password (shown once): "))
        .expect("the generated password is shown")
        .to_string();
    let o = flowbot(
        d,
        &[
            "add",
            "taro",
            "--role",
            "viewer",
            "--email",
            "taro@example.jp",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("shown once"));
    // Refusals name what is wrong and change nothing.
    for (args, says) in [
        (vec!["add", "bad name", "--role", "viewer"], "user name"),
        (vec!["add", "x", "--role", "king"], "not a role"),
        (vec!["add", "taro", "--role", "viewer"], "already exists"),
        (vec!["set-role", "nobody", "editor"], "no member"),
    ] {
        let o = flowbot(d, &args, None);
        assert!(!o.status.success(), "{args:?}");
        assert!(text(&o).contains(says), "{args:?}: {}", text(&o));
    }
    let o = flowbot(d, &["add", "short", "--password-stdin"], Some("tiny\n"));
    assert!(!o.status.success());
    assert!(text(&o).contains("shorter than 10"));

    let o = flowbot(d, &["set-role", "taro", "editor"], None);
    assert!(o.status.success(), "{}", text(&o));
    // The only owner cannot be demoted or disabled.
    let o = flowbot(d, &["disable", "boss"], None);
    assert!(!o.status.success());
    assert!(text(&o).contains("only owner"), "{}", text(&o));
    let o = flowbot(d, &["disable", "taro"], None);
    assert!(o.status.success(), "{}", text(&o));
    let o = flowbot(d, &["list"], None);
    let list = text(&o);
    let taro = list.lines().find(|l| l.starts_with("taro")).unwrap();
    assert!(
        taro.contains("editor") && taro.contains("disabled") && taro.contains("taro@example.jp"),
        "{list}"
    );

    // The owner forgot the password: a new one, and taro is enabled again by his reset.
    let o = flowbot(
        d,
        &["reset-password", "boss", "--password-stdin"],
        Some("the new owner password\n"),
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = flowbot(d, &["reset-password", "taro"], None);
    assert!(o.status.success());
    let store = open(d).await;
    let (boss, hash) = store.user_for_login("boss").await.unwrap().unwrap();
    assert_eq!(boss.role, Role::Owner);
    assert!(flowbot_server::auth::verify_password(
        "the new owner password",
        &hash
    ));
    assert!(!flowbot_server::auth::verify_password(&generated, &hash));
    let (taro, _) = store
        .user_for_login("taro")
        .await
        .unwrap()
        .expect("taro may sign in again");
    assert_eq!(taro.role, Role::Editor);
    let log = store.audit_log(50).await.unwrap();
    let by_cli: Vec<&str> = log
        .iter()
        .filter(|e| e.actor == "cli")
        .map(|e| e.action.as_str())
        .collect();
    for action in [
        "member.add",
        "member.role",
        "member.disable",
        "member.password",
        "member.enable",
    ] {
        assert!(by_cli.contains(&action), "{action}: {by_cli:?}");
    }
}
