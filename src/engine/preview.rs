//! What a changed policy would make the engine do: the tick's own `decide` and
//! planner, run on the current observation with the changed policy in place of
//! the one in force. Nothing is persisted and nothing is carried out; the
//! console shows the outcome in the confirmation of an edit.

use super::decide::Decision;
use super::members::member;
use super::plan::{AppMode, Step};
use crate::domain::Server;
use crate::policy::edit::describe_change;
use crate::policy::PolicyFile;

/// The planner's view of a changed policy, now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Preview {
    pub app: String,
    /// The revision new members would get, and whether it is a new one.
    pub revision: u32,
    pub new_revision: bool,
    /// Members wanted (the policy's, or the autoscaler's decision).
    pub desired: u32,
    /// Members counted toward capacity now.
    pub members: u32,
    /// Members on another revision than the one new members get.
    pub outdated: u32,
    pub creates: u32,
    pub removes: u32,
    /// The engine would hold the application: why.
    pub hold: Option<String>,
    /// Why the launch spec cannot be used on the cloud.
    pub problems: Vec<String>,
    /// The planned steps, as the Plan view words them.
    pub steps: Vec<String>,
}

/// Read a decision for one policy.
pub fn summarize(d: &Decision, policy_id: &str, servers: &[std::sync::Arc<Server>]) -> Option<Preview> {
    let input = d.inputs.iter().find(|a| a.policy_id == policy_id)?;
    let mine: Vec<_> = d.plan.actions.iter().filter(|a| a.policy_id.as_deref() == Some(policy_id)).collect();
    let count = |f: fn(&Step) -> bool| mine.iter().filter(|a| f(&a.step)).count() as u32;
    let members: Vec<_> = servers.iter().filter_map(|s| member(s)).filter(|m| m.policy_id == policy_id).collect();
    let status = d.plan.apps.iter().find(|a| a.policy_id == policy_id);
    Some(Preview {
        app: input.app.clone(),
        revision: input.revision,
        new_revision: d.new_revisions.iter().any(|r| r.policy_id == policy_id),
        desired: input.desired,
        members: status.map_or(members.len() as u32, |s| s.members),
        outdated: members.iter().filter(|m| !m.deleting && m.revision != Some(input.revision)).count() as u32,
        creates: count(|s| matches!(s, Step::Create { .. })),
        removes: count(|s| matches!(s, Step::MarkTerminating { .. })),
        hold: match &input.mode {
            AppMode::Hold(why) => Some(why.clone()),
            _ => None,
        },
        problems: input.invalid.iter().cloned().collect(),
        steps: mine.iter().filter(|a| !matches!(a.step, Step::CompleteIntent { .. })).map(|a| a.describe()).collect(),
    })
}

/// The effect of a change in the engine's words: what changes in the policy,
/// then what the planner would do about it now (when a preview was made).
pub fn effect(old: Option<&PolicyFile>, new: &PolicyFile, p: Option<&Preview>) -> Vec<String> {
    let mut lines = describe_change(old, new);
    let Some(p) = p else {
        if lines.is_empty() {
            lines.push("no change to what the engine does".into());
        }
        return lines;
    };
    let act = match (p.creates, p.removes) {
        (0, 0) => None,
        (c, 0) => Some(plural(c, "create")),
        (0, r) => Some(format!("{} (drained first)", plural(r, "removal"))),
        (c, r) => Some(format!("{}, {}", plural(c, "create"), plural(r, "removal"))),
    };
    let desired_line = lines.iter_mut().find(|l| l.starts_with("desired "));
    match (desired_line, &act) {
        (Some(l), Some(a)) => {
            l.push_str(": ");
            l.push_str(a);
        }
        (Some(l), None) if p.desired != new.deploy.capacity.desired => {
            l.push_str(&format!(": the autoscaler keeps {}", p.desired));
        }
        (None, Some(a)) => lines.push(format!("now: {a} (desired {}, {} counted)", p.desired, p.members)),
        _ => {}
    }
    // The launch spec is the deploy section but its capacity.
    let spec_changed = old.is_some_and(|o| {
        let mut d = o.deploy.clone();
        d.capacity = new.deploy.capacity;
        d != new.deploy
    });
    if spec_changed && p.new_revision && p.outdated > 0 {
        lines.push(format!("launch spec change: revision {}, rolling update of {} member(s)", p.revision, p.outdated));
    } else if spec_changed && p.new_revision {
        lines.push(format!("launch spec change: revision {} for new members", p.revision));
    } else if spec_changed {
        lines.push(format!("launch spec: back to revision {}", p.revision));
    }
    if let Some(h) = &p.hold {
        lines.push(format!("the engine holds it: {h}"));
    }
    for problem in &p.problems {
        lines.push(format!("creates are blocked: {problem}"));
    }
    if lines.is_empty() {
        lines.push("no change to what the engine does".into());
    }
    lines
}

fn plural(n: u32, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(max: u32, desired: u32, image: &str) -> PolicyFile {
        let t = format!(
            "[app]\nname = \"web\"\ncloud = \"c\"\n[deploy]\nimage = \"{image}\"\nflavor = \"f\"\nnetworks = [\"n\"]\ncapacity = {{ min = 1, max = {max}, desired = {desired} }}\n"
        );
        crate::policy::parse(&t, std::path::Path::new("w.toml")).unwrap().spec
    }

    #[test]
    fn effects_join_the_change_and_the_plan() {
        let p = Preview { creates: 2, desired: 4, members: 2, revision: 1, ..Default::default() };
        assert_eq!(effect(Some(&spec(8, 2, "i")), &spec(8, 4, "i"), Some(&p)), vec!["desired 2 → 4: 2 creates"]);
        let p = Preview { removes: 1, desired: 1, members: 2, revision: 1, ..Default::default() };
        assert_eq!(
            effect(Some(&spec(8, 2, "i")), &spec(8, 1, "i"), Some(&p)),
            vec!["desired 2 → 1: 1 removal (drained first)"]
        );
        let p = Preview { desired: 2, members: 4, outdated: 4, revision: 3, new_revision: true, ..Default::default() };
        let l = effect(Some(&spec(8, 2, "i")), &spec(8, 2, "j"), Some(&p));
        assert_eq!(l[0], "image i → j");
        assert_eq!(l[1], "launch spec change: revision 3, rolling update of 4 member(s)");
        let p = Preview { desired: 3, members: 3, revision: 1, ..Default::default() };
        assert_eq!(
            effect(Some(&spec(8, 2, "i")), &spec(8, 4, "i"), Some(&p)),
            vec!["desired 2 → 4: the autoscaler keeps 3"]
        );
        assert_eq!(effect(Some(&spec(8, 2, "i")), &spec(8, 2, "i"), None), vec!["no change to what the engine does"]);
        assert_eq!(effect(Some(&spec(8, 2, "i")), &spec(3, 2, "i"), None), vec!["max 8 → 3"]);
    }
}
