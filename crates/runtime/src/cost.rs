//! Deterministic cost figures, known before execution.
//!
//! A node's cost is counted from shapes alone: `flops` (floating-point or
//! integer arithmetic operations, a multiply-add counting 2) and `bytes`
//! (bytes read from inputs plus bytes written to outputs). The model's cost
//! is the saturating sum over its nodes. See docs/determinism.md, "Cost".

/// Arithmetic and memory cost of a node or a whole run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Cost {
    /// Arithmetic operations (a multiply-add counts 2).
    pub flops: u64,
    /// Bytes read plus bytes written.
    pub bytes: u64,
}

impl Cost {
    /// Component-wise saturating sum.
    pub fn saturating_add(self, other: Cost) -> Cost {
        Cost {
            flops: self.flops.saturating_add(other.flops),
            bytes: self.bytes.saturating_add(other.bytes),
        }
    }
}

impl std::iter::Sum for Cost {
    fn sum<I: Iterator<Item = Cost>>(iter: I) -> Cost {
        iter.fold(Cost::default(), Cost::saturating_add)
    }
}
