//! Test-only switches, each turning one issue #25 fix off on the calling
//! thread, so the adversary campaign can show that it finds every finding
//! it covers (the others, which need a wider model or the node, have
//! named regression tests) (crates/ledger/tests/disputes.rs,
//! `the_campaign_finds_each_finding_with_its_fix_off`). Compiled only with
//! the `adversary-switches` feature (the ledger's own tests enable it);
//! without it every fix is always on and [`is_off`] is a constant `false`.
//! Thread-local: tests run side by side, and the ledger runs a block on
//! the thread that applies it.

/// A fix the campaign can turn off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fix {
    /// Challenges keep coming while a one-replica result is under
    /// challenge (audit pre-emption).
    Preemption,
    /// A withheld reveal after another slot revealed forfeits the stake.
    Withholding,
    /// A run that fails at an operator is a result (no outputs), so
    /// honest executors of a failing job reveal instead of missing.
    FailureClaims,
}

impl Fix {
    /// Every fix a switch covers.
    pub const ALL: [Fix; 3] = [Fix::Preemption, Fix::Withholding, Fix::FailureClaims];

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

#[cfg(feature = "adversary-switches")]
thread_local! {
    static OFF: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Turns `fix` off (or back on) on this thread.
#[cfg(feature = "adversary-switches")]
pub fn set_off(fix: Fix, off: bool) {
    OFF.with(|c| {
        let bits = c.get();
        c.set(if off {
            bits | fix.bit()
        } else {
            bits & !fix.bit()
        });
    });
}

/// Whether `fix` is off on this thread.
#[cfg(feature = "adversary-switches")]
pub fn is_off(fix: Fix) -> bool {
    OFF.with(|c| c.get() & fix.bit() != 0)
}

/// Whether `fix` is off: never, without the `adversary-switches` feature.
#[cfg(not(feature = "adversary-switches"))]
pub fn is_off(fix: Fix) -> bool {
    let _ = fix.bit();
    false
}
