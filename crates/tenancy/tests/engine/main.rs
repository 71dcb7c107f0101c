//! The tenancy engine against a real PostgreSQL: isolation in every tier, provisioning resumed
//! after interruption, lifecycle and complete hard delete, fleet migrations.

mod fleet;
mod isolation;
mod lifecycle;
mod pools;
mod provisioning;
mod support;
