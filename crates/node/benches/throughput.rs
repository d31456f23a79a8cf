//! Ledger and consensus throughput on a local network: N validators in
//! this process on Commonware's tokio runtime, real authenticated p2p over
//! loopback TCP, real storage in a temporary directory. Signed transfers
//! are offered at a fixed rate; prints finalized transactions per second,
//! block time and submit-to-finalized latency (p50/p99).
//!
//! `cargo bench -p glassbox-node --bench throughput -- [TXS] [RATE_PER_S] [VALIDATORS]`
//! (scripts/bench_ledger.sh runs it).
//!
//! Each transaction is submitted to one validator (round robin), as a
//! client would through that validator's API; the validators gossip it to
//! each other. Every validator checks every signature itself, as it would
//! on its own machine; here all of them share this machine's cores, so the
//! figure is a lower bound for a real deployment.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::percentile;
use commonware_runtime::{Clock, Runner as _, Spawner, Supervisor as _, tokio as cw_tokio};
use glassbox_ledger::{GenesisAccount, GenesisState, Params, SignedTx, TxBody, TxHash};
use glassbox_node::chain::Chain;
use glassbox_node::consensus::engine::Timing;
use glassbox_node::consensus::genesis::deal_validators;
use glassbox_node::run::{ValidatorRun, start_validator};
use glassbox_types::SecretKey;

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GLASSBOX_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let total = arg(1, 40_000) as usize;
    let rate = arg(2, 8_000).max(1);
    let validators = arg(3, 4).clamp(1, 16) as usize;
    let senders = (total / 64).clamp(1, 4_096);
    let per_sender = total.div_ceil(senders);

    let keys: Vec<SecretKey> = (0..senders)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            SecretKey::from_seed(&seed)
        })
        .collect();
    let ledger = GenesisState {
        chain_name: "glassbox-bench".into(),
        genesis_time_ms: 0,
        params: Params::default(),
        accounts: keys
            .iter()
            .map(|k| GenesisAccount {
                address: k.public(),
                balance: 1_000_000_000_000,
            })
            .collect(),
        executors: Vec::new(),
    };
    let addresses: Vec<_> = (0..validators).map(|_| (free_port(), None)).collect();
    let (genesis, secrets) =
        deal_validators(&mut rand::rng(), ledger, &addresses).expect("genesis");
    let (state, _) = genesis.genesis().expect("genesis state");
    let chain_id = state.chain_id();

    // Sign everything up front: the benchmark measures the network.
    let fee = 10_000;
    let mut txs = Vec::with_capacity(senders * per_sender);
    for nonce in 0..per_sender as u64 {
        for (i, key) in keys.iter().enumerate() {
            let to = keys[(i + 1) % keys.len()].public();
            txs.push(
                SignedTx::sign(
                    &chain_id,
                    key,
                    nonce,
                    fee,
                    TxBody::Transfer { to, amount: 1 },
                )
                .expect("sign"),
            );
        }
    }
    txs.truncate(total);

    let dir = tempfile::tempdir().expect("temp dir");
    let runner = cw_tokio::Runner::new(
        cw_tokio::Config::default()
            .with_tcp_nodelay(Some(true))
            .with_worker_threads(2)
            .with_storage_directory(dir.path().join("storage"))
            .with_catch_panics(false),
    );
    runner.start(|context| async move {
        let mut chains: Vec<Arc<Chain>> = Vec::new();
        for (i, key) in secrets.into_iter().enumerate() {
            let run = ValidatorRun {
                key,
                p2p_listen: genesis.validators[i].p2p_address,
                partition_prefix: format!("validator-{i}"),
                timing: Timing::default(),
                snapshots: Default::default(),
                sync_peers: Vec::new(),
            };
            let (started, _handles) = start_validator(
                context.child("validator").with_attribute("index", i),
                &genesis,
                run,
            )
            .await
            .expect("validator starts");
            chains.push(started.chain);
        }
        // Wait for the network to finalize its first blocks.
        while chains.iter().any(|c| c.finalized_height() < 3) {
            context.sleep(Duration::from_millis(20)).await;
        }

        // Transaction i is due at `t0 + tick * (i / per_tick)`; latency is
        // measured from that moment, so a feeder falling behind counts as
        // queueing, not as a faster network.
        let tick = Duration::from_millis(20);
        let per_tick = (((rate as f64) * tick.as_secs_f64()).ceil() as usize).max(1);
        let t0 = Instant::now() + Duration::from_millis(100);
        let due: HashMap<TxHash, Instant> = txs
            .iter()
            .enumerate()
            .map(|(i, tx)| (tx.hash(), t0 + tick * (i / per_tick) as u32))
            .collect();
        // One feeder per validator: its API clients.
        let mut feeders = Vec::new();
        for (v, chain) in chains.iter().enumerate() {
            let chain = chain.clone();
            let n = chains.len();
            // Validator v's API receives transactions v, v + n, ...; the
            // others get them by gossip.
            let copies: Vec<(usize, SignedTx)> = txs
                .iter()
                .enumerate()
                .filter(|(i, _)| i % n == v)
                .map(|(i, tx)| (i, SignedTx::decode(tx.encoded()).expect("decodes")))
                .collect();
            feeders.push(context.child("feeder").with_attribute("index", v).spawn(
                move |context| async move {
                    for (i, tx) in copies {
                        let at = t0 + tick * (i / per_tick) as u32;
                        if let Some(wait) = at.checked_duration_since(Instant::now()) {
                            context.sleep(wait).await;
                        }
                        let _ = chain.submit(tx);
                    }
                },
            ));
        }
        let watch = &chains[0];
        let start_height = watch.finalized_height();
        let start = Instant::now();
        let mut waiting = due.clone();
        let mut latencies = Vec::with_capacity(total);
        let mut first_tx: Option<Instant> = None;
        let mut last_tx = start;
        let deadline = start + Duration::from_secs(120);
        while !waiting.is_empty() && Instant::now() < deadline {
            context.sleep(Duration::from_millis(10)).await;
            let now = Instant::now();
            waiting.retain(|hash, at| {
                let done = matches!(
                    watch.tx_status(hash),
                    Some(glassbox_node::chain::TxStatus::Finalized { .. })
                );
                if done {
                    latencies.push(now.saturating_duration_since(*at));
                    first_tx.get_or_insert(*at);
                    last_tx = now;
                }
                !done
            });
        }
        let seen = watch.finalized_height();
        if std::env::var_os("GLASSBOX_BENCH_DEBUG").is_some() {
            let sizes: Vec<usize> = (start_height + 1..=seen)
                .filter_map(|h| watch.finalized_block(h))
                .map(|b| b.txs().len())
                .collect();
            println!("block sizes: {sizes:?}");
            let pools: Vec<usize> = chains.iter().map(|c| c.mempool_len()).collect();
            println!("mempools at the end: {pools:?}");
        }
        for f in feeders {
            f.abort();
        }
        let blocks = seen - start_height;
        let elapsed = start.elapsed();
        let busy = last_tx.duration_since(first_tx.unwrap_or(start));
        latencies.sort();
        println!("| metric | value |");
        println!("| --- | --- |");
        println!("| validators | {validators} (one process, loopback TCP) |");
        println!("| offered load | {rate} tx/s, {total} transfers from {senders} senders |");
        println!("| finalized | {} of {total} |", latencies.len());
        println!(
            "| finalized tx/s | {:.0} |",
            latencies.len() as f64 / busy.as_secs_f64().max(1e-9)
        );
        println!(
            "| block time | {:.1} ms ({blocks} blocks in {:.1} s) |",
            elapsed.as_secs_f64() * 1e3 / blocks.max(1) as f64,
            elapsed.as_secs_f64()
        );
        println!(
            "| submit-to-finalized p50 | {:.0} ms |",
            percentile(&latencies, 0.50).as_secs_f64() * 1e3
        );
        println!(
            "| submit-to-finalized p99 | {:.0} ms |",
            percentile(&latencies, 0.99).as_secs_f64() * 1e3
        );
    });
}
