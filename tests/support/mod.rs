//! What the black-box tests share.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::Duration;

/// A fresh database on the PostgreSQL server `TEST_DATABASE_URL` points at; `None` when
/// it is not set (the PostgreSQL variants are then skipped).
pub fn fresh_pg() -> Option<String> {
    let base = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())?;
    let db = format!("flowbot_t_{}", uuid::Uuid::new_v4().simple());
    let (prefix, _) = base.rsplit_once('/')?;
    let status = Command::new("psql")
        .args([base.as_str(), "-q", "-c", &format!("CREATE DATABASE {db}")])
        .status()
        .expect("psql runs");
    assert!(status.success(), "psql could not create a test database");
    Some(format!("{prefix}/{db}"))
}

/// A `flowbot` process that is stopped however the test ends — a failed assertion must not
/// leave servers and workers polling the database for the rest of the run. Dropping it
/// sends SIGTERM (a cluster then stops its own children), and SIGKILL after 30 s.
pub struct Reaped(Option<std::process::Child>);

impl Reaped {
    pub fn new(child: std::process::Child) -> Reaped {
        Reaped(Some(child))
    }

    /// Stop with SIGTERM and wait for the exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let c = self.0.as_mut().expect("not yet waited for");
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe {
            libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(status) = c.try_wait().expect("wait for the child") {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = c.kill();
                return c.wait().expect("wait for the child");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Wait for the exit and collect what is left of its output.
    pub fn wait_with_output(mut self) -> std::io::Result<std::process::Output> {
        self.0
            .take()
            .expect("not yet waited for")
            .wait_with_output()
    }
}

impl std::ops::Deref for Reaped {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref().expect("not yet waited for")
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.0.as_mut().expect("not yet waited for")
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if matches!(self.0.as_mut().map(|c| c.try_wait()), Some(Ok(None))) {
            self.stop();
        }
    }
}

/// Read `name: value` lines from a child's stdout until `ready`.
pub fn read_ready(child: &mut std::process::Child, what: &str) -> Vec<(String, String)> {
    let out = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut fields = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("{what} did not say `ready`"));
        if line == "ready" {
            return fields;
        }
        if let Some((k, v)) = line.split_once(": ") {
            fields.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
}
