//! Where things are: the repository (templates, the venv with the emulator), the logrelay
//! binaries of a build profile, and the run's work directory.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// The binaries a run starts, by file name.
pub const BINARIES: [&str; 3] = ["logrelay-agent", "logrelay-processor", "logrelay-testgen"];

/// Where `cargo test` put the workspace's binaries, for the end-to-end tests: the directory above
/// the running test binary's `deps/`, checked to hold every one of [`BINARIES`].
pub fn test_bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("test binary path")?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the test binary is not in <profile>/deps/")?
        .to_path_buf();
    Binaries::in_dir(&dir)?;
    Ok(dir)
}

/// The repository root (this crate's parent directory, fixed at build time: the demo runs from a
/// checkout).
pub fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// `<repo>/.venv/bin/<tool>`.
pub fn venv_tool(tool: &str) -> PathBuf {
    repo_root().join(".venv").join("bin").join(tool)
}

/// The demo's Python helpers (`demo/python/<name>`).
pub fn python_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name)
}

/// The CloudFormation templates (`<repo>/cloudformation`).
pub fn templates_dir() -> PathBuf {
    repo_root().join("cloudformation")
}

/// The three logrelay binaries in one directory.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `logrelay-agent`.
    pub agent: PathBuf,
    /// `logrelay-processor`.
    pub processor: PathBuf,
    /// `logrelay-testgen`.
    pub testgen: PathBuf,
}

impl Binaries {
    /// The binaries in `dir`; an error names every missing one and how to build it.
    pub fn in_dir(dir: &Path) -> anyhow::Result<Self> {
        let missing: Vec<&str> = BINARIES
            .iter()
            .copied()
            .filter(|name| !dir.join(name).is_file())
            .collect();
        anyhow::ensure!(
            missing.is_empty(),
            "{} missing in {}: build them first (`cargo build --workspace --release`, or \
             `cargo build --workspace` for target/debug)",
            missing.join(", "),
            dir.display()
        );
        Ok(Self {
            agent: dir.join("logrelay-agent"),
            processor: dir.join("logrelay-processor"),
            testgen: dir.join("logrelay-testgen"),
        })
    }
}

/// The default binaries directory: `<repo>/target/release`, or `$CARGO_TARGET_DIR/release`.
pub fn default_bin_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    target.join("release")
}

/// A fresh work directory `<repo>/.run/demo-<UTC time>` (git-ignored).
pub fn default_work_dir() -> PathBuf {
    work_dir_named("demo")
}

/// A fresh work directory `<repo>/.run/<kind>-<UTC time>` (git-ignored).
pub fn work_dir_named(kind: &str) -> PathBuf {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    repo_root().join(".run").join(format!("{kind}-{stamp}"))
}

/// Creates the work directory and its subdirectories; returns their paths.
pub fn prepare_work_dir(root: &Path) -> anyhow::Result<WorkDir> {
    let dirs = WorkDir {
        root: root.to_path_buf(),
        pods: root.join("var-log-pods"),
        kube_objects: root.join("kube-objects"),
        agent_data: root.join("agent-data"),
        logs: root.join("logs"),
        ledger: root.join("ledger.json"),
    };
    for dir in [&dirs.pods, &dirs.kube_objects, &dirs.agent_data, &dirs.logs] {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    Ok(dirs)
}

/// The files of one run.
#[derive(Debug, Clone)]
pub struct WorkDir {
    /// The directory itself.
    pub root: PathBuf,
    /// The fake node's `/var/log/pods`.
    pub pods: PathBuf,
    /// Namespace and Pod objects written by the generator, served by the fake Kubernetes API.
    pub kube_objects: PathBuf,
    /// The agent's checkpoints and metadata cache.
    pub agent_data: PathBuf,
    /// One log file per component.
    pub logs: PathBuf,
    /// The generator's ledger.
    pub ledger: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binaries_are_named_with_the_build_command() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("logrelay-agent"), b"").expect("write");
        let error = Binaries::in_dir(dir.path())
            .expect_err("incomplete")
            .to_string();
        assert!(
            error.contains("logrelay-processor, logrelay-testgen"),
            "{error}"
        );
        assert!(error.contains("cargo build --workspace"), "{error}");
    }

    #[test]
    fn repo_root_holds_the_templates_and_this_crate() {
        assert!(templates_dir().join("core-infrastructure.yaml").is_file());
        assert!(repo_root().join("demo").join("Cargo.toml").is_file());
    }
}
