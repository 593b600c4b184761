//! `flowbot sandbox`: the simulated ecforce and Salesforce, the catalogue's apps, the
//! notification sinks, an OpenID Connect identity provider and an OpenAI-compatible model
//! as a process of their own, for black-box tests and for trying flowbot against something
//! that answers like the real services. Everything it serves is on loopback.

use std::process::ExitCode;

use flowbot_sandbox::{ai, catalogue, ecforce, oidc, salesforce, sinks};
use tokio_util::sync::CancellationToken;

#[derive(clap::Args)]
pub struct Args {
    /// Port of the ecforce simulator (0: any free port)
    #[arg(long, default_value_t = 0)]
    ecforce_port: u16,
    /// Port of the Salesforce simulator (0: any free port)
    #[arg(long, default_value_t = 0)]
    salesforce_port: u16,
    /// Port of the notification sinks' HTTP side (0: any free port)
    #[arg(long, default_value_t = 0)]
    sinks_port: u16,
    /// Port of the catalogue's app simulator (0: any free port)
    #[arg(long, default_value_t = 0)]
    apps_port: u16,
    /// Port of the OpenID Connect identity provider (0: any free port)
    #[arg(long, default_value_t = 0)]
    oidc_port: u16,
    /// Port of the OpenAI-compatible model (0: any free port)
    #[arg(long, default_value_t = 0)]
    ai_port: u16,
}

/// Every built-in app file, for the catalogue simulator.
pub fn catalogue_sources() -> Vec<catalogue::AppSource> {
    flowbot_connectors::file_app::builtin()
        .iter()
        .zip(flowbot_connectors::file_app::builtin_sources())
        .map(|(app, (_, yaml))| catalogue::AppSource {
            id: app.id.clone(),
            yaml: yaml.to_string(),
        })
        .collect()
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    crate::store_cmds::runtime()?.block_on(async {
        let ec = ecforce::start(Default::default(), args.ecforce_port).await?;
        let sf = salesforce::start(Default::default(), args.salesforce_port).await?;
        let sink = sinks::start(args.sinks_port).await?;
        let apps = catalogue::start(
            &catalogue_sources(),
            catalogue::CatalogueConfig { stateful: true },
            args.apps_port,
        )
        .await?;
        let idp = oidc::start(Default::default(), args.oidc_port).await?;
        let model = ai::start(Default::default(), args.ai_port).await?;
        let sf_cfg = sf.sim.config();
        // One `name: value` per line, then `ready`: easy to read for people and programs.
        println!("ecforce: {}", ec.url);
        println!("ecforce_token: {}", ec.sim.config().access_token);
        println!("salesforce: {}", sf.url);
        println!("salesforce_client_id: {}", sf_cfg.client_id);
        println!("salesforce_client_secret: {}", sf_cfg.client_secret);
        println!("sinks: {}", sink.url);
        println!("smtp: 127.0.0.1:{}", sink.sim.smtp_port());
        println!("apps: {}", apps.url);
        // Single sign-on: `flowbot serve --oidc-issuer … --oidc-client-id …` with the secret
        // in FLOWBOT_OIDC_CLIENT_SECRET; its users are listed on its sign-in page.
        let idp_client = &idp.sim.config().client;
        println!("oidc_issuer: {}", idp.url);
        println!("oidc_client_id: {}", idp_client.client_id);
        println!("oidc_client_secret: {}", idp_client.client_secret);
        // The `ai` app's connection: base URL, key and model.
        println!("ai_base_url: {}/v1", model.url);
        println!("ai_api_key: {}", model.sim.config().api_key);
        println!("ai_model: {}", model.sim.config().model);
        // Each app under its id: point a connection's URL fields there.
        for (id, name) in apps.sim.apps() {
            println!("app {id}: {}/{id} ({name})", apps.url);
        }
        println!("ready");
        let stop = CancellationToken::new();
        crate::store_cmds::cancel_on_signal(stop.clone()).await;
        Ok(ExitCode::SUCCESS)
    })
}
