// Types of the Xiaotong HTTP API (see /api/openapi.json).

export type PersonKind = 'staff' | 'teacher' | 'student' | 'parent' | 'third_party'
export const PERSON_KINDS: PersonKind[] = ['student', 'teacher', 'staff', 'parent', 'third_party']

export interface RoleRef {
  id: number
  key: string
  name: string
}

export interface ChildRef {
  id: number
  name: string
  class_name: string | null
}

export interface Me {
  id: number
  name: string
  kind: PersonKind
  username: string | null
  tenant: { id: number; code: string; name: string }
  platform_admin: boolean
  roles: RoleRef[]
  permissions: string[]
  must_change_password: boolean
  children: ChildRef[]
}

export interface Page<T> {
  items: T[]
  total: number
  page: number
  per_page: number
}

export interface Items<T> {
  items: T[]
}

export interface Person {
  id: number
  kind: PersonKind
  name: string
  name_pinyin: string
  number: string | null
  gender: 'male' | 'female' | null
  phone: string | null
  email: string | null
  username: string | null
  active: boolean
  department: { id: number; name: string } | null
  class: { id: number; name: string } | null
  tags: string[]
  roles: RoleRef[]
  parents: { id: number; name: string; phone: string | null }[]
  children: ChildRef[]
  created_at: string
  updated_at: string
}

export interface Department {
  id: number
  parent_id: number | null
  name: string
  path: string
}

export interface SchoolClass {
  id: number
  name: string
  grade_name: string | null
  department_id: number | null
  student_count: number
}

export interface Tenant {
  id: number
  code: string
  name: string
}

export interface Tag {
  id: number
  name: string
}

export type ImportMode = 'all_or_nothing' | 'valid_rows_only'
export type ImportState = 'queued' | 'running' | 'succeeded' | 'rejected' | 'failed'

export interface ImportError {
  row: number
  column: string | null
  message: string
}

export interface ImportRun {
  id: number
  state: ImportState
  file_name: string
  mode: ImportMode
  total_rows: number
  processed_rows: number
  created: number
  updated: number
  unchanged: number
  skipped: number
  errors: ImportError[]
}

export interface Permission {
  key: string
  description: string
}

export type RoleScope = 'all' | 'tenant' | 'own_department' | 'own_classes' | 'own_children' | 'self'
export const ROLE_SCOPES: RoleScope[] = ['all', 'tenant', 'own_department', 'own_classes', 'own_children', 'self']

export interface Role {
  id: number
  key: string
  name: string
  builtin: boolean
  permissions: string[]
  scope: RoleScope
  member_count: number
}

export interface AuditEntry {
  id: number
  seq: number
  at: string
  actor_id: number | null
  actor_name: string | null
  action: string
  entity: string
  entity_id: string | number | null
  ip: string | null
  before: unknown
  after: unknown
  hash: string
  prev_hash: string | null
}

export interface AuditVerify {
  ok: boolean
  checked: number
  first_broken_seq: number | null
  reason: string | null
}

export interface ApiToken {
  id: number
  name: string
  scopes: string[]
  prefix: string
  created_at: string
  last_used_at: string | null
  expires_at: string | null
  revoked_at: string | null
}

export type JobState = 'ready' | 'running' | 'done' | 'dead'
export const JOB_STATES: JobState[] = ['ready', 'running', 'done', 'dead']

export interface Job {
  id: number
  kind: string
  state: JobState | string
  attempts: number
  max_attempts: number
  run_at: string
  last_error: string | null
  created_at: string
}

export type JobStats = Record<JobState, number>

/** RFC 9457 problem details. */
export interface Problem {
  type?: string
  title?: string
  status?: number
  detail?: string
  errors?: { field: string; message: string }[]
}
