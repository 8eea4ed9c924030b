//! Client-supplied paths, validated before anything touches the filesystem.
//!
//! QEMU builds paths as `parent + "/" + name` from the export root `/`, so
//! they arrive as `//dir/name`. A path is always taken relative to the export
//! root: leading slashes are stripped. Resolution of the components, `..`
//! and symlinks is the resolver's job (`crate::resolve`); this module only
//! refuses what can never be valid and splits off the final component.

use crate::error::{OpError, OpResult};
use rustix::io::Errno;

/// The string without one terminating NUL. QEMU marshals every path it
/// holds as a `V9fsPath`, whose size counts the C terminator, so most paths
/// arrive as `//dir/name\0`; paths it builds on the fly, names and symlink
/// targets arrive without one. A NUL anywhere else is refused by the callers.
pub fn trim_terminator(raw: &[u8]) -> &[u8] {
    raw.strip_suffix(&[0]).unwrap_or(raw)
}

/// Longest path the kernel accepts, terminating NUL included (`PATH_MAX`).
pub const PATH_MAX: usize = 4096;

/// A client path relative to the export root: no NUL byte, shorter than
/// `PATH_MAX`, leading slashes removed. May be empty (the root itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientPath<'a> {
    rel: &'a [u8],
}

/// The last component of a path, which decides how an operation that must
/// not follow it can act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final<'a> {
    /// The path names the export root itself (empty after stripping).
    Root,
    /// Ends in `.`.
    Dot,
    /// Ends in `..`.
    DotDot,
    /// An ordinary name: not empty, not `.` or `..`, no `/`, no NUL.
    Name(Name<'a>),
}

/// A single validated directory entry name, safe to hand to an `*at()`
/// syscall together with a resolved parent directory fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Name<'a>(&'a [u8]);

impl<'a> Name<'a> {
    /// Accepts exactly one ordinary component. Refusing `.`, `..`, `/` and
    /// NUL here is what makes "parent fd + name" unable to walk anywhere.
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        let ordinary = !bytes.is_empty()
            && bytes != b"."
            && bytes != b".."
            && !bytes.contains(&b'/')
            && !bytes.contains(&0);
        ordinary.then_some(Name(bytes))
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }
}

impl<'a> ClientPath<'a> {
    /// Validates a raw path from the wire.
    ///
    /// Stops: a path cut short at an embedded NUL (the original turned
    /// `victim\0/../x` into `victim`), and over-long paths (ENAMETOOLONG,
    /// as the kernel would answer).
    pub fn parse(raw: &'a [u8]) -> OpResult<Self> {
        let raw = trim_terminator(raw);
        if raw.contains(&0) {
            return Err(OpError::new(
                Errno::INVAL,
                "refused path with an embedded NUL",
            ));
        }
        if raw.is_empty() {
            // The kernel's answer for an empty path (the root is "/").
            return Err(OpError::new(Errno::NOENT, "empty path"));
        }
        if raw.len() >= PATH_MAX {
            return Err(OpError::new(Errno::NAMETOOLONG, "path too long"));
        }
        let start = raw.iter().position(|&b| b != b'/').unwrap_or(raw.len());
        Ok(ClientPath { rel: &raw[start..] })
    }

    /// The path relative to the export root, without leading slashes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.rel
    }

    /// A trailing slash after a name (`a/b/`): the kernel then follows a
    /// final symlink and requires a directory; mutations require the entry
    /// itself to be a directory.
    pub fn has_trailing_slash(&self) -> bool {
        self.rel.last() == Some(&b'/')
    }

    pub fn is_root(&self) -> bool {
        self.components().next().is_none()
    }

    /// The non-empty components, in order (`a//b/` gives `a`, `b`).
    pub fn components(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.rel.split(|&b| b == b'/').filter(|c| !c.is_empty())
    }

    /// Splits into the parent path and the final component.
    pub fn split_last(&self) -> (ClientPath<'a>, Final<'a>) {
        let trimmed_len =
            self.rel.len() - self.rel.iter().rev().take_while(|&&b| b == b'/').count();
        let trimmed = &self.rel[..trimmed_len];
        if trimmed.is_empty() {
            return (*self, Final::Root);
        }
        let (parent, last) = match trimmed.iter().rposition(|&b| b == b'/') {
            Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
            None => (&trimmed[..0], trimmed),
        };
        let last = match last {
            b"." => Final::Dot,
            b".." => Final::DotDot,
            other => Final::Name(Name(other)),
        };
        (ClientPath { rel: parent }, last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(raw: &[u8]) -> (Vec<u8>, Final<'_>) {
        let p = ClientPath::parse(raw).unwrap();
        let (parent, last) = p.split_last();
        (parent.as_bytes().to_vec(), last)
    }

    #[test]
    fn qemu_style_paths_split_into_parent_and_name() {
        assert_eq!(split(b"//a/b"), (b"a".to_vec(), Final::Name(Name(b"b"))));
        assert_eq!(split(b"//a"), (b"".to_vec(), Final::Name(Name(b"a"))));
        assert_eq!(split(b"/"), (b"".to_vec(), Final::Root));
        assert_eq!(split(b"//a/.."), (b"a".to_vec(), Final::DotDot));
        assert_eq!(split(b"a/."), (b"a".to_vec(), Final::Dot));
        assert_eq!(split(b"a/b//"), (b"a".to_vec(), Final::Name(Name(b"b"))));
        assert!(ClientPath::parse(b"//a/b/").unwrap().has_trailing_slash());
        assert!(!ClientPath::parse(b"//").unwrap().has_trailing_slash());
    }

    #[test]
    fn nul_empty_and_overlong_paths_are_refused() {
        assert_eq!(ClientPath::parse(b"").unwrap_err().errno, Errno::NOENT);
        assert_eq!(
            ClientPath::parse(b"victim\0/../x").unwrap_err().errno,
            Errno::INVAL
        );
        let long = vec![b'a'; PATH_MAX];
        assert_eq!(
            ClientPath::parse(&long).unwrap_err().errno,
            Errno::NAMETOOLONG
        );
    }

    #[test]
    fn one_terminating_nul_is_qemus_and_accepted() {
        assert_eq!(ClientPath::parse(b"//a/b\0").unwrap().as_bytes(), b"a/b");
        assert_eq!(
            ClientPath::parse(b"/\0").unwrap().split_last().1,
            Final::Root
        );
        assert_eq!(
            ClientPath::parse(b"//a\0\0").unwrap_err().errno,
            Errno::INVAL
        );
        assert_eq!(ClientPath::parse(b"\0").unwrap_err().errno, Errno::NOENT);
    }

    #[test]
    fn names_are_single_ordinary_components() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0"] {
            assert!(Name::new(bad).is_none(), "{bad:?}");
        }
        assert!(Name::new(b"...").is_some());
    }
}
