//! Real outside components for the tests, brought on first use so the
//! README's test command alone sets everything up on a fresh machine: a
//! Python virtualenv with pinned packages, made under the build's temporary
//! directory (`CARGO_TARGET_TMPDIR`) and reused, and Debian packages
//! (Chromium, Prometheus) installed with `apt-get` when absent. A component
//! that cannot be had fails the test with the reason; nothing is skipped.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// The Python interpreter of a virtualenv named `name` holding exactly the
/// pinned `packages` (e.g. `duckdb==1.4.3`), creating it if needed.
pub fn venv(name: &str, packages: &[&str]) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("venvs");
    let dir = root.join(name);
    let python = dir.join("bin").join("python");
    if dir.join(".ready").exists() {
        return python;
    }
    // Tests run as threads of one process: one makes a virtualenv at a time
    // (the temporary name below is per process).
    static MAKING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    if dir.join(".ready").exists() {
        return python;
    }
    std::fs::create_dir_all(&root).unwrap();
    // Built beside its final place and renamed into it, so tests running at
    // once never see half a virtualenv.
    let tmp = root.join(format!("{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&tmp),
        "create a Python virtualenv (python3 -m venv)",
    );
    run(
        Command::new(tmp.join("bin").join("python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(packages),
        &format!("install {packages:?} from PyPI"),
    );
    std::fs::write(tmp.join(".ready"), packages.join("\n")).unwrap();
    if std::fs::rename(&tmp, &dir).is_err() {
        // Another test made it meanwhile: use that one.
        let _ = std::fs::remove_dir_all(&tmp);
        assert!(
            dir.join(".ready").exists(),
            "{} is not ready",
            dir.display()
        );
    }
    python
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot {what}: {e}; install python3 with venv and pip"));
    assert!(
        out.status.success(),
        "cannot {what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a Python script with `python`, returning its stdout; fails with its
/// output if it fails.
pub fn script(python: &PathBuf, code: &str, args: &[&str]) -> String {
    let out = Command::new(python)
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "python failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The path of `binary` from Debian's `package`, installing the package
/// with `apt-get` (as root, from Debian's registry) when it is absent.
pub fn debian(package: &str, binary: &str) -> PathBuf {
    let path = PathBuf::from("/usr/bin").join(binary);
    if path.exists() {
        return path;
    }
    static INSTALLING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    if path.exists() {
        return path;
    }
    let install = |cmd: &mut Command| {
        cmd.env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .map_err(|e| e.to_string())
            .and_then(|out| {
                if out.status.success() {
                    Ok(())
                } else {
                    Err(format!(
                        "{}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    ))
                }
            })
    };
    let apt = || {
        let mut cmd = Command::new("apt-get");
        cmd.args(["install", "-y", "--no-install-recommends", package]);
        cmd
    };
    // The package lists may be missing or stale on a fresh machine: update
    // them once and try again before giving up.
    let installed = install(&mut apt()).or_else(|_| {
        install(Command::new("apt-get").arg("update"))?;
        install(&mut apt())
    });
    if let Err(why) = installed {
        panic!(
            "cannot install Debian's {package} (needed for {}): {why}; \
             install it as root with `apt-get install {package}`",
            path.display()
        );
    }
    assert!(
        path.exists(),
        "{package} is installed but {} is not there",
        path.display()
    );
    path
}
