//! Making a data folder ready: its folders owned by the PostgreSQL user, a cluster created by
//! `initdb` in a staging folder and moved into place only when complete, and the settings file
//! rewritten at every start.

use anyhow::Context;

use crate::cluster::{ClusterOptions, ManagedCluster, PORT, SUPERUSER, check};

impl ManagedCluster {
    pub(crate) fn prepare_folders(&self) -> anyhow::Result<()> {
        for dir in [&self.data_dir, &self.socket_dir, &self.data_dir.join("log")] {
            self.owners.prepare_dir(dir)?;
        }
        Ok(())
    }

    pub(crate) fn initdb(&self) -> anyhow::Result<()> {
        let staging = self.data_dir.join("pg.initdb");
        if staging.exists() {
            std::fs::remove_dir_all(&staging)
                .with_context(|| format!("failed to remove {}", staging.display()))?;
        }
        tracing::info!(pgdata = %self.pgdata.display(), version = ?self.bins.version(), "creating the PostgreSQL cluster");
        let mut command = self.run_as.command(self.bins.tool("initdb"));
        command
            .arg("--pgdata")
            .arg(&staging)
            .args(["--username", SUPERUSER, "--auth", "trust"])
            .args(["--encoding", "UTF8", "--no-locale", "--no-instructions"])
            .current_dir(&self.data_dir);
        let output = command.output().context("failed to run initdb")?;
        check(&output, "initdb")?;
        // Completed in the staging folder, so the cluster is whole once it has its name.
        let conf = staging.join("postgresql.conf");
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut self
                .owners
                .open_file(&conf, std::fs::OpenOptions::new().read(true))?,
            &mut text,
        )
        .context("failed to read postgresql.conf")?;
        text.push_str("\ninclude_if_exists = 'tenantry.conf'\n");
        self.owners.write_file(&conf, &text)?;
        std::fs::rename(&staging, &self.pgdata).with_context(|| {
            format!(
                "failed to move the new cluster to {}",
                self.pgdata.display()
            )
        })?;
        Ok(())
    }

    pub(crate) fn write_config(&self, options: &ClusterOptions) -> anyhow::Result<()> {
        let mut conf = format!(
            "# Written by tenantry at every start; edit postgresql.conf for your own settings.\n\
             listen_addresses = ''\n\
             unix_socket_directories = '{}'\n\
             unix_socket_permissions = 0700\n\
             port = {PORT}\n\
             max_connections = {}\n",
            self.socket_dir.display().to_string().replace('\'', "''"),
            options.max_connections
        );
        if options.ephemeral {
            conf.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        }
        self.owners
            .write_file(&self.pgdata.join("tenantry.conf"), &conf)
    }
}
