//! The `tenantry` binary from outside: zero-configuration serve, the CLI beside a running
//! server and without one, shutdown and crash recovery of the managed PostgreSQL, several
//! servers sharing the checks, and the load-and-fault suite (`faults`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent;
mod archive;
mod audit;
mod data_folder;
mod faults;
mod instances;
mod mail;
mod metrics;
mod monitoring;
mod moves;
mod plans;
mod recovery;
mod serve;
mod servers;
mod ssrf;
mod support;
mod upgrade;
