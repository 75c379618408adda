//! An advisory lock on an output folder, held for a run's whole life, so that two saectl
//! processes never write the same folder at once.
//!
//! The lock is `flock(2)` on `<folder>/.saectl-lock`. The kernel drops it when the file is
//! closed — when the [`RunLock`] is dropped, or when the process ends in any way, `kill -9`
//! included — so a crash never leaves a stale lock behind, and no one has to delete anything
//! before resuming. The file itself stays (an unlocked file means nothing); its text names the
//! holder (pid and command line) so that the refusal can say who has the folder. Only saectl
//! processes are kept out: the lock is advisory, and `rm -rf` does not ask.
//!
//! flock locks belong to the open file, not the process: a second `acquire` of the same folder
//! in the same process is refused too, which is what a program that forgot it already holds
//! the folder needs to hear.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// The lock file's name inside the locked folder.
pub const LOCK_FILE_NAME: &str = ".saectl-lock";

/// The holder's record is this short; a longer file is not ours and is not read further.
const MAX_RECORD_BYTES: u64 = 4096;

/// Proof that this process holds a folder's lock; dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    dir: PathBuf,
    /// Kept open: closing it would release the lock.
    _file: File,
}

impl RunLock {
    /// Takes the lock on `dir`, which must exist, or refuses in one line that names the folder
    /// and the process holding it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK_FILE_NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false) // the holder's record must survive our failed attempt
            .mode(0o666) // minus the umask, as every output file
            .open(&path)
            .with_context(|| format!("failed to open the lock file {}", path.display()))?;
        if !try_lock(&file).with_context(|| format!("failed to lock {}", path.display()))? {
            bail!(
                "{} is in use by another saectl process ({}); wait for it to finish or choose \
                 another output folder",
                dir.display(),
                read_holder(&mut file)
            );
        }
        record_holder(&mut file)
            .with_context(|| format!("failed to write the lock file {}", path.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            _file: file,
        })
    }

    /// The locked folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// `flock(LOCK_EX | LOCK_NB)`: `Ok(false)` when another open file holds the lock.
fn try_lock(file: &File) -> std::io::Result<bool> {
    loop {
        // SAFETY: flock only reads the descriptor, which `file` keeps open for the call.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(true);
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(err),
        }
    }
}

/// Replaces the file's text with `<pid>\n<command line>\n`.
fn record_holder(file: &mut File) -> std::io::Result<()> {
    let command: Vec<String> = std::env::args_os()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}\n{}\n", std::process::id(), command.join(" "))
}

/// "pid 1234: saectl collect …" from the holder's record. The holder writes it just after
/// taking the lock, so an empty record is retried briefly before giving up on it.
fn read_holder(file: &mut File) -> String {
    for attempt in 0..5 {
        let mut text = String::new();
        let read = file
            .rewind()
            .and_then(|()| Read::take(&mut *file, MAX_RECORD_BYTES).read_to_string(&mut text));
        let mut lines = text.lines();
        if let (Ok(_), Some(pid), Some(command)) = (read, lines.next(), lines.next()) {
            if let Ok(pid) = pid.trim().parse::<u32>() {
                return format!("pid {pid}: {}", command.trim());
            }
        }
        if attempt < 4 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    "it has not recorded its pid".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    const CHILD_DIR_VAR: &str = "SAECTL_TEST_LOCK_DIR";
    /// What the child prints once it holds the lock.
    const HELD: &str = "lock held";

    #[test]
    fn released_on_drop_and_refused_while_held() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path()).unwrap();
        assert_eq!(first.dir(), dir.path());
        let err = RunLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        assert!(
            err.contains(&format!("pid {}:", std::process::id())),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
        drop(first);
        RunLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn a_missing_folder_is_an_error_not_a_new_folder() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let err = format!("{:#}", RunLock::acquire(&missing).unwrap_err());
        assert!(err.contains("missing"), "{err}");
        assert!(!missing.exists());
    }

    #[test]
    fn a_record_that_is_not_ours_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE_NAME);
        std::fs::write(&path, "garbage").unwrap();
        let mut file = File::open(&path).unwrap();
        assert_eq!(read_holder(&mut file), "it has not recorded its pid");
    }

    /// Another process holds the lock: this one is refused with the other's pid and command
    /// line, and gets the lock once the other is killed with SIGKILL (no stale lock).
    #[test]
    fn a_second_process_is_refused_until_the_first_dies() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "util::lock::tests::hold_the_lock_until_stdin_closes",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR_VAR, dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let locked = stdout
            .lines()
            .map_while(Result::ok)
            .any(|line| line.ends_with(HELD));
        assert!(locked, "the child never took the lock");
        let err = RunLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&format!("pid {}:", child.id())), "{err}");
        assert!(err.contains("hold_the_lock_until_stdin_closes"), "{err}");
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        child.kill().unwrap();
        child.wait().unwrap();
        RunLock::acquire(dir.path()).unwrap();
    }

    /// The child of the test above; does nothing when run without its folder.
    #[test]
    #[ignore = "helper process of a_second_process_is_refused_until_the_first_dies"]
    fn hold_the_lock_until_stdin_closes() {
        let Some(dir) = std::env::var_os(CHILD_DIR_VAR) else {
            return;
        };
        let _lock = RunLock::acquire(Path::new(&dir)).unwrap();
        // libtest may have written "test … ... " on this line already.
        println!("{HELD}");
        std::io::stdout().flush().unwrap();
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
    }
}
