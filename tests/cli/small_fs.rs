//! A small file system for the tests that need one: a tmpfs mounted by the test (disk full,
//! read-only output). Mounting needs root, as in CI; elsewhere [`SmallFs::mount`] prints why
//! the test is skipped and returns `None`.

use std::path::Path;
use std::process::Command;

/// A tmpfs of a chosen size, unmounted when dropped.
pub struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    /// A 64 MiB tmpfs, or `None` (and the reason printed) where mounting is not allowed.
    pub fn mount(test: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "saectl-enospc"])
            .arg(dir.path())
            .output();
        match output {
            Ok(out) if out.status.success() => Some(Self { dir }),
            Ok(out) => {
                let reason = String::from_utf8_lossy(&out.stderr).trim().to_string();
                eprintln!("{test}: skipped, cannot mount a tmpfs ({reason}); needs root");
                None
            }
            Err(err) => {
                eprintln!("{test}: skipped, cannot run mount ({err})");
                None
            }
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Changes the file system's size (tmpfs resizes in place, keeping its files).
    pub fn resize(&self, bytes: u64) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={bytes}")])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(status.success(), "remount to {bytes} bytes failed");
    }
}

impl SmallFs {
    /// Makes the file system read-only (writes fail with EROFS, for root too).
    pub fn read_only(&self) {
        let status = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(status.success(), "remount read-only failed");
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.path()).status();
    }
}
