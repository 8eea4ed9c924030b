//! Xattr name mapping (`--xattrmap`), in virtiofsd's syntax and meaning:
//! rules `<sep>type<sep>scope<sep>key<sep>prepend<sep>`, the separator
//! being each rule's first character; the first rule that matches wins; a
//! name no rule matches is refused.
//!
//! - Guest names (T_LGETXATTR, T_LSETXATTR, T_LREMOVEXATTR) are matched
//!   against `key` by rules of scope `client` or `all`: `prefix` stores
//!   them as `prepend` + name, `ok` as they are, `bad` answers EPERM,
//!   `unsupported` ENOTSUP.
//! - Host names (T_LLISTXATTR) are matched against `prepend` by rules of
//!   scope `server` or `all`: `prefix` shows them without `prepend`, `ok`
//!   as they are, `bad` and `unsupported` hide them.
//! - `map:KEY:PREPEND` (last, at most once) stands for: `prefix` of KEY
//!   with PREPEND (scope all); `bad` on the server side for host names
//!   starting with KEY (an unprefixed host name is never shown as a guest's
//!   own); `bad` on the client side for guest names starting with PREPEND
//!   (a guest cannot forge a mapped name); then `ok` for everything else,
//!   or `bad` when KEY is empty (everything is mapped).
//!
//! Pure code: no syscall, so it fuzzes on its own.

use rustix::io::Errno;
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Prefix,
    Ok,
    Bad,
    Unsupported,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    kind: Kind,
    client: bool,
    server: bool,
    key: Vec<u8>,
    prepend: Vec<u8>,
}

/// The rules in force; an empty map passes every name unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XattrMap {
    rules: Vec<Rule>,
    /// The option as given, for the report and the log.
    text: String,
}

impl XattrMap {
    /// Parses `--xattrmap`'s value; the error names the rule (by its
    /// number and text) and what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        let mut rest = text.trim_start();
        let mut number = 0;
        let mut seen_map = false;
        if rest.is_empty() {
            return Err("no rules: give at least one, e.g. \":map::user.virtiofs.:\"".into());
        }
        while !rest.is_empty() {
            number += 1;
            if seen_map {
                return Err(format!(
                    "rule {number} `{}` follows a `map` rule, which must be the last",
                    first_rule(rest)
                ));
            }
            let sep = rest.chars().next().expect("not empty");
            let body = &rest[sep.len_utf8()..];
            let mut fields = Vec::new();
            let mut at = body;
            let expected = |kind: &str| if kind == "map" { 3 } else { 4 };
            loop {
                let Some(end) = at.find(sep) else {
                    return Err(format!(
                        "rule {number} `{}` is unterminated: every field ends with `{sep}`",
                        rest.trim_end()
                    ));
                };
                fields.push(&at[..end]);
                at = &at[end + sep.len_utf8()..];
                if fields.len() == expected(fields[0]) {
                    break;
                }
            }
            let shown = &rest[..rest.len() - at.len()];
            let bad = |what: String| format!("rule {number} `{shown}`: {what}");
            match fields.as_slice() {
                ["map", key, prepend] => {
                    seen_map = true;
                    let (key, prepend) = (key.as_bytes().to_vec(), prepend.as_bytes().to_vec());
                    rules.push(Rule {
                        kind: Kind::Prefix,
                        client: true,
                        server: true,
                        key: key.clone(),
                        prepend: prepend.clone(),
                    });
                    if !key.is_empty() {
                        rules.push(Rule {
                            kind: Kind::Bad,
                            client: false,
                            server: true,
                            key: Vec::new(),
                            prepend: key.clone(),
                        });
                    }
                    rules.push(Rule {
                        kind: Kind::Bad,
                        client: true,
                        server: false,
                        key: prepend,
                        prepend: Vec::new(),
                    });
                    rules.push(Rule {
                        kind: if key.is_empty() { Kind::Bad } else { Kind::Ok },
                        client: true,
                        server: true,
                        key: Vec::new(),
                        prepend: Vec::new(),
                    });
                }
                [kind, scope, key, prepend] => {
                    let kind = match *kind {
                        "prefix" => Kind::Prefix,
                        "ok" => Kind::Ok,
                        "bad" => Kind::Bad,
                        "unsupported" => Kind::Unsupported,
                        "" => return Err(bad("the type is empty".into())),
                        other => {
                            return Err(bad(format!(
                                "unknown type `{other}` (prefix, ok, bad, unsupported, map)"
                            )));
                        }
                    };
                    let (client, server) = match *scope {
                        "client" => (true, false),
                        "server" => (false, true),
                        "all" => (true, true),
                        "" => return Err(bad("the scope is empty".into())),
                        other => {
                            return Err(bad(format!(
                                "unknown scope `{other}` (client, server, all)"
                            )));
                        }
                    };
                    rules.push(Rule {
                        kind,
                        client,
                        server,
                        key: key.as_bytes().to_vec(),
                        prepend: prepend.as_bytes().to_vec(),
                    });
                }
                _ => return Err(bad("expected type, scope, key and prepend".into())),
            }
            rest = at.trim_start();
        }
        Ok(XattrMap {
            rules,
            text: text.trim().to_string(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules as given, for the report.
    pub fn describe(&self) -> String {
        if self.is_empty() {
            return "none (names pass unchanged)".into();
        }
        self.text.clone()
    }

    /// A guest's xattr name as the host stores it (a trailing NUL, as QEMU
    /// may send it, is kept in place); EPERM (`bad`, or no rule matches) or
    /// ENOTSUP (`unsupported`) where it may not pass.
    pub fn to_host<'n>(&self, name: &'n [u8]) -> Result<Cow<'n, [u8]>, Errno> {
        if self.is_empty() {
            return Ok(Cow::Borrowed(name));
        }
        let (bare, nul) = match name.strip_suffix(b"\0") {
            Some(bare) => (bare, true),
            None => (name, false),
        };
        let rule = self
            .rules
            .iter()
            .find(|r| r.client && bare.starts_with(&r.key))
            .ok_or(Errno::PERM)?;
        match rule.kind {
            Kind::Ok => Ok(Cow::Borrowed(name)),
            Kind::Bad => Err(Errno::PERM),
            Kind::Unsupported => Err(Errno::NOTSUP),
            Kind::Prefix => {
                let mut mapped = Vec::with_capacity(rule.prepend.len() + name.len());
                mapped.extend_from_slice(&rule.prepend);
                mapped.extend_from_slice(bare);
                if nul {
                    mapped.push(0);
                }
                Ok(Cow::Owned(mapped))
            }
        }
    }

    /// A host name as the guest sees it, or None where it is hidden.
    pub fn to_guest<'n>(&self, name: &'n [u8]) -> Option<&'n [u8]> {
        if self.is_empty() {
            return Some(name);
        }
        let rule = self
            .rules
            .iter()
            .find(|r| r.server && name.starts_with(&r.prepend))?;
        match rule.kind {
            Kind::Ok => Some(name),
            Kind::Bad | Kind::Unsupported => None,
            Kind::Prefix => Some(&name[rule.prepend.len()..]),
        }
    }

    /// A host listing (names, each NUL-terminated) as the guest sees it:
    /// each name mapped, hidden ones left out. A trailing fragment without
    /// its NUL (the kernel never returns one) is left out too.
    pub fn list_to_guest(&self, list: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(list.len());
        for name in list.split_inclusive(|&b| b == 0) {
            let Some(bare) = name.strip_suffix(b"\0") else {
                continue;
            };
            if bare.is_empty() {
                continue;
            }
            if let Some(shown) = self.to_guest(bare) {
                if !shown.is_empty() {
                    out.extend_from_slice(shown);
                    out.push(0);
                }
            }
        }
        out
    }
}

fn first_rule(rest: &str) -> String {
    rest.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(m: &XattrMap, name: &str) -> Result<String, Errno> {
        m.to_host(name.as_bytes())
            .map(|n| String::from_utf8_lossy(&n).into_owned())
    }

    fn list(m: &XattrMap, names: &[&str]) -> Vec<String> {
        let raw: Vec<u8> = names.iter().flat_map(|n| n.bytes().chain([0])).collect();
        m.list_to_guest(&raw)
            .split(|&b| b == 0)
            .filter(|n| !n.is_empty())
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect()
    }

    #[test]
    fn the_map_shorthand_cannot_be_forged() {
        let m = XattrMap::parse(":map:security.:user.virtiofs.:").unwrap();
        assert_eq!(
            host(&m, "security.selinux").unwrap(),
            "user.virtiofs.security.selinux"
        );
        assert_eq!(
            host(&m, "security.selinux\0").unwrap(),
            "user.virtiofs.security.selinux\0"
        );
        assert_eq!(host(&m, "user.virtiofs.security.selinux"), Err(Errno::PERM));
        assert_eq!(host(&m, "user.other").unwrap(), "user.other");
        assert_eq!(
            list(
                &m,
                &[
                    "user.virtiofs.security.selinux",
                    "security.selinux",
                    "user.other",
                    "security.ima"
                ]
            ),
            ["security.selinux", "user.other"],
            "the raw host security.* names are hidden, the mapped one shown once"
        );
    }

    #[test]
    fn everything_under_one_prefix() {
        let m = XattrMap::parse(":map::user.virtiofs.:").unwrap();
        assert_eq!(host(&m, "trusted.x").unwrap(), "user.virtiofs.trusted.x");
        assert_eq!(
            host(&m, "user.virtiofs.x").unwrap(),
            "user.virtiofs.user.virtiofs.x"
        );
        assert_eq!(
            list(&m, &["user.virtiofs.trusted.x", "user.plain"]),
            ["trusted.x"]
        );
    }

    #[test]
    fn rule_types_scopes_and_separators() {
        let m = XattrMap::parse(
            "/prefix/all/trusted./user.virtiofs./ /bad/server//trusted./\n\
             |bad|client|user.virtiofs.|| :unsupported:client:security.capability::\
             :ok:all:::",
        )
        .unwrap();
        assert_eq!(host(&m, "trusted.a").unwrap(), "user.virtiofs.trusted.a");
        assert_eq!(host(&m, "user.virtiofs.trusted.a"), Err(Errno::PERM));
        assert_eq!(host(&m, "security.capability"), Err(Errno::NOTSUP));
        assert_eq!(host(&m, "user.x").unwrap(), "user.x");
        assert_eq!(
            list(&m, &["trusted.raw", "user.virtiofs.trusted.a", "user.x"]),
            ["trusted.a", "user.x"]
        );
        // No rule matches: refused, and hidden.
        let m = XattrMap::parse(":ok:client:user.::").unwrap();
        assert_eq!(host(&m, "security.selinux"), Err(Errno::PERM));
        assert!(list(&m, &["user.x"]).is_empty(), "no server rule: hidden");
    }

    #[test]
    fn bad_rules_are_named() {
        for (text, says) in [
            ("", "no rules"),
            (":map:a:b", "unterminated"),
            (":map:a:b:x", "follows a `map` rule"),
            (":prefix:all:a", "unterminated"),
            (":frob:all:::", "unknown type `frob`"),
            (":ok:everywhere:::", "unknown scope `everywhere`"),
            ("::all:::", "the type is empty"),
            (":ok::::", "the scope is empty"),
            (":map::p.: :ok:all:::", "follows a `map` rule"),
        ] {
            let err = XattrMap::parse(text).unwrap_err();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }

    #[test]
    fn without_rules_names_pass() {
        let m = XattrMap::default();
        assert_eq!(host(&m, "trusted.x").unwrap(), "trusted.x");
        assert_eq!(list(&m, &["a", "b"]), ["a", "b"]);
    }
}
