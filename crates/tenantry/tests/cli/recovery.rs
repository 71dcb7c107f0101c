//! The managed cluster survives `kill -9` of the server and of PostgreSQL.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::{Server, data_dir, postgres_processes, stdout, tenantry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_start_after_kill_9_of_both_recovers() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    stdout(&tenantry(
        dir.path(),
        &[
            "tenant",
            "create",
            "--name",
            "Kept",
            "--slug",
            "kept",
            "--isolation",
            "schema",
        ],
    ));
    let postgres = postgres_processes(dir.path());
    assert!(!postgres.is_empty());
    server.stop(Signal::SIGKILL);
    for pid in postgres {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }

    let server = Server::start(dir.path());
    assert_eq!(server.get("/readyz").await.status(), 200);
    let listed = stdout(&tenantry(dir.path(), &["tenant", "show", "kept", "--json"]));
    assert!(listed.contains("\"active\""));
    assert!(server.stop(Signal::SIGTERM).success());
    assert!(postgres_processes(dir.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_leaves_postgres_to_the_next_start() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    server.stop(Signal::SIGKILL);
    // PostgreSQL keeps running for the next user; the next server joins it.
    assert!(!postgres_processes(dir.path()).is_empty());
    let server = Server::start(dir.path());
    assert_eq!(server.get("/readyz").await.status(), 200);
    assert!(server.stop(Signal::SIGINT).success());
    assert!(postgres_processes(dir.path()).is_empty());
}
