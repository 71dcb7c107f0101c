//! Use cases that take more than one call of the domain services: written once here, called by
//! the JSON API's handlers and the console's pages alike. Each checks the caller's role itself.

pub(crate) mod agents;
pub(crate) mod channels;
pub(crate) mod invitations;
pub(crate) mod monitors;
pub(crate) mod organizations;
pub(crate) mod tenants;
pub(crate) mod usage;
