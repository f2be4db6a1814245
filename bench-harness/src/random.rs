//! Every random choice of the harness: one seed, one generator (fastrand's
//! wyrand), and the pool that payloads are cut from. Runs are repeatable.

use crate::sys::SizeRange;

/// The harness's one seed.
const SEED: u64 = 0x2545_F491_4F6C_DD1D;

/// Offsets a payload may start at within the pool.
const POOL_SLACK: usize = 64 << 10;

/// The generator of stream `stream` (a writer's index, say): streams differ,
/// and each is the same from run to run.
pub fn rng(stream: u64) -> fastrand::Rng {
    fastrand::Rng::with_seed(SEED ^ stream.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Random bytes shared by all writers of a load: each append takes a slice at
/// a random offset, so nothing is allocated per append and the data does not
/// compress.
pub struct Pool(Vec<u8>);

impl Pool {
    /// A pool for payloads of up to `max` bytes.
    pub fn new(max: usize) -> Pool {
        let mut bytes = vec![0; max + POOL_SLACK];
        rng(u64::MAX).fill(&mut bytes);
        Pool(bytes)
    }

    /// A payload of a random length in `size`, at a random offset.
    pub fn pick(&self, rng: &mut fastrand::Rng, size: SizeRange) -> &[u8] {
        let len = rng.usize(size.min..=size.max);
        let offset = rng.usize(..POOL_SLACK);
        &self.0[offset..offset + len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_stay_in_their_size_range_and_streams_repeat() {
        let pool = Pool::new(300);
        let (mut a, mut b) = (rng(3), rng(3));
        for _ in 0..1000 {
            let p = pool.pick(&mut a, SizeRange { min: 100, max: 300 });
            assert!((100..=300).contains(&p.len()));
            assert_eq!(p, pool.pick(&mut b, SizeRange { min: 100, max: 300 }));
        }
        assert_ne!(rng(1).u64(..), rng(2).u64(..));
    }
}
