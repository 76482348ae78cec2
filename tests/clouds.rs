//! clouds.yaml / secure.yaml / OS_* resolution, table-driven, including the error
//! messages an operator sees.

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

use stackpilot::config::clouds::{AuthMethod, CloudSource, CloudsFile, Interface, Scope};
use stackpilot::config::paths::MapEnv;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Fixture { dir: tempfile::tempdir().unwrap() }
    }
    fn write(&self, rel: &str, text: &str) -> std::path::PathBuf {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }
    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }
    /// An environment whose HOME, XDG dirs and cwd live in the fixture.
    fn env(&self) -> MapEnv {
        std::fs::create_dir_all(self.path("cwd")).unwrap();
        MapEnv { cwd: Some(self.path("cwd")), ..Default::default() }.with("HOME", self.path("home").to_string_lossy())
    }
}

const PROD: &str = "clouds:\n  prod:\n    auth:\n      auth_url: https://keystone.prod:5000/v3\n      username: ops\n      password: file-pass\n      project_name: web\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: RegionOne\n";

fn resolve(env: &MapEnv, name: Option<&str>) -> Result<stackpilot::config::CloudConfig, String> {
    let cf = CloudsFile::discover(env).map_err(|e| e.to_string())?;
    cf.resolve_selected(name, None).map_err(|e| e.to_string())
}

#[test]
fn search_order_matches_the_openstack_cli() {
    // (files present, expected winner)
    let cases: &[(&[&str], &str)] = &[
        (&["home/.config/openstack/clouds.yaml"], "home/.config/openstack/clouds.yaml"),
        (&["xdg/openstack/clouds.yml", "home/.config/openstack/clouds.yaml"], "xdg/openstack/clouds.yml"),
        (&["cwd/clouds.yaml", "xdg/openstack/clouds.yml"], "cwd/clouds.yaml"),
        (&["explicit.yaml", "cwd/clouds.yaml"], "explicit.yaml"),
        (&["cwd/clouds.json"], "cwd/clouds.json"),
    ];
    for (files, winner) in cases {
        let f = Fixture::new();
        for file in *files {
            let text = if file.ends_with(".json") {
                r#"{"clouds": {"prod": {"auth": {"auth_url": "https://k/v3", "username": "u", "password": "p", "project_name": "x"}}}}"#.to_string()
            } else {
                PROD.to_string()
            };
            f.write(file, &text);
        }
        let mut env = f.env().with("XDG_CONFIG_HOME", f.path("xdg").to_string_lossy());
        if files.contains(&"explicit.yaml") {
            env = env.with("OS_CLIENT_CONFIG_FILE", f.path("explicit.yaml").to_string_lossy());
        }
        let cf = CloudsFile::discover(&env).unwrap();
        assert_eq!(cf.clouds_path(), Some(f.path(winner).as_path()), "{files:?}");
    }
}

#[test]
fn secure_yaml_is_merged_over_clouds_yaml() {
    let f = Fixture::new();
    f.write("cwd/clouds.yaml", &PROD.replace("      password: file-pass\n", ""));
    f.write("home/.config/openstack/secure.yaml", "clouds:\n  prod:\n    auth:\n      password: from-secure\n");
    let c = resolve(&f.env(), Some("prod")).unwrap();
    match &c.auth {
        AuthMethod::Password { password, user, scope } => {
            assert_eq!(password.expose(), "from-secure");
            assert_eq!(user.name.as_deref(), Some("ops"));
            assert!(matches!(scope, Scope::Project { name: Some(n), .. } if n == "web"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&c.source, CloudSource::File { secure: Some(_), .. }));
    assert!(c.source.to_string().contains("secure.yaml"));
}

#[test]
fn selection_rule_flag_then_os_cloud_then_env_then_single() {
    let f = Fixture::new();
    f.write("cwd/clouds.yaml", &format!("{PROD}  lab:\n    auth:\n      auth_url: https://lab/v3\n      username: u\n      password: p\n      project_name: x\n"));
    let env = f.env();
    // Two clouds, nothing chosen.
    let e = resolve(&env, None).unwrap_err();
    assert!(e.contains("several clouds are defined (prod, lab)") && e.contains("--cloud NAME or OS_CLOUD"), "{e}");
    assert_eq!(resolve(&env.clone().with("OS_CLOUD", "lab"), None).unwrap().name, "lab");
    assert_eq!(resolve(&env.clone().with("OS_CLOUD", "lab"), Some("prod")).unwrap().name, "prod", "--cloud wins");
    // OS_* alone form the envvars cloud, chosen when OS_CLOUD is unset.
    let envc = env
        .clone()
        .with("OS_AUTH_URL", "https://env/v3")
        .with("OS_USERNAME", "eu")
        .with("OS_PASSWORD", "ep")
        .with("OS_PROJECT_NAME", "ev");
    let c = resolve(&envc, None).unwrap();
    assert_eq!((c.name.as_str(), c.auth_url.as_str()), ("envvars", "https://env/v3"));
    assert_eq!(c.source, CloudSource::Env);
    assert_eq!(resolve(&envc.clone().with("OS_CLOUD_NAME", "mine"), None).unwrap().name, "mine");
}

#[test]
fn os_variables_override_the_selected_cloud_only() {
    let f = Fixture::new();
    f.write("cwd/clouds.yaml", &format!("{PROD}  lab:\n    auth:\n      auth_url: https://lab/v3\n      username: u\n      password: lab-pass\n      project_name: x\n"));
    let env = f.env().with("OS_CLOUD", "prod").with("OS_PASSWORD", "env-pass").with("OS_REGION_NAME", "RegionTwo");
    let cf = CloudsFile::discover(&env).unwrap();
    let c = cf.resolve_selected(None, None).unwrap();
    let AuthMethod::Password { password, .. } = &c.auth else { panic!() };
    assert_eq!(password.expose(), "env-pass", "OS_* > clouds.yaml");
    assert_eq!(c.region.as_deref(), Some("RegionTwo"));
    assert!(c.source.to_string().contains("OS_PASSWORD"), "{}", c.source);
    // Other clouds of a multi-cloud console keep their own values.
    let lab = cf.resolve("lab").unwrap();
    let AuthMethod::Password { password, .. } = &lab.auth else { panic!() };
    assert_eq!(password.expose(), "lab-pass");
    // A flag beats OS_REGION_NAME.
    assert_eq!(cf.resolve_selected(None, Some("RegionThree")).unwrap().region.as_deref(), Some("RegionThree"));
}

#[test]
fn every_supported_auth_type_and_option() {
    let f = Fixture::new();
    f.write(
        "cwd/clouds.yaml",
        r#"clouds:
  appcred-id:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://k/v3
      application_credential_id: abc
      application_credential_secret: s
  appcred-name:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://k/v3
      application_credential_name: mon
      username: ops
      user_domain_name: Default
      application_credential_secret: s
  tok:
    auth_type: token
    auth:
      auth_url: https://k/v3
      token: t0k
      project_id: p1
  v3pw:
    auth_type: v3password
    auth:
      auth-url: https://k/v3
      user_id: u1
      password: p
      project_id: p1
    region_name: "RegionOne,RegionTwo"
    interface: internalURL
    verify: false
    block_storage_endpoint_override: https://cinder.internal/v3/p1
  tls:
    auth:
      auth_url: https://k/v3
      username: u
      password: p
      project_name: x
      domain_name: Corp
    cacert: ~/corp.pem
    regions:
      - name: West
      - East
"#,
    );
    f.write("home/corp.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    let env = f.env();
    let cf = CloudsFile::discover(&env).unwrap();
    assert!(matches!(
        cf.resolve("appcred-id").unwrap().auth,
        AuthMethod::ApplicationCredential { id: Some(_), user: None, .. }
    ));
    match cf.resolve("appcred-name").unwrap().auth {
        AuthMethod::ApplicationCredential { name: Some(n), user: Some(u), .. } => {
            assert_eq!(n, "mon");
            assert_eq!(u.domain.name.as_deref(), Some("Default"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        cf.resolve("tok").unwrap().auth,
        AuthMethod::Token { scope: Scope::Project { id: Some(_), .. }, .. }
    ));
    let v = cf.resolve("v3pw").unwrap();
    assert_eq!(v.auth_url, "https://k/v3", "`auth-url` is normalised");
    assert_eq!(v.interface, Interface::Internal);
    assert_eq!(v.region.as_deref(), Some("RegionOne"));
    assert_eq!(v.regions, vec!["RegionOne", "RegionTwo"]);
    assert!(!v.verify);
    assert_eq!(v.endpoint_overrides.get("block-storage").map(String::as_str), Some("https://cinder.internal/v3/p1"));
    let t = cf.resolve("tls").unwrap();
    assert!(t.verify);
    assert_eq!(t.cacert.as_deref(), Some(f.path("home/corp.pem").as_path()));
    assert_eq!(t.region.as_deref(), Some("West"));
    match t.auth {
        AuthMethod::Password { user, scope: Scope::Project { domain, .. }, .. } => {
            assert_eq!(user.domain.name.as_deref(), Some("Corp"), "domain_name is the default for both");
            assert_eq!(domain.name.as_deref(), Some("Corp"));
        }
        other => panic!("{other:?}"),
    }
}

/// (clouds.yaml text, cloud, env extras, what the one-line error must contain)
type ErrorCase<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);

#[test]
fn errors_name_the_file_the_key_and_the_fix() {
    let cases: &[ErrorCase] = &[
        (
            "clouds:\n  prod:\n    auth:\n      auth_url: x\n     username: bad-indent\n",
            "prod",
            &[],
            &["clouds.yaml:5:", "not valid YAML", "fix the syntax"],
        ),
        (PROD, "staging", &[], &["cloud `staging` is not defined", "defined clouds: prod", "clouds.staging"]),
        (
            &PROD.replace("      password: file-pass\n", ""),
            "prod",
            &[],
            &["clouds.yaml:3", "has no password", "clouds.prod.auth.password", "secure.yaml", "OS_PASSWORD"],
        ),
        (
            &PROD.replace("      auth_url: https://keystone.prod:5000/v3\n", ""),
            "prod",
            &[],
            &["has no auth_url", "clouds.prod.auth.auth_url"],
        ),
        (
            &PROD.replace("    region_name: RegionOne\n", "    auth_type: v3oidcpassword\n"),
            "prod",
            &[],
            &["auth_type `v3oidcpassword` is not supported", "v3applicationcredential"],
        ),
        (&PROD.replace("      project_name: web\n", ""), "prod", &[], &["names no project", "project_name"]),
        (
            &PROD.replace(
                "region_name: RegionOne",
                "region_name: RegionOne\n    regions: [RegionOne]\n    interface: sideways",
            ),
            "prod",
            &[],
            &["interface `sideways`", "public"],
        ),
        ("clouds: [a, b]\n", "prod", &[], &["`clouds` must be a mapping"]),
        (
            &PROD.replace("https://keystone.prod:5000/v3", "keystone.prod:5000/v3"),
            "prod",
            &[],
            &[
                "clouds.yaml:4:",
                "auth_url `keystone.prod:5000/v3` is not an http(s) URL",
                "clouds.prod.auth.auth_url",
                "https://keystone.example.com",
            ],
        ),
        (
            &PROD.replace("https://keystone.prod:5000/v3", "ops:file-pass@keystone.prod:5000/v3"),
            "prod",
            &[],
            &["clouds.yaml:4:", "auth_url `…@keystone.prod:5000/v3` is not an http(s) URL"],
        ),
        (
            &PROD.replace("https://keystone.prod:5000/v3", "https://"),
            "prod",
            &[],
            &["clouds.yaml:4:", "is not an http(s) URL", "empty host"],
        ),
        (
            &PROD.replace(
                "    region_name: RegionOne\n",
                "    region_name: RegionOne\n    cacert: /nonexistent/ca.pem\n",
            ),
            "prod",
            &[],
            &[
                "clouds.yaml:11:",
                "clouds.prod.cacert",
                "the CA bundle `/nonexistent/ca.pem` cannot be read",
                "remove it",
            ],
        ),
        (
            &PROD.replace("    region_name: RegionOne\n", "    region_name: RegionOne\n    verify: maybe\n"),
            "prod",
            &[],
            &[
                "clouds.yaml:11:",
                "clouds.prod.verify",
                "`maybe` cannot be read",
                "true, false or the path of a CA bundle",
            ],
        ),
        (
            &PROD.replace("    region_name: RegionOne\n", "    region_name: RegionOne\n    cert: Cargo.toml\n"),
            "prod",
            &[],
            &["clouds.yaml:11:", "clouds.prod.cert", "is not a PEM file"],
        ),
    ];
    for (text, cloud, extra, wants) in cases {
        let f = Fixture::new();
        f.write("cwd/clouds.yaml", text);
        let mut env = f.env();
        for (k, v) in *extra {
            env = env.with(k, *v);
        }
        let e = resolve(&env, Some(cloud)).unwrap_err();
        assert!(!e.contains('\n'), "one line: {e}");
        for w in *wants {
            assert!(e.contains(w), "`{w}` missing from: {e}");
        }
        assert!(!e.contains("file-pass"), "no secret in errors: {e}");
    }
}

#[test]
fn env_cloud_errors_name_the_variables() {
    let f = Fixture::new();
    let env = f.env().with("OS_AUTH_URL", "https://k/v3").with("OS_USERNAME", "u").with("OS_PROJECT_NAME", "p");
    let e = resolve(&env, None).unwrap_err();
    assert!(e.contains("OS_PASSWORD"), "{e}");
    let none = resolve(&f.env(), None).unwrap_err();
    assert!(none.contains("no cloud is configured") && none.contains("--demo"), "{none}");
}

#[test]
fn legacy_variable_names_are_understood() {
    let f = Fixture::new();
    let env = f
        .env()
        .with("OS_AUTH_URL", "https://k/v3")
        .with("OS_USERNAME", "u")
        .with("OS_PASSWORD", "p")
        .with("OS_TENANT_NAME", "legacy")
        .with("OS_ENDPOINT_TYPE", "adminURL")
        .with("OS_INSECURE", "True");
    let c = resolve(&env, None).unwrap();
    assert!(
        matches!(c.auth, AuthMethod::Password { scope: Scope::Project { name: Some(ref n), .. }, .. } if n == "legacy")
    );
    assert_eq!(c.interface, Interface::Admin);
    assert!(!c.verify);
}
