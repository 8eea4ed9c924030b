//! POSIX ACL xattr values (`system.posix_acl_access`, `_default`): the
//! `posix_acl_xattr_header` and its entries, whose `ACL_USER` and
//! `ACL_GROUP` ids the translation rewrites. Checked whole before any byte
//! changes, so a malformed value never reaches the kernel half rewritten.

use rustix::io::Errno;

/// `system.posix_acl_access`, the ACL of the object itself.
pub const ACL_ACCESS: &[u8] = b"system.posix_acl_access";
/// `system.posix_acl_default`, the ACL new entries of a directory inherit.
pub const ACL_DEFAULT: &[u8] = b"system.posix_acl_default";

/// `posix_acl_xattr_header.a_version`.
pub(super) const ACL_VERSION: u32 = 2;
const ACL_HEADER: usize = 4;
const ACL_ENTRY: usize = 8;
/// Entry tags whose id field carries a uid or a gid.
pub(super) const ACL_USER: u16 = 0x02;
pub(super) const ACL_GROUP: u16 = 0x08;

/// Applies `map(tag, id)` to every entry's id of an ACL xattr value
/// (`posix_acl_xattr_header` then `posix_acl_xattr_entry`s, little-endian).
/// Checks the whole value before changing any of it.
pub(super) fn rewrite_acl(
    acl: &mut [u8],
    mut map: impl FnMut(u16, u32) -> Result<u32, Errno>,
) -> Result<(), Errno> {
    if acl.len() < ACL_HEADER || (acl.len() - ACL_HEADER) % ACL_ENTRY != 0 {
        return Err(Errno::INVAL);
    }
    let version = u32::from_le_bytes(acl[..ACL_HEADER].try_into().expect("4 bytes"));
    if version != ACL_VERSION {
        return Err(Errno::INVAL);
    }
    let mut mapped = Vec::with_capacity((acl.len() - ACL_HEADER) / ACL_ENTRY);
    for entry in acl[ACL_HEADER..].chunks_exact(ACL_ENTRY) {
        let tag = u16::from_le_bytes([entry[0], entry[1]]);
        let id = u32::from_le_bytes(entry[4..8].try_into().expect("4 bytes"));
        mapped.push(map(tag, id)?);
    }
    for (entry, id) in acl[ACL_HEADER..].chunks_exact_mut(ACL_ENTRY).zip(mapped) {
        entry[4..8].copy_from_slice(&id.to_le_bytes());
    }
    Ok(())
}
