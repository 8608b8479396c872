//! What a failed director call prints: libipvs's `ipvs_strerror`, a table of (call, errno)
//! messages with call-independent fallbacks, and glibc's `strerror` text for the rest.

use masq_core::control::ControlError;

/// The libipvs call a command makes; the same errno reads differently per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `-A` (`ipvs_add_service`).
    AddService,
    /// `-E` (`ipvs_update_service`).
    EditService,
    /// `-D` (`ipvs_del_service`).
    DeleteService,
    /// `-Z` (`ipvs_zero_service`).
    Zero,
    /// `-C` (`ipvs_flush`).
    Flush,
    /// `-a` (`ipvs_add_dest`).
    AddDest,
    /// `-e` (`ipvs_update_dest`).
    EditDest,
    /// `-d` (`ipvs_del_dest`).
    DeleteDest,
    /// `--set` (`ipvs_set_timeout`).
    SetTimeouts,
    /// `--start-daemon` (`ipvs_start_daemon`).
    StartDaemon,
    /// `--stop-daemon` (`ipvs_stop_daemon`).
    StopDaemon,
    /// `-L <service>` (`ipvs_get_service`).
    GetService,
}

/// The errno values the director reports through [`ControlError`].
// Spelled as in <errno.h>, which is what the table is keyed on.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Errno {
    /// File exists.
    EEXIST,
    /// No such file or directory.
    ENOENT,
    /// No such process.
    ESRCH,
    /// Numerical result out of range.
    ERANGE,
    /// Invalid argument.
    EINVAL,
    /// Address family not supported by protocol.
    EAFNOSUPPORT,
    /// No such device.
    ENODEV,
}

/// The errno of a director error, or None for masq's own refusals.
pub fn errno(err: &ControlError) -> Option<Errno> {
    match err {
        ControlError::Exists => Some(Errno::EEXIST),
        ControlError::NotFound => Some(Errno::ENOENT),
        ControlError::NoService => Some(Errno::ESRCH),
        ControlError::OutOfRange => Some(Errno::ERANGE),
        ControlError::Invalid => Some(Errno::EINVAL),
        ControlError::FamilyNotSupported => Some(Errno::EAFNOSUPPORT),
        ControlError::NoDevice => Some(Errno::ENODEV),
        ControlError::Unsupported(_) => None,
    }
}

/// `ipvs_strerror` for `op`.
pub fn strerror(op: Op, e: Errno) -> &'static str {
    use Errno::*;
    match (op, e) {
        (Op::AddService, EEXIST) => "Service already exists",
        (Op::AddService | Op::EditService, ENOENT) => "Scheduler or persistence engine not found",
        (Op::EditService | Op::DeleteService | Op::Zero | Op::GetService, ESRCH) => {
            "No such service"
        }
        (Op::AddDest | Op::EditDest | Op::DeleteDest, ESRCH) => "Service not defined",
        (Op::AddDest, EEXIST) => "Destination already exists",
        (Op::EditDest | Op::DeleteDest, ENOENT) => "No such destination",
        (Op::StartDaemon, EEXIST) => "Daemon has already run",
        (Op::StopDaemon, ESRCH) => "No daemon is running",
        // Entries that hold for every call.
        (_, EINVAL) => {
            "Invalid operation.  Possibly wrong module version, address not unicast, ..."
        }
        (_, EAFNOSUPPORT) => "Operation not supported with specified address family",
        // glibc strerror.
        (_, EEXIST) => "File exists",
        (_, ENOENT) => "No such file or directory",
        (_, ESRCH) => "No such process",
        (_, ERANGE) => "Numerical result out of range",
        (_, ENODEV) => "No such device",
    }
}

/// The line printed on stderr (without the newline) when `op` fails with `err`.
pub fn message(op: Op, err: &ControlError) -> String {
    match err {
        // masq's own refusal: the text is the whole message.
        ControlError::Unsupported(text) => text.clone(),
        _ => errno(err)
            .map(|e| strerror(op, e).to_string())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_as_ipvs_strerror_has_them() {
        let m = |op, e: ControlError| message(op, &e);
        assert_eq!(
            m(Op::AddService, ControlError::Exists),
            "Service already exists"
        );
        assert_eq!(
            m(Op::AddService, ControlError::NotFound),
            "Scheduler or persistence engine not found"
        );
        assert_eq!(
            m(Op::EditService, ControlError::NotFound),
            "Scheduler or persistence engine not found"
        );
        assert_eq!(
            m(Op::EditService, ControlError::NoService),
            "No such service"
        );
        assert_eq!(
            m(Op::DeleteService, ControlError::NoService),
            "No such service"
        );
        assert_eq!(m(Op::Zero, ControlError::NoService), "No such service");
        assert_eq!(
            m(Op::GetService, ControlError::NoService),
            "No such service"
        );
        assert_eq!(
            m(Op::AddDest, ControlError::NoService),
            "Service not defined"
        );
        assert_eq!(
            m(Op::EditDest, ControlError::NoService),
            "Service not defined"
        );
        assert_eq!(
            m(Op::DeleteDest, ControlError::NoService),
            "Service not defined"
        );
        assert_eq!(
            m(Op::AddDest, ControlError::Exists),
            "Destination already exists"
        );
        assert_eq!(
            m(Op::EditDest, ControlError::NotFound),
            "No such destination"
        );
        assert_eq!(
            m(Op::DeleteDest, ControlError::NotFound),
            "No such destination"
        );
        assert_eq!(
            m(Op::StopDaemon, ControlError::NoService),
            "No daemon is running"
        );
        assert_eq!(
            m(Op::StartDaemon, ControlError::Exists),
            "Daemon has already run"
        );
        assert_eq!(
            m(Op::AddDest, ControlError::OutOfRange),
            "Numerical result out of range"
        );
        assert_eq!(
            m(Op::AddDest, ControlError::Invalid),
            "Invalid operation.  Possibly wrong module version, address not unicast, ..."
        );
        assert_eq!(
            m(Op::AddService, ControlError::FamilyNotSupported),
            "Operation not supported with specified address family"
        );
        assert_eq!(m(Op::EditDest, ControlError::Exists), "File exists");
        assert_eq!(
            m(Op::Flush, ControlError::NotFound),
            "No such file or directory"
        );
        assert_eq!(
            m(Op::SetTimeouts, ControlError::NoService),
            "No such process"
        );
        assert_eq!(
            m(Op::AddDest, ControlError::Unsupported("nope".into())),
            "nope"
        );
    }
}
