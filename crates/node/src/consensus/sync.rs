//! State sync over HTTP (docs/operations.md, "State sync"): a node far
//! behind asks its peers' APIs for their finalized height
//! (`GET /v1/status`) and downloads a snapshot blob (`GET /v1/snapshot`)
//! from peers ahead of it. Nothing a peer sends is trusted: the finalizer
//! checks each blob's certificate against the group key, its block and
//! its records before it starts from it, and tries the next peer when a
//! blob fails (`snapshots::Parsed::verify`).
//!
//! A peer may lie about its height. With `n` validators of which at most
//! `f = (n - 1) / 3` are faulty, the `(f + 1)`-th highest height reported
//! is at or below an honest peer's: sync targets only that height, and
//! tries the peers at or above it closest to it first, so a peer claiming
//! a huge height is tried last. Each download is bounded in bytes and in
//! total time.

use std::time::Duration;

use bytes::Bytes;
use commonware_runtime::Storage;
use futures::future::BoxFuture;
use rand::CryptoRng;
use tracing::{debug, warn};

use crate::chain::Chain;
use crate::consensus::Scheme;
use crate::consensus::snapshots::{Snapshot, SnapshotError, SnapshotSource, Snapshots, parse};

/// How long a peer may take to answer its status.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a peer may pause between two chunks of a download.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest whole snapshot download.
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// Most peers asked.
pub const MAX_SYNC_PEERS: usize = 64;
/// Most bytes of a peer's status answer.
pub(crate) const MAX_STATUS_BYTES: u64 = 1 << 20;
/// The header carrying a served blob's height.
pub const HEIGHT_HEADER: &str = "x-glassbox-snapshot-height";

/// Peers' APIs (base URLs such as `http://10.0.0.2:8545`) to sync from.
#[derive(Debug)]
pub struct HttpSnapshots {
    peers: Vec<String>,
    /// Validators in the network (this node included).
    validators: usize,
    max_bytes: u64,
    client: reqwest::Client,
}

impl HttpSnapshots {
    /// Syncs from `peers` (at most [`MAX_SYNC_PEERS`]; the other
    /// validators of a network of `validators`), downloading at most
    /// `max_bytes` per blob.
    pub fn new(peers: Vec<String>, validators: usize, max_bytes: u64) -> Result<Self, String> {
        let client = glassbox_api::tls::http_client(None)
            .map_err(|e| e.to_string())?
            .connect_timeout(STATUS_TIMEOUT)
            .read_timeout(IDLE_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("building the state sync HTTP client: {e}"))?;
        Ok(HttpSnapshots {
            peers: peers
                .into_iter()
                .map(|p| p.trim_end_matches('/').to_string())
                .take(MAX_SYNC_PEERS)
                .collect(),
            validators,
            max_bytes,
            client,
        })
    }

    async fn height(&self, peer: &str) -> Option<u64> {
        peer_height(&self.client, peer).await
    }

    async fn fetch(&self, peer: &str, above: u64) -> Result<Vec<u8>, String> {
        let answer = self
            .client
            .get(format!("{peer}{}", glassbox_api::routes::SNAPSHOT))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !answer.status().is_success() {
            return Err(format!("answered {}", answer.status()));
        }
        let height = answer
            .headers()
            .get(HEIGHT_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| format!("sent no {HEIGHT_HEADER} header"))?;
        if height <= above {
            return Err(format!(
                "its snapshot is at height {height}, not above {above}"
            ));
        }
        read_limited(answer, self.max_bytes).await
    }
}

/// The trusted height and the peers to try for a target above `above`,
/// given each peer's reported height (`None`: no answer) in a network of
/// `validators`: see the module documentation.
pub fn choose(
    reported: &[(String, Option<u64>)],
    validators: usize,
    above: u64,
) -> Option<(u64, Vec<String>)> {
    let faulty = validators.saturating_sub(1) / 3;
    let mut heights: Vec<u64> = reported.iter().filter_map(|(_, h)| *h).collect();
    heights.sort_unstable_by_key(|&h| std::cmp::Reverse(h));
    let bound = *heights.get(faulty)?;
    if bound <= above {
        return None;
    }
    let mut peers: Vec<(u64, &String)> = reported
        .iter()
        .filter_map(|(p, h)| h.filter(|&h| h >= bound).map(|h| (h, p)))
        .collect();
    peers.sort_unstable_by_key(|&(h, _)| h);
    Some((bound, peers.into_iter().map(|(_, p)| p.clone()).collect()))
}

impl SnapshotSource for HttpSnapshots {
    fn offers(&self, above: u64) -> BoxFuture<'_, Option<(u64, Vec<String>)>> {
        Box::pin(async move {
            let heights =
                futures::future::join_all(self.peers.iter().map(|p| self.height(p))).await;
            let reported: Vec<(String, Option<u64>)> =
                self.peers.iter().cloned().zip(heights).collect();
            let offers = choose(&reported, self.validators, above);
            if offers.is_none() {
                debug!(above, "no peer is far enough ahead for state sync");
            }
            offers
        })
    }

    fn download<'a>(&'a self, peer: &'a str, above: u64) -> BoxFuture<'a, Result<Vec<u8>, String>> {
        Box::pin(async move {
            tokio::time::timeout(DOWNLOAD_TIMEOUT, self.fetch(peer, above))
                .await
                .map_err(|_| format!("took longer than {} s", DOWNLOAD_TIMEOUT.as_secs()))?
        })
    }
}

/// The finalized height `peer`'s API reports (`GET /v1/status`), within
/// [`STATUS_TIMEOUT`] and [`MAX_STATUS_BYTES`]; `None` when it does not
/// answer so.
pub(crate) async fn peer_height(client: &reqwest::Client, peer: &str) -> Option<u64> {
    let answer = client
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

/// Downloads a peer's snapshot above height `above` for `chain` and no
/// more than `sync_ahead_blocks` below the height the peers can be
/// trusted to have reached (so a faulty peer cannot hand over a genuine
/// but stale one: an honest peer's newest snapshot is within a snapshot
/// interval of its tip). Peers in the source's order; the first blob
/// whose certificate verifies under the group key, certifies its block
/// and whose records hash to that block's state root, of this chain, is
/// stored durably as this node's own snapshot (a restart before the node
/// writes one starts from it) and returned.
pub async fn fetch<E: Storage + CryptoRng>(
    context: &mut E,
    source: &dyn SnapshotSource,
    snapshots: &Snapshots,
    verifier: &Scheme,
    chain: &Chain,
    above: u64,
) -> Option<Snapshot> {
    let chain_id = chain.finalized_state().chain_id();
    let (target, peers) = source.offers(above).await?;
    let above = above.max(target.saturating_sub(snapshots.sync_ahead_blocks()));
    for peer in peers {
        let blob = match source.download(&peer, above).await {
            Ok(blob) => blob,
            Err(e) => {
                warn!(%peer, error = %e, "state snapshot download failed");
                continue;
            }
        };
        let checked = parse(&blob, None).and_then(|p| {
            if p.height() <= above {
                return Err(SnapshotError::Malformed(format!(
                    "its height {} is not above {above}",
                    p.height()
                )));
            }
            // The certificate first: cheap, before the records are
            // rebuilt.
            p.verify(context, verifier)?;
            let s = p.rebuild()?;
            if s.state.chain_id() != chain_id {
                return Err(SnapshotError::Certificate("is of another chain"));
            }
            Ok(s)
        });
        let snapshot = match checked {
            Ok(s) => s,
            Err(e) => {
                warn!(%peer, error = %e, "refusing a peer's state snapshot");
                continue;
            }
        };
        let height = snapshot.height();
        if let Err(e) = snapshots.store(context, height, Bytes::from(blob)).await {
            warn!(%peer, height, error = %e, "storing a peer's state snapshot failed");
            return None;
        }
        debug!(%peer, height, "fetched a peer's state snapshot");
        return Some(snapshot);
    }
    None
}

/// The body of `answer`, refused past `max_bytes`.
pub(crate) async fn read_limited(
    mut answer: reqwest::Response,
    max_bytes: u64,
) -> Result<Vec<u8>, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn reported(hs: &[Option<u64>]) -> Vec<(String, Option<u64>)> {
        hs.iter()
            .enumerate()
            .map(|(i, h)| (format!("p{i}"), *h))
            .collect()
    }

    #[test]
    fn a_lying_height_does_not_set_the_target_and_is_tried_last() {
        // 4 validators (f = 1): this node and three peers, one claiming
        // u64::MAX. The second highest (5000) is the target.
        let r = reported(&[Some(5_000), Some(u64::MAX), Some(4_990)]);
        let peers = |v: &[&str]| v.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        assert_eq!(choose(&r, 4, 2_000), Some((5_000, peers(&["p0", "p1"]))));
        // Not far enough ahead by the honest bound: no sync, whatever the
        // liar says.
        let r = reported(&[Some(1_000), Some(u64::MAX), None]);
        assert_eq!(choose(&r, 4, 2_000), None);
        // Too few answers to bound the liars: no sync.
        let r = reported(&[Some(u64::MAX), None, None]);
        assert_eq!(choose(&r, 4, 0), None);
        // One validator beside this node (n = 2, f = 0): its height.
        let r = reported(&[Some(9_000)]);
        assert_eq!(choose(&r, 2, 2_000), Some((9_000, peers(&["p0"]))));
    }
}
