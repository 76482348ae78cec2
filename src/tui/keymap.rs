//! The key registry: every action, its default key, where it works, whether it
//! changes the cloud. Dispatch and the `?` help both read this table, so help can
//! never list a key that does not work. Bindings can be remapped or unbound in
//! `config.toml` (`[keys] action = "key"`); conflicts are reported at load with the
//! line of the binding.

use std::collections::BTreeMap;
use std::fmt;

/// A key press, independent of the terminal library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub code: Code,
    pub ctrl: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    Char(char),
    Enter,
    Esc,
    Tab,
    BackTab,
    Backspace,
    Delete,
    Up,
    Down,
    Left,
    Right,
    Home,
    End,
    PageUp,
    PageDown,
    F(u8),
}

impl Key {
    pub const fn ch(c: char) -> Key {
        Key { code: Code::Char(c), ctrl: false }
    }
    pub const fn ctrl(c: char) -> Key {
        Key { code: Code::Char(c), ctrl: true }
    }
    pub const fn code(code: Code) -> Key {
        Key { code, ctrl: false }
    }

    /// Parse `a`, `A`, `ctrl-r`, `enter`, `esc`, `pgdn`, `f5`, `space`, `?`.
    pub fn parse(s: &str) -> Option<Key> {
        let s = s.trim();
        let (ctrl, rest) =
            match s.strip_prefix("ctrl-").or_else(|| s.strip_prefix("ctrl+")).or_else(|| s.strip_prefix("C-")) {
                Some(r) => (true, r),
                None => (false, s),
            };
        let code = match rest.to_ascii_lowercase().as_str() {
            "enter" | "return" => Code::Enter,
            "esc" | "escape" => Code::Esc,
            "tab" => Code::Tab,
            "backtab" | "shift-tab" => Code::BackTab,
            "backspace" => Code::Backspace,
            "delete" | "del" => Code::Delete,
            "up" => Code::Up,
            "down" => Code::Down,
            "left" => Code::Left,
            "right" => Code::Right,
            "home" => Code::Home,
            "end" => Code::End,
            "pgup" | "pageup" => Code::PageUp,
            "pgdn" | "pgdown" | "pagedown" => Code::PageDown,
            "space" => Code::Char(' '),
            l if l.len() > 1 && l.starts_with('f') && l.get(1..).is_some_and(|n| n.parse::<u8>().is_ok()) => {
                Code::F(l.get(1..)?.parse().ok()?)
            }
            _ => {
                let mut chars = rest.chars();
                let c = chars.next()?;
                if chars.next().is_some() {
                    return None;
                }
                Code::Char(if ctrl { c.to_ascii_lowercase() } else { c })
            }
        };
        Some(Key { code, ctrl })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("ctrl-")?;
        }
        match self.code {
            Code::Char(' ') => f.write_str("space"),
            Code::Char(c) => write!(f, "{c}"),
            Code::Enter => f.write_str("enter"),
            Code::Esc => f.write_str("esc"),
            Code::Tab => f.write_str("tab"),
            Code::BackTab => f.write_str("shift-tab"),
            Code::Backspace => f.write_str("backspace"),
            Code::Delete => f.write_str("delete"),
            Code::Up => f.write_str("↑"),
            Code::Down => f.write_str("↓"),
            Code::Left => f.write_str("←"),
            Code::Right => f.write_str("→"),
            Code::Home => f.write_str("home"),
            Code::End => f.write_str("end"),
            Code::PageUp => f.write_str("pgup"),
            Code::PageDown => f.write_str("pgdn"),
            Code::F(n) => write!(f, "f{n}"),
        }
    }
}

/// Where a binding works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Context {
    /// Every view.
    Global,
    /// Views listing servers (Servers, Server detail).
    Server,
    /// Views with time charts (Overview, Server detail).
    Charts,
    /// Views without charts.
    NoCharts,
    /// The Plan view.
    Plan,
    /// The Policies view and an open policy.
    Policies,
    /// An open policy (its history).
    PolicyDetail,
    /// The Alerts view.
    Alerts,
    /// The Volumes & Backups view.
    Storage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Quit,
    Help,
    Command,
    Filter,
    Back,
    Up,
    Down,
    Top,
    Bottom,
    PageUp,
    PageDown,
    HalfPageUp,
    HalfPageDown,
    Open,
    Raw,
    HistoryPrev,
    HistoryNext,
    PreviousView,
    Freeze,
    ZoomIn,
    ZoomOut,
    NextCloud,
    Refresh,
    Start,
    Stop,
    Reboot,
    HardReboot,
    Delete,
    ConsoleLog,
    PauseEngine,
    ApprovePlan,
    EngineAuto,
    /// `:retire APP` (a command, no key).
    RetireApp,
    /// Change a policy's desired/min/max, targets, image, flavor or mode in place.
    QuickEdit,
    /// Edit a policy file in `$VISUAL`/`$EDITOR`.
    EditPolicy,
    /// Mark a change of the history (a diff compares it with the selected one).
    MarkChange,
    /// Diff of the selected change against the marked one (or the file now).
    DiffChange,
    /// Write the selected change's text back (as a new, confirmed change).
    RestoreChange,
    /// `:new-app NAME` (a command, no key).
    NewApp,
    /// `:rollout pause|resume|abort|undo APP` (a command, no key).
    Rollout,
    /// Show the user data a member of the open policy boots with.
    RenderPolicy,
    /// Acknowledge the selected alert (no more repeats of it).
    AckAlert,
    /// Silence the selected alert for an hour (`:silence DURATION` for another time).
    SilenceAlert,
    /// `:maint [off]`: the selected member in (out of) maintenance: recovery leaves it alone.
    Maintenance,
    /// Restore the selected backup (`:restore new NAME` or `:restore over [VOLUME]`).
    RestoreBackup,
}

pub struct ActionInfo {
    pub action: Action,
    pub name: &'static str,
    pub default: &'static [Key],
    pub context: Context,
    pub help: &'static str,
    /// Changes the cloud: confirmed, and absent under `--read-only`.
    pub dangerous: bool,
}

const fn info(
    action: Action,
    name: &'static str,
    default: &'static [Key],
    context: Context,
    help: &'static str,
    dangerous: bool,
) -> ActionInfo {
    ActionInfo { action, name, default, context, help, dangerous }
}

use Action as A;
use Context as C;

const QUIT: ActionInfo = info(A::Quit, "quit", &[Key::ch('q'), Key::ctrl('c')], C::Global, "quit", false);

/// Every action stackpilot knows.
pub const ACTIONS: &[ActionInfo] = &[
    info(A::Quit, "quit", &[Key::ch('q'), Key::ctrl('c')], C::Global, "quit", false),
    info(A::Help, "help", &[Key::ch('?')], C::Global, "keys of this view", false),
    info(A::Command, "command", &[Key::ch(':')], C::Global, "command line (:servers, :apps, :vol, ...)", false),
    info(A::Filter, "filter", &[Key::ch('/')], C::Global, "filter (/!x inverts, /~re is a regex)", false),
    info(
        A::Back,
        "back",
        &[Key::code(Code::Esc)],
        C::Global,
        "clear the filter, go back; first view: hide the demo line",
        false,
    ),
    info(A::Up, "up", &[Key::ch('k'), Key::code(Code::Up)], C::Global, "up", false),
    info(A::Down, "down", &[Key::ch('j'), Key::code(Code::Down)], C::Global, "down", false),
    info(A::Top, "top", &[Key::ch('g'), Key::code(Code::Home)], C::Global, "first row", false),
    info(A::Bottom, "bottom", &[Key::ch('G'), Key::code(Code::End)], C::Global, "last row", false),
    info(A::PageUp, "page-up", &[Key::code(Code::PageUp)], C::Global, "page up", false),
    info(A::PageDown, "page-down", &[Key::code(Code::PageDown)], C::Global, "page down", false),
    info(A::HalfPageUp, "half-page-up", &[Key::ctrl('u')], C::Global, "half a page up", false),
    info(A::HalfPageDown, "half-page-down", &[Key::ctrl('d')], C::Global, "half a page down", false),
    info(A::Open, "open", &[Key::code(Code::Enter)], C::Global, "drill in", false),
    info(A::Raw, "raw", &[Key::ch('y')], C::Global, "raw JSON of the selection", false),
    info(A::HistoryPrev, "history-prev", &[Key::ch('[')], C::Global, "previous command", false),
    info(A::HistoryNext, "history-next", &[Key::ch(']')], C::Global, "next command", false),
    info(A::PreviousView, "previous-view", &[Key::ch('-')], C::NoCharts, "previous view", false),
    info(A::Freeze, "freeze", &[Key::ch('f')], C::Global, "freeze / unfreeze the data", false),
    info(A::ZoomIn, "zoom-in", &[Key::ch('+')], C::Charts, "shorter time window", false),
    info(A::ZoomOut, "zoom-out", &[Key::ch('-')], C::Charts, "longer time window", false),
    info(A::NextCloud, "next-cloud", &[Key::code(Code::Tab)], C::Global, "next cloud", false),
    info(A::Refresh, "refresh", &[Key::ctrl('l')], C::Global, "refresh now", false),
    info(A::Start, "start", &[Key::ch('u')], C::Server, "start the server", true),
    info(A::Stop, "stop", &[Key::ch('x')], C::Server, "stop the server", true),
    info(A::Reboot, "reboot", &[Key::ch('r')], C::Server, "reboot (soft)", true),
    info(A::HardReboot, "hard-reboot", &[Key::ctrl('r')], C::Server, "reboot (hard)", true),
    info(A::Delete, "delete", &[Key::ch('D')], C::Server, "delete the server", true),
    info(A::ConsoleLog, "console-log", &[Key::ch('l')], C::Server, "console log", false),
    info(A::PauseEngine, "pause-engine", &[Key::ch('p')], C::Plan, "pause / resume the engine", true),
    info(A::ApprovePlan, "approve-plan", &[Key::ch('a')], C::Plan, "carry out the plan (dry-run mode)", true),
    info(A::EngineAuto, "engine-auto", &[Key::ch('A')], C::Plan, "let the engine act on its own (auto mode)", true),
    info(A::RetireApp, "retire", &[], C::Plan, ":retire APP removes an application's members", true),
    info(
        A::QuickEdit,
        "change-policy",
        &[Key::ch('c')],
        C::Policies,
        "change desired/min/max, targets, image, flavor, mode",
        true,
    ),
    info(A::EditPolicy, "edit-policy", &[Key::ch('e')], C::Policies, "edit the policy file in $VISUAL / $EDITOR", true),
    info(
        A::MarkChange,
        "mark-change",
        &[Key::ch('m')],
        C::PolicyDetail,
        "mark a change (d then diffs it with the selected)",
        false,
    ),
    info(
        A::DiffChange,
        "diff-change",
        &[Key::ch('d')],
        C::PolicyDetail,
        "diff: selected change vs marked (or vs the file now)",
        false,
    ),
    info(
        A::RestoreChange,
        "restore-change",
        &[Key::ch('R')],
        C::PolicyDetail,
        "restore the selected change (diff, then confirm)",
        true,
    ),
    info(
        A::RenderPolicy,
        "render-policy",
        &[Key::ch('u')],
        C::PolicyDetail,
        "user data a member boots with (#cloud-config)",
        false,
    ),
    info(A::NewApp, "new-app", &[], C::Policies, ":new-app NAME creates an application from the catalog", true),
    info(A::Rollout, "rollout", &[], C::Plan, ":rollout status|pause|resume|abort|undo APP [REV]", true),
    info(A::AckAlert, "ack-alert", &[Key::ch('a')], C::Alerts, "acknowledge the alert (no more repeats)", false),
    info(
        A::SilenceAlert,
        "silence-alert",
        &[Key::ch('s')],
        C::Alerts,
        "silence the alert for 1h (:silence 4h for another time)",
        false,
    ),
    info(
        A::Maintenance,
        "maint",
        &[],
        C::Server,
        ":maint [off] puts the member in (out of) maintenance: recovery leaves it alone",
        true,
    ),
    info(
        A::RestoreBackup,
        "restore-backup",
        &[Key::ch('R')],
        C::Storage,
        "restore the backup (:restore new NAME | :restore over)",
        true,
    ),
];

/// A `:` command as help shows it.
pub struct CommandInfo {
    pub usage: &'static str,
    /// The same command without its dangerous forms, for `--read-only` (`None`: hidden).
    pub read_only_usage: Option<&'static str>,
    pub context: Context,
    pub help: &'static str,
}

const fn cmd(
    usage: &'static str,
    read_only_usage: Option<&'static str>,
    context: Context,
    help: &'static str,
) -> CommandInfo {
    CommandInfo { usage, read_only_usage, context, help }
}

/// Every `:` command that is not a view's name (those are listed from the view
/// table), where it works and what it does. Help reads this table.
pub const COMMAND_HELP: &[CommandInfo] = &[
    cmd(":VIEW @cloud /filter", Some(":VIEW @cloud /filter"), C::Global, "open a view on a cloud, filtered"),
    cmd(":cloud NAME | :cloud *", Some(":cloud NAME | :cloud *"), C::Global, "show one cloud, or all of them"),
    cmd(":mode off|dry-run|auto", Some(":mode off|dry-run"), C::Global, "switch the engine's mode"),
    cmd(":new-app NAME", None, C::Global, "create an application from the catalog"),
    cmd(":retire APP", None, C::Global, "remove an application's members (typed)"),
    cmd(":rollout pause|resume|abort APP", Some(":rollout status APP"), C::Global, "steer a rollout"),
    cmd(":rollout undo APP REV", None, C::Global, "go back to an earlier revision"),
    cmd(":silence 4h", None, C::Alerts, "silence the selected alert for a while"),
    cmd(":maint [off]", None, C::Server, "selected member in (out of) maintenance"),
    cmd(":restore new NAME | over [VOL]", None, C::Storage, "restore the selected backup"),
    cmd(":q", Some(":q"), C::Global, "quit"),
];

pub fn info_of(a: Action) -> &'static ActionInfo {
    // Every action is in the table (a test checks it); Quit stands in otherwise.
    ACTIONS.iter().find(|i| i.action == a).unwrap_or(&QUIT)
}

/// Contexts that can be active together (their bindings may not collide).
fn overlaps(a: Context, b: Context) -> bool {
    use Context::*;
    match (a, b) {
        (Global, _) | (_, Global) => true,
        (Charts, NoCharts) | (NoCharts, Charts) => false,
        (Plan, Server) | (Server, Plan) => false,
        (Plan, Charts) | (Charts, Plan) => false,
        (x, y) => {
            x == y
                || matches!(
                    (x, y),
                    (Server, Charts)
                        | (Charts, Server)
                        | (Server, NoCharts)
                        | (NoCharts, Server)
                        | (Plan, NoCharts)
                        | (NoCharts, Plan)
                        | (Policies, NoCharts)
                        | (NoCharts, Policies)
                        | (PolicyDetail, NoCharts)
                        | (NoCharts, PolicyDetail)
                        | (Policies, PolicyDetail)
                        | (PolicyDetail, Policies)
                        | (Alerts, NoCharts)
                        | (NoCharts, Alerts)
                        | (Storage, NoCharts)
                        | (NoCharts, Storage)
                )
        }
    }
}

/// The effective bindings.
#[derive(Debug, Clone)]
pub struct Keymap {
    bindings: BTreeMap<Action, Vec<Key>>,
    read_only: bool,
}

/// A binding problem in `config.toml`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct KeymapError(pub String);

impl Keymap {
    /// Defaults plus overrides (`action name → key`, `""` unbinds). `lines` gives
    /// each override's line for error messages; `file` names the config file.
    pub fn new(
        overrides: &BTreeMap<String, String>,
        lines: &BTreeMap<String, usize>,
        file: &str,
        read_only: bool,
    ) -> Result<Keymap, KeymapError> {
        let mut bindings: BTreeMap<Action, Vec<Key>> = ACTIONS.iter().map(|i| (i.action, i.default.to_vec())).collect();
        let at = |name: &str| match lines.get(name) {
            Some(l) => format!("{file}:{l}"),
            None => file.to_string(),
        };
        for (name, key) in overrides {
            let Some(i) = ACTIONS.iter().find(|i| i.name == name) else {
                let names: Vec<&str> = ACTIONS.iter().map(|i| i.name).collect();
                return Err(KeymapError(format!(
                    "{}: unknown action `{name}` in [keys]; actions: {}",
                    at(name),
                    names.join(", ")
                )));
            };
            if key.trim().is_empty() {
                bindings.insert(i.action, vec![]);
                continue;
            }
            let k = Key::parse(key).ok_or_else(|| {
                KeymapError(format!(
                    "{}: `{key}` is not a key (examples: \"r\", \"R\", \"ctrl-r\", \"f5\", \"enter\")",
                    at(name)
                ))
            })?;
            bindings.insert(i.action, vec![k]);
        }
        // Conflicts: one key, two actions, in contexts active together.
        let mut seen: Vec<(Key, &ActionInfo)> = Vec::new();
        for i in ACTIONS {
            if read_only && i.dangerous {
                continue;
            }
            for k in bindings.get(&i.action).into_iter().flatten() {
                if let Some((_, other)) = seen.iter().find(|(sk, o)| sk == k && overlaps(o.context, i.context)) {
                    let blame = if overrides.contains_key(i.name) { i.name } else { other.name };
                    return Err(KeymapError(format!(
                        "{}: key `{k}` is bound to both `{}` and `{}`; bind one of them to another key or unbind it with \"\"",
                        at(blame),
                        other.name,
                        i.name
                    )));
                }
                seen.push((*k, i));
            }
        }
        Ok(Keymap { bindings, read_only })
    }

    pub fn defaults(read_only: bool) -> Keymap {
        Keymap::new(&BTreeMap::new(), &BTreeMap::new(), "defaults", read_only)
            .unwrap_or(Keymap { bindings: BTreeMap::new(), read_only })
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// The action a key triggers in the given active contexts. Dangerous actions are
    /// not bound at all under `--read-only`.
    pub fn action(&self, key: Key, active: &[Context]) -> Option<Action> {
        ACTIONS
            .iter()
            .filter(|i| !(self.read_only && i.dangerous))
            .filter(|i| active.contains(&i.context))
            .find(|i| self.bindings.get(&i.action).is_some_and(|ks| ks.contains(&key)))
            .map(|i| i.action)
    }

    pub fn keys(&self, a: Action) -> &[Key] {
        self.bindings.get(&a).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The first key of an action, for hints (`None` when unbound).
    pub fn hint(&self, a: Action) -> Option<Key> {
        if self.read_only && info_of(a).dangerous {
            return None;
        }
        self.keys(a).first().copied()
    }

    /// What `?` shows: exactly the bindings that work in these contexts.
    pub fn help(&self, active: &[Context]) -> Vec<(String, &'static str, bool)> {
        ACTIONS
            .iter()
            .filter(|i| !(self.read_only && i.dangerous))
            .filter(|i| active.contains(&i.context))
            .filter_map(|i| {
                let ks = self.keys(i.action);
                (!ks.is_empty())
                    .then(|| (ks.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(" "), i.help, i.dangerous))
            })
            .collect()
    }
}

impl Keymap {
    /// The `:` commands that work in these contexts (their read-only forms under
    /// `--read-only`): (usage, what it does).
    pub fn command_help(&self, active: &[Context]) -> Vec<(&'static str, &'static str)> {
        COMMAND_HELP
            .iter()
            .filter(|c| active.contains(&c.context))
            .filter_map(|c| {
                let usage = if self.read_only { c.read_only_usage? } else { c.usage };
                Some((usage, c.help))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_key_names() {
        assert_eq!(Key::parse("r"), Some(Key::ch('r')));
        assert_eq!(Key::parse("R"), Some(Key::ch('R')));
        assert_eq!(Key::parse("ctrl-R"), Some(Key::ctrl('r')));
        assert_eq!(Key::parse("pgdn"), Some(Key::code(Code::PageDown)));
        assert_eq!(Key::parse("f5"), Some(Key::code(Code::F(5))));
        assert_eq!(Key::parse("space"), Some(Key::ch(' ')));
        assert_eq!(Key::parse("xyz"), None);
        assert_eq!(Key::ctrl('r').to_string(), "ctrl-r");
    }

    #[test]
    fn defaults_have_no_conflicts_and_contexts_separate_minus() {
        let k = Keymap::defaults(false);
        assert_eq!(k.action(Key::ch('-'), &[Context::Global, Context::NoCharts]), Some(Action::PreviousView));
        assert_eq!(k.action(Key::ch('-'), &[Context::Global, Context::Charts, Context::Server]), Some(Action::ZoomOut));
        assert_eq!(k.action(Key::ch('r'), &[Context::Global, Context::Server]), Some(Action::Reboot));
        assert_eq!(k.action(Key::ch('r'), &[Context::Global]), None, "server keys only where servers are");
    }

    #[test]
    fn read_only_unbinds_dangerous_actions_and_help_agrees() {
        let k = Keymap::defaults(true);
        let ctx = [Context::Global, Context::Server];
        assert_eq!(k.action(Key::ch('r'), &ctx), None);
        assert_eq!(k.action(Key::ch('D'), &ctx), None);
        assert_eq!(k.action(Key::ch('l'), &ctx), Some(Action::ConsoleLog));
        let help = k.help(&ctx);
        assert!(help.iter().all(|(_, _, dangerous)| !dangerous));
        assert!(help.iter().any(|(k, _, _)| k == "l"));
    }

    #[test]
    fn remaps_unbinds_and_reports_conflicts_with_lines() {
        let lines: BTreeMap<String, usize> = [("reboot".to_string(), 12), ("stop".to_string(), 13)].into();
        let o: BTreeMap<String, String> = [("reboot".to_string(), "R".to_string())].into();
        let k = Keymap::new(&o, &lines, "c.toml", false).unwrap();
        assert_eq!(k.action(Key::ch('R'), &[Context::Global, Context::Server]), Some(Action::Reboot));
        assert_eq!(k.action(Key::ch('r'), &[Context::Global, Context::Server]), None);
        let o: BTreeMap<String, String> = [("stop".to_string(), "".to_string())].into();
        let k = Keymap::new(&o, &lines, "c.toml", false).unwrap();
        assert_eq!(k.action(Key::ch('x'), &[Context::Global, Context::Server]), None);
        let o: BTreeMap<String, String> = [("stop".to_string(), "q".to_string())].into();
        let e = Keymap::new(&o, &lines, "c.toml", false).unwrap_err();
        assert!(e.0.starts_with("c.toml:13: key `q` is bound to both `quit` and `stop`"), "{e}");
        let o: BTreeMap<String, String> = [("reboot".to_string(), "ctrl-shift-zz".to_string())].into();
        assert!(Keymap::new(&o, &lines, "c.toml", false).unwrap_err().0.starts_with("c.toml:12:"));
        let o: BTreeMap<String, String> = [("explode".to_string(), "e".to_string())].into();
        assert!(Keymap::new(&o, &lines, "c.toml", false).unwrap_err().0.contains("unknown action `explode`"));
    }
}
