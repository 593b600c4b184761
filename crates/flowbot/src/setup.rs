//! Wiring a built-in template to a pair of ecforce and Salesforce endpoints in one go: the
//! demo, the cluster command and the end-to-end tests all start from this state. It lives
//! with the CLI, which alone wires the simulators; tests include this file by path.
#![allow(dead_code)]

use flowbot_core::Apps;
use flowbot_sandbox::ecforce::EcforceSim;
use flowbot_sandbox::salesforce::SalesforceSim;
use flowbot_sandbox::Running;
use flowbot_store::{FlowInfo, Result, Store, StoreError};
use serde_json::{json, Map, Value};

/// Where the two apps of the customer-sync templates answer, and how to sign in.
#[derive(Debug, Clone)]
pub struct SyncApps {
    pub ecforce_url: String,
    pub ecforce_token: String,
    pub salesforce_url: String,
    pub client_id: String,
    pub client_secret: String,
}

impl SyncApps {
    /// The simulators' addresses and credentials.
    pub fn sandbox(ec: &Running<EcforceSim>, sf: &Running<SalesforceSim>) -> SyncApps {
        let cfg = sf.sim.config();
        SyncApps {
            ecforce_url: ec.url.clone(),
            ecforce_token: ec.sim.config().access_token.clone(),
            salesforce_url: sf.url.clone(),
            client_id: cfg.client_id.clone(),
            client_secret: cfg.client_secret.clone(),
        }
    }
}

/// Import the template, save (or update) a connection per app, choose them for the flow's
/// slots, and switch its trigger ON. Returns the stored flow (with its webhook token).
pub async fn install_template(
    store: &Store,
    apps: &Apps,
    template_id: &str,
    to: &SyncApps,
    actor: &str,
) -> Result<FlowInfo> {
    install_template_as(store, apps, template_id, template_id, to, actor).await
}

/// As [`install_template`], under another flow id (several copies side by side).
pub async fn install_template_as(
    store: &Store,
    apps: &Apps,
    template_id: &str,
    flow_id: &str,
    to: &SyncApps,
    actor: &str,
) -> Result<FlowInfo> {
    let t = flowbot_connectors::templates::template(template_id)
        .ok_or_else(|| StoreError::FlowNotFound(template_id.to_string()))?;
    let id_line = format!("\nid: {}\n", t.id);
    if !t.yaml.contains(&id_line) {
        // Installing it as `flow_id` would store a flow whose YAML names another id.
        return Err(StoreError::InvalidConfig(format!(
            "template `{}` has no plain `id: {}` line to rename",
            t.id, t.id
        )));
    }
    let yaml = t.yaml.replacen(&id_line, &format!("\nid: {flow_id}\n"), 1);
    let name = flowbot_core::check(&yaml, apps)
        .flow
        .map(|f| f.name)
        .unwrap_or_else(|| flow_id.to_string());
    let info = store.import_flow(flow_id, &name, &yaml, actor).await?;
    let ecforce = store
        .save_connection(
            "ecforce (sandbox)",
            "ecforce",
            &object(json!({"account_name": "sandbox", "base_url": to.ecforce_url, "access_token": to.ecforce_token})),
            actor,
        )
        .await?;
    let salesforce = store
        .save_connection(
            "Salesforce (sandbox)",
            "salesforce",
            &object(json!({"my_domain_url": to.salesforce_url, "client_id": to.client_id, "client_secret": to.client_secret})),
            actor,
        )
        .await?;
    store
        .bind_connection(flow_id, "ecforce", &ecforce.id, actor)
        .await?;
    store
        .bind_connection(flow_id, "salesforce", &salesforce.id, actor)
        .await?;
    store.set_enabled(flow_id, true, actor).await?;
    Ok(info)
}

pub(crate) fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}
