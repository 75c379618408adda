//! A private PostgreSQL server for the export tests: Debian's `postgresql` (`.ci/run`
//! installs it when missing), a fresh cluster in a temporary folder, reachable only through a
//! Unix socket in that folder (no TCP), stopped when the value is dropped. PostgreSQL refuses
//! to run as root, so as root (CI) the server runs as `nobody` through `runuser`.
//!
//! [`Postgres::psql`] runs SQL through `psql` and returns its unaligned output; `psql` talks
//! to the socket as the cluster's superuser, `saectl`, with local trust authentication.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The cluster's superuser.
const USER: &str = "saectl";

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// `Some("nobody")` when the tests run as root.
    run_as: Option<&'static str>,
}

/// The folder holding `initdb`, `pg_ctl` and `postgres`: on `PATH`, else Debian's
/// `/usr/lib/postgresql/<version>/bin` (the newest). Panics with how to install them.
fn bin_dir() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file());
    if let Some(dir) = on_path {
        return dir;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let path = e.ok()?.path();
            let version = path.file_name()?.to_str()?.parse().ok()?;
            path.join("bin/initdb")
                .is_file()
                .then(|| (version, path.join("bin")))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir).unwrap_or_else(|| {
        panic!(
            "the export tests need PostgreSQL (initdb, pg_ctl, postgres, psql): \
             `apt-get install postgresql` (.ci/run installs it when missing)"
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn check(output: Output, what: &str) -> Output {
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

impl Postgres {
    /// Creates and starts a cluster.
    pub fn start() -> Self {
        let bin = bin_dir();
        let dir = tempfile::tempdir().unwrap();
        let run_as = is_root().then_some("nobody");
        if let Some(user) = run_as {
            check(
                Command::new("chown")
                    .arg(user)
                    .arg(dir.path())
                    .output()
                    .unwrap(),
                "chown",
            );
        }
        let server = Self { dir, bin, run_as };
        let data = server.data();
        check(
            server
                .as_owner("initdb")
                .args(["-D", &data, "-U", USER, "--auth=trust", "--no-sync"])
                .args(["--encoding=UTF8", "--locale=C"])
                .output()
                .unwrap(),
            "initdb",
        );
        let options = format!(
            "-c listen_addresses='' -k {} -c fsync=off",
            server.dir.path().display()
        );
        let log = server.dir.path().join("server.log");
        check(
            server
                .as_owner("pg_ctl")
                .args(["-D", &data, "-w", "-t", "60", "-o", &options, "-l"])
                .arg(&log)
                .arg("start")
                .stdout(Stdio::null())
                .output()
                .unwrap(),
            "pg_ctl start",
        );
        server
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// `program` of the PostgreSQL bin folder, as the cluster's owner, run from the cluster's
    /// folder (as `nobody`, the checkout may be a folder it cannot enter).
    fn as_owner(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(path);
                command
            }
            None => Command::new(path),
        };
        command.current_dir(self.dir.path());
        command
    }

    fn psql_path(&self) -> PathBuf {
        let beside = self.bin.join("psql");
        if beside.is_file() {
            beside
        } else {
            PathBuf::from("psql")
        }
    }

    /// Runs `sql` (stopping at the first error) and returns what it printed, unaligned.
    pub fn psql(&self, sql: &str) -> String {
        use std::io::Write;
        let mut child = Command::new(self.psql_path())
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                USER,
                "-d",
                "postgres",
            ])
            .arg("-h")
            .arg(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("psql starts");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(sql.as_bytes())
            .unwrap();
        let output = check(child.wait_with_output().unwrap(), "psql");
        String::from_utf8(output.stdout).expect("psql prints UTF-8")
    }

    /// Runs the SQL file `path`.
    pub fn run_file(&self, path: &Path) -> String {
        self.psql(&std::fs::read_to_string(path).unwrap())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .as_owner("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
