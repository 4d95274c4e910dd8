//! Ranks as threads of one process: the same trainer code as under MPI, without a launcher,
//! so the equivalence of world sizes is tested in every build.

use super::Collective;
use crate::error::{Error, Result};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// The ranks of one in-process group; hand one [`LocalRank`] to each thread.
pub struct LocalGroup;

/// One thread's place in a [`LocalGroup`].
#[derive(Clone)]
pub struct LocalRank {
    rank: usize,
    shared: Arc<Shared>,
}

struct Shared {
    world: usize,
    timeout: Duration,
    round: Mutex<Round>,
    changed: Condvar,
}

#[derive(Default)]
struct Round {
    /// Counts finished exchanges: a rank waiting for a round's result waits for it to change.
    generation: u64,
    /// Each rank's contribution to the current round.
    slots: Vec<Option<Vec<f64>>>,
    /// The concatenation, once every rank has given.
    result: Option<Arc<Vec<f64>>>,
    /// Ranks still to read the result.
    readers: usize,
    /// Set by [`Collective::abort`]: every wait ends with an error.
    aborted: Option<i32>,
}

impl LocalGroup {
    /// `world` ranks that give up waiting for each other after `timeout`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(world: usize, timeout: Duration) -> Vec<LocalRank> {
        let world = world.max(1);
        let round = Round { slots: vec![None; world], ..Round::default() };
        let shared = Arc::new(Shared { world, timeout, round: Mutex::new(round), changed: Condvar::new() });
        (0..world).map(|rank| LocalRank { rank, shared: shared.clone() }).collect()
    }
}

impl LocalRank {
    fn exchange(&self, data: Vec<f64>) -> Result<Vec<f64>> {
        let s = &self.shared;
        let stuck = |what: &str| Error::Collective { rank: self.rank, reason: format!("{what} after {:?}; another rank stopped (see its error)", s.timeout) };
        let lock = s.round.lock().unwrap_or_else(|p| p.into_inner());
        // A rank that runs ahead waits until every rank has read the previous round.
        let (mut round, wait) = s.changed.wait_timeout_while(lock, s.timeout, |r| r.result.is_some() && r.aborted.is_none()).unwrap_or_else(|p| p.into_inner());
        if let Some(code) = round.aborted {
            return Err(Error::Collective { rank: self.rank, reason: format!("another rank aborted the run (code {code})") });
        }
        if wait.timed_out() {
            return Err(stuck("the previous exchange never finished"));
        }
        round.slots[self.rank] = Some(data);
        let generation = round.generation;
        if round.slots.iter().all(Option::is_some) {
            let all: Vec<f64> = round.slots.iter_mut().flat_map(|v| v.take().unwrap_or_default()).collect();
            round.result = Some(Arc::new(all));
            round.readers = s.world;
            s.changed.notify_all();
        }
        let (mut round, wait) = s
            .changed
            .wait_timeout_while(round, s.timeout, |r| r.generation == generation && r.result.is_none() && r.aborted.is_none())
            .unwrap_or_else(|p| p.into_inner());
        if let Some(code) = round.aborted {
            return Err(Error::Collective { rank: self.rank, reason: format!("another rank aborted the run (code {code})") });
        }
        let Some(result) = round.result.clone().filter(|_| !wait.timed_out()) else {
            return Err(stuck("no answer from the other ranks"));
        };
        round.readers -= 1;
        if round.readers == 0 {
            round.result = None;
            round.generation += 1;
            s.changed.notify_all();
        }
        Ok(result.to_vec())
    }
}

impl Collective for LocalRank {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.shared.world
    }
    fn all_gather_f32(&self, local: &[f32]) -> Result<Vec<f32>> {
        // f32 → f64 → f32 is exact.
        Ok(self.exchange(local.iter().map(|&v| f64::from(v)).collect())?.into_iter().map(|v| v as f32).collect())
    }
    fn all_gather_f64(&self, local: &[f64]) -> Result<Vec<f64>> {
        self.exchange(local.to_vec())
    }
    fn engine(&self) -> &'static str {
        "local"
    }
    fn abort(&self, code: i32) {
        let mut round = self.shared.round.lock().unwrap_or_else(|p| p.into_inner());
        round.aborted.get_or_insert(code);
        self.shared.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_gather_in_rank_order_round_after_round() {
        let ranks = LocalGroup::new(3, Duration::from_secs(30));
        let out: Vec<Vec<Vec<f32>>> = std::thread::scope(|s| {
            let handles: Vec<_> = ranks
                .iter()
                .map(|r| s.spawn(move || (0..50).map(|round| r.all_gather_f32(&[r.rank() as f32, round as f32]).unwrap()).collect::<Vec<_>>()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for per_rank in &out {
            for (round, got) in per_rank.iter().enumerate() {
                let r = round as f32;
                assert_eq!(got, &vec![0.0, r, 1.0, r, 2.0, r]);
            }
        }
        let maxima: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = ranks.iter().map(|r| s.spawn(move || r.max_u64(r.rank() as u64 * 5).unwrap())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(maxima, vec![10, 10, 10]);
    }

    #[test]
    fn a_missing_rank_is_an_error_after_the_timeout_and_an_abort_ends_the_wait_at_once() {
        let ranks = LocalGroup::new(2, Duration::from_millis(200));
        let err = ranks[0].all_gather_f64(&[1.0]).unwrap_err().to_string();
        assert!(err.contains("rank 0") && err.contains("no answer from the other ranks"), "{err}");
        let ranks = LocalGroup::new(2, Duration::from_secs(600));
        ranks[1].abort(3);
        let err = ranks[0].all_gather_f64(&[1.0]).unwrap_err().to_string();
        assert!(err.contains("aborted the run (code 3)"), "{err}");
    }
}
