//! Serving the API over TCP with bounds on every client (docs/operations.md,
//! "HTTP limits"): connections in all and per client, a deadline for a
//! request's headers from the connection's first moment (slowloris, and
//! sockets that never send a byte), a stall limit on every frame of a
//! request body and on every write (a client that stops reading a
//! download), a deadline for a request's handling, requests in flight, a
//! per-client request rate (governor), and graceful shutdown.
//!
//! HTTP/1.1 only: one request at a time per connection, so a client's
//! requests in flight are bounded by its connections, and no HTTP/2 flow
//! control can hold a stream open without the socket ever blocking.
//!
//! A *client* is an IPv4 address or an IPv6 /64 (one host's usual share).
//! Loopback clients — local tools, benchmarks, `glassbox dev` — are not
//! rate limited unless [`HttpLimits::rate_limit_loopback`] says so.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock as _;
use governor::{Quota, RateLimiter};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_io_timeout::TimeoutStream;
use tracing::{debug, info, warn};

use super::ApiError;

/// The server's bounds (node.toml's `[http]` table; every field optional).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    /// Open connections in all; more are closed at once. Keep it well
    /// below the process's open-file limit (`ulimit -n`), which storage
    /// and p2p share.
    pub max_connections: usize,
    /// Open connections per client, and so its requests in flight.
    pub max_connections_per_client: usize,
    /// Requests being handled at once; more are answered 503 `busy`.
    pub max_requests_in_flight: usize,
    /// Time for a request's headers to arrive, and for an idle keep-alive
    /// connection to send its next request, in ms.
    pub header_timeout_ms: u64,
    /// Time to read a request's body and answer it (up to the response
    /// headers; a download's body is bounded by `write_stall_ms`), in ms;
    /// 408 `timeout` after it.
    pub request_timeout_ms: u64,
    /// The same for uploads of model blobs and referee tensors, in ms.
    pub upload_timeout_ms: u64,
    /// Longest a request body may send nothing, in ms; 408 after it.
    pub body_stall_ms: u64,
    /// Longest a write to a client may make no progress, in ms; the
    /// connection is closed after it.
    pub write_stall_ms: u64,
    /// Requests per second each client may make on average; 0: no limit.
    pub rate_per_client_per_s: u32,
    /// Requests a client may make at once above its rate.
    pub rate_burst: u32,
    /// Whether loopback clients are rate limited too.
    pub rate_limit_loopback: bool,
    /// Time given to requests in flight at shutdown, in ms.
    pub shutdown_grace_ms: u64,
}

impl HttpLimits {
    /// Refuses values that would stop the server from answering anyone:
    /// zero counts or timeouts.
    pub fn check(&self) -> Result<(), String> {
        let zero = [
            ("max_connections", self.max_connections == 0),
            (
                "max_connections_per_client",
                self.max_connections_per_client == 0,
            ),
            ("max_requests_in_flight", self.max_requests_in_flight == 0),
            ("header_timeout_ms", self.header_timeout_ms == 0),
            ("request_timeout_ms", self.request_timeout_ms == 0),
            ("upload_timeout_ms", self.upload_timeout_ms == 0),
            ("body_stall_ms", self.body_stall_ms == 0),
            ("write_stall_ms", self.write_stall_ms == 0),
        ];
        match zero.iter().find(|(_, z)| *z) {
            Some((name, _)) => Err(format!("[http] {name} must be above 0")),
            None => Ok(()),
        }
    }
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 512,
            max_connections_per_client: 32,
            max_requests_in_flight: 256,
            header_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            upload_timeout_ms: 3_600_000,
            body_stall_ms: 30_000,
            write_stall_ms: 30_000,
            rate_per_client_per_s: 500,
            rate_burst: 1_000,
            rate_limit_loopback: false,
            shutdown_grace_ms: 10_000,
        }
    }
}

/// A client: an IPv4 address or an IPv6 /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Client {
    V4(u32),
    V6(u64),
}

impl Client {
    fn of(ip: IpAddr) -> Client {
        match ip.to_canonical() {
            IpAddr::V4(a) => Client::V4(u32::from(a)),
            IpAddr::V6(a) => Client::V6((u128::from(a) >> 64) as u64),
        }
    }
}

/// How often the rate state of clients quiet long enough to be back at a
/// full burst is dropped, in ms.
const RATE_CLEANUP_EVERY_MS: u64 = 10_000;

type KeyedLimiter = RateLimiter<
    Client,
    governor::state::keyed::DefaultKeyedStateStore<Client>,
    governor::clock::DefaultClock,
>;

/// What every request of a server shares: the in-flight bound and the
/// per-client rate.
#[derive(Debug)]
pub(crate) struct Guard {
    in_flight: Arc<Semaphore>,
    limiter: Option<KeyedLimiter>,
    limit_loopback: bool,
    started: Instant,
    last_cleanup_ms: AtomicU64,
}

impl Guard {
    pub(crate) fn new(limits: &HttpLimits) -> Arc<Guard> {
        let limiter = NonZeroU32::new(limits.rate_per_client_per_s).map(|rate| {
            let burst = NonZeroU32::new(limits.rate_burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Arc::new(Guard {
            in_flight: Arc::new(Semaphore::new(limits.max_requests_in_flight)),
            limiter,
            limit_loopback: limits.rate_limit_loopback,
            started: Instant::now(),
            last_cleanup_ms: AtomicU64::new(0),
        })
    }

    /// Whether `ip` may make a request now; otherwise, how long to wait.
    fn admit(&self, ip: IpAddr) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if ip.to_canonical().is_loopback() && !self.limit_loopback {
            return Ok(());
        }
        // Forget clients that have been quiet long enough to be back at a
        // full burst, at most every RATE_CLEANUP_EVERY_MS.
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_cleanup_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= RATE_CLEANUP_EVERY_MS
            && self
                .last_cleanup_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            limiter.retain_recent();
        }
        limiter
            .check_key(&Client::of(ip))
            .map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))
    }
}

/// The middleware of every route: the per-client rate, then the bound on
/// requests in flight.
pub(crate) async fn guard(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if let Some(addr) = peer
        && let Err(wait) = guard.admit(addr.ip())
    {
        let secs = wait.as_secs().saturating_add(1);
        let mut res = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests from this client; retry in {secs} s"),
        )
        .into_response();
        if let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string()) {
            res.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
        }
        return res;
    }
    let Ok(_permit) = guard.in_flight.clone().try_acquire_owned() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the node is answering as many requests as it takes; retry shortly",
        )
        .into_response();
    };
    next.run(req).await
}

/// The deadlines of [`deadline`]: (requests, uploads).
pub(crate) type Deadlines = (Duration, Duration);

/// The middleware that gives a request its time to be read and answered:
/// uploads (`PUT`) the longer one.
pub(crate) async fn deadline(
    State((request, upload)): State<Deadlines>,
    req: Request,
    next: Next,
) -> Response {
    let timeout = if req.method() == axum::http::Method::PUT {
        upload
    } else {
        request
    };
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!(
                "the request was not read and answered within {} ms",
                timeout.as_millis()
            ),
        )
        .into_response(),
    }
}

/// Open connections per client, released when a connection ends.
#[derive(Debug, Default)]
struct Connections {
    per_client: Mutex<HashMap<Client, usize>>,
}

/// One open connection's place, given back on drop.
struct Place {
    connections: Arc<Connections>,
    client: Client,
    _total: OwnedSemaphorePermit,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut map = self
            .connections
            .per_client
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.client);
            }
        }
    }
}

impl Connections {
    /// A place for a connection of `client`, or `None` when it already
    /// holds `max`.
    fn take(
        self: &Arc<Self>,
        client: Client,
        max: usize,
        total: OwnedSemaphorePermit,
    ) -> Option<Place> {
        let mut map = self.per_client.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(client).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Place {
            connections: self.clone(),
            client,
            _total: total,
        })
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown`
/// completes, then stops accepting and gives the open connections
/// `shutdown_grace_ms` to finish their requests. The router must carry the
/// [`guard`] middleware (as [`super::router_with_blobs`]'s does); each
/// request gets its peer's address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_timeout_ms));
    let body_stall = Duration::from_millis(limits.body_stall_ms);
    let total = Arc::new(Semaphore::new(limits.max_connections));
    let connections = Arc::new(Connections::default());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let write_stall = Duration::from_millis(limits.write_stall_ms);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, then go on.
                    warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = total.clone().try_acquire_owned() else {
            debug!(%peer, "HTTP connection refused: too many connections");
            continue;
        };
        let client = Client::of(peer.ip());
        let Some(place) = connections.take(client, limits.max_connections_per_client, permit)
        else {
            debug!(%peer, "HTTP connection refused: too many from this client");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let mut io = TimeoutStream::new(stream);
        io.set_write_timeout(Some(write_stall));
        let io = TokioIo::new(Box::pin(io));
        let service = tower::ServiceBuilder::new()
            .map_request(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            })
            .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
                body_stall,
            ))
            .map_request(|req: Request<_>| req.map(axum::body::Body::new))
            .service(router.clone());
        let conn = builder.serve_connection(io, TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(%peer, error = %e, "HTTP connection ended");
            }
            drop(place);
        });
    }
    drop(listener);
    let grace = Duration::from_millis(limits.shutdown_grace_ms);
    info!(
        grace_ms = limits.shutdown_grace_ms,
        "HTTP API: finishing requests in flight"
    );
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(
            "HTTP API: connections still open after the grace period; no longer waiting for them"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_addresses_and_ipv6_slash_64s() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Client::of(a), Client::of(b));
        assert_ne!(Client::of(a), Client::of(c));
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(Client::of(v4), Client::of(mapped));
    }

    #[test]
    fn a_client_over_its_rate_waits_and_loopback_does_not() {
        let limits = HttpLimits {
            rate_per_client_per_s: 1,
            rate_burst: 2,
            ..HttpLimits::default()
        };
        let g = Guard::new(&limits);
        let remote: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(g.admit(remote).is_ok());
        assert!(g.admit(remote).is_ok());
        let wait = g.admit(remote).unwrap_err();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert!(g.admit(other).is_ok(), "limits are per client");
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..100 {
            assert!(g.admit(local).is_ok());
        }
    }

    #[test]
    fn connection_places_are_per_client_and_given_back() {
        let total = Arc::new(Semaphore::new(10));
        let c = Arc::new(Connections::default());
        let a = Client::V4(1);
        let p1 = c.take(a, 2, total.clone().try_acquire_owned().unwrap());
        let p2 = c.take(a, 2, total.clone().try_acquire_owned().unwrap());
        assert!(p1.is_some() && p2.is_some());
        assert!(
            c.take(a, 2, total.clone().try_acquire_owned().unwrap())
                .is_none()
        );
        assert!(
            c.take(Client::V4(2), 2, total.clone().try_acquire_owned().unwrap())
                .is_some()
        );
        drop(p1);
        assert!(
            c.take(a, 2, total.clone().try_acquire_owned().unwrap())
                .is_some()
        );
        assert_eq!(
            total.available_permits(),
            10 - 1,
            "only p2 is held: refused and dropped places gave theirs back"
        );
    }
}
