//! Lesson-hour types. Hours are integers in hundredths of an hour (150 =
//! 1.50 h); money is in fen; times in the API are RFC 3339, days YYYY-MM-DD.

use serde::{Deserialize, Serialize};

pub const COURSE_KINDS: &[&str] = &["one_to_one", "small_group", "large_class"];
pub const STATUSES: &[&str] = &["present", "late", "absent", "excused"];

/// Ledger entry kinds.
pub const KINDS: &[&str] = &[
    "purchase", "consume", "reverse", "refund", "adjust", "transfer", "expire",
];

/// Tenant policy for lesson hours.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LessonSettings {
    /// An absence consumes hours (a no-show) when true; excused leave never does.
    pub absent_deducts: bool,
    /// Allow a check-in when the balance is short, down to `-credit_limit`.
    pub allow_credit: bool,
    /// Hundredths of an hour the balance may go below zero when `allow_credit`.
    pub credit_limit: i64,
    /// Make-up sessions consume this percentage of a lesson's hours (200 = double).
    pub makeup_ratio_pct: i64,
    /// A renewal notice goes to the parents when a balance falls below this (hundredths).
    pub low_balance_hours: i64,
    /// Expiry reminders this many days before an account expires.
    pub expiry_reminder_days: i64,
}

impl Default for LessonSettings {
    fn default() -> Self {
        LessonSettings {
            absent_deducts: false,
            allow_credit: false,
            credit_limit: 0,
            makeup_ratio_pct: 200,
            low_balance_hours: 400,
            expiry_reminder_days: 7,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Room {
    #[serde(default)]
    pub id: i64,
    pub campus_id: Option<i64>,
    pub name: String,
    pub capacity: i64,
    pub equipment: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Subject {
    #[serde(default)]
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Course {
    #[serde(default)]
    pub id: i64,
    pub subject_id: Option<i64>,
    pub name: String,
    /// one_to_one, small_group or large_class.
    pub kind: String,
    pub lesson_minutes: i64,
    /// Hundredths of an hour consumed per lesson (150 = 1.50 h).
    pub hours_per_lesson: i64,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClass {
    pub course_id: i64,
    pub campus_id: Option<i64>,
    pub room_id: Option<i64>,
    pub name: String,
    pub capacity: i64,
    #[serde(default)]
    pub teacher_ids: Vec<i64>,
    #[serde(default)]
    pub student_ids: Vec<i64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LessonClass {
    pub id: i64,
    pub course_id: i64,
    pub course_name: String,
    pub campus_id: Option<i64>,
    pub room_id: Option<i64>,
    pub name: String,
    pub capacity: i64,
    pub teacher_ids: Vec<i64>,
    pub student_ids: Vec<i64>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Enrol {
    pub student_ids: Vec<i64>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    pub class_id: i64,
    /// RFC 3339.
    pub starts_at: String,
    /// Defaults to the class's first teacher.
    pub teacher_id: Option<i64>,
    #[serde(default)]
    pub makeup: bool,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Session {
    pub id: i64,
    pub class_id: i64,
    pub class_name: String,
    pub course_id: i64,
    pub course_name: String,
    pub teacher_id: Option<i64>,
    pub room_id: Option<i64>,
    pub campus_id: Option<i64>,
    pub starts_at: String,
    pub ends_at: String,
    pub makeup: bool,
    /// Hundredths of an hour each present student consumes.
    pub hours: i64,
}

/// One pool of a package: what it holds and which lessons it pays for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    pub name: String,
    /// Paid hours (hundredths).
    pub paid_hours: i64,
    /// Bonus hours (hundredths), consumed after the paid ones and never refunded.
    #[serde(default)]
    pub bonus_hours: i64,
    /// Share of the package price, in fen.
    pub price_fen: i64,
    /// Courses this pool pays for; empty = any.
    #[serde(default)]
    pub course_ids: Vec<i64>,
    /// Subjects this pool pays for; empty = any.
    #[serde(default)]
    pub subject_ids: Vec<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Package {
    #[serde(default)]
    pub id: i64,
    pub name: String,
    pub validity_days: i64,
    /// Drawn in this order when more than one pool covers a lesson.
    pub pools: Vec<Pool>,
    #[serde(default)]
    pub price_fen: i64,
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSale {
    pub student_id: i64,
    pub package_id: i64,
    pub campus_id: Option<i64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Account {
    pub id: i64,
    pub student_id: i64,
    pub sale_id: i64,
    pub package_id: Option<i64>,
    pub pool_name: String,
    pub priority: i64,
    pub price_fen: i64,
    pub paid_hours: i64,
    pub bonus_hours: i64,
    pub course_ids: Vec<i64>,
    pub subject_ids: Vec<i64>,
    pub valid_until: String,
    pub frozen: bool,
    pub state: String,
    /// Remaining paid hours (hundredths; negative when on credit).
    pub paid_remaining: i64,
    pub bonus_remaining: i64,
    pub balance: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Sale {
    pub id: i64,
    pub student_id: i64,
    pub price_fen: i64,
    pub accounts: Vec<Account>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUp {
    pub paid_hours: i64,
    #[serde(default)]
    pub bonus_hours: i64,
    pub price_fen: i64,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Adjust {
    /// Hundredths, positive or negative.
    pub hours: i64,
    pub note: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Refund {
    pub id: i64,
    pub account_id: i64,
    /// Unused paid hours refunded (hundredths).
    pub hours: i64,
    /// The amount, computed: unused paid hours × price ÷ paid hours, rounded down.
    pub amount_fen: i64,
    pub state: String,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRefund {
    /// Must repeat the computed amount: the second confirmation.
    pub amount_fen: i64,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTransfer {
    pub from_account_id: i64,
    pub to_student_id: i64,
    pub hours: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Transfer {
    pub id: i64,
    pub from_account_id: i64,
    pub to_student_id: i64,
    pub hours: i64,
    pub state: String,
    pub to_account_id: Option<i64>,
}

/// A transfer as listed for staff, with the names needed to decide it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TransferItem {
    pub id: i64,
    pub from_account_id: i64,
    pub from_student_id: i64,
    pub from_student_name: String,
    /// The pool of the giving account.
    pub pool_name: String,
    pub to_student_id: i64,
    pub to_student_name: String,
    /// Hundredths of an hour.
    pub hours: i64,
    /// pending, approved or rejected.
    pub state: String,
    pub to_account_id: Option<i64>,
    pub requested_by: Option<i64>,
    pub requested_by_name: Option<String>,
    pub decided_by: Option<i64>,
    pub decided_by_name: Option<String>,
    pub created_at: String,
    pub decided_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LedgerEntry {
    /// The chain of the tenant's ledger this entry is in (account id mod 16).
    pub chain: i64,
    pub seq: i64,
    pub at: String,
    pub account_id: i64,
    pub student_id: i64,
    pub kind: String,
    pub amount: i64,
    pub value_fen: i64,
    pub balance_after: i64,
    pub reference: Option<String>,
    pub session_id: Option<i64>,
    /// The entry's hash: a receipt that `ledger verify` can check.
    pub hash: String,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Mark {
    pub student_id: i64,
    /// present, late, absent or excused.
    pub status: String,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckIn {
    /// One mark for a single check-in, the whole class for a batch.
    pub marks: Vec<Mark>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MarkResult {
    pub student_id: i64,
    pub status: String,
    /// False when the student was already checked in for this session (nothing changed).
    pub created: bool,
    pub hours: i64,
    pub account_id: Option<i64>,
    pub balance_after: Option<i64>,
    /// The debit's ledger entry: chain and sequence number.
    pub chain: Option<i64>,
    pub seq: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct CheckInResult {
    pub session_id: i64,
    pub results: Vec<MarkResult>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Correction {
    pub status: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SheetRow {
    pub student_id: i64,
    pub name: String,
    pub status: Option<String>,
    pub hours: i64,
    /// Hours left (hundredths) in the student's accounts that pay for this
    /// session's course; None when no account covers it.
    pub remaining: Option<i64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Sheet {
    pub session: Session,
    pub rows: Vec<SheetRow>,
}

/// A student the caller follows as themself or as a parent.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MyStudent {
    pub id: i64,
    pub name: String,
    /// True for the caller themself (a student); false for a child.
    pub is_self: bool,
}

/// One lesson a student was marked for.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AttendanceRecord {
    pub session_id: i64,
    pub starts_at: String,
    pub class_name: String,
    pub course_name: String,
    /// present, late, absent or excused.
    pub status: String,
    /// Hundredths of an hour consumed.
    pub hours: i64,
}

/// A student's lessons: upcoming sessions of their classes and the attendance history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StudentLessons {
    pub student_id: i64,
    pub upcoming: Vec<Session>,
    /// Newest first.
    pub history: Vec<AttendanceRecord>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Notice {
    pub id: i64,
    pub parent_id: i64,
    pub student_id: i64,
    pub kind: String,
    pub body: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LedgerVerifyReport {
    pub ok: bool,
    pub checked: u64,
    pub first_broken_chain: Option<i64>,
    pub first_broken_seq: Option<i64>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayRule {
    pub course_kind: String,
    /// Paid to the teacher per hour taught.
    pub fen_per_hour: i64,
    /// Paid per student-hour consumed in the teacher's lessons.
    pub fen_per_student_hour: i64,
}
