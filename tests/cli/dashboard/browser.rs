//! Headless Chromium for the dashboard tests: Debian's `chromium` (`.ci/run` installs it),
//! started with a fresh profile and no network, reading the page's self-test summary from
//! `--dump-dom` and taking screenshots.
//!
//! `--virtual-time-budget` lets the page finish its asynchronous work (inflating data blocks)
//! before the DOM is dumped; under virtual time the page's clock stands still while script
//! runs, so the timings it reports here are not wall-clock times (the speed benchmark,
//! `examples/dashboard_synthetic.rs` and docs/benchmarks.md, measures those).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The Chromium binary, or a panic that says how to install it.
pub fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "chromium-headless-shell"] {
        if let Some(path) = std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
        {
            return path;
        }
    }
    panic!(
        "the dashboard tests need Chromium: `apt-get install chromium` (.ci/run installs it when missing)"
    );
}

fn base_command(profile: &Path) -> Command {
    let mut command = Command::new(chromium());
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--virtual-time-budget=30000",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command
}

fn url(html: &Path, hash: &str) -> String {
    format!("file://{}#{hash}", html.canonicalize().unwrap().display())
}

/// The whole DOM after the page settled.
pub fn dump_dom(html: &Path, hash: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let output = base_command(profile.path())
        .arg("--dump-dom")
        .arg(url(html, hash))
        .output()
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the DOM is UTF-8")
}

/// The page's self-test summary for `#selftest&{view}`; fails on any error it counted.
pub fn selftest(html: &Path, view: &str) -> Value {
    let dom = dump_dom(html, &format!("selftest&{view}"));
    let summary = selftest_json(&dom).unwrap_or_else(|| {
        panic!(
            "the page wrote no self-test summary; the DOM ends with {}",
            &dom[dom.len().saturating_sub(2000)..]
        )
    });
    assert!(summary.get("fatal").is_none(), "the page failed: {summary}");
    let problems = &summary["problems"];
    for key in ["console_errors", "script_errors", "csp_violations"] {
        assert_eq!(problems[key], 0, "{key}: {problems}");
    }
    summary
}

/// The JSON inside `<pre id="selftest" … data-done="1">`, unescaped.
pub fn selftest_json(dom: &str) -> Option<Value> {
    let start = dom.find("<pre id=\"selftest\"")?;
    let rest = &dom[start..];
    if !rest[..rest.find('>')?].contains("data-done") {
        return None;
    }
    let body = &rest[rest.find('>')? + 1..rest.find("</pre>")?];
    let text = body
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    Some(serde_json::from_str(&text).expect("the summary is JSON"))
}

/// A PNG of the page at 1400×1000.
pub fn screenshot(html: &Path, hash: &str, png: &Path) {
    let profile = tempfile::tempdir().unwrap();
    let output = base_command(profile.path())
        .arg("--window-size=1400,1000")
        .arg(format!("--screenshot={}", png.display()))
        .arg(url(html, hash))
        .output()
        .expect("chromium runs");
    assert!(
        output.status.success() && png.is_file(),
        "chromium took no screenshot: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
