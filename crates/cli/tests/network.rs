//! A real network on loopback: four `glassbox node` processes; one is
//! killed with SIGKILL, the others keep finalizing, and the restarted one
//! catches up from its own storage and its peers.

use std::time::Duration;

mod common;

use common::{Nodes, block_digest, height, wait};

const VALIDATORS: usize = 4;

#[test]
fn kill_9_one_validator_the_rest_finalize_and_it_catches_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let http = common::init_four_validators(dir);
    let ports: Vec<u16> = (0..VALIDATORS as u16).map(|i| http + i).collect();
    let mut nodes = Nodes::start(dir, VALIDATORS);

    let long = Duration::from_secs(60);
    wait("every node to finalize height 5", long, || {
        ports.iter().all(|&p| height(p).is_some_and(|h| h >= 5))
    });

    // A transfer sent to validator 1's API reaches the others by gossip and
    // is finalized everywhere.
    let key = glassbox_store::keyfile::read_secret_key(&dir.join("dev.key")).unwrap();
    let api = common::api_at(ports[1]);
    let chain_id = api.status().unwrap().chain_id;
    let to = glassbox_types::SecretKey::from_seed(&[5; 32]).public();
    let tx = glassbox_ledger::SignedTx::sign(
        &chain_id,
        &key,
        0,
        1_000_000,
        glassbox_ledger::TxBody::Transfer { to, amount: 42 },
    )
    .unwrap();
    api.submit_tx(&tx).expect("submit");
    wait("the transfer to finalize on every node", long, || {
        ports.iter().all(|&p| {
            matches!(
                common::api_at(p).tx_status(&tx.hash()),
                Ok(glassbox_api::wire::TxStatus::Finalized { .. })
            )
        })
    });

    // SIGKILL validator 3: no chance to flush anything.
    nodes.kill(3);
    let at_kill = height(ports[0]).unwrap();
    wait("three validators to keep finalizing", long, || {
        ports[..3]
            .iter()
            .all(|&p| height(p).is_some_and(|h| h >= at_kill + 10))
    });

    nodes.restart(dir, 3);
    let target = height(ports[0]).unwrap();
    wait("the restarted validator to catch up", long, || {
        height(ports[3]).is_some_and(|h| h >= target)
    });
    // Same blocks on both sides of the restart.
    for h in [1, at_kill, target] {
        let a = block_digest(ports[0], h);
        let b = block_digest(ports[3], h);
        if a.is_some() && b.is_some() {
            assert_eq!(a, b, "validators 0 and 3 disagree at height {h}");
        }
    }
    let a = block_digest(ports[0], target).expect("validator 0 keeps recent blocks");
    let b = block_digest(ports[3], target).expect("validator 3 serves the caught-up block");
    assert_eq!(a, b, "validators 0 and 3 disagree at height {target}");
}
