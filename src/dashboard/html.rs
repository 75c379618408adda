//! The single HTML file: the page's own CSS and JavaScript (`assets/dashboard/`, compiled in)
//! and the data blocks, each base64 of gzip inside `<script type="application/octet-stream">`.
//!
//! A Content-Security-Policy meta tag blocks every network request: the page can run inline
//! script and style and show `data:` images, nothing else. Above [`SPLIT_BYTES`] (or with
//! `--split`) the shards go to sibling files `<name>.data/shard-NNNN.js` that call back into
//! the page; browsers load `<script src>` from `file://` where they refuse `fetch`, so the
//! dashboard still opens from disk with no server, and the HTML file stays small. Only then
//! does the policy also allow scripts from `file:`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::bytes::base64;
use super::encode::Encoded;
use crate::util::atomic::write_atomic;
use crate::util::parallel;

/// Above this many bytes of data the shards go to sibling files.
pub const SPLIT_BYTES: usize = 64 << 20;

const TEMPLATE: &str = include_str!("../../assets/dashboard/page.html");
const STYLE: &str = include_str!("../../assets/dashboard/dashboard.css");
const SCRIPT: &str = include_str!("../../assets/dashboard/dashboard.js");

const CSP_INLINE: &str =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:";
const CSP_SPLIT: &str = "default-src 'none'; script-src 'unsafe-inline' file:; style-src 'unsafe-inline'; img-src data:";

/// Where the shards go.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SplitMode {
    /// Inline up to [`SPLIT_BYTES`], sibling files above.
    Auto,
    Always,
}

/// What was written.
#[derive(Clone, Debug, PartialEq)]
pub struct WrittenFiles {
    pub html: PathBuf,
    pub data_files: Vec<PathBuf>,
    pub total_bytes: u64,
}

/// The sibling folder of `out`: `dashboard.html` → `dashboard.data`.
pub fn data_dir(out: &Path) -> PathBuf {
    out.with_extension("data")
}

/// Writes the page (and, when split, its shard files first) atomically.
pub fn write(out: &Path, title: &str, encoded: &Encoded, split: SplitMode) -> Result<WrittenFiles> {
    let shards = &encoded.shards;
    let shard_text: Vec<String> =
        parallel::map(parallel::cores(), shards.len(), |k| base64(&shards[k]));
    let data_bytes: usize = shard_text.iter().map(String::len).sum();
    let split = split == SplitMode::Always || data_bytes > SPLIT_BYTES;
    let dir = data_dir(out);
    let mut data_files = Vec::new();
    let mut blocks = format!(
        "<script type=\"application/octet-stream\" id=\"saectl-index\">{}</script>\n",
        base64(&encoded.index)
    );
    if let Some(prompts) = &encoded.prompts {
        blocks += &format!(
            "<script type=\"application/octet-stream\" id=\"saectl-prompts\">{}</script>\n",
            base64(prompts)
        );
    }
    if split {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        for (k, text) in shard_text.iter().enumerate() {
            let path = dir.join(shard_file_name(k));
            let body = format!("saectlShard({k},\"{text}\");\n");
            write_atomic(&path, body.as_bytes())?;
            data_files.push(path);
        }
    } else {
        for (k, text) in shard_text.iter().enumerate() {
            blocks += &format!(
                "<script type=\"application/octet-stream\" id=\"saectl-shard-{k}\">{text}</script>\n"
            );
        }
    }
    remove_stale_shards(&dir, if split { shard_text.len() } else { 0 })?;
    let folder = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let page = TEMPLATE
        .replace("{{CSP}}", if split { CSP_SPLIT } else { CSP_INLINE })
        .replace("{{TITLE}}", &escape_html(title))
        .replace("{{STYLE}}", STYLE)
        .replace(
            "{{CONFIG}}",
            &format!(
                "<script type=\"application/json\" id=\"saectl-config\">{{\"split\":{split},\"data_dir\":{}}}</script>",
                escape_script(&serde_json::to_string(&folder).expect("a string serialises"))
            ),
        )
        .replace("{{DATA}}", &blocks)
        .replace("{{SCRIPT}}", SCRIPT);
    write_atomic(out, page.as_bytes())?;
    let total_bytes = page.len() as u64
        + data_files
            .iter()
            .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
            .sum::<u64>();
    Ok(WrittenFiles {
        html: out.to_path_buf(),
        data_files,
        total_bytes,
    })
}

fn shard_file_name(k: usize) -> String {
    format!("shard-{k:04}.js")
}

/// Shard files of an earlier, larger (or split) write that this one does not use; the
/// folder itself goes when it ends up empty.
fn remove_stale_shards(dir: &Path, keep: usize) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("failed to list {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let index = name
            .strip_prefix("shard-")
            .and_then(|n| n.strip_suffix(".js"))
            .and_then(|n| n.parse::<usize>().ok());
        if index.is_some_and(|k| k >= keep) {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("failed to remove stale {}", entry.path().display()))?;
        }
    }
    if keep == 0 {
        // Only succeeds when nothing else is in it: never removes a user's files.
        let _ = std::fs::remove_dir(dir);
    }
    Ok(())
}

/// Text for an HTML element or attribute.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON text that cannot close the `<script>` element it is placed in (`\u003c` is `<`).
fn escape_script(text: &str) -> String {
    text.replace('<', "\\u003c")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape_html(r#"<script>"a" & 'b'</script>"#),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn the_template_has_every_placeholder_once() {
        for key in [
            "{{CSP}}",
            "{{TITLE}}",
            "{{STYLE}}",
            "{{CONFIG}}",
            "{{DATA}}",
            "{{SCRIPT}}",
        ] {
            assert_eq!(TEMPLATE.matches(key).count(), 1, "{key}");
        }
        assert!(!SCRIPT.contains("</script"), "the script would end early");
        assert!(!STYLE.contains("</style"), "the style would end early");
    }
}
