//! A kube-apiserver restart in the middle of a run: the operator keeps its
//! run, retries its progress writes until the API server is back, and
//! finishes without sending anybody twice.

mod common;
mod fault_support;

use common::*;
use fault_support::*;
use mas_reset_harness::ControlPlane;

#[tokio::test]
async fn apiserver_restart_mid_run_sends_once() {
    // An own control plane: restarting the shared one would disturb the
    // other tests of this binary.
    let mut plane = ControlPlane::start().await.expect("control plane starts");
    install_crds(&plane).await;
    let client = plane.client().await.expect("client");
    let users = 1500;
    let scenario = Scenario::start(&client, "apiserver-restart", users, 20).await;

    let operator = Operator::start(&plane, &scenario.namespace, &[]);
    // 100 requests per second: the run lasts about 15 s, longer than the
    // restart.
    scenario
        .apply(
            "restart",
            serde_json::json!({ "concurrency": 4, "requestsPerSecond": 100 }),
        )
        .await;
    let before = scenario.wait_for_done("restart", 300, &[&operator]).await;
    let holder_before = holder(&before);

    plane
        .restart_apiserver()
        .await
        .expect("kube-apiserver restarts");
    let client = plane.client().await.expect("client after the restart");
    let scenario = Scenario { client, ..scenario };

    let after = scenario.resource("restart").await.status.expect("status");
    assert!(
        done(&after) < users as i64,
        "the run finished during the restart; slow it down"
    );

    let status = scenario.wait_for_final_phase("restart", &[&operator]).await;
    scenario
        .assert_every_user_reset_once("restart", &status)
        .await;
    assert_eq!(
        holder(&status),
        holder_before,
        "the run task restarted instead of riding out the restart"
    );
    assert!(
        !operator.log().contains(TOKEN),
        "the operator log contains the MAS token"
    );

    let mut operator = operator;
    operator.terminate().await;
    scenario.simulator.shutdown().await;
    plane.stop().await;
}
