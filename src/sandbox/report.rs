//! What protects the helper: one [`Report`], filled in by
//! [`super::confine`] as each layer is applied, printed by
//! `--sandbox-report` and summed up in the `sandbox:` start-up log line.

use crate::privilege::KEPT;
use crate::resolve::ResolverKind;
use crate::syscalls::Features;
use rustix::io::Errno;

/// How one layer went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// In force, with details.
    Active(String),
    /// Not in force, by choice or because the kernel lacks it; a real run
    /// goes on without it.
    Inactive(String),
    /// It failed, and a real run stops here; the text names the way past.
    Fails(String),
}

impl Outcome {
    fn text(&self) -> String {
        match self {
            Outcome::Active(t) | Outcome::Inactive(t) => t.clone(),
            Outcome::Fails(t) => format!("FAILS: {t}"),
        }
    }

    pub fn fails(&self) -> bool {
        matches!(self, Outcome::Fails(_))
    }
}

/// Every layer, as tried.
#[derive(Debug, Clone)]
pub struct Report {
    pub resolver: Outcome,
    /// Why openat2 cannot be used, if it cannot.
    pub openat2_unavailable: Option<Errno>,
    pub readonly: bool,
    pub procfs: Outcome,
    /// The sandbox kind in force and why it was chosen.
    pub sandbox: Outcome,
    /// The namespaces the helper created (user included).
    pub namespaces: Outcome,
    /// The helper's own user namespace, if it made one.
    pub user_namespace: Outcome,
    /// The uid and gid maps in force (`/proc/self/{u,g}id_map`).
    pub id_maps: String,
    /// How the export is mounted (namespace sandbox: nodev,nosuid).
    pub export_mount: Outcome,
    pub capabilities: Outcome,
    pub missing_capabilities: Vec<String>,
    pub landlock: Outcome,
    pub seccomp: Outcome,
    /// Whether the server's `/proc/PID/exe` (the host's binary) is in its
    /// reach.
    pub executable: Outcome,
    /// The waiter outside the pid namespace: how it confined itself.
    pub waiter: Outcome,
    /// The socket-file janitor (`--socket`): how it confined itself.
    pub janitor: Outcome,
    pub nofile: u64,
    pub features: Features,
    /// The id translation rules in force (`Translation::describe`).
    pub translation: String,
    /// The xattr name mapping in force (`XattrMap::describe`).
    pub xattrmap: String,
}

impl Report {
    /// A report with what is known before confinement; every layer reads
    /// "not tried" until [`super::confine`] gets to it.
    pub fn before_confinement(
        resolver: Result<ResolverKind, String>,
        openat2_unavailable: Option<Errno>,
        procfs: Outcome,
        readonly: bool,
        features: Features,
        translation: String,
    ) -> Self {
        let not_tried = || Outcome::Inactive("not tried".into());
        Report {
            resolver: match resolver {
                Ok(kind) => Outcome::Active(kind.name().into()),
                Err(e) => Outcome::Fails(e),
            },
            openat2_unavailable,
            readonly,
            procfs,
            sandbox: not_tried(),
            namespaces: Outcome::Inactive("none".into()),
            user_namespace: Outcome::Inactive("not needed".into()),
            id_maps: String::new(),
            export_mount: Outcome::Inactive("as on the host".into()),
            capabilities: not_tried(),
            missing_capabilities: Vec::new(),
            landlock: not_tried(),
            seccomp: not_tried(),
            waiter: Outcome::Inactive("none (no pid namespace)".into()),
            executable: Outcome::Inactive("not tried".into()),
            janitor: Outcome::Inactive("none (--fd: no socket file to remove)".into()),
            nofile: 0,
            features,
            translation,
            xattrmap: "none (names pass unchanged)".into(),
        }
    }

    /// The capabilities of [`KEPT`] this process has (kept) and lacks.
    pub fn capability_names(permitted: &caps::CapsHashSet) -> (Vec<String>, Vec<String>) {
        let (kept, missing): (Vec<_>, Vec<_>) = KEPT.iter().partition(|c| permitted.contains(c));
        let names = |v: Vec<&caps::Capability>| {
            let mut names: Vec<String> = v.iter().map(|c| c.to_string()).collect();
            names.sort();
            names
        };
        (names(kept), names(missing))
    }

    /// The layers a real run would stop at.
    pub fn failures(&self) -> Vec<&'static str> {
        [
            ("resolver", &self.resolver),
            ("procfs", &self.procfs),
            ("user namespace", &self.user_namespace),
            ("sandbox", &self.sandbox),
            ("export mount", &self.export_mount),
            ("capabilities", &self.capabilities),
            ("landlock", &self.landlock),
            ("seccomp", &self.seccomp),
            ("waiter", &self.waiter),
            ("janitor", &self.janitor),
        ]
        .into_iter()
        .filter(|(_, o)| o.fails())
        .map(|(name, _)| name)
        .collect()
    }

    fn features_text(&self) -> String {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let f = &self.features;
        format!(
            "close_range={} fchmodat2={} xattrat={} utimensat_empty_path={} O_EMPTYPATH={} OPENAT2_REGULAR={}",
            yes_no(f.close_range),
            yes_no(f.fchmodat2),
            yes_no(f.xattrat),
            yes_no(f.utimensat_empty_path),
            yes_no(f.reopen_empty_path),
            yes_no(f.openat2_regular),
        )
    }

    /// The sandbox kind in force, one word.
    pub fn sandbox_name(&self) -> &'static str {
        match &self.sandbox {
            Outcome::Active(t) if t.starts_with("namespace") => "namespace",
            Outcome::Active(t) if t.starts_with("chroot") => "chroot",
            Outcome::Fails(_) => "failed",
            _ => "none",
        }
    }

    /// The server's own confinement, in the words the waiter's and the
    /// janitor's lines use.
    pub fn server_text(&self) -> String {
        let caps = match &self.capabilities {
            Outcome::Active(names) if names.is_empty() => "none".to_owned(),
            Outcome::Active(names) => names.replace("CAP_", ""),
            other => other.text(),
        };
        let nnp = if self.seccomp.fails() {
            "no_new_privs not confirmed"
        } else {
            "no_new_privs"
        };
        format!("caps {caps}; {nnp}; seccomp {}", self.seccomp.text())
    }

    /// One line for the log.
    pub fn summary(&self) -> String {
        format!(
            "sandbox=\"{}\" namespaces=\"{}\" userns=\"{}\" ids=\"{}\" export_mount=\"{}\" resolver={} readonly={} landlock=\"{}\" seccomp=\"{}\" capabilities={} executable=\"{}\" waiter=\"{}\" janitor=\"{}\" nofile={}",
            self.sandbox.text(),
            self.namespaces.text(),
            self.user_namespace.text(),
            self.id_maps,
            self.export_mount.text(),
            self.resolver.text(),
            if self.readonly { "on" } else { "off" },
            self.landlock.text(),
            self.seccomp.text(),
            self.capabilities.text(),
            self.executable.text(),
            self.waiter.text(),
            self.janitor.text(),
            self.nofile
        )
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "sandbox:       {}", self.sandbox.text())?;
        writeln!(f, "namespaces:    {}", self.namespaces.text())?;
        writeln!(f, "user ns:       {}", self.user_namespace.text())?;
        writeln!(f, "id maps:       {}", self.id_maps)?;
        writeln!(f, "export mount:  {}", self.export_mount.text())?;
        writeln!(f, "resolver:      {}", self.resolver.text())?;
        writeln!(
            f,
            "readonly:      {}",
            if self.readonly { "on" } else { "off" }
        )?;
        match self.openat2_unavailable {
            None => writeln!(f, "openat2:       available")?,
            Some(e) => writeln!(f, "openat2:       unavailable ({e})")?,
        }
        writeln!(f, "procfs:        {}", self.procfs.text())?;
        writeln!(f, "landlock:      {}", self.landlock.text())?;
        writeln!(f, "seccomp:       {}", self.seccomp.text())?;
        writeln!(f, "capabilities:  {}", self.capabilities.text())?;
        if !self.missing_capabilities.is_empty() {
            writeln!(f, "missing:       {}", self.missing_capabilities.join(","))?;
        }
        writeln!(f, "executable:    {}", self.executable.text())?;
        writeln!(f, "process server:  {}", self.server_text())?;
        writeln!(f, "process waiter:  {}", self.waiter.text())?;
        writeln!(f, "process janitor: {}", self.janitor.text())?;
        writeln!(f, "nofile limit:  {}", self.nofile)?;
        writeln!(f, "kernel:        {}", self.features_text())?;
        writeln!(f, "translation:   {}", self.translation)?;
        writeln!(f, "xattrmap:      {}", self.xattrmap)?;
        match self.failures().as_slice() {
            [] => writeln!(
                f,
                "result:        every layer above was applied in a throwaway process; a real run would start"
            ),
            failed => writeln!(
                f,
                "result:        a real run would fail at: {}",
                failed.join(", ")
            ),
        }
    }
}
