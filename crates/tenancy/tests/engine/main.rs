//! The tenancy engine against a real PostgreSQL: isolation in every tier, provisioning resumed
//! after interruption, lifecycle and complete hard delete, fleet migrations.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod append_only;
mod cancellation;
mod fleet;
mod isolation;
mod lifecycle;
mod moves;
mod pools;
mod provisioning;
mod servers;
mod support;
