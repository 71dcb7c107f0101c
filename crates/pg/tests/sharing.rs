//! Several users share one managed cluster; the last one out stops it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tenantry_pg::{ClusterOptions, ManagedCluster};

fn options() -> ClusterOptions {
    ClusterOptions {
        ephemeral: true,
        ..ClusterOptions::default()
    }
}

#[test]
fn the_last_user_stops_the_cluster_and_a_killed_one_leaves_it_running() {
    let dir = tempfile::Builder::new()
        .prefix("tenantry-pg-")
        .tempdir_in("/tmp")
        .unwrap();
    let first = ManagedCluster::acquire(dir.path(), &options()).unwrap();
    assert!(first.started_here());
    assert!(first.socket_dir().join(".s.PGSQL.5432").exists());
    assert!(first.superuser_url("postgres").contains("host=/tmp/"));

    let second = ManagedCluster::acquire(dir.path(), &options()).unwrap();
    assert!(
        !second.started_here(),
        "the second user joins the running cluster"
    );
    assert!(
        !first.release().unwrap(),
        "another user still holds the cluster"
    );
    assert!(!ManagedCluster::processes(second.data_dir()).is_empty());

    // Dropped without release, as by a crash: the cluster keeps running for the next user.
    drop(second);
    let third = ManagedCluster::acquire(dir.path(), &options()).unwrap();
    assert!(!third.started_here());
    let data_dir = third.data_dir().to_path_buf();
    assert!(third.release().unwrap(), "the last user stops the cluster");
    assert!(ManagedCluster::processes(&data_dir).is_empty());

    // A stopped cluster starts again from the same folder.
    let again = ManagedCluster::acquire(dir.path(), &options()).unwrap();
    assert!(again.started_here());
    assert!(again.release().unwrap());
}

#[test]
fn a_data_folder_too_long_for_the_socket_is_refused_with_advice() {
    let long = std::env::temp_dir().join("x".repeat(120));
    let err = ManagedCluster::acquire(&long, &options()).unwrap_err();
    assert!(
        err.to_string().contains("choose a shorter --data-dir"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&long);
}
