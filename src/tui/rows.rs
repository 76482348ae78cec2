//! The rows of each view: which items, filtered (`/text`, `/!text`, `/~regex`) and
//! sorted (Shift + the column's letter), as ids into the snapshot on screen.
//! Computed when data, filter or sort change — never while drawing.

use super::app::{App, ViewKind, ROW_SEP};
use crate::domain::Server;
use crate::inventory::CloudSnapshot;
use std::cmp::Ordering;
use std::sync::Arc;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowSet {
    /// Shared: the Servers rows of an unchanged list, sort and filter are the
    /// very rows computed before (no copy of 100,000 ids on each refresh).
    pub ids: Arc<[String]>,
}

impl RowSet {
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    pub fn id(&self, i: usize) -> Option<String> {
        self.ids.get(i).cloned()
    }
    pub fn position(&self, id: &str) -> Option<usize> {
        self.ids.iter().position(|x| x == id)
    }
}

/// Sort hotkeys of a view's columns.
pub fn sort_columns(kind: ViewKind) -> &'static [char] {
    match kind {
        ViewKind::Apps | ViewKind::Overview => &['N', 'S', 'C', 'E'],
        ViewKind::Servers => &['N', 'S', 'A', 'F', 'I', 'Z', 'O', 'T', 'C'],
        ViewKind::Storage => &['N', 'S', 'Z', 'K', 'O'],
        ViewKind::Alerts => &['S', 'O', 'A'],
        ViewKind::Events => &['O', 'A', 'R'],
        ViewKind::Clouds => &['N'],
        ViewKind::Policies => &['N', 'S'],
        _ => &[],
    }
}

/// A compiled filter.
pub enum Filter {
    All,
    Contains(String, bool),
    Regex(regex_lite::Regex),
}

impl Filter {
    pub fn new(f: &str) -> Filter {
        if f.is_empty() {
            return Filter::All;
        }
        if let Some(re) = f.strip_prefix('~') {
            return match regex_lite::RegexBuilder::new(re).case_insensitive(true).build() {
                Ok(r) => Filter::Regex(r),
                // An unfinished pattern matches as text until it compiles.
                Err(_) => Filter::Contains(re.to_lowercase(), false),
            };
        }
        match f.strip_prefix('!') {
            Some(rest) => Filter::Contains(rest.to_lowercase(), true),
            None => Filter::Contains(f.to_lowercase(), false),
        }
    }
    /// Whether a row matches: any of its fields contains the text (or matches the
    /// regex, so `^` and `$` anchor to a field); `!` inverts.
    pub fn matches(&self, fields: &[&str]) -> bool {
        match self {
            Filter::All => true,
            Filter::Contains(s, invert) => fields.iter().any(|f| contains_folded(f, s)) != *invert,
            Filter::Regex(r) => fields.iter().any(|f| r.is_match(f)),
        }
    }
    /// Whether one field matches, before any inversion (see `matches`).
    fn hit(&self, field: &str) -> bool {
        match self {
            Filter::All => true,
            Filter::Contains(s, _) => contains_folded(field, s),
            Filter::Regex(r) => r.is_match(field),
        }
    }
    fn inverted(&self) -> bool {
        matches!(self, Filter::Contains(_, true))
    }
}

/// `hay` contains `needle` (already lower case), ignoring case; without an
/// allocation when `hay` is ASCII (names, ids, addresses: typing a filter over
/// 100,000 servers stays fast).
fn contains_folded(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if hay.is_ascii() && needle.is_ascii() {
        let (h, n) = (hay.as_bytes(), needle.as_bytes());
        return h.len() >= n.len() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    }
    hay.to_lowercase().contains(needle)
}

/// A server's CPU as its row shows it: none (`-1`, sorted as an empty cell)
/// when the row shows `-` (a stopped server, a stale series, the cloud's
/// metrics stale as a whole).
pub fn server_cpu(c: &CloudSnapshot, s: &Server, newest: Option<i64>, stale: bool) -> f64 {
    if stale {
        return -1.0;
    }
    crate::inventory::snapshot::cpu_now(s, c.metrics.get(&s.id).map(|m| &**m), newest).unwrap_or(-1.0)
}

/// The Servers rows computed before, to answer the next computation with less
/// work over 100,000 servers: the servers in the view (made once per data),
/// their order under a sort (one sort key a server: the sorted column's), and
/// the last filtered rows (a filter typed further only narrows them).
#[derive(Debug, Default)]
pub struct RowCache {
    data: Option<DataKey>,
    /// (cloud position among the shown, server position in its list).
    items: Vec<(u32, u32)>,
    sorted: Option<(Sort, Vec<u32>)>,
    last: Option<(String, Sort, Vec<u32>)>,
    /// The rows answered last, with the filter and sort they were made for.
    ids: Option<(String, Sort, Arc<[String]>)>,
}

/// A sort column (hotkey letter) and descending flag, or none.
type Sort = Option<(char, bool)>;
/// A cloud's server list and image list, as published.
type Lists = (Arc<Vec<Arc<Server>>>, Arc<Vec<crate::domain::Image>>);
/// A cloud's metrics, as published.
type Metrics = Arc<std::collections::HashMap<String, Arc<crate::inventory::snapshot::ServerSeries>>>;

/// What the cached servers were made from: the very lists (held, so never
/// mistaken for a list made later), the scope and the application shown.
#[derive(Debug)]
struct DataKey {
    lists: Vec<Lists>,
    /// Per cloud: the metrics and whether they are stale (the CPU column).
    metrics: Vec<(Metrics, bool)>,
    merged: bool,
    app: Option<String>,
}

impl DataKey {
    fn same(&self, o: &DataKey) -> bool {
        self.merged == o.merged
            && self.app == o.app
            && self.lists.len() == o.lists.len()
            && self.lists.iter().zip(o.lists.iter()).all(|(a, b)| Arc::ptr_eq(&a.0, &b.0) && Arc::ptr_eq(&a.1, &b.1))
            && self.metrics.len() == o.metrics.len()
            && self.metrics.iter().zip(o.metrics.iter()).all(|(a, b)| Arc::ptr_eq(&a.0, &b.0) && a.1 == b.1)
    }
}

/// A filter that only keeps fewer rows than `before` did (plain text, typed
/// further): its rows are among `before`'s.
fn narrows(before: &str, now: &str) -> bool {
    let plain = |f: &str| !f.starts_with('~') && !f.starts_with('!');
    plain(before) && plain(now) && now.to_lowercase().contains(&before.to_lowercase())
}

/// One sort key of a server: the sorted column's only.
fn server_key(col: char, c: &CloudSnapshot, s: &Server, newest: Option<i64>, stale: bool) -> SortKey {
    let image = || s.image_id.as_deref().and_then(|i| c.image_name(i)).unwrap_or("");
    match col {
        'N' => SortKey::text(s.display_name()),
        'S' => SortKey::text(s.status.as_str()),
        'A' => SortKey::text(s.app().unwrap_or("")),
        'F' => SortKey::text(s.flavor.label()),
        'I' => SortKey::text(image()),
        'Z' => SortKey::text(s.availability_zone.as_deref().unwrap_or("")),
        'O' => SortKey::N(-(s.created.map(|t| t.timestamp()).unwrap_or(0) as f64)),
        'T' => SortKey::text(s.task_state.as_deref().unwrap_or("")),
        'C' => SortKey::N(server_cpu(c, s, newest, stale)),
        _ => SortKey::N(0.0),
    }
}

/// The Servers rows: filtered and sorted, from the cache when what it holds
/// still applies.
fn servers_rows(app: &App, clouds: &[&CloudSnapshot], merged: bool, cache: &mut RowCache) -> Arc<[String]> {
    let v = app.view();
    let sort = v.sort.filter(|(c, _)| sort_columns(ViewKind::Servers).contains(c));
    let cpu_sort = sort.is_some_and(|(c, _)| c == 'C');
    let clock: Vec<(Option<i64>, bool)> = clouds
        .iter()
        .map(|c| {
            if cpu_sort {
                (
                    crate::inventory::snapshot::newest_sample(&c.metrics),
                    super::view::metrics_stale_at(c, app.now, app.stale_after),
                )
            } else {
                (None, false)
            }
        })
        .collect();
    let key = DataKey {
        lists: clouds.iter().map(|c| (c.servers.clone(), c.images.clone())).collect(),
        metrics: if cpu_sort {
            clouds.iter().zip(&clock).map(|(c, k)| (c.metrics.clone(), k.1)).collect()
        } else {
            vec![]
        },
        merged,
        app: v.app.clone(),
    };
    if !cache.data.as_ref().is_some_and(|d| d.same(&key)) {
        cache.items = clouds
            .iter()
            .enumerate()
            .flat_map(|(ci, c)| c.servers.iter().enumerate().map(move |(si, s)| (ci, si, s)))
            .filter(|(_, _, s)| v.app.as_deref().is_none_or(|a| s.app() == Some(a)))
            .map(|(ci, si, _)| (ci as u32, si as u32))
            .collect();
        cache.sorted = None;
        cache.last = None;
        cache.ids = None;
    }
    cache.data = Some(key);
    let server = |(ci, si): (u32, u32)| {
        let c = clouds.get(ci as usize)?;
        Some((*c, c.servers.get(si as usize)?, clock.get(ci as usize).copied().unwrap_or_default()))
    };
    // Every server in the sorted order (made once per sort).
    if cache.sorted.as_ref().is_none_or(|(s, _)| *s != sort) {
        let mut order: Vec<u32> = (0..cache.items.len() as u32).collect();
        if let Some((col, desc)) = sort {
            let mut keyed: Vec<(SortKey, u32)> = order
                .iter()
                .filter_map(|&p| {
                    let (c, s, (newest, stale)) = server(*cache.items.get(p as usize)?)?;
                    Some((server_key(col, c, s, newest, stale), p))
                })
                .collect();
            keyed.sort_by(|a, b| if desc { b.0.cmp(&a.0) } else { a.0.cmp(&b.0) });
            order = keyed.into_iter().map(|(_, p)| p).collect();
        }
        cache.sorted = Some((sort, order));
        cache.ids = None;
    }
    let text = v.filter.as_str();
    if let Some((f, s, ids)) = &cache.ids {
        if f == text && *s == sort {
            return ids.clone();
        }
    }
    let all: &[u32] = cache.sorted.as_ref().map(|(_, o)| o.as_slice()).unwrap_or_default();
    let shown: Vec<u32> = if text.is_empty() {
        all.to_vec()
    } else {
        let filter = Filter::new(text);
        // A filter typed further looks only at the rows it had.
        let from: &[u32] = match &cache.last {
            Some((f, s, rows)) if *s == sort && narrows(f, text) => rows,
            _ => all,
        };
        from.iter()
            .copied()
            .filter(|&p| {
                cache.items.get(p as usize).and_then(|&it| server(it)).is_some_and(|(c, s, _)| {
                    let image = s.image_id.as_deref().and_then(|i| c.image_name(i)).unwrap_or("");
                    server_matches(&filter, s, image) || merged && filter.matches(&[&c.name])
                })
            })
            .collect()
    };
    let ids: Arc<[String]> = shown
        .iter()
        .filter_map(|&p| {
            let (c, s, _) = server(*cache.items.get(p as usize)?)?;
            Some(if merged { format!("{}{ROW_SEP}{}", c.name, s.id) } else { s.id.clone() })
        })
        .collect();
    cache.last = (!text.is_empty()).then(|| (text.to_string(), sort, shown));
    cache.ids = Some((text.to_string(), sort, ids.clone()));
    ids
}

fn server_matches(f: &Filter, s: &Server, image: &str) -> bool {
    if matches!(f, Filter::All) {
        return true;
    }
    let fields = [
        s.display_name(),
        &s.id,
        s.status.as_str(),
        s.app().unwrap_or(""),
        s.flavor.label(),
        image,
        s.availability_zone.as_deref().unwrap_or(""),
    ];
    // The addresses as the view shows them (`net=addr, ...`), built only when
    // nothing else matched.
    let hit = fields.iter().any(|x| f.hit(x)) || (!s.addresses.is_empty() && f.hit(&s.addresses_label()));
    hit != f.inverted()
}

/// Rows with their sort keys, before sorting.
type Keyed = Vec<(String, Vec<SortKey>)>;

fn ord<T: PartialOrd>(a: T, b: T) -> Ordering {
    a.partial_cmp(&b).unwrap_or(Ordering::Equal)
}

/// The Volumes & Backups rows of one cloud.
fn storage_rows(
    app: &App,
    cloud: &CloudSnapshot,
    filter: &Filter,
    apply_sort: &dyn Fn(&mut Keyed, &[char]),
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(e) = &app.engine {
        for j in e.restores.iter().filter(|j| j.cloud == cloud.name) {
            let target = match &j.target {
                crate::engine::restore::Target::NewVolume { name, .. } => name.clone(),
                crate::engine::restore::Target::Existing { volume_id } => volume_id.clone(),
            };
            if filter.matches(&["restore", &j.backup_id, &target, &j.op]) {
                out.push(format!("rst:{}", j.op));
            }
        }
    }
    let shown = |b: &crate::domain::Backup| filter.matches(&["backup", b.label(), &b.id, &b.status, &b.volume_id]);
    let mut rows: Vec<(String, Vec<SortKey>)> = Vec::new();
    for vol in cloud.volumes.iter() {
        let att = vol.attachments.iter().map(|a| a.server_id.as_str()).collect::<Vec<_>>().join(" ");
        let own = filter.matches(&["volume", vol.label(), &vol.id, &vol.status, &att]);
        if own || cloud.backups.iter().any(|b| b.volume_id == vol.id && shown(b)) {
            rows.push((
                format!("vol:{}", vol.id),
                vec![
                    SortKey::text(vol.label()),
                    SortKey::text(&vol.status),
                    SortKey::N(vol.size_gb as f64),
                    SortKey::text("volume"),
                    SortKey::N(-(vol.created_at.map(|t| t.timestamp()).unwrap_or(0) as f64)),
                ],
            ));
        }
    }
    apply_sort(&mut rows, sort_columns(ViewKind::Storage));
    for (id, _) in rows {
        let vid = id.trim_start_matches("vol:").to_string();
        out.push(id);
        out.extend(
            backup_tree(&cloud.backups, &vid)
                .into_iter()
                .filter(|(b, _)| shown(b))
                .map(|(b, _)| format!("bak:{}", b.id)),
        );
    }
    // Backups of volumes that are gone.
    let mut gone: Vec<&str> = cloud
        .backups
        .iter()
        .filter(|b| !cloud.volumes.iter().any(|v| v.id == b.volume_id))
        .map(|b| b.volume_id.as_str())
        .collect();
    gone.sort();
    gone.dedup();
    for vid in gone {
        out.extend(
            backup_tree(&cloud.backups, vid)
                .into_iter()
                .filter(|(b, _)| shown(b))
                .map(|(b, _)| format!("bak:{}", b.id)),
        );
    }
    out
}

/// The rows of the current view (`cache`: the Servers rows computed before).
pub fn compute(app: &App, cache: &mut RowCache) -> RowSet {
    if app.view().kind != ViewKind::Servers {
        // Lists of no use now are not kept alive.
        *cache = RowCache::default();
    }
    let v = app.view();
    let filter = Filter::new(&v.filter);
    let sort = v.sort;
    let Some(cloud) = app.cloud_snapshot() else { return RowSet::default() };
    // Every cloud at once, or the one on screen; row ids then name their cloud.
    let merged = app.all_clouds();
    let clouds: Vec<&CloudSnapshot> = if merged { app.shown().clouds.iter().collect() } else { vec![cloud] };
    let key = |c: &CloudSnapshot, id: String| if merged { format!("{}{ROW_SEP}{id}", c.name) } else { id };
    // Alerts, events and policies of the other clouds are left out when one is shown.
    let one_of_many = !merged && app.shown().clouds.len() > 1;
    let this_cloud = |c: &str| !one_of_many || c.is_empty() || c == cloud.name;
    let apply_sort = |ids: &mut Vec<(String, Vec<SortKey>)>, cols: &[char]| {
        if let Some((c, desc)) = sort {
            if let Some(i) = cols.iter().position(|x| *x == c) {
                ids.sort_by(|a, b| {
                    let o = a.1.get(i).cmp(&b.1.get(i));
                    if desc {
                        o.reverse()
                    } else {
                        o
                    }
                });
            }
        }
    };
    let ids: Vec<String> = match v.kind {
        ViewKind::Overview | ViewKind::Apps | ViewKind::Plan => {
            let mut rows: Vec<(String, Vec<SortKey>)> = clouds
                .iter()
                .flat_map(|c| c.apps.iter().map(move |a| (*c, a)))
                .filter(|(c, a)| {
                    filter.matches(&[a.name.as_str(), &a.flavors.join(" "), if merged { &c.name } else { "" }])
                })
                .map(|(c, a)| {
                    let cpu = a.cpu.last().map(|x| x.1).unwrap_or(-1.0);
                    (
                        key(c, a.name.clone()),
                        vec![
                            SortKey::text(&a.name),
                            SortKey::N(a.total() as f64),
                            SortKey::N(cpu),
                            SortKey::N(a.error as f64),
                        ],
                    )
                })
                .collect();
            apply_sort(&mut rows, sort_columns(ViewKind::Apps));
            rows.into_iter().map(|r| r.0).collect()
        }
        ViewKind::Servers => return RowSet { ids: servers_rows(app, &clouds, merged, cache) },
        ViewKind::ServerDetail => v.server.iter().cloned().collect(),
        ViewKind::Storage => {
            // Restores first, then each volume followed by its backups drawn as
            // chains; sorting orders the volumes, a volume's backups stay under it.
            let mut all: Vec<String> = Vec::new();
            for cloud in clouds.iter().copied() {
                let out = storage_rows(app, cloud, &filter, &apply_sort);
                all.extend(out.into_iter().map(|id| key(cloud, id)));
            }
            all
        }
        ViewKind::Alerts => {
            let alerts = app.alerts();
            let mut rows: Vec<(String, Vec<SortKey>)> = alerts
                .iter()
                .filter(|a| this_cloud(&a.cloud))
                .filter(|a| {
                    filter.matches(&[a.severity.as_str(), &a.cloud, a.app.as_deref().unwrap_or(""), &a.message])
                })
                .map(|a| {
                    (
                        a.key.clone(),
                        vec![
                            SortKey::N(-(a.severity as u8 as f64)),
                            SortKey::N(-(a.since.timestamp() as f64)),
                            SortKey::text(a.app.as_deref().unwrap_or("")),
                        ],
                    )
                })
                .collect();
            rows.sort_by(|a, b| a.1.first().cmp(&b.1.first()));
            apply_sort(&mut rows, sort_columns(ViewKind::Alerts));
            rows.into_iter().map(|r| r.0).collect()
        }
        ViewKind::Events => {
            let mut rows: Vec<(String, Vec<SortKey>)> = app
                .events
                .iter()
                .enumerate()
                .filter(|(_, e)| this_cloud(&e.cloud))
                .filter(|(_, e)| {
                    filter.matches(&[
                        &e.cloud,
                        &e.actor,
                        &e.action,
                        e.target.as_deref().unwrap_or(""),
                        &e.result,
                        &e.reason,
                        e.app.as_deref().unwrap_or(""),
                        e.detail.as_deref().unwrap_or(""),
                    ])
                })
                .map(|(i, e)| {
                    (
                        format!("ev:{i}"),
                        vec![
                            SortKey::N(-(e.at.timestamp_micros() as f64)),
                            SortKey::text(&e.action),
                            SortKey::text(&e.result),
                        ],
                    )
                })
                .collect();
            // Newest first unless another order is asked for.
            rows.sort_by(|a, b| a.1.first().cmp(&b.1.first()));
            apply_sort(&mut rows, sort_columns(ViewKind::Events));
            rows.into_iter().map(|r| r.0).collect()
        }
        ViewKind::Clouds => {
            let mut rows: Vec<(String, Vec<SortKey>)> = app
                .shown()
                .clouds
                .iter()
                .filter(|c| filter.matches(&[c.name.as_str()]))
                .map(|c| (c.name.clone(), vec![SortKey::text(&c.name)]))
                .collect();
            apply_sort(&mut rows, sort_columns(ViewKind::Clouds));
            rows.into_iter().map(|r| r.0).collect()
        }
        ViewKind::Policies => {
            let policies = app.engine.as_ref().map(|e| e.policies.as_slice()).unwrap_or_default();
            let mut rows: Vec<(String, Vec<SortKey>)> = policies
                .iter()
                .filter(|p| merged || p.cloud == cloud.name)
                .filter(|p| filter.matches(&[p.app.as_str(), &p.cloud, &p.state, &p.file, &p.problems.join(" ")]))
                .map(|p| {
                    // Problems first: what is not ok sorts before what is.
                    let rank = if p.state == "ok" { "1" } else { "0" };
                    (p.policy_id.clone(), vec![SortKey::text(&p.app), SortKey::text(&format!("{rank}{}", p.state))])
                })
                .collect();
            rows.sort_by(|a, b| a.1.get(1).cmp(&b.1.get(1)).then(a.1.first().cmp(&b.1.first())));
            apply_sort(&mut rows, sort_columns(ViewKind::Policies));
            rows.into_iter().map(|r| r.0).collect()
        }
        ViewKind::PolicyDetail => {
            // The policy's recorded changes, newest first.
            let doc = app.view().policy.as_ref().and_then(|id| app.docs.get(id));
            doc.map(|d| {
                d.history
                    .iter()
                    .filter(|c| {
                        let g = c.generation.to_string();
                        filter.matches(&[&g, c.actor.as_deref().unwrap_or(""), c.summary.as_deref().unwrap_or("")])
                    })
                    .map(|c| c.generation.to_string())
                    .collect()
            })
            .unwrap_or_default()
        }
    };
    RowSet { ids: ids.into() }
}

/// A sortable value.
#[derive(Debug, Clone, PartialEq)]
pub enum SortKey {
    /// Lower case text (see `SortKey::text`).
    S(String),
    N(f64),
}

impl Eq for SortKey {}

impl PartialOrd for SortKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl SortKey {
    /// A text key, compared without case.
    pub fn text(s: &str) -> SortKey {
        SortKey::S(s.to_lowercase())
    }
}

impl Ord for SortKey {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            // Text keys are made lower case once (`text`), not at each comparison.
            (SortKey::S(a), SortKey::S(b)) => a.cmp(b),
            (SortKey::N(a), SortKey::N(b)) => ord(*a, *b),
            (SortKey::S(_), SortKey::N(_)) => Ordering::Less,
            (SortKey::N(_), SortKey::S(_)) => Ordering::Greater,
        }
    }
}

fn pretty(raw: Option<&str>, fallback: &impl serde::Serialize) -> String {
    raw.and_then(|r| serde_json::from_slice::<serde_json::Value>(r.as_bytes()).ok())
        .or_else(|| serde_json::to_value(fallback).ok())
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_default()
}

/// The raw object of the selection, pretty-printed (`y`).
pub fn raw_of_selection(app: &App) -> Option<(String, String)> {
    let v = app.view();
    let cloud = app.cloud_snapshot()?;
    let id = v.selected_key().or_else(|| v.server.clone()).or_else(|| v.policy.clone())?;
    match v.kind {
        ViewKind::Servers | ViewKind::ServerDetail => {
            let id = v.server.clone().filter(|_| v.kind == ViewKind::ServerDetail).unwrap_or(id);
            let s = cloud.server(&id)?;
            Some((format!("server {}", s.display_name()), pretty(s.raw.as_deref(), s.as_ref())))
        }
        ViewKind::Storage => {
            if let Some(op) = id.strip_prefix("rst:") {
                let j = app.engine.as_ref()?.restores.iter().find(|j| j.op == op)?;
                return Some((format!("restore {op}"), serde_json::to_string_pretty(j).unwrap_or_default()));
            }
            if let Some(vid) = id.strip_prefix("vol:") {
                let vol = cloud.volumes.iter().find(|x| x.id == vid)?;
                Some((format!("volume {}", vol.label()), pretty(vol.raw.as_deref(), vol)))
            } else {
                let bid = id.strip_prefix("bak:")?;
                let b = cloud.backups.iter().find(|x| x.id == bid)?;
                Some((format!("backup {}", b.label()), pretty(b.raw.as_deref(), b)))
            }
        }
        ViewKind::Apps | ViewKind::Overview => {
            let a = cloud.apps.iter().find(|a| a.name == id)?;
            let members: Vec<&str> =
                a.members.iter().filter_map(|m| cloud.server(m)).map(|s| s.display_name()).collect();
            let v = crate::domain::json::json!({"app": a.name, "cloud": a.cloud, "members": members, "active": a.active, "building": a.building, "error": a.error, "flavors": a.flavors});
            Some((format!("app {}", a.name), serde_json::to_string_pretty(&v).unwrap_or_default()))
        }
        ViewKind::Alerts => {
            let alerts = app.alerts();
            let a = alerts.iter().find(|a| a.key == id)?;
            Some((format!("alert {}", a.key), serde_json::to_string_pretty(a).unwrap_or_default()))
        }
        ViewKind::Events => {
            let i: usize = id.strip_prefix("ev:")?.parse().ok()?;
            let e = app.events.get(i)?;
            Some((format!("event {}", e.action), serde_json::to_string_pretty(e).unwrap_or_default()))
        }
        ViewKind::PolicyDetail => {
            let doc = app.docs.get(v.policy.as_deref()?)?;
            // The selected change as it was written, else the file as it is.
            let change =
                v.selected_id.as_deref().and_then(|g| doc.history.iter().find(|c| c.generation.to_string() == g));
            match change.and_then(|c| c.text.clone().map(|t| (c, t))) {
                Some((c, text)) => {
                    let who = c.actor.clone().unwrap_or_default();
                    let what = c.summary.clone().unwrap_or_default();
                    let head = format!(
                        "# change {} — {} by {who}\n# {what}\n\n",
                        c.generation,
                        c.at.format("%Y-%m-%d %H:%M:%S")
                    );
                    Some((format!("{} change {}", doc.file.display(), c.generation), head + &text))
                }
                None => Some((doc.file.display().to_string(), doc.text.clone().unwrap_or_else(|e| e))),
            }
        }
        ViewKind::Policies => {
            let p = app.engine.as_ref()?.policies.iter().find(|p| p.policy_id == id)?;
            let mut text = format!(
                "app       {}\ncloud     {}\nfile      {}\nstate     {}\nrevision  {}\ncapacity  desired {} ({}..{})\n",
                p.app, p.cloud, p.file, p.state, p.revision, p.desired, p.min, p.max
            );
            if let Some(t) = &p.target {
                text.push_str(&format!("scaling   {t}\n"));
            }
            for pr in &p.problems {
                text.push_str(&format!("\n{pr}\n"));
            }
            Some((format!("policy {}", p.app), text))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_substring_inverted_and_regex() {
        assert!(Filter::new("web").matches(&["prod-WEB-1"]));
        assert!(!Filter::new("!web").matches(&["web-1", "ACTIVE"]));
        assert!(Filter::new("!web").matches(&["api-1", "ACTIVE"]));
        assert!(Filter::new("~^web-[0-9]+$").matches(&["id-1", "web-12"]), "anchors apply per field");
        assert!(!Filter::new("~^web-[0-9]+$").matches(&["web-x"]));
        assert!(Filter::new("~web-(").matches(&["web-("]), "unfinished regex falls back to text");
        assert!(Filter::new("").matches(&["anything"]));
    }
}

/// Where a backup sits in its volume's chains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreePos {
    /// A full (a chain starts), or a backup whose chain is not known.
    Root,
    /// An incremental of the chain above; `last`: the chain's newest.
    Child { last: bool },
}

/// A volume's backups as chains, oldest chain first: each full followed by its
/// incrementals (`stackpilot:chain`, else the newest full made before it).
pub fn backup_tree<'a>(
    backups: &'a [crate::domain::Backup],
    volume_id: &str,
) -> Vec<(&'a crate::domain::Backup, TreePos)> {
    let at = |b: &crate::domain::Backup| b.data_timestamp.or(b.created_at);
    let mut mine: Vec<&crate::domain::Backup> = backups.iter().filter(|b| b.volume_id == volume_id).collect();
    mine.sort_by(|a, b| at(a).cmp(&at(b)).then(a.id.cmp(&b.id)));
    let parent = |b: &crate::domain::Backup| -> Option<String> {
        if !b.is_incremental {
            return None;
        }
        b.metadata
            .get(crate::domain::names::CHAIN)
            .cloned()
            .or_else(|| mine.iter().rfind(|f| !f.is_incremental && at(f) <= at(b)).map(|f| f.id.clone()))
    };
    let mut out = Vec::new();
    for f in mine.iter().filter(|b| parent(b).is_none_or(|p| !mine.iter().any(|x| x.id == p))) {
        out.push((*f, TreePos::Root));
        if f.is_incremental {
            continue;
        }
        let kids: Vec<&&crate::domain::Backup> =
            mine.iter().filter(|b| parent(b).as_deref() == Some(f.id.as_str())).collect();
        let n = kids.len();
        for (i, k) in kids.into_iter().enumerate() {
            out.push((*k, TreePos::Child { last: i + 1 == n }));
        }
    }
    out
}
