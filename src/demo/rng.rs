//! A seeded random source shared by concurrent request handlers (routing and fault draws).
//!
//! The crate's `rand` has no OS entropy feature; the demo seeds from `--seed` or the clock.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::Distribution;

/// A ChaCha8 generator behind a mutex: cheap at the demo's request rates.
#[derive(Debug)]
pub struct SharedRng(Mutex<ChaCha8Rng>);

impl SharedRng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(Mutex::new(ChaCha8Rng::seed_from_u64(seed)))
    }

    /// A uniform draw in `[0, 1)`.
    pub fn uniform(&self) -> f64 {
        self.with(|r| r.random::<f64>())
    }

    /// One draw from `dist`.
    pub fn sample<D: Distribution<f64>>(&self, dist: &D) -> f64 {
        self.with(|r| dist.sample(r))
    }

    fn with<T>(&self, f: impl FnOnce(&mut ChaCha8Rng) -> T) -> T {
        // A panic while holding the lock cannot leave the generator in an invalid state.
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }
}

/// A seed from the clock, for runs without `--seed`.
pub fn clock_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    splitmix64(nanos ^ u64::from(std::process::id()).rotate_left(32))
}

/// Derives an independent seed for stream `index` from `seed` (SplitMix64 finaliser).
pub fn derive(seed: u64, index: u64) -> u64 {
    splitmix64(seed ^ splitmix64(index.wrapping_add(0x9e37_79b9_7f4a_7c15)))
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
