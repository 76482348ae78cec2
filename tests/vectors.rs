//! Every JSON file in ../shared/vectors is read by the model that handles it:
//! responses by the client's wire models, requests by the simulator's request
//! parsers (the simulator is the server that receives them). A file nobody handles
//! fails `every_vector_is_covered`.

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

use serde_json::Value;
use stackpilot::cloud::wire::{cinder, glance, gnocchi, heat, keystone, neutron, nova};
use stackpilot::domain::{ServerStatus, Timestamp};
use stackpilot::sim::keystone::{parse_auth, AuthRequest, DomainSel, Named, ScopeSel};
use stackpilot::sim::nova as nova_sim;
use std::path::PathBuf;

fn dir() -> PathBuf {
    std::env::var("STACKPILOT_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors")))
}

fn text(rel: &str) -> String {
    let p = dir().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn json(rel: &str) -> Value {
    serde_json::from_str(&text(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn ts(s: &str) -> Timestamp {
    stackpilot::domain::time::parse_timestamp(s).unwrap()
}

fn servers_page(rel: &str) -> (Vec<stackpilot::domain::Server>, Vec<stackpilot::cloud::wire::Link>) {
    let page: nova::ServersPage = serde_json::from_str(&text(rel)).unwrap();
    let servers = page
        .servers
        .iter()
        .map(|v| nova::server_from_raw(&v.to_string()).unwrap_or_else(|e| panic!("{rel}: server did not parse: {e}")))
        .collect();
    (servers, page.servers_links)
}

fn server_body(rel: &str) -> stackpilot::domain::Server {
    let v = json(rel);
    nova::server_from_raw(&v["server"].to_string()).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every response vector and what must be read from it.
type Check = (&'static str, fn(&str));

const RESPONSES: &[Check] = &[
    ("nova/servers/servers-list-resp.json", |f| {
        let (s, links) = servers_page(f);
        assert_eq!(s[0].id, "22c91117-08de-4894-9aa9-6ef382400985");
        assert_eq!(s[0].name.as_deref(), Some("new-server-test"));
        assert_eq!(s[0].status, ServerStatus::Unknown, "list entries carry no status");
        assert!(stackpilot::cloud::wire::next_link(&links).unwrap().contains("marker="));
    }),
    ("nova/servers/servers-list-status-resp.json", |f| {
        let (s, links) = servers_page(f);
        assert_eq!(s.len(), 1);
        assert!(stackpilot::cloud::wire::next_link(&links).unwrap().contains("status=error"));
    }),
    ("nova/servers/servers-details-resp.json", |f| {
        let (s, links) = servers_page(f);
        let s = &s[0];
        assert_eq!(s.status, ServerStatus::Active);
        assert_eq!(s.flavor.id.as_deref(), Some("1"), "flavor is {{id, links}} before 2.47");
        assert_eq!(s.flavor.vcpus, None);
        assert_eq!(s.image_id.as_deref(), Some("70a599e0-31e7-49b7-b260-868f441e862b"));
        assert_eq!(s.addresses[0].addr, "192.168.1.30");
        assert_eq!(s.addresses[0].kind.as_deref(), Some("fixed"));
        assert_eq!(s.metadata.get("My Server Name").map(String::as_str), Some("Apache1"));
        assert_eq!(s.created, Some(ts("2013-09-03T04:01:32Z")));
        assert_eq!(s.launched_at, Some(ts("2013-09-23T13:53:12.774549")));
        assert_eq!(s.power_state, Some(1));
        assert!(!links.is_empty());
        assert!(s.raw.as_deref().unwrap().contains("OS-EXT-SRV-ATTR:host"));
    }),
    ("nova/servers/v2.47/servers-details-resp.json", |f| {
        let (s, _) = servers_page(f);
        let fl = &s[0].flavor;
        assert_eq!(fl.id, None, "no flavor id from 2.47");
        assert_eq!(fl.name.as_deref(), Some("m1.tiny.specs"));
        assert_eq!((fl.vcpus, fl.ram_mb, fl.disk_gb), (Some(1), Some(512), Some(1)));
    }),
    ("nova/servers/v2.66/servers-details-with-changes-before.json", |f| {
        let (s, _) = servers_page(f);
        assert_eq!(s[0].id, "569f39f9-7c76-42a1-9c2d-8394e2638a6e");
        assert!(s[0].launched_at.is_some(), "µs timestamp without zone");
    }),
    ("nova/servers/v2.69/servers-list-resp.json", |f| {
        let (s, _) = servers_page(f);
        assert_eq!(s[0].status, ServerStatus::Unknown);
        assert_eq!(s[0].name, None, "down-cell records have no name");
        assert_eq!(s[0].display_name(), "(unknown)");
    }),
    ("nova/servers/v2.69/servers-details-resp.json", |f| {
        let (s, _) = servers_page(f);
        assert_eq!(s[0].id, "b6b0410f-b65f-4473-855e-5d82a71759e0");
        assert_eq!(s[0].status, ServerStatus::Unknown);
        assert!(s[0].created.is_some());
        assert!(s[0].addresses.is_empty());
    }),
    ("nova/servers/v2.71/server-get-down-cell-resp.json", |f| {
        let s = server_body(f);
        assert_eq!(s.status, ServerStatus::Unknown);
        assert_eq!(s.availability_zone.as_deref(), Some("UNKNOWN"));
        assert_eq!(s.power_state, Some(0));
        assert_eq!(s.name, None);
        assert_eq!(s.flavor.vcpus, Some(1));
    }),
    ("nova/servers/v2.96/servers-details-resp.json", |f| {
        let (s, _) = servers_page(f);
        assert_eq!(s[0].tags, Vec::<String>::new());
        assert_eq!(s[0].locked, Some(false));
        assert_eq!(s[0].volumes_attached, vec!["volume_id1", "volume_id2"]);
        assert_eq!(s[0].availability_zone.as_deref(), Some("us-west"));
        assert_eq!(s[0].security_groups, vec!["default"]);
    }),
    ("nova/servers/v2.100/servers-details-resp.json", |f| {
        let (s, _) = servers_page(f);
        assert_eq!(s[0].status, ServerStatus::Active);
        assert!(s[0].image_id.is_some(), "image with embedded properties");
    }),
    ("nova/servers/v2.100/server-get-resp.json", |f| {
        let s = server_body(f);
        assert_eq!(s.id, "0e44cc9c-e052-415d-afbf-469b0d384170");
        assert_eq!(s.flavor.name.as_deref(), Some("m1.tiny"));
    }),
    ("nova/servers/v2.100/server-action-rebuild-resp.json", |f| {
        let s = server_body(f);
        assert_eq!(s.id, "0c37a84a-c757-4f22-8c7f-0bf8b6970886");
        assert_eq!(s.name.as_deref(), Some("foobar"));
    }),
    ("nova/servers/server-create-resp.json", |f| {
        let b: nova::CreatedServerBody = serde_json::from_str(&text(f)).unwrap();
        let s = b.server.unwrap();
        assert_eq!(s.id, "f5dc173b-6804-445a-a6d8-c705dad5b5eb");
        assert!(s.admin_pass.is_some());
        assert_eq!(s.security_groups[0].name.as_deref(), Some("default"));
    }),
    ("nova/servers/v2.100/server-create-resp.json", |f| {
        let b: nova::CreatedServerBody = serde_json::from_str(&text(f)).unwrap();
        assert_eq!(b.server.unwrap().id, "f5dc173b-6804-445a-a6d8-c705dad5b5eb");
    }),
    ("nova/os-multiple-create/multiple-create-post-resp.json", |f| {
        let b: nova::CreatedServerBody = serde_json::from_str(&text(f)).unwrap();
        assert!(b.server.is_none());
        assert!(b.reservation_id.unwrap().starts_with("r-"));
    }),
    ("nova/flavors/flavors-detail-resp.json", |f| {
        let p: nova::FlavorsPage = serde_json::from_str(&text(f)).unwrap();
        let fl: Vec<_> = p.flavors.into_iter().map(|f| f.into_domain()).collect();
        assert_eq!(fl.len(), 6);
        assert_eq!(fl[0].id, "1");
        assert_eq!(fl[0].swap_mb, 0, "swap \"\" means none");
        assert_eq!((fl[1].vcpus, fl[1].ram_mb, fl[1].disk_gb), (1, 2048, 20));
    }),
    ("nova/flavors/v2.102/flavors-detail-resp.json", |f| {
        let p: nova::FlavorsPage = serde_json::from_str(&text(f)).unwrap();
        assert_eq!(p.flavors.len(), 7);
        assert_eq!(p.flavors[0].swap, Some(0));
        assert!(p.flavors.iter().any(|f| !f.extra_specs.is_empty()));
    }),
    ("nova/limits/limit-get-resp.json", |f| {
        let b: nova::LimitsBody = serde_json::from_str(&text(f)).unwrap();
        let l = b.limits.into_domain();
        assert_eq!(l.max_instances, Some(10));
        assert_eq!(l.max_cores, Some(20));
        assert_eq!(l.max_ram_mb, Some(51200));
        assert_eq!(l.headroom(1, 512), Some(10));
    }),
    ("nova/limits/v2.57/limit-get-resp.json", |f| {
        let b: nova::LimitsBody = serde_json::from_str(&text(f)).unwrap();
        assert!(!b.limits.absolute.contains_key("maxPersonality"));
        assert_eq!(b.limits.into_domain().max_instances, Some(10));
    }),
    ("nova/os-quota-sets/v2.57/quotas-show-detail-get-resp.json", |f| {
        let b: nova::QuotaSetBody = serde_json::from_str(&text(f)).unwrap();
        assert_eq!(b.limit("instances"), Some(10));
        assert_eq!(b.in_use("instances"), Some(0));
    }),
    ("nova/os-server-tags/v2.26/server-tags-index-resp.json", |f| {
        let b: nova::TagsBody = serde_json::from_str(&text(f)).unwrap();
        assert_eq!(b.tags, vec!["tag1", "tag2"]);
    }),
    ("nova/versions/v21-version-get-resp.json", |f| {
        let b: nova::VersionBody = serde_json::from_str(&text(f)).unwrap();
        let v = b.version.unwrap();
        assert_eq!((v.id.as_str(), v.version.as_str(), v.min_version.as_str()), ("v2.1", "2.104", "2.1"));
        assert_eq!(stackpilot::cloud::session::parse_version(&v.version), Some((2, 104)));
    }),
    ("nova/versions/versions-get-resp.json", |f| {
        let b: nova::VersionBody = serde_json::from_str(&text(f)).unwrap();
        assert_eq!(b.versions.len(), 2);
        assert_eq!(b.versions[0].version, "", "v2.0 has no microversions");
        assert_eq!(b.versions[1].status, "CURRENT");
    }),
    ("keystone/auth/responses/project-scoped-password.json", |f| {
        let b: keystone::TokenBody = serde_json::from_str(&text(f)).unwrap();
        let t = b.token;
        assert_eq!(t.expires_at, Some(ts("2015-11-07T02:58:43.578887Z")));
        assert!(t.user.as_ref().unwrap().password_expires_at.is_some(), "naive µs timestamp");
        assert_eq!(t.project.as_ref().unwrap().name.as_deref(), Some("admin"));
        assert!(!t.catalog.is_empty());
        let url = stackpilot::cloud::session::select_endpoint(&t.catalog, "identity", "internal", Some("RegionOne"));
        assert!(url.is_some());
        assert_eq!(
            stackpilot::cloud::session::select_endpoint(&t.catalog, "identity", "public", Some("RegionTwo")),
            None
        );
    }),
    ("keystone/auth/responses/project-scoped-token.json", |f| {
        let b: keystone::TokenBody = serde_json::from_str(&text(f)).unwrap();
        assert_eq!(b.token.methods, vec!["token", "password"]);
    }),
    ("keystone/admin/auth-application-credential-response.json", |f| {
        let b: keystone::TokenBody = serde_json::from_str(&text(f)).unwrap();
        let ac = b.token.application_credential.unwrap();
        assert!(ac.id.is_some() && ac.restricted.is_some());
        assert_eq!(b.token.user.unwrap().password_expires_at, None);
    }),
    ("keystone/admin/get-service-catalog-response.json", |f| {
        let b: keystone::CatalogBody = serde_json::from_str(&text(f)).unwrap();
        let e = &b.catalog[0].endpoints[0];
        assert_eq!(e.region_id, None);
        assert!(!e.region().is_empty(), "falls back to the deprecated region");
        assert_eq!(b.catalog[0].service_type, "identity");
    }),
    ("keystoneauth/keystone_v3_sample_response.json", |f| {
        let b: keystone::TokenBody = serde_json::from_str(&text(f)).unwrap();
        assert_eq!(b.token.expires_at, None, "malformed expires_at is rejected, not misread");
        assert_eq!(b.token.issued_at, None);
        let url =
            stackpilot::cloud::session::select_endpoint(&b.token.catalog, "identity", "public", Some("RegionOne"));
        assert_eq!(url.as_deref(), Some("http://localhost:5000/v2.0"), "region-only endpoints still match");
        assert_eq!(
            stackpilot::cloud::session::select_endpoint(&b.token.catalog, "identity", "adminURL", None).as_deref(),
            Some("http://localhost:3537/v2.0")
        );
    }),
    ("glance/images-list-response.json", |f| {
        let p: glance::ImagesPage = serde_json::from_str(&text(f)).unwrap();
        assert_eq!(p.images.len(), 2);
        assert_eq!(p.next, None);
        assert_eq!(p.first.as_deref(), Some("/v2/images"));
        let i = p.images[0].clone().into_domain();
        assert_eq!(i.status, "active");
        assert_eq!(i.name.as_deref(), Some("cirros-0.3.2-x86_64-disk"));
    }),
    ("glance/image-show-response.json", |f| {
        let w: glance::WImage = serde_json::from_str(&text(f)).unwrap();
        assert_eq!(w.virtual_size, None);
        let i = w.into_domain();
        assert!(!i.id.is_empty());
        assert!(i.properties.contains_key("os_hash_algo"), "extra top-level properties kept");
    }),
    ("neutron/networks/networks-list-response.json", |f| {
        let p: neutron::NetworksPage = serde_json::from_str(&text(f)).unwrap();
        let n = p.networks[0].clone();
        assert!(n.created_at.is_some(), "timestamp without zone");
        let n = n.into_domain();
        assert_eq!((n.name.as_str(), n.status.as_str()), ("net1", "ACTIVE"));
        assert!(n.project_id.is_some());
    }),
    ("neutron/ports/ports-list-response.json", |f| {
        let p: neutron::PortsPage = serde_json::from_str(&text(f)).unwrap();
        let port = p.ports[0].clone().into_domain();
        assert_eq!(port.name, None, "empty names are no names");
        assert!(!port.fixed_ips.is_empty());
        assert!(port.mac_address.is_some());
    }),
    ("neutron/floatingips/floating-ips-list-response.json", |f| {
        let p: neutron::FloatingIpsPage = serde_json::from_str(&text(f)).unwrap();
        let fips: Vec<_> = p.floatingips.into_iter().map(|f| f.into_domain()).collect();
        assert_eq!(fips[0].floating_ip_address, "172.24.4.228");
        assert_eq!(fips[0].fixed_ip_address.as_deref(), Some("10.0.0.3"));
        assert!(fips.iter().any(|f| f.port_id.is_none()), "an unassociated one");
    }),
    ("cinder/volumes/v3.69/volumes-list-detailed-response.json", |f| {
        let p: cinder::VolumesPage = serde_json::from_str(&text(f)).unwrap();
        let w: cinder::WVolume = serde_json::from_value(p.volumes[0].clone()).unwrap();
        let v = w.into_domain();
        assert_eq!(v.id, "cb49b381-9012-40cb-b8ee-80c19a4801b5");
        assert_eq!(v.name, None);
        assert!(!v.bootable, "\"false\" string");
        assert_eq!(v.status, "creating");
        assert_eq!(v.label(), v.id);
    }),
    ("cinder/backups/backups-list-detailed-response.json", |f| {
        let p: cinder::BackupsPage = serde_json::from_str(&text(f)).unwrap();
        let b: cinder::WBackup = serde_json::from_value(p.backups[0].clone()).unwrap();
        let b = b.into_domain();
        assert_eq!(b.status, "creating");
        assert!(!b.is_incremental);
        assert_eq!(b.volume_id, "9fc31617-303d-4b52-826e-b598cca40419");
    }),
    ("cinder/backups/v3.56/backups-list-detailed-response.json", |f| {
        let p: cinder::BackupsPage = serde_json::from_str(&text(f)).unwrap();
        assert_eq!(p.count, Some(1));
        let b: cinder::WBackup = serde_json::from_value(p.backups[0].clone()).unwrap();
        assert_eq!(b.size, Some(10));
        assert_eq!(b.created_at, Some(ts("2023-06-23T11:56:02.012007")));
    }),
    ("cinder/backups/backup-create-response.json", |f| {
        let b: cinder::BackupBody = serde_json::from_str(&text(f)).unwrap();
        assert_eq!(b.backup.id, "b1f41f9b-741e-4992-a246-b97de7e6e87e");
        assert_eq!(b.backup.name.as_deref(), Some("backup001"));
    }),
    ("cinder/backup-restore-response.json", |f| {
        let b: cinder::RestoreBody = serde_json::from_str(&text(f)).unwrap();
        assert_eq!(b.restore.backup_id, "2ef47aee-8844-490c-804d-2a8efe561c65");
        assert_eq!(b.restore.volume_id, "795114e8-7489-40be-a978-83797f2c1dd3");
    }),
    ("cinder/snapshots/v3.65/snapshots-list-detailed-response.json", |f| {
        let p: cinder::SnapshotsPage = serde_json::from_str(&text(f)).unwrap();
        let s = p.snapshots[0].clone().into_domain();
        assert_eq!(s.progress.as_deref(), Some("0%"));
        assert_eq!(s.volume_id, "7acd675e-4e06-4653-af9f-2ecd546342d6");
    }),
    ("cinder/limits/limits-show-response.json", |f| {
        let b: cinder::VolumeLimitsBody = serde_json::from_str(&text(f)).unwrap();
        assert!(b.limits.absolute.contains_key("maxTotalBackups"));
        assert!(b.limits.absolute.contains_key("totalGigabytesUsed"));
    }),
    ("heat/stacks-list-response.json", |f| {
        let p: heat::StacksPage = serde_json::from_str(&text(f)).unwrap();
        assert_eq!(p.stacks[0].action_state(), ("CREATE", "COMPLETE"));
        assert_eq!(p.stacks[0].updated_time, None);
    }),
    ("heat/stack-show-response.json", |f| {
        let b: heat::StackBody = serde_json::from_str(&text(f)).unwrap();
        assert_eq!(b.stack.stack_name, "simple_stack");
        assert!(b.stack.outputs.is_some());
    }),
    ("gnocchi/generated/get-metric.json", |f| {
        let m: gnocchi::Metric = serde_json::from_str(&text(f)).unwrap();
        assert_eq!(m.id, "8f12dbda-c7d9-45bc-b4c2-bc13ba98961d");
        let ap = m.archive_policy.unwrap();
        let spans: Vec<f64> =
            ap.definition.iter().filter_map(|d| gnocchi::parse_timedelta(d.timespan.as_deref()?)).collect();
        assert!(spans.contains(&(7.0 * 86400.0)), "{spans:?}");
    }),
    ("gnocchi/generated/get-measures.json", |f| {
        let m = gnocchi::parse_measures(&json(f));
        let grans: std::collections::BTreeSet<i64> =
            m.iter().map(|x| x.granularity.seconds().unwrap() as i64).collect();
        assert!(grans.len() > 1, "without granularity the series are mixed");
        assert_eq!(m[0].granularity.seconds(), Some(3600.0), "ordered by granularity desc");
    }),
    ("gnocchi/generated/get-measures-granularity.json", |f| {
        let m = gnocchi::parse_measures(&json(f));
        assert!(m.iter().all(|x| x.granularity.seconds() == Some(1.0)));
        assert!(!m.is_empty());
    }),
    ("gnocchi/generated/get-measures-resample-calendar.json", |f| {
        let m = gnocchi::parse_measures(&json(f));
        assert_eq!(m[0].granularity, gnocchi::Granularity::Calendar("W".into()));
    }),
    ("gnocchi/generated/list-resource-generic-pagination.json", |f| {
        let r: Vec<gnocchi::Resource> = serde_json::from_str(&text(f)).unwrap();
        assert_eq!(r.len(), 2);
        let idx: Value = json("gnocchi/generated/_index.json");
        let link =
            idx.as_array().unwrap().iter().find(|e| e["file"] == "list-resource-generic-pagination.json").unwrap()
                ["headers"]["Link"]
                .as_str()
                .unwrap()
                .to_string();
        let next = stackpilot::cloud::metric::link_next(Some(&link)).unwrap();
        assert!(next.contains(&format!("marker={}", r[1].id)));
    }),
    ("gnocchi/generated/search-resource-for-user.json", |f| {
        let r: Vec<gnocchi::Resource> = serde_json::from_str(&text(f)).unwrap();
        assert!(r.iter().all(|x| x.resource_type == "instance"));
        assert!(r[0].attr("display_name").is_some());
    }),
    ("gnocchi/generated/x-empty-search-resource-instance.json", |f| {
        let r: Vec<gnocchi::Resource> = serde_json::from_str(&text(f)).unwrap();
        assert!(r.is_empty());
    }),
    ("gnocchi/generated/get-aggregates-by-metric-ids.json", |f| {
        let s = gnocchi::parse_aggregates(&json(f));
        assert_eq!(s[0].key, "aggregated");
        assert!(!s[0].measures.is_empty());
    }),
    ("gnocchi/generated/get-aggregates-by-attributes-lookup.json", |f| {
        let s = gnocchi::parse_aggregates(&json(f));
        assert_eq!(s[0].key, "aggregated");
    }),
    ("gnocchi/generated/get-aggregates-by-attributes-lookup-groupby.json", |f| {
        let s = gnocchi::parse_aggregates(&json(f));
        assert!(
            s.iter().all(|x| x.group.contains_key("host") && x.group.contains_key("flavor_id")),
            "doubled measures key"
        );
        assert!(s.iter().any(|x| !x.measures.is_empty()));
    }),
    ("gnocchi/generated/use-case1-top-cpuutil-per-instances.json", |f| {
        let s = gnocchi::parse_aggregates(&json(f));
        assert!(!s.is_empty());
        assert!(s.iter().all(|x| x.metric.is_some()), "resource → metric → aggregation");
    }),
    ("gnocchi/generated/x-get-cpu-measures-rate-mean.json", |f| {
        let m = gnocchi::parse_measures(&json(f));
        assert_eq!(m.len(), 6, "first point dropped by rate");
        let pct = stackpilot::cloud::metric::cpu_percent(m[0].value.unwrap(), m[0].granularity.seconds().unwrap(), 1);
        assert!((pct - 20.0).abs() < 1e-9);
    }),
    ("gnocchi/generated/x-aggregates-metric-by-name-multi.json", |f| {
        let s = gnocchi::parse_aggregates(&json(f));
        let cpu = s.iter().find(|x| x.metric.as_deref() == Some("cpu")).unwrap();
        assert_eq!(cpu.aggregation, "rate:mean");
        assert_eq!(cpu.key, "7f2c3c1e-6e0a-4a53-9d0c-000000000abc");
        let mem = s.iter().find(|x| x.metric.as_deref() == Some("memory.usage")).unwrap();
        assert_eq!(mem.measures[0].value, Some(512.0));
    }),
    ("gnocchi/generated/x-aggregates-cpu-percent.json", |f| {
        let s = gnocchi::parse_aggregates(&json(f));
        assert!(s[0].measures.iter().all(|m| m.value == Some(20.0)));
    }),
    ("gnocchi/generated/x-error-get-unknown-metric-accept-json.json", |f| {
        let m = stackpilot::cloud::error::error_message(&text(f)).unwrap();
        assert_eq!(m, "Metric 00000000-0000-0000-0000-000000001234 does not exist");
    }),
    ("gnocchi/generated/x-error-aggregates-bad-operations-accept-json.json", |f| {
        let m = stackpilot::cloud::error::error_message(&text(f)).unwrap();
        assert!(m.starts_with("Invalid input: Operation need at least one argument"), "{m}");
    }),
    ("gnocchi/generated/_index.json", |f| {
        let v = json(f);
        assert!(v.as_array().unwrap().iter().all(|e| e["request"]["path_qs"].as_str().unwrap().starts_with("/v1/")));
    }),
    ("gnocchi/generated/all-scenarios.json", |f| {
        // Every recorded error body, JSON or text, yields a message.
        let v = json(f);
        let mut errors = 0;
        for s in v.as_array().unwrap() {
            let status = s["response"]["status"].as_str().unwrap();
            if status.starts_with('4') || status.starts_with('5') {
                let body = match &s["response"]["body"] {
                    Value::String(t) => t.clone(),
                    other => other.to_string(),
                };
                let m = stackpilot::cloud::error::error_message(&body).unwrap_or_default();
                assert!(!m.is_empty() && !m.contains("\n\n"), "{}: {m:?}", s["name"]);
                errors += 1;
            }
            if s["name"] == "x-get-cpu-measures-mean-raw" {
                assert_eq!(gnocchi::parse_measures(&s["response"]["body"]).len(), 7);
            }
        }
        assert!(errors >= 4);
    }),
];

#[test]
fn response_vectors_parse_with_the_fields_that_matter() {
    for (f, check) in RESPONSES {
        check(f);
    }
}

fn all_vector_files() -> Vec<String> {
    fn walk(base: &std::path::Path, d: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(p.strip_prefix(base).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut v = Vec::new();
    walk(&dir(), &dir(), &mut v);
    v.sort();
    v
}

#[test]
fn every_vector_is_covered() {
    let handled: std::collections::BTreeSet<&str> =
        RESPONSES.iter().map(|(f, _)| *f).chain(REQUESTS.iter().map(|(f, _)| *f)).collect();
    let missing: Vec<String> = all_vector_files().into_iter().filter(|f| !handled.contains(f.as_str())).collect();
    assert!(missing.is_empty(), "vectors nobody reads: {missing:#?}");
}

fn auth_req(rel: &str) -> AuthRequest {
    parse_auth(&json(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Request vectors, read by the simulator's request parsers (it is the server that
/// receives them).
const REQUESTS: &[Check] = &[
    ("nova/servers/server-create-req.json", |f| {
        let (c, rri) = nova_sim::parse_create(&json(f), (2, 1)).unwrap();
        assert_eq!(c.name, "new-server-test");
        assert!(c.image_ref.is_some() && !c.flavor_ref.is_empty());
        assert!(c.auto_network, "no networks before 2.37 means auto");
        assert!(c.user_data.is_some(), "base64 user_data decodes");
        assert_eq!(c.metadata.get("My Server Name").map(String::as_str), Some("Apache1"));
        assert!(!rri);
        assert!(nova_sim::parse_create(&json(f), (2, 57)).is_err(), "personality is refused from 2.57");
    }),
    ("nova/servers/v2.37/server-create-req.json", |f| {
        let (c, _) = nova_sim::parse_create(&json(f), (2, 37)).unwrap();
        assert!(c.auto_network);
        assert!(c.flavor_ref.starts_with("http"), "flavorRef may be a URL");
        let mut no_nets = json(f);
        no_nets["server"].as_object_mut().unwrap().remove("networks");
        assert!(nova_sim::parse_create(&no_nets, (2, 37)).is_err(), "networks required from 2.37");
    }),
    ("nova/servers/v2.52/server-create-req.json", |f| {
        let (c, _) = nova_sim::parse_create(&json(f), (2, 52)).unwrap();
        assert_eq!(c.tags, vec!["tag1", "tag2"]);
        assert!(nova_sim::parse_create(&json(f), (2, 51)).is_err(), "tags only from 2.52");
    }),
    ("nova/os-multiple-create/multiple-create-post-req.json", |f| {
        let (c, rri) = nova_sim::parse_create(&json(f), (2, 1)).unwrap();
        assert_eq!(c.min_count, 2, "string \"2\" accepted");
        assert!(rri, "string \"True\" accepted");
    }),
    ("nova/servers/server-action-reboot.json", |f| assert_eq!(json(f)["reboot"]["type"], "HARD")),
    ("nova/servers/server-action-start.json", |f| assert!(json(f).get("os-start").is_some())),
    ("nova/servers/server-action-stop.json", |f| assert!(json(f).get("os-stop").is_some())),
    ("nova/servers/v2.57/server-action-rebuild.json", |f| {
        let v = json(f);
        assert!(v["rebuild"]["imageRef"].is_string() && v["rebuild"]["user_data"].is_string());
    }),
    ("keystone/auth/requests/project-name-password.json", |f| {
        let r = auth_req(f);
        assert_eq!(r.methods, vec!["password"]);
        assert!(matches!(r.password, Some((Named::Id(_), _))));
        assert!(matches!(r.scope, Some(ScopeSel::Project(Named::Name { domain: DomainSel::Id(_), .. }))));
    }),
    ("keystone/auth/requests/project-name-token.json", |f| {
        let r = auth_req(f);
        assert_eq!(r.token.as_deref(), Some("'$OS_TOKEN'"), "the artefact is read verbatim");
    }),
    ("keystone/admin/auth-password-unscoped-request-with-domain.json", |f| {
        let r = auth_req(f);
        assert!(matches!(r.password, Some((Named::Name { domain: DomainSel::Name(_), .. }, _))));
        assert_eq!(r.scope, None);
    }),
    ("keystone/admin/auth-application-credential-id-request.json", |f| {
        let ac = auth_req(f).application_credential.unwrap();
        assert!(ac.id.is_some() && ac.user.is_none() && !ac.secret.is_empty());
    }),
    ("keystone/admin/auth-application-credential-name-request.json", |f| {
        let ac = auth_req(f).application_credential.unwrap();
        assert!(ac.name.is_some() && matches!(ac.user, Some(Named::Id(_))));
    }),
    ("cinder/backups/backup-create-request.json", |f| {
        let b = stackpilot::sim::cinder::parse_backup_create(&json(f), (3, 0)).unwrap();
        assert_eq!(b.name.as_deref(), Some("backup001"));
        assert_eq!(b.volume_id, "0aa67a0c-7339-4be6-b5d5-2afe21ca270c");
        assert!(b.incremental);
    }),
    ("cinder/backup-restore-request.json", |f| {
        let (vid, name) = stackpilot::sim::cinder::parse_restore(&json(f)).unwrap();
        assert_eq!(vid.as_deref(), Some("64f5d2fb-d836-4063-b7e2-544d5c1ff607"));
        assert_eq!(name.as_deref(), Some("vol-01"));
    }),
];

/// The client's own requests parse into what the documented samples carry.
#[test]
fn client_auth_bodies_read_like_keystone_samples() {
    use stackpilot::cloud::session::auth_body;
    use stackpilot::config::clouds::{AuthMethod, DomainRef, Scope, UserRef};
    use stackpilot::config::Secret;
    let pw = AuthMethod::Password {
        user: UserRef { id: Some("ee4dfb6e5540447cb3741905149d9b6e".into()), name: None, domain: DomainRef::default() },
        password: Secret::new("devstacker"),
        scope: Scope::Project {
            id: None,
            name: Some("admin".into()),
            domain: DomainRef { id: Some("default".into()), name: None },
        },
    };
    let mine = parse_auth(&auth_body(&pw)).unwrap();
    let sample = auth_req("keystone/auth/requests/project-name-password.json");
    assert_eq!(mine.methods, sample.methods);
    assert_eq!(mine.scope, sample.scope);
    assert_eq!(mine.password.map(|p| p.0), sample.password.map(|p| p.0));
    let ac = AuthMethod::ApplicationCredential {
        id: None,
        name: Some("monitoring".into()),
        user: Some(UserRef {
            id: Some("423f19a4ac1e4f48bbb4180756e6eb6c".into()),
            name: None,
            domain: DomainRef::default(),
        }),
        secret: Secret::new("rEaqvJka48mpv"),
    };
    assert_eq!(
        parse_auth(&auth_body(&ac)).unwrap().application_credential.map(|a| (a.name, a.user)),
        auth_req("keystone/admin/auth-application-credential-name-request.json")
            .application_credential
            .map(|a| (a.name, a.user))
    );
}

/// The client's create request parses as a 2.52+ create in the simulator.
#[test]
fn client_create_body_is_a_valid_nova_request() {
    use stackpilot::cloud::compute::{CreateServer, NetworkSpec};
    let c = CreateServer {
        name: "web-r1-s0-abcd1234".into(),
        image_id: Some("img".into()),
        flavor_id: "2".into(),
        networks: vec![NetworkSpec::Uuid("net".into())],
        user_data: Some("#cloud-config\n".into()),
        metadata: [("stackpilot:app".to_string(), "web".to_string())].into(),
        tags: vec!["stackpilot-op-abcd".into()],
        ..Default::default()
    };
    let (parsed, _) = nova_sim::parse_create(&c.body(), (2, 96)).unwrap();
    assert_eq!(parsed.tags, vec!["stackpilot-op-abcd"]);
    assert_eq!(parsed.networks, vec!["net"]);
    assert_eq!(parsed.user_data.as_deref(), Some("#cloud-config\n"));
    assert_eq!(parsed.metadata.get("stackpilot:app").map(String::as_str), Some("web"));
}
