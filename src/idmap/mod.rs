//! Id translation between the guest and the host (`--translate-uid`,
//! `--translate-gid`), with virtiofsd's rules and meanings:
//!
//! | rule | meaning |
//! |---|---|
//! | `guest:G:H:N` | guest G+i becomes host H+i |
//! | `host:H:G:N` | host H+i is shown as guest G+i |
//! | `map:G:H:N` | both |
//! | `squash-guest:G:H:N` | every guest id in G..G+N becomes host H |
//! | `squash-host:H:G:N` | every host id in H..H+N is shown as guest G |
//! | `forbid-guest:G:N` | the guest may not create as, or chown to, G..G+N (EPERM) |
//!
//! N is a count. Ids no rule covers map to themselves. Each direction is a
//! table of its own, whose source ranges may not overlap. The requests
//! call this at their boundaries only: credentials and T_CHOWN's ids on the
//! way in, stat replies on the way out, and the ids inside POSIX ACL xattrs
//! both ways (virtiofsd refuses translation with ACLs; here the entries are
//! rewritten), where the xattr calls meet the kernel: whether a value is an
//! ACL is decided by the name the host stores it under, after
//! `--xattrmap`. Pure code: no syscall, so it fuzzes on its own.

mod acl;

pub use self::acl::{ACL_ACCESS, ACL_DEFAULT};

use self::acl::{ACL_GROUP, ACL_USER, rewrite_acl};
use crate::protocol::WireStat;
use rustix::io::Errno;
use std::borrow::Cow;

/// Ids are 32 bits; -1 is no id (it means "unchanged" to chown and
/// setresuid), so no range may reach it.
const NO_ID: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Source id `start + i` becomes `to + i`.
    Shift { to: u32 },
    /// Every source id becomes `to`.
    Squash { to: u32 },
    /// EPERM (guest to host only).
    Forbid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    start: u32,
    /// One past the last id covered (at most `NO_ID`).
    end: u32,
    action: Action,
    /// The rule as written, for error messages and the report.
    rule: String,
}

/// One direction's table: sorted, non-overlapping ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Table {
    entries: Vec<Entry>,
}

impl Table {
    fn insert(&mut self, entry: Entry, side: &str) -> Result<(), String> {
        if let Some(other) = self
            .entries
            .iter()
            .find(|e| e.start < entry.end && entry.start < e.end)
        {
            return Err(format!(
                "`{}` overlaps `{}`: the first covers {side} ids {}, the second {side} ids {} \
                 (the last number of a rule is a count, not the end of a range)",
                entry.rule,
                other.rule,
                span(entry.start, entry.end),
                span(other.start, other.end),
            ));
        }
        let at = self.entries.partition_point(|e| e.start < entry.start);
        self.entries.insert(at, entry);
        Ok(())
    }

    fn lookup(&self, id: u32) -> Result<u32, Errno> {
        let at = self.entries.partition_point(|e| e.end <= id);
        match self.entries.get(at) {
            Some(e) if e.start <= id => match e.action {
                Action::Shift { to } => Ok(to + (id - e.start)),
                Action::Squash { to } => Ok(to),
                Action::Forbid => Err(Errno::PERM),
            },
            _ => Ok(id),
        }
    }
}

fn span(start: u32, end: u32) -> String {
    format!("{start}..={}", end - 1)
}

/// The translation of one kind of id (uids or gids), both directions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap {
    guest_to_host: Table,
    host_to_guest: Table,
    rules: Vec<String>,
    /// The user namespace the helper serves from, as `(ns, host, count)`
    /// lines of its id map; empty in the initial namespace. Rules speak of
    /// host ids (what `ls -ln` shows on the host), the kernel here of the
    /// namespace's: this is the last step of the way in, the first out.
    namespace: Vec<(u32, u32, u32)>,
}

impl IdMap {
    /// Parses and adds one rule. The error names the rule and says what is
    /// wrong with it.
    pub fn add_rule(&mut self, rule: &str) -> Result<(), String> {
        let fields: Vec<&str> = rule.split(':').collect();
        let bad = |why: &str| Err(format!("`{rule}`: {why}"));
        let number = |s: &str, what: &str| -> Result<u64, String> {
            s.parse::<u64>()
                .ok()
                .filter(|n| *n <= u64::from(u32::MAX))
                .ok_or_else(|| {
                    format!("`{rule}`: {what} `{s}` is not a number from 0 to 4294967295")
                })
        };
        let (kind, args) = match fields.split_first() {
            Some((kind, args)) => (*kind, args),
            None => return bad("empty"),
        };
        let wanted = if kind == "forbid-guest" { 2 } else { 3 };
        if !matches!(
            kind,
            "guest" | "host" | "map" | "squash-guest" | "squash-host" | "forbid-guest"
        ) {
            return bad(
                "unknown kind; one of guest, host, map, squash-guest, squash-host, forbid-guest",
            );
        }
        if args.len() != wanted {
            return bad(&format!(
                "{kind} takes {wanted} numbers ({})",
                if wanted == 2 {
                    "forbid-guest:GUEST:COUNT"
                } else {
                    "KIND:FROM:TO:COUNT"
                }
            ));
        }
        let from = number(args[0], "the first id")?;
        let count = number(args[wanted - 1], "the count")?;
        let to = if wanted == 3 {
            number(args[1], "the second id")?
        } else {
            0
        };
        if count == 0 {
            return bad("the count is 0: the rule covers no id");
        }
        let source_side = if kind.starts_with("host") || kind == "squash-host" {
            "host"
        } else {
            "guest"
        };
        if from + count > u64::from(NO_ID) {
            return bad(&format!(
                "{from} plus a count of {count} reaches past the largest id, 4294967294"
            ));
        }
        let shifts = matches!(kind, "guest" | "host" | "map");
        if shifts && to + count > u64::from(NO_ID) {
            return bad(&format!(
                "{to} plus a count of {count} reaches past the largest id, 4294967294"
            ));
        }
        if !shifts && to == u64::from(NO_ID) {
            return bad("4294967295 is no id");
        }
        if from > 0 && count > from && count < 4 * from {
            // Written as a range end, the way virtiofsd's users often
            // misread it: say what it means instead of guessing.
            return bad(&format!(
                "the count {count} looks like the end of a range; this rule would cover \
                 {source_side} ids {} ({count} ids). For that, split it into rules whose \
                 counts are below their first ids; for ids {from}..={count}, the count is {}",
                span(from as u32, (from + count) as u32),
                count - from + 1
            ));
        }
        let (from, to, end) = (from as u32, to as u32, (from + count) as u32);
        let entry = |action| Entry {
            start: from,
            end,
            action,
            rule: rule.to_string(),
        };
        match kind {
            "guest" => self
                .guest_to_host
                .insert(entry(Action::Shift { to }), "guest")?,
            "host" => self
                .host_to_guest
                .insert(entry(Action::Shift { to }), "host")?,
            "map" => {
                self.guest_to_host
                    .insert(entry(Action::Shift { to }), "guest")?;
                let back = Entry {
                    start: to,
                    end: to + (end - from),
                    action: Action::Shift { to: from },
                    rule: rule.to_string(),
                };
                if let Err(e) = self.host_to_guest.insert(back, "host") {
                    self.guest_to_host.entries.retain(|e| e.rule != rule);
                    return Err(e);
                }
            }
            "squash-guest" => self
                .guest_to_host
                .insert(entry(Action::Squash { to }), "guest")?,
            "squash-host" => self
                .host_to_guest
                .insert(entry(Action::Squash { to }), "host")?,
            _ => self.guest_to_host.insert(entry(Action::Forbid), "guest")?,
        }
        self.rules.push(rule.to_string());
        Ok(())
    }

    /// The rules as given, in order.
    pub fn rules(&self) -> &[String] {
        &self.rules
    }

    pub fn is_identity(&self) -> bool {
        self.rules.is_empty()
    }

    /// Serves from a user namespace with this id map (`(ns, host, count)`
    /// lines, as `/proc/self/uid_map` has them).
    pub fn set_namespace(&mut self, lines: Vec<(u32, u32, u32)>) {
        self.namespace = lines;
    }

    /// A guest id as the host stores it (as this process's namespace
    /// names that host id); EPERM where a rule forbids it, EINVAL for a
    /// host id the namespace does not map. -1 (no id) stays -1.
    pub fn to_host(&self, guest: u32) -> Result<u32, Errno> {
        if guest == NO_ID {
            return Ok(NO_ID);
        }
        let host = self.guest_to_host.lookup(guest)?;
        if self.namespace.is_empty() {
            return Ok(host);
        }
        self.namespace
            .iter()
            .find(|&&(_, lower, count)| host >= lower && host - lower < count)
            .and_then(|&(ns, lower, _)| ns.checked_add(host - lower))
            .ok_or(Errno::INVAL)
    }

    /// A host id (as this process's namespace names it) as the guest sees
    /// it.
    pub fn to_guest(&self, id: u32) -> u32 {
        if id == NO_ID {
            return NO_ID;
        }
        // Ids the namespace does not map arrive as the overflow id, which
        // no line maps back: they stay as they are.
        let host = self
            .namespace
            .iter()
            .find(|&&(ns, _, count)| id >= ns && id - ns < count)
            .and_then(|&(ns, lower, _)| lower.checked_add(id - ns))
            .unwrap_or(id);
        // Host-to-guest tables hold no Forbid entry.
        self.host_to_guest.lookup(host).unwrap_or(host)
    }
}

/// The uid and gid translations in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Translation {
    pub uids: IdMap,
    pub gids: IdMap,
}

impl Translation {
    pub fn is_identity(&self) -> bool {
        self.uids.is_identity() && self.gids.is_identity()
    }

    /// The rules in force, for the report and the log.
    pub fn describe(&self) -> String {
        if self.is_identity() {
            return "none (guest ids are host ids)".into();
        }
        let side = |m: &IdMap| match m.rules() {
            [] => "none".to_string(),
            rules => rules.join(" "),
        };
        format!("uid {}; gid {}", side(&self.uids), side(&self.gids))
    }

    /// A guest uid and gid as the host has them: the ids a creation runs
    /// as, or T_CHOWN stores (-1 stays -1); EPERM where a rule forbids one.
    pub fn to_host(&self, uid: u32, gid: u32) -> Result<(u32, u32), Errno> {
        Ok((self.uids.to_host(uid)?, self.gids.to_host(gid)?))
    }

    /// A stat reply's owner as the guest sees it.
    pub fn stat_to_guest(&self, st: &mut WireStat) {
        st.uid = self.uids.to_guest(st.uid);
        st.gid = self.gids.to_guest(st.gid);
    }

    /// Whether an xattr name is one of the POSIX ACLs whose entries carry
    /// ids (QEMU may send the name with its C terminator). Asked of the
    /// name the host has: the one `--xattrmap` produced.
    pub fn is_acl(name: &[u8]) -> bool {
        let name = name.strip_suffix(b"\0").unwrap_or(name);
        name == ACL_ACCESS || name == ACL_DEFAULT
    }

    /// An xattr value from the guest as the host stores it under
    /// `host_name`: the value itself, or for a POSIX ACL while ids are
    /// translated, a copy with the host's ids (at most one message, 64
    /// KiB). Keyed on the host's name, the one `--xattrmap` made of the
    /// guest's: the kernel enforces an ACL by the name it is stored
    /// under, so a rule that renames another guest name to
    /// `system.posix_acl_access` cannot store an ACL with untranslated or
    /// forbidden ids, and an ACL name the map moves under `user.` is
    /// stored as the guest wrote it, as any other value.
    pub fn value_to_host<'v>(
        &self,
        host_name: &[u8],
        value: &'v [u8],
    ) -> Result<Cow<'v, [u8]>, Errno> {
        if self.is_identity() || !Self::is_acl(host_name) {
            return Ok(Cow::Borrowed(value));
        }
        let mut acl = value.to_vec();
        self.acl_to_host(&mut acl)?;
        Ok(Cow::Owned(acl))
    }

    /// An xattr value read from the host under `host_name`, rewritten in
    /// place as the guest sees it (only POSIX ACLs carry ids; keyed on the
    /// host's name, as [`Translation::value_to_host`]).
    pub fn value_to_guest(&self, host_name: &[u8], value: &mut [u8]) {
        if !self.is_identity() && Self::is_acl(host_name) {
            self.acl_to_guest(value);
        }
    }

    /// Rewrites a POSIX ACL xattr value from the guest in place, its
    /// `ACL_USER` and `ACL_GROUP` ids to the host's. A value that is not a
    /// well-formed version-2 ACL is EINVAL (the kernel would refuse it too,
    /// but never with ids left untranslated); a forbidden id is EPERM.
    pub fn acl_to_host(&self, acl: &mut [u8]) -> Result<(), Errno> {
        rewrite_acl(acl, |tag, id| match tag {
            ACL_USER => self.uids.to_host(id),
            ACL_GROUP => self.gids.to_host(id),
            _ => Ok(id),
        })
    }

    /// Rewrites a POSIX ACL xattr value read from the host in place, its
    /// ids to the guest's. A value the kernel would never produce is left
    /// as it is.
    pub fn acl_to_guest(&self, acl: &mut [u8]) {
        let _ = rewrite_acl(acl, |tag, id| {
            Ok(match tag {
                ACL_USER => self.uids.to_guest(id),
                ACL_GROUP => self.gids.to_guest(id),
                _ => id,
            })
        });
    }
}

#[cfg(test)]
mod tests;
