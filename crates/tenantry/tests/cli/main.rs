//! The `tenantry` binary from outside: zero-configuration serve, the CLI beside a running
//! server and without one, shutdown and crash recovery of the managed PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent;
mod archive;
mod audit;
mod mail;
mod monitoring;
mod moves;
mod plans;
mod recovery;
mod serve;
mod support;
