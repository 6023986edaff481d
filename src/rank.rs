//! Where this process sits in a distributed job: rank, local rank and world size.
//!
//! Launchers announce the rank through environment variables. [`RankInfo::from_env`]
//! reads them in a fixed order: `RANK` (torchrun, accelerate, DeepSpeed), then
//! `SLURM_PROCID`, `OMPI_COMM_WORLD_RANK` and `PMI_RANK`. The first variable that holds
//! a non-negative integer wins; a variable that is set but not a number is skipped.
//! `0` is a real rank, not "missing" (the Python original got that wrong).

use std::fmt;

/// Launcher variables that carry the global rank, in the order they are consulted.
pub const RANK_VARS: [&str; 4] = ["RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK"];
/// Launcher variables that carry the rank within the node.
pub const LOCAL_RANK_VARS: [&str; 4] = [
    "LOCAL_RANK",
    "SLURM_LOCALID",
    "OMPI_COMM_WORLD_LOCAL_RANK",
    "MPI_LOCALRANKID",
];
/// Launcher variables that carry the number of processes in the job.
pub const WORLD_SIZE_VARS: [&str; 4] = [
    "WORLD_SIZE",
    "SLURM_NTASKS",
    "OMPI_COMM_WORLD_SIZE",
    "PMI_SIZE",
];

/// The position of this process in a (possibly single-process) job.
///
/// ```
/// let info = trainlog::RankInfo::new(3).with_world_size(8);
/// assert_eq!(info.rank, 3);
/// assert!(!info.is_rank0());
/// assert_eq!(info.to_string(), "rank 3 (local 3) of 8");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RankInfo {
    /// Global rank; 0 on a single-process run.
    pub rank: u32,
    /// Rank on this node; defaults to the global rank.
    pub local_rank: u32,
    /// Number of processes in the job; at least `rank + 1`.
    pub world_size: u32,
}

impl RankInfo {
    /// A process with the given global rank (local rank equal to it).
    pub fn new(rank: u32) -> Self {
        RankInfo {
            rank,
            local_rank: rank,
            world_size: rank.saturating_add(1),
        }
    }

    /// Sets the local rank.
    pub fn with_local_rank(mut self, local_rank: u32) -> Self {
        self.local_rank = local_rank;
        self
    }

    /// Sets the world size (raised to `rank + 1` if smaller).
    pub fn with_world_size(mut self, world_size: u32) -> Self {
        self.world_size = world_size.max(self.rank.saturating_add(1));
        self
    }

    /// Reads the rank, local rank and world size from the launcher's environment.
    ///
    /// Missing variables give a single-process job: rank 0 of 1.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env) but with a custom variable lookup (handy in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let first = |names: &[&str]| {
            names
                .iter()
                .find_map(|name| lookup(name).and_then(|v| v.trim().parse::<u32>().ok()))
        };
        let rank = first(&RANK_VARS).unwrap_or(0);
        let local_rank = first(&LOCAL_RANK_VARS).unwrap_or(rank);
        let world_size = first(&WORLD_SIZE_VARS).unwrap_or(0);
        RankInfo::new(rank)
            .with_local_rank(local_rank)
            .with_world_size(world_size)
    }

    /// Whether this is the process that writes rank-0-only backends.
    pub fn is_rank0(&self) -> bool {
        self.rank == 0
    }
}

impl Default for RankInfo {
    fn default() -> Self {
        RankInfo::new(0)
    }
}

impl fmt::Display for RankInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rank {} (local {}) of {}",
            self.rank, self.local_rank, self.world_size
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn info(vars: &[(&str, &str)]) -> RankInfo {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RankInfo::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn no_variables_is_rank_zero_of_one() {
        assert_eq!(info(&[]), RankInfo::new(0));
        assert_eq!(info(&[]).world_size, 1);
    }

    #[test]
    fn rank_zero_is_not_missing() {
        // RANK=0 must win over a launcher variable further down the list.
        let i = info(&[("RANK", "0"), ("SLURM_PROCID", "5")]);
        assert_eq!(i.rank, 0);
        assert!(i.is_rank0());
    }

    #[test]
    fn launcher_variables_in_order() {
        assert_eq!(info(&[("SLURM_PROCID", "2"), ("PMI_RANK", "7")]).rank, 2);
        assert_eq!(info(&[("OMPI_COMM_WORLD_RANK", "4")]).rank, 4);
        assert_eq!(info(&[("PMI_RANK", "7")]).rank, 7);
    }

    #[test]
    fn garbage_is_skipped() {
        assert_eq!(info(&[("RANK", "abc"), ("SLURM_PROCID", "3")]).rank, 3);
        assert_eq!(info(&[("RANK", "-1")]).rank, 0);
    }

    #[test]
    fn local_rank_and_world_size() {
        let i = info(&[("RANK", "5"), ("LOCAL_RANK", "1"), ("WORLD_SIZE", "8")]);
        assert_eq!((i.rank, i.local_rank, i.world_size), (5, 1, 8));
        // A world size smaller than the rank is corrected rather than trusted.
        assert_eq!(info(&[("RANK", "5"), ("WORLD_SIZE", "2")]).world_size, 6);
    }
}
