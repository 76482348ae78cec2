//! The client against a hostile cloud: a small HTTP server written here (raw
//! HTTP/1.1 over TCP, so it can misbehave in ways a framework would not let it)
//! that sends endless bodies, endless pages, absurd `Retry-After` values, `next`
//! links that point elsewhere, and a Keystone that never answers. Each case once
//! crashed, hung or leaked; each must now end in a typed error.

// Tests fail by panicking: unwrap, expect and indexing say so plainly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::let_underscore_must_use,
    clippy::print_stdout,
    clippy::print_stderr
)]

use stackpilot::cloud::{Client, ErrorKind};
use stackpilot::config::clouds::{AuthMethod, CloudSource, DomainRef, Interface, Scope, UserRef};
use stackpilot::config::{CloudConfig, Secret};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the hostile cloud misbehaves.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    EndlessBody,
    EndlessPages,
    RetryAfter(&'static str),
    LeakyNext,
    HungKeystone,
}

struct Hostile {
    port: u16,
    auth_requests: Arc<AtomicU64>,
    /// Requests the other host (the `next` link target) received with a token.
    leaked: Arc<AtomicU64>,
}

async fn read_head(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut b = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut b).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&b[..n]),
        }
        if buf.len() > 64 * 1024 {
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

async fn reply(s: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &str) {
    let mut r = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.push_str(body);
    let _ = s.write_all(r.as_bytes()).await;
}

fn token_body(port: u16) -> String {
    let exp = (chrono::Utc::now() + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%S%.6fZ");
    let ep = |t: &str, url: String| serde_json::json!({"type": t, "name": t, "endpoints": [{"interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": url}]});
    serde_json::json!({"token": {
        "expires_at": exp.to_string(), "methods": ["password"],
        "project": {"id": "p1", "name": "hostile"}, "user": {"id": "u1", "name": "admin"},
        "catalog": [ep("compute", format!("http://127.0.0.1:{port}/compute/v2.1")), ep("image", format!("http://127.0.0.1:{port}/v2"))]
    }})
    .to_string()
}

async fn serve(mut s: TcpStream, mode: Mode, port: u16, evil: u16, auth: Arc<AtomicU64>) {
    let head = read_head(&mut s).await;
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    if path.starts_with("/v3/auth/tokens") {
        auth.fetch_add(1, Ordering::SeqCst);
        if mode == Mode::HungKeystone {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        reply(&mut s, "201 Created", &[("X-Subject-Token", "tok-123".into())], &token_body(port)).await;
    } else if path == "/compute/"
        || path == "/compute"
        || path.starts_with("/compute/v2.1/?")
        || path == "/compute/v2.1/"
        || path == "/compute/v2.1"
    {
        reply(
            &mut s,
            "200 OK",
            &[],
            r#"{"version": {"id": "v2.1", "version": "2.96", "min_version": "2.1", "status": "CURRENT"}}"#,
        )
        .await;
    } else if path.starts_with("/compute/v2.1/servers/detail") {
        match mode {
            Mode::EndlessBody => {
                let h = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                if s.write_all(h.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("{:x}\r\n{}\r\n", 65536, " ".repeat(65536));
                while s.write_all(chunk.as_bytes()).await.is_ok() {}
            }
            Mode::EndlessPages => {
                // Every page has a next link and a server with a new id.
                let id = uuid::Uuid::new_v4();
                let body = serde_json::json!({
                    "servers": [{"id": id.to_string(), "name": "again", "status": "ACTIVE"}],
                    "servers_links": [{"rel": "next", "href": format!("http://127.0.0.1:{port}/compute/v2.1/servers/detail?marker={id}")}]
                });
                reply(&mut s, "200 OK", &[], &body.to_string()).await;
            }
            Mode::RetryAfter(v) => {
                reply(&mut s, "503 Service Unavailable", &[("Retry-After", v.to_string())], r#"{"message": "busy"}"#)
                    .await;
            }
            _ => reply(&mut s, "200 OK", &[], r#"{"servers": []}"#).await,
        }
    } else if path.starts_with("/v2/images") {
        let body = serde_json::json!({
            "images": [{"id": "img-1", "name": "one", "status": "active"}],
            "next": format!("@127.0.0.1:{evil}/v2/images?marker=img-1")
        });
        reply(&mut s, "200 OK", &[], &body.to_string()).await;
    } else {
        reply(&mut s, "404 Not Found", &[], r#"{"message": "no"}"#).await;
    }
}

async fn hostile(mode: Mode) -> Hostile {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    // The host a leaky `next` link points at: it counts tokens it receives.
    let evil = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let evil_port = evil.local_addr().unwrap().port();
    let leaked = Arc::new(AtomicU64::new(0));
    let lk = leaked.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = evil.accept().await {
            let head = read_head(&mut s).await;
            if head.to_ascii_lowercase().contains("x-auth-token") {
                lk.fetch_add(1, Ordering::SeqCst);
            }
            reply(&mut s, "200 OK", &[], r#"{"images": []}"#).await;
        }
    });
    let auth = Arc::new(AtomicU64::new(0));
    let a = auth.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve(s, mode, port, evil_port, a.clone()));
        }
    });
    Hostile { port, auth_requests: auth, leaked }
}

fn client(h: &Hostile, timeout: Duration) -> Client {
    let d = DomainRef { id: Some("default".into()), name: None };
    let cloud = CloudConfig {
        name: "hostile".into(),
        source: CloudSource::Env,
        auth_url: format!("http://127.0.0.1:{}/v3", h.port),
        auth: AuthMethod::Password {
            user: UserRef { id: None, name: Some("admin".into()), domain: d.clone() },
            password: Secret::new("secret"),
            scope: Scope::Project { id: None, name: Some("hostile".into()), domain: d },
        },
        region: Some("RegionOne".into()),
        regions: vec![],
        interface: Interface::Public,
        verify: true,
        cacert: None,
        client_cert: None,
        client_key: None,
        endpoint_overrides: Default::default(),
    };
    Client::with_timeout(cloud, timeout).unwrap()
}

#[tokio::test]
async fn an_endless_body_is_an_error_not_an_out_of_memory_abort() {
    let h = hostile(Mode::EndlessBody).await;
    let e = client(&h, Duration::from_secs(60)).compute().list_servers(&Default::default()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidResponse, "{e}");
    assert!(e.message.contains("larger than 64 MiB"), "{e}");
}

#[tokio::test]
async fn endless_pages_are_an_error_not_an_endless_loop() {
    let h = hostile(Mode::EndlessPages).await;
    let e = client(&h, Duration::from_secs(10)).compute().list_servers(&Default::default()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidResponse, "{e}");
    assert!(e.message.contains("more than 10000 pages"), "{e}");
}

#[tokio::test]
async fn absurd_retry_after_values_are_errors_not_panics() {
    for v in ["1e300", "inf", "-inf", "NaN", "18446744073709551616", "Wed, 21 Oct 2525 07:28:00 GMT"] {
        let h = hostile(Mode::RetryAfter(v)).await;
        let e = client(&h, Duration::from_secs(5)).compute().list_servers(&Default::default()).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Transient, "{v}: {e}");
        assert!(e.retry_after.is_none_or(|d| d <= stackpilot::cloud::session::RETRY_AFTER_CAP), "{v}");
    }
}

#[tokio::test]
async fn a_next_link_to_another_host_is_not_followed_with_the_token() {
    let h = hostile(Mode::LeakyNext).await;
    let r = client(&h, Duration::from_secs(5)).image().list_images().await;
    assert!(r.is_err(), "{r:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.leaked.load(Ordering::SeqCst), 0, "the token was sent to another host");
}

#[tokio::test]
async fn a_hung_keystone_is_tried_once_by_concurrent_callers() {
    let h = hostile(Mode::HungKeystone).await;
    let c = client(&h, Duration::from_secs(1));
    let (a, b) = (c.compute(), c.image());
    let q = Default::default();
    let (r1, r2) = tokio::join!(a.list_servers(&q), b.list_images());
    assert!(r1.is_err() && r2.is_err());
    assert_eq!(h.auth_requests.load(Ordering::SeqCst), 1, "the second caller shares the first one's timeout");
}
