//! The test control plane: processes end with it, restarts keep data, and
//! write requests are counted.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use mas_reset_harness::{ControlPlane, process_is_running};

/// Environment variable that makes a helper test below do its work. Without
/// it the helpers return at once, so `cargo test -- --ignored` is harmless.
const HELPER_ENV: &str = "MAS_RESET_HARNESS_HELPER";

/// Maximum time for the kernel to kill and the system to reap orphaned
/// children after their parent process died.
const ORPHAN_DEADLINE: Duration = Duration::from_secs(20);

fn config_map(name: &str, value: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("value".to_owned(), value.to_owned())])),
        ..ConfigMap::default()
    }
}

async fn assert_serving(plane: &ControlPlane) {
    let client = plane.client().await.unwrap();
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.major, "1");
}

/// Polls until none of `pids` is running and returns those still running at
/// the deadline.
fn wait_until_gone(pids: &[u32], deadline: Duration) -> Vec<u32> {
    let start = std::time::Instant::now();
    loop {
        let running: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|pid| process_is_running(*pid))
            .collect();
        if running.is_empty() || start.elapsed() >= deadline {
            return running;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn stop_leaves_no_process() {
    let plane = ControlPlane::start().await.unwrap();
    let pids = [plane.apiserver_pid(), plane.etcd_pid()];
    let dir = plane.dir().to_path_buf();
    for pid in pids {
        assert!(
            process_is_running(pid),
            "process {pid} is not running after start"
        );
    }
    assert!(plane.kubeconfig_path().is_file());

    plane.stop().await;

    for pid in pids {
        assert!(
            !process_is_running(pid),
            "process {pid} still runs after stop"
        );
    }
    assert!(!dir.exists(), "{} still exists after stop", dir.display());
}

#[tokio::test]
async fn drop_leaves_no_process() {
    let plane = ControlPlane::start().await.unwrap();
    let pids = [plane.apiserver_pid(), plane.etcd_pid()];
    let dir = plane.dir().to_path_buf();

    drop(plane);

    for pid in pids {
        assert!(
            !process_is_running(pid),
            "process {pid} still runs after drop"
        );
    }
    assert!(!dir.exists(), "{} still exists after drop", dir.display());
}

#[tokio::test]
async fn restart_apiserver_keeps_data() {
    let mut plane = ControlPlane::start().await.unwrap();
    let etcd_pid = plane.etcd_pid();
    let old_apiserver_pid = plane.apiserver_pid();
    let url = plane.server_url();
    let config_maps: Api<ConfigMap> = Api::default_namespaced(plane.client().await.unwrap());
    config_maps
        .create(
            &PostParams::default(),
            &config_map("survivor", "before restart"),
        )
        .await
        .unwrap();

    plane.restart_apiserver().await.unwrap();

    assert_ne!(plane.apiserver_pid(), old_apiserver_pid);
    assert!(
        !process_is_running(old_apiserver_pid),
        "the old kube-apiserver still runs"
    );
    assert_eq!(plane.etcd_pid(), etcd_pid);
    assert!(
        process_is_running(etcd_pid),
        "etcd stopped during the restart"
    );
    assert_eq!(plane.server_url(), url);

    let config_maps: Api<ConfigMap> = Api::default_namespaced(plane.client().await.unwrap());
    let survivor = config_maps.get("survivor").await.unwrap();
    assert_eq!(survivor.data.unwrap()["value"], "before restart");
    plane.stop().await;
}

#[tokio::test]
async fn write_requests_count_a_create() {
    let plane = mas_reset_harness::shared().await;
    let before = plane.write_requests().await.unwrap();

    let config_maps: Api<ConfigMap> = Api::default_namespaced(plane.client().await.unwrap());
    config_maps
        .create(&PostParams::default(), &config_map("counted", "1"))
        .await
        .unwrap();

    let after = plane.write_requests().await.unwrap();
    assert!(
        after > before,
        "write requests went from {before} to {after} after a create"
    );
}

#[tokio::test]
async fn metrics_label_apply_verb() {
    let plane = mas_reset_harness::shared().await;
    let config_maps: Api<ConfigMap> = Api::default_namespaced(plane.client().await.unwrap());
    let params = kube::api::PatchParams::apply("metrics-test");
    config_maps
        .patch(
            "applied",
            &params,
            &kube::api::Patch::Apply(&config_map("applied", "1")),
        )
        .await
        .unwrap();

    let metrics = plane.metrics().await.unwrap();
    let applies = mas_reset_harness::metrics::sum_requests(&metrics, |labels| {
        let label = |name| mas_reset_harness::metrics::label(labels, name);
        label("verb") == Some("APPLY") && label("resource") == Some("configmaps")
    });
    assert!(
        applies >= 1,
        "no APPLY request on configmaps in the metrics"
    );
}

#[tokio::test]
async fn kubectl_uses_admin_kubeconfig() {
    let plane = mas_reset_harness::shared().await;
    let output = plane
        .kubectl()
        .args([
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("admin "), "unexpected user: {stdout}");
    assert!(
        stdout.contains("system:masters"),
        "unexpected groups: {stdout}"
    );
}

#[test]
fn processes_outlive_spawning_thread() {
    // A #[tokio::test] thread ends with its test, but the processes must not.
    let plane = std::thread::spawn(|| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(ControlPlane::start()).unwrap()
    })
    .join()
    .unwrap();

    // The spawning thread has exited. Give a wrongly aimed parent-death
    // signal time to arrive before checking.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        process_is_running(plane.apiserver_pid()),
        "kube-apiserver died with the thread that started it"
    );
    assert!(
        process_is_running(plane.etcd_pid()),
        "etcd died with the thread that started it"
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        assert_serving(&plane).await;
        plane.stop().await;
    });
}

/// Runs `helper` in a new process of this test binary and returns the pids
/// and directory that it printed on stdout, after the process has exited.
fn run_helper(helper: &str) -> (Vec<u32>, PathBuf) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            helper,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();

    let mut pids = Vec::new();
    let mut dir = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        // libtest may print "test NAME ... " on the same line first.
        let line = line.unwrap();
        if let Some((_, pid)) = line.split_once("helper-pid=") {
            pids.push(pid.trim().parse().unwrap());
        } else if let Some((_, path)) = line.split_once("helper-dir=") {
            dir = Some(PathBuf::from(path.trim()));
        }
    }
    child.wait().unwrap();

    let dir = dir.unwrap_or_else(|| panic!("helper {helper} printed no directory"));
    assert_eq!(pids.len(), 2, "helper {helper} printed {pids:?}");
    (pids, dir)
}

#[test]
fn abort_kills_children() {
    let (pids, dir) = run_helper("abort_after_start");

    let running = wait_until_gone(&pids, ORPHAN_DEADLINE);
    assert!(
        running.is_empty(),
        "processes {running:?} outlived the aborted test process"
    );

    // abort() skips all cleanup, so the next start removes the directory.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(ControlPlane::start()).unwrap();
    assert!(
        !dir.exists(),
        "{} was not removed by the next start",
        dir.display()
    );
}

#[test]
fn exit_cleans_up_shared() {
    let (pids, dir) = run_helper("use_shared_then_exit");

    let running = wait_until_gone(&pids, ORPHAN_DEADLINE);
    assert!(
        running.is_empty(),
        "processes {running:?} outlived the test process"
    );
    assert!(
        !dir.exists(),
        "{} still exists after the test process exited",
        dir.display()
    );
}

fn print_plane(plane: &ControlPlane) {
    println!("helper-pid={}", plane.apiserver_pid());
    println!("helper-pid={}", plane.etcd_pid());
    println!("helper-dir={}", plane.dir().display());
}

#[tokio::test]
#[ignore = "helper of abort_kills_children"]
async fn abort_after_start() {
    if std::env::var_os(HELPER_ENV).is_none() {
        return;
    }
    let plane = ControlPlane::start().await.unwrap();
    print_plane(&plane);
    std::process::abort();
}

#[tokio::test]
#[ignore = "helper of exit_cleans_up_shared"]
async fn use_shared_then_exit() {
    if std::env::var_os(HELPER_ENV).is_none() {
        return;
    }
    print_plane(mas_reset_harness::shared().await);
}
