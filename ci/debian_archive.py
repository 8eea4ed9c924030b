"""Debian's archive as the host's apt sources name it, read and never
changed: what ci/kernels/run.py's private apt configuration and
ci/debian-root.sh's debootstrap fetch from, so that no script names a host.

  python3 ci/debian_archive.py [--security]   # prints "URI KEYRING"
"""
import glob, os, re, sys

DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def host_archive(security=False):
    """The address and keyring of the host's Debian archive entry (the
    security archive's with `security`), from its apt sources, deb822 or
    one-line."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for stanza in open(path).read().split("\n\n"):
            fields = {}
            for line in stanza.splitlines():
                if ":" in line and not line.startswith("#"):
                    k, v = line.split(":", 1)
                    fields[k.strip().lower()] = v.strip()
            suites = fields.get("suites", "").split()
            if "main" not in fields.get("components", "").split() or "uris" not in fields:
                continue
            is_security = "security" in fields["uris"] or any(s.endswith("-security") for s in suites)
            if is_security == security and (security or any(s.isalpha() for s in suites)):
                return fields["uris"].split()[0], fields.get("signed-by", DEFAULT_KEYRING)
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        if not os.path.exists(path):
            continue
        for line in open(path):
            m = re.match(r"deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+([a-z-]+)\s+.*\bmain\b", line)
            if m and (("security" in m.group(1) or m.group(2).endswith("-security")) == security):
                return m.group(1), DEFAULT_KEYRING
    if security:
        # The security archive lives beside the main one, by Debian's
        # convention, where the host names only the main archive.
        uri, keyring = host_archive()
        return uri.rstrip("/") + "-security", keyring
    sys.exit("no Debian archive in the host's apt sources")


if __name__ == "__main__":
    print(*host_archive("--security" in sys.argv[1:]))
