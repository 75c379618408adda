//! Tests of the Hub client without the network: settings from variable maps, a fake cache
//! laid out as hf-hub writes it ([`crate::hub::fixtures`]), and a one-shot HTTP server on
//! loopback standing in for the Hub's API. `serve_once` is shared with the data tests.

mod repo;
mod settings;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::thread::JoinHandle;

use super::HubSettings;

/// Settings that never reach the network or the user's cache.
pub(crate) fn offline_settings(cache: &Path) -> HubSettings {
    HubSettings {
        cache_dir: Some(cache.to_path_buf()),
        offline: true,
        endpoint: "http://127.0.0.1:9".to_owned(),
        ..HubSettings::from_vars(|_| None)
    }
}

/// Settings that reach only `endpoint` (a local server), with the token `secret`.
pub(crate) fn online_settings(cache: &Path, endpoint: String) -> HubSettings {
    HubSettings {
        token: Some("secret".to_owned()),
        offline: false,
        endpoint,
        ..offline_settings(cache)
    }
}

/// Asserts that a request (its head lines) carried the token of [`online_settings`].
pub(crate) fn assert_token_sent(head: &[String]) {
    assert!(
        head.iter()
            .any(|h| h.eq_ignore_ascii_case("authorization: Bearer secret")),
        "{head:?}"
    );
}

/// Serves one request with the JSON `body`; returns the server's address (an endpoint) and a
/// handle yielding the request's head lines.
pub(crate) fn serve_once(body: String) -> (String, JoinHandle<Vec<String>>) {
    let (address, server) = serve(vec![response("200 OK", "application/json", &body, "")]);
    (
        address,
        std::thread::spawn(move || server.join().unwrap().remove(0)),
    )
}

/// An HTTP/1.1 response that closes its connection; `extra` holds more header lines.
pub(crate) fn response(status: &str, content_type: &str, body: &str, extra: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         {extra}Connection: close\r\n\r\n{body}",
        body.len()
    )
}

/// An HTTP/1.1 response with a binary body that closes its connection.
pub(crate) fn response_bytes(status: &str, body: &[u8], extra: &str) -> Vec<u8> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\
         {extra}Connection: close\r\n\r\n",
        body.len()
    );
    [head.as_bytes(), body].concat()
}

/// Answers one request per entry of `responses`, in order; the handle yields each
/// request's head lines.
pub(crate) fn serve(responses: Vec<String>) -> (String, JoinHandle<Vec<Vec<String>>>) {
    serve_bytes(responses.into_iter().map(String::into_bytes).collect())
}

/// [`serve`] with responses as bytes (binary bodies).
pub(crate) fn serve_bytes(responses: Vec<Vec<u8>>) -> (String, JoinHandle<Vec<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let mut heads = Vec::new();
        for response in responses {
            let (mut stream, _) = listener.accept().unwrap();
            let head: Vec<String> = BufReader::new(stream.try_clone().unwrap())
                .lines()
                .map(Result::unwrap)
                .take_while(|line| !line.is_empty())
                .collect();
            stream.write_all(&response).unwrap();
            heads.push(head);
        }
        heads
    });
    (address, server)
}

/// The Hub API's answer to a revision listing: `sha` and `siblings`.
pub(crate) fn listing_body(commit: &str, files: &[&str]) -> String {
    let siblings: Vec<_> = files
        .iter()
        .map(|f| serde_json::json!({ "rfilename": f }))
        .collect();
    serde_json::json!({ "sha": commit, "siblings": siblings }).to_string()
}
