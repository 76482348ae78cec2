//! One conformance suite, two clouds. The cloud is chosen by
//! `STACKPILOT_CONFORMANCE_CLOUD`: `sim` (the default; each case starts its own
//! simulator) or `real` (the upstream services started by
//! ../shared/tools/openstack/os-stack.sh on 127.0.0.1; `OS_AUTH_URL`,
//! `OS_USERNAME`, `OS_PASSWORD`, `OS_PROJECT_NAME` override the defaults). The same
//! assertions run against both; where the real service and the simulator disagree,
//! the simulator is fixed.
//!
//! Cases that cannot run on one side print `NOT RUN on <side>` with the reason.
//! The list is short:
//! - real: the cloud-init marker in the console log (the fake virt driver has no
//!   guest; its console is a fixed text). The console output call itself runs on both.
//!
//! Shape parity: `shape_parity` records the JSON key paths of every endpoint the
//! client uses, compares them with the recording of the other cloud
//! (`tests/conformance/real-shapes.json`, refreshed from the real cloud with
//! `STACKPILOT_RECORD_SHAPES=1`) and writes the per-endpoint table to
//! `<target tmp>/conformance/parity.md`.

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
use common::*;
use serde_json::{json, Value};
use stackpilot::cloud::compute::{CreateServer, NetworkSpec, RebootKind, ServerAction, ServerQuery};
use stackpilot::cloud::volume::CreateBackup;
use stackpilot::cloud::{Client, ErrorKind, Req};
use stackpilot::config::clouds::{AuthMethod, DomainRef, Interface, Scope, UserRef};
use stackpilot::config::{CloudConfig, Secret};
use stackpilot::domain::{Server, ServerStatus};
use stackpilot::sim::{SimConfig, SimHandle};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Sim,
    Real,
}

impl Side {
    fn get() -> Side {
        match std::env::var("STACKPILOT_CONFORMANCE_CLOUD").as_deref() {
            Ok("real") => Side::Real,
            _ => Side::Sim,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Side::Sim => "sim",
            Side::Real => "real",
        }
    }
}

/// Names and ids every case uses.
#[derive(Debug, Clone)]
struct Fixture {
    flavor_id: String,
    image_id: String,
    network_id: String,
    project_id: String,
    user_id: String,
    /// Attributes the cloud's Gnocchi `instance` type requires beyond the
    /// display_name, flavor_id and host the cases write (a used cloud's type may
    /// have more), with values of their type.
    instance_extra: serde_json::Map<String, Value>,
    /// Why the Gnocchi cases cannot run on this cloud, if they cannot.
    metrics_blocked: Option<String>,
}

struct Cloud {
    side: Side,
    cfg: CloudConfig,
    client: Client,
    fx: Fixture,
    tag: String,
    _sim: Option<SimHandle>,
    _guard: tokio::sync::MutexGuard<'static, ()>,
}

fn not_run(side: Side, case: &str, why: &str) {
    println!("NOT RUN on {}: {case}: {why}", side.name());
}

async fn find_or_create(
    c: &Client,
    service: &str,
    list_path: &str,
    key: &str,
    name: &str,
    create: Req,
) -> Result<String, String> {
    let (v, _): (Value, _) = c.session.json(service, Req::get(list_path)).await.map_err(|e| e.to_string())?;
    if let Some(id) =
        v[key].as_array().and_then(|a| a.iter().find(|x| x["name"] == name)).and_then(|x| x["id"].as_str())
    {
        return Ok(id.to_string());
    }
    let (v, _): (Value, _) = c.session.json(service, create).await.map_err(|e| format!("cannot create {name}: {e}"))?;
    let obj = v.as_object().and_then(|o| o.values().next()).cloned().unwrap_or(v.clone());
    obj["id"].as_str().or(v["id"].as_str()).map(String::from).ok_or_else(|| format!("{name} was created without an id"))
}

/// The network the cases boot on: `private` when the cloud has it; else a flat
/// network on physnet1 (a fresh cloud); else a VLAN on physnet1 (its flat
/// network is someone else's); else that network, when this project may use
/// it; else a tenant network of the cloud's default type. Why not, when none of
/// these can be had.
async fn network_for_cases(c: &Client, project_id: &str) -> Result<String, String> {
    let list = |path: &'static str| async move {
        let (v, _): (Value, _) = c.session.json("network", Req::get(path)).await.map_err(|e| e.to_string())?;
        Ok::<Vec<Value>, String>(v["networks"].as_array().cloned().unwrap_or_default())
    };
    let id = |n: &Value| n["id"].as_str().map(String::from);
    let usable = |n: &&Value| n["shared"] == true || n["project_id"] == project_id;
    if let Some(n) = list("/networks?name=private").await?.iter().find(usable) {
        return id(n).ok_or_else(|| "the `private` network has no id".into());
    }
    let create = |body: Value| async move {
        let r = c.session.json::<Value>("network", Req::post("/networks", json!({ "network": body }))).await;
        r.map_err(|e| e.to_string()).and_then(|(v, _)| id(&v["network"]).ok_or_else(|| "a network without id".into()))
    };
    let flat = json!({"name": "private", "provider:network_type": "flat", "provider:physical_network": "physnet1"});
    let flat_err = match create(flat).await {
        Ok(id) => return Ok(id),
        Err(e) => e,
    };
    let vlan = json!({"name": "private", "provider:network_type": "vlan", "provider:physical_network": "physnet1"});
    let vlan_err = match create(vlan).await {
        Ok(id) => {
            println!("conformance: a flat network on physnet1 is taken ({flat_err}); `private` is a VLAN on it");
            return Ok(id);
        }
        Err(e) => e,
    };
    let holders = list("/networks?provider:physical_network=physnet1").await?;
    if let Some(n) = holders.iter().find(usable) {
        println!(
            "conformance: physnet1 is taken ({flat_err}; {vlan_err}); the cases boot on its network {}",
            n["name"]
        );
        return id(n).ok_or_else(|| "a network without id".into());
    }
    create(json!({"name": "private"})).await.map_err(|e| {
        format!("no network to boot on: a flat one on physnet1: {flat_err}; a VLAN: {vlan_err}; a tenant one: {e}")
    })
}

/// The Gnocchi resource types the cases write, created when missing. A type the
/// cloud already has is used as it is: the attributes it requires beyond the
/// cases' own get values of their type; one that lacks the cases' attributes
/// makes the Gnocchi cases NOT RUN (never changed: it belongs to the cloud).
async fn resource_types(c: &Client) -> Result<serde_json::Map<String, Value>, String> {
    const OURS: [&str; 3] = ["display_name", "flavor_id", "host"];
    let mut extra = serde_json::Map::new();
    for (name, attrs) in [
        (
            "instance",
            json!({"display_name": {"type": "string", "required": false}, "flavor_id": {"type": "string", "required": false}, "host": {"type": "string", "required": false}}),
        ),
        (
            "instance_network_interface",
            json!({"instance_id": {"type": "uuid", "required": true}, "name": {"type": "string", "required": false}}),
        ),
    ] {
        let existing = c.session.json::<Value>("metric", Req::get(format!("/resource_type/{name}"))).await;
        let defined = match existing {
            Ok((v, _)) => v["attributes"].as_object().cloned().unwrap_or_default(),
            Err(e) if e.is(ErrorKind::NotFound) => {
                let body = json!({"name": name, "attributes": attrs});
                c.session.request("metric", Req::post("/resource_type", body)).await.map_err(|e| e.to_string())?;
                continue;
            }
            Err(e) => return Err(format!("cannot read the `{name}` resource type: {e}")),
        };
        if name != "instance" {
            continue;
        }
        if let Some(missing) = OURS.iter().find(|a| !defined.contains_key(**a)) {
            return Err(format!("the cloud's Gnocchi `instance` type has no `{missing}` attribute"));
        }
        for (attr, def) in defined.iter().filter(|(a, d)| d["required"] == true && !OURS.contains(&a.as_str())) {
            let v = match def["type"].as_str() {
                Some("uuid") => json!(uuid::Uuid::new_v4().to_string()),
                Some("number") => def.get("min").filter(|m| m.is_number()).cloned().unwrap_or(json!(0)),
                Some("bool") => json!(false),
                Some("datetime") => json!(chrono::Utc::now().to_rfc3339()),
                _ => json!("conformance"),
            };
            extra.insert(attr.clone(), v);
        }
    }
    Ok(extra)
}

/// Make sure the cloud has what the cases need (the simulator's world has it),
/// without assuming it owns the cloud: what exists is reused. Why the cases
/// cannot run, when a precondition cannot be met.
async fn fixture(c: &Client) -> Result<Fixture, String> {
    let e = |what: &'static str| move |err: stackpilot::cloud::ApiError| format!("{what}: {err}");
    let flavor_id = find_or_create(
        c,
        "compute",
        "/flavors/detail?is_public=None",
        "flavors",
        "m1.tiny",
        Req::post("/flavors", json!({"flavor": {"name": "m1.tiny", "ram": 512, "vcpus": 1, "disk": 1}})),
    )
    .await?;
    let image_id = {
        let (v, _): (Value, _) =
            c.session.json("image", Req::get("/images?name=cirros-0.6.2-x86_64-disk")).await.map_err(e("images"))?;
        match v["images"]
            .as_array()
            .and_then(|a| a.iter().find(|i| i["status"] == "active"))
            .and_then(|i| i["id"].as_str())
        {
            Some(id) => id.to_string(),
            None => {
                let (v, _): (Value, _) = c
                    .session
                    .json("image", Req::post("/images", json!({"name": "cirros-0.6.2-x86_64-disk", "disk_format": "raw", "container_format": "bare", "visibility": "public"})))
                    .await
                    .map_err(e("create the image"))?;
                let id = v["id"].as_str().ok_or("an image without id")?.to_string();
                let tok = c.session.token().await.map_err(e("token"))?;
                let url =
                    format!("{}/images/{id}/file", c.session.endpoint("image").await.map_err(e("image endpoint"))?);
                let r = c
                    .session
                    .http()
                    .put(url)
                    .header("X-Auth-Token", tok.id.expose())
                    .header("Content-Type", "application/octet-stream")
                    .body(vec![0u8; 1 << 20])
                    .send()
                    .await
                    .map_err(|err| format!("image upload: {err}"))?;
                if !r.status().is_success() {
                    return Err(format!("image upload: {}", r.status()));
                }
                id
            }
        }
    };
    let tok = c.session.token().await.map_err(e("token"))?;
    let project_id = tok.project_id.clone().ok_or("the token has no project")?;
    let network_id = network_for_cases(c, &project_id).await?;
    let (net, _): (Value, _) =
        c.session.json("network", Req::get(format!("/networks/{network_id}"))).await.map_err(e("network"))?;
    let (subnets, _): (Value, _) =
        c.session.json("network", Req::get(format!("/subnets?network_id={network_id}"))).await.map_err(e("subnets"))?;
    if subnets["subnets"].as_array().is_none_or(|a| a.is_empty()) {
        // Only on a network of this project: someone else's is never changed.
        if net["network"]["project_id"] != project_id.as_str() {
            return Err(format!(
                "the network {} has no subnet and is not this project's to add one",
                net["network"]["name"]
            ));
        }
        c.session
            .request("network", Req::post("/subnets", json!({"subnet": {"name": "private-subnet", "network_id": network_id, "ip_version": 4, "cidr": "10.0.0.0/24", "enable_dhcp": false}})))
            .await
            .map_err(e("create a subnet"))?;
    }
    // Gnocchi: the resource types and the archive policy Ceilometer would create.
    let (instance_extra, mut metrics_blocked) = match resource_types(c).await {
        Ok(extra) => (extra, None),
        Err(why) => (serde_json::Map::new(), Some(why)),
    };
    if metrics_blocked.is_none() && c.metric().get_archive_policy("stackpilot-rate-60s").await.is_err() {
        if let Err(err) =
            c.metric().create_archive_policy("stackpilot-rate-60s", &["mean", "rate:mean"], 60, 1440).await
        {
            metrics_blocked = Some(format!("cannot create the archive policy stackpilot-rate-60s: {err}"));
        }
    }
    // Room for the cases (a real cloud starts at 10 instances).
    let q = c.compute().quota_set(&project_id).await.map_err(e("quota"))?;
    let mut raise: BTreeMap<String, i64> = BTreeMap::new();
    for (k, want) in [("instances", 40), ("cores", 80), ("ram", 81920)] {
        if q.limit(k).is_some_and(|l| l >= 0 && l < want) {
            raise.insert(k.to_string(), want);
        }
    }
    if !raise.is_empty() {
        c.compute().update_quota(&project_id, &raise).await.map_err(e("raise the quota"))?;
    }
    cleanup_leftovers(c).await;
    let user_id = tok.user_id.clone().ok_or("the token has no user")?;
    Ok(Fixture { flavor_id, image_id, network_id, project_id, user_id, instance_extra, metrics_blocked })
}

/// Remove what interrupted runs left behind: everything named `sp-conf-*` belongs
/// to this suite (cases run one at a time, so none of it is in use).
async fn cleanup_leftovers(c: &Client) {
    let mine = |n: Option<&str>| n.is_some_and(|n| n.starts_with("sp-conf-"));
    for s in c.compute().list_servers(&ServerQuery::default()).await.unwrap_or_default() {
        if mine(s.name.as_deref()) {
            let _ = c.compute().delete_server(&s.id).await;
        }
    }
    // Backups: incrementals before the fulls they depend on.
    for _ in 0..3 {
        let backups = c.volume().list_backups().await.unwrap_or_default();
        let mut left = false;
        for b in backups.iter().filter(|b| mine(b.name.as_deref())) {
            left = true;
            if !b.has_dependent_backups && b.status != "deleting" {
                let _ = c.volume().delete_backup(&b.id).await;
            }
        }
        if !left {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    for v in c.volume().list_volumes().await.unwrap_or_default() {
        if mine(v.name.as_deref()) && v.status == "available" {
            let _ = c.volume().delete_volume(&v.id).await;
        }
    }
}

/// The cloud for one case, or `None` (the case printed NOT RUN and why) when the
/// cloud lacks what the cases need and it cannot be made.
async fn cloud(case: &str) -> Option<Cloud> {
    let guard = SERIAL.lock().await;
    let side = Side::get();
    let (cfg, sim) = match side {
        Side::Sim => {
            let h = common::sim(SimConfig { speed: 10.0, boot_secs: Some(10.0), ..Default::default() }).await;
            (admin_cloud(&h), Some(h))
        }
        Side::Real => (real_cloud(), None),
    };
    let client = Client::with_timeout(cfg.clone(), Duration::from_secs(60)).unwrap();
    if side == Side::Real {
        // The fake compute service must be up before servers can boot.
        eventually(180, "nova-compute up", || {
            let c = client.clone();
            async move {
                let (v, _): (Value, _) =
                    c.session.json("compute", Req::get("/os-services?binary=nova-compute")).await.ok()?;
                v["services"].as_array()?.iter().any(|s| s["state"] == "up").then_some(())
            }
        })
        .await;
    }
    let fx = match fixture(&client).await {
        Ok(fx) => fx,
        Err(why) => {
            not_run(side, case, &why);
            return None;
        }
    };
    let tag = format!("sp-conf-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    Some(Cloud { side, cfg, client, fx, tag, _sim: sim, _guard: guard })
}

impl Cloud {
    /// An `instance` resource body with what the cloud's type also requires.
    fn instance(&self, mut body: Value) -> Value {
        if let Some(o) = body.as_object_mut() {
            for (k, v) in &self.fx.instance_extra {
                o.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        body
    }

    fn spec(&self, name: &str) -> CreateServer {
        CreateServer {
            name: format!("{}-{name}", self.tag),
            image_id: Some(self.fx.image_id.clone()),
            flavor_id: self.fx.flavor_id.clone(),
            networks: vec![NetworkSpec::Uuid(self.fx.network_id.clone())],
            user_data: Some("#cloud-config\nruncmd: [echo conformance]\n".into()),
            metadata: [
                ("stackpilot:app".to_string(), self.tag.clone()),
                ("stackpilot:slot".to_string(), "0".to_string()),
            ]
            .into(),
            tags: vec![self.tag.clone(), format!("stackpilot-op-{name}")],
            ..Default::default()
        }
    }

    async fn wait_server(&self, id: &str, want: ServerStatus) -> Server {
        let c = self.client.clone();
        eventually(180, &format!("server {id} {want}"), || {
            let c = c.clone();
            let want = want.clone();
            let id = id.to_string();
            async move {
                let s = c.compute().get_server(&id).await.ok()?;
                assert_ne!(s.status, ServerStatus::Error, "server went to ERROR: {:?}", s.fault);
                (s.status == want && s.task_state.is_none()).then_some(s)
            }
        })
        .await
    }

    async fn delete_and_wait(&self, id: &str) {
        let _ = self.client.compute().delete_server(id).await;
        let c = self.client.clone();
        eventually(180, "server gone", || {
            let c = c.clone();
            let id = id.to_string();
            async move { matches!(c.compute().get_server(&id).await, Err(e) if e.kind == ErrorKind::NotFound).then_some(()) }
        })
        .await;
    }

    async fn cleanup_servers(&self) {
        let q = ServerQuery { tags: vec![self.tag.clone()], ..Default::default() };
        for s in self.client.compute().list_servers(&q).await.unwrap_or_default() {
            self.delete_and_wait(&s.id).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_password_application_credential_token_and_bad_password() {
    let Some(cl) = cloud("auth_password_application_credential_token_and_bad_password").await else { return };
    // Password: a scoped token with a catalog.
    let tok = cl.client.session.token().await.unwrap();
    assert!(tok.expires_at.is_some() && !tok.catalog.is_empty());
    assert!(tok.roles.iter().any(|r| r == "admin"));

    // Application credential, created through Keystone, by id and by name.
    let (ac, _): (Value, _) = cl
        .client
        .session
        .json(
            "identity",
            Req::post(
                format!("/users/{}/application_credentials", cl.fx.user_id),
                json!({"application_credential": {"name": cl.tag, "secret": "conformance-secret"}}),
            ),
        )
        .await
        .unwrap();
    let ac_id = ac["application_credential"]["id"].as_str().unwrap().to_string();
    for by_name in [false, true] {
        let mut cfg = cl.cfg.clone();
        cfg.auth = AuthMethod::ApplicationCredential {
            id: (!by_name).then(|| ac_id.clone()),
            name: by_name.then(|| cl.tag.clone()),
            user: by_name.then(|| UserRef {
                id: Some(cl.fx.user_id.clone()),
                name: None,
                domain: DomainRef::default(),
            }),
            secret: Secret::new("conformance-secret"),
        };
        let c = Client::new(cfg).unwrap();
        assert!(!c.compute().list_flavors().await.unwrap().is_empty(), "app credential by name={by_name}");
        assert_eq!(
            c.session.current_token().unwrap().project_id,
            Some(cl.fx.project_id.clone()),
            "bound to its project"
        );
    }
    cl.client
        .session
        .request("identity", Req::delete(format!("/users/{}/application_credentials/{ac_id}", cl.fx.user_id)))
        .await
        .unwrap();

    // Token method.
    let mut cfg = cl.cfg.clone();
    cfg.auth = AuthMethod::Token {
        token: Secret::new(tok.id.expose()),
        scope: Scope::Project { id: Some(cl.fx.project_id.clone()), name: None, domain: DomainRef::default() },
    };
    assert!(!Client::new(cfg).unwrap().image().list_images().await.unwrap().is_empty());

    // Bad password.
    let mut cfg = cl.cfg.clone();
    if let AuthMethod::Password { password, .. } = &mut cfg.auth {
        *password = Secret::new("definitely-wrong");
    }
    let e = Client::new(cfg).unwrap().compute().list_flavors().await.unwrap_err();
    assert_eq!((e.kind, e.status, e.service.as_str()), (ErrorKind::Unauthorized, Some(401), "identity"));
    assert!(e.request_id.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_endpoint_selection() {
    let Some(cl) = cloud("catalog_endpoint_selection").await else { return };
    for svc in ["compute", "image", "network", "block-storage", "volumev3", "metric", "identity"] {
        let ep = cl.client.session.endpoint(svc).await.unwrap_or_else(|e| panic!("{svc}: {e}"));
        let want = match svc {
            "compute" => "/v2.1",
            "image" => "/v2",
            "network" => "/v2.0",
            "metric" => "/v1",
            "identity" => "/v3",
            _ => "/v3/",
        };
        assert!(ep.path().contains(want), "{svc}: {ep}");
    }
    let mut cfg = cl.cfg.clone();
    cfg.interface = Interface::Internal;
    assert!(!Client::new(cfg.clone()).unwrap().compute().list_flavors().await.unwrap().is_empty());
    cfg.region = Some("NoSuchRegion".into());
    let e = Client::new(cfg).unwrap().compute().list_flavors().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::EndpointNotFound);
    assert!(e.message.contains("internal@RegionOne"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flavors_images_networks() {
    let Some(cl) = cloud("flavors_images_networks").await else { return };
    let f = cl.client.compute().list_flavors().await.unwrap();
    let tiny = f.iter().find(|x| x.id == cl.fx.flavor_id).unwrap();
    assert_eq!((tiny.name.as_str(), tiny.vcpus, tiny.ram_mb, tiny.disk_gb), ("m1.tiny", 1, 512, 1));
    let i = cl.client.image().list_images().await.unwrap();
    let img = i.iter().find(|x| x.id == cl.fx.image_id).unwrap();
    assert_eq!(img.status, "active");
    assert_eq!(
        cl.client.image().get_image(&cl.fx.image_id).await.unwrap().name.as_deref(),
        Some("cirros-0.6.2-x86_64-disk")
    );
    let n = cl.client.network().list_networks().await.unwrap();
    let net = n.iter().find(|x| x.id == cl.fx.network_id).unwrap();
    assert_eq!(net.name, "private");
    assert!(!net.subnets.is_empty());
    let limits = cl.client.compute().limits().await.unwrap();
    assert!(limits.max_instances.is_some());
    // Hosts, as recovery reads them (the fixture's user is an admin).
    let svcs = cl.client.compute().list_compute_services().await.unwrap();
    assert!(!svcs.is_empty() && svcs.iter().all(|s| s.binary == "nova-compute"), "{svcs:?}");
    assert!(svcs.iter().any(|s| !s.is_down()), "{svcs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_lifecycle_with_metadata_tags_and_user_data() {
    let Some(cl) = cloud("server_lifecycle_with_metadata_tags_and_user_data").await else { return };
    let c = cl.client.compute();
    let created = c.create_server(&cl.spec("life")).await.unwrap();
    let s = cl.wait_server(&created.id, ServerStatus::Active).await;
    assert_eq!(s.display_name(), format!("{}-life", cl.tag));
    assert_eq!(s.app(), Some(cl.tag.as_str()));
    assert_eq!(s.meta("stackpilot:slot"), Some("0"));
    let mut tags = s.tags.clone();
    tags.sort();
    let mut want = vec![cl.tag.clone(), "stackpilot-op-life".to_string()];
    want.sort();
    assert_eq!(tags, want);
    assert_eq!(s.flavor.vcpus, Some(1));
    assert_eq!(s.image_id.as_deref(), Some(cl.fx.image_id.as_str()));
    assert!(s.launched_at.is_some() && s.created.is_some());
    assert_eq!(s.power_state, Some(1));
    assert!(!s.addresses.is_empty() && s.addresses[0].network == "private", "{:?}", s.addresses);

    let out = c.console_output(&created.id, Some(10)).await.unwrap();
    assert!(!out.is_empty());
    match cl.side {
        Side::Sim => assert!(eventually(60, "cloud-init marker", || {
            let c = cl.client.clone();
            let id = created.id.clone();
            async move {
                c.compute().console_output(&id, None).await.ok().filter(|o| o.contains("Cloud-init v. 23.4 finished"))
            }
        })
        .await
        .contains("finished")),
        Side::Real => not_run(cl.side, "cloud-init marker in the console log", "the fake virt driver has no guest"),
    }

    c.action(&created.id, &ServerAction::Stop).await.unwrap();
    let s = cl.wait_server(&created.id, ServerStatus::Shutoff).await;
    assert_eq!(s.power_state, Some(4));
    let e = c.action(&created.id, &ServerAction::Stop).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
    assert!(e.message.contains("while it is in vm_state stopped"), "{e}");
    c.action(&created.id, &ServerAction::Start).await.unwrap();
    cl.wait_server(&created.id, ServerStatus::Active).await;
    c.action(&created.id, &ServerAction::Reboot(RebootKind::Soft)).await.unwrap();
    cl.wait_server(&created.id, ServerStatus::Active).await;
    c.action(&created.id, &ServerAction::Reboot(RebootKind::Hard)).await.unwrap();
    cl.wait_server(&created.id, ServerStatus::Active).await;

    cl.delete_and_wait(&created.id).await;
    let e = c.get_server(&created.id).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert!(e.request_id.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_pages_changes_since_and_tag_filter() {
    let Some(cl) = cloud("server_pages_changes_since_and_tag_filter").await else { return };
    let c = cl.client.compute();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(c.create_server(&cl.spec(&format!("page{i}"))).await.unwrap().id);
    }
    let mut servers = Vec::new();
    for id in &ids {
        servers.push(cl.wait_server(id, ServerStatus::Active).await);
    }
    // Several pages: 5 servers of this run, 2 per page.
    let q = ServerQuery { tags: vec![cl.tag.clone()], page_size: Some(2), ..Default::default() };
    let listed = c.list_servers(&q).await.unwrap();
    let got: BTreeSet<String> = listed.iter().map(|s| s.id.clone()).collect();
    assert_eq!(got, ids.iter().cloned().collect::<BTreeSet<_>>());
    assert_eq!(listed.len(), 5, "no duplicates across pages");

    // Tag filter: exactly the one with this op tag.
    let one = c
        .list_servers(&ServerQuery { tags: vec![cl.tag.clone(), "stackpilot-op-page3".into()], ..Default::default() })
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].id, ids[3]);
    let none = c
        .list_servers(&ServerQuery { tags: vec!["stackpilot-op-no-such-thing".into()], ..Default::default() })
        .await
        .unwrap();
    assert!(none.is_empty());

    // changes-since: after the cloud's own latest update, only what changes next.
    let mark = servers.iter().filter_map(|s| s.updated).max().unwrap() + chrono::Duration::seconds(1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.action(&ids[0], &ServerAction::Stop).await.unwrap();
    cl.wait_server(&ids[0], ServerStatus::Shutoff).await;
    cl.delete_and_wait(&ids[1]).await;
    let changed = c.list_servers(&ServerQuery { changes_since: Some(mark), ..Default::default() }).await.unwrap();
    let by_id: BTreeMap<&str, &Server> = changed.iter().map(|s| (s.id.as_str(), s)).collect();
    assert!(by_id.contains_key(ids[0].as_str()), "the stopped one");
    let gone = by_id.get(ids[1].as_str()).expect("the deleted one");
    assert_eq!(gone.status, ServerStatus::Deleted);
    assert!(gone.tags.is_empty(), "a deleted record keeps no tags: {:?}", gone.tags);
    if !gone.metadata.is_empty() || !gone.addresses.is_empty() {
        // Seen once on the real cloud right after the delete; usually both are empty.
        println!("note: deleted record still showed metadata {:?} / addresses {:?}", gone.metadata, gone.addresses);
    }
    assert!(!by_id.contains_key(ids[2].as_str()), "untouched servers are not returned");
    // With a tag filter the deleted one no longer matches: its tags went with it.
    let tagged = c
        .list_servers(&ServerQuery { changes_since: Some(mark), tags: vec![cl.tag.clone()], ..Default::default() })
        .await
        .unwrap();
    assert_eq!(tagged.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), vec![ids[0].as_str()]);
    cl.cleanup_servers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lowered_quota_makes_create_quota_exceeded() {
    let Some(cl) = cloud("lowered_quota_makes_create_quota_exceeded").await else { return };
    let c = cl.client.compute();
    let before = c.quota_set(&cl.fx.project_id).await.unwrap();
    let original = before.limit("instances").unwrap();
    let used = c.limits().await.unwrap().instances_used;
    c.update_quota(&cl.fx.project_id, &[("instances".to_string(), used)].into()).await.unwrap();
    let res = c.create_server(&cl.spec("overquota")).await;
    c.update_quota(&cl.fx.project_id, &[("instances".to_string(), original)].into()).await.unwrap();
    let e = res.unwrap_err();
    assert_eq!((e.kind, e.status), (ErrorKind::QuotaExceeded, Some(403)), "{e}");
    assert_eq!(
        e.message,
        format!("Quota exceeded for instances: Requested 1, but already used {used} of {used} instances")
    );
    assert!(e.request_id.is_some());
    assert_eq!(c.quota_set(&cl.fx.project_id).await.unwrap().limit("instances"), Some(original));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_backups_restore_and_refused_parent_delete() {
    let Some(cl) = cloud("volumes_backups_restore_and_refused_parent_delete").await else { return };
    let v = cl.client.volume();
    let meta: BTreeMap<String, String> = [("stackpilot:policy".to_string(), cl.tag.clone())].into();
    let vol = v.create_volume(1, &format!("{}-vol", cl.tag), &meta).await.unwrap();
    let wait_vol = |id: String, want: &'static str| {
        let c = cl.client.clone();
        async move {
            eventually(120, &format!("volume {want}"), || {
                let c = c.clone();
                let id = id.clone();
                async move { c.volume().get_volume(&id).await.ok().filter(|x| x.status == want) }
            })
            .await
        }
    };
    let wait_backup = |id: String| {
        let c = cl.client.clone();
        async move {
            eventually(120, "backup available", || {
                let c = c.clone();
                let id = id.clone();
                async move {
                    let b = c.volume().get_backup(&id).await.ok()?;
                    assert_ne!(b.status, "error", "backup failed: {:?}", b.fail_reason);
                    (b.status == "available").then_some(b)
                }
            })
            .await
        }
    };
    let got = wait_vol(vol.id.clone(), "available").await;
    assert_eq!(got.metadata.get("stackpilot:policy"), Some(&cl.tag));
    assert!(v.list_volumes().await.unwrap().iter().any(|x| x.id == vol.id));

    let bmeta: BTreeMap<String, String> = [("stackpilot:run".to_string(), format!("{}:1", cl.tag))].into();
    let (full, rid) = v
        .create_backup(&CreateBackup {
            volume_id: vol.id.clone(),
            name: Some(format!("{}-full", cl.tag)),
            metadata: bmeta,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(rid.is_some());
    let fb = wait_backup(full.clone()).await;
    assert!(!fb.is_incremental);
    assert_eq!(fb.metadata.get("stackpilot:run"), Some(&format!("{}:1", cl.tag)));
    wait_vol(vol.id.clone(), "available").await;
    let (inc, _) = v
        .create_backup(&CreateBackup {
            volume_id: vol.id.clone(),
            name: Some(format!("{}-inc", cl.tag)),
            incremental: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let ib = wait_backup(inc.clone()).await;
    assert!(ib.is_incremental);
    let listed = v.list_backups().await.unwrap();
    assert!(listed.iter().any(|b| b.id == full && b.has_dependent_backups));
    assert!(listed.iter().any(|b| b.id == inc && b.is_incremental));

    let e = v.delete_backup(&full).await.unwrap_err();
    assert_eq!((e.kind, e.status), (ErrorKind::BadRequest, Some(400)));
    assert_eq!(e.message, "Invalid backup: Incremental backups exist for this backup.");

    let r = v.restore_backup(&inc, None, Some(&format!("{}-restored", cl.tag))).await.unwrap();
    assert_eq!(r.backup_id, inc);
    let restored = wait_vol(r.volume_id.clone(), "available").await;
    assert_eq!(restored.size_gb, 1);
    wait_backup(inc.clone()).await;

    v.delete_backup(&inc).await.unwrap();
    eventually(120, "incremental gone", || {
        let c = cl.client.clone();
        let id = inc.clone();
        async move { c.volume().get_backup(&id).await.err().filter(|e| e.kind == ErrorKind::NotFound) }
    })
    .await;
    v.delete_backup(&full).await.unwrap();
    eventually(120, "full gone", || {
        let c = cl.client.clone();
        let id = full.clone();
        async move { c.volume().get_backup(&id).await.err().filter(|e| e.kind == ErrorKind::NotFound) }
    })
    .await;
    v.delete_volume(&r.volume_id).await.unwrap();
    v.delete_volume(&vol.id).await.unwrap();
}

/// One raw call: status and JSON body (`null` when there is none), for the
/// calls the client does not make and for error bodies.
async fn raw(
    cl: &Cloud,
    service: &str,
    method: reqwest::Method,
    path: &str,
    ctype: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let s = &cl.client.session;
    let tok = s.token().await.unwrap();
    let url = stackpilot::cloud::session::join_path(&s.endpoint(service).await.unwrap(), path);
    // A GET is sent again when a kept-alive connection was reset under it (the
    // real Glance closes its connections after an upload).
    let mut tries = if method == reqwest::Method::GET { 3 } else { 1 };
    let resp = loop {
        let mut r = s.http().request(method.clone(), url.clone()).header("x-auth-token", tok.id.expose());
        r = r.header("accept", "application/json");
        if !body.is_empty() {
            r = r.header("content-type", ctype).body(body.clone());
        }
        tries -= 1;
        match r.send().await {
            Ok(resp) => break resp,
            Err(e) if tries > 0 => println!("{method} {path}: {e}; sent again"),
            Err(e) => panic!("{method} {path}: {e}"),
        }
    };
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn neutron(cl: &Cloud, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let b = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    raw(cl, "network", method, path, "application/json", b).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_subnet_port_lifecycle_and_network_in_use() {
    use reqwest::Method;
    let Some(cl) = cloud("network_subnet_port_lifecycle_and_network_in_use").await else { return };
    let body = json!({"network": {"name": format!("{}-net", cl.tag), "provider:network_type": "vlan", "provider:physical_network": "physnet1"}});
    let (st, n) = neutron(&cl, Method::POST, "/networks", Some(body)).await;
    assert_eq!(st, 201, "{n}");
    let net = n["network"]["id"].as_str().unwrap().to_string();
    assert_eq!(n["network"]["provider:network_type"], "vlan");
    assert!(n["network"]["provider:segmentation_id"].as_u64().is_some_and(|v| (1..=4094).contains(&v)), "{n}");
    assert_eq!(n["network"]["subnets"], json!([]));
    let body = json!({"subnet": {"name": format!("{}-subnet", cl.tag), "network_id": net, "ip_version": 4, "cidr": "10.199.9.0/24"}});
    let (st, sn) = neutron(&cl, Method::POST, "/subnets", Some(body)).await;
    assert_eq!(st, 201, "{sn}");
    let subnet = sn["subnet"]["id"].as_str().unwrap().to_string();
    assert_eq!(sn["subnet"]["gateway_ip"], "10.199.9.1");
    assert_eq!(sn["subnet"]["allocation_pools"], json!([{"start": "10.199.9.2", "end": "10.199.9.254"}]));
    let (_, shown) = neutron(&cl, Method::GET, &format!("/networks/{net}"), None).await;
    assert_eq!(shown["network"]["subnets"], json!([subnet]));
    // A port gets an address of the subnet's pool.
    let body = json!({"port": {"name": format!("{}-port", cl.tag), "network_id": net}});
    let (st, p) = neutron(&cl, Method::POST, "/ports", Some(body)).await;
    assert_eq!(st, 201, "{p}");
    let port = p["port"]["id"].as_str().unwrap().to_string();
    let fixed = &p["port"]["fixed_ips"][0];
    assert_eq!(fixed["subnet_id"], subnet.as_str());
    let last: u32 = fixed["ip_address"].as_str().unwrap().strip_prefix("10.199.9.").unwrap().parse().unwrap();
    assert!((2..=254).contains(&last), "{fixed}");
    let (st, up) =
        neutron(&cl, Method::PUT, &format!("/ports/{port}"), Some(json!({"port": {"description": "conformance"}})))
            .await;
    assert_eq!((st, &up["port"]["description"]), (200, &json!("conformance")), "{up}");
    let (_, again) = neutron(&cl, Method::GET, &format!("/ports?name={}-port", cl.tag), None).await;
    assert_eq!(again["ports"][0]["description"], "conformance");
    // The port holds the network and its subnet.
    let (st, e) = neutron(&cl, Method::DELETE, &format!("/networks/{net}"), None).await;
    assert_eq!((st, &e["NeutronError"]["type"]), (409, &json!("NetworkInUse")), "{e}");
    let (st, e) = neutron(&cl, Method::DELETE, &format!("/subnets/{subnet}"), None).await;
    assert_eq!((st, &e["NeutronError"]["type"]), (409, &json!("SubnetInUse")), "{e}");
    assert_eq!(neutron(&cl, Method::DELETE, &format!("/ports/{port}"), None).await.0, 204);
    let (st, e) = neutron(&cl, Method::GET, &format!("/ports/{port}"), None).await;
    assert_eq!((st, &e["NeutronError"]["type"]), (404, &json!("PortNotFound")), "{e}");
    // Without ports the network goes, and its subnet with it.
    assert_eq!(neutron(&cl, Method::DELETE, &format!("/networks/{net}"), None).await.0, 204);
    let (st, e) = neutron(&cl, Method::GET, &format!("/networks/{net}"), None).await;
    assert_eq!((st, &e["NeutronError"]["type"]), (404, &json!("NetworkNotFound")), "{e}");
    let (st, e) = neutron(&cl, Method::GET, &format!("/subnets/{subnet}"), None).await;
    assert_eq!((st, &e["NeutronError"]["type"]), (404, &json!("SubnetNotFound")), "{e}");
}

/// The rules of one group, as `security group rule list GROUP` asks for them.
async fn rule_ids(cl: &Cloud, sg: &str) -> Vec<String> {
    let (_, l) =
        neutron(cl, reqwest::Method::GET, &format!("/security-group-rules?security_group_id={sg}"), None).await;
    let mut ids: Vec<String> =
        l["security_group_rules"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_group_rules_and_image_upload() {
    use reqwest::Method;
    use sha2::Digest;
    let Some(cl) = cloud("security_group_rules_and_image_upload").await else { return };
    // A new group has Neutron's two egress rules.
    let body = json!({"security_group": {"name": format!("{}-sg", cl.tag), "description": "conformance"}});
    let (st, g) = neutron(&cl, Method::POST, "/security-groups", Some(body)).await;
    assert_eq!(st, 201, "{g}");
    let sg = g["security_group"]["id"].as_str().unwrap().to_string();
    let mut rules: Vec<(String, String, Value)> = g["security_group"]["security_group_rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["direction"].to_string(), r["ethertype"].to_string(), r["remote_ip_prefix"].clone()))
        .collect();
    rules.sort_by(|a, b| a.1.cmp(&b.1));
    let egress = |e: &str| (r#""egress""#.to_string(), format!("\"{e}\""), Value::Null);
    assert_eq!(rules, vec![egress("IPv4"), egress("IPv6")]);
    let rule = json!({"security_group_rule": {"security_group_id": sg, "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"}});
    let (st, r) = neutron(&cl, Method::POST, "/security-group-rules", Some(rule.clone())).await;
    assert_eq!(st, 201, "{r}");
    let rid = r["security_group_rule"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        (&r["security_group_rule"]["protocol"], &r["security_group_rule"]["port_range_max"]),
        (&json!("tcp"), &json!(22))
    );
    let (st, e) = neutron(&cl, Method::POST, "/security-group-rules", Some(rule)).await;
    assert_eq!((st, &e["NeutronError"]["type"]), (409, &json!("SecurityGroupRuleExists")), "{e}");
    let ids = rule_ids(&cl, &sg).await;
    assert!(ids.len() == 3 && ids.contains(&rid), "{ids:?}");
    assert_eq!(neutron(&cl, Method::DELETE, &format!("/security-group-rules/{rid}"), None).await.0, 204);
    let (st, e) = neutron(&cl, Method::GET, &format!("/security-group-rules/{rid}"), None).await;
    assert_eq!((st, &e["NeutronError"]["type"]), (404, &json!("SecurityGroupRuleNotFound")), "{e}");
    assert_eq!(rule_ids(&cl, &sg).await.len(), 2);
    assert_eq!(neutron(&cl, Method::DELETE, &format!("/security-groups/{sg}"), None).await.0, 204);
    assert_eq!(neutron(&cl, Method::GET, &format!("/security-groups/{sg}"), None).await.0, 404);

    // An image: queued without data, active with the data's size and checksums.
    let body = json!({"name": format!("{}-img", cl.tag), "disk_format": "raw", "container_format": "bare", "visibility": "private"});
    let (st, i) = raw(&cl, "image", Method::POST, "/images", "application/json", body.to_string().into_bytes()).await;
    assert_eq!(st, 201, "{i}");
    let id = i["id"].as_str().unwrap().to_string();
    assert_eq!((&i["status"], &i["size"]), (&json!("queued"), &Value::Null));
    let data: Vec<u8> = (0..4096u32).map(|n| (n * 7 % 251) as u8).collect();
    let sha: String = sha2::Sha512::digest(&data).iter().map(|b| format!("{b:02x}")).collect();
    let (st, _) = raw(&cl, "image", Method::PUT, &format!("/images/{id}/file"), "application/octet-stream", data).await;
    assert_eq!(st, 204);
    let img = eventually(60, "image active", || async {
        let (_, v) = raw(&cl, "image", Method::GET, &format!("/images/{id}"), "", vec![]).await;
        (v["status"] == "active").then_some(v)
    })
    .await;
    assert_eq!(img["size"], 4096);
    assert_eq!(img["checksum"], "04d36678882c233a806ed5f74a1866d1");
    assert_eq!((&img["os_hash_algo"], &img["os_hash_value"]), (&json!("sha512"), &json!(sha)));
    let patch = json!([{"op": "add", "path": "/parity", "value": "yes"}]).to_string().into_bytes();
    let ctype = "application/openstack-images-v2.1-json-patch";
    let (st, v) = raw(&cl, "image", Method::PATCH, &format!("/images/{id}"), ctype, patch.clone()).await;
    assert_eq!((st, &v["parity"]), (200, &json!("yes")), "{v}");
    let (st, _) = raw(&cl, "image", Method::PATCH, &format!("/images/{id}"), "application/json", patch).await;
    assert_eq!(st, 415);
    assert_eq!(raw(&cl, "image", Method::DELETE, &format!("/images/{id}"), "", vec![]).await.0, 204);
    assert_eq!(raw(&cl, "image", Method::GET, &format!("/images/{id}"), "", vec![]).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gnocchi_cpu_percent_through_the_console_path() {
    let Some(cl) = cloud("gnocchi_cpu_percent_through_the_console_path").await else { return };
    if let Some(why) = &cl.fx.metrics_blocked {
        return not_run(cl.side, "gnocchi_cpu_percent_through_the_console_path", why);
    }
    let m = cl.client.metric();
    let rid = uuid::Uuid::new_v4().to_string();
    let r = m
        .create_resource(
            "instance",
            cl.instance(json!({"id": rid, "display_name": cl.tag, "flavor_id": cl.fx.flavor_id, "host": "conformance",
                   "metrics": {"cpu": {"archive_policy_name": "stackpilot-rate-60s", "unit": "ns"},
                               "memory.usage": {"archive_policy_name": "stackpilot-rate-60s", "unit": "MB"}}})),
        )
        .await
        .unwrap();
    assert_eq!(r.id, rid);
    assert!(r.metrics.contains_key("cpu"));
    // Cumulative CPU time: 30 s per 60 s on 2 vCPUs = 25 %.
    let now = chrono::Utc::now();
    let start = now - chrono::Duration::minutes(10);
    let base = start - chrono::Duration::seconds(start.timestamp() % 60);
    let points: Vec<(stackpilot::domain::Timestamp, f64)> =
        (0..8).map(|i| (base + chrono::Duration::minutes(i), 1e12 + i as f64 * 30e9)).collect();
    m.post_resource_measures("instance", &rid, "cpu", &points).await.unwrap();
    let mem: Vec<_> = (0..8).map(|i| (base + chrono::Duration::minutes(i), 512.0 + i as f64)).collect();
    m.post_resource_measures("instance", &rid, "memory.usage", &mem).await.unwrap();
    let metrics = eventually(120, "measures processed", || {
        let c = cl.client.clone();
        let rid = rid.clone();
        async move {
            let all =
                c.metric().server_metrics(&[(rid.clone(), 2)], 60, base - chrono::Duration::minutes(1)).await.unwrap();
            all.get(&rid).filter(|x| x.cpu_pct.len() >= 7 && x.memory_mb.len() >= 8).cloned()
        }
    })
    .await;
    for (_, pct) in &metrics.cpu_pct {
        assert!((pct - 25.0).abs() < 1e-6, "{:?}", metrics.cpu_pct);
    }
    assert_eq!(metrics.memory_mb.last().unwrap().1, 519.0);
    let found = m.search_resources("instance", json!({"=": {"display_name": cl.tag}})).await.unwrap();
    assert_eq!(found.len(), 1);
    m.delete_resource("instance", &rid).await.unwrap();
}

// ---- shape parity ---------------------------------------------------------------

/// A raw Nova call: the JSON answer (`null` when empty) or the classified error.
async fn nova(cl: &Cloud, req: Req) -> Result<Value, stackpilot::cloud::ApiError> {
    let r = cl.client.session.request("compute", req).await?;
    Ok(if r.body.is_empty() { Value::Null } else { serde_json::from_slice(&r.body).unwrap() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nova_flavor_keypair_and_server_group_round_trips() {
    let Some(cl) = cloud("nova_flavor_keypair_and_server_group_round_trips").await else { return };
    let name = |what: &str| format!("{}-{what}", cl.tag);

    // A flavor: created, shown, deleted, then gone.
    let body = json!({"flavor": {"name": name("flv"), "ram": 128, "disk": 1, "vcpus": 1, "id": null}});
    let f = nova(&cl, Req::post("/flavors", body)).await.unwrap()["flavor"].clone();
    let fid = f["id"].as_str().unwrap().to_string();
    assert_eq!((f["ram"].as_u64(), f["vcpus"].as_u64(), f["disk"].as_u64()), (Some(128), Some(1), Some(1)), "{f}");
    assert_eq!(f["os-flavor-access:is_public"], json!(true), "{f}");
    let shown = nova(&cl, Req::get(format!("/flavors/{fid}"))).await.unwrap();
    assert_eq!(shown["flavor"]["name"], json!(name("flv")));
    let dup = json!({"flavor": {"name": name("flv"), "ram": 128, "disk": 1, "vcpus": 1}});
    let e = nova(&cl, Req::post("/flavors", dup)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
    assert!(nova(&cl, Req::delete(format!("/flavors/{fid}"))).await.unwrap().is_null());
    let e = nova(&cl, Req::get(format!("/flavors/{fid}"))).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    let listed = nova(&cl, Req::get("/flavors/detail")).await.unwrap();
    assert!(!listed["flavors"].as_array().unwrap().iter().any(|x| x["id"] == json!(fid)), "a deleted flavor is listed");

    // A key pair from a public key: Nova's fingerprint is the MD5 of the key blob.
    let public = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHwkvdX2m+vlkH24/EDUgmnE+WnD98wGVAW3qI9GFoWQ";
    let body = json!({"keypair": {"name": name("kp"), "public_key": public}});
    let k = nova(&cl, Req::post("/os-keypairs", body.clone())).await.unwrap()["keypair"].clone();
    assert_eq!(k["fingerprint"], json!("6f:f8:06:b4:42:32:f6:3a:ba:ae:66:95:cd:77:76:7a"), "{k}");
    assert_eq!((k["type"].as_str(), k["user_id"].as_str()), (Some("ssh"), Some(cl.fx.user_id.as_str())), "{k}");
    assert!(k.get("private_key").is_none(), "no private key for a given public key: {k}");
    let e = nova(&cl, Req::post("/os-keypairs", body)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
    let shown = nova(&cl, Req::get(format!("/os-keypairs/{}", name("kp")))).await.unwrap()["keypair"].clone();
    assert_eq!(shown["public_key"], json!(public));
    assert_eq!(shown["fingerprint"], k["fingerprint"]);
    assert!(shown["created_at"].is_string() && shown["id"].is_u64(), "{shown}");
    let all = nova(&cl, Req::get("/os-keypairs")).await.unwrap();
    assert!(all["keypairs"].as_array().unwrap().iter().any(|x| x["keypair"]["name"] == json!(name("kp"))), "{all}");
    assert!(nova(&cl, Req::delete(format!("/os-keypairs/{}", name("kp")))).await.unwrap().is_null());
    let e = nova(&cl, Req::get(format!("/os-keypairs/{}", name("kp")))).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    let e = nova(&cl, Req::delete(format!("/os-keypairs/{}", name("kp")))).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");

    // A server group: created, listed, shown, deleted, then gone.
    let body = json!({"server_group": {"name": name("grp"), "policy": "anti-affinity"}});
    let g = nova(&cl, Req::post("/os-server-groups", body)).await.unwrap()["server_group"].clone();
    let gid = g["id"].as_str().unwrap().to_string();
    let keys: BTreeSet<&str> = g.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["id", "members", "name", "policy", "project_id", "rules", "user_id"]), "{g}");
    assert_eq!((g["policy"].as_str(), g["members"].as_array().map(Vec::len)), (Some("anti-affinity"), Some(0)));
    let bad = json!({"server_group": {"name": name("grp2"), "policy": "sideways"}});
    let e = nova(&cl, Req::post("/os-server-groups", bad)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadRequest, "{e}");
    let list = nova(&cl, Req::get("/os-server-groups")).await.unwrap();
    assert!(list["server_groups"].as_array().unwrap().iter().any(|x| x["id"] == json!(gid)), "{list}");
    let shown = nova(&cl, Req::get(format!("/os-server-groups/{gid}"))).await.unwrap();
    assert_eq!(shown["server_group"]["name"], json!(name("grp")));
    assert!(nova(&cl, Req::delete(format!("/os-server-groups/{gid}"))).await.unwrap().is_null());
    let e = nova(&cl, Req::get(format!("/os-server-groups/{gid}"))).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_pause_suspend_instance_actions_hypervisors_and_usage() {
    let Some(cl) = cloud("server_pause_suspend_instance_actions_hypervisors_and_usage").await else { return };
    let c = cl.client.compute();
    let created = c.create_server(&cl.spec("pause")).await.unwrap();
    let id = created.id.clone();
    cl.wait_server(&id, ServerStatus::Active).await;
    let act = |a: &str| Req::post(format!("/servers/{id}/action"), json!({ a: null }));

    nova(&cl, act("pause")).await.unwrap();
    cl.wait_server(&id, ServerStatus::Paused).await;
    for refused in ["pause", "suspend"] {
        let e = nova(&cl, act(refused)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
        assert!(e.message.contains("while it is in vm_state paused"), "{e}");
    }
    nova(&cl, act("unpause")).await.unwrap();
    cl.wait_server(&id, ServerStatus::Active).await;
    nova(&cl, act("suspend")).await.unwrap();
    cl.wait_server(&id, ServerStatus::Suspended).await;
    let e = nova(&cl, act("unpause")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
    nova(&cl, act("resume")).await.unwrap();
    let s = cl.wait_server(&id, ServerStatus::Active).await;
    assert_eq!(s.power_state, Some(1));

    // Every accepted action, newest first; refused ones are not recorded.
    let list = nova(&cl, Req::get(format!("/servers/{id}/os-instance-actions"))).await.unwrap();
    let actions = list["instanceActions"].as_array().unwrap();
    let names: Vec<&str> = actions.iter().filter_map(|a| a["action"].as_str()).collect();
    assert_eq!(names, ["resume", "suspend", "unpause", "pause", "create"], "{list}");
    for a in actions {
        assert_eq!(a["instance_uuid"], json!(id));
        assert_eq!(a["project_id"], json!(cl.fx.project_id));
        assert!(a["request_id"].as_str().unwrap().starts_with("req-") && a["updated_at"].is_string(), "{a}");
    }
    let create_req = actions[4]["request_id"].as_str().unwrap();
    let shown = nova(&cl, Req::get(format!("/servers/{id}/os-instance-actions/{create_req}"))).await.unwrap();
    let events = shown["instanceAction"]["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["event"].as_str().unwrap().ends_with("build_and_run_instance")
            && e["result"] == json!("Success")
            && e["finish_time"].is_string()),
        "{shown}"
    );
    let e = nova(&cl, Req::get(format!("/servers/{id}/os-instance-actions/req-none"))).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");

    // The server's hypervisor, with the fields Nova shows from 2.88.
    let (detail, _): (Value, _) = cl.client.session.json("compute", Req::get(format!("/servers/{id}"))).await.unwrap();
    let node = detail["server"]["OS-EXT-SRV-ATTR:hypervisor_hostname"].clone();
    let hv = nova(&cl, Req::get("/os-hypervisors/detail")).await.unwrap();
    let mine = hv["hypervisors"].as_array().unwrap().iter().find(|h| h["hypervisor_hostname"] == node).cloned();
    let mine = mine.unwrap_or_else(|| panic!("no hypervisor {node} in {hv}"));
    for k in ["hypervisor_type", "hypervisor_version", "host_ip", "state", "status", "uptime"] {
        assert!(mine.get(k).is_some(), "{k} missing: {mine}");
    }
    assert!(mine.get("vcpus").is_none(), "resources are Placement's from 2.88: {mine}");
    assert_eq!(mine["service"]["host"], detail["server"]["OS-EXT-SRV-ATTR:host"]);
    let hid = mine["id"].as_str().unwrap();
    let one = nova(&cl, Req::get(format!("/os-hypervisors/{hid}"))).await.unwrap();
    assert_eq!(one["hypervisor"]["hypervisor_hostname"], node);
    let e = nova(&cl, Req::get("/os-hypervisors/statistics")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "statistics are gone from 2.88: {e}");

    // The project's usage counts the server from its launch.
    let pid = &cl.fx.project_id;
    let (start, end) = (chrono::Utc::now() - chrono::Duration::days(1), chrono::Utc::now() + chrono::Duration::days(1));
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let req = Req::get(format!("/os-simple-tenant-usage/{pid}")).query("start", fmt(start)).query("end", fmt(end));
    let u = nova(&cl, req).await.unwrap();
    let usage = &u["tenant_usage"];
    assert_eq!(usage["tenant_id"], json!(pid), "{u}");
    let row = usage["server_usages"].as_array().unwrap().iter().find(|r| r["instance_id"] == json!(id)).cloned();
    let row = row.unwrap_or_else(|| panic!("server {id} not in {u}"));
    assert_eq!(row["state"], json!("active"), "{row}");
    assert!(row["hours"].as_f64().unwrap() >= 0.0 && row["vcpus"].as_u64().unwrap() >= 1, "{row}");
    assert!(row["started_at"].is_string() && row["ended_at"].is_null(), "{row}");
    assert!(usage["total_hours"].as_f64().unwrap() >= row["hours"].as_f64().unwrap());

    cl.delete_and_wait(&id).await;
}

fn is_id_like(k: &str) -> bool {
    let hex = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    (k.len() == 36 || k.len() == 32) && hex(k)
}

/// Key paths of a JSON document: `a.b`, arrays as `[]`, map keys as `*`.
fn key_paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    const MAPS: [&str; 7] = ["addresses", "metadata", "extra_specs", "metrics", "properties", "absolute", "quota_set"];
    match v {
        Value::Object(o) => {
            let is_map = MAPS.iter().any(|m| prefix.ends_with(m)) && !prefix.ends_with("quota_set");
            for (k, val) in o {
                let seg = if is_map || is_id_like(k) { "*" } else { k.as_str() };
                let p = if prefix.is_empty() { seg.to_string() } else { format!("{prefix}.{seg}") };
                out.insert(p.clone());
                key_paths(val, &p, out);
            }
        }
        Value::Array(a) => {
            let p = format!("{prefix}[]");
            for x in a {
                out.insert(p.clone());
                key_paths(x, &p, out);
            }
        }
        _ => {}
    }
}

/// The key paths the client's wire models read, per endpoint (those every
/// answer of the recorded scenario carries).
fn client_reads() -> BTreeMap<&'static str, Vec<&'static str>> {
    let server = [
        "id",
        "name",
        "status",
        "tenant_id",
        "user_id",
        "created",
        "updated",
        "hostId",
        "OS-EXT-SRV-ATTR:host",
        "addresses",
        "addresses.*[].addr",
        "addresses.*[].version",
        "addresses.*[].OS-EXT-IPS:type",
        "addresses.*[].OS-EXT-IPS-MAC:mac_addr",
        "flavor.vcpus",
        "flavor.ram",
        "flavor.disk",
        "flavor.original_name",
        "image.id",
        "key_name",
        "metadata",
        "tags",
        "security_groups[].name",
        "OS-EXT-STS:vm_state",
        "OS-EXT-STS:task_state",
        "OS-EXT-STS:power_state",
        "OS-EXT-AZ:availability_zone",
        "OS-SRV-USG:launched_at",
        "os-extended-volumes:volumes_attached",
        "locked",
        "progress",
        "links[].href",
        "links[].rel",
    ];
    let pre = |p: &'static str, items: &[&'static str]| -> Vec<&'static str> {
        items.iter().map(|i| &*Box::leak(format!("{p}{i}").into_boxed_str())).collect()
    };
    let mut m = BTreeMap::new();
    m.insert(
        "POST /v3/auth/tokens",
        vec![
            "token.expires_at",
            "token.user.id",
            "token.user.name",
            "token.project.id",
            "token.project.name",
            "token.roles[].name",
            "token.catalog[].type",
            "token.catalog[].endpoints[].interface",
            "token.catalog[].endpoints[].region_id",
            "token.catalog[].endpoints[].url",
        ],
    );
    m.insert("GET compute version", vec!["version.id", "version.version", "version.min_version"]);
    m.insert("POST /servers", vec!["server.id", "server.links[].href"]);
    m.insert("GET /servers/detail", {
        let mut v = pre("servers[].", &server);
        v.push("servers[]");
        v
    });
    m.insert("GET /servers/{id}", pre("server.", &server));
    m.insert("GET /servers/detail?limit", vec!["servers[]", "servers_links[].rel", "servers_links[].href"]);
    m.insert("POST os-getConsoleOutput", vec!["output"]);
    m.insert(
        "GET /flavors/detail",
        pre(
            "flavors[].",
            &["id", "name", "vcpus", "ram", "disk", "OS-FLV-EXT-DATA:ephemeral", "swap", "os-flavor-access:is_public"],
        ),
    );
    m.insert("GET /limits", vec!["limits.absolute.*", "limits.rate"]);
    m.insert(
        "GET /os-services?binary=nova-compute",
        pre("services[].", &["host", "binary", "zone", "status", "state", "forced_down", "disabled_reason"]),
    );
    m.insert(
        "GET /os-quota-sets/{p}/detail",
        vec!["quota_set.instances.limit", "quota_set.instances.in_use", "quota_set.cores.limit", "quota_set.ram.limit"],
    );
    m.insert(
        "GET /v2/images",
        vec![
            "images[].id",
            "images[].name",
            "images[].status",
            "images[].visibility",
            "images[].size",
            "images[].min_disk",
            "images[].min_ram",
            "images[].disk_format",
            "images[].created_at",
            "images[].tags",
            "first",
            "schema",
        ],
    );
    m.insert(
        "GET /v2.0/networks",
        pre("networks[].", &["id", "name", "status", "shared", "router:external", "subnets", "mtu", "project_id"]),
    );
    m.insert(
        "GET /v2.0/ports",
        pre(
            "ports[].",
            &[
                "id",
                "name",
                "network_id",
                "device_id",
                "device_owner",
                "mac_address",
                "fixed_ips[].subnet_id",
                "fixed_ips[].ip_address",
                "status",
                "tags",
            ],
        ),
    );
    m.insert(
        "GET /volumes/detail",
        pre(
            "volumes[].",
            &[
                "id",
                "name",
                "status",
                "size",
                "availability_zone",
                "bootable",
                "encrypted",
                "volume_type",
                "attachments",
                "metadata",
                "created_at",
                "updated_at",
            ],
        ),
    );
    m.insert("POST /backups", vec!["backup.id", "backup.name"]);
    m.insert(
        "GET /backups/detail",
        pre(
            "backups[].",
            &[
                "id",
                "name",
                "description",
                "volume_id",
                "snapshot_id",
                "status",
                "fail_reason",
                "size",
                "object_count",
                "container",
                "availability_zone",
                "is_incremental",
                "has_dependent_backups",
                "metadata",
                "created_at",
                "updated_at",
                "data_timestamp",
            ],
        ),
    );
    m.insert("POST /backups/{id}/restore", vec!["restore.backup_id", "restore.volume_id", "restore.volume_name"]);
    m.insert(
        "GET /v1/resource/instance/{id}",
        vec![
            "id",
            "type",
            "original_resource_id",
            "project_id",
            "user_id",
            "started_at",
            "ended_at",
            "metrics",
            "metrics.*",
            "display_name",
        ],
    );
    m.insert("POST /v1/search/resource/instance", vec!["[].id", "[].type", "[].metrics", "[].display_name"]);
    m.insert("GET measures rate:mean", vec!["[]"]);
    m.insert(
        "POST /v1/aggregates",
        vec!["measures", "measures.*", "measures.*.cpu", "measures.*.cpu.rate:mean", "measures.*.cpu.rate:mean[]"],
    );
    m
}

async fn record_shapes(cl: &Cloud) -> BTreeMap<String, BTreeSet<String>> {
    let c = &cl.client;
    let s = &c.session;
    let mut shapes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut rec = |name: &str, v: &Value| {
        let mut set = BTreeSet::new();
        key_paths(v, "", &mut set);
        shapes.entry(name.to_string()).or_default().extend(set);
    };
    let body = |r: stackpilot::cloud::Response| -> Value { serde_json::from_slice(&r.body).unwrap() };
    // Keystone.
    let auth = stackpilot::cloud::session::auth_body(&cl.cfg.auth);
    let r = s
        .http()
        .post(format!("{}/auth/tokens", cl.cfg.auth_url.trim_end_matches('/')))
        .json(&auth)
        .send()
        .await
        .unwrap();
    rec("POST /v3/auth/tokens", &r.json::<Value>().await.unwrap());
    let ep = s.endpoint("compute").await.unwrap();
    rec(
        "GET compute version",
        &body(s.request("compute", Req::get(format!("{}/", ep.as_str().trim_end_matches('/')))).await.unwrap()),
    );
    // Nova.
    let created = s.request("compute", Req::post("/servers", cl.spec("shape").body())).await.unwrap();
    let cv = body(created);
    rec("POST /servers", &cv);
    let id = cv["server"]["id"].as_str().unwrap().to_string();
    cl.wait_server(&id, ServerStatus::Active).await;
    rec(
        "GET /servers/detail",
        &body(s.request("compute", Req::get(format!("/servers/detail?tags={}", cl.tag))).await.unwrap()),
    );
    rec("GET /servers/{id}", &body(s.request("compute", Req::get(format!("/servers/{id}"))).await.unwrap()));
    rec(
        "GET /servers/detail?limit",
        &body(s.request("compute", Req::get(format!("/servers/detail?tags={}&limit=1", cl.tag))).await.unwrap()),
    );
    rec(
        "POST os-getConsoleOutput",
        &body(
            s.request(
                "compute",
                Req::post(format!("/servers/{id}/action"), json!({"os-getConsoleOutput": {"length": 5}})),
            )
            .await
            .unwrap(),
        ),
    );
    rec("GET /flavors/detail", &body(s.request("compute", Req::get("/flavors/detail")).await.unwrap()));
    rec("GET /limits", &body(s.request("compute", Req::get("/limits")).await.unwrap()));
    rec(
        "GET /os-services?binary=nova-compute",
        &body(s.request("compute", Req::get("/os-services?binary=nova-compute")).await.unwrap()),
    );
    rec(
        "GET /os-quota-sets/{p}/detail",
        &body(s.request("compute", Req::get(format!("/os-quota-sets/{}/detail", cl.fx.project_id))).await.unwrap()),
    );
    // Glance, Neutron.
    rec("GET /v2/images", &body(s.request("image", Req::get("/images")).await.unwrap()));
    rec("GET /v2.0/networks", &body(s.request("network", Req::get("/networks")).await.unwrap()));
    rec("GET /v2.0/ports", &body(s.request("network", Req::get(format!("/ports?device_id={id}"))).await.unwrap()));
    // Cinder.
    let vol = c
        .volume()
        .create_volume(1, &format!("{}-shape", cl.tag), &[("k".to_string(), "v".to_string())].into())
        .await
        .unwrap();
    eventually(120, "volume", || {
        let c = c.clone();
        let id = vol.id.clone();
        async move { c.volume().get_volume(&id).await.ok().filter(|v| v.status == "available") }
    })
    .await;
    rec("GET /volumes/detail", &body(s.request("block-storage", Req::get("/volumes/detail")).await.unwrap()));
    let bk = body(
        s.request(
            "block-storage",
            Req::post(
                "/backups",
                json!({"backup": {"volume_id": vol.id, "name": format!("{}-shape", cl.tag), "metadata": {"k": "v"}}}),
            ),
        )
        .await
        .unwrap(),
    );
    rec("POST /backups", &bk);
    let bid = bk["backup"]["id"].as_str().unwrap().to_string();
    eventually(120, "backup", || {
        let c = c.clone();
        let id = bid.clone();
        async move { c.volume().get_backup(&id).await.ok().filter(|b| b.status == "available") }
    })
    .await;
    rec("GET /backups/detail", &body(s.request("block-storage", Req::get("/backups/detail")).await.unwrap()));
    let restore = body(
        s.request(
            "block-storage",
            Req::post(format!("/backups/{bid}/restore"), json!({"restore": {"name": format!("{}-shape-r", cl.tag)}})),
        )
        .await
        .unwrap(),
    );
    rec("POST /backups/{id}/restore", &restore);
    // Gnocchi.
    match &cl.fx.metrics_blocked {
        Some(why) => not_run(cl.side, "shape parity of Gnocchi", why),
        None => {
            let rid = uuid::Uuid::new_v4().to_string();
            c.metric()
                .create_resource("instance", cl.instance(json!({"id": rid, "display_name": cl.tag, "flavor_id": "1", "host": "h", "metrics": {"cpu": {"archive_policy_name": "stackpilot-rate-60s"}}})))
                .await
                .unwrap();
            let now = chrono::Utc::now();
            let base = now - chrono::Duration::seconds(now.timestamp() % 60) - chrono::Duration::minutes(5);
            let pts: Vec<_> = (0..4).map(|i| (base + chrono::Duration::minutes(i), 1e9 * i as f64)).collect();
            c.metric().post_resource_measures("instance", &rid, "cpu", &pts).await.unwrap();
            rec(
                "GET /v1/resource/instance/{id}",
                &body(s.request("metric", Req::get(format!("/resource/instance/{rid}"))).await.unwrap()),
            );
            rec(
                "POST /v1/search/resource/instance",
                &body(
                    s.request("metric", Req::post("/search/resource/instance", json!({"=": {"id": rid}})))
                        .await
                        .unwrap(),
                ),
            );
            let measures = eventually(120, "measures", || {
                let s = s.clone();
                let rid = rid.clone();
                async move {
                    let r = s.request("metric", Req::get(format!("/resource/instance/{rid}/metric/cpu/measures?aggregation=rate:mean&granularity=60&refresh=true"))).await.ok()?;
                    let v: Value = serde_json::from_slice(&r.body).ok()?;
                    (v.as_array().is_some_and(|a| a.len() >= 3)).then_some(v)
                }
            })
            .await;
            rec("GET measures rate:mean", &measures);
            let agg = body(
                s.request(
                    "metric",
                    Req::post("/aggregates", json!({"resource_type": "instance", "search": {"=": {"id": rid}}, "operations": "(metric cpu rate:mean)"}))
                        .query("granularity", 60)
                        .query("start", stackpilot::domain::time::format_offset(&base)),
                )
                    .await
                    .unwrap(),
            );
            rec("POST /v1/aggregates", &agg);
            c.metric().delete_resource("instance", &rid).await.unwrap();
        }
    }
    // Clean up.
    cl.delete_and_wait(&id).await;
    let _ = c.volume().delete_backup(&bid).await;
    let _ = c.volume().delete_volume(restore["restore"]["volume_id"].as_str().unwrap_or_default()).await;
    let _ = c.volume().delete_volume(&vol.id).await;
    shapes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shape_parity() {
    let Some(cl) = cloud("shape_parity").await else { return };
    let mine = record_shapes(&cl).await;
    let recording = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/real-shapes.json");
    let out_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("conformance");
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::write(
        out_dir.join(format!("shapes-{}.json", cl.side.name())),
        serde_json::to_string_pretty(&mine).unwrap(),
    )
    .unwrap();
    let reads = client_reads();
    if cl.side == Side::Real {
        // Every path the client reads is in the real answers, then refresh the recording.
        for (ep, paths) in &reads {
            let have = mine.get(*ep).unwrap_or_else(|| panic!("no recording of {ep}"));
            for p in paths {
                assert!(have.contains(*p), "real {ep} lacks {p}");
            }
        }
        // The committed recording changes only when asked: a test run never
        // rewrites a tracked file.
        let text = serde_json::to_string_pretty(&mine).unwrap() + "\n";
        if std::env::var_os("STACKPILOT_RECORD_SHAPES").is_some() {
            std::fs::write(&recording, &text).unwrap();
            println!("recorded {} endpoints of the real cloud to {}", mine.len(), recording.display());
        } else if std::fs::read_to_string(&recording).ok().as_deref() != Some(text.as_str()) {
            println!(
                "the real cloud's shapes differ from {} (fresh copy in {}); STACKPILOT_RECORD_SHAPES=1 records them",
                recording.display(),
                out_dir.join("shapes-real.json").display()
            );
        }
    }
    let real: BTreeMap<String, BTreeSet<String>> =
        serde_json::from_str(&std::fs::read_to_string(&recording).expect("a recording of the real cloud is committed"))
            .unwrap();
    let sim_shapes: BTreeMap<String, BTreeSet<String>> = if cl.side == Side::Sim {
        mine.clone()
    } else {
        let p = out_dir.join("shapes-sim.json");
        match std::fs::read_to_string(&p) {
            Ok(t) => serde_json::from_str(&t).unwrap(),
            Err(_) => {
                println!(
                    "NOT RUN on real: sim/real comparison: run the suite against the simulator first (it writes {})",
                    p.display()
                );
                return;
            }
        }
    };
    // The table, and the hard rule: what the client reads is in both.
    let mut table = String::from("| endpoint | real paths | sim paths | common | parity | client-read paths in both |\n|---|---|---|---|---|---|\n");
    let (mut all_common, mut all_union) = (0usize, 0usize);
    let mut missing = Vec::new();
    for (ep, paths) in &reads {
        let r = real.get(*ep).cloned().unwrap_or_default();
        let s = sim_shapes.get(*ep).cloned().unwrap_or_default();
        let common = r.intersection(&s).count();
        let union = r.union(&s).count();
        all_common += common;
        all_union += union;
        let ok = paths.iter().filter(|p| r.contains(**p) && s.contains(**p)).count();
        for p in paths {
            if !s.contains(*p) {
                missing.push(format!("sim {ep}: {p}"));
            }
            if !r.contains(*p) {
                missing.push(format!("real {ep}: {p}"));
            }
        }
        table.push_str(&format!(
            "| {ep} | {} | {} | {common} | {:.0}% | {ok}/{} |\n",
            r.len(),
            s.len(),
            100.0 * common as f64 / union.max(1) as f64,
            paths.len()
        ));
    }
    let overall = 100.0 * all_common as f64 / all_union.max(1) as f64;
    table.push_str(&format!("\nOverall key-path parity: {overall:.1}% ({all_common} of {all_union} paths in both)\n"));
    let mut only = String::new();
    for ep in reads.keys() {
        let r = real.get(*ep).cloned().unwrap_or_default();
        let s = sim_shapes.get(*ep).cloned().unwrap_or_default();
        let ro: Vec<_> = r.difference(&s).cloned().collect();
        let so: Vec<_> = s.difference(&r).cloned().collect();
        if !ro.is_empty() || !so.is_empty() {
            only.push_str(&format!("\n### {ep}\n- only real: {}\n- only sim: {}\n", ro.join(", "), so.join(", ")));
        }
    }
    std::fs::write(out_dir.join("parity.md"), format!("# Shape parity (run on {})\n\n{table}{only}", cl.side.name()))
        .unwrap();
    println!("{table}\nparity table: {}", out_dir.join("parity.md").display());
    assert!(missing.is_empty(), "client-read key paths missing: {missing:#?}");
    // Every difference found so far was fixed in the simulator; keep it that way:
    // the simulator shows every key path the real services showed, and nothing
    // else beyond data its world carries (image properties).
    const WORLD_DATA: [&str; 3] = ["images[].os_distro", "images[].os_version", "images[].sim_cloud_init"];
    let mut drift = Vec::new();
    for ep in reads.keys() {
        let r = real.get(*ep).cloned().unwrap_or_default();
        let s = sim_shapes.get(*ep).cloned().unwrap_or_default();
        drift.extend(r.difference(&s).map(|p| format!("{ep}: only real: {p}")));
        drift.extend(
            s.difference(&r).filter(|p| !WORLD_DATA.contains(&p.as_str())).map(|p| format!("{ep}: only sim: {p}")),
        );
    }
    assert!(drift.is_empty(), "the simulator drifted from the real services: {drift:#?}");
}

/// A GET that must succeed, as JSON.
async fn get_json(cl: &Cloud, service: &str, path: impl Into<String>) -> Value {
    let path = path.into();
    match cl.client.session.json::<Value>(service, Req::get(path.clone())).await {
        Ok((v, _)) => v,
        Err(e) => panic!("GET {service} {path}: {e}"),
    }
}

/// A request that must fail with `status`; the service's own message.
async fn refused(cl: &Cloud, service: &str, req: Req, status: u16) -> String {
    let what = format!("{} {service} {}", req.method, req.path);
    match cl.client.session.request(service, req).await {
        Ok(r) => panic!("{what}: expected {status}, got {}", r.status),
        Err(e) => {
            assert_eq!(e.status, Some(status), "{what}: {e}");
            e.message
        }
    }
}

fn names_of(v: &Value, key: &str, field: &str) -> Vec<String> {
    v[key].as_array().unwrap().iter().map(|x| x[field].as_str().unwrap_or_default().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_admin_reads_volume_quotas_metadata_services_and_metric_status() {
    let Some(cl) = cloud("identity_admin_reads_volume_quotas_metadata_services_and_metric_status").await else {
        return;
    };
    let (pid, uid) = (cl.fx.project_id.clone(), cl.fx.user_id.clone());
    let unknown = uuid::Uuid::new_v4().simple().to_string();

    // Keystone: every collection lists, shows a member by id, filters and 404s.
    let regions = get_json(&cl, "identity", "/regions").await;
    let region = regions["regions"][0]["id"].as_str().expect("a region").to_string();
    assert_eq!(get_json(&cl, "identity", format!("/regions/{region}")).await["region"]["id"], region.as_str());
    let services = get_json(&cl, "identity", "/services?type=compute").await;
    assert_eq!(names_of(&services, "services", "type"), ["compute"], "{services}");
    let compute = services["services"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(get_json(&cl, "identity", format!("/services/{compute}")).await["service"]["type"], "compute");
    let eps = get_json(&cl, "identity", format!("/endpoints?service_id={compute}&interface=public")).await;
    let eps = eps["endpoints"].as_array().unwrap();
    assert!(!eps.is_empty());
    assert!(eps.iter().all(|e| e["service_id"] == compute.as_str() && e["interface"] == "public"), "{eps:?}");
    let ep = eps[0]["id"].as_str().unwrap();
    assert_eq!(get_json(&cl, "identity", format!("/endpoints/{ep}")).await["endpoint"]["id"], ep);
    let by_region = get_json(&cl, "identity", format!("/endpoints?region_id={region}")).await;
    assert!(by_region["endpoints"].as_array().unwrap().len() >= eps.len());
    let domains = get_json(&cl, "identity", "/domains?name=Default").await;
    assert_eq!(names_of(&domains, "domains", "id"), ["default"]);
    assert_eq!(get_json(&cl, "identity", "/domains/default").await["domain"]["name"], "Default");
    let project = get_json(&cl, "identity", format!("/projects/{pid}")).await["project"].clone();
    let pname = project["name"].as_str().unwrap().to_string();
    let by_name = get_json(&cl, "identity", format!("/projects?name={pname}")).await;
    assert_eq!(names_of(&by_name, "projects", "id"), [pid.as_str()]);
    let in_domain =
        get_json(&cl, "identity", format!("/projects?domain_id={}", project["domain_id"].as_str().unwrap())).await;
    assert!(names_of(&in_domain, "projects", "id").contains(&pid));
    let none = get_json(&cl, "identity", format!("/projects?name={unknown}")).await;
    assert!(none["projects"].as_array().unwrap().is_empty());
    let user = get_json(&cl, "identity", format!("/users/{uid}")).await["user"].clone();
    let uname = user["name"].as_str().unwrap().to_string();
    let by_name =
        get_json(&cl, "identity", format!("/users?name={uname}&domain_id={}", user["domain_id"].as_str().unwrap()))
            .await;
    assert_eq!(names_of(&by_name, "users", "id"), [uid.as_str()]);
    let roles = get_json(&cl, "identity", "/roles?name=admin").await;
    assert_eq!(names_of(&roles, "roles", "name"), ["admin"]);
    let admin_role = roles["roles"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(get_json(&cl, "identity", format!("/roles/{admin_role}")).await["role"]["name"], "admin");
    for (kind, path) in [
        ("region", "regions"),
        ("service", "services"),
        ("endpoint", "endpoints"),
        ("domain", "domains"),
        ("project", "projects"),
        ("user", "users"),
        ("role", "roles"),
    ] {
        let m = refused(&cl, "identity", Req::get(format!("/{path}/{unknown}")), 404).await;
        assert!(m.contains(&format!("Could not find {kind}: {unknown}")), "{kind}: {m}");
    }

    // Role assignments: the direct one with names; effective adds the implied roles.
    let q = format!("/role_assignments?user.id={uid}&scope.project.id={pid}");
    let direct = get_json(&cl, "identity", format!("{q}&include_names=True")).await;
    let ra = direct["role_assignments"].as_array().unwrap();
    let admin_ra = ra.iter().find(|a| a["role"]["name"] == "admin").expect("admin on the project");
    assert_eq!(admin_ra["user"]["name"], uname.as_str());
    assert_eq!(admin_ra["scope"]["project"]["name"], pname.as_str());
    assert_eq!(admin_ra["role"]["id"], admin_role.as_str());
    let plain = get_json(&cl, "identity", q.clone()).await;
    assert!(plain["role_assignments"][0]["role"].get("name").is_none(), "names only when asked");
    let effective = get_json(&cl, "identity", format!("{q}&effective&include_names=True")).await;
    let eff: Vec<&str> = effective["role_assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["role"]["name"].as_str().unwrap_or_default())
        .collect();
    for r in ["admin", "member", "reader"] {
        assert!(eff.contains(&r), "effective roles {eff:?} lack {r}");
    }

    // Application credentials: show by id, find by name, 404 once deleted.
    let acs = format!("/users/{uid}/application_credentials");
    let (ac, _): (Value, _) = cl
        .client
        .session
        .json("identity", Req::post(acs.clone(), json!({"application_credential": {"name": cl.tag}})))
        .await
        .unwrap();
    let ac_id = ac["application_credential"]["id"].as_str().unwrap().to_string();
    assert!(ac["application_credential"]["secret"].is_string());
    let role_names = names_of(&ac["application_credential"], "roles", "name");
    assert!(role_names.iter().any(|r| r == "admin") && role_names.iter().any(|r| r == "reader"), "{role_names:?}");
    let shown = get_json(&cl, "identity", format!("{acs}/{ac_id}")).await["application_credential"].clone();
    assert_eq!((shown["name"].as_str(), shown["project_id"].as_str()), (Some(cl.tag.as_str()), Some(pid.as_str())));
    assert!(shown.get("secret").is_none(), "the secret is shown only at creation");
    let found = get_json(&cl, "identity", format!("{acs}?name={}", cl.tag)).await;
    assert_eq!(names_of(&found, "application_credentials", "id"), [ac_id.as_str()]);
    cl.client.session.request("identity", Req::delete(format!("{acs}/{ac_id}"))).await.unwrap();
    let m = refused(&cl, "identity", Req::get(format!("{acs}/{ac_id}")), 404).await;
    assert!(m.contains("Could not find Application Credential"), "{m}");

    // Cinder quotas: limits, usage, defaults; a set shows and is put back.
    let quota = get_json(&cl, "block-storage", format!("/os-quota-sets/{pid}?usage=False")).await["quota_set"].clone();
    for k in ["volumes", "gigabytes", "snapshots", "backups", "backup_gigabytes", "per_volume_gigabytes", "groups"] {
        assert!(quota[k].is_i64(), "quota {k} in {quota}");
    }
    assert_eq!(quota["id"], pid.as_str());
    let usage = get_json(&cl, "block-storage", format!("/os-quota-sets/{pid}?usage=True")).await["quota_set"].clone();
    assert_eq!(usage["volumes"]["limit"], quota["volumes"]);
    assert!(usage["volumes"]["in_use"].is_i64() && usage["gigabytes"]["reserved"].is_i64(), "{usage}");
    let defaults = get_json(&cl, "block-storage", format!("/os-quota-sets/{pid}/defaults")).await["quota_set"].clone();
    assert!(defaults["volumes"].is_i64());
    let was = quota["snapshots"].as_i64().unwrap();
    let want = if was >= 0 { was + 3 } else { 50 };
    let put = |n: i64| Req::put(format!("/os-quota-sets/{pid}"), json!({"quota_set": {"snapshots": n}}));
    let (set, _): (Value, _) = cl.client.session.json("block-storage", put(want)).await.unwrap();
    let after = get_json(&cl, "block-storage", format!("/os-quota-sets/{pid}")).await;
    cl.client.session.request("block-storage", put(was)).await.unwrap();
    assert_eq!(set["quota_set"]["snapshots"], want);
    assert_eq!(after["quota_set"]["snapshots"], want);
    let restored = get_json(&cl, "block-storage", format!("/os-quota-sets/{pid}")).await;
    assert_eq!(restored["quota_set"]["snapshots"], was);
    let m = refused(
        &cl,
        "block-storage",
        Req::put(format!("/os-quota-sets/{pid}"), json!({"quota_set": {"no_such_quota": 1}})),
        400,
    )
    .await;
    assert!(m.contains("Bad key(s) in quota set: no_such_quota"), "{m}");

    // Volume metadata: merge, replace, one item, delete.
    let v = cl.client.volume();
    let vol = v.create_volume(1, &format!("{}-meta", cl.tag), &BTreeMap::new()).await.unwrap();
    let c = cl.client.clone();
    let vid = vol.id.clone();
    // Metadata may be set on a volume in any settled state; a busy cloud's
    // backend may take a while (or fail the volume: its metadata still works).
    let settled = eventually(300, "volume settled", || {
        let c = c.clone();
        let vid = vid.clone();
        async move { c.volume().get_volume(&vid).await.ok().filter(|x| x.status != "creating") }
    })
    .await;
    assert!(matches!(settled.status.as_str(), "available" | "error"), "volume {}: {}", vid, settled.status);
    let mp = format!("/volumes/{vid}/metadata");
    let post = |m: Value| Req::post(mp.clone(), json!({ "metadata": m }));
    cl.client.session.request("block-storage", post(json!({"a": "1"}))).await.unwrap();
    let (merged, _): (Value, _) = cl.client.session.json("block-storage", post(json!({"b": "2"}))).await.unwrap();
    assert_eq!(merged["metadata"], json!({"a": "1", "b": "2"}));
    let (replaced, _): (Value, _) =
        cl.client.session.json("block-storage", Req::put(mp.clone(), json!({"metadata": {"c": "3"}}))).await.unwrap();
    assert_eq!(replaced["metadata"], json!({"c": "3"}));
    assert_eq!(get_json(&cl, "block-storage", format!("{mp}/c")).await["meta"], json!({"c": "3"}));
    refused(&cl, "block-storage", Req::get(format!("{mp}/a")), 404).await;
    assert_eq!(v.get_volume(&vid).await.unwrap().metadata.get("c").map(String::as_str), Some("3"));
    cl.client.session.request("block-storage", Req::delete(format!("{mp}/c"))).await.unwrap();
    assert_eq!(get_json(&cl, "block-storage", mp.clone()).await["metadata"], json!({}));
    refused(&cl, "block-storage", Req::get(format!("/volumes/{unknown}/metadata")), 404).await;
    v.delete_volume(&vid).await.unwrap();

    // Cinder services, filtered by binary.
    let svcs = get_json(&cl, "block-storage", "/os-services").await;
    let binaries = names_of(&svcs, "services", "binary");
    for b in ["cinder-scheduler", "cinder-volume"] {
        assert!(binaries.iter().any(|x| x == b), "{binaries:?}");
    }
    assert!(svcs["services"].as_array().unwrap().iter().all(|s| s["state"].is_string() && s["zone"].is_string()));
    let sched = get_json(&cl, "block-storage", "/os-services?binary=cinder-scheduler").await;
    let only = names_of(&sched, "services", "binary");
    assert!(!only.is_empty() && only.iter().all(|b| b == "cinder-scheduler"), "{only:?}");

    // Gnocchi: the status of its processing, and the lists under their slash.
    let status = get_json(&cl, "metric", "/status?details=False").await;
    assert!(status["storage"]["summary"]["metrics"].is_u64() && status["storage"]["summary"]["measures"].is_u64());
    assert!(!status["metricd"]["processors"].as_array().unwrap().is_empty(), "{status}");
    assert!(get_json(&cl, "metric", "/status").await["storage"]["measures_to_process"].is_object());
    assert!(get_json(&cl, "metric", "/archive_policy/").await.as_array().is_some_and(|a| !a.is_empty()));
    assert!(get_json(&cl, "metric", "/resource_type/").await.as_array().is_some_and(|a| !a.is_empty()));
}

/// Routers as clients browse them: listed, shown by id, with their gateway on the
/// external network; an unknown id is Neutron's RouterNotFound. A cloud without
/// Neutron's L3 service (the real test services) answers 404 to the listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routers_listed_and_shown() {
    use reqwest::Method;
    let Some(cl) = cloud("routers_listed_and_shown").await else { return };
    let (st, list) = neutron(&cl, Method::GET, "/routers", None).await;
    if cl.side == Side::Real && st == 404 {
        not_run(cl.side, "routers_listed_and_shown", "this cloud runs no L3 service (GET /routers is 404)");
        return;
    }
    assert_eq!(st, 200, "{list}");
    let routers = list["routers"].as_array().unwrap();
    let Some(r) = routers.iter().find(|r| r["external_gateway_info"]["network_id"].is_string()) else {
        not_run(cl.side, "routers_listed_and_shown", "no router with an external gateway on this cloud");
        return;
    };
    let id = r["id"].as_str().unwrap();
    let (st, shown) = neutron(&cl, Method::GET, &format!("/routers/{id}"), None).await;
    assert_eq!(st, 200, "{shown}");
    assert_eq!(shown["router"]["id"], id);
    let ext = shown["router"]["external_gateway_info"]["network_id"].as_str().unwrap();
    let (_, net) = neutron(&cl, Method::GET, &format!("/networks/{ext}"), None).await;
    assert_eq!(net["network"]["router:external"], true, "the gateway is on an external network: {net}");
    for k in ["name", "status", "admin_state_up", "project_id", "routes"] {
        assert!(shown["router"].get(k).is_some(), "{k} missing: {shown}");
    }
    let (st, e) = neutron(&cl, Method::GET, "/routers/00000000-0000-0000-0000-000000000000", None).await;
    assert_eq!((st, &e["NeutronError"]["type"]), (404, &json!("RouterNotFound")), "{e}");
}
