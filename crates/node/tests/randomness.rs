//! Block randomness: the header carries the threshold VRF seed of its
//! parent's round, verification rejects any other seed, and the
//! randomness is a fixed function of the header.

use std::sync::Arc;

use commonware_codec::{Copying, DecodeExt, Encode};
use commonware_consensus::simplex::scheme::bls12381_threshold::vrf::{self, Seedable};
use commonware_consensus::simplex::types::{Notarization, Notarize, Proposal};
use commonware_consensus::types::{Height, Round, View};
use commonware_consensus::{Heightable, Reporter};
use commonware_cryptography::bls12381::primitives::variant::MinSig;
use commonware_cryptography::certificate::mocks::Fixture;
use commonware_cryptography::{Digestible, Hasher, Sha256, Signer as _, ed25519};
use commonware_parallel::Sequential;
use commonware_utils::non_empty;
use futures::channel::mpsc;
use glassbox_ledger::{GenesisState, Params, State};
use glassbox_node::chain::Chain;
use glassbox_node::chain::mempool::MempoolLimits;
use glassbox_node::consensus::application::{
    Application, HeaderError, PARENT_SEED_WAIT, SEED_CACHE_VIEWS, SeedCache,
};
use glassbox_node::consensus::block::{
    Block, Header, RANDOMNESS_DOMAIN, SeedError, check_seed, randomness,
};
use glassbox_node::consensus::genesis::genesis_block;
use glassbox_node::consensus::{Activity, Context, Digest, EPOCH, NAMESPACE, Scheme, Seed};
use rand::SeedableRng;
use rand::rngs::StdRng;

const VALIDATORS: u32 = 4;
const GENESIS_TIME: u64 = 1_000;

fn fixture(seed: u64) -> Fixture<Scheme> {
    let mut rng = StdRng::seed_from_u64(seed);
    vrf::fixture::<MinSig, _>(&mut rng, NAMESPACE, VALIDATORS)
}

/// A certificate verifier of the fixture's group key (what a node builds
/// from `genesis.json`).
fn verifier(f: &Fixture<Scheme>) -> Scheme {
    Scheme::certificate_verifier(NAMESPACE, *f.schemes[0].identity())
}

fn round(view: u64) -> Round {
    Round::new(EPOCH, View::new(view))
}

/// The notarization of `payload` in `view` by every validator.
fn notarization(
    f: &Fixture<Scheme>,
    view: u64,
    parent: u64,
    payload: Digest,
) -> Notarization<Scheme, Digest> {
    let proposal = Proposal::new(round(view), View::new(parent), payload);
    let votes: Vec<_> = f
        .schemes
        .iter()
        .map(|s| Notarize::sign(s, proposal.clone()).expect("signer"))
        .collect();
    Notarization::from_notarizes(&f.schemes[0], non_empty![@&votes], &Sequential).expect("quorum")
}

fn seed(f: &Fixture<Scheme>, view: u64) -> Seed {
    notarization(f, view, view.saturating_sub(1), Sha256::hash(&[b"payload"])).seed()
}

fn context(view: u64, parent_view: u64, parent: Digest) -> Context {
    Context {
        round: round(view),
        leader: ed25519::PrivateKey::from_seed(0).public_key(),
        parent: (View::new(parent_view), parent),
    }
}

fn genesis() -> (State, Block) {
    let state = State::genesis(&GenesisState {
        chain_name: "glassbox-randomness".into(),
        genesis_time_ms: GENESIS_TIME,
        params: Params::default(),
        accounts: Vec::new(),
        executors: Vec::new(),
    })
    .expect("valid genesis");
    let block = genesis_block(GENESIS_TIME, state.root());
    (state, block)
}

/// A child of `parent` proposed in `view` carrying `seed` (the state root
/// does not matter before re-execution).
fn child(parent: &Block, view: u64, seed: Option<Seed>) -> Block {
    Block::with_seed(
        context(
            view,
            parent.header().context.round.view().get(),
            parent.digest(),
        ),
        parent.digest(),
        parent.height().next(),
        parent.header().timestamp_ms + 1,
        seed,
        Vec::new(),
        glassbox_primitives::StateRoot::from_bytes([7; 32]),
    )
}

fn application(f: &Fixture<Scheme>, seeds: SeedCache) -> Application {
    let (state, genesis) = genesis();
    let chain = Arc::new(Chain::new(genesis, state, MempoolLimits::default()));
    let (tx, _rx) = mpsc::unbounded();
    Application::new(chain, tx, seeds, verifier(f))
}

#[test]
fn the_right_seed_passes_and_every_wrong_one_is_rejected() {
    let f = fixture(1);
    let v = verifier(&f);
    let (_, g) = genesis();
    // Height 1: parent genesis, no seed.
    let b1 = child(&g, 1, None);
    assert_eq!(check_seed(b1.header(), g.header(), None, &v), Ok(()));
    let with = child(&g, 1, Some(seed(&f, 1)));
    assert_eq!(
        check_seed(with.header(), g.header(), None, &v),
        Err(SeedError::Unexpected)
    );

    // Height 2 in view 3 on b1 (view 1): the seed of round (EPOCH, 1).
    let good = seed(&f, 1);
    let b2 = child(&b1, 3, Some(good.clone()));
    assert_eq!(check_seed(b2.header(), b1.header(), None, &v), Ok(()));
    assert_eq!(
        check_seed(b2.header(), b1.header(), Some(&good), &v),
        Ok(())
    );

    // No seed.
    let none = child(&b1, 3, None);
    assert_eq!(
        check_seed(none.header(), b1.header(), None, &v),
        Err(SeedError::Missing)
    );

    // A valid seed of another round (the block's own view, or the one
    // before the parent's).
    for other in [3, 2, 0] {
        let wrong = child(&b1, 3, Some(seed(&f, other)));
        assert_eq!(
            check_seed(wrong.header(), b1.header(), None, &v),
            Err(SeedError::WrongRound {
                expected: round(1),
                found: round(other),
            }),
            "view {other}"
        );
    }

    // Another view's signature relabeled with the parent's round: fails
    // the pairing check, also when the cache holds the right seed.
    let relabeled = Seed::new(round(1), seed(&f, 2).signature);
    let forged = child(&b1, 3, Some(relabeled));
    assert_eq!(
        check_seed(forged.header(), b1.header(), None, &v),
        Err(SeedError::BadSignature)
    );
    assert_eq!(
        check_seed(forged.header(), b1.header(), Some(&good), &v),
        Err(SeedError::BadSignature)
    );

    // The right round signed by another validator set.
    let foreign = child(&b1, 3, Some(seed(&fixture(2), 1)));
    assert_eq!(
        check_seed(foreign.header(), b1.header(), None, &v),
        Err(SeedError::BadSignature)
    );

    // A context that names another view for the parent than its own.
    let mut header = b2.header().clone();
    header.context.parent.0 = View::new(2);
    header.seed = Some(seed(&f, 2));
    assert_eq!(
        check_seed(&header, b1.header(), None, &v),
        Err(SeedError::ParentView {
            context: View::new(2),
            parent: View::new(1),
        })
    );
}

#[test]
fn verification_rejects_a_wrong_seed_before_any_ledger_work() {
    let f = fixture(3);
    let seeds = SeedCache::new();
    let app = application(&f, seeds.clone());
    let (_, g) = genesis();
    let now = u64::MAX / 2;

    let b1 = child(&g, 1, None);
    assert_eq!(app.check_header(&b1, &g, now), Ok(()));
    assert_eq!(
        app.check_header(&child(&g, 1, Some(seed(&f, 1))), &g, now),
        Err(HeaderError::Seed(SeedError::Unexpected))
    );

    // Wrong round.
    let b2_wrong_round = child(&b1, 2, Some(seed(&f, 2)));
    assert_eq!(
        app.check_header(&b2_wrong_round, &b1, now),
        Err(HeaderError::Seed(SeedError::WrongRound {
            expected: round(1),
            found: round(2),
        }))
    );
    // A signature from another view.
    let b2_forged = child(&b1, 2, Some(Seed::new(round(1), seed(&f, 5).signature)));
    assert_eq!(
        app.check_header(&b2_forged, &b1, now),
        Err(HeaderError::Seed(SeedError::BadSignature))
    );
    assert!(seeds.is_empty(), "a rejected seed reached the cache");

    // The right seed passes the pairing check and is then cached.
    let b2 = child(&b1, 2, Some(seed(&f, 1)));
    assert_eq!(app.check_header(&b2, &b1, now), Ok(()));
    assert_eq!(seeds.get(View::new(1)), Some(seed(&f, 1)));
    // A cached seed does not let a forged one through.
    assert_eq!(
        app.check_header(&b2_forged, &b1, now),
        Err(HeaderError::Seed(SeedError::BadSignature))
    );

    // The other header checks still apply.
    assert_eq!(app.check_header(&b2, &g, now), Err(HeaderError::NotChild));
    assert!(matches!(
        app.check_header(&b2, &b1, 0),
        Err(HeaderError::TimestampAhead { .. })
    ));
}

#[test]
fn the_seed_cache_takes_seeds_from_reported_certificates_and_stays_bounded() {
    let f = fixture(4);
    let mut seeds = SeedCache::new();
    let n = notarization(&f, 9, 8, Sha256::hash(&[b"block"]));
    seeds.report(Activity::Notarization(n.clone()));
    assert_eq!(seeds.get(View::new(9)), Some(n.seed()));
    assert_eq!(seeds.len(), 1);

    let signature = n.seed().signature;
    for view in 0..(SEED_CACHE_VIEWS as u64 + 100) {
        seeds.insert(Seed::new(round(1_000 + view), signature));
    }
    assert_eq!(seeds.len(), SEED_CACHE_VIEWS);
    assert_eq!(seeds.get(View::new(9)), None, "the oldest view is dropped");
    assert!(
        seeds
            .get(View::new(1_000 + SEED_CACHE_VIEWS as u64 + 99))
            .is_some()
    );
    // Seeds of another epoch are ignored.
    let other = Seed::new(Round::new(EPOCH.next(), View::new(5_000)), signature);
    seeds.insert(other);
    assert_eq!(seeds.get(View::new(5_000)), None);
    assert!(PARENT_SEED_WAIT.as_millis() > 0);
}

#[test]
fn the_header_encodes_its_seed_and_the_digest_covers_it() {
    let f = fixture(5);
    let (_, g) = genesis();
    let b1 = child(&g, 1, None);
    let b2 = child(&b1, 4, Some(seed(&f, 1)));
    for block in [&b1, &b2] {
        let bytes = block.header().encode();
        let back = Header::decode(bytes.clone()).expect("decodes");
        assert_eq!(&back, block.header());
        let whole = Block::decode(block.encode()).expect("block decodes");
        assert_eq!(&whole, block);
    }
    // Absent: one 0 byte at the end; present: 1, the round, 48 bytes.
    let h1 = b1.header().encode();
    assert_eq!(h1.last(), Some(&0));
    let h2 = b2.header().encode();
    let seed_bytes = seed(&f, 1).encode();
    assert_eq!(seed_bytes.len(), 2 + 48);
    assert_eq!(&h2[h2.len() - seed_bytes.len() - 1..], {
        let mut v = vec![1u8];
        v.extend_from_slice(&seed_bytes);
        v
    });

    // Another seed, another digest.
    let b2_other = child(&b1, 4, Some(seed(&f, 2)));
    assert_ne!(b2_other.digest(), b2.digest());

    // A presence byte other than 0/1, truncation and trailing bytes fail.
    let mut bad = h2.to_vec();
    let at = bad.len() - seed_bytes.len() - 1;
    bad[at] = 2;
    assert!(Header::decode(bad).is_err());
    assert!(Header::decode(Copying(&h2[..h2.len() - 1])).is_err());
    let mut long = h1.to_vec();
    long.push(0);
    assert!(Header::decode(long).is_err());
    // A signature that is not a curve point fails.
    let mut junk = h2.to_vec();
    let n = junk.len();
    for b in &mut junk[n - 48..] {
        *b = 0xff;
    }
    assert!(Header::decode(junk).is_err());
}

#[test]
fn randomness_is_blake3_of_the_domain_and_the_seed_signature() {
    let f = fixture(6);
    let (_, g) = genesis();
    let b1 = child(&g, 1, None);
    let mut h = blake3::Hasher::new();
    h.update(RANDOMNESS_DOMAIN);
    h.update(g.digest().as_ref());
    assert_eq!(b1.header().randomness(), *h.finalize().as_bytes());
    assert_eq!(RANDOMNESS_DOMAIN, b"GBRN1");

    let s1 = seed(&f, 1);
    let b2 = child(&b1, 2, Some(s1.clone()));
    let mut h = blake3::Hasher::new();
    h.update(b"GBRN1");
    h.update(&s1.signature.encode());
    assert_eq!(b2.header().randomness(), *h.finalize().as_bytes());
    assert_eq!(
        randomness(Some(&s1), &Sha256::hash(&[b"anything"])),
        b2.header().randomness(),
        "with a seed, only the seed counts"
    );
    // Same round and signature whatever the block: every validator, and
    // every proposer building on that parent, gets the same value.
    let b2_again = child(&b1, 7, Some(s1));
    assert_eq!(b2_again.header().randomness(), b2.header().randomness());
    // Different views, different randomness.
    let b3 = child(&b2, 3, Some(seed(&f, 2)));
    assert_ne!(b3.header().randomness(), b2.header().randomness());
    assert_ne!(b2.header().randomness(), b1.header().randomness());
    assert_eq!(b3.height(), Height::new(3));
}
