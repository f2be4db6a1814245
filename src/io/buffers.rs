//! The flush buffers: a fixed set, created once, each with a stable index.
//!
//! The io_uring backend registers these buffers with its ring
//! (`IORING_REGISTER_BUFFERS`) and writes from them with `WriteFixed`, which
//! names a buffer by index. Buffers are only ever created here, all at once,
//! so an index always names the memory that was registered under it.

use std::ops::{Deref, DerefMut};

use crate::storage::AlignedBuf;

/// A flush buffer and its registration index.
#[derive(Debug)]
pub(crate) struct IoBuf {
    buf: AlignedBuf,
    index: u16,
}

impl IoBuf {
    /// Index of this buffer in the set (and in the ring's registration).
    pub fn index(&self) -> u16 {
        self.index
    }
}

impl Deref for IoBuf {
    type Target = AlignedBuf;

    fn deref(&self) -> &AlignedBuf {
        &self.buf
    }
}

impl DerefMut for IoBuf {
    fn deref_mut(&mut self) -> &mut AlignedBuf {
        &mut self.buf
    }
}

/// Creates the whole set: `count` buffers of `bytes` each, indexed from 0.
///
/// # Panics
/// If `count` exceeds `u16::MAX` (options limit it far below).
pub(crate) fn make_set(count: usize, bytes: usize) -> Vec<IoBuf> {
    assert!(count <= usize::from(u16::MAX));
    (0..count).map(|i| IoBuf { buf: AlignedBuf::zeroed(bytes), index: i as u16 }).collect()
}
