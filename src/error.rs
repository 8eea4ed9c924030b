//! Errors of a single request: an errno for the reply, context for the log.

use rustix::io::Errno;

/// A failed operation. `errno` goes back to QEMU (as `-errno`); `context`
/// names the step that failed, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpError {
    pub errno: Errno,
    pub context: &'static str,
}

pub type OpResult<T> = Result<T, OpError>;

impl OpError {
    pub fn new(errno: Errno, context: &'static str) -> Self {
        OpError { errno, context }
    }

    /// The negative errno as it travels on the wire.
    pub fn wire(self) -> i32 {
        -self.errno.raw_os_error()
    }

    /// True for refusals that mean a path tried to leave the export or use a
    /// magic link: worth a warning, since QEMU itself never sends them.
    pub fn is_escape_attempt(self) -> bool {
        self.errno == Errno::XDEV || self.context.starts_with("refused")
    }
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.context, self.errno)
    }
}

/// Attaches context to a bare `Errno` result.
pub trait Context<T> {
    fn ctx(self, context: &'static str) -> OpResult<T>;
}

impl<T> Context<T> for Result<T, Errno> {
    fn ctx(self, context: &'static str) -> OpResult<T> {
        self.map_err(|errno| OpError { errno, context })
    }
}

/// A start-up failure, with the message for the operator. The process exits
/// with status 1 after reporting it.
#[derive(Debug)]
pub struct SetupError(pub String);

impl<E: std::fmt::Display> From<(&str, E)> for SetupError {
    fn from((what, e): (&str, E)) -> Self {
        SetupError(format!("{what}: {e}"))
    }
}
