//! Reading a segment file through a window of aligned buffer.

use std::io;
use std::sync::Arc;

use crate::format::walk::SegmentSource;
use crate::format::{align_down, record};
use crate::storage::{AlignedBuf, BUFFER_ALIGN_BYTES, StorageFile, read_full_at};

/// Default window: large sequential reads, whatever the record size.
pub(crate) const WINDOW_BYTES_MIN: usize = 1 << 20;

/// Window size that serves any record up to `record_bytes_max` in one read.
pub(crate) fn window_bytes(record_bytes_max: u32) -> usize {
    let record = record::encoded_len(record_bytes_max) as usize;
    (record + 2 * BUFFER_ALIGN_BYTES).max(WINDOW_BYTES_MIN).next_multiple_of(BUFFER_ALIGN_BYTES)
}

/// A [`SegmentSource`] over an open file. Reads are aligned to 4 KiB in
/// offset, length and memory, so the file may be opened with O_DIRECT.
#[derive(Debug)]
pub(crate) struct FileSource {
    file: Arc<dyn StorageFile>,
    segment_bytes: u64,
    /// The window: [`WINDOW_BYTES_MIN`] and some at first, grown (up to
    /// `window_bytes_max`) only when a read needs more.
    buf: AlignedBuf,
    /// The most the window may grow to: the largest record the limits
    /// allow, plus alignment.
    window_bytes_max: usize,
    buf_start: u64,
    buf_len: usize,
    /// Bytes read from the file so far.
    pub bytes_read: u64,
    /// A one-pass scan (see [`FileSource::scan`]): the bytes before this
    /// offset are no longer cached.
    dropped_to: Option<u64>,
}

/// How far a scan reads past the cache it last dropped before dropping
/// again: one `posix_fadvise` per this many bytes, and at most about this
/// much (plus the kernel's read-ahead) cached by a scan at any moment.
const DROP_BEHIND_BYTES: u64 = 8 << 20;

impl FileSource {
    pub fn new(file: Arc<dyn StorageFile>, segment_bytes: u64, window_bytes: usize) -> FileSource {
        // A window larger than the segment (plus alignment slack) is never
        // filled; small segments get small windows.
        let cap = (segment_bytes as usize).saturating_add(BUFFER_ALIGN_BYTES).max(2 * BUFFER_ALIGN_BYTES);
        let window_bytes_max = window_bytes.min(cap).next_multiple_of(BUFFER_ALIGN_BYTES);
        // Allocated for the common case, not the worst: a file of unknown
        // limits (a spare) allows records of up to 64 MiB, and zeroing a
        // window that large cost more than reading the whole file.
        // The slack lets a scan read WINDOW_BYTES_MIN from any offset.
        let buf = AlignedBuf::zeroed(window_bytes_max.min(WINDOW_BYTES_MIN + 2 * BUFFER_ALIGN_BYTES));
        FileSource {
            file,
            segment_bytes,
            buf,
            window_bytes_max,
            buf_start: 0,
            buf_len: 0,
            bytes_read: 0,
            dropped_to: None,
        }
    }

    /// A source for one pass over a whole file opened without O_DIRECT,
    /// as recovery makes: the kernel reads ahead of it (on the virtio disk
    /// of docs/BENCHMARKS.md, 1.5x the rate of 1 MiB O_DIRECT reads, which
    /// leave the device idle while each window is checked), and it drops
    /// what it has passed, so that a scan of a large log does not fill the
    /// page cache with bytes read once.
    ///
    /// It first drops the file's clean cached pages, so that it reads what
    /// is on the device rather than a page cached before it began, which
    /// can be older than the device: another tool reading or mapping the
    /// file while a direct write replaced its block can leave one (the
    /// kernel's "page cache invalidation failure"), and a record
    /// acknowledged on the device would look absent. Best effort: the
    /// kernel keeps locked and mapped pages, which is why recovery reads
    /// what decides where appends continue with O_DIRECT. Dirty pages,
    /// newer than the device, stay (their writeback starts).
    pub fn scan(file: Arc<dyn StorageFile>, segment_bytes: u64, window_bytes: usize) -> FileSource {
        file.drop_cached(0, 0);
        file.advise_sequential();
        let mut src = FileSource::new(file, segment_bytes, window_bytes);
        src.dropped_to = Some(0);
        src
    }

    /// Drops the cached pages before `offset` once enough have piled up.
    fn drop_behind(&mut self, offset: u64) {
        let Some(from) = self.dropped_to else { return };
        if offset >= from + DROP_BEHIND_BYTES {
            self.file.drop_cached(from, offset - from);
            self.dropped_to = Some(offset);
        }
    }
}

impl Drop for FileSource {
    fn drop(&mut self) {
        if self.dropped_to.is_some() {
            self.file.drop_cached(0, 0);
        }
    }
}

impl FileSource {
    /// Forgets the window: bytes past what was durable when it was read may
    /// have been written since.
    pub fn invalidate(&mut self) {
        self.buf_len = 0;
    }
}

impl SegmentSource for FileSource {
    fn read(&mut self, offset: u64, len: usize) -> io::Result<&[u8]> {
        let end = offset
            .checked_add(len as u64)
            .filter(|&e| e <= self.segment_bytes)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "read beyond the segment"))?;
        if offset < self.buf_start || end > self.buf_start + self.buf_len as u64 {
            let start = align_down(offset, BUFFER_ALIGN_BYTES as u64);
            let need = (end - start) as usize;
            if need > self.window_bytes_max {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "read larger than the window"));
            }
            if need > self.buf.len() {
                // Doubling bounds the reallocations by a large record to a few.
                let grown = need.max(2 * self.buf.len()).min(self.window_bytes_max);
                // The old window goes first, so that at most one is held.
                self.buf = AlignedBuf::zeroed(BUFFER_ALIGN_BYTES);
                self.buf = AlignedBuf::zeroed(grown);
                self.buf_len = 0;
            }
            let want = (self.buf.len() as u64).min(self.segment_bytes - start) as usize;
            self.drop_behind(start);
            let got = read_full_at(self.file.as_ref(), &mut self.buf[..want], start)?;
            self.bytes_read += got as u64;
            self.buf_start = start;
            self.buf_len = got;
            if end > start + got as u64 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment file is shorter than its header says",
                ));
            }
        }
        let from = (offset - self.buf_start) as usize;
        Ok(&self.buf[from..from + len])
    }

    fn window_bytes(&self) -> usize {
        self.window_bytes_max - BUFFER_ALIGN_BYTES
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A file of zeros that records what its readers asked of the cache.
    #[derive(Debug, Default)]
    struct Recording {
        /// End of the bytes read so far.
        read_end: Mutex<u64>,
        /// Start of the bytes not yet dropped (everything before is gone).
        kept_from: Mutex<u64>,
        /// The most bytes read but not yet dropped at any moment.
        cached_max: Mutex<u64>,
        advised: Mutex<u32>,
        /// `drop_cached` calls for the whole file.
        whole_drops: Mutex<u32>,
        /// Reads before the first of them.
        reads_before_whole_drop: Mutex<u32>,
    }

    impl StorageFile for Recording {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            buf.fill(0);
            if *self.whole_drops.lock().unwrap() == 0 {
                *self.reads_before_whole_drop.lock().unwrap() += 1;
            }
            let end = offset + buf.len() as u64;
            let mut read_end = self.read_end.lock().unwrap();
            *read_end = (*read_end).max(end);
            let cached = *read_end - *self.kept_from.lock().unwrap();
            let mut max = self.cached_max.lock().unwrap();
            *max = (*max).max(cached);
            Ok(buf.len())
        }
        fn write_at(&self, _: &[u8], _: u64, _: bool) -> io::Result<usize> {
            unreachable!("a source only reads")
        }
        fn sync_data(&self) -> io::Result<()> {
            unreachable!("a source only reads")
        }
        fn size(&self) -> io::Result<u64> {
            unreachable!("a source knows the size")
        }
        fn allocate(&self, _: u64) -> io::Result<()> {
            unreachable!("a source only reads")
        }
        fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
            None
        }
        fn is_direct(&self) -> bool {
            false
        }
        fn advise_sequential(&self) {
            *self.advised.lock().unwrap() += 1;
        }
        fn drop_cached(&self, offset: u64, len: u64) {
            if len == 0 {
                assert_eq!(offset, 0, "a drop to the end starts at 0 here");
                *self.whole_drops.lock().unwrap() += 1;
                return;
            }
            let mut kept_from = self.kept_from.lock().unwrap();
            assert_eq!(offset, *kept_from, "drops follow each other without gaps");
            *kept_from = offset + len;
        }
    }

    fn read_through(src: &mut FileSource, segment_bytes: u64) {
        let step = 64 << 10;
        for offset in (0..segment_bytes).step_by(step) {
            assert!(src.read(offset, step).unwrap().iter().all(|&b| b == 0));
        }
    }

    #[test]
    fn a_scan_drops_the_cache_first_reads_ahead_drops_what_it_passed_and_leaves_nothing_cached() {
        let segment_bytes = 64 << 20;
        let file = Arc::new(Recording::default());
        let mut src = FileSource::scan(file.clone(), segment_bytes, WINDOW_BYTES_MIN);
        read_through(&mut src, segment_bytes);
        assert_eq!(*file.advised.lock().unwrap(), 1);
        assert_eq!(*file.reads_before_whole_drop.lock().unwrap(), 0, "nothing read before the cache was dropped");
        let window = src.buf.len() as u64;
        let cached_max = *file.cached_max.lock().unwrap();
        assert!(
            cached_max <= DROP_BEHIND_BYTES + window,
            "{cached_max} bytes read and not dropped, above {DROP_BEHIND_BYTES} + one window"
        );
        assert_eq!(*file.whole_drops.lock().unwrap(), 1);
        drop(src);
        assert_eq!(*file.whole_drops.lock().unwrap(), 2, "a finished scan drops the whole file");
    }

    #[test]
    fn the_window_starts_small_grows_for_a_large_read_and_never_past_its_limit() {
        // A spare's limits: records of up to 64 MiB in a 128 MiB file.
        let (segment_bytes, window_max) = (128u64 << 20, 64usize << 20);
        let mut src = FileSource::new(Arc::new(Recording::default()), segment_bytes, window_max);
        let first = src.buf.len();
        assert_eq!(first, WINDOW_BYTES_MIN + 2 * BUFFER_ALIGN_BYTES);
        read_through(&mut src, 8 << 20);
        // A walk's 1 MiB look-ahead from any 8-aligned offset fits.
        assert_eq!(src.read((8 << 20) + 4088, WINDOW_BYTES_MIN).unwrap().len(), WINDOW_BYTES_MIN);
        assert_eq!(src.buf.len(), first, "a pass of ordinary reads keeps the first window");
        assert_eq!(src.read((20 << 20) + 40, 5 << 20).unwrap().len(), 5 << 20);
        assert!((5 << 20..=window_max).contains(&src.buf.len()), "grown to {}", src.buf.len());
        assert_eq!(src.window_bytes(), window_max - BUFFER_ALIGN_BYTES);
        assert_eq!(src.read(40 << 20, window_max).unwrap().len(), window_max);
        assert_eq!(src.buf.len(), window_max);
        let err = src.read(8, window_max).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        assert_eq!(src.buf.len(), window_max, "never past the limit");
    }

    #[test]
    fn a_plain_source_gives_the_cache_no_advice() {
        let segment_bytes = 16 << 20;
        let file = Arc::new(Recording::default());
        let mut src = FileSource::new(file.clone(), segment_bytes, WINDOW_BYTES_MIN);
        read_through(&mut src, segment_bytes);
        drop(src);
        assert_eq!(*file.advised.lock().unwrap(), 0);
        assert_eq!(*file.kept_from.lock().unwrap(), 0);
        assert_eq!(*file.whole_drops.lock().unwrap(), 0);
    }
}
