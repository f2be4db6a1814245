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
    buf: AlignedBuf,
    buf_start: u64,
    buf_len: usize,
    /// Bytes read from the file so far.
    pub bytes_read: u64,
}

impl FileSource {
    pub fn new(file: Arc<dyn StorageFile>, segment_bytes: u64, window_bytes: usize) -> FileSource {
        // A window larger than the segment (plus alignment slack) is never
        // filled; small segments get small windows.
        let cap = (segment_bytes as usize).saturating_add(BUFFER_ALIGN_BYTES).max(2 * BUFFER_ALIGN_BYTES);
        let buf = AlignedBuf::zeroed(window_bytes.min(cap));
        FileSource { file, segment_bytes, buf, buf_start: 0, buf_len: 0, bytes_read: 0 }
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
            let want = (self.buf.len() as u64).min(self.segment_bytes - start) as usize;
            if end - start > want as u64 {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "read larger than the window"));
            }
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
        self.buf.len() - BUFFER_ALIGN_BYTES
    }
}
