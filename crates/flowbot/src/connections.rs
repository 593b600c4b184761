//! The connections file of `flowbot run --connections C.yaml`: named connection settings,
//! so a flow can be tried against real accounts before it is imported.
//!
//! ```yaml
//! salesforce:
//!   app: salesforce            # optional: defaults to the flow's slot app
//!   my_domain_url: https://example.my.salesforce.com
//!   client_secret: env:SF_CLIENT_SECRET   # read from the environment
//! ```

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use flowbot_core::{Connection, Flow};
use serde_json::{Map, Value};

pub fn load(path: &Path, flow: &Flow) -> anyhow::Result<HashMap<String, Connection>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let raw: HashMap<String, Map<String, Value>> =
        serde_yaml::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let mut out = HashMap::new();
    for (name, mut settings) in raw {
        let slot_app = flow
            .connections
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.app.clone());
        let app = match settings.remove("app") {
            Some(Value::String(a)) => a,
            Some(_) => bail!("{}: `{name}.app` must be text", path.display()),
            None => slot_app.clone().ok_or_else(|| {
                anyhow!(
                    "{}: `{name}` is not a connection slot of flow `{}`; add `app:` to use it anyway",
                    path.display(),
                    flow.id
                )
            })?,
        };
        if let Some(slot) = slot_app {
            if slot != app {
                bail!(
                    "{}: `{name}` is for app `{app}`, but the flow's slot `{name}` is for `{slot}`",
                    path.display()
                );
            }
        }
        for (key, value) in settings.iter_mut() {
            if let Some(var) = value.as_str().and_then(|s| s.strip_prefix("env:")) {
                let resolved = std::env::var(var).map_err(|_| {
                    anyhow!(
                        "{}: `{name}.{key}` reads environment variable `{var}`, which is not set",
                        path.display()
                    )
                })?;
                *value = Value::String(resolved);
            }
        }
        out.insert(
            name.clone(),
            Connection {
                name,
                app,
                settings,
            },
        );
    }
    Ok(out)
}
