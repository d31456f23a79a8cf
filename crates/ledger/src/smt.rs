//! The authenticated map: a persistent, compressed binary sparse Merkle
//! trie from byte keys to byte values (docs/ledger.md, "Authenticated
//! map").
//!
//! - A key's **path** is `BLAKE3("GBK1" || key)`, read most significant bit
//!   first: bit 0 chooses the root's child (0 left, 1 right), and so on.
//! - A leaf sits at the shallowest depth where its path is unique among the
//!   stored keys (a subtree holding one key is that key's leaf), so the trie
//!   is at most 256 levels deep and typically `log2(n)` plus a few.
//! - Hashes: the empty subtree is 32 zero bytes; a leaf is
//!   `BLAKE3("GBL2" || path || BLAKE3(value))`; an internal node is
//!   `BLAKE3("GBN1" || left || right)`. The root hash is a function of the
//!   contents only, never of the order of operations.
//!
//! Nodes are `Arc`s: [`Clone`] is O(1) and an update copies only the nodes
//! on one path (nodes that are not shared are updated in place). Hashes are
//! computed lazily, once per node version, and cached, so many updates
//! between two [`Smt::root`] calls hash each touched node once.
//!
//! [`Smt::prove`] gives a [`Proof`] of a key's value or of its absence,
//! which [`verify`] checks against a root with nothing else.

use std::fmt;
use std::sync::{Arc, OnceLock};

use crate::error::DecodeError;
use glassbox_primitives::codec::{Reader, Writer};

/// The hash of the empty subtree (and of the empty map's root).
pub const EMPTY_HASH: [u8; 32] = [0; 32];
/// Domain of a key's path.
pub const PATH_DOMAIN: &[u8; 4] = glassbox_primitives::tags::SMT_PATH;
/// Domain of a leaf hash.
pub const LEAF_DOMAIN: &[u8; 4] = glassbox_primitives::tags::SMT_LEAF;
/// Domain of an internal node hash.
pub const NODE_DOMAIN: &[u8; 4] = glassbox_primitives::tags::SMT_NODE;
/// Path length in bits: the deepest a leaf can sit, and the most siblings a
/// proof can have.
pub const MAX_DEPTH: usize = 256;
/// Longest key the map stores.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest value the map stores.
pub const MAX_VALUE_BYTES: usize = 16 << 20;
/// Proof encoding format version.
pub const PROOF_VERSION: u8 = 1;
/// Longest proof encoding.
pub const MAX_PROOF_BYTES: usize = 1 + 2 + MAX_DEPTH * 32 + 1 + 64;

/// The path of `key`: `BLAKE3("GBK1" || key)`.
pub fn key_path(key: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(PATH_DOMAIN);
    h.update(key);
    *h.finalize().as_bytes()
}

/// A leaf's hash: `BLAKE3("GBL2" || path || value_hash)`.
pub fn leaf_hash(path: &[u8; 32], value_hash: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(LEAF_DOMAIN);
    h.update(path);
    h.update(value_hash);
    *h.finalize().as_bytes()
}

/// An internal node's hash: `BLAKE3("GBN1" || left || right)`.
pub fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(NODE_DOMAIN);
    h.update(left);
    h.update(right);
    *h.finalize().as_bytes()
}

/// Bit `depth` of `path`, most significant bit of byte 0 first. Depths
/// past the path read as 0 (callers stay below [`MAX_DEPTH`]).
fn bit(path: &[u8; 32], depth: usize) -> bool {
    path.get(depth / 8)
        .is_some_and(|b| (b >> (7 - (depth % 8))) & 1 == 1)
}

/// The first bit where `a` and `b` differ, if any.
fn first_difference(a: &[u8; 32], b: &[u8; 32]) -> Option<usize> {
    a.iter()
        .zip(b.iter())
        .enumerate()
        .find(|(_, (x, y))| x != y)
        .map(|(i, (x, y))| i * 8 + (x ^ y).leading_zeros() as usize)
}

/// Whether `a` and `b` agree on their first `bits` bits.
fn common_prefix(a: &[u8; 32], b: &[u8; 32], bits: usize) -> bool {
    first_difference(a, b).is_none_or(|d| d >= bits)
}

/// Why a key or value cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmtError {
    /// The key is over [`MAX_KEY_BYTES`].
    #[error("key is {len} bytes, over the limit of {max}")]
    KeyTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The value is over [`MAX_VALUE_BYTES`].
    #[error("value is {len} bytes, over the limit of {max}")]
    ValueTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

#[derive(Debug, Clone)]
struct Leaf {
    path: [u8; 32],
    key: Box<[u8]>,
    value: Box<[u8]>,
    hash: OnceLock<[u8; 32]>,
}

impl Leaf {
    fn hash(&self) -> [u8; 32] {
        *self
            .hash
            .get_or_init(|| leaf_hash(&self.path, blake3::hash(&self.value).as_bytes()))
    }
}

#[derive(Debug, Clone)]
struct Internal {
    left: Node,
    right: Node,
    hash: OnceLock<[u8; 32]>,
}

impl Internal {
    fn node(left: Node, right: Node) -> Node {
        Node::Internal(Arc::new(Internal {
            left,
            right,
            hash: OnceLock::new(),
        }))
    }
}

/// A subtree. Invariant: an internal node's subtree holds at least two
/// leaves (one key alone is its leaf, never wrapped in internal nodes).
#[derive(Debug, Clone, Default)]
enum Node {
    #[default]
    Empty,
    Leaf(Arc<Leaf>),
    Internal(Arc<Internal>),
}

impl Node {
    fn hash(&self) -> [u8; 32] {
        match self {
            Node::Empty => EMPTY_HASH,
            Node::Leaf(l) => l.hash(),
            Node::Internal(n) => *n
                .hash
                .get_or_init(|| node_hash(&n.left.hash(), &n.right.hash())),
        }
    }
}

/// A persistent authenticated map (see the module documentation).
#[derive(Clone, Default)]
pub struct Smt {
    root: Node,
    len: usize,
}

impl fmt::Debug for Smt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Smt")
            .field("len", &self.len)
            .field("root", &glassbox_types::hex(&self.root()))
            .finish()
    }
}

impl Smt {
    /// The empty map.
    pub fn new() -> Self {
        Smt::default()
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The root hash ([`EMPTY_HASH`] when empty). Hashes the nodes changed
    /// since they were last hashed, once.
    pub fn root(&self) -> [u8; 32] {
        self.root.hash()
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.get_at(&key_path(key))
    }

    /// The value stored at `path` (see [`key_path`]).
    pub(crate) fn get_at(&self, path: &[u8; 32]) -> Option<&[u8]> {
        let mut node = &self.root;
        let mut depth = 0;
        loop {
            match node {
                Node::Empty => return None,
                Node::Leaf(l) => return (l.path == *path).then_some(&l.value[..]),
                Node::Internal(n) => {
                    node = if bit(path, depth) { &n.right } else { &n.left };
                    depth += 1;
                }
            }
        }
    }

    /// Stores `value` under `key`; returns whether the key was new.
    pub fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<bool, SmtError> {
        self.insert_at(key_path(key), key, value)
    }

    /// [`Smt::insert`] with the key's path already computed.
    pub(crate) fn insert_at(
        &mut self,
        path: [u8; 32],
        key: &[u8],
        value: &[u8],
    ) -> Result<bool, SmtError> {
        if key.len() > MAX_KEY_BYTES {
            return Err(SmtError::KeyTooLong {
                len: key.len(),
                max: MAX_KEY_BYTES,
            });
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(SmtError::ValueTooLong {
                len: value.len(),
                max: MAX_VALUE_BYTES,
            });
        }
        let leaf = Arc::new(Leaf {
            path,
            key: key.into(),
            value: value.into(),
            hash: OnceLock::new(),
        });
        let added = insert_node(&mut self.root, 0, leaf);
        if added {
            self.len = self.len.saturating_add(1);
        }
        Ok(added)
    }

    /// Removes `key`; returns whether it was present.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        self.remove_at(&key_path(key))
    }

    /// [`Smt::remove`] with the key's path already computed.
    pub(crate) fn remove_at(&mut self, path: &[u8; 32]) -> bool {
        // Look first, so that removing an absent key copies nothing.
        if self.get_at(path).is_none() {
            return false;
        }
        let removed = remove_node(&mut self.root, 0, path);
        if removed {
            self.len = self.len.saturating_sub(1);
        }
        removed
    }

    /// A proof of `key`'s value, or of its absence, against [`Smt::root`].
    pub fn prove(&self, key: &[u8]) -> Proof {
        self.prove_at(&key_path(key))
    }

    fn prove_at(&self, path: &[u8; 32]) -> Proof {
        let mut siblings = Vec::new();
        let mut node = &self.root;
        let mut depth = 0;
        loop {
            match node {
                Node::Empty => {
                    return Proof {
                        siblings,
                        terminal: Terminal::Empty,
                    };
                }
                Node::Leaf(l) => {
                    return Proof {
                        siblings,
                        terminal: Terminal::Leaf {
                            path: l.path,
                            value_hash: *blake3::hash(&l.value).as_bytes(),
                        },
                    };
                }
                Node::Internal(n) => {
                    if bit(path, depth) {
                        siblings.push(n.left.hash());
                        node = &n.right;
                    } else {
                        siblings.push(n.right.hash());
                        node = &n.left;
                    }
                    depth += 1;
                }
            }
        }
    }

    /// Every `(key, value)`, in path order (deterministic, not key order).
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            stack: vec![&self.root],
        }
    }
}

/// Inserts `leaf` into the subtree `node` at `depth`; returns whether its
/// key was new.
fn insert_node(node: &mut Node, depth: usize, leaf: Arc<Leaf>) -> bool {
    match node {
        Node::Empty => {
            *node = Node::Leaf(leaf);
            true
        }
        Node::Leaf(existing) => {
            if existing.path == leaf.path {
                *node = Node::Leaf(leaf);
                return false;
            }
            let other = Arc::clone(existing);
            *node = split(depth, other, leaf);
            true
        }
        Node::Internal(n) => {
            let n = Arc::make_mut(n);
            n.hash = OnceLock::new();
            let child = if bit(&leaf.path, depth) {
                &mut n.right
            } else {
                &mut n.left
            };
            insert_node(child, depth + 1, leaf)
        }
    }
}

/// The subtree at `depth` holding the two leaves `a` and `b` (distinct
/// paths that agree on their first `depth` bits): a chain of internal nodes
/// down to the first bit where they differ.
fn split(depth: usize, a: Arc<Leaf>, b: Arc<Leaf>) -> Node {
    let diff = first_difference(&a.path, &b.path)
        .unwrap_or(MAX_DEPTH - 1)
        .max(depth);
    let path = a.path;
    let mut node = if bit(&a.path, diff) {
        Internal::node(Node::Leaf(b), Node::Leaf(a))
    } else {
        Internal::node(Node::Leaf(a), Node::Leaf(b))
    };
    for d in (depth..diff).rev() {
        node = if bit(&path, d) {
            Internal::node(Node::Empty, node)
        } else {
            Internal::node(node, Node::Empty)
        };
    }
    node
}

/// Removes `path` from the subtree `node` at `depth`, restoring the
/// invariant (a subtree left with one leaf becomes that leaf); returns
/// whether it was present.
fn remove_node(node: &mut Node, depth: usize, path: &[u8; 32]) -> bool {
    let replacement = match node {
        Node::Empty => return false,
        Node::Leaf(l) => {
            if l.path != *path {
                return false;
            }
            Node::Empty
        }
        Node::Internal(n) => {
            let n = Arc::make_mut(n);
            n.hash = OnceLock::new();
            let child = if bit(path, depth) {
                &mut n.right
            } else {
                &mut n.left
            };
            if !remove_node(child, depth + 1, path) {
                return false;
            }
            match (&n.left, &n.right) {
                (Node::Empty, Node::Leaf(l)) | (Node::Leaf(l), Node::Empty) => {
                    Node::Leaf(Arc::clone(l))
                }
                (Node::Empty, Node::Empty) => Node::Empty,
                _ => return true,
            }
        }
    };
    *node = replacement;
    true
}

/// Iterator over an [`Smt`]'s entries in path order.
#[derive(Debug)]
pub struct Iter<'a> {
    stack: Vec<&'a Node>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        while let Some(node) = self.stack.pop() {
            match node {
                Node::Empty => {}
                Node::Leaf(l) => return Some((&l.key, &l.value)),
                Node::Internal(n) => {
                    self.stack.push(&n.right);
                    self.stack.push(&n.left);
                }
            }
        }
        None
    }
}

/// What a proof shows at the end of the key's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminal {
    /// An empty subtree: the key is absent.
    Empty,
    /// A leaf: the key itself (when `path` is the key's path: present, with
    /// a value hashing to `value_hash`) or another key whose path shares the
    /// first `siblings.len()` bits (the key is absent).
    Leaf {
        /// The leaf's path.
        path: [u8; 32],
        /// BLAKE3 of the leaf's value.
        value_hash: [u8; 32],
    },
}

/// A Merkle proof of a key's value or absence (docs/ledger.md, "Proofs").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// Sibling hashes along the key's path, from the root's children (depth
    /// 0) down; at most [`MAX_DEPTH`].
    pub siblings: Vec<[u8; 32]>,
    /// What sits at depth `siblings.len()` on the key's path.
    pub terminal: Terminal,
}

/// Why a proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// More siblings than path bits.
    #[error("proof has {count} siblings, over the limit of {max}")]
    TooManySiblings {
        /// The count.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The proof's leaf is not on the key's path.
    #[error("the proof's leaf does not share the key's path prefix of {depth} bits")]
    LeafOffPath {
        /// The leaf's depth.
        depth: usize,
    },
    /// The proof hashes to another root.
    #[error("the proof hashes to root {computed}, not the expected {expected}")]
    RootMismatch {
        /// The expected root, hex.
        expected: String,
        /// The proof's root, hex.
        computed: String,
    },
    /// A value was claimed but the proof shows the key absent.
    #[error("a value was claimed, but the proof shows the key absent")]
    KeyAbsent,
    /// Absence was claimed but the proof shows the key present.
    #[error("the key was claimed absent, but the proof shows it present")]
    KeyPresent,
    /// The claimed value does not hash to the proven one.
    #[error("the claimed value does not match the proven value hash")]
    ValueMismatch,
}

/// Checks that `proof` shows `key` holding `value` (`Some`) or being absent
/// (`None`) in the map whose root hash is `root`. Needs nothing but its
/// arguments: this is the light client's check.
pub fn verify(
    root: &[u8; 32],
    key: &[u8],
    value: Option<&[u8]>,
    proof: &Proof,
) -> Result<(), ProofError> {
    let depth = proof.siblings.len();
    if depth > MAX_DEPTH {
        return Err(ProofError::TooManySiblings {
            count: depth,
            max: MAX_DEPTH,
        });
    }
    let path = key_path(key);
    let (mut hash, proven) = match &proof.terminal {
        Terminal::Empty => (EMPTY_HASH, None),
        Terminal::Leaf {
            path: leaf_path,
            value_hash,
        } => {
            if !common_prefix(leaf_path, &path, depth) {
                return Err(ProofError::LeafOffPath { depth });
            }
            let proven = (*leaf_path == path).then_some(value_hash);
            (leaf_hash(leaf_path, value_hash), proven)
        }
    };
    for (d, sibling) in proof.siblings.iter().enumerate().rev() {
        hash = if bit(&path, d) {
            node_hash(sibling, &hash)
        } else {
            node_hash(&hash, sibling)
        };
    }
    if hash != *root {
        return Err(ProofError::RootMismatch {
            expected: glassbox_types::hex(root),
            computed: glassbox_types::hex(&hash),
        });
    }
    match (value, proven) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(ProofError::KeyPresent),
        (Some(_), None) => Err(ProofError::KeyAbsent),
        (Some(v), Some(h)) => {
            if blake3::hash(v).as_bytes() == h {
                Ok(())
            } else {
                Err(ProofError::ValueMismatch)
            }
        }
    }
}

impl Proof {
    /// The canonical encoding: `u8` version 1, `u16` sibling count (≤ 256),
    /// the siblings, then `u8` 0 (empty) or 1 followed by the leaf's path
    /// and value hash.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(3 + self.siblings.len() * 32 + 65);
        w.u8(PROOF_VERSION);
        w.u16(u16::try_from(self.siblings.len()).unwrap_or(u16::MAX));
        for s in &self.siblings {
            w.bytes(s);
        }
        match &self.terminal {
            Terminal::Empty => w.u8(0),
            Terminal::Leaf { path, value_hash } => {
                w.u8(1);
                w.bytes(path);
                w.bytes(value_hash);
            }
        }
        w.into_bytes()
    }

    /// Decodes [`Proof::encode`]'s form, rejecting anything else.
    pub fn decode(bytes: &[u8]) -> Result<Proof, DecodeError> {
        let mut r = Reader::new("proof", bytes);
        if bytes.len() > MAX_PROOF_BYTES {
            return Err(r.err(format!(
                "{} bytes, over the limit of {MAX_PROOF_BYTES}",
                bytes.len()
            )));
        }
        r.version(PROOF_VERSION)?;
        let at = r.pos();
        let n = usize::from(r.u16()?);
        if n > MAX_DEPTH {
            return Err(r.err_at(at, format!("{n} siblings, over the limit of {MAX_DEPTH}")));
        }
        let mut siblings = Vec::with_capacity(n);
        for _ in 0..n {
            siblings.push(r.array()?);
        }
        let at = r.pos();
        let terminal = match r.u8()? {
            0 => Terminal::Empty,
            1 => Terminal::Leaf {
                path: r.array()?,
                value_hash: r.array()?,
            },
            t => return Err(r.err_at(at, format!("terminal tag {t} is neither 0 nor 1"))),
        };
        r.finish()?;
        Ok(Proof { siblings, terminal })
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProofJson {
    siblings: Vec<crate::serde_util::Hex32>,
    leaf: Option<LeafJson>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", schema(as = ProofLeaf))]
struct LeafJson {
    path: crate::serde_util::Hex32,
    value_hash: crate::serde_util::Hex32,
}

impl serde::Serialize for Proof {
    /// `{"siblings": ["<hex>", ...], "leaf": null | {"path": "<hex>",
    /// "value_hash": "<hex>"}}`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ProofJson {
            siblings: self
                .siblings
                .iter()
                .map(|h| crate::serde_util::Hex32(*h))
                .collect(),
            leaf: match self.terminal {
                Terminal::Empty => None,
                Terminal::Leaf { path, value_hash } => Some(LeafJson {
                    path: crate::serde_util::Hex32(path),
                    value_hash: crate::serde_util::Hex32(value_hash),
                }),
            },
        }
        .serialize(s)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Proof {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <ProofJson as utoipa::PartialSchema>::schema()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Proof {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <ProofJson as utoipa::ToSchema>::schemas(schemas);
    }
}

impl<'de> serde::Deserialize<'de> for Proof {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let j = ProofJson::deserialize(d)?;
        if j.siblings.len() > MAX_DEPTH {
            return Err(serde::de::Error::custom(format!(
                "proof has {} siblings, over the limit of {MAX_DEPTH}",
                j.siblings.len()
            )));
        }
        Ok(Proof {
            siblings: j.siblings.into_iter().map(|h| h.0).collect(),
            terminal: match j.leaf {
                None => Terminal::Empty,
                Some(l) => Terminal::Leaf {
                    path: l.path.0,
                    value_hash: l.value_hash.0,
                },
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_and_prefixes() {
        let mut a = [0u8; 32];
        assert!(!bit(&a, 0));
        a[0] = 0x80;
        assert!(bit(&a, 0));
        assert!(!bit(&a, 1));
        a[31] = 1;
        assert!(bit(&a, 255));
        assert!(!bit(&a, 256), "past the end reads 0");
        let b = [0u8; 32];
        assert_eq!(first_difference(&a, &b), Some(0));
        assert_eq!(first_difference(&a, &a), None);
        let mut c = a;
        c[31] = 0;
        assert_eq!(first_difference(&a, &c), Some(255));
        assert!(common_prefix(&a, &c, 255));
        assert!(!common_prefix(&a, &c, 256));
    }

    #[test]
    fn split_chains_down_to_the_first_difference() {
        let leaf = |p: [u8; 32]| {
            Arc::new(Leaf {
                path: p,
                key: Box::new([]),
                value: Box::new([]),
                hash: OnceLock::new(),
            })
        };
        let mut p1 = [0u8; 32];
        let mut p2 = [0u8; 32];
        p1[0] = 0b0000_0100; // differ at bit 5
        p2[0] = 0b0000_0000;
        let n = split(0, leaf(p1), leaf(p2));
        // Five single-child levels, then the fork.
        let mut node = &n;
        for _ in 0..5 {
            match node {
                Node::Internal(i) => {
                    assert!(matches!(i.right, Node::Empty));
                    node = &i.left;
                }
                _ => panic!("expected a chain node"),
            }
        }
        match node {
            Node::Internal(i) => {
                assert!(matches!(&i.left, Node::Leaf(l) if l.path == p2));
                assert!(matches!(&i.right, Node::Leaf(l) if l.path == p1));
            }
            _ => panic!("expected the fork"),
        }
    }

    #[test]
    fn remove_collapses_to_a_leaf() {
        let mut t = Smt::new();
        t.insert(b"a", b"1").unwrap();
        let one = t.root();
        t.insert(b"b", b"2").unwrap();
        assert!(matches!(t.root, Node::Internal(_)));
        assert!(t.remove(b"b"));
        assert!(matches!(t.root, Node::Leaf(_)), "collapsed back to a leaf");
        assert_eq!(t.root(), one);
        assert!(!t.remove(b"b"));
        assert!(t.remove(b"a"));
        assert_eq!(t.root(), EMPTY_HASH);
        assert!(t.is_empty());
    }

    #[test]
    fn single_leaf_root_is_its_leaf_hash() {
        let mut t = Smt::new();
        t.insert(b"k", b"v").unwrap();
        let expect = leaf_hash(&key_path(b"k"), blake3::hash(b"v").as_bytes());
        assert_eq!(t.root(), expect);
    }

    #[test]
    fn limits() {
        let mut t = Smt::new();
        assert!(matches!(
            t.insert(&vec![0; MAX_KEY_BYTES + 1], b""),
            Err(SmtError::KeyTooLong { .. })
        ));
        assert!(t.insert(&vec![0; MAX_KEY_BYTES], b"").is_ok());
        let too_big = Proof {
            siblings: vec![[0; 32]; MAX_DEPTH + 1],
            terminal: Terminal::Empty,
        };
        assert!(matches!(
            verify(&EMPTY_HASH, b"k", None, &too_big),
            Err(ProofError::TooManySiblings { .. })
        ));
        assert!(Proof::decode(&too_big.encode()).is_err());
    }
}
