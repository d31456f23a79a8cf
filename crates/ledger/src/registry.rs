//! The model registry: published models, the name@version index, name
//! ownership and the `PublishModel` rule (docs/ledger.md, "Transactions";
//! docs/manifest.md).

use glassbox_primitives::codec::{Reader, Writer};
use glassbox_types::{Manifest, ManifestId, ModelId, PublicKey, Signature, SignedManifest};
use serde::Serialize;

use crate::apply::Event;
use crate::error::{DecodeError, ExecutionError};
use crate::limits;
use crate::records::RECORD_VERSION;
use crate::state::State;

/// A published model: its signed manifest and where it was published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRecord {
    /// The publisher-signed manifest.
    pub manifest: SignedManifest,
    /// Its id (BLAKE3 of its encoding).
    pub manifest_id: ManifestId,
    /// The model's id (from the manifest).
    pub model_id: ModelId,
    /// The publisher (the manifest's signer).
    pub publisher: PublicKey,
    /// The height of the block that published it.
    pub height: u64,
}

impl ModelRecord {
    /// The record of `manifest` published at `height`.
    pub fn new(manifest: SignedManifest, height: u64) -> ModelRecord {
        ModelRecord {
            manifest_id: manifest.id(),
            model_id: manifest.manifest().model_id,
            publisher: manifest.manifest().publisher,
            manifest,
            height,
        }
    }

    /// `u8` 1, `u64` height, `u32` length + the signed manifest's canonical
    /// encoding (docs/manifest.md). The ids and publisher derive from it.
    pub fn encode(&self) -> Vec<u8> {
        let m = self.manifest.encode();
        let mut w = Writer::with_capacity(13 + m.len());
        w.u8(RECORD_VERSION);
        w.u64(self.height);
        w.blob(&m);
        w.into_bytes()
    }

    /// Decodes [`ModelRecord::encode`]'s form (the manifest must decode;
    /// its signature is not checked here: it was when published).
    pub fn decode(bytes: &[u8]) -> Result<ModelRecord, DecodeError> {
        let mut r = Reader::new("model record", bytes);
        r.version(RECORD_VERSION)?;
        let height = r.u64()?;
        let at = r.pos();
        let m = r.blob("signed manifest", limits::MAX_SIGNED_MANIFEST_BYTES)?;
        let manifest =
            SignedManifest::decode(m).map_err(|e| r.err_at(at, format!("signed manifest: {e}")))?;
        r.finish()?;
        Ok(ModelRecord::new(manifest, height))
    }
}

/// A model record as JSON.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = ModelRecord))]
struct ModelRecordJson<'a> {
    /// The model's id.
    model_id: ModelId,
    /// Its manifest's id.
    manifest_id: ManifestId,
    /// The publisher (the manifest's signer).
    publisher: PublicKey,
    /// The height of the block that published it.
    height: u64,
    /// The manifest's name.
    name: &'a str,
    /// The manifest's version.
    version: String,
    /// The manifest.
    manifest: &'a Manifest,
    /// The publisher's signature of the manifest.
    signature: &'a Signature,
    /// Hex of the signed manifest's canonical encoding.
    signed_manifest: String,
}

impl Serialize for ModelRecord {
    /// [`ModelRecordJson`].
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.manifest.manifest();
        ModelRecordJson {
            model_id: self.model_id,
            manifest_id: self.manifest_id,
            publisher: self.publisher,
            height: self.height,
            name: &m.name,
            version: m.version.to_string(),
            manifest: m,
            signature: self.manifest.signature(),
            signed_manifest: glassbox_types::hex(&self.manifest.encode()),
        }
        .serialize(s)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ModelRecord {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <ModelRecordJson<'_> as utoipa::PartialSchema>::schema()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ModelRecord {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <ModelRecordJson<'_> as utoipa::ToSchema>::schemas(schemas);
    }
}

/// The value of a `name@version` index key: the model it names.
pub fn encode_model_version(model_id: &ModelId) -> Vec<u8> {
    let mut w = Writer::with_capacity(33);
    w.u8(RECORD_VERSION);
    w.bytes(model_id.as_bytes());
    w.into_bytes()
}

/// Decodes [`encode_model_version`]'s form.
pub fn decode_model_version(bytes: &[u8]) -> Result<ModelId, DecodeError> {
    let mut r = Reader::new("model version record", bytes);
    r.version(RECORD_VERSION)?;
    let id = ModelId::from_bytes(r.array()?);
    r.finish()?;
    Ok(id)
}

/// The value of a name-owner key: the publisher owning the name.
pub fn encode_name_owner(owner: &PublicKey) -> Vec<u8> {
    let mut w = Writer::with_capacity(33);
    w.u8(RECORD_VERSION);
    owner.write_to(&mut w);
    w.into_bytes()
}

/// Decodes [`encode_name_owner`]'s form.
pub fn decode_name_owner(bytes: &[u8]) -> Result<PublicKey, DecodeError> {
    let mut r = Reader::new("name owner record", bytes);
    r.version(RECORD_VERSION)?;
    let k = PublicKey::read_from(&mut r, "owner")?;
    r.finish()?;
    Ok(k)
}

impl State {
    pub(crate) fn publish_model(
        &mut self,
        manifest: &SignedManifest,
        height: u64,
    ) -> Result<Vec<Event>, ExecutionError> {
        let m = manifest.manifest();
        manifest
            .verify()
            .map_err(|_| ExecutionError::BadManifestSignature {
                publisher: m.publisher.to_string(),
            })?;
        if self.models.contains_key(&m.model_id) {
            return Err(ExecutionError::ModelExists {
                model_id: m.model_id,
            });
        }
        let version = m.version.to_string();
        if let Some(entry) = self.names.get(&m.name) {
            if entry.owner != m.publisher {
                return Err(ExecutionError::NameTaken {
                    name: m.name.clone(),
                    owner: entry.owner.to_string(),
                });
            }
            if entry.versions.contains_key(&version) {
                return Err(ExecutionError::VersionExists {
                    name: m.name.clone(),
                    version,
                });
            }
        }
        let record = ModelRecord::new(manifest.clone(), height);
        let event = Event::ModelPublished {
            model_id: record.model_id,
            manifest_id: record.manifest_id,
            name: m.name.clone(),
            version,
            publisher: record.publisher,
        };
        self.put_model(record)?;
        Ok(vec![event])
    }
}
