//! Changing a policy file the way an operator would by hand: the values set in
//! place with `toml_edit` (comments, key order and layout kept), the result
//! checked as strictly as the engine reads it, the change described in words
//! and as a unified diff, and the file written atomically (a temporary file in
//! the same directory, synced, then renamed over the old one).

use super::model::{parse, AppRunMode, Policy, PolicyError, PolicyFile};
use super::scaling::MetricName;
use std::io::Write;
use std::path::{Path, PathBuf};
use toml_edit::{DocumentMut, Item, TableLike, Value};

/// A value operators change under pressure, editable in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Desired,
    Min,
    Max,
    /// The target of the n-th `[[scaling.metrics]]`.
    Target(usize),
    Image,
    Flavor,
    /// `[app] mode`: auto, dry-run or paused.
    Mode,
}

impl Field {
    /// The fields of a policy, in the order the form shows them.
    pub fn of(spec: &PolicyFile) -> Vec<Field> {
        let mut v = vec![Field::Desired, Field::Min, Field::Max];
        let n = spec.scaling.as_ref().map_or(0, |s| s.metrics.len());
        v.extend((0..n).map(Field::Target));
        v.extend([Field::Image, Field::Flavor, Field::Mode]);
        v
    }

    /// The label the form shows (`target cpu %`).
    pub fn label(&self, spec: &PolicyFile) -> String {
        match self {
            Field::Desired => "desired".into(),
            Field::Min => "min".into(),
            Field::Max => "max".into(),
            Field::Target(i) => match metric(spec, *i) {
                Some(m) => format!("target {} {}", m.as_str(), unit(m)),
                None => format!("target #{}", i + 1),
            },
            Field::Image => "image".into(),
            Field::Flavor => "flavor".into(),
            Field::Mode => "mode".into(),
        }
    }

    /// The field's value in a policy, as the form shows it.
    pub fn value(&self, spec: &PolicyFile) -> String {
        let c = spec.deploy.capacity;
        match self {
            Field::Desired => c.desired.to_string(),
            Field::Min => c.min.to_string(),
            Field::Max => c.max.to_string(),
            Field::Target(i) => {
                spec.scaling.as_ref().and_then(|s| s.metrics.get(*i)).map(|m| number(m.target)).unwrap_or_default()
            }
            Field::Image => spec.deploy.image.clone(),
            Field::Flavor => spec.deploy.flavor.clone(),
            Field::Mode => spec.app.mode.as_str().into(),
        }
    }

    /// Whether a policy error (by its dotted field) is about this field.
    pub fn owns(&self, path: &str) -> bool {
        match self {
            Field::Desired | Field::Min | Field::Max => path.starts_with("deploy.capacity"),
            Field::Target(_) => path.starts_with("scaling.metrics") || path == "scaling",
            Field::Image => path == "deploy.image",
            Field::Flavor => path == "deploy.flavor",
            Field::Mode => path == "app.mode",
        }
    }

    /// Check what is typed: its type and range. The whole policy is checked
    /// afterwards (`apply`), as the engine would read it.
    pub fn check(&self, raw: &str) -> Result<(), String> {
        let raw = raw.trim();
        match self {
            Field::Desired | Field::Min | Field::Max => match raw.parse::<u32>() {
                Ok(n) if n <= 1000 => Ok(()),
                Ok(n) => Err(format!("{n} is above the supported 1000")),
                Err(_) => Err(format!("`{raw}` is not a whole number (0 to 1000)")),
            },
            Field::Target(_) => match raw.parse::<f64>() {
                Ok(t) if t.is_finite() && t > 0.0 => Ok(()),
                _ => Err(format!("`{raw}` is not a number above 0")),
            },
            Field::Image | Field::Flavor if raw.is_empty() => Err("name one (Tab completes from the cloud)".into()),
            Field::Image | Field::Flavor => Ok(()),
            Field::Mode => AppRunMode::parse(raw).map(|_| ()).ok_or_else(|| "auto, dry-run or paused".to_string()),
        }
    }
}

fn metric(spec: &PolicyFile, i: usize) -> Option<MetricName> {
    spec.scaling.as_ref().and_then(|s| s.metrics.get(i)).map(|m| m.name)
}

fn unit(m: MetricName) -> &'static str {
    match m {
        MetricName::Cpu | MetricName::Memory => "%",
        MetricName::NetworkIn | MetricName::NetworkOut => "B/s",
    }
}

/// A number without a needless `.0`.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Why an edit cannot be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EditError {
    /// The file is not TOML any more (edited by hand since it was read).
    #[error("{0}")]
    Syntax(String),
    /// The value does not fit the field.
    #[error("{field:?}: {message}")]
    Value { field: Field, message: String },
    /// The file has no place for the field (e.g. a target without `[scaling]`).
    #[error("{0}")]
    Shape(String),
}

/// Set fields in a policy's text, keeping everything else as it was written.
pub fn set_fields(text: &str, changes: &[(Field, String)]) -> Result<String, EditError> {
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| EditError::Syntax(e.to_string()))?;
    for (field, raw) in changes {
        field.check(raw).map_err(|message| EditError::Value { field: *field, message })?;
        let raw = raw.trim();
        match field {
            Field::Desired | Field::Min | Field::Max => {
                let key = match field {
                    Field::Desired => "desired",
                    Field::Min => "min",
                    _ => "max",
                };
                let n: i64 = raw.parse().map_err(|_| EditError::Value { field: *field, message: raw.into() })?;
                let cap = table_at(&mut doc, &["deploy", "capacity"])
                    .ok_or_else(|| EditError::Shape("the file has no [deploy] capacity table".into()))?;
                put(cap, key, Value::from(n));
            }
            Field::Target(i) => {
                let t: f64 = raw.parse().map_err(|_| EditError::Value { field: *field, message: raw.into() })?;
                let v = if t.fract() == 0.0 && t.abs() < 1e15 { Value::from(t as i64) } else { Value::from(t) };
                let m = metric_table(&mut doc, *i)
                    .ok_or_else(|| EditError::Shape(format!("the file has no scaling metric #{}", i + 1)))?;
                put(m, "target", v);
            }
            Field::Image | Field::Flavor => {
                let key = if *field == Field::Image { "image" } else { "flavor" };
                let deploy = table_at(&mut doc, &["deploy"])
                    .ok_or_else(|| EditError::Shape("the file has no [deploy] table".into()))?;
                put(deploy, key, Value::from(raw));
            }
            Field::Mode => {
                let app = table_at(&mut doc, &["app"])
                    .ok_or_else(|| EditError::Shape("the file has no [app] table".into()))?;
                // `auto` is the default: a file without the key stays without it.
                if raw == "auto" && app.get("mode").is_none() {
                    continue;
                }
                put(app, "mode", Value::from(raw));
            }
        }
    }
    Ok(doc.to_string())
}

/// A table (or inline table) at a path of keys.
fn table_at<'a>(doc: &'a mut DocumentMut, path: &[&str]) -> Option<&'a mut dyn TableLike> {
    let mut t: &mut dyn TableLike = doc.as_table_mut();
    for k in path {
        t = t.get_mut(k)?.as_table_like_mut()?;
    }
    Some(t)
}

/// The n-th scaling metric, written as `[[scaling.metrics]]` or inline.
fn metric_table(doc: &mut DocumentMut, i: usize) -> Option<&mut dyn TableLike> {
    let scaling = table_at(doc, &["scaling"])?;
    match scaling.get_mut("metrics")? {
        Item::ArrayOfTables(a) => a.get_mut(i).map(|t| t as &mut dyn TableLike),
        Item::Value(Value::Array(a)) => match a.get_mut(i)? {
            Value::InlineTable(t) => Some(t as &mut dyn TableLike),
            _ => None,
        },
        _ => None,
    }
}

/// Replace a value keeping the spacing and comment around it.
fn put(t: &mut dyn TableLike, key: &str, v: Value) {
    match t.get_mut(key) {
        Some(Item::Value(old)) => {
            let decor = old.decor().clone();
            *old = v;
            *old.decor_mut() = decor;
        }
        Some(other) => *other = Item::Value(v),
        None => {
            t.insert(key, Item::Value(v));
        }
    }
}

/// The errors of a candidate text, as the engine would read it.
pub fn check_text(text: &str, file: &Path) -> Result<Policy, Vec<PolicyError>> {
    parse(text, file)
}

/// A unified diff of two texts (3 lines of context), empty when equal.
pub fn unified_diff(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    if old == new {
        return String::new();
    }
    similar::TextDiff::from_lines(old, new).unified_diff().context_radius(3).header(old_name, new_name).to_string()
}

/// What a change does to a policy, in the engine's words (the planner's
/// consequences are added by the engine's preview).
pub fn describe_change(old: Option<&PolicyFile>, new: &PolicyFile) -> Vec<String> {
    let Some(old) = old else {
        let c = new.deploy.capacity;
        return vec![format!(
            "new application {} on {}: desired {} (min {}, max {}), image {}, flavor {}",
            new.app.name, new.app.cloud, c.desired, c.min, c.max, new.deploy.image, new.deploy.flavor
        )];
    };
    let mut v = Vec::new();
    let (a, b) = (old.deploy.capacity, new.deploy.capacity);
    for (name, x, y) in [("desired", a.desired, b.desired), ("min", a.min, b.min), ("max", a.max, b.max)] {
        if x != y {
            v.push(format!("{name} {x} → {y}"));
        }
    }
    let (d, e) = (&old.deploy, &new.deploy);
    if d.image != e.image {
        v.push(format!("image {} → {}", d.image, e.image));
    }
    if d.flavor != e.flavor {
        v.push(format!("flavor {} → {}", d.flavor, e.flavor));
    }
    if d.networks != e.networks {
        v.push(format!("networks {} → {}", d.networks.join(", "), e.networks.join(", ")));
    }
    let others = [
        ("key pair", d.key_name != e.key_name),
        ("security groups", d.security_groups != e.security_groups),
        ("user data", d.user_data != e.user_data),
        ("metadata", d.metadata != e.metadata),
        ("availability zones", d.availability_zones != e.availability_zones),
    ];
    for (what, changed) in others {
        if changed {
            v.push(format!("{what} changed"));
        }
    }
    if old.app.mode != new.app.mode {
        v.push(format!("mode {} → {}", old.app.mode.as_str(), new.app.mode.as_str()));
    }
    if old.readiness != new.readiness {
        v.push("readiness checks changed".into());
    }
    v.extend(scaling_change(old, new));
    if old.app != new.app && old.app.mode == new.app.mode {
        v.push(format!("application {} on {} → {} on {}", old.app.name, old.app.cloud, new.app.name, new.app.cloud));
    }
    v
}

fn scaling_change(old: &PolicyFile, new: &PolicyFile) -> Vec<String> {
    let mut v = Vec::new();
    match (&old.scaling, &new.scaling) {
        (None, None) => {}
        (None, Some(_)) => v.push("autoscaling added".into()),
        (Some(_), None) => v.push("autoscaling removed".into()),
        (Some(a), Some(b)) => {
            let mut rest = b.clone();
            for (x, y) in a.metrics.iter().zip(&b.metrics) {
                if x.name == y.name && x.target != y.target {
                    v.push(format!(
                        "scaling target {} {} → {} {}",
                        x.name.as_str(),
                        number(x.target),
                        number(y.target),
                        unit(y.name)
                    ));
                }
            }
            // Targets aside, anything else that changed is said once.
            for (m, x) in rest.metrics.iter_mut().zip(&a.metrics) {
                if m.name == x.name {
                    m.target = x.target;
                }
            }
            if &rest != a {
                v.push("scaling settings changed".into());
            }
        }
    }
    v
}

/// The first lines of a text handed to an editor after a failed save; they are
/// removed from what the editor saves.
const ERROR_HEADER: &str = "# stackpilot: this change was NOT saved. Fix it, or quit without saving to cancel.";
const ERROR_END: &str =
    "# stackpilot: (the lines above are removed when you save; line numbers count from the line below)";

/// Put the errors of a failed edit at the top of the text, as comments.
pub fn with_error_header(text: &str, errors: &[String]) -> String {
    let mut s = String::from(ERROR_HEADER);
    s.push('\n');
    for e in errors {
        for l in e.lines() {
            s.push_str("# ");
            s.push_str(l);
            s.push('\n');
        }
    }
    s.push_str(ERROR_END);
    s.push('\n');
    s.push_str(&strip_error_header(text));
    s
}

/// The text without the error header a failed edit put on top.
pub fn strip_error_header(text: &str) -> String {
    if !text.starts_with(ERROR_HEADER) {
        return text.to_string();
    }
    match text.find(ERROR_END) {
        Some(at) => {
            let rest = text.get(at + ERROR_END.len()..).unwrap_or_default();
            rest.strip_prefix('\n').unwrap_or(rest).to_string()
        }
        // The end line was deleted: only the header line goes.
        None => text.split_once('\n').map(|(_, r)| r.to_string()).unwrap_or_default(),
    }
}

/// A new application's policy from a template: the values picked from the
/// cloud's catalog, every other key documented and commented out.
pub fn new_app_text(name: &str, cloud: &str, image: &str, flavor: &str, network: &str, c: (u32, u32, u32)) -> String {
    let (min, max, desired) = c;
    let q = |s: &str| toml_edit::Value::from(s).to_string();
    format!(
        "# {name}: created in the stackpilot console. `stackpilot policy schema` describes every key.\n\
         \n\
         [app]\n\
         name = {}\n\
         cloud = {}\n\
         # mode = \"auto\"   # auto, dry-run (act when approved) or paused\n\
         \n\
         [deploy]\n\
         image = {}\n\
         flavor = {}\n\
         networks = [{}]\n\
         # key_name = \"ops\"\n\
         # security_groups = [\"default\"]\n\
         user_data = \"\"\"#cloud-config\n\
         runcmd:\n  - echo \"{{app}} revision {{revision}} slot {{slot}}\" > /etc/motd\n\
         \"\"\"\n\
         capacity = {{ min = {min}, max = {max}, desired = {desired} }}\n\
         \n\
         [readiness]\n\
         min_ready_seconds = 30\n\
         \n\
         # [scaling]\n\
         # [[scaling.metrics]]\n\
         # name = \"cpu\"\n\
         # target = 60\n",
        q(name),
        q(cloud),
        q(image),
        q(flavor),
        q(network)
    )
}

/// sha256 of a text (hex), the identity of a file's content.
pub fn content_hash(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Write a policy file atomically: a temporary file next to it (same
/// directory, so the rename cannot cross file systems), created new and private
/// (policies carry user data, often with bootstrap secrets), synced, given the
/// old file's permissions (0600 for a new file), then renamed over it. A
/// symlinked policy has its target replaced, not the link. `check` runs just
/// before the rename: an error from it leaves the file as it was. A reader sees
/// the old text or the new, never half of one.
pub fn save_atomic(path: &Path, text: &str, check: impl FnOnce() -> std::io::Result<()>) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "policy.toml".into());
    // Not `*.toml`: the engine never reads a half-written temporary file.
    let tmp: PathBuf = dir.join(format!(".{name}.{}.{:08x}.tmp", std::process::id(), fastrand::u32(..)));
    let perms = std::fs::metadata(&path).map(|m| m.permissions()).unwrap_or_else(|_| PermissionsExt::from_mode(0o600));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::set_permissions(&tmp, perms)?;
        check()?;
        std::fs::rename(&tmp, &path)?;
        // The rename itself survives a crash once the directory is synced.
        if let Ok(d) = std::fs::File::open(dir) {
            if let Err(e) = d.sync_all() {
                tracing::debug!("cannot sync {}: {e}", dir.display());
            }
        }
        Ok(())
    };
    let r = write();
    if r.is_err() && tmp.exists() {
        if let Err(e) = std::fs::remove_file(&tmp) {
            tracing::debug!("cannot remove {}: {e}", tmp.display());
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &str = include_str!("../../assets/demo/policies/web.toml");

    fn spec(text: &str) -> PolicyFile {
        parse(text, Path::new("web.toml")).unwrap().spec
    }

    #[test]
    fn quick_edits_keep_comments_order_and_layout() {
        let out = set_fields(WEB, &[(Field::Max, "3".into()), (Field::Target(0), "50".into())]).unwrap();
        assert!(out.contains("capacity = { min = 2, max = 3, desired = 2 }"), "{out}");
        assert!(out.contains("target = 50\n"), "{out}");
        // Everything but the two values is as it was written.
        let diff = unified_diff(WEB, &out, "a", "b");
        assert_eq!(diff.lines().filter(|l| l.starts_with('-') && !l.starts_with("---")).count(), 2, "{diff}");
        assert!(out.starts_with("# The web tier of the demo"));
        let s = spec(&out);
        assert_eq!(s.deploy.capacity.max, 3);
        assert_eq!(describe_change(Some(&spec(WEB)), &s), vec!["max 8 → 3", "scaling target cpu 60 → 50 %"]);
    }

    #[test]
    fn image_flavor_and_mode_are_set_and_auto_adds_no_key() {
        let out = set_fields(WEB, &[(Field::Image, "debian-13".into()), (Field::Mode, "auto".into())]).unwrap();
        assert!(out.contains("image = \"debian-13\""));
        assert!(!out.contains("mode ="), "auto is the default: no key added");
        let out = set_fields(&out, &[(Field::Mode, "paused".into())]).unwrap();
        let s = spec(&out);
        assert_eq!(s.app.mode, AppRunMode::Paused);
        assert_eq!(
            describe_change(Some(&spec(WEB)), &s),
            vec!["image debian-12-genericcloud-amd64 → debian-13", "mode auto → paused"]
        );
    }

    #[test]
    fn values_are_checked_as_typed_and_the_whole_file_after() {
        assert!(Field::Max.check("x").unwrap_err().contains("not a whole number"));
        assert!(Field::Max.check("1001").unwrap_err().contains("1000"));
        assert!(Field::Target(0).check("-3").is_err());
        assert!(Field::Mode.check("sometimes").is_err());
        assert!(matches!(
            set_fields(WEB, &[(Field::Min, "-1".into())]),
            Err(EditError::Value { field: Field::Min, .. })
        ));
        // min above max is a valid value but an invalid policy: parse names the table.
        let out = set_fields(WEB, &[(Field::Min, "9".into())]).unwrap();
        let errs = check_text(&out, Path::new("web.toml")).unwrap_err();
        assert!(Field::Min.owns(errs[0].field.as_deref().unwrap()), "{errs:?}");
        assert!(!Field::Image.owns(errs[0].field.as_deref().unwrap()));
        // A target where the file has no scaling section is refused, not invented.
        let plain = "[app]\nname = \"a\"\ncloud = \"c\"\n[deploy]\nimage = \"i\"\nflavor = \"f\"\nnetworks = [\"n\"]\ncapacity = { min = 1, max = 2, desired = 1 }\n";
        assert!(matches!(set_fields(plain, &[(Field::Target(0), "5".into())]), Err(EditError::Shape(_))));
    }

    #[test]
    fn inline_metrics_and_tables_written_out_are_both_edited() {
        let t = "[app]\nname = \"a\"\ncloud = \"c\"\n[deploy]\nimage = \"i\"\nflavor = \"f\"\nnetworks = [\"n\"]\n[deploy.capacity]\nmin = 1 # floor\nmax = 4\ndesired = 2\n[scaling]\nmetrics = [{ name = \"cpu\", target = 70 }]\n";
        let out = set_fields(t, &[(Field::Min, "2".into()), (Field::Target(0), "55.5".into())]).unwrap();
        assert!(out.contains("min = 2 # floor\n"), "{out}");
        assert!(out.contains("target = 55.5"), "{out}");
        assert_eq!(spec(&out).scaling.unwrap().metrics[0].target, 55.5);
    }

    #[test]
    fn the_error_header_is_added_once_and_removed_on_save() {
        let h = with_error_header(WEB, &["web.toml:3:1: unknown field `flavour`".into()]);
        assert!(h.starts_with(ERROR_HEADER));
        assert!(h.contains("# web.toml:3:1: unknown field `flavour`\n"));
        let again = with_error_header(&h, &["second".into()]);
        assert_eq!(again.matches(ERROR_HEADER).count(), 1);
        assert!(!again.contains("flavour"), "only the latest errors: {again}");
        assert_eq!(strip_error_header(&again), WEB);
        assert_eq!(strip_error_header(WEB), WEB, "a file without the header is left alone");
    }

    #[test]
    fn a_new_app_template_parses_and_describes_itself() {
        let t = new_app_text("shop", "demo", "debian \"12\"", "m1.small", "private", (1, 4, 2));
        let s = spec(&t);
        assert_eq!(s.deploy.image, "debian \"12\"");
        assert_eq!(s.deploy.capacity.desired, 2);
        assert_eq!(
            describe_change(None, &s),
            vec!["new application shop on demo: desired 2 (min 1, max 4), image debian \"12\", flavor m1.small"]
        );
    }

    #[test]
    fn saves_are_atomic_private_keep_the_mode_and_follow_links() {
        use std::os::unix::fs::PermissionsExt;
        let ok = || Ok(());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("web.toml");
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        save_atomic(&p, "new", ok).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o640);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
        assert!(save_atomic(&dir.path().join("no/such/dir.toml"), "x", ok).is_err());
        // A new file is private.
        let n = dir.path().join("new.toml");
        save_atomic(&n, "secret", ok).unwrap();
        assert_eq!(std::fs::metadata(&n).unwrap().permissions().mode() & 0o777, 0o600);
        // A failing check leaves the file as it was, and no temporary file.
        let refused = || Err(std::io::Error::other("changed on disk"));
        assert!(save_atomic(&p, "newer", refused).is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        // A symlinked policy keeps its link; the target changes.
        let target = dir.path().join("real.toml");
        std::fs::write(&target, "a").unwrap();
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        save_atomic(&link, "b", ok).unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "b");
    }

    #[test]
    fn a_diff_is_unified_with_headers() {
        let d = unified_diff("a\nb\nc\n", "a\nB\nc\n", "web.toml (on disk)", "web.toml (yours)");
        assert!(d.starts_with("--- web.toml (on disk)\n+++ web.toml (yours)\n@@"), "{d}");
        assert!(d.contains("-b\n+B\n"));
        assert_eq!(unified_diff("x", "x", "a", "b"), "");
    }
}
