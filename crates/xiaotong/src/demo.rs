//! `xiaotong demo`: a fresh embedded database with a vocational school and a
//! training centre, generated deterministically (same seed, same people).

use crate::app::{App, Settings};
use crate::audit::{self, Change};
use crate::auth::{self, Actor};
use crate::crypto::Keys;
use crate::db::{RowExt, Sql};
use crate::directory::service::create_tenant;
use crate::directory::store::{self, PersonRecord};
use anyhow::Context;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::time::Instant;

pub const DEMO_PASSWORD: &str = "Demo@2026";

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "罗", "高", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾",
    "肖", "田", "董", "潘", "袁", "蔡", "蒋", "余", "于", "杜", "叶", "程", "魏", "苏", "吕", "丁",
    "任", "卢",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明",
    "超", "秀", "霞", "平", "刚", "桂", "文", "辉", "鑫", "宇", "浩", "欣", "怡", "佳", "俊", "博",
    "晨", "雨", "婷", "子", "轩", "涵", "梓", "睿", "思", "嘉", "一", "诺", "泽", "昊", "然", "琪",
    "悦", "航",
];

fn name(rng: &mut ChaCha8Rng) -> String {
    let mut n = SURNAMES.choose(rng).copied().unwrap_or("王").to_string();
    for _ in 0..rng.gen_range(1..=2) {
        n.push_str(GIVEN.choose(rng).copied().unwrap_or("明"));
    }
    n
}

fn phone(rng: &mut ChaCha8Rng) -> String {
    let prefixes = [
        "138", "139", "150", "151", "186", "187", "177", "133", "199",
    ];
    format!(
        "{}{:08}",
        prefixes.choose(rng).copied().unwrap_or("138"),
        rng.gen_range(0..100_000_000)
    )
}

fn record(
    app: &App,
    kind: &str,
    name: &str,
    number: Option<String>,
    phone: Option<&str>,
    rng: &mut ChaCha8Rng,
) -> PersonRecord {
    PersonRecord {
        kind: kind.into(),
        number,
        name: name.into(),
        gender: Some(if rng.gen_bool(0.5) { "male" } else { "female" }.into()),
        phone_enc: phone.map(|p| app.keys.encrypt(p)),
        phone_index: phone.map(|p| app.keys.blind_index("phone", p)),
        ..PersonRecord::default()
    }
}

/// Create a person with a log-in.
pub async fn create_login(
    app: &App,
    tenant_id: i64,
    mut rec: PersonRecord,
    username: &str,
    password: &str,
    roles: &[&str],
    must_change: bool,
) -> crate::error::Result<i64> {
    rec.username = Some(username.to_lowercase());
    let hash = auth::password::hash(password.to_string()).await?;
    let mut tx = app.db.begin().await?;
    let id = store::insert_person(&mut tx, tenant_id, &rec).await?;
    auth::store::set_password(&mut tx, tenant_id, id, &hash, must_change).await?;
    for r in roles {
        auth::store::grant_role_by_key(&mut tx, tenant_id, id, r).await?;
    }
    audit::append(
        &mut tx,
        &Actor::system(tenant_id, "setup"),
        &[Change::new("create", "person", id)
            .after(serde_json::json!({"kind": rec.kind, "name": rec.name, "username": username}))],
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

#[allow(clippy::too_many_arguments)]
pub async fn create_account(
    app: &App,
    tenant_id: i64,
    kind: &str,
    name: &str,
    username: &str,
    password: &str,
    roles: &[&str],
    must_change: bool,
) -> crate::error::Result<i64> {
    auth::password::check_policy(password)?;
    let rec = PersonRecord {
        kind: kind.into(),
        name: name.into(),
        ..PersonRecord::default()
    };
    create_login(app, tenant_id, rec, username, password, roles, must_change).await
}

async fn set_column(
    app: &App,
    tenant_id: i64,
    id: i64,
    col: &str,
    value: i64,
) -> crate::error::Result<()> {
    app.db
        .execute(
            &Sql::new(format!(
                "UPDATE people SET {col} = ? WHERE tenant_id = ? AND id = ?"
            ))
            .bind(value)
            .bind(tenant_id)
            .bind(id),
        )
        .await?;
    Ok(())
}

async fn add_class_teacher(
    app: &App,
    tenant_id: i64,
    class_id: i64,
    person_id: i64,
    role: &str,
) -> crate::error::Result<()> {
    app.db
        .execute(
            &Sql::new(crate::db::insert_ignore(
                app.db.backend(),
                "class_teachers (tenant_id, class_id, person_id, role) VALUES (?, ?, ?, ?)",
            ))
            .bind(tenant_id)
            .bind(class_id)
            .bind(person_id)
            .bind(role),
        )
        .await?;
    Ok(())
}

async fn grant_all(app: &App, tenant_id: i64, kind: &str, role: &str) -> crate::error::Result<()> {
    app.db
        .execute(
            &Sql::new(
                "INSERT INTO person_roles (tenant_id, person_id, role_id) SELECT p.tenant_id, p.id, r.id FROM people p JOIN roles r ON r.tenant_id = p.tenant_id AND r.role_key = ? \
                 WHERE p.tenant_id = ? AND p.kind = ? AND p.username IS NULL",
            )
            .bind(role)
            .bind(tenant_id)
            .bind(kind),
        )
        .await?;
    Ok(())
}

struct Counts {
    students: usize,
    staff: usize,
    parents: usize,
    classes: usize,
}

/// Students, their parents, staff and teachers of one tenant.
#[allow(clippy::too_many_arguments)]
async fn populate(
    app: &App,
    rng: &mut ChaCha8Rng,
    tenant_id: i64,
    number_prefix: &str,
    teaching_depts: &[(&str, &[&str])],
    admin_depts: &[&str],
    classes_per_major: usize,
    students_per_class: usize,
    teachers: usize,
    admin_staff: usize,
    campus_names: &[&str],
) -> anyhow::Result<(Counts, Vec<i64>, Vec<i64>)> {
    let mut tx = app.db.begin().await?;
    let mut campus_ids = vec![];
    for c in campus_names {
        campus_ids.push(
            tx.insert_id(
                &Sql::new("INSERT INTO campuses (tenant_id, name, created_at) VALUES (?, ?, ?)")
                    .bind(tenant_id)
                    .bind(*c)
                    .bind(crate::db::now_ms()),
            )
            .await?,
        );
    }
    let mut class_list: Vec<(i64, i64)> = vec![]; // (class id, department id)
    let mut teaching_dept_ids = vec![];
    for (di, (dept, majors)) in teaching_depts.iter().enumerate() {
        let dept_id = store::ensure_department_path(&mut tx, tenant_id, dept).await?;
        teaching_dept_ids.push(dept_id);
        for major in majors.iter() {
            let _ =
                store::ensure_department_path(&mut tx, tenant_id, &format!("{dept}/{major}教研室"))
                    .await?;
            for k in 0..classes_per_major {
                let class_name = if number_prefix.starts_with('T') {
                    format!("{major}{}班", k + 1)
                } else {
                    format!("{}级{major}{}班", 2024 + (k % 3), k / 3 + 1)
                };
                let cid =
                    store::ensure_class(&mut tx, tenant_id, &class_name, Some(dept_id)).await?;
                if !number_prefix.starts_with('T') {
                    let year = 2024 + (k % 3) as i64;
                    let grade =
                        store::ensure_grade(&mut tx, tenant_id, &format!("{year}级"), Some(year))
                            .await?;
                    tx.execute(
                        &Sql::new("UPDATE classes SET grade_id = ? WHERE id = ?")
                            .bind(grade)
                            .bind(cid),
                    )
                    .await?;
                }
                if let Some(c) = campus_ids.get(di % campus_ids.len().max(1)) {
                    tx.execute(
                        &Sql::new("UPDATE classes SET campus_id = ? WHERE id = ?")
                            .bind(*c)
                            .bind(cid),
                    )
                    .await?;
                }
                class_list.push((cid, dept_id));
            }
        }
    }
    let mut admin_dept_ids = vec![];
    for d in admin_depts {
        admin_dept_ids.push(store::ensure_department_path(&mut tx, tenant_id, d).await?);
    }
    tx.commit().await?;

    // Students, class by class.
    let mut students = vec![];
    let mut n = 0;
    for (cid, dept) in &class_list {
        for _ in 0..students_per_class {
            n += 1;
            let nm = name(rng);
            let ph = phone(rng);
            let mut r = record(
                app,
                "student",
                &nm,
                Some(format!("{number_prefix}{n:05}")),
                Some(&ph),
                rng,
            );
            r.class_id = Some(*cid);
            r.department_id = Some(*dept);
            students.push(r);
        }
    }
    let mut staff = vec![];
    for (kind, code, count, depts) in [
        ("teacher", 'T', teachers, &teaching_dept_ids),
        ("staff", 'S', admin_staff, &admin_dept_ids),
    ] {
        for i in 0..count {
            let nm = name(rng);
            let ph = phone(rng);
            let number = format!("{number_prefix}{code}{:04}", i + 1);
            let mut r = record(app, kind, &nm, Some(number), Some(&ph), rng);
            r.department_id = depts.get(i % depts.len().max(1)).copied();
            staff.push(r);
        }
    }
    let mut tx = app.db.begin().await?;
    store::insert_people(&mut tx, tenant_id, &students).await?;
    store::insert_people(&mut tx, tenant_id, &staff).await?;
    tx.commit().await?;

    // Parents: one or two per student, linked.
    let rows = app
        .db
        .fetch_all(
            &Sql::new(
                "SELECT id, name FROM people WHERE tenant_id = ? AND kind = 'student' ORDER BY id",
            )
            .bind(tenant_id),
        )
        .await?;
    let mut parents = vec![];
    let mut links = vec![];
    for (i, r) in rows.iter().enumerate() {
        let student_name = r.str("name")?;
        let surname: String = student_name.chars().take(1).collect();
        for k in 0..(1 + rng.gen_range(0..2)) {
            let given: String = (0..rng.gen_range(1..=2))
                .map(|_| GIVEN.choose(rng).copied().unwrap_or("明"))
                .collect();
            let nm = if k == 0 {
                format!("{surname}{given}")
            } else {
                name(rng)
            };
            let ph = phone(rng);
            parents.push(record(
                app,
                "parent",
                &nm,
                Some(format!("{number_prefix}P{:05}{k}", i + 1)),
                Some(&ph),
                rng,
            ));
            links.push((format!("{number_prefix}P{:05}{k}", i + 1), r.i64("id")?));
        }
    }
    let mut tx = app.db.begin().await?;
    store::insert_people(&mut tx, tenant_id, &parents).await?;
    let numbers: Vec<String> = links.iter().map(|(n, _)| n.clone()).collect();
    let ids = store::ids_by_number(&mut tx, tenant_id, &numbers).await?;
    for chunk in links.chunks(500) {
        let mut sql = Sql::new(
            "INSERT INTO guardianships (tenant_id, parent_id, student_id, relation) VALUES ",
        );
        for (i, (num, sid)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push_bind("(?", tenant_id)
                .push_bind(", ?", ids.get(num).copied().unwrap_or_default())
                .push_bind(", ?, NULL)", *sid);
        }
        tx.execute(&sql).await?;
    }
    // The numbers only served to link parents to children: parents have none.
    tx.execute(
        &Sql::new("UPDATE people SET search_key = REPLACE(search_key, LOWER(number), ''), number = NULL WHERE tenant_id = ? AND kind = 'parent'")
            .bind(tenant_id),
    )
    .await?;
    tx.commit().await?;
    for (kind, role) in [
        ("student", "student"),
        ("parent", "parent"),
        ("teacher", "teacher"),
        ("staff", "department_staff"),
    ] {
        grant_all(app, tenant_id, kind, role).await?;
    }
    // Head teachers: teachers of the class's department, in turn.
    let teacher_rows = app
        .db
        .fetch_all(&Sql::new("SELECT id, department_id FROM people WHERE tenant_id = ? AND kind = 'teacher' ORDER BY id").bind(tenant_id))
        .await?;
    let mut by_dept: std::collections::HashMap<i64, Vec<i64>> = Default::default();
    for r in &teacher_rows {
        by_dept
            .entry(r.opt_i64("department_id")?.unwrap_or_default())
            .or_default()
            .push(r.i64("id")?);
    }
    for (i, (cid, dept)) in class_list.iter().enumerate() {
        if let Some(ts) = by_dept.get(dept).filter(|v| !v.is_empty()) {
            add_class_teacher(app, tenant_id, *cid, ts[i % ts.len()], "head").await?;
        }
    }
    Ok((
        Counts {
            students: students.len(),
            staff: staff.len(),
            parents: parents.len(),
            classes: class_list.len(),
        },
        class_list.iter().map(|c| c.0).collect(),
        admin_dept_ids,
    ))
}

/// Fill an empty database with the demo tenants. Returns the printed log-in table.
pub async fn seed(app: &App) -> anyhow::Result<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let mut out = String::new();

    let platform = create_tenant(app, "platform", "校通平台 Xiaotong platform").await?;
    let root = create_account(
        app,
        platform.id,
        "staff",
        "平台管理员",
        "root",
        DEMO_PASSWORD,
        &["institution_admin"],
        false,
    )
    .await?;
    set_column(app, platform.id, root, "platform_admin", 1).await?;

    // The vocational school.
    let school = create_tenant(app, "school", "东江职业技术学院").await?;
    let (c, classes, admin_depts) = populate(
        app,
        &mut rng,
        school.id,
        "S",
        &[
            ("信息工程系", &["软件技术", "计算机网络"]),
            ("机电工程系", &["机电一体化", "数控技术"]),
            ("经济管理系", &["会计", "电子商务"]),
            ("汽车工程系", &["汽车检测与维修"]),
            ("艺术设计系", &["环境艺术设计", "数字媒体"]),
            ("护理系", &["护理"]),
        ],
        &["教务处", "学生处", "人事处", "后勤处", "校医室"],
        6,
        50,
        170,
        80,
        &["主校区", "东校区"],
    )
    .await?;
    let first_class = classes.first().copied();
    let second_class = classes.get(1).copied();
    let mut zhang = PersonRecord {
        kind: "student".into(),
        number: Some("2024010001".into()),
        name: "张三".into(),
        gender: Some("male".into()),
        class_id: first_class,
        ..PersonRecord::default()
    };
    let ph = "13800138000";
    zhang.phone_enc = Some(app.keys.encrypt(ph));
    zhang.phone_index = Some(app.keys.blind_index("phone", ph));
    let info_dept = store::departments(&app.db, school.id)
        .await?
        .into_iter()
        .find(|d| d.path == "信息工程系")
        .map(|d| d.id);
    zhang.department_id = info_dept;
    let student = create_login(
        app,
        school.id,
        zhang,
        "student",
        DEMO_PASSWORD,
        &["student"],
        false,
    )
    .await?;
    let parent_rec = PersonRecord {
        kind: "parent".into(),
        name: "张建国".into(),
        ..PersonRecord::default()
    };
    let parent = create_login(
        app,
        school.id,
        parent_rec,
        "parent",
        DEMO_PASSWORD,
        &["parent"],
        false,
    )
    .await?;
    let mut tx = app.db.begin().await?;
    store::link_guardian(&mut tx, school.id, parent, student).await?;
    tx.commit().await?;
    let admin = create_account(
        app,
        school.id,
        "staff",
        "周校长",
        "admin",
        DEMO_PASSWORD,
        &["institution_admin", "principal"],
        false,
    )
    .await?;
    let academic = create_account(
        app,
        school.id,
        "staff",
        "吴教务",
        "academic",
        DEMO_PASSWORD,
        &["academic_affairs"],
        false,
    )
    .await?;
    let staff_rec = PersonRecord {
        kind: "staff".into(),
        name: "郑干事".into(),
        department_id: admin_depts.get(1).copied(),
        ..PersonRecord::default()
    };
    create_login(
        app,
        school.id,
        staff_rec,
        "staff",
        DEMO_PASSWORD,
        &["department_staff"],
        false,
    )
    .await?;
    let teacher_rec = PersonRecord {
        kind: "teacher".into(),
        name: "林老师".into(),
        department_id: info_dept,
        ..PersonRecord::default()
    };
    let teacher = create_login(
        app,
        school.id,
        teacher_rec,
        "teacher",
        DEMO_PASSWORD,
        &["teacher"],
        false,
    )
    .await?;
    for (cid, role) in [(first_class, "head"), (second_class, "subject")] {
        if let Some(cid) = cid {
            add_class_teacher(app, school.id, cid, teacher, role).await?;
        }
    }
    create_account(
        app,
        school.id,
        "third_party",
        "食堂承包商",
        "vendor",
        DEMO_PASSWORD,
        &["third_party"],
        false,
    )
    .await?;
    let n_messages = seed_messages(app, school.id, academic, first_class, &mut rng).await?;
    let _ = admin;
    out.push_str(&format!(
        "  {} (tenant school): {} students in {} classes, {} staff and teachers, {} parents\n",
        school.name,
        c.students + 1,
        c.classes,
        c.staff + 5,
        c.parents + 1
    ));

    out.push_str(&format!(
        "  message center: {n_messages} published notices with read receipts, 3 templates\n"
    ));

    // The training centre.
    let training = create_tenant(app, "training", "启航艺术培训中心").await?;
    let (c2, tclasses, _) = populate(
        app,
        &mut rng,
        training.id,
        "T",
        &[
            ("音乐部", &["钢琴", "小提琴"]),
            ("美术部", &["素描", "国画"]),
            ("科技部", &["少儿编程"]),
        ],
        &["前台", "财务"],
        3,
        20,
        18,
        4,
        &["天河校区", "海珠校区"],
    )
    .await?;
    create_account(
        app,
        training.id,
        "staff",
        "陈主任",
        "admin",
        DEMO_PASSWORD,
        &["institution_admin"],
        false,
    )
    .await?;
    // A second staff member: transfers of hours need an approver other
    // than the one who requested them.
    create_account(
        app,
        training.id,
        "staff",
        "林教务",
        "academic",
        DEMO_PASSWORD,
        &["academic_affairs"],
        false,
    )
    .await?;
    let t_teacher = create_account(
        app,
        training.id,
        "teacher",
        "黄老师",
        "teacher",
        DEMO_PASSWORD,
        &["teacher"],
        false,
    )
    .await?;
    if let Some(cid) = tclasses.first() {
        add_class_teacher(app, training.id, *cid, t_teacher, "head").await?;
    }
    let t_student = PersonRecord {
        kind: "student".into(),
        number: Some("T2026001".into()),
        name: "李小萌".into(),
        class_id: tclasses.first().copied(),
        ..PersonRecord::default()
    };
    let ts = create_login(
        app,
        training.id,
        t_student,
        "student",
        DEMO_PASSWORD,
        &["student"],
        false,
    )
    .await?;
    let tp = create_account(
        app,
        training.id,
        "parent",
        "李爸爸",
        "parent",
        DEMO_PASSWORD,
        &["parent"],
        false,
    )
    .await?;
    let mut tx = app.db.begin().await?;
    store::link_guardian(&mut tx, training.id, tp, ts).await?;
    tx.commit().await?;
    out.push_str(&format!(
        "  {} (tenant training): {} students in {} classes on 2 campuses, {} teachers and staff, {} parents\n",
        training.name,
        c2.students + 1,
        c2.classes,
        c2.staff + 3,
        c2.parents + 1
    ));
    Ok(out)
}

pub fn logins_table() -> String {
    let rows = [
        ("platform", "root", "平台管理员 platform admin"),
        (
            "school",
            "admin",
            "机构管理员/校长 institution admin, principal",
        ),
        ("school", "academic", "教务 academic affairs"),
        ("school", "staff", "部门职员 department staff (学生处)"),
        ("school", "teacher", "教师 teacher (head of a class)"),
        ("school", "parent", "家长 parent of 张三"),
        ("school", "student", "学生 student 张三"),
        ("school", "vendor", "第三方人员 third-party staff"),
        ("training", "admin", "机构管理员 institution admin"),
        ("training", "academic", "教务 academic affairs"),
        ("training", "teacher", "教师 teacher"),
        ("training", "parent", "家长 parent"),
        ("training", "student", "学生 student"),
    ];
    let mut s = format!(
        "  {:<10} {:<10} {:<10} role\n",
        "tenant", "login", "password"
    );
    for (t, l, r) in rows {
        s.push_str(&format!("  {t:<10} {l:<10} {DEMO_PASSWORD:<10} {r}\n"));
    }
    s
}

pub async fn run(listen: &str, data_dir: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    for f in ["demo.db", "demo.db-wal", "demo.db-shm"] {
        let p = data_dir.join(f);
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
    }
    let settings = Settings {
        database_url: format!("sqlite://{}?mode=rwc", data_dir.join("demo.db").display()),
        listen: listen.to_string(),
        ..Settings::default()
    };
    let app = App::open(settings, Keys::from_base64(&Keys::generate_base64())?).await?;
    crate::db::migrate(&app.db).await?;
    let mut summary = seed(&app).await?;
    // A year of lesson history for the training centre (only for the demo
    // itself: the test suites that seed the directory do not need it).
    summary.push_str(&crate::lessons::demo::seed_training(&app).await?);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let running = crate::server::start(app, listener, true).await?;
    println!(
        "校通 Xiaotong demo is ready in {:.1} s at http://{}/",
        started.elapsed().as_secs_f64(),
        running.addr
    );
    print!("{summary}");
    println!("Log in with:\n{}", logins_table());
    println!("Press Ctrl-C to stop.");
    crate::server::cancel_on_signal(running.shutdown.clone());
    running.wait().await;
    Ok(())
}

/// A tenant `bulk` with an admin (log-in `admin`, the demo password) and
/// `n` students with e-mail addresses `s<number>@bulk.test`, for the
/// fan-out benchmark and the delivery crash test. Returns the tenant id.
pub async fn seed_mail_audience(app: &App, n: usize) -> anyhow::Result<i64> {
    let mut rng = ChaCha8Rng::seed_from_u64(2027);
    let tenant = create_tenant(app, "bulk", "批量学校 / Bulk school").await?;
    create_account(
        app,
        tenant.id,
        "staff",
        "管理员",
        "admin",
        DEMO_PASSWORD,
        &["institution_admin"],
        false,
    )
    .await?;
    let people: Vec<PersonRecord> = (0..n)
        .map(|i| {
            let number = format!("B{:07}", i + 1);
            PersonRecord {
                kind: "student".into(),
                email: Some(format!("s{}@bulk.test", number.to_lowercase())),
                number: Some(number),
                name: name(&mut rng),
                ..PersonRecord::default()
            }
        })
        .collect();
    let mut tx = app.db.begin().await?;
    store::insert_people(&mut tx, tenant.id, &people).await?;
    tx.commit().await?;
    Ok(tenant.id)
}

/// A few weeks of notices for the school, read by most of their recipients,
/// so history, delivery views and inboxes show something real.
async fn seed_messages(
    app: &App,
    tenant_id: i64,
    sender: i64,
    class_id: Option<i64>,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<usize> {
    use crate::messaging::model::{Content, Priority, TemplateInput};
    use crate::messaging::{audience, store as mstore};
    let actor = Actor {
        tenant_id,
        person_id: Some(sender),
        name: Some("吴教务".into()),
        ..Actor::default()
    };
    let templates = [
        ("exam_schedule", "期末考试安排", "exam", vec!["exam_date", "exam_room"],
         "{{ student.name }} 期末考试安排",
         "{{ recipient.name }} 您好：\n\n**{{ student.name }}**（{{ student.class }}）的期末考试于 {{ exam_date }} 开始，考场 {{ exam_room }}。请携带学生证和准考证，提前 15 分钟到场。"),
        ("parent_meeting", "家长会通知", "notice", vec!["meeting_time", "place"],
         "家长会通知",
         "尊敬的 {{ recipient.name }}：\n\n本学期家长会定于 {{ meeting_time }} 在 {{ place }} 举行，届时将介绍 {{ student.name }} 的在校表现，敬请准时参加。"),
        ("holiday", "放假安排", "announcement", vec!["start", "end"],
         "放假安排",
         "各位师生、家长：\n\n根据校历，{{ start }} 至 {{ end }} 放假，请同学们注意假期安全，按时返校。"),
    ];
    let mut tx = app.db.begin().await?;
    for (code, name, kind, vars, title, body) in &templates {
        let input = TemplateInput {
            code: code.to_string(),
            name: name.to_string(),
            kind: Some(kind.to_string()),
            content: Content {
                title: title.to_string(),
                body: body.to_string(),
                ..Default::default()
            },
            variables: vars.iter().map(|v| v.to_string()).collect(),
        };
        mstore::save_template(&mut tx, tenant_id, None, &input, kind, Some(sender)).await?;
    }
    tx.commit().await?;
    let class_rule =
        |who: &str| serde_json::json!({"type": "class", "value": class_id, "who": who});
    let samples: Vec<(&str, serde_json::Value, serde_json::Value, i64, f64)> = vec![
        (
            "holiday",
            serde_json::json!({"start": "10月1日", "end": "10月7日"}),
            serde_json::json!({"include": [{"type": "all"}]}),
            50,
            0.86,
        ),
        (
            "parent_meeting",
            serde_json::json!({"meeting_time": "11月8日 14:30", "place": "学术报告厅"}),
            serde_json::json!({"include": [class_rule("parents")]}),
            20,
            0.74,
        ),
        (
            "exam_schedule",
            serde_json::json!({"exam_date": "1月12日", "exam_room": "实训楼 A301"}),
            serde_json::json!({"include": [{"type": "kind", "value": "student"}], "exclude": []}),
            6,
            0.61,
        ),
        (
            "exam_schedule",
            serde_json::json!({"exam_date": "1月12日", "exam_room": "实训楼 A301"}),
            serde_json::json!({"include": [class_rule("both")]}),
            2,
            0.35,
        ),
    ];
    let day = 24 * 3600 * 1000;
    let now = crate::db::now_ms();
    let mut count = 0;
    for (template, vars, aud, days_ago, read_share) in samples {
        let mut tx = app.db.begin().await?;
        let notice = crate::messaging::Notify {
            template: template.into(),
            audience: serde_json::from_value(aud)?,
            vars,
            priority: Priority::Normal,
            channels: vec!["inapp".into()],
            source: "compose".into(),
            recipients: None,
        };
        let id = crate::messaging::notify(&mut tx, tenant_id, &actor, &notice).await?;
        let at = now - days_ago * day;
        tx.execute(
            &Sql::new(
                "UPDATE messages SET created_at = ?, updated_at = ?, published_at = ? WHERE id = ?",
            )
            .bind(at - 3_600_000)
            .bind(at)
            .bind(at)
            .bind(id),
        )
        .await?;
        // The inbox entries the fan-out would write, with most of them read.
        let stored = mstore::message(&mut mstore::Exec::Tx(&mut tx), tenant_id, id)
            .await?
            .context("message")?;
        let recipients =
            audience::resolve(&mut mstore::Exec::Tx(&mut tx), tenant_id, &stored.audience).await?;
        mstore::insert_inbox(&mut tx, tenant_id, id, &recipients).await?;
        let read: Vec<i64> = recipients
            .iter()
            .filter(|_| rng.gen_bool(read_share))
            .map(|r| r.person_id)
            .collect();
        for chunk in read.chunks(500) {
            let mut q = Sql::new("UPDATE inbox SET created_at = ?, read_at = ? WHERE message_id = ? AND person_id IN ")
                .bind(at)
                .bind(at + rng.gen_range(600_000..2 * day))
                .bind(id);
            q.push_in(chunk.iter().copied());
            tx.execute(&q).await?;
        }
        tx.commit().await?;
        count += 1;
    }
    Ok(count)
}
