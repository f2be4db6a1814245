//! Little-endian fields at fixed offsets. Reading copies a subslice of
//! exactly the field's width, so no length check can fail (indexing past
//! the end still panics, as any slice index does).

macro_rules! le_reader {
    ($name:ident, $t:ty) => {
        #[doc = concat!("The little-endian `", stringify!($t), "` at byte `at` of `b`.")]
        #[inline]
        pub(crate) fn $name(b: &[u8], at: usize) -> $t {
            let mut a = [0u8; size_of::<$t>()];
            a.copy_from_slice(&b[at..at + size_of::<$t>()]);
            <$t>::from_le_bytes(a)
        }
    };
}

le_reader!(le_u16, u16);
le_reader!(le_u32, u32);
le_reader!(le_u64, u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_at_an_offset() {
        let b = [0xff, 1, 2, 3, 4, 5, 6, 7, 8, 0xee];
        assert_eq!(le_u16(&b, 1), 0x0201);
        assert_eq!(le_u32(&b, 1), 0x0403_0201);
        assert_eq!(le_u64(&b, 1), 0x0807_0605_0403_0201);
    }
}
