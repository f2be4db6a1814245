//! Lifecycle events and errors, through the `log` crate when the `log`
//! feature is on; nothing at all (not even argument evaluation) otherwise.

/// `event!(info, "...", args)`: an event at `info`, `warn`, `error` or
/// `debug` level, target `uring_wal`.
macro_rules! event {
    ($level:ident, $($arg:tt)+) => {{
        #[cfg(feature = "log")]
        {
            ::log::$level!(target: "uring_wal", $($arg)+);
        }
    }};
}

pub(crate) use event;
