//! Wall-clock timings of a dashboard page in headless Chromium.
//!
//! The tests read the page's self-test with `--dump-dom`, which needs `--virtual-time-budget`
//! to wait for the page's asynchronous work — and under virtual time the page's clock stands
//! still while script runs. Here Chromium runs on real time and is driven over the DevTools
//! protocol on a pipe (`--remote-debugging-pipe`: commands on fd 3, replies on fd 4, each a
//! JSON message ended by NUL): open the page, then ask it every 100 ms whether its self-test
//! has written its summary.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

extern "C" {
    fn pipe(fds: *mut i32) -> i32;
    fn dup2(old: i32, new: i32) -> i32;
}

fn make_pipe() -> Result<(RawFd, RawFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: `pipe` writes two descriptors into the array it is given.
    if unsafe { pipe(fds.as_mut_ptr()) } != 0 {
        bail!("pipe() failed");
    }
    Ok((fds[0], fds[1]))
}

struct DevTools {
    to_browser: File,
    from_browser: BufReader<File>,
    next_id: u64,
}

impl DevTools {
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Result<Value> {
        self.next_id += 1;
        let mut message = json!({"id": self.next_id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = session.into();
        }
        let mut bytes = serde_json::to_vec(&message)?;
        bytes.push(0);
        self.to_browser.write_all(&bytes)?;
        loop {
            let mut reply = Vec::new();
            if self.from_browser.read_until(0, &mut reply)? == 0 {
                bail!("chromium closed the DevTools pipe");
            }
            reply.pop();
            let reply: Value = serde_json::from_slice(&reply)?;
            if reply["id"] == self.next_id {
                if let Some(error) = reply.get("error") {
                    bail!("{method}: {error}");
                }
                return Ok(reply["result"].clone());
            }
        }
    }
}

/// Opens `html#hash` (the hash should hold `selftest`) and returns the page's summary.
pub fn selftest_wall_clock(chromium: &Path, html: &Path, hash: &str) -> Result<Value> {
    let (browser_reads, we_write) = make_pipe()?;
    let (we_read, browser_writes) = make_pipe()?;
    let profile = tempfile::tempdir()?;
    let mut command = Command::new(chromium);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if dup2(browser_reads, 3) < 0 || dup2(browser_writes, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().context("cannot start chromium")?;
    // SAFETY: the descriptors were just created and are owned here alone.
    let mut tools = unsafe {
        DevTools {
            to_browser: File::from_raw_fd(we_write),
            from_browser: BufReader::new(File::from_raw_fd(we_read)),
            next_id: 0,
        }
    };
    let result = drive(&mut tools, html, hash);
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn drive(tools: &mut DevTools, html: &Path, hash: &str) -> Result<Value> {
    let url = format!("file://{}#{hash}", html.canonicalize()?.display());
    let target = tools.call(None, "Target.createTarget", json!({"url": url}))?;
    let attached = tools.call(
        None,
        "Target.attachToTarget",
        json!({"targetId": target["targetId"], "flatten": true}),
    )?;
    let session = attached["sessionId"]
        .as_str()
        .context("no session")?
        .to_string();
    let started = Instant::now();
    let probe = "(() => { const p = document.getElementById('selftest'); \
                 return p && p.dataset.done ? p.textContent : ''; })()";
    while started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(100));
        let reply = tools.call(
            Some(&session),
            "Runtime.evaluate",
            json!({"expression": probe, "returnByValue": true}),
        )?;
        if let Some(text) = reply["result"]["value"].as_str().filter(|t| !t.is_empty()) {
            return Ok(serde_json::from_str(text)?);
        }
    }
    bail!("the page's self-test did not finish in 120 s")
}
