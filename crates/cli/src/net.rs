//! The CLI's side of a node's API: the one typed client
//! (`glassbox_api::blocking::Client`), and the steps every networked
//! command shares: reading the chain's id and parameters, signing with the
//! account's next nonce at the chain's fee, submitting through a busy node,
//! waiting for finality and uploading a model's bytes.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use glassbox_api::blocking::Client;
use glassbox_api::wire::{BlobState, Status, TxStatus};
use glassbox_ledger::{Account, SignedTx, TxBody, TxHash};
use glassbox_types::{ModelId, PublicKey, SecretKey};

/// Between polls of a transaction's or a job's status.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Between retries of a request the node answered 503 (busy, replaying).
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// Consecutive "unknown transaction" answers after which a submitted
/// transaction is taken to be dropped (one may fall in the instant between
/// the mempool and the finalized index).
const MAX_UNKNOWN_POLLS: u32 = 8;

/// Largest `--ca` file read, in bytes.
const MAX_CA_FILE_BYTES: u64 = 1 << 20;

/// The `--ca` certificates (PEM), set once at start.
static EXTRA_CA: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

/// Reads `--ca FILE` for every client this process makes, checking it
/// holds certificates.
pub(crate) fn trust_ca(path: &std::path::Path) -> Result<()> {
    let pem = crate::progress::read_file(path, MAX_CA_FILE_BYTES).context("--ca")?;
    glassbox_api::tls::client_config(Some(&pem))
        .with_context(|| format!("--ca {}", path.display()))?;
    let _ = EXTRA_CA.set(pem);
    Ok(())
}

/// A client of the node at `url` (`--node`, `http://` or `https://`), each
/// call bounded by `timeout`.
pub(crate) fn client(url: &str, timeout: Duration) -> Result<Client> {
    Client::with_ca(url, timeout, EXTRA_CA.get().map(Vec::as_slice))
        .with_context(|| format!("--node {url}"))
}

/// The account of `sender`, proof-checked; `None` when the chain has none.
pub(crate) fn account(client: &Client, sender: &PublicKey) -> Result<Option<Account>> {
    Ok(client.account(sender)?.record)
}

/// `body` signed by `key` with its account's next nonce and `fee`, by
/// default the chain's least fee for the transaction's size. `missing`
/// says what to do when the account does not exist.
pub(crate) fn sign(
    client: &Client,
    status: &Status,
    key: &SecretKey,
    body: TxBody,
    fee: Option<u64>,
    missing: &str,
) -> Result<SignedTx> {
    let sender = key.public();
    let Some(account) = account(client, &sender)? else {
        bail!(
            "account {sender} (the key's) does not exist on chain {}: {missing}",
            status.chain_name
        );
    };
    // The fee does not change the encoding's size.
    let probe = SignedTx::sign(&status.chain_id, key, account.nonce, 0, body.clone())?;
    let params = &status.params;
    if probe.len() > params.max_tx_bytes as usize {
        bail!(
            "the {} transaction is {} bytes, over the chain's limit of {}",
            body.kind_name(),
            probe.len(),
            params.max_tx_bytes
        );
    }
    let fee = match fee {
        Some(f) => f,
        None => params
            .min_fee_for(probe.len())
            .context("the chain's fee parameters overflow")?,
    };
    if account.balance < fee {
        bail!(
            "account {sender} holds {}, less than the fee of {fee}",
            account.balance
        );
    }
    Ok(SignedTx::sign(
        &status.chain_id,
        key,
        account.nonce,
        fee,
        body,
    )?)
}

/// Submits `tx`, retrying while the node answers 503 (replaying, mempool
/// full) until `deadline`; returns its hash.
pub(crate) fn submit_tx(client: &Client, tx: &SignedTx, deadline: Instant) -> Result<TxHash> {
    loop {
        match client.submit_tx(tx) {
            Ok(s) => return Ok(s.tx_hash),
            Err(e) if e.status() == Some(503) && Instant::now() < deadline => {
                std::thread::sleep(RETRY_INTERVAL);
            }
            Err(e) => return Err(e).context("the node refused the transaction"),
        }
    }
}

/// Waits for `hash` to be finalized; returns its height, or fails with its
/// execution error (`failed` says what a failure left undone).
pub(crate) fn await_finalized(
    client: &Client,
    hash: &TxHash,
    deadline: Instant,
    failed: &str,
) -> Result<u64> {
    let mut unknown = 0;
    loop {
        match client.tx_status(hash) {
            Ok(TxStatus::Finalized {
                height, outcome, ..
            }) => {
                return match outcome.result {
                    Ok(_) => Ok(height),
                    Err(e) => bail!(
                        "transaction {hash} was finalized at height {height} but failed ({}): {}; \
                         its fee was charged and {failed}",
                        e.code,
                        e.message
                    ),
                };
            }
            Ok(TxStatus::Pending { .. }) => unknown = 0,
            Err(e) if e.code() == Some("unknown_tx") => {
                unknown += 1;
                if unknown >= MAX_UNKNOWN_POLLS {
                    bail!(
                        "the node no longer knows transaction {hash}: it was dropped from the \
                         mempool without being included (did another transaction use its nonce?)"
                    );
                }
            }
            Err(e) => return Err(e.into()),
        }
        if Instant::now() >= deadline {
            bail!(
                "transaction {hash} was accepted but not finalized in time; check `GET {}` and \
                 run this command again",
                client.url(&glassbox_api::routes::tx(hash))
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Uploads the model's bytes (unless the node has them), retrying while
/// the node is busy.
pub(crate) fn upload_blob(
    client: &Client,
    id: &ModelId,
    bytes: &[u8],
    deadline: Instant,
) -> Result<BlobState> {
    if client.has_blob(id)? {
        return Ok(BlobState::Present);
    }
    loop {
        match client.put_blob(id, bytes.to_vec()) {
            Ok(stored) => return Ok(stored.status),
            Err(e) if e.status() == Some(503) && Instant::now() < deadline => {
                std::thread::sleep(RETRY_INTERVAL);
            }
            Err(e) => bail!(
                "uploading model {id} to {}: {e}; the manifest is registered, so running this \
                 command again (against a node that keeps blobs) only uploads the model",
                client.base()
            ),
        }
    }
}
