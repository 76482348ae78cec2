//! Apps across clouds, on two simulators (each its own Keystone): the split of
//! an app's members by weight, a cloud that stops answering failing over to the
//! other after the grace with no duplicate, the way back once it answers, and a
//! kill -9 of the engine in the middle of a failover.

// Tests fail by panicking: unwrap, expect and indexing say so plainly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::let_underscore_must_use,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use common::rig::{inventory_cfg, plan_cfg};
use common::*;
use serde_json::json;
use stackpilot::cloud::compute::ServerQuery;
use stackpilot::cloud::Client;
use stackpilot::config::settings::EngineMode;
use stackpilot::domain::{Server, ServerStatus};
use stackpilot::engine::metrics::EngineMetrics;
use stackpilot::engine::{Engine, EngineConfig, EngineHandle, PlanConfig};
use stackpilot::inventory::Inventory;
use stackpilot::policy::policy_id;
use stackpilot::sim::{SimConfig, SimHandle};
use stackpilot::store::Store;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const APP: &str = "spp-web";

/// Two clouds: `west` and `east`, each a simulator of its own.
struct Two {
    west: SimHandle,
    east: SimHandle,
    clients: Vec<Client>,
    dir: tempfile::TempDir,
}

impl Two {
    async fn new() -> Two {
        let west = sim(SimConfig { speed: 60.0, ..Default::default() }).await;
        let east = sim(SimConfig { speed: 60.0, ..Default::default() }).await;
        let named = |h: &SimHandle, name: &str| {
            let mut c = admin_cloud(h);
            c.name = name.into();
            Client::with_timeout(c, Duration::from_secs(5)).unwrap()
        };
        let clients = vec![named(&west, "west"), named(&east, "east")];
        let two = Two { west, east, clients, dir: tempfile::tempdir().unwrap() };
        std::fs::create_dir_all(two.policies()).unwrap();
        two
    }

    fn policies(&self) -> PathBuf {
        self.dir.path().join("policies")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The app on both clouds: two thirds on west, a third on east.
    fn policy(&self, desired: u32, grace: &str) {
        let text = format!(
            r##"[app]
name = "{APP}"
cloud = "west"

[deploy]
image = "cirros-0.6.2-x86_64-disk"
flavor = "m1.tiny"
networks = ["private"]
capacity = {{ min = 1, max = 10, desired = {desired} }}

[readiness]
min_ready_seconds = 0

[placement]
failover = true
grace = "{grace}"
locations = [{{ cloud = "west", weight = 2 }}, {{ cloud = "east", weight = 1 }}]
"##
        );
        std::fs::write(self.policies().join("web.toml"), text).unwrap();
    }

    fn engine_cfg(&self) -> EngineConfig {
        EngineConfig {
            mode: EngineMode::Auto,
            tick: Duration::from_millis(300),
            concurrency: 4,
            plan: PlanConfig { create_visibility_timeout: chrono::Duration::seconds(6), ..plan_cfg() },
            policies_dir: self.policies(),
            state_dir: self.state(),
            engine_id: "test/placement".into(),
            create_timeout: Duration::from_secs(3),
            max_data_age: Duration::from_secs(30),
            metrics_granularity: 60,
            may_act: true,
            notify: Ok(Default::default()),
        }
    }

    fn start(&self) -> (EngineHandle, Inventory, Store) {
        std::fs::create_dir_all(self.state()).unwrap();
        let store = Store::open(&self.state().join("stackpilot.db")).unwrap();
        let inventory = Inventory::start(self.clients.clone(), inventory_cfg());
        let handle = Engine::start(
            self.engine_cfg(),
            self.clients.clone(),
            inventory.subscribe(),
            inventory.link(),
            store.clone(),
            Arc::new(EngineMetrics::default()),
        );
        (handle, inventory, store)
    }

    fn sim_of(&self, cloud: &str) -> &SimHandle {
        if cloud == "west" {
            &self.west
        } else {
            &self.east
        }
    }

    /// The app's live members on a cloud (asked of the simulator itself, so a
    /// cloud that refuses its API can still be counted).
    async fn members(&self, cloud: &str) -> Vec<Server> {
        let c = Client::with_timeout(
            {
                let mut c = admin_cloud(self.sim_of(cloud));
                c.name = cloud.into();
                c
            },
            Duration::from_secs(5),
        )
        .unwrap();
        let tag = format!("stackpilot-app-{}", policy_id(cloud, APP));
        let q = ServerQuery { tags: vec![tag], ..Default::default() };
        loop {
            match c.compute().list_servers(&q).await {
                Ok(v) => return v.into_iter().filter(|s| s.status != ServerStatus::Deleted).collect(),
                Err(e) if e.is_transient() => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => panic!("listing members of {cloud}: {e}"),
            }
        }
    }

    /// Wait until each cloud has exactly its count of ACTIVE members, for a
    /// few checks in a row (east is not asked while it refuses every request).
    async fn split(&self, west: usize, east: Option<usize>, within: Duration) {
        let deadline = Instant::now() + within;
        let mut stable = 0;
        loop {
            let w = self.members("west").await;
            let e = match east {
                Some(_) => self.members("east").await,
                None => vec![],
            };
            let east = east.unwrap_or(0);
            let active = |v: &[Server]| v.iter().filter(|s| s.status == ServerStatus::Active).count();
            if w.len() == west && e.len() == east && active(&w) == west && active(&e) == east {
                stable += 1;
                if stable >= 5 {
                    rig::assert_well_formed(APP, &w);
                    rig::assert_well_formed(APP, &e);
                    return;
                }
            } else {
                stable = 0;
            }
            assert!(
                Instant::now() < deadline,
                "want west {west} / east {east}, have west {:?} / east {:?}",
                rig::names(&w),
                rig::names(&e)
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// The east cloud stops answering (every connection is cut), or answers again.
    async fn east_down(&self, down: bool) {
        if down {
            control(&self.east, "faults", json!({"service": "all", "drop_rate": 1.0})).await;
        } else {
            let r = control_request(&self.east, reqwest::Method::DELETE, "faults").send().await.unwrap();
            assert!(r.status().is_success());
        }
    }
}

/// No op tag was used by more than one accepted create, on either simulator.
async fn no_duplicate_creates(two: &Two) -> (u64, u64) {
    let mut n = vec![];
    for h in [&two.west, &two.east] {
        let st = control_get(h, "stats").await;
        let by_tag: std::collections::BTreeMap<String, u64> =
            serde_json::from_value(st["creates_by_op_tag"].clone()).unwrap();
        let dup: Vec<_> = by_tag.iter().filter(|(_, n)| **n > 1).collect();
        assert!(dup.is_empty(), "creates repeated under one op tag: {dup:?}");
        n.push(st["server_creates"].as_u64().unwrap());
    }
    (n[0], n[1])
}

fn actions(store: &Store, action: &str) -> Vec<stackpilot::domain::Event> {
    rig::events(store, action, APP)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_on_two_clouds_moves_its_share_off_a_cloud_that_stops_answering_and_back() {
    let two = Two::new().await;
    two.policy(3, "3s");
    let (eng, _inv, store) = two.start();
    // Steady split: two thirds on west, a third on east.
    two.split(2, Some(1), Duration::from_secs(60)).await;
    let east_before: BTreeSet<String> = two.members("east").await.into_iter().map(|s| s.id).collect();
    let st = eng.status.borrow().clone();
    assert!(st.placements.iter().any(|(a, l)| a == APP && l == "west 2 · east 1"), "{:?}", st.placements);

    // East stops answering: after the grace its share moves to west.
    two.east_down(true).await;
    let t0 = Instant::now();
    two.split(3, None, Duration::from_secs(60)).await;
    let moved = t0.elapsed();
    println!("failover: east unreachable → share moved to west (member ACTIVE) in {:.1} s", moved.as_secs_f64());
    let fo = actions(&store, "failover");
    assert_eq!(fo.len(), 1, "one failover: {fo:?}");
    assert_eq!(fo[0].cloud, "east");
    assert!(
        eng.status.borrow().alerts.iter().any(|a| a.kind == "placement-failover" && a.cloud == "east"),
        "alerted while failed over"
    );
    // Nothing was done to east's member meanwhile (the engine cannot, and must not).
    let st = control_get(&two.east, "stats").await;
    assert_eq!(st["server_deletes"].as_u64(), Some(0), "{st}");

    // East answers again: its member is ready, so west gives the extra one back.
    two.east_down(false).await;
    two.split(2, Some(1), Duration::from_secs(60)).await;
    let east_after: BTreeSet<String> = two.members("east").await.into_iter().map(|s| s.id).collect();
    assert_eq!(east_after, east_before, "east kept its member through it all");
    assert_eq!(actions(&store, "failback").len(), 1);
    let (w, e) = no_duplicate_creates(&two).await;
    assert_eq!((w, e), (3, 1), "west created its two and the one extra, east its one");
    drop(eng);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_location_that_answers_again_gets_its_share_back_only_once_its_members_are_ready() {
    let two = Two::new().await;
    two.policy(3, "2s");
    let (eng, _inv, store) = two.start();
    two.split(2, Some(1), Duration::from_secs(60)).await;
    let east_member = two.members("east").await.first().map(|s| s.id.clone()).unwrap();
    two.east_down(true).await;
    two.split(3, None, Duration::from_secs(60)).await;
    // While east was away its member broke: what the engine knew of it before the
    // outage (one ready member) must not bring the share back.
    control(&two.east, &format!("servers/{east_member}/state"), json!({"status": "ERROR"})).await;
    let no_repair = json!({"start": 100, "reboot-soft": 100, "reboot-hard": 100, "rebuild": 100});
    control(&two.east, &format!("servers/{east_member}/fail-actions"), no_repair).await;
    two.east_down(false).await;
    // West keeps its extra member until east has a new member up.
    let until = Instant::now() + Duration::from_secs(12);
    let mut checks = 0;
    while Instant::now() < until {
        let west = two.members("west").await;
        if west.len() < 3 {
            let east = two.members("east").await;
            assert!(
                east.iter().any(|s| s.id != east_member && s.status == ServerStatus::Active),
                "west gave its extra member up before east could serve: west {west:?}, east {east:?}"
            );
            assert_eq!(actions(&store, "failback").len(), 1);
            break;
        }
        checks += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(checks > 3, "the outage ended too fast to watch");
    drop(eng);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placement_that_drops_a_location_holds_it_until_retired() {
    let two = Two::new().await;
    two.policy(3, "1m");
    let (eng, _inv, _store) = two.start();
    two.split(2, Some(1), Duration::from_secs(60)).await;
    // The edit leaves east out: west goes to 3, east's member stays (missing, held).
    let text = std::fs::read_to_string(two.policies().join("web.toml")).unwrap();
    let text = text.replace(
        r#"locations = [{ cloud = "west", weight = 2 }, { cloud = "east", weight = 1 }]"#,
        r#"locations = [{ cloud = "west", weight = 1 }]"#,
    );
    assert!(text.contains(r#"[{ cloud = "west", weight = 1 }]"#), "{text}");
    std::fs::write(two.policies().join("web.toml"), text).unwrap();
    two.split(3, Some(1), Duration::from_secs(60)).await;
    let st = eng.status.borrow().clone();
    let east = st.policies.iter().find(|p| p.cloud == "east" && p.app == APP).unwrap();
    assert_eq!(east.state, "missing");
    assert!(east.problems.iter().any(|p| p.contains("no longer lists `east`")), "{:?}", east.problems);
    drop(eng);
}

fn clouds_yaml(two: &Two) -> String {
    let one = |h: &SimHandle, name: &str| {
        stackpilot::sim::clouds_yaml(&h.base_url, name, "admin", "secret", "admin").replacen("clouds:\n", "", 1)
    };
    format!("clouds:\n{}{}", one(&two.west, "west"), one(&two.east, "east"))
}

/// `stackpilot engine` as a child process serving both clouds.
fn spawn_engine(two: &Two, log: &Path) -> rig::Child {
    let home = two.dir.path();
    std::fs::write(home.join("clouds.yaml"), clouds_yaml(two)).unwrap();
    let cfg_dir = home.join("config/stackpilot");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    std::fs::write(
        cfg_dir.join("config.toml"),
        "[refresh]\nservers = \"200ms\"\nfull_resync = \"3s\"\ntimeout = \"5s\"\nmax_backoff = \"500ms\"\n\n[engine]\nmode = \"auto\"\ntick = \"300ms\"\ncreate_visibility_timeout = \"6s\"\norphan_grace = \"3s\"\n",
    )
    .unwrap();
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let proc = std::process::Command::new(env!("CARGO_BIN_EXE_stackpilot"))
        .args(["engine", "--metrics-port", "0", "--policies"])
        .arg(two.policies())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("OS_CLIENT_CONFIG_FILE", home.join("clouds.yaml"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("STACKPILOT_STATE_DIR", two.state())
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("stackpilot engine starts");
    rig::Child { proc }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_killed_during_a_failover_finishes_it_without_a_duplicate() {
    let two = Two::new().await;
    two.policy(3, "2s");
    std::fs::create_dir_all(two.state()).unwrap();
    let log = two.dir.path().join("engine.log");
    let mut child = spawn_engine(&two, &log);
    two.split(2, Some(1), Duration::from_secs(90)).await;
    two.east_down(true).await;
    // Killed as soon as the failover is on record (its create may be in flight).
    let store = Store::open(&two.state().join("stackpilot.db")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while actions(&store, "failover").is_empty() {
        assert!(Instant::now() < deadline, "no failover: {}", std::fs::read_to_string(&log).unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.proc.kill().unwrap();
    child.proc.wait().unwrap();
    println!("engine killed with -9 during the failover");
    let _again = spawn_engine(&two, &log);
    two.split(3, None, Duration::from_secs(90)).await;
    assert_eq!(actions(&store, "failover").len(), 1, "the restarted engine did not fail over again");
    let (w, _) = no_duplicate_creates(&two).await;
    assert_eq!(w, 3, "west created one extra member, once");
    two.east_down(false).await;
    two.split(2, Some(1), Duration::from_secs(90)).await;
}
