//! The API's server against hostile clients over real TCP (issue #27 item
//! 5, docs/operations.md "HTTP limits"): headers sent too slowly, too many
//! connections from one client, requests over a client's rate, a body that
//! never arrives, a download nobody reads, and shutdown; and the clients
//! over TLS (a node behind a TLS terminator, with a private CA:
//! `tests/fixtures/tls/`, a test CA and a `localhost` certificate valid
//! 2020-2120, made with `openssl ca`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glassbox_node::api::{Api, HttpLimits, serve_with_blobs};
use glassbox_node::consensus::snapshots::NewestSnapshot;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

mod common;
use common::*;

struct Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// A node API on a loopback port within `limits`, serving a 64 MiB
/// snapshot (a download larger than the socket buffers).
async fn server(limits: HttpLimits) -> Server {
    let mut api = Api::new(chain_of(&genesis(), true));
    api.limits.http = limits;
    let newest = Arc::new(NewestSnapshot::default());
    newest.set(1000, bytes::Bytes::from(vec![7u8; 64 << 20]));
    api.snapshots = Some(newest);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(serve_with_blobs(listener, api, None, async move {
        let _ = stopped.wait_for(|s| *s).await;
    }));
    Server { addr, stop, task }
}

/// Everything the server sends on `conn` until it closes it (or 5 s pass).
async fn read_all(conn: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The answer to one `GET path` on a new connection.
async fn get(addr: SocketAddr, path: &str) -> String {
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    read_all(&mut c).await
}

#[tokio::test]
async fn headers_sent_too_slowly_are_cut_off() {
    let s = server(HttpLimits {
        header_timeout_ms: 300,
        ..HttpLimits::default()
    })
    .await;
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let t = Instant::now();
    let answer = read_all(&mut c).await;
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(!answer.contains("200 OK"), "{answer}");
    // An idle keep-alive connection is closed the same way.
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let t = Instant::now();
    let answer = read_all(&mut c).await;
    assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed() {
    let s = server(HttpLimits {
        header_timeout_ms: 300,
        ..HttpLimits::default()
    })
    .await;
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    let t = Instant::now();
    let _ = read_all(&mut c).await;
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[tokio::test]
async fn a_body_that_stalls_is_cut_off() {
    let s = server(HttpLimits {
        body_stall_ms: 300,
        ..HttpLimits::default()
    })
    .await;
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(
        b"PUT /v1/tensors/00 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\
          Connection: close\r\n\r\n0123456789",
    )
    .await
    .unwrap();
    let t = Instant::now();
    let answer = read_all(&mut c).await;
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );
}

#[tokio::test]
async fn connections_are_bounded_per_client() {
    let s = server(HttpLimits {
        max_connections_per_client: 2,
        ..HttpLimits::default()
    })
    .await;
    let a = TcpStream::connect(s.addr).await.unwrap();
    let _b = TcpStream::connect(s.addr).await.unwrap();
    // The third is closed without an answer.
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    let _ = c
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    let t = Instant::now();
    assert_eq!(read_all(&mut c).await, "");
    assert!(t.elapsed() < Duration::from_secs(3));
    // A place given back is free again.
    drop(a);
    let mut answer = String::new();
    for _ in 0..50 {
        answer = get(s.addr, "/health").await;
        if !answer.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
}

#[tokio::test]
async fn a_client_over_its_rate_is_told_when_to_retry() {
    let s = server(HttpLimits {
        rate_per_client_per_s: 1,
        rate_burst: 2,
        rate_limit_loopback: true,
        ..HttpLimits::default()
    })
    .await;
    assert!(get(s.addr, "/v1/status").await.contains("200 OK"));
    assert!(get(s.addr, "/v1/status").await.contains("200 OK"));
    let third = get(s.addr, "/v1/status").await.to_ascii_lowercase();
    assert!(third.starts_with("http/1.1 429"), "{third}");
    assert!(third.contains("retry-after: 1"), "{third}");
    assert!(third.contains("\"rate_limited\""), "{third}");
    // Loopback is exempt by default.
    let s = server(HttpLimits {
        rate_per_client_per_s: 1,
        rate_burst: 1,
        ..HttpLimits::default()
    })
    .await;
    for _ in 0..5 {
        assert!(get(s.addr, "/v1/status").await.contains("200 OK"));
    }
}

#[tokio::test]
async fn a_body_that_never_arrives_times_out() {
    let s = server(HttpLimits {
        request_timeout_ms: 300,
        ..HttpLimits::default()
    })
    .await;
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(
        b"POST /v1/tx HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 1000\r\nConnection: close\r\n\r\n{\"tx\": \"00",
    )
    .await
    .unwrap();
    let t = Instant::now();
    let answer = read_all(&mut c).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"timeout\""), "{answer}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[tokio::test]
async fn a_client_that_stops_reading_loses_its_connection() {
    let s = server(HttpLimits {
        write_stall_ms: 300,
        max_connections_per_client: 1,
        ..HttpLimits::default()
    })
    .await;
    // Asks for 64 MiB and never reads: the server's writes stall.
    let mut stuck = TcpStream::connect(s.addr).await.unwrap();
    stuck
        .write_all(b"GET /v1/snapshot HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Its place comes back once the stall limit closes it.
    let t = Instant::now();
    let mut answer = String::new();
    while t.elapsed() < Duration::from_secs(10) {
        answer = get(s.addr, "/health").await;
        if !answer.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
    drop(stuck);
}

#[tokio::test]
async fn shutdown_stops_accepting_and_ends() {
    let s = server(HttpLimits {
        shutdown_grace_ms: 2_000,
        ..HttpLimits::default()
    })
    .await;
    assert!(get(s.addr, "/health").await.starts_with("HTTP/1.1 "));
    s.stop.send(true).unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), s.task).await;
    assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
    assert!(TcpStream::connect(s.addr).await.is_err(), "still accepting");
}

/// A TLS terminator in front of the API (as docs/operations.md shows with
/// Caddy or nginx), with the fixture's `localhost` certificate.
async fn tls_server() -> SocketAddr {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("node.pem"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("node.key")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let router = glassbox_node::api::router(Api::new(chain_of(&genesis(), true)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn clients_speak_tls_and_trust_a_given_ca() {
    let addr = tls_server().await;
    let url = format!("https://localhost:{}", addr.port());
    let ca = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls/ca.pem"),
    )
    .unwrap();
    let timeout = Duration::from_secs(10);
    let client = glassbox_api::Client::with_ca(&url, timeout, Some(&ca)).unwrap();
    let status = client.status().await.unwrap();
    assert_eq!(
        status.chain_id,
        chain_of(&genesis(), true).finalized_state().chain_id()
    );
    // Without the CA the certificate is not trusted.
    let client = glassbox_api::Client::new(&url, timeout).unwrap();
    let e = client.status().await.unwrap_err().to_string();
    assert!(e.contains("certificate"), "{e}");
}
