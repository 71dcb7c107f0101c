//! A managed local PostgreSQL cluster: find the server binaries on the machine, create a cluster
//! in a data folder, start it on a Unix socket inside that folder, share it between the processes
//! that use the folder, and stop it when the last of them lets go.
//!
//! Sharing works with two `flock` files in the data folder: `.cluster.lock` serialises starts and
//! stops, and every user holds a shared lock on `.cluster.users` while it uses the cluster. The
//! process that releases its lock and can then take `.cluster.users` exclusively is the last user,
//! and stops PostgreSQL. A process that dies releases its locks with it, so a crash never blocks the
//! next start; a stale `postmaster.pid` left by `kill -9` is detected and cleared. A
//! [`Supervisor`] lets a long-running user notice that PostgreSQL died and start it again.

mod binaries;
mod cluster;
mod os_user;
mod ownership;
mod setup;
mod supervise;

pub use binaries::{FindError, PgBinaries};
pub use cluster::{ClusterError, ClusterOptions, ManagedCluster};
pub use os_user::RunAs;
pub use ownership::Owners;
pub use supervise::{Restart, Supervisor};
