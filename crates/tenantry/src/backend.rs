//! Reaching PostgreSQL: the configured server, or the managed cluster in the data folder, shared
//! with any other tenantry process using that folder. Both `serve` and the CLI commands open the
//! engine through here.

use std::str::FromStr;

use anyhow::Context;
use tenantry_pg::{ClusterOptions, ManagedCluster};
use tenantry_tenancy::{EngineConfig, Naming, PgConnectOptions, Tenancy, managed_owner};

use crate::settings::Settings;
use crate::supervise::Supervision;

/// The engine, and the managed cluster it runs on when there is one.
pub struct Backend {
    pub tenancy: Tenancy,
    cluster: Option<ManagedCluster>,
}

impl Backend {
    pub async fn open(settings: &Settings) -> anyhow::Result<Self> {
        let Some(url) = &settings.database_url else {
            return Self::open_managed(settings).await;
        };
        let owner = PgConnectOptions::from_str(url.expose())
            .context("TENANTRY_DATABASE_URL is not a valid PostgreSQL URL")?;
        let tenancy = Tenancy::open_full(
            engine_config(settings, owner),
            tenantry_app::tenant_schema(),
            &tenantry_app::control_schemas(),
        )
        .await?;
        Ok(Self {
            tenancy,
            cluster: None,
        })
    }

    async fn open_managed(settings: &Settings) -> anyhow::Result<Self> {
        let data_dir = settings.data_dir.clone();
        let options = ClusterOptions {
            bindir: settings.pg_bindir.clone(),
            ephemeral: false,
            max_connections: settings.pg_max_connections,
        };
        let cluster =
            tokio::task::spawn_blocking(move || ManagedCluster::acquire(&data_dir, &options))
                .await
                .context("the PostgreSQL start task failed")??;
        let superuser = PgConnectOptions::new()
            .socket(cluster.socket_dir())
            .port(cluster.port())
            .username("postgres")
            .database("postgres");
        let opened = async {
            let naming = Naming::new(&settings.database_prefix)?;
            let owner = managed_owner(&superuser, &naming).await?;
            Tenancy::open_full(
                engine_config(settings, owner),
                tenantry_app::tenant_schema(),
                &tenantry_app::control_schemas(),
            )
            .await
        }
        .await;
        match opened {
            Ok(tenancy) => Ok(Self {
                tenancy,
                cluster: Some(cluster),
            }),
            Err(e) => {
                release(cluster).await;
                Err(e)
            }
        }
    }

    /// A watch that starts the managed PostgreSQL again should it die (`serve`); none with
    /// `TENANTRY_DATABASE_URL`, whose server is someone else's to keep up.
    pub fn supervise(&self) -> Option<Supervision> {
        self.cluster
            .as_ref()
            .map(|cluster| Supervision::spawn(cluster.supervisor()))
    }

    /// Closes the pools, then lets go of the managed cluster (stopping it if this process is
    /// its last user).
    pub async fn close(self) {
        self.tenancy.close().await;
        if let Some(cluster) = self.cluster {
            release(cluster).await;
        }
    }
}

/// The application's own schemas in the control database.
fn engine_config(settings: &Settings, owner: PgConnectOptions) -> EngineConfig {
    EngineConfig {
        owner,
        control_database: settings.control_database.clone(),
        prefix: settings.database_prefix.clone(),
        pools: settings.pools(),
    }
}

async fn release(cluster: ManagedCluster) {
    match tokio::task::spawn_blocking(move || cluster.release()).await {
        Ok(Ok(true)) => tracing::info!("PostgreSQL stopped"),
        Ok(Ok(false)) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "failed to stop PostgreSQL"),
        Err(e) => tracing::error!(error = %e, "the PostgreSQL stop task failed"),
    }
}
