//! The deploy recipes in `deploy/`, exercised as far as this machine allows (no container
//! registry is reachable, so no image is built or pulled; there is no Kubernetes cluster):
//! - the Kubernetes manifests validate, strictly, against the Kubernetes schemas
//!   (`kubernetes-validate`, offline), and agree with the binary on port and probe paths;
//! - the compose file is valid Compose (`docker-compose config`);
//! - the systemd unit verifies (`systemd-analyze verify`, no warning) and scores as hardened
//!   (`systemd-analyze security`);
//! - the image's runtime as the Containerfile sets it up: the binary as uid 65532 with the
//!   image's environment, answering its `HEALTHCHECK` command, stopping cleanly on SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::{free_addr, Serve};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs a checking tool; a tool that is not installed fails the test (`.ci/run` installs it).
fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?} (see .ci/run for how to install it): {e}"))
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kubernetes_manifests_validate_and_match_the_binary() {
    let dir = deploy().join("k8s");
    let mut manifests: Vec<String> = std::fs::read_dir(&dir)
        .expect("deploy/k8s")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    manifests.sort();
    assert!(manifests.len() >= 5, "{manifests:?}");
    let out = run(Command::new("kubernetes-validate")
        .args(["--strict", "--quiet"])
        .args(manifests.iter().map(|m| dir.join(m))));
    assert_ok(&out, "kubernetes-validate --strict");
    // `kubectl apply -k deploy/k8s` applies them all.
    let kustomization = read(&dir.join("kustomization.yaml"));
    for m in &manifests {
        assert!(
            kustomization.contains(&format!("- {m}")),
            "kustomization.yaml does not list {m}"
        );
    }
    // What the manifests assume of the binary.
    let deployment = read(&dir.join("deployment.yaml"));
    let config = read(&dir.join("configmap.yaml"));
    for want in [
        "path: /readyz",
        "path: /healthz",
        "containerPort: 8080",
        "key: url",
    ] {
        assert!(deployment.contains(want), "deployment.yaml lacks {want:?}");
    }
    assert!(deployment.contains("name: TASKWARD_DATABASE_URL"));
    assert!(config.contains("TASKWARD_LISTEN: \"0.0.0.0:8080\""));
    assert!(config.contains("TASKWARD_SERVER__DRAIN_DELAY_SECONDS"));
}

#[test]
fn compose_file_is_valid_compose() {
    let out = run(Command::new("docker-compose")
        .arg("-f")
        .arg(deploy().join("compose.yaml"))
        .args(["config", "-q"]));
    assert_ok(&out, "docker-compose config");
}

#[test]
fn systemd_unit_verifies_and_is_hardened() {
    // The unit as shipped, its ExecStart pointed at this build (verify checks it exists).
    let tmp = tempfile::tempdir().unwrap();
    let unit = read(&deploy().join("taskward.service")).replace(
        "ExecStart=/usr/local/bin/taskward",
        &format!("ExecStart={}", env!("CARGO_BIN_EXE_taskward")),
    );
    let path = tmp.path().join("taskward.service");
    std::fs::write(&path, unit).unwrap();
    let out = run(Command::new("systemd-analyze").arg("verify").arg(&path));
    assert_ok(&out, "systemd-analyze verify");
    // verify exits 0 on unknown keys and bad values, and only says so.
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "systemd-analyze verify warned"
    );
    // Exposure on systemd's 0–10 scale, ×10: at most 2.0 ("OK").
    let out = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20"])
        .arg(&path));
    assert_ok(&out, "systemd-analyze security: exposure above 2.0");
}

#[tokio::test]
async fn the_images_runtime_serves_as_a_non_root_user_and_answers_its_health_check() {
    let containerfile = read(&deploy().join("Containerfile"));
    for want in [
        "USER 65532:65532",
        "TASKWARD_LISTEN=0.0.0.0:8080",
        "TASKWARD_DATA_DIR=/data",
        "EXPOSE 8080",
        "CMD [\"/usr/local/bin/taskward\", \"health\", \"--url\", \"http://127.0.0.1:8080/readyz\"]",
        "CMD [\"serve\"]",
    ] {
        assert!(containerfile.contains(want), "Containerfile lacks {want:?}");
    }
    // The image's user owns only its data directory.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let bin = env!("CARGO_BIN_EXE_taskward");
    let root = rustix::process::geteuid().is_root();
    let mut cmd = if root {
        run(Command::new("chown").arg("65532:65532").arg(&data));
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65532", "--regid=65532", "--clear-groups", bin]);
        c
    } else {
        Command::new(bin)
    };
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TASKWARD_") || name == "RUST_LOG" {
            cmd.env_remove(name);
        }
    }
    // The image listens on 0.0.0.0:8080; here, on a free port.
    let addr = free_addr();
    cmd.arg("serve")
        .current_dir(tmp.path())
        .env("TASKWARD_LISTEN", format!("0.0.0.0:{}", addr.port()))
        .env("TASKWARD_DATA_DIR", &data)
        .env("TASKWARD_LOG__FORMAT", "json");
    let mut serve = Serve::spawn(cmd, addr);
    serve.wait_healthy(Duration::from_secs(20)).await;
    let health = |port: u16| {
        Command::new(bin)
            .args([
                "health",
                "--url",
                &format!("http://127.0.0.1:{port}/readyz"),
            ])
            .output()
            .expect("taskward health")
    };
    let out = health(addr.port());
    assert_ok(&out, "taskward health");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("200 {\"status\":\"ready\""),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        std::fs::metadata(data.join("taskward.db")).is_ok(),
        "the server wrote its database in the data directory"
    );
    // Nothing listening: unhealthy, exit 1.
    let out = health(free_addr().port());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    serve.stop().await;
}
