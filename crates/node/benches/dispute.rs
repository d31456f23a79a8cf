//! Dispute benchmark (issues #8, #25): for a model, a k = 2 job where one
//! executor lies at a random operator; the two sides play the dispute game
//! on the ledger with the runtime referee, block by block, as executors do.
//! Reports rounds, ledger bytes, and the referee's compute (one chunk of
//! the operator's output) as a fraction of a full inference. Then every
//! operator's referee work: one chunk of each operator's largest output,
//! timed, its worst case against the full inference (the goal is 1 %).
//!
//! ```text
//! cargo bench -p glassbox-node --bench dispute -- \
//!     [--model target/onnx-tests/random/resnet50-seed0.onnx] [--lies 8] [--seed 1] \
//!     [--seq 128]
//! ```
//!
//! The input is the same deterministic pattern `scripts/bench_compare.sh`
//! uses (floats in [-1, 1); integers 0 or 1, valid token ids, token types
//! and masks).
//! Everything runs in one process: a `State` per block, no network (the
//! network's block time turns rounds into latency; see docs/disputes.md).

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod common;

use glassbox_node::manifest::tensor_spec;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use glassbox_ledger::Referee;
use glassbox_ledger::dispute::{LeafOpening, Step, Target};
use glassbox_ledger::{
    BlockContext, GenesisAccount, GenesisExecutor, GenesisState, JobId, JobStatus, Params,
    SignedTx, State, TxBody, commitment,
};
use glassbox_node::disputes::party::Party;
use glassbox_node::disputes::referee::{MemoryData, RuntimeReferee};
use glassbox_primitives::chunks;
use glassbox_runtime::{Limits, Model, Options, Session, Tensor, formats};
use glassbox_types::{CostSpec, Manifest, ModelId, SecretKey, SignedManifest};

const FEE: u64 = 10_000_000;

struct Opts {
    model: PathBuf,
    lies: usize,
    seed: u64,
    /// Size of symbolic dimensions whose name contains "seq".
    seq: usize,
}

fn parse_args() -> Result<Opts> {
    let mut o = Opts {
        model: PathBuf::from("target/onnx-tests/random/resnet50-seed0.onnx"),
        lies: 8,
        seed: 1,
        seq: 128,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match a.as_str() {
            "--model" => o.model = PathBuf::from(val("--model")?),
            "--lies" => o.lies = val("--lies")?.parse().context("--lies")?,
            "--seed" => o.seed = val("--seed")?.parse().context("--seed")?,
            "--seq" => o.seq = val("--seq")?.parse().context("--seq")?,
            // `cargo bench` passes it to every bench target.
            "--bench" => {}
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(o)
}

fn key(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

fn manifest(bytes: &[u8], model: &Model, flops: u64, key: &SecretKey) -> Result<SignedManifest> {
    let m = Manifest {
        model_id: ModelId::of(bytes),
        size_bytes: bytes.len() as u64,
        name: "bench/dispute".into(),
        version: semver::Version::new(1, 0, 0),
        description: "dispute_bench model".into(),
        license: None,
        publisher: key.public(),
        created_at_unix_s: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        parents: Vec::new(),
        sources: Vec::new(),
        inputs: model.inputs().map(tensor_spec).collect(),
        outputs: model.outputs().map(tensor_spec).collect(),
        opset: u32::try_from(model.opset()).context("opset")?,
        cost: CostSpec { flops, bytes: 0 },
        runtime_version: glassbox_runtime::VERSION.to_string(),
    };
    Ok(SignedManifest::sign(m, key)?)
}

/// A ledger with the requester (1) and executors 5 and 6, jobs allowed up
/// to 1 MiB of inputs.
fn genesis() -> Result<State> {
    let params = Params {
        max_tx_bytes: 1 << 20,
        max_block_bytes: 64 << 20,
        max_job_io_bytes: 1 << 20,
        fee_per_byte: 1,
        min_fee: 1,
        ..Params::default()
    };
    let g = GenesisState {
        chain_name: "dispute-bench".into(),
        genesis_time_ms: 1_700_000_000_000,
        params,
        accounts: [1u8, 5, 6]
            .into_iter()
            .map(|n| GenesisAccount {
                address: key(n).public(),
                balance: 1 << 60,
            })
            .collect(),
        executors: [5u8, 6]
            .into_iter()
            .map(|n| GenesisExecutor {
                owner: key(n).public(),
                stake: 10_000_000_000,
                capacity: 8,
                endpoint: format!("http://executor-{n}.invalid"),
            })
            .collect(),
    };
    Ok(State::genesis(&g)?)
}

fn ctx(s: &State) -> BlockContext {
    BlockContext {
        height: s.height() + 1,
        timestamp_ms: s.timestamp_ms() + 100,
        randomness: [s.height() as u8; 32],
    }
}

fn sign(s: &State, who: &SecretKey, body: TxBody) -> Result<SignedTx> {
    let nonce = s.account(&who.public()).map_or(0, |a| a.nonce);
    Ok(SignedTx::sign(&s.chain_id(), who, nonce, FEE, body)?)
}

struct Outcome {
    lie_at: usize,
    target: Option<Target>,
    liar_lost: bool,
    rounds: u32,
    ledger_bytes: usize,
    steps: usize,
    referee: Duration,
    operator: Duration,
}

/// One k = 2 job where `liar` lies at (`node`, `element`), played to the
/// end; the referee's time is the time of the block that decided it.
fn play(
    state: &State,
    session: &Arc<Session>,
    inputs: &[Vec<u8>],
    honest: &Party,
    node: usize,
    element: usize,
) -> Result<Outcome> {
    let liar = Party::run_lying(Arc::clone(session), inputs, node, element)?;
    let mut data = MemoryData::default();
    data.insert_session(Arc::clone(session));
    let apply = |s: &State, txs: &[SignedTx], data: &MemoryData| -> Result<(State, Duration)> {
        let t = Instant::now();
        let (next, outcomes) = s.apply_block_with(ctx(s), txs, &RuntimeReferee { data })?;
        let took = t.elapsed();
        for o in outcomes {
            if let Err(e) = o.result {
                let msg = e.to_string();
                if !msg.contains("only a disputed job") && !msg.contains("not in the current game")
                {
                    bail!("transaction failed: {msg}");
                }
            }
        }
        Ok((next, took))
    };
    let submit = sign(
        state,
        &key(1),
        TxBody::SubmitJob {
            model_id: state.models().next().context("no model")?.model_id,
            inputs: inputs.to_vec(),
            replicas: 2,
            max_fee: u64::MAX >> 8,
        },
    )?;
    let id = JobId::of_tx(submit.hash());
    let (s, _) = apply(state, &[submit], &data)?;
    let (mut s, _) = apply(&s, &[], &data)?;
    let job = s.job(&id).context("job")?;
    let executors: Vec<SecretKey> = job
        .slots
        .iter()
        .map(|slot| {
            if slot.executor == key(5).public() {
                key(5)
            } else {
                key(6)
            }
        })
        .collect();
    let parties = [honest, &liar];
    let mut commits = Vec::new();
    for (i, (k, p)) in executors.iter().zip(parties).enumerate() {
        let c = commitment(
            &id,
            &k.public(),
            &p.output_hash(),
            &p.trace_root(),
            &glassbox_primitives::Salt::from_bytes([i as u8; 32]),
        );
        commits.push(sign(
            &s,
            k,
            TxBody::CommitResult {
                job_id: id,
                commitment: c,
            },
        )?);
    }
    (s, _) = apply(&s, &commits, &data)?;
    let mut reveals = Vec::new();
    for (i, (k, p)) in executors.iter().zip(parties).enumerate() {
        reveals.push(sign(
            &s,
            k,
            TxBody::RevealResult {
                job_id: id,
                output_hash: p.output_hash(),
                trace_root: p.trace_root(),
                salt: glassbox_primitives::Salt::from_bytes([i as u8; 32]),
                outputs: p.outputs(),
            },
        )?);
    }
    (s, _) = apply(&s, &reveals, &data)?;
    let (mut ledger_bytes, mut steps) = (0usize, 0usize);
    let (mut referee, mut operator) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..200 {
        if s.job(&id).context("job")?.status != JobStatus::Disputed {
            break;
        }
        let ext = s.job_ext(&id).context("ext")?;
        let mut opened: Vec<LeafOpening> = ext
            .dispute
            .as_ref()
            .and_then(|d| d.game.as_ref())
            .map(|g| g.opened.clone())
            .unwrap_or_default();
        let mut txs = Vec::new();
        for (k, p) in executors.iter().zip(parties) {
            if let Some(step) = p.next_step(&ext, &k.public()) {
                for t in p.opened_tensors(&step) {
                    data.insert_tensor(t);
                }
                if let Step::Openings { items } = &step {
                    opened.extend(items.iter().cloned());
                }
                let tx = sign(&s, k, TxBody::DisputeStep { job_id: id, step })?;
                ledger_bytes += tx.len();
                steps += 1;
                txs.push(tx);
            }
        }
        let (next, took) = apply(&s, &txs, &data)?;
        let decided = next
            .job_ext(&id)
            .and_then(|e| e.dispute)
            .is_some_and(|d| d.closed_height.is_some());
        if decided {
            referee = took;
            // The operator alone, as the referee ran it inside that block.
            let target = next
                .job_ext(&id)
                .and_then(|e| e.dispute)
                .and_then(|d| d.verdicts.first().and_then(|v| v.target));
            if let Some(Target::Chunk {
                node,
                output,
                chunk,
            }) = target
            {
                let lookup = |node: u64, slot: u32| {
                    opened
                        .iter()
                        .find(|o| o.node == node)
                        .and_then(|o| o.outputs.get(slot as usize).copied())
                };
                let model_id = s.job(&id).context("job")?.model_id;
                let referee = RuntimeReferee { data: &data };
                let len = referee
                    .output_bytes(&model_id, node, output, (0, 0), inputs, &lookup, u64::MAX)
                    .map_err(|e| anyhow::anyhow!("referee: {e}"))?
                    .len;
                let range = chunks::chunk_range(len, chunk).context("chunk")?;
                let t = Instant::now();
                referee
                    .output_bytes(&model_id, node, output, range, inputs, &lookup, u64::MAX)
                    .map_err(|e| anyhow::anyhow!("referee: {e}"))?;
                operator = t.elapsed();
            }
        }
        s = next;
    }
    let d = s
        .job_ext(&id)
        .and_then(|e| e.dispute)
        .context("no dispute")?;
    let v = d.verdicts.first().context("undecided")?;
    let liar_claim = d.claim_of(&executors[1].public()).context("liar's claim")?;
    let liar_lost = d.claims.get(liar_claim).is_some_and(|c| c.lost) && d.winner.is_some();
    Ok(Outcome {
        lie_at: node,
        target: v.target,
        liar_lost,
        rounds: v.rounds,
        ledger_bytes,
        steps,
        referee,
        operator,
    })
}

fn main() -> Result<()> {
    let o = parse_args()?;
    let bytes =
        std::fs::read(&o.model).with_context(|| format!("reading {}", o.model.display()))?;
    let model = Arc::new(Model::load(&bytes, Limits::default())?);
    let session = Arc::new(Session::new(Arc::clone(&model), Options::default())?);
    let shapes = common::input_shapes(&model, o.seq)?;
    let plan = session.plan_shapes(&shapes)?;
    let total_flops = plan.cost().flops.max(1);
    let node_flops: Vec<u64> = plan.node_costs().iter().map(|c| c.flops).collect();
    let inputs: Vec<Tensor> = model
        .inputs()
        .zip(&shapes)
        .map(|(v, s)| common::pattern(v, s))
        .collect::<Result<_>>()?;
    let encoded: Vec<Vec<u8>> = inputs.iter().map(formats::canonical_encode).collect();
    let leaves = model.nodes().len();

    // A full inference, median of 5.
    let mut full = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        session.run(inputs.clone())?;
        full.push(t.elapsed());
    }
    full.sort();
    let full = full[full.len() / 2];

    let mut state = genesis()?;
    let publish = sign(
        &state,
        &key(1),
        TxBody::PublishModel {
            manifest: Box::new(manifest(&bytes, &model, total_flops, &key(1))?),
        },
    )?;
    let (next, outcomes) = state.apply_block(ctx(&state), &[publish])?;
    if let Some(Err(e)) = outcomes.into_iter().next().map(|o| o.result) {
        bail!("publishing: {e}");
    }
    state = next;
    let honest = Party::run(Arc::clone(&session), &encoded)?;

    println!(
        "model {} — {leaves} operators, {:.2} Gflop, full inference {:.1} ms (1 thread default options)",
        o.model.display(),
        total_flops as f64 / 1e9,
        full.as_secs_f64() * 1e3
    );
    println!(
        "| lie at | decided at | liar lost | rounds | steps | ledger bytes | deciding block ms | chunk alone ms | chunk / full (time) | operator flops / total |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut next = common::xorshift(o.seed);
    let mut all = Vec::new();
    for _ in 0..o.lies {
        let node = (next() % leaves as u64) as usize;
        let element = next() as usize;
        let out = play(&state, &session, &encoded, &honest, node, element)?;
        let frac_time = out.operator.as_secs_f64() / full.as_secs_f64();
        let frac_flops = node_flops.get(node).copied().unwrap_or(0) as f64 / total_flops as f64;
        println!(
            "| {} ({}) | {:?} | {} | {} | {} | {} | {:.2} | {:.3} | {:.2} % | {:.3} % |",
            out.lie_at,
            model.nodes()[out.lie_at].op_type,
            out.target,
            out.liar_lost,
            out.rounds,
            out.steps,
            out.ledger_bytes,
            out.referee.as_secs_f64() * 1e3,
            out.operator.as_secs_f64() * 1e3,
            frac_time * 100.0,
            frac_flops * 100.0
        );
        all.push((out, frac_time, frac_flops));
    }
    let n = all.len().max(1) as f64;
    let caught = all
        .iter()
        .filter(|(o, _, _)| o.liar_lost && o.target.and_then(|t| t.node()) == Some(o.lie_at as u64))
        .count();
    println!(
        "\ncaught at exactly the corrupted operator: {caught}/{}; mean rounds {:.1}; mean ledger bytes {:.0}; mean chunk/full {:.2} % (time), operator flops/total {:.3} %; max chunk/full {:.2} % (time)",
        all.len(),
        all.iter().map(|(o, _, _)| f64::from(o.rounds)).sum::<f64>() / n,
        all.iter()
            .map(|(o, _, _)| o.ledger_bytes as f64)
            .sum::<f64>()
            / n,
        all.iter().map(|(_, t, _)| t * 100.0).sum::<f64>() / n,
        all.iter().map(|(_, _, f)| f * 100.0).sum::<f64>() / n,
        all.iter().map(|(_, t, _)| t * 100.0).fold(0.0, f64::max),
    );
    every_operator(&session, &inputs, full)
}

/// The referee's work for every operator of the model: one chunk (the
/// middle one) of its largest output, computed from the run's values as a
/// referee would, median of 3; prints the five costliest and the worst as a
/// share of the full inference, and the chunk's price in referee work
/// units (operand bytes decoded plus `Session::chunk_cost`) with the
/// slowest time per unit, which sizes `max_referee_work_per_block`.
fn every_operator(session: &Arc<Session>, inputs: &[Tensor], full: Duration) -> Result<()> {
    let model = session.model();
    let mut values: std::collections::HashMap<usize, Tensor> = model
        .input_ids()
        .iter()
        .copied()
        .zip(inputs.iter().cloned())
        .collect();
    session.run_observed(inputs.to_vec(), &mut |i, outs| {
        for (vid, t) in model.nodes()[i].outputs.iter().flatten().zip(outs) {
            values.insert(*vid, (*t).clone());
        }
    })?;
    let mut costs: Vec<(Duration, usize, u64, u64)> = Vec::new();
    for (i, node) in model.nodes().iter().enumerate() {
        let args: Vec<Option<Arc<Tensor>>> = node
            .inputs
            .iter()
            .map(|v| {
                v.and_then(|v| {
                    model
                        .constant_arc(v)
                        .cloned()
                        .or_else(|| values.get(&v).cloned().map(Arc::new))
                })
            })
            .collect();
        let Some((o, len)) = node
            .outputs
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(o, v)| values.get(v).map(|t| (o, formats::canonical_len(t))))
            .max_by_key(|&(_, len)| len)
        else {
            continue;
        };
        let range = chunks::chunk_range(len, chunks::chunk_count(len) / 2).context("chunk")?;
        let price = session.chunk_cost(i, &args, o, range.0..range.1)?;
        let decoded: u64 = node
            .inputs
            .iter()
            .flatten()
            .filter(|v| model.constant_arc(**v).is_none())
            .filter_map(|v| values.get(v).map(formats::canonical_len))
            .sum();
        let work = decoded + price.flops + price.bytes;
        let mut times = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            session.run_node_bytes(i, &args, o, range.0..range.1)?;
            times.push(t.elapsed());
        }
        times.sort();
        costs.push((times[1], i, len, work));
    }
    costs.sort_by_key(|c| std::cmp::Reverse(c.0));
    println!("\nreferee work per operator (one chunk of its largest output), costliest first:");
    println!("| operator | output bytes | chunk ms | chunk / full inference | work units |");
    println!("|---|---|---|---|---|");
    for (t, i, len, work) in costs.iter().take(5) {
        println!(
            "| {i} ({}) | {len} | {:.3} | {:.3} % | {work} |",
            model.nodes()[*i].op_type,
            t.as_secs_f64() * 1e3,
            t.as_secs_f64() / full.as_secs_f64() * 100.0
        );
    }
    // Units priced against time taken, over chunks long enough to time.
    if let Some((t, i, _, work)) = costs
        .iter()
        .filter(|c| c.0 >= Duration::from_micros(10))
        .max_by(|a, b| {
            (a.0.as_secs_f64() / a.3.max(1) as f64)
                .total_cmp(&(b.0.as_secs_f64() / b.3.max(1) as f64))
        })
    {
        let ns = t.as_secs_f64() * 1e9 / (*work).max(1) as f64;
        println!(
            "\nslowest work unit: {ns:.3} ns at operator {i} ({}): the default budget of {} units is {:.1} ms at that rate",
            model.nodes()[*i].op_type,
            glassbox_ledger::DEFAULT_REFEREE_WORK,
            ns * glassbox_ledger::DEFAULT_REFEREE_WORK as f64 / 1e6
        );
    }
    if let Some((t, i, _, _)) = costs.first() {
        println!(
            "\nworst operator: {i} ({}), {:.3} % of a full inference ({} operators)",
            model.nodes()[*i].op_type,
            t.as_secs_f64() / full.as_secs_f64() * 100.0,
            costs.len()
        );
    }
    Ok(())
}
