//! Record types and their on-disk codes.

/// What a record means to the application.
///
/// The five named types are the classic set of a key-value WAL; applications
/// define their own with [`RecordType::Application`]. On disk a type is a `u16`:
///
/// | code | type |
/// |---|---|
/// | 0 | never valid (an all-zero header is not a record) |
/// | 1..=5 | `Put`, `Update`, `Delete`, `Checkpoint`, `Noop` |
/// | 6..=0x0FFF | reserved for this library |
/// | 0x1000..=0xFFFE | `Application(0..=0xEFFE)` |
/// | 0xFFFF | padding (internal, never yielded) |
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// A new value.
    Put,
    /// A changed value.
    Update,
    /// A removed value.
    Delete,
    /// A marker the application uses for checkpoints.
    Checkpoint,
    /// A record with no meaning; useful for tests and heartbeats.
    Noop,
    /// An application-defined type, `0..=RecordType::APPLICATION_MAX`.
    Application(u16),
}

/// On-disk code of padding records.
pub(crate) const KIND_PADDING: u16 = 0xFFFF;
const APPLICATION_BASE: u16 = 0x1000;

impl RecordType {
    /// Largest code an [`RecordType::Application`] type may carry.
    pub const APPLICATION_MAX: u16 = 0xFFFE - APPLICATION_BASE;

    /// The on-disk code, or `None` for an application code above
    /// [`RecordType::APPLICATION_MAX`].
    #[must_use]
    pub fn to_raw(self) -> Option<u16> {
        Some(match self {
            RecordType::Put => 1,
            RecordType::Update => 2,
            RecordType::Delete => 3,
            RecordType::Checkpoint => 4,
            RecordType::Noop => 5,
            RecordType::Application(code) if code <= Self::APPLICATION_MAX => APPLICATION_BASE + code,
            RecordType::Application(_) => return None,
        })
    }

    /// The type for an on-disk code; `None` for reserved codes and padding.
    #[must_use]
    pub fn from_raw(raw: u16) -> Option<RecordType> {
        match raw {
            1 => Some(RecordType::Put),
            2 => Some(RecordType::Update),
            3 => Some(RecordType::Delete),
            4 => Some(RecordType::Checkpoint),
            5 => Some(RecordType::Noop),
            APPLICATION_BASE..=0xFFFE => Some(RecordType::Application(raw - APPLICATION_BASE)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_or_is_rejected() {
        for raw in 0..=u16::MAX {
            match RecordType::from_raw(raw) {
                Some(kind) => assert_eq!(kind.to_raw(), Some(raw)),
                None => assert!(raw == 0 || (6..APPLICATION_BASE).contains(&raw) || raw == 0xFFFF),
            }
        }
        assert_eq!(RecordType::Application(RecordType::APPLICATION_MAX + 1).to_raw(), None);
    }
}
