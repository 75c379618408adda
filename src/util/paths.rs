//! Where a command's output folder may go relative to its inputs: not onto an input folder,
//! not inside one, and not around one. A samples folder or run written into the cache it
//! reads mixes two owners' files in one folder (and a resumed run's clean-up of stale
//! temporaries would reach into the other's); a cache written into the text folder it reads
//! would be read back as text by the next run. Refused before anything is loaded.
//!
//! Paths are compared resolved: made absolute, with links and `..` resolved in the part that
//! exists (an output folder usually does not exist yet).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Refuses `out` (given as `out_flag`) on, inside or around the input folder `input`
/// (given as `input_flag`).
pub fn check_apart(out: &Path, out_flag: &str, input: &Path, input_flag: &str) -> Result<()> {
    let (o, i) = (resolved(out)?, resolved(input)?);
    let (shown_out, shown_in) = (out.display(), input.display());
    if o == i {
        bail!("{out_flag} {shown_out} is {input_flag} itself; write the output to another folder");
    }
    if o.starts_with(&i) {
        bail!(
            "{out_flag} {shown_out} is inside {input_flag} {shown_in}; write the output outside it"
        );
    }
    if i.starts_with(&o) {
        bail!("{input_flag} {shown_in} is inside {out_flag} {shown_out}; write the output to another folder");
    }
    Ok(())
}

/// `path` absolute, its longest existing ancestor canonicalized, the rest appended.
fn resolved(path: &Path) -> Result<PathBuf> {
    let absolute = std::path::absolute(path)
        .with_context(|| format!("cannot resolve the path {}", path.display()))?;
    let mut existing = absolute.as_path();
    let mut rest: Vec<OsString> = Vec::new();
    loop {
        if let Ok(mut found) = existing.canonicalize() {
            found.extend(rest.iter().rev());
            return Ok(found);
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return Ok(absolute),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_on_inside_or_around_an_input_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        std::fs::create_dir(&cache).unwrap();
        let check = |out: &Path| check_apart(out, "--out", &cache, "--activations");
        let err = |out: &Path| check(out).unwrap_err().to_string();
        assert!(err(&cache).contains("is --activations itself"));
        assert!(err(&cache.join("samples/new")).contains("is inside --activations"));
        assert!(err(&cache.join("../cache/./x")).contains("is inside --activations"));
        assert!(
            err(dir.path()).contains("--activations")
                && err(dir.path()).contains("is inside --out")
        );
        check(&dir.path().join("samples")).unwrap();
        check(&dir.path().join("cache-2")).unwrap();
        // A link to the cache is the cache.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&cache, &link).unwrap();
        assert!(err(&link.join("samples")).contains("is inside"));
    }
}
