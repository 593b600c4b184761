//! `flowbot users`: the members from the command line, and the way back in for an owner
//! locked out of the web UI. Passwords are never taken as arguments (they would stay in
//! the shell's history and the process list): they are generated and shown once, or read
//! from standard input with `--password-stdin`.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Subcommand;
use flowbot_store::{Actor, NewUser, Role};

use crate::store_cmds::{runtime, StoreArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: UsersCommand,
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Add a member (a password is generated and shown once unless --password-stdin)
    Add {
        /// The user name: letters, digits, `.`, `_` or `-`
        username: String,
        /// owner, admin, editor, viewer or operator
        #[arg(long, default_value = "editor")]
        role: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        /// Read the password from standard input (at least 10 characters)
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the members, their roles and whether they may sign in
    List,
    /// Change a member's role (making someone owner keeps the other owners)
    SetRole {
        username: String,
        /// owner, admin, editor, viewer or operator
        role: String,
    },
    /// Disable a member: their sessions end and they cannot sign in (--enable undoes it)
    Disable {
        username: String,
        #[arg(long)]
        enable: bool,
    },
    /// Give a member a new password (generated and shown once unless --password-stdin);
    /// every session of theirs ends, and two-factor sign-in is turned off
    ResetPassword {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

fn role(s: &str) -> anyhow::Result<Role> {
    Role::parse(s)
        .with_context(|| format!("`{s}` is not a role: owner, admin, editor, viewer or operator"))
}

/// The password from standard input, or a generated one (then also returned to print).
fn password(from_stdin: bool) -> anyhow::Result<(String, Option<String>)> {
    if !from_stdin {
        let p = flowbot_server::auth::random_token()[..20].to_string();
        return Ok((p.clone(), Some(p)));
    }
    let mut text = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut text)
        .context("cannot read the password from standard input")?;
    let p = text.trim_end_matches(['\r', '\n']).to_string();
    if p.chars().count() < 10 {
        bail!("the password is shorter than 10 characters");
    }
    if p.len() > flowbot_server::auth::MAX_PASSWORD {
        bail!(
            "the password is longer than {} bytes",
            flowbot_server::auth::MAX_PASSWORD
        );
    }
    Ok((p, None))
}

/// What the audit log names for the command line.
fn cli() -> Actor {
    Actor::new("cli", "")
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let store = args.store.open().await?;
        match args.command {
            UsersCommand::Add {
                username,
                role: r,
                email,
                display_name,
                password_stdin,
            } => {
                if !flowbot_server::auth::valid_username(&username) {
                    bail!("a user name is 1 to 64 letters, digits, `.`, `_` or `-`");
                }
                let r = role(&r)?;
                let (pw, shown) = password(password_stdin)?;
                let mut new =
                    NewUser::basic(&username, &flowbot_server::auth::hash_password(&pw), r);
                if let Some(e) = email {
                    // Given by whoever runs the command line: known to be theirs.
                    new.email = e;
                    new.email_verified = true;
                }
                if let Some(d) = display_name {
                    new.display_name = d;
                }
                store.create_user(new, cli()).await?;
                println!("added {username} as {r}");
                if let Some(p) = shown {
                    println!("password (shown once): {p}");
                }
            }
            UsersCommand::List => {
                println!(
                    "{:<24} {:<9} {:<9} {:<30} display name",
                    "user", "role", "state", "email"
                );
                for m in store.members().await? {
                    let state = if m.disabled { "disabled" } else { "active" };
                    println!(
                        "{:<24} {:<9} {:<9} {:<30} {}",
                        m.user.username, m.user.role, state, m.user.email, m.user.display_name
                    );
                }
            }
            UsersCommand::SetRole { username, role: r } => {
                let r = role(&r)?;
                let m = store.member(&username).await?;
                store.set_role(&m.user.id, r, cli()).await?;
                println!("{username} is now {r}");
            }
            UsersCommand::Disable { username, enable } => {
                let m = store.member(&username).await?;
                store.set_disabled(&m.user.id, !enable, cli()).await?;
                println!(
                    "{username} is {}",
                    if enable {
                        "enabled"
                    } else {
                        "disabled: signed out everywhere"
                    }
                );
            }
            UsersCommand::ResetPassword {
                username,
                password_stdin,
            } => {
                let m = store.member(&username).await?;
                let (pw, shown) = password(password_stdin)?;
                store
                    .set_password(&m.user.id, &flowbot_server::auth::hash_password(&pw), cli())
                    .await?;
                // A locked-out owner also needs to be able to sign in again: enabled, and
                // without the second factor they may have lost with their phone.
                if m.disabled {
                    store.set_disabled(&m.user.id, false, cli()).await?;
                }
                store.two_factor_disable(&m.user.id, cli()).await?;
                println!(
                    "{username} has a new password; their sessions have ended and two-factor sign-in is off"
                );
                if let Some(p) = shown {
                    println!("password (shown once): {p}");
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
