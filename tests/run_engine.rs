//! The run engine on its own, with an in-memory journal and the MAS
//! simulator: claims always precede sends, a clean stop lowers the claim,
//! and a resumed run sends nobody twice.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use mas_reset_operator::mas::{
    ClientConfig, Credentials, MasClient, PasswordBody, RetryPolicy, TokenProvider,
};
use mas_reset_operator::metrics::Metrics;
use mas_reset_operator::run::{
    Action, Checkpoint, ExecutorConfig, Journal, JournalError, Outcome, RunState, Settings,
    StopReason, execute,
};
use mas_reset_operator::secret::SecretString;
use mas_reset_operator::simulator::{
    SimUser, Simulator, SimulatorConfig, SimulatorHandle, StaticToken,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "run-engine-token";

/// What the journal has made durable.
#[derive(Default)]
struct Durable {
    claimed: usize,
    outcomes: Vec<(usize, Outcome)>,
    persists: usize,
    /// A send was seen at a position the durable claim did not cover.
    violations: Vec<String>,
}

/// A journal in memory that checks, at every write, that the simulator has
/// seen no request for a user at or above the durable claim.
struct MemoryJournal {
    durable: Arc<Mutex<Durable>>,
    simulator: Arc<SimulatorHandle>,
    users: Arc<Vec<String>>,
    /// Fail every write after this many, as a crash would.
    fail_after: Option<usize>,
}

#[async_trait]
impl Journal for MemoryJournal {
    async fn persist(&mut self, checkpoint: Checkpoint) -> Result<(), JournalError> {
        let mut durable = self.durable.lock().unwrap();
        if self
            .fail_after
            .is_some_and(|limit| durable.persists >= limit)
        {
            return Err(JournalError::Storage {
                detail: "simulated crash".to_owned(),
            });
        }

        let claimed = durable.claimed;
        for entry in self.simulator.ledger() {
            let index = self
                .users
                .iter()
                .position(|user| *user == entry.user_id)
                .expect("known user");
            if index >= claimed {
                durable
                    .violations
                    .push(format!("{} sent with claim {claimed}", entry.user_id));
            }
        }

        durable.persists += 1;
        durable.claimed = checkpoint.claimed;
        durable.outcomes.extend(checkpoint.outcomes);
        Ok(())
    }
}

struct Fixture {
    simulator: Arc<SimulatorHandle>,
    users: Arc<Vec<String>>,
    client: MasClient,
}

async fn fixture(count: usize, latency_ms: u64) -> Fixture {
    mas_reset_operator::install_crypto_provider();
    let users: Vec<String> = (0..count).map(|n| format!("engine-{n:05}")).collect();
    let simulator = Simulator::start(SimulatorConfig {
        users: users.iter().map(SimUser::local).collect(),
        tokens: vec![StaticToken::new(TOKEN, true)],
        latency_ms,
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts");
    let client = MasClient::new(ClientConfig {
        base_url: simulator.base_url(),
        ca_bundle_pem: None,
        insecure_skip_tls_verify: false,
        allow_http: true,
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        max_idle_per_host: 16,
    })
    .expect("client builds");
    Fixture {
        simulator: Arc::new(simulator),
        users: Arc::new(users),
        client,
    }
}

fn config(claim_size: usize) -> ExecutorConfig {
    ExecutorConfig {
        action: Action::Reset {
            body: PasswordBody::MasGenerated,
            email_password: true,
        },
        retry: RetryPolicy::default(),
        max_failures: None,
        claim_size,
        flush_interval: Duration::from_millis(100),
    }
}

async fn run(
    fixture: &Fixture,
    state: &mut RunState,
    pending: Vec<usize>,
    claim_size: usize,
    durable: Arc<Mutex<Durable>>,
    fail_after: Option<usize>,
    cancel: CancellationToken,
) -> StopReason {
    let (_settings_tx, settings) = watch::channel(Settings {
        concurrency: 8,
        requests_per_second: None,
    });
    let journal = MemoryJournal {
        durable,
        simulator: fixture.simulator.clone(),
        users: fixture.users.clone(),
        fail_after,
    };
    let tokens = TokenProvider::new(
        fixture.client.clone(),
        Credentials::Token(SecretString::new(TOKEN)),
    );
    execute(
        fixture.users.clone(),
        state,
        pending,
        fixture.client.clone(),
        tokens,
        config(claim_size),
        settings,
        cancel,
        Box::new(journal),
        Arc::new(Metrics::new()),
    )
    .await
}

#[tokio::test]
async fn claims_precede_sends() {
    let fixture = fixture(300, 2).await;
    let durable = Arc::new(Mutex::new(Durable::default()));
    let mut state = RunState::new(300);
    let pending = state.pending(false);

    let stop = run(
        &fixture,
        &mut state,
        pending,
        20,
        durable.clone(),
        None,
        CancellationToken::new(),
    )
    .await;

    assert!(
        matches!(stop, StopReason::Completed),
        "stopped with {stop:?}"
    );
    let durable = durable.lock().unwrap();
    assert!(
        durable.violations.is_empty(),
        "sends outside the claim: {:?}",
        durable.violations
    );
    assert_eq!(durable.outcomes.len(), 300);
    assert_eq!(durable.claimed, 300);
    assert_eq!(state.counts().succeeded, 300);
    assert_eq!(fixture.simulator.ledger().len(), 300);
}

#[tokio::test]
async fn cancel_lowers_claim_to_first_unsent() {
    let fixture = fixture(400, 20).await;
    let durable = Arc::new(Mutex::new(Durable::default()));
    let mut state = RunState::new(400);
    let pending = state.pending(false);
    let cancel = CancellationToken::new();
    let canceller = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        canceller.cancel();
    });

    let stop = run(
        &fixture,
        &mut state,
        pending,
        50,
        durable.clone(),
        None,
        cancel,
    )
    .await;

    assert!(
        matches!(stop, StopReason::Cancelled),
        "stopped with {stop:?}"
    );
    let durable = durable.lock().unwrap();
    let sent = fixture.simulator.ledger().len();
    assert!(sent < 400, "the run finished before the cancel");
    assert_eq!(
        durable.outcomes.len(),
        sent,
        "every sent user has a recorded outcome"
    );
    assert_eq!(durable.claimed, state.first_without_outcome());
    assert_eq!(state.counts().unknown, 0);
}

#[tokio::test]
async fn resume_after_crash_sends_nobody_twice() {
    let fixture = fixture(500, 5).await;
    let durable = Arc::new(Mutex::new(Durable::default()));
    let mut state = RunState::new(500);
    let pending = state.pending(false);

    // The journal fails after a few writes: the run stops as after a crash,
    // with claimed users whose outcome was never made durable.
    let stop = run(
        &fixture,
        &mut state,
        pending,
        40,
        durable.clone(),
        Some(4),
        CancellationToken::new(),
    )
    .await;
    assert!(
        matches!(stop, StopReason::Journal(_)),
        "stopped with {stop:?}"
    );

    // Resume from what is durable only.
    let (claimed, recorded) = {
        let durable = durable.lock().unwrap();
        (durable.claimed, durable.outcomes.clone())
    };
    let (mut resumed, recovered) = RunState::restore(500, claimed, recorded);
    let pending = resumed.pending(false);
    let resumed_durable = Arc::new(Mutex::new(Durable {
        claimed,
        ..Durable::default()
    }));
    let stop = run(
        &fixture,
        &mut resumed,
        pending,
        40,
        resumed_durable,
        None,
        CancellationToken::new(),
    )
    .await;

    assert!(
        matches!(stop, StopReason::Completed),
        "stopped with {stop:?}"
    );
    assert_eq!(resumed.counts().done(), 500);
    assert_eq!(resumed.counts().unknown as usize, recovered.len());
    // Unknown users: the claim is extended by a claim size when half a claim
    // is left, so at most 1.5 claims ahead of the last write, plus the
    // requests that were in flight at that write.
    assert!(
        recovered.len() <= 40 + 20 + 8,
        "{} users became Unknown",
        recovered.len()
    );
    let applied = fixture.simulator.ledger_applied_counts();
    assert!(
        applied.values().all(|count| *count == 1),
        "a user was reset twice"
    );
    for (index, user) in fixture.users.iter().enumerate() {
        if !recovered.contains(&index) {
            assert_eq!(
                applied.get(user),
                Some(&1),
                "{user} was not reset exactly once"
            );
        }
    }
}
