//! Signed transactions: their canonical, versioned encoding, signing and
//! hashing (docs/ledger.md, "Transactions").

use std::fmt;
use std::sync::{Arc, OnceLock};

use glassbox_types::{ModelId, PublicKey, SecretKey, Signature, SignedManifest};
use serde::{Deserialize, Serialize};

pub use glassbox_primitives::TxHash;
use glassbox_primitives::codec::{Reader, Writer};
use glassbox_primitives::{ChainId, Commitment, OutputHash, Salt, TraceRoot, tags};

use crate::dispute::{MAX_LEAF_OUTPUTS, MAX_OPENINGS_PER_TX, MAX_PATH, Step};
use crate::error::{AdmissionError, DecodeError};
use crate::jobs::{JobId, read_tensors, write_tensors};
use crate::limits;
use crate::serde_util;

/// Format version byte that starts every transaction encoding.
pub const TX_VERSION: u8 = 1;
/// Domain-separation prefix of the signed message:
/// `"GBTX1" || chain id || the encoding without its signature`.
pub const TX_SIGNING_DOMAIN: &[u8; 5] = tags::TX_SIGNING;

const SIGNATURE_BYTES: usize = 64;

/// What a transaction does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TxBody {
    /// Moves `amount` from the sender to `to` (creating its account).
    Transfer {
        /// The recipient.
        #[serde(with = "serde_util::public_key")]
        to: PublicKey,
        /// The amount (> 0).
        amount: u64,
    },
    /// Registers the sender as an executor, bonding `stake` from its
    /// balance (≥ `min_executor_stake`). Re-activates a deregistered
    /// executor, keeping its pending unbonding.
    RegisterExecutor {
        /// The stake to bond.
        stake: u64,
        /// Declared maximum of concurrent jobs.
        capacity: u32,
        /// `http(s)://` URL where the executor's node serves model blobs.
        endpoint: String,
    },
    /// Bonds `amount` more from the sender's balance.
    AddStake {
        /// The amount (> 0).
        amount: u64,
    },
    /// Moves `amount` of stake to an unbonding entry released after
    /// `unbonding_blocks`; the remaining stake must stay at least
    /// `min_executor_stake` (use `Deregister` to leave).
    Unbond {
        /// The amount (> 0).
        amount: u64,
    },
    /// Pays every unbonding entry whose release height has come back to
    /// the owner's balance.
    Withdraw,
    /// Deactivates the sender's executor and unbonds all its stake.
    Deregister,
    /// Changes an active executor's capacity and endpoint.
    UpdateExecutor {
        /// Declared maximum of concurrent jobs.
        capacity: u32,
        /// `http(s)://` URL where the executor's node serves model blobs.
        endpoint: String,
    },
    /// Publishes a model: the manifest's signature must verify; its signer
    /// is the publisher (any sender may pay for it).
    PublishModel {
        /// The publisher-signed manifest (JSON: hex of its canonical
        /// encoding).
        #[serde(with = "serde_util::signed_manifest")]
        manifest: Box<SignedManifest>,
    },
    /// Asks for an inference: `replicas` executors run `model_id` on
    /// `inputs` and must agree bit for bit (docs/jobs.md). Escrows
    /// `replicas × price` from the sender, which must not exceed `max_fee`.
    SubmitJob {
        /// The published model to run.
        model_id: ModelId,
        /// The inputs in the model's declared order, each a canonical
        /// tensor encoding (JSON: hex).
        #[serde(with = "serde_util::hex_vec")]
        inputs: Vec<Vec<u8>>,
        /// How many executors must agree (1..=`max_job_replicas`).
        replicas: u8,
        /// The most the sender will escrow for the job (fee excluded).
        max_fee: u64,
    },
    /// An assigned executor's commitment to its result
    /// ([`crate::commitment`]).
    CommitResult {
        /// The job.
        job_id: JobId,
        /// `commitment(job, executor, output hash, trace root, salt)`.
        commitment: Commitment,
    },
    /// An assigned executor's reveal, once every slot has committed.
    RevealResult {
        /// The job.
        job_id: JobId,
        /// [`crate::outputs_hash`] of `outputs`.
        output_hash: OutputHash,
        /// The run's execution trace root.
        trace_root: TraceRoot,
        /// The commitment's salt.
        salt: Salt,
        /// The outputs, each a canonical tensor encoding (JSON: hex).
        #[serde(with = "serde_util::hex_vec")]
        outputs: Vec<Vec<u8>>,
    },
    /// Contests a pending optimistic result with another one, posting
    /// `challenge_bond` (docs/disputes.md). Only an active executor.
    Challenge {
        /// The pending job.
        job_id: JobId,
        /// The challenger's output hash.
        output_hash: OutputHash,
        /// The challenger's trace root.
        trace_root: TraceRoot,
        /// The challenger's outputs.
        #[serde(with = "serde_util::hex_vec")]
        outputs: Vec<Vec<u8>>,
    },
    /// A move in the dispute game of a job (docs/disputes.md).
    DisputeStep {
        /// The disputed job.
        job_id: JobId,
        /// The move.
        step: Step,
    },
    /// Resumes the sender's executor, paused by a missed slot (its node's
    /// heartbeat, docs/jobs.md "Liveness"); refused when it is not paused.
    Resume,
}

impl TxBody {
    /// The body's kind tag in the encoding.
    pub fn kind(&self) -> u8 {
        match self {
            TxBody::Transfer { .. } => 0,
            TxBody::RegisterExecutor { .. } => 1,
            TxBody::AddStake { .. } => 2,
            TxBody::Unbond { .. } => 3,
            TxBody::Withdraw => 4,
            TxBody::Deregister => 5,
            TxBody::UpdateExecutor { .. } => 6,
            TxBody::PublishModel { .. } => 7,
            TxBody::SubmitJob { .. } => 8,
            TxBody::CommitResult { .. } => 9,
            TxBody::RevealResult { .. } => 10,
            TxBody::Challenge { .. } => 11,
            TxBody::DisputeStep { .. } => 12,
            TxBody::Resume => 13,
        }
    }

    /// The snake_case name of the body's kind.
    pub fn kind_name(&self) -> &'static str {
        match self {
            TxBody::Transfer { .. } => "transfer",
            TxBody::RegisterExecutor { .. } => "register_executor",
            TxBody::AddStake { .. } => "add_stake",
            TxBody::Unbond { .. } => "unbond",
            TxBody::Withdraw => "withdraw",
            TxBody::Deregister => "deregister",
            TxBody::UpdateExecutor { .. } => "update_executor",
            TxBody::PublishModel { .. } => "publish_model",
            TxBody::SubmitJob { .. } => "submit_job",
            TxBody::CommitResult { .. } => "commit_result",
            TxBody::RevealResult { .. } => "reveal_result",
            TxBody::Challenge { .. } => "challenge",
            TxBody::DisputeStep { .. } => "dispute_step",
            TxBody::Resume => "resume",
        }
    }

    fn write(&self, w: &mut Writer) -> Result<(), AdmissionError> {
        w.u8(self.kind());
        match self {
            TxBody::Transfer { to, amount } => {
                to.write_to(w);
                w.u64(*amount);
            }
            TxBody::RegisterExecutor {
                stake,
                capacity,
                endpoint,
            } => {
                check_endpoint_len(endpoint)?;
                w.u64(*stake);
                w.u32(*capacity);
                w.str(endpoint);
            }
            TxBody::AddStake { amount } | TxBody::Unbond { amount } => w.u64(*amount),
            TxBody::Withdraw | TxBody::Deregister | TxBody::Resume => {}
            TxBody::UpdateExecutor { capacity, endpoint } => {
                check_endpoint_len(endpoint)?;
                w.u32(*capacity);
                w.str(endpoint);
            }
            TxBody::PublishModel { manifest } => {
                let m = manifest.encode();
                if m.len() > limits::MAX_SIGNED_MANIFEST_BYTES {
                    return Err(AdmissionError::FieldTooLong {
                        field: "manifest",
                        len: m.len(),
                        max: limits::MAX_SIGNED_MANIFEST_BYTES,
                    });
                }
                w.blob(&m);
            }
            TxBody::SubmitJob {
                model_id,
                inputs,
                replicas,
                max_fee,
            } => {
                check_tensors_len("inputs", inputs)?;
                w.bytes(model_id.as_bytes());
                write_tensors(w, inputs);
                w.u8(*replicas);
                w.u64(*max_fee);
            }
            TxBody::CommitResult { job_id, commitment } => {
                w.bytes(job_id.as_bytes());
                w.digest(commitment);
            }
            TxBody::RevealResult {
                job_id,
                output_hash,
                trace_root,
                salt,
                outputs,
            } => {
                check_tensors_len("outputs", outputs)?;
                w.bytes(job_id.as_bytes());
                w.digest(output_hash);
                w.digest(trace_root);
                w.digest(salt);
                write_tensors(w, outputs);
            }
            TxBody::Challenge {
                job_id,
                output_hash,
                trace_root,
                outputs,
            } => {
                check_tensors_len("outputs", outputs)?;
                w.bytes(job_id.as_bytes());
                w.digest(output_hash);
                w.digest(trace_root);
                write_tensors(w, outputs);
            }
            TxBody::DisputeStep { job_id, step } => {
                if let Step::Openings { items } = step {
                    let long = |field: &'static str, len: usize, max: usize| {
                        (len > max).then_some(AdmissionError::FieldTooLong { field, len, max })
                    };
                    let bad = long("openings", items.len(), MAX_OPENINGS_PER_TX).or_else(|| {
                        items.iter().find_map(|o| {
                            long("opening outputs", o.outputs.len(), MAX_LEAF_OUTPUTS)
                                .or_else(|| long("opening path", o.path.len(), MAX_PATH))
                        })
                    });
                    if let Some(e) = bad {
                        return Err(e);
                    }
                }
                w.bytes(job_id.as_bytes());
                step.write(w);
            }
        }
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<TxBody, DecodeError> {
        let at = r.pos();
        Ok(match r.u8()? {
            0 => TxBody::Transfer {
                to: PublicKey::read_from(r, "to")?,
                amount: r.u64()?,
            },
            1 => TxBody::RegisterExecutor {
                stake: r.u64()?,
                capacity: r.u32()?,
                endpoint: r.str("endpoint", limits::MAX_ENDPOINT_BYTES)?,
            },
            2 => TxBody::AddStake { amount: r.u64()? },
            3 => TxBody::Unbond { amount: r.u64()? },
            4 => TxBody::Withdraw,
            5 => TxBody::Deregister,
            6 => TxBody::UpdateExecutor {
                capacity: r.u32()?,
                endpoint: r.str("endpoint", limits::MAX_ENDPOINT_BYTES)?,
            },
            7 => {
                let b = r.blob("manifest", limits::MAX_SIGNED_MANIFEST_BYTES)?;
                let at = r.pos().saturating_sub(b.len());
                let manifest = SignedManifest::decode(b)
                    .map_err(|e| r.err_at(at, format!("manifest: {e}")))?;
                TxBody::PublishModel {
                    manifest: Box::new(manifest),
                }
            }
            8 => TxBody::SubmitJob {
                model_id: ModelId::from_bytes(r.array()?),
                inputs: read_tensors(r, "inputs")?,
                replicas: r.u8()?,
                max_fee: r.u64()?,
            },
            9 => TxBody::CommitResult {
                job_id: JobId::from_bytes(r.array()?),
                commitment: r.digest()?,
            },
            10 => TxBody::RevealResult {
                job_id: JobId::from_bytes(r.array()?),
                output_hash: r.digest()?,
                trace_root: r.digest()?,
                salt: r.digest()?,
                outputs: read_tensors(r, "outputs")?,
            },
            11 => TxBody::Challenge {
                job_id: JobId::from_bytes(r.array()?),
                output_hash: r.digest()?,
                trace_root: r.digest()?,
                outputs: read_tensors(r, "outputs")?,
            },
            12 => TxBody::DisputeStep {
                job_id: JobId::from_bytes(r.array()?),
                step: Step::read(r)?,
            },
            13 => TxBody::Resume,
            k => return Err(r.err_at(at, format!("unknown transaction kind {k}"))),
        })
    }
}

/// Tensors within the encoding's limits (count and total bytes).
fn check_tensors_len(field: &'static str, tensors: &[Vec<u8>]) -> Result<(), AdmissionError> {
    if tensors.len() > limits::MAX_JOB_TENSORS {
        return Err(AdmissionError::FieldTooLong {
            field,
            len: tensors.len(),
            max: limits::MAX_JOB_TENSORS,
        });
    }
    let total = tensors
        .iter()
        .fold(0usize, |a, t| a.saturating_add(t.len()));
    if total > limits::HARD_MAX_JOB_IO_BYTES {
        return Err(AdmissionError::FieldTooLong {
            field,
            len: total,
            max: limits::HARD_MAX_JOB_IO_BYTES,
        });
    }
    Ok(())
}

fn check_endpoint_len(endpoint: &str) -> Result<(), AdmissionError> {
    if endpoint.len() > limits::MAX_ENDPOINT_BYTES {
        return Err(AdmissionError::FieldTooLong {
            field: "endpoint",
            len: endpoint.len(),
            max: limits::MAX_ENDPOINT_BYTES,
        });
    }
    Ok(())
}

/// A signed transaction. Built only by [`SignedTx::sign`],
/// [`SignedTx::from_parts`] or [`SignedTx::decode`], so it always has a
/// canonical encoding within the hard size limit, which it keeps with its
/// hash. The signature is checked by [`SignedTx::verify_signature`] (and by
/// the state's admission checks).
#[derive(Clone)]
pub struct SignedTx {
    sender: PublicKey,
    nonce: u64,
    fee: u64,
    body: TxBody,
    signature: Signature,
    encoded: Arc<[u8]>,
    hash: TxHash,
    /// The chain id the signature has been checked for, shared by every
    /// clone: a transaction checked at mempool admission is not checked
    /// again when a block containing that same value is applied.
    verified_for: Arc<OnceLock<ChainId>>,
}

impl PartialEq for SignedTx {
    fn eq(&self, other: &Self) -> bool {
        self.encoded == other.encoded
    }
}

impl Eq for SignedTx {}

impl fmt::Debug for SignedTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedTx")
            .field("hash", &self.hash)
            .field("sender", &self.sender)
            .field("nonce", &self.nonce)
            .field("fee", &self.fee)
            .field("body", &self.body)
            .field("signature", &self.signature)
            .finish()
    }
}

/// The encoding without the signature (the signed part).
fn encode_unsigned(
    sender: &PublicKey,
    nonce: u64,
    fee: u64,
    body: &TxBody,
) -> Result<Vec<u8>, AdmissionError> {
    let mut w = Writer::with_capacity(128);
    w.u8(TX_VERSION);
    sender.write_to(&mut w);
    w.u64(nonce);
    w.u64(fee);
    body.write(&mut w)?;
    let size = w.as_bytes().len().saturating_add(SIGNATURE_BYTES);
    if size > limits::HARD_MAX_TX_BYTES_USIZE {
        return Err(AdmissionError::TxTooLarge {
            size,
            max: u64::from(limits::HARD_MAX_TX_BYTES),
        });
    }
    Ok(w.into_bytes())
}

fn signing_message(chain_id: &ChainId, unsigned: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(TX_SIGNING_DOMAIN.len() + 32 + unsigned.len());
    m.extend_from_slice(TX_SIGNING_DOMAIN);
    m.extend_from_slice(chain_id.as_bytes());
    m.extend_from_slice(unsigned);
    m
}

impl SignedTx {
    /// Builds and signs a transaction from `key`'s public key for the chain
    /// `chain_id`. Fails only when a field is over its encoding limit.
    pub fn sign(
        chain_id: &ChainId,
        key: &SecretKey,
        nonce: u64,
        fee: u64,
        body: TxBody,
    ) -> Result<SignedTx, AdmissionError> {
        let sender = key.public();
        let unsigned = encode_unsigned(&sender, nonce, fee, &body)?;
        let signature = key.sign(&signing_message(chain_id, &unsigned));
        Ok(SignedTx::assemble(
            sender, nonce, fee, body, signature, unsigned,
        ))
    }

    /// Pairs the fields with a signature without checking it. Fails only
    /// when a field is over its encoding limit.
    pub fn from_parts(
        sender: PublicKey,
        nonce: u64,
        fee: u64,
        body: TxBody,
        signature: Signature,
    ) -> Result<SignedTx, AdmissionError> {
        let unsigned = encode_unsigned(&sender, nonce, fee, &body)?;
        Ok(SignedTx::assemble(
            sender, nonce, fee, body, signature, unsigned,
        ))
    }

    fn assemble(
        sender: PublicKey,
        nonce: u64,
        fee: u64,
        body: TxBody,
        signature: Signature,
        mut unsigned: Vec<u8>,
    ) -> SignedTx {
        unsigned.extend_from_slice(signature.as_bytes());
        let hash = TxHash::of(&unsigned);
        SignedTx {
            sender,
            nonce,
            fee,
            body,
            signature,
            encoded: unsigned.into(),
            hash,
            verified_for: Arc::default(),
        }
    }

    /// Decodes the canonical encoding: `u8` version 1, sender, `u64` nonce,
    /// `u64` fee, the body, 64 signature bytes. Rejects anything over
    /// [`limits::HARD_MAX_TX_BYTES`], other versions and kinds, invalid
    /// keys, over-limit lengths, non-canonical manifests and trailing
    /// bytes, so `decode(b).encoded() == b`. Does not check the signature.
    pub fn decode(bytes: &[u8]) -> Result<SignedTx, DecodeError> {
        let mut r = Reader::new("transaction", bytes);
        if bytes.len() > limits::HARD_MAX_TX_BYTES_USIZE {
            return Err(r.err(format!(
                "{} bytes, over the limit of {}",
                bytes.len(),
                limits::HARD_MAX_TX_BYTES
            )));
        }
        r.version(TX_VERSION)?;
        let sender = PublicKey::read_from(&mut r, "sender")?;
        let nonce = r.u64()?;
        let fee = r.u64()?;
        let body = TxBody::read(&mut r)?;
        let signature = Signature::from_bytes(r.array()?);
        r.finish()?;
        Ok(SignedTx {
            sender,
            nonce,
            fee,
            body,
            signature,
            encoded: bytes.into(),
            hash: TxHash::of(bytes),
            verified_for: Arc::default(),
        })
    }

    /// Decodes lower-case hex of the canonical encoding (the HTTP API's
    /// form).
    pub fn from_hex(hex: &str) -> Result<SignedTx, DecodeError> {
        let bytes =
            serde_util::unhex(hex.trim(), limits::HARD_MAX_TX_BYTES_USIZE).map_err(|reason| {
                DecodeError {
                    what: "transaction hex",
                    offset: 0,
                    reason,
                }
            })?;
        SignedTx::decode(&bytes)
    }

    /// The sender (the signing key, which pays the fee).
    pub fn sender(&self) -> &PublicKey {
        &self.sender
    }
    /// The sender's nonce this transaction uses.
    pub fn nonce(&self) -> u64 {
        self.nonce
    }
    /// The fee offered.
    pub fn fee(&self) -> u64 {
        self.fee
    }
    /// What it does.
    pub fn body(&self) -> &TxBody {
        &self.body
    }
    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }
    /// The canonical encoding.
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }
    /// The encoded size in bytes.
    pub fn len(&self) -> usize {
        self.encoded.len()
    }
    /// Always false (an encoding is never empty); for clippy's `len`
    /// convention.
    pub fn is_empty(&self) -> bool {
        self.encoded.is_empty()
    }
    /// BLAKE3 of the canonical encoding.
    pub fn hash(&self) -> TxHash {
        self.hash
    }

    /// The message the signature covers on chain `chain_id`:
    /// `"GBTX1" || chain id || encoding without the signature`.
    pub fn signing_message(&self, chain_id: &ChainId) -> Vec<u8> {
        let unsigned = self
            .encoded
            .get(..self.encoded.len().saturating_sub(SIGNATURE_BYTES))
            .unwrap_or_default();
        signing_message(chain_id, unsigned)
    }

    /// Checks the signature for chain `chain_id` (strict ed25519). A
    /// success is remembered (for this value and its clones), so checking
    /// again for the same chain is free.
    pub fn verify_signature(&self, chain_id: &ChainId) -> Result<(), AdmissionError> {
        if self.verified_for.get() == Some(chain_id) {
            return Ok(());
        }
        self.sender
            .verify(&self.signing_message(chain_id), &self.signature)
            .map_err(|_| AdmissionError::BadSignature {
                sender: self.sender.to_string(),
            })?;
        let _ = self.verified_for.set(*chain_id);
        Ok(())
    }

    /// Takes over `other`'s checked signature when both are the same
    /// transaction byte for byte (e.g. a block's copy, decoded from the
    /// network, and the mempool's, checked at admission).
    pub fn adopt_verification(&self, other: &SignedTx) {
        if self.encoded == other.encoded
            && let Some(chain_id) = other.verified_for.get()
        {
            let _ = self.verified_for.set(*chain_id);
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedTxJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hash: Option<TxHash>,
    #[serde(with = "serde_util::public_key")]
    sender: PublicKey,
    nonce: u64,
    fee: u64,
    body: TxBody,
    #[serde(with = "serde_util::signature")]
    signature: Signature,
}

impl Serialize for SignedTx {
    /// `{"hash": "tx:<hex>", "sender": "ed25519:<hex>", "nonce", "fee",
    /// "body": {"type": "transfer", ...}, "signature": "ed25519:<hex>"}`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SignedTxJson {
            hash: Some(self.hash),
            sender: self.sender,
            nonce: self.nonce,
            fee: self.fee,
            body: self.body.clone(),
            signature: self.signature,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for SignedTx {
    /// The serialized form; `hash` is optional and, when present, must be
    /// the transaction's.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let j = SignedTxJson::deserialize(d)?;
        let tx = SignedTx::from_parts(j.sender, j.nonce, j.fee, j.body, j.signature)
            .map_err(serde::de::Error::custom)?;
        if let Some(h) = j.hash
            && h != tx.hash
        {
            return Err(serde::de::Error::custom(format!(
                "hash {h} is not the transaction's hash {}",
                tx.hash
            )));
        }
        Ok(tx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SecretKey {
        SecretKey::from_seed(&[n; 32])
    }

    #[test]
    fn sign_decode_round_trip_and_signature() {
        let chain = ChainId::from_bytes([7; 32]);
        let tx = SignedTx::sign(
            &chain,
            &key(1),
            3,
            1000,
            TxBody::Transfer {
                to: key(2).public(),
                amount: 5,
            },
        )
        .unwrap();
        assert_eq!(tx.len(), 1 + 32 + 8 + 8 + 1 + 32 + 8 + 64);
        let back = SignedTx::decode(tx.encoded()).unwrap();
        assert_eq!(back, tx);
        assert_eq!(back.hash(), tx.hash());
        assert_eq!(tx.verify_signature(&chain), Ok(()));
        assert!(matches!(
            tx.verify_signature(&ChainId::from_bytes([8; 32])),
            Err(AdmissionError::BadSignature { .. })
        ));
        let hex = glassbox_types::hex(tx.encoded());
        assert_eq!(SignedTx::from_hex(&hex).unwrap(), tx);
        let h = tx.hash().to_string();
        assert!(h.starts_with("tx:"));
        assert_eq!(h.parse::<TxHash>(), Ok(tx.hash()));
        assert!(h.replace("tx:", "blake3:").parse::<TxHash>().is_err());
    }

    #[test]
    fn json_round_trip_checks_hash() {
        let tx = SignedTx::sign(
            &ChainId::from_bytes([1; 32]),
            &key(1),
            0,
            10,
            TxBody::RegisterExecutor {
                stake: 5,
                capacity: 2,
                endpoint: "http://a".into(),
            },
        )
        .unwrap();
        let j = serde_json::to_string(&tx).unwrap();
        assert!(j.contains("\"type\":\"register_executor\""), "{j}");
        let back: SignedTx = serde_json::from_str(&j).unwrap();
        assert_eq!(back, tx);
        let other = TxHash::from_bytes([0; 32]).to_string();
        let bad = j.replace(&tx.hash().to_string(), &other);
        assert!(serde_json::from_str::<SignedTx>(&bad).is_err());
    }

    #[test]
    fn over_limit_fields_are_refused() {
        let e = SignedTx::sign(
            &ChainId::from_bytes([0; 32]),
            &key(1),
            0,
            0,
            TxBody::UpdateExecutor {
                capacity: 1,
                endpoint: "h".repeat(limits::MAX_ENDPOINT_BYTES + 1),
            },
        )
        .unwrap_err();
        assert!(matches!(
            e,
            AdmissionError::FieldTooLong {
                field: "endpoint",
                ..
            }
        ));
    }
}
