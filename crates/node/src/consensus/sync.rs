//! State sync over HTTP (docs/operations.md, "State sync"): a node far
//! behind asks its peers' APIs for their finalized height
//! (`GET /v1/status`) and downloads the newest snapshot blob
//! (`GET /v1/snapshot`) of the one furthest ahead. Nothing a peer sends
//! is trusted: the finalizer checks the blob's certificate against the
//! group key, its block and its records before it starts from it
//! (`snapshots::Snapshot::verify`).

use std::time::Duration;

use futures::future::BoxFuture;
use tracing::{debug, info, warn};

use crate::consensus::snapshots::SnapshotSource;

/// How long a peer may take to answer its status.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a peer may pause between two chunks of a snapshot download.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most peers asked.
pub const MAX_SYNC_PEERS: usize = 64;

/// Peers' APIs (base URLs such as `http://10.0.0.2:8545`) to sync from.
#[derive(Debug)]
pub struct HttpSnapshots {
    peers: Vec<String>,
    max_bytes: u64,
    client: reqwest::Client,
}

impl HttpSnapshots {
    /// Syncs from `peers` (at most [`MAX_SYNC_PEERS`]), downloading at most
    /// `max_bytes` per blob.
    pub fn new(peers: Vec<String>, max_bytes: u64) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(STATUS_TIMEOUT)
            .read_timeout(IDLE_TIMEOUT)
            .build()
            .unwrap_or_default();
        HttpSnapshots {
            peers: peers
                .into_iter()
                .map(|p| p.trim_end_matches('/').to_string())
                .take(MAX_SYNC_PEERS)
                .collect(),
            max_bytes,
            client,
        }
    }

    async fn height(&self, peer: &str) -> Option<u64> {
        let answer = self
            .client
            .get(format!("{peer}{}", glassbox_api::routes::STATUS))
            .timeout(STATUS_TIMEOUT)
            .send()
            .await
            .ok()?;
        if !answer.status().is_success() {
            return None;
        }
        let body = read_limited(answer, MAX_STATUS_BYTES).await.ok()?;
        let status: serde_json::Value = serde_json::from_slice(&body).ok()?;
        status.get("finalized_height")?.as_u64()
    }

    async fn download(&self, peer: &str) -> Result<Vec<u8>, String> {
        let answer = self
            .client
            .get(format!("{peer}{}", glassbox_api::routes::SNAPSHOT))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !answer.status().is_success() {
            return Err(format!("answered {}", answer.status()));
        }
        read_limited(answer, self.max_bytes).await
    }
}

/// Most bytes of a peer's status answer.
const MAX_STATUS_BYTES: u64 = 1 << 20;

/// The body of `answer`, refused past `max_bytes`.
async fn read_limited(mut answer: reqwest::Response, max_bytes: u64) -> Result<Vec<u8>, String> {
    if answer.content_length().is_some_and(|n| n > max_bytes) {
        return Err(format!("offers more than {max_bytes} bytes"));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = answer.chunk().await.map_err(|e| e.to_string())? {
        if (bytes.len() + chunk.len()) as u64 > max_bytes {
            return Err(format!("sent more than {max_bytes} bytes"));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

impl SnapshotSource for HttpSnapshots {
    fn fetch(&self, above: u64) -> BoxFuture<'_, Option<(String, Vec<u8>)>> {
        Box::pin(async move {
            let heights =
                futures::future::join_all(self.peers.iter().map(|p| self.height(p))).await;
            let mut ahead: Vec<(u64, &String)> = heights
                .into_iter()
                .zip(&self.peers)
                .filter_map(|(h, p)| h.filter(|&h| h > above).map(|h| (h, p)))
                .collect();
            // Furthest ahead first; the next one if a download fails.
            ahead.sort_unstable_by_key(|a| std::cmp::Reverse(a.0));
            for (height, peer) in ahead {
                info!(%peer, height, "downloading a peer's state snapshot");
                match self.download(peer).await {
                    Ok(bytes) => return Some((peer.clone(), bytes)),
                    Err(e) => warn!(%peer, error = %e, "state snapshot download failed"),
                }
            }
            debug!(above, "no peer is far enough ahead for state sync");
            None
        })
    }
}
