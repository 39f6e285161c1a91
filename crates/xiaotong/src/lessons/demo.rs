//! Demo data for the training centre: subjects, courses, rooms, lesson
//! classes over the directory's classes, a package catalogue, one sale per
//! student a year ago, and a year of weekly lessons checked in through the
//! real check-in path (so the ledger chains and the reports are genuine).

use super::model::{LessonSettings, Mark, NewClass, Package, Pool, Room};
use super::service::{check_in_once, day_of, sell_package, CheckinPart, ParentNotices};
use super::store;
use crate::app::App;
use crate::auth::Actor;
use crate::db::{now_ms, RowExt, Sql};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DAY: i64 = 86_400_000;
const WEEKS: i64 = 50;

/// (subject, course, kind, minutes, hours per lesson)
const COURSES: &[(&str, &str, &str, i64, i64)] = &[
    ("钢琴", "钢琴小组课", "small_group", 60, 150),
    ("小提琴", "小提琴小组课", "small_group", 60, 150),
    ("素描", "素描大班课", "large_class", 90, 200),
    ("国画", "国画小组课", "small_group", 90, 150),
    ("少儿编程", "少儿编程课", "small_group", 90, 200),
];

/// Fill the demo's training tenant (`training`, whose teacher logs in as `teacher`).
pub async fn seed_training(app: &App) -> anyhow::Result<String> {
    let t = crate::auth::store::tenant_by_code(&app.db, "training")
        .await?
        .ok_or_else(|| anyhow::anyhow!("no training tenant"))?;
    let teacher = app
        .db
        .fetch_one(
            &Sql::new("SELECT id FROM people WHERE tenant_id = ? AND username = 'teacher'")
                .bind(t.id),
        )
        .await?
        .i64("id")?;
    seed(app, t.id, teacher).await
}

/// Fill the training tenant. `teacher_login` is the demo teacher, who gets
/// the first class (where the demo student is).
pub async fn seed(app: &App, tenant_id: i64, teacher_login: i64) -> anyhow::Result<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(2027);
    let tz = app.settings.timezone;
    let now = now_ms();
    let mut tx = app.db.begin().await?;
    store::save_settings(&mut tx, tenant_id, &LessonSettings::default()).await?;
    let campuses: Vec<i64> = tx
        .fetch_all(
            &Sql::new("SELECT id FROM campuses WHERE tenant_id = ? ORDER BY id").bind(tenant_id),
        )
        .await?
        .iter()
        .map(|r| r.i64("id"))
        .collect::<crate::error::Result<_>>()?;
    let mut rooms = vec![];
    for (i, c) in campuses.iter().enumerate() {
        for (j, (name, cap, eq)) in [
            ("琴房", 8, "钢琴 ×4"),
            ("画室", 30, "画架 ×30"),
            ("机房", 20, "电脑 ×20"),
        ]
        .iter()
        .enumerate()
        {
            let room = Room {
                id: 0,
                campus_id: Some(*c),
                name: format!("{}{}{}", ["天河", "海珠", "番禺"][i % 3], name, j + 1),
                capacity: *cap,
                equipment: Some(eq.to_string()),
            };
            rooms.push(store::insert_room(&mut tx, tenant_id, &room).await?);
        }
    }
    let mut course_ids = vec![];
    for (subject, name, kind, minutes, hours) in COURSES {
        let sid = store::insert_subject(&mut tx, tenant_id, subject).await?;
        let c = super::model::Course {
            id: 0,
            subject_id: Some(sid),
            name: name.to_string(),
            kind: kind.to_string(),
            lesson_minutes: *minutes,
            hours_per_lesson: *hours,
        };
        course_ids.push((
            store::insert_course(&mut tx, tenant_id, &c).await?,
            sid,
            *hours,
        ));
    }
    let mut packages = vec![];
    for (i, (subject, _, _, _, hours)) in COURSES.iter().enumerate() {
        let pk = Package {
            id: 0,
            name: format!("{subject}全年 {} 课时", hours * 48 / 100),
            validity_days: 365,
            pools: vec![Pool {
                name: subject.to_string(),
                paid_hours: hours * 48,
                bonus_hours: hours * 2,
                price_fen: hours * 48 * 180,
                course_ids: vec![],
                subject_ids: vec![course_ids[i].1],
            }],
            price_fen: 0,
            active: true,
        };
        let id = store::insert_package(&mut tx, tenant_id, &pk).await?;
        packages.push(Package { id, ..pk });
    }
    let mixed = Package {
        id: 0,
        name: "暑期 60 课时（钢琴 + 乐理）".into(),
        validity_days: 120,
        pools: vec![
            Pool {
                name: "钢琴主课".into(),
                paid_hours: 4000,
                bonus_hours: 0,
                price_fen: 720_000,
                course_ids: vec![course_ids[0].0],
                subject_ids: vec![],
            },
            Pool {
                name: "通用副课".into(),
                paid_hours: 2000,
                bonus_hours: 400,
                price_fen: 240_000,
                course_ids: vec![],
                subject_ids: vec![],
            },
        ],
        price_fen: 0,
        active: true,
    };
    store::insert_package(&mut tx, tenant_id, &mixed).await?;
    tx.commit().await?;

    // Lesson classes over the directory's classes, with their students.
    let classes = app
        .db
        .fetch_all(
            &Sql::new("SELECT id, name, campus_id FROM classes WHERE tenant_id = ? ORDER BY id")
                .bind(tenant_id),
        )
        .await?;
    let teachers: Vec<i64> = app
        .db
        .fetch_all(&Sql::new("SELECT id FROM people WHERE tenant_id = ? AND kind = 'teacher' AND id <> ? ORDER BY id").bind(tenant_id).bind(teacher_login))
        .await?
        .iter()
        .map(|r| r.i64("id"))
        .collect::<crate::error::Result<_>>()?;
    let actor = Actor::system(tenant_id, "demo");
    let settings = store::settings(&app.db, tenant_id).await?;
    let mut lesson_classes = vec![];
    for (i, c) in classes.iter().enumerate() {
        let class_id = c.i64("id")?;
        let students: Vec<i64> = app
            .db
            .fetch_all(&Sql::new("SELECT id FROM people WHERE tenant_id = ? AND kind = 'student' AND class_id = ? ORDER BY id").bind(tenant_id).bind(class_id))
            .await?
            .iter()
            .map(|r| r.i64("id"))
            .collect::<crate::error::Result<_>>()?;
        if students.is_empty() {
            continue;
        }
        let ci = i % COURSES.len();
        let teacher = if i == 0 {
            teacher_login
        } else {
            teachers
                .get(i % teachers.len().max(1))
                .copied()
                .unwrap_or(teacher_login)
        };
        let nc = NewClass {
            course_id: course_ids[ci].0,
            campus_id: c.opt_i64("campus_id")?,
            room_id: rooms.get(i % rooms.len().max(1)).copied(),
            name: format!("{} · {}", COURSES[ci].1, c.str("name")?),
            capacity: students.len() as i64 + 5,
            teacher_ids: vec![teacher],
            student_ids: students.clone(),
        };
        let mut tx = app.db.begin().await?;
        let lc = store::insert_class(&mut tx, tenant_id, &nc).await?;
        // Part-time teachers: 6 hours a week each, for the saturation KPI.
        tx.execute(
            &Sql::new(crate::db::insert_ignore(
                tx.backend(),
                "teacher_availability (tenant_id, teacher_id, hours_per_week) VALUES (?, ?, 6)",
            ))
            .bind(tenant_id)
            .bind(teacher),
        )
        .await?;
        tx.commit().await?;
        for s in &students {
            let bought = now - (358 + rng.gen_range(0..5)) * DAY;
            sell_package(app, &actor, *s, &packages[ci], nc.campus_id, bought).await?;
        }
        lesson_classes.push((lc, ci, teacher, nc.campus_id, nc.room_id, students));
    }

    // A year of weekly lessons, the last one yesterday-ish, each checked in.
    let mut sessions = 0;
    let mut entries = 0;
    let today_start = {
        let d = chrono::DateTime::from_timestamp_millis(now)
            .unwrap_or_default()
            .with_timezone(&tz)
            .date_naive();
        use chrono::TimeZone;
        d.and_hms_opt(0, 0, 0)
            .and_then(|m| tz.from_local_datetime(&m).earliest())
            .map(|t| t.timestamp_millis())
            .unwrap_or(now)
    };
    let mut last_of_first = None;
    for (k, (lc, ci, teacher, campus, room, students)) in lesson_classes.iter().enumerate() {
        let (course, _, hours) = course_ids[*ci];
        let minutes = COURSES[*ci].3;
        for w in (1..=WEEKS).rev() {
            let starts =
                today_start - (w * 7 - (k as i64 % 7)) * DAY + (9 + 2 * (k as i64 % 5)) * 3_600_000;
            // Only lessons before today: the history has the same size
            // whatever the time of day the demo starts.
            if starts >= today_start {
                continue;
            }
            let mut tx = app.db.begin().await?;
            let sid = store::insert_session(
                &mut tx,
                tenant_id,
                *lc,
                course,
                Some(*teacher),
                *room,
                *campus,
                starts,
                starts + minutes * 60_000,
                day_of(starts, tz),
                false,
                hours,
            )
            .await?;
            tx.commit().await?;
            let session = store::session(&app.db, tenant_id, sid)
                .await?
                .ok_or_else(|| anyhow::anyhow!("session {sid}"))?;
            let marks: Vec<Mark> = students
                .iter()
                .map(|s| {
                    let r: f64 = rng.gen();
                    let status = if r < 0.86 {
                        "present"
                    } else if r < 0.93 {
                        "late"
                    } else if r < 0.98 {
                        "excused"
                    } else {
                        "absent"
                    };
                    Mark {
                        student_id: *s,
                        status: status.into(),
                    }
                })
                .collect();
            let teacher = Actor {
                person_id: Some(*teacher),
                ..actor.clone()
            };
            let part = CheckinPart {
                actor: &teacher,
                session: &session,
                settings: &settings,
                marks: &marks,
                notices: ParentNotices::Skip,
            };
            let out = check_in_once(&app.db, &app.keys, &part).await?;
            entries += out.results.iter().filter(|r| r.seq.is_some()).count();
            sessions += 1;
            if k == 0 {
                last_of_first = Some(sid);
            }
        }
    }
    // Leave the latest lesson of the demo class unchecked so the demo
    // teacher can check it in, and add today's lesson.
    if let (Some(_), Some((lc, ci, teacher, campus, room, _))) =
        (last_of_first, lesson_classes.first())
    {
        let (course, _, hours) = course_ids[*ci];
        let starts = today_start + 18 * 3_600_000;
        let mut tx = app.db.begin().await?;
        store::insert_session(
            &mut tx,
            tenant_id,
            *lc,
            course,
            Some(*teacher),
            *room,
            *campus,
            starts,
            starts + COURSES[*ci].3 * 60_000,
            day_of(starts, tz),
            false,
            hours,
        )
        .await?;
        tx.commit().await?;
    }
    Ok(format!(
        "  lesson hours (tenant training): {} classes, {} packages, {sessions} lessons over {WEEKS} weeks, {entries} ledger entries\n",
        lesson_classes.len(),
        packages.len() + 1
    ))
}
