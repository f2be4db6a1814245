//! The aligned buffer: the one place the library allocates raw memory.
//!
//! O_DIRECT needs the buffer address, file offset and length aligned to the
//! device's direct-I/O alignment (512 bytes on most disks, up to 4 KiB).
//! Buffers here are aligned to 4 KiB, which satisfies every such device.

use std::alloc::{self, Layout};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Alignment of every [`AlignedBuf`].
pub const BUFFER_ALIGN_BYTES: usize = 4096;

/// A zero-initialised, 4 KiB-aligned byte buffer of fixed length.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: AlignedBuf owns its allocation exclusively (like Box<[u8]>); the
// raw pointer is never shared except through &/&mut borrows of self.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared references only give out &[u8]; no interior mutability.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes rounded up to a multiple of 4 KiB.
    ///
    /// # Panics
    /// If `len` is zero or the allocation fails (out of memory aborts, as for
    /// any Rust allocation).
    #[must_use]
    pub fn zeroed(len: usize) -> AlignedBuf {
        assert!(len > 0, "empty aligned buffer");
        let len = len.next_multiple_of(BUFFER_ALIGN_BYTES);
        #[expect(
            clippy::expect_used,
            reason = "a power-of-two alignment and a length rounded to it, far below isize::MAX"
        )]
        let layout = Layout::from_size_align(len, BUFFER_ALIGN_BYTES).expect("valid layout");
        // SAFETY: layout has a non-zero size (asserted above).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout);
        };
        AlignedBuf { ptr, len }
    }

    /// Length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: buffers are never empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Start of the buffer, for handing to the kernel.
    #[must_use]
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// Start of the buffer, for handing to the kernel.
    #[must_use]
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: ptr points to len initialised (zeroed at allocation) bytes
        // owned by self, and the borrow of self bounds the slice's lifetime.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in deref, and &mut self guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        #[expect(clippy::expect_used, reason = "the same layout zeroed() allocated with")]
        let layout = Layout::from_size_align(self.len, BUFFER_ALIGN_BYTES).expect("valid layout");
        // SAFETY: ptr was returned by alloc_zeroed with exactly this layout and
        // is freed only here, once.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), layout) };
    }
}

impl fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlignedBuf").field("ptr", &self.ptr).field("len", &self.len).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_zeroed_and_rounded() {
        let mut b = AlignedBuf::zeroed(5000);
        assert_eq!(b.len(), 8192);
        assert_eq!(b.as_ptr() as usize % BUFFER_ALIGN_BYTES, 0);
        assert!(b.iter().all(|&x| x == 0));
        b[8191] = 7;
        assert_eq!(b[8191], 7);
    }
}
