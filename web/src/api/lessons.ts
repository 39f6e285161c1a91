// Lesson hours: the API's types and the formatting of hours (hundredths of
// an hour) and money (fen). Both stay integers; only the text has a point.

export type CourseKind = 'one_to_one' | 'small_group' | 'large_class'
export const COURSE_KINDS: CourseKind[] = ['one_to_one', 'small_group', 'large_class']
export type MarkStatus = 'present' | 'late' | 'absent' | 'excused'
export const MARK_STATUSES: MarkStatus[] = ['present', 'late', 'absent', 'excused']
export const LEDGER_KINDS = ['purchase', 'consume', 'reverse', 'refund', 'adjust', 'transfer', 'expire'] as const

export interface Room {
  id: number
  campus_id: number | null
  name: string
  capacity: number
  equipment: string | null
}

export interface Subject {
  id: number
  name: string
}

export interface Course {
  id: number
  subject_id: number | null
  name: string
  kind: CourseKind
  lesson_minutes: number
  hours_per_lesson: number
}

export interface LessonClass {
  id: number
  course_id: number
  course_name: string
  campus_id: number | null
  room_id: number | null
  name: string
  capacity: number
  teacher_ids: number[]
  student_ids: number[]
}

export interface Session {
  id: number
  class_id: number
  class_name: string
  course_id: number
  course_name: string
  teacher_id: number | null
  room_id: number | null
  campus_id: number | null
  starts_at: string
  ends_at: string
  makeup: boolean
  hours: number
}

export interface Pool {
  name: string
  paid_hours: number
  bonus_hours: number
  price_fen: number
  course_ids: number[]
  subject_ids: number[]
}

export interface Package {
  id: number
  name: string
  validity_days: number
  pools: Pool[]
  price_fen: number
  active: boolean
}

export interface Account {
  id: number
  student_id: number
  sale_id: number
  package_id: number | null
  pool_name: string
  priority: number
  price_fen: number
  paid_hours: number
  bonus_hours: number
  course_ids: number[]
  subject_ids: number[]
  valid_until: string
  frozen: boolean
  state: string
  paid_remaining: number
  bonus_remaining: number
  balance: number
}

export interface Sale {
  id: number
  student_id: number
  price_fen: number
  accounts: Account[]
}

export interface Refund {
  id: number
  account_id: number
  hours: number
  amount_fen: number
  state: string
}

export interface Transfer {
  id: number
  from_account_id: number
  to_student_id: number
  hours: number
  state: string
  to_account_id: number | null
}

export type TransferState = 'pending' | 'approved' | 'rejected'
export const TRANSFER_STATES: TransferState[] = ['pending', 'approved', 'rejected']

/** A transfer as the staff list shows it, with names. */
export interface TransferItem {
  id: number
  from_account_id: number
  from_student_id: number
  from_student_name: string
  pool_name: string
  to_student_id: number
  to_student_name: string
  hours: number
  state: TransferState
  to_account_id: number | null
  requested_by: number | null
  requested_by_name: string | null
  decided_by: number | null
  decided_by_name: string | null
  created_at: string
  decided_at: string | null
}

export interface LessonSettings {
  absent_deducts: boolean
  allow_credit: boolean
  /** Hundredths of an hour. */
  credit_limit: number
  makeup_ratio_pct: number
  /** Hundredths of an hour. */
  low_balance_hours: number
  expiry_reminder_days: number
}

/** A teacher pay rule; money in fen. */
export interface PayRule {
  course_kind: CourseKind
  fen_per_hour: number
  fen_per_student_hour: number
}

export interface LedgerEntry {
  chain: number
  seq: number
  at: string
  account_id: number
  student_id: number
  kind: string
  amount: number
  value_fen: number
  balance_after: number
  reference: string | null
  session_id: number | null
  hash: string
}

export interface SheetRow {
  student_id: number
  name: string
  status: MarkStatus | null
  hours: number
  remaining: number | null
}

export interface Sheet {
  session: Session
  rows: SheetRow[]
}

export interface MarkResult {
  student_id: number
  status: MarkStatus
  created: boolean
  hours: number
  account_id: number | null
  balance_after: number | null
  chain: number | null
  seq: number | null
}

export interface CheckInResult {
  session_id: number
  results: MarkResult[]
}

export interface MyStudent {
  id: number
  name: string
  is_self: boolean
}

export interface AttendanceRecord {
  session_id: number
  starts_at: string
  class_name: string
  course_name: string
  status: MarkStatus
  hours: number
}

export interface StudentLessons {
  student_id: number
  upcoming: Session[]
  history: AttendanceRecord[]
}

export interface ConsumptionRow {
  date: string
  key_id: number | null
  key_name: string
  hours: number
  value_fen: number
  entries: number
}

export interface HeatmapDay {
  date: string
  hours: number
}

export interface DayLesson {
  session_id: number
  starts_at: string
  class_name: string
  course_name: string
  teacher_id: number | null
  teacher_name: string | null
  makeup: boolean
  students: number
  hours: number
}

export interface PayrollLine {
  course_kind: CourseKind
  lessons: number
  minutes: number
  student_hours: number
  pay_fen: number
}

export interface PayrollRow {
  teacher_id: number
  teacher_name: string
  lines: PayrollLine[]
  lessons: number
  minutes: number
  student_hours: number
  pay_fen: number
}

export interface Kpis {
  consumed_value_fen: number
  revenue_fen: number
  conversion_permille: number | null
  taught_minutes: number
  available_minutes: number
  saturation_permille: number | null
}

/** An integer of hundredths as text with two decimals: 150 → "1.50", -25 → "-0.25". */
export function fixed2(n: number): string {
  const sign = n < 0 ? '-' : ''
  const a = Math.abs(Math.trunc(n))
  const whole = Math.floor(a / 100)
  return `${sign}${whole.toLocaleString('en-US')}.${String(a % 100).padStart(2, '0')}`
}

/** Hours (hundredths) as text: 150 → "1.50". */
export function formatHours(h: number | null | undefined): string {
  return h === null || h === undefined ? '—' : fixed2(h)
}

/** Money (fen) as yuan: 128000 → "¥1,280.00". */
export function formatYuan(fen: number | null | undefined): string {
  if (fen === null || fen === undefined) return '—'
  return fen < 0 ? `-¥${fixed2(-fen)}` : `¥${fixed2(fen)}`
}

/** Thousandths as a percentage: 153 → "15.3%". */
export function formatPermille(p: number | null | undefined): string {
  if (p === null || p === undefined) return '—'
  const sign = p < 0 ? '-' : ''
  const a = Math.abs(p)
  return `${sign}${Math.floor(a / 10)}.${a % 10}%`
}

/**
 * Parses a decimal with up to two places into an integer of hundredths
 * without floating point: "1.5" → 150, "12" → 1200, "-0.25" → -25.
 * Returns null for anything else.
 */
export function parseHundredths(text: string | number | null | undefined): number | null {
  if (text === null || text === undefined) return null
  const s = String(text).trim().replace(/,/g, '')
  const m = /^(-?)(\d{1,9})(?:\.(\d{0,2}))?$/.exec(s)
  if (!m) return null
  const v = Number(m[2]) * 100 + Number((m[3] ?? '').padEnd(2, '0') || '0')
  return m[1] === '-' ? -v : v
}

/** YYYY-MM-DD of a date in local time. */
export function ymd(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`
}

/** A short hash for display (the full one is in the title). */
export function shortHash(h: string): string {
  return h.length > 16 ? `${h.slice(0, 12)}…${h.slice(-4)}` : h
}
