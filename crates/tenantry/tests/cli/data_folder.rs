//! Run as root, `tenantry` refuses a data folder, or a folder or file inside it that it creates,
//! writes, `chmod`s or `chown`s, that is a symbolic link or belongs to a user other than root or
//! the PostgreSQL user, and names the path; what a planted link points at is left untouched.

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::support::{command, data_dir, tenantry, wait_with_deadline};

/// Runs `tenantry ARGS` in `dir` and expects it to refuse, naming `path` and `why`.
fn refuses(dir: &Path, args: &[&str], path: &Path, why: &str) {
    let mut child = command(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_with_deadline(&mut child, Duration::from_secs(60));
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "tenantry {args:?} ran: {stderr}");
    let named = path.display().to_string();
    assert!(
        stderr.contains(&named) && stderr.contains(why),
        "tenantry {args:?}: expected {named:?} and {why:?} in:\n{stderr}"
    );
}

fn both_refuse(dir: &Path, path: &Path, why: &str) {
    refuses(dir, &["tenant", "list"], path, why);
    refuses(dir, &["serve", "--listen", "127.0.0.1:0"], path, why);
}

fn running_as_root() -> bool {
    let root = nix::unistd::Uid::effective().is_root();
    if !root {
        eprintln!("not root: these rules bind a server started as root only");
    }
    root
}

#[test]
fn a_linked_data_folder_is_refused() {
    if !running_as_root() {
        return;
    }
    let dir = data_dir();
    std::fs::create_dir(dir.path().join("real")).unwrap();
    symlink("real", dir.path().join("tenantry-data")).unwrap();
    both_refuse(
        dir.path(),
        &dir.path().join("tenantry-data"),
        "symbolic link",
    );
    refuses(
        dir.path(),
        &["metrics", "token"],
        &dir.path().join("tenantry-data"),
        "symbolic link",
    );
}

#[test]
fn a_planted_link_inside_is_refused_and_its_target_untouched() {
    if !running_as_root() {
        return;
    }
    let dir = data_dir();
    let data = dir.path().join("tenantry-data");
    std::fs::create_dir(&data).unwrap();
    // A folder of root's elsewhere, and a file.
    let elsewhere = data_dir();
    std::fs::set_permissions(elsewhere.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let victim = elsewhere.path().join("victim");
    std::fs::write(&victim, "untouched").unwrap();

    symlink(elsewhere.path(), data.join("log")).unwrap();
    both_refuse(dir.path(), &data.join("log"), "symbolic link");
    let meta = std::fs::metadata(elsewhere.path()).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o755));
    std::fs::remove_file(data.join("log")).unwrap();

    let _ = std::fs::remove_file(data.join(".cluster.lock"));
    symlink(&victim, data.join(".cluster.lock")).unwrap();
    both_refuse(dir.path(), &data.join(".cluster.lock"), "symbolic link");
    std::fs::remove_file(data.join(".cluster.lock")).unwrap();

    symlink(&victim, data.join("metrics-token")).unwrap();
    refuses(
        dir.path(),
        &["metrics", "token"],
        &data.join("metrics-token"),
        "symbolic link",
    );
    std::fs::remove_file(data.join("metrics-token")).unwrap();

    // A folder of another user.
    std::fs::create_dir_all(data.join("run")).unwrap();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    std::os::unix::fs::chown(data.join("run"), Some(nobody.uid.as_raw()), None).unwrap();
    both_refuse(dir.path(), &data.join("run"), "is owned by user");
    std::fs::remove_dir(data.join("run")).unwrap();

    // Once the cluster exists, the settings file written at every start.
    let listed = tenantry(dir.path(), &["tenant", "list"]);
    assert!(listed.status.success(), "{listed:?}");
    let conf = data.join("pg").join("tenantry.conf");
    std::fs::remove_file(&conf).unwrap();
    symlink(&victim, &conf).unwrap();
    both_refuse(dir.path(), &conf, "symbolic link");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    let meta = std::fs::metadata(&victim).unwrap();
    assert_eq!(meta.uid(), 0);

    // Put right, it starts again.
    std::fs::remove_file(&conf).unwrap();
    let listed = tenantry(dir.path(), &["tenant", "list"]);
    assert!(listed.status.success(), "{listed:?}");
}
