//! A full refresh vs an incremental (`changes-since`) refresh of 10,000 servers
//! against the simulator, in time and in requests; and the listing behind
//! `stackpilot servers`.

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

use criterion::{criterion_group, criterion_main, Criterion};
use stackpilot::cloud::compute::ServerQuery;
use stackpilot::cloud::session::counting;
use stackpilot::cloud::Client;
use stackpilot::config::clouds::{AuthMethod, CloudSource, DomainRef, Interface, Scope, UserRef};
use stackpilot::config::{CloudConfig, Secret};

fn cloud(base: &str) -> CloudConfig {
    let d = DomainRef { id: Some("default".into()), name: None };
    CloudConfig {
        name: "bench".into(),
        source: CloudSource::Env,
        auth_url: format!("{base}/identity/v3"),
        auth: AuthMethod::Password {
            user: UserRef { id: None, name: Some("admin".into()), domain: d.clone() },
            password: Secret::new("secret"),
            scope: Scope::Project { id: None, name: Some("admin".into()), domain: d },
        },
        region: Some("RegionOne".into()),
        regions: vec![],
        interface: Interface::Public,
        verify: true,
        cacert: None,
        client_cert: None,
        client_key: None,
        endpoint_overrides: Default::default(),
    }
}

fn refresh(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (h, client, mark) = rt.block_on(async {
        let h = stackpilot::sim::start(stackpilot::sim::SimConfig { speed: 60.0, ..Default::default() }).await.unwrap();
        reqwest::Client::new()
            .post(format!("{}/_sim/seed", h.base_url))
            .header("x-sim-token", &h.control_token)
            .json(&serde_json::json!({"count": 10000, "prefix": "bench"}))
            .send()
            .await
            .unwrap();
        let client = Client::new(cloud(&h.base_url)).unwrap();
        let all = client.compute().list_servers(&ServerQuery::default()).await.unwrap();
        assert_eq!(all.len(), 10_000);
        // One change after the seeding: an incremental refresh returns just it.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        client.compute().delete_server(&all[0].id).await.unwrap();
        let changed = client.compute().list_servers(&ServerQuery::default()).await.unwrap();
        let mark = changed.iter().filter_map(|s| s.updated).max();
        (h, client, mark)
    });
    let full = rt.block_on(counting(client.compute().list_servers(&ServerQuery::default())));
    let inc = rt
        .block_on(counting(client.compute().list_servers(&ServerQuery { changes_since: mark, ..Default::default() })));
    println!(
        "requests per refresh of 10,000 servers: full {} ({} servers), incremental {} ({} servers)",
        full.1,
        full.0.as_ref().map(|v| v.len()).unwrap_or(0),
        inc.1,
        inc.0.as_ref().map(|v| v.len()).unwrap_or(0)
    );
    let mut g = c.benchmark_group("refresh 10k servers");
    g.sample_size(10);
    g.bench_function("full (detail, every page)", |b| {
        b.iter(|| rt.block_on(client.compute().list_servers(&ServerQuery::default())).unwrap().len())
    });
    g.bench_function("incremental (changes-since)", |b| {
        b.iter(|| {
            rt.block_on(client.compute().list_servers(&ServerQuery { changes_since: mark, ..Default::default() }))
                .unwrap()
                .len()
        })
    });
    g.finish();
    drop(h);
}

criterion_group!(benches, refresh);
criterion_main!(benches);
