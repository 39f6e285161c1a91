//! Group commit of check-ins.
//!
//! When many phones check in at once, each check-in on its own would be a
//! transaction that claims ledger chain heads, updates the day's totals and
//! commits; on PostgreSQL they queue on the chain-head locks, on SQLite on
//! its single writer. Instead, check-ins that arrive while a group is being
//! written wait for the next group, and each group is one transaction: one
//! commit, one claim per ledger chain, one daily-total update per chain.
//! Nobody waits for a timer: a lone check-in is written at once.
//!
//! The writer also reads what the check-ins need (their sessions, the
//! tenant's settings, which students exist, who teaches the classes) with
//! one query each for the whole group, instead of four per request.
//!
//! Every check-in keeps its own answer. If any check-in of a group fails
//! (not enough hours, a deadlock), the group is rolled back and each of its
//! check-ins runs again in a transaction of its own, so one bad request
//! never fails another; check-ins are idempotent, so running one again is
//! safe.

use super::model::{CheckInResult, LessonSettings, Mark, MarkResult};
use super::service::{
    check_in_parts, check_in_retrying, known_students, CheckinAccess, CheckinPart, ParentNotices,
};
use super::store::{self, SessionRow};
use crate::app::App;
use crate::auth::Actor;
use crate::crypto::Keys;
use crate::db::Db;
use crate::error::{Error, Result};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Check-ins with more marks than this (a whole class) are written on
/// their own: they are a group already.
pub const MAX_MARKS_GROUPED: usize = 16;
/// At most this many check-ins per group, so a group's transaction stays short.
const MAX_GROUP: usize = 256;

/// A check-in as it arrives: validated in form, not yet against the data.
struct Request {
    actor: Actor,
    access: CheckinAccess,
    session_id: i64,
    marks: Vec<Mark>,
    reply: oneshot::Sender<Result<CheckInResult>>,
}

/// A check-in whose session is in reach and whose students exist.
struct Pending {
    actor: Actor,
    session: SessionRow,
    settings: LessonSettings,
    marks: Vec<Mark>,
    reply: oneshot::Sender<Result<CheckInResult>>,
}

/// The queue of one process; its writer task starts with the first check-in.
#[derive(Default)]
pub struct CheckinGroups {
    queue: Mutex<Option<mpsc::UnboundedSender<Request>>>,
}

impl std::fmt::Debug for CheckinGroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("lessons::CheckinGroups")
    }
}

impl CheckinGroups {
    /// Check in as part of the next group and wait for its commit.
    pub async fn submit(
        &self,
        app: &App,
        actor: Actor,
        access: CheckinAccess,
        session_id: i64,
        marks: Vec<Mark>,
    ) -> Result<CheckInResult> {
        let (reply, answer) = oneshot::channel();
        let pending = Request {
            actor,
            access,
            session_id,
            marks,
            reply,
        };
        let queue = {
            let mut q = self
                .queue
                .lock()
                .map_err(|_| Error::Unavailable("check-in queue poisoned".into()))?;
            match q.as_ref() {
                Some(s) if !s.is_closed() => s.clone(),
                _ => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    // The writer holds the database and keys, not the App,
                    // so it ends when the App (and this queue) is dropped.
                    tokio::spawn(write_groups(app.db.clone(), app.keys.clone(), rx));
                    *q = Some(tx.clone());
                    tx
                }
            }
        };
        queue
            .send(pending)
            .map_err(|_| Error::Unavailable("check-in writer stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Unavailable("check-in writer stopped".into()))?
    }
}

async fn write_groups(db: Db, keys: Arc<Keys>, mut rx: mpsc::UnboundedReceiver<Request>) {
    let mut batch = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut batch, MAX_GROUP).await > 0 {
        let group = std::mem::take(&mut batch);
        metrics::histogram!("xiaotong_checkin_group_size").record(group.len() as f64);
        // A panic in one group must not stop check-ins for good.
        let (db, keys) = (db.clone(), keys.clone());
        let task = async move {
            let ready = prepare(&db, group).await;
            write_group(&db, &keys, ready).await
        };
        if let Err(e) = tokio::spawn(task).await {
            tracing::error!(error = %e, "check-in group panicked");
        }
    }
}

/// What one tenant's check-ins of a group need, read at once.
struct Loaded {
    sessions: HashMap<i64, SessionRow>,
    settings: LessonSettings,
    students: HashSet<i64>,
    class_teachers: HashSet<(i64, i64)>,
}

async fn load(db: &Db, tenant_id: i64, requests: &[Request]) -> Result<Loaded> {
    let mut session_ids: Vec<i64> = requests.iter().map(|r| r.session_id).collect();
    session_ids.sort_unstable();
    session_ids.dedup();
    let sessions = store::sessions_by_id(db, tenant_id, &session_ids).await?;
    let mut student_ids: Vec<i64> = requests
        .iter()
        .flat_map(|r| r.marks.iter().map(|m| m.student_id))
        .collect();
    student_ids.sort_unstable();
    student_ids.dedup();
    let students = store::existing_people(db, tenant_id, "student", &student_ids)
        .await?
        .into_iter()
        .collect();
    let settings = store::settings(db, tenant_id).await?;
    let (mut classes, mut teachers) = (vec![], vec![]);
    for r in requests {
        if let Some(s) = sessions.get(&r.session_id) {
            if let (true, Some(person)) = (
                r.access.needs_class_teachers(r.actor.person_id, s),
                r.actor.person_id,
            ) {
                classes.push(s.api.class_id);
                teachers.push(person);
            }
        }
    }
    classes.sort_unstable();
    classes.dedup();
    teachers.sort_unstable();
    teachers.dedup();
    let class_teachers = store::teaching_pairs(db, tenant_id, &classes, &teachers).await?;
    Ok(Loaded {
        sessions,
        settings,
        students,
        class_teachers,
    })
}

impl Loaded {
    fn admit(&self, r: &Request) -> Result<(SessionRow, LessonSettings)> {
        let s = self
            .sessions
            .get(&r.session_id)
            .ok_or(Error::NotFound("session"))?;
        let person = r.actor.person_id;
        let in_reach = r.access.reaches_directly(person, s)
            || (r.access.needs_class_teachers(person, s)
                && person.is_some_and(|p| self.class_teachers.contains(&(s.api.class_id, p))));
        if !in_reach {
            return Err(Error::NotFound("session"));
        }
        known_students(&r.marks, &self.students)?;
        Ok((s.clone(), self.settings.clone()))
    }
}

/// Read what the group needs and answer at once the check-ins that cannot
/// be written (a session out of reach, an unknown student).
async fn prepare(db: &Db, group: Vec<Request>) -> Vec<Pending> {
    let mut tenants: Vec<i64> = group.iter().map(|r| r.actor.tenant_id).collect();
    tenants.sort_unstable();
    tenants.dedup();
    let mut ready = Vec::with_capacity(group.len());
    let mut rest = group;
    for tenant_id in tenants {
        let (mine, others): (Vec<Request>, Vec<Request>) = rest
            .into_iter()
            .partition(|r| r.actor.tenant_id == tenant_id);
        rest = others;
        match load(db, tenant_id, &mine).await {
            Ok(loaded) => {
                for r in mine {
                    match loaded.admit(&r) {
                        Ok((session, settings)) => ready.push(Pending {
                            actor: r.actor,
                            session,
                            settings,
                            marks: r.marks,
                            reply: r.reply,
                        }),
                        Err(e) => {
                            r.reply.send(Err(e)).ok();
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading a check-in group failed");
                for r in mine {
                    r.reply
                        .send(Err(Error::Unavailable(format!("check-in failed: {e}"))))
                        .ok();
                }
            }
        }
    }
    ready
}

/// Check-ins of one tenant and session by one person with distinct students:
/// they are written as one check-in of all their marks.
struct Part {
    key: (i64, i64, Option<i64>),
    members: Vec<usize>,
    students: HashSet<i64>,
}

fn partition(group: &[Pending]) -> Vec<Part> {
    let mut parts: Vec<Part> = vec![];
    // The open part of each key; a student seen twice opens a new part,
    // written after the first, so the repeat finds the first mark.
    let mut open: HashMap<(i64, i64, Option<i64>), usize> = HashMap::new();
    for (i, p) in group.iter().enumerate() {
        let key = (p.actor.tenant_id, p.session.api.id, p.actor.person_id);
        let fits = open.get(&key).is_some_and(|k| {
            p.marks
                .iter()
                .all(|m| !parts[*k].students.contains(&m.student_id))
        });
        if !fits {
            open.insert(key, parts.len());
            parts.push(Part {
                key,
                members: vec![],
                students: HashSet::new(),
            });
        }
        let part = &mut parts[open[&key]];
        part.members.push(i);
        part.students.extend(p.marks.iter().map(|m| m.student_id));
    }
    parts
}

async fn write_group(db: &Db, keys: &Keys, group: Vec<Pending>) {
    if group.is_empty() {
        return;
    }
    if group.len() > 1 {
        match try_together(db, keys, &group).await {
            Ok(answers) => {
                for (p, a) in group.into_iter().zip(answers) {
                    p.reply.send(Ok(a)).ok();
                }
                return;
            }
            Err(e) => tracing::debug!(error = %e, "check-in group failed; writing one by one"),
        }
    }
    for p in group {
        let part = CheckinPart {
            actor: &p.actor,
            session: &p.session,
            settings: &p.settings,
            marks: &p.marks,
            notices: ParentNotices::Send,
        };
        let r = check_in_retrying(db, keys, &part).await;
        p.reply.send(r).ok();
    }
}

/// All check-ins of the group in one transaction, or none.
async fn try_together(db: &Db, keys: &Keys, group: &[Pending]) -> Result<Vec<CheckInResult>> {
    let parts = partition(group);
    let mut tx = db.begin().await?;
    // The marks of each part, joined from its members' requests.
    let marks: Vec<Vec<Mark>> = parts
        .iter()
        .map(|part| {
            part.members
                .iter()
                .flat_map(|i| group[*i].marks.iter().cloned())
                .collect()
        })
        .collect();
    // Each part's results by student.
    let mut results_of: Vec<HashMap<i64, MarkResult>> =
        (0..parts.len()).map(|_| HashMap::new()).collect();
    for round in rounds(&parts) {
        let inputs: Vec<CheckinPart> = round
            .iter()
            .map(|k| {
                let first = &group[parts[*k].members[0]];
                CheckinPart {
                    actor: &first.actor,
                    session: &first.session,
                    settings: &first.settings,
                    marks: &marks[*k],
                    notices: ParentNotices::Send,
                }
            })
            .collect();
        match check_in_parts(keys, &mut tx, &inputs).await {
            Ok(outs) => {
                for (k, out) in round.iter().zip(outs) {
                    results_of[*k] = out.results.into_iter().map(|r| (r.student_id, r)).collect();
                }
            }
            Err(e) => {
                tx.rollback().await.ok();
                return Err(e);
            }
        }
    }
    tx.commit().await?;
    let mut answers: Vec<Option<CheckInResult>> = (0..group.len()).map(|_| None).collect();
    for (part, results) in parts.iter().zip(results_of.iter_mut()) {
        for i in &part.members {
            let p = &group[*i];
            answers[*i] = Some(CheckInResult {
                session_id: part.key.1,
                results: p
                    .marks
                    .iter()
                    .filter_map(|m| results.remove(&m.student_id))
                    .collect(),
            });
        }
    }
    Ok(answers.into_iter().map(Option::unwrap_or_default).collect())
}

/// Parts written together: of one tenant, and no student twice. A part
/// with a student already in its tenant's last round starts a new round,
/// written after it, so a repeat finds the earlier mark (as one after the
/// other would). A student checked in for two lessons goes into two
/// rounds too, which keeps the rule one simple check.
fn rounds(parts: &[Part]) -> Vec<Vec<usize>> {
    let mut rounds: Vec<Vec<usize>> = vec![];
    let mut students: Vec<HashSet<i64>> = vec![];
    let mut last_of_tenant: HashMap<i64, usize> = HashMap::new();
    for (k, part) in parts.iter().enumerate() {
        let tenant = part.key.0;
        let fits = last_of_tenant
            .get(&tenant)
            .is_some_and(|r| students[*r].is_disjoint(&part.students));
        if !fits {
            last_of_tenant.insert(tenant, rounds.len());
            rounds.push(vec![]);
            students.push(HashSet::new());
        }
        let r = last_of_tenant[&tenant];
        rounds[r].push(k);
        students[r].extend(part.students.iter().copied());
    }
    rounds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(tenant: i64, session: i64, person: i64, students: &[i64]) -> Pending {
        let mut s = SessionRow::default();
        s.api.id = session;
        Pending {
            actor: Actor {
                person_id: Some(person),
                ..Actor::system(tenant, "test")
            },
            session: s,
            settings: LessonSettings::default(),
            marks: students
                .iter()
                .map(|id| Mark {
                    student_id: *id,
                    status: "present".into(),
                })
                .collect(),
            reply: oneshot::channel().0,
        }
    }

    #[test]
    fn parts_join_distinct_students_and_split_repeats() {
        let group = vec![
            pending(1, 10, 7, &[1]),
            pending(1, 10, 7, &[2]),
            pending(1, 11, 7, &[1]),
            pending(1, 10, 7, &[1]), // a repeat: after the first
            pending(1, 10, 8, &[3]), // another teacher
            pending(2, 10, 7, &[4]), // another tenant
            pending(1, 10, 7, &[5]),
        ];
        let parts: Vec<Vec<usize>> = partition(&group).into_iter().map(|p| p.members).collect();
        assert_eq!(
            parts,
            vec![vec![0, 1], vec![2], vec![3, 6], vec![4], vec![5]]
        );
    }

    #[test]
    fn rounds_join_sessions_of_a_tenant_and_order_repeats() {
        let group = vec![
            pending(1, 10, 7, &[1]),
            pending(1, 11, 7, &[1]), // same student, another session: a later round
            pending(1, 10, 7, &[1]), // a repeat: later still
            pending(2, 10, 7, &[4]), // another tenant: its own round
            pending(1, 12, 8, &[2]), // fits the tenant's last round
            pending(1, 10, 8, &[1]), // same pair by another teacher: a new round
        ];
        let parts = partition(&group);
        let members = |round: &Vec<usize>| -> Vec<usize> {
            round
                .iter()
                .flat_map(|k| parts[*k].members.clone())
                .collect()
        };
        let got: Vec<Vec<usize>> = rounds(&parts).iter().map(members).collect();
        assert_eq!(got, vec![vec![0], vec![1], vec![2, 4], vec![3], vec![5]]);
    }
}
