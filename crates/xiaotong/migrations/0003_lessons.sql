-- Lesson hours: rooms, subjects, courses, classes, sessions, packages,
-- accounts, the hash-chained ledger, attendance, refunds, transfers, notices.
-- Hours are hundredths of an hour, money is fen, times are Unix ms, days are YYYYMMDD.

CREATE TABLE lesson_settings (
    tenant_id BIGINT NOT NULL PRIMARY KEY REFERENCES tenants (id),
    absent_deducts BIGINT NOT NULL,
    allow_credit BIGINT NOT NULL,
    credit_limit BIGINT NOT NULL,
    makeup_ratio_pct BIGINT NOT NULL,
    low_balance_hours BIGINT NOT NULL,
    expiry_reminder_days BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
) TABLE_OPTS;

CREATE TABLE rooms (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    campus_id BIGINT REFERENCES campuses (id),
    name VARCHAR(100) NOT NULL,
    capacity BIGINT NOT NULL,
    equipment VARCHAR(500),
    created_at BIGINT NOT NULL
) TABLE_OPTS;
CREATE UNIQUE INDEX rooms_name ON rooms (tenant_id, name);

CREATE TABLE subjects (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    name VARCHAR(100) NOT NULL,
    created_at BIGINT NOT NULL
) TABLE_OPTS;
CREATE UNIQUE INDEX subjects_name ON subjects (tenant_id, name);

CREATE TABLE courses (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    subject_id BIGINT REFERENCES subjects (id),
    name VARCHAR(200) NOT NULL,
    kind VARCHAR(20) NOT NULL,
    lesson_minutes BIGINT NOT NULL,
    hours_per_lesson BIGINT NOT NULL,
    created_at BIGINT NOT NULL
) TABLE_OPTS;
CREATE UNIQUE INDEX courses_name ON courses (tenant_id, name);

CREATE TABLE lesson_classes (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    course_id BIGINT NOT NULL REFERENCES courses (id),
    campus_id BIGINT REFERENCES campuses (id),
    room_id BIGINT REFERENCES rooms (id),
    name VARCHAR(200) NOT NULL,
    capacity BIGINT NOT NULL,
    created_at BIGINT NOT NULL
) TABLE_OPTS;
CREATE UNIQUE INDEX lesson_classes_name ON lesson_classes (tenant_id, name);

CREATE TABLE lesson_class_teachers (
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    class_id BIGINT NOT NULL REFERENCES lesson_classes (id),
    teacher_id BIGINT NOT NULL REFERENCES people (id),
    PRIMARY KEY (class_id, teacher_id)
) TABLE_OPTS;
CREATE INDEX lesson_class_teachers_teacher ON lesson_class_teachers (tenant_id, teacher_id);

CREATE TABLE enrolments (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    class_id BIGINT NOT NULL REFERENCES lesson_classes (id),
    student_id BIGINT NOT NULL REFERENCES people (id),
    created_at BIGINT NOT NULL
) TABLE_OPTS;
CREATE UNIQUE INDEX enrolments_class_student ON enrolments (tenant_id, class_id, student_id);
CREATE INDEX enrolments_student ON enrolments (tenant_id, student_id);

CREATE TABLE lesson_sessions (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    class_id BIGINT NOT NULL REFERENCES lesson_classes (id),
    course_id BIGINT NOT NULL REFERENCES courses (id),
    teacher_id BIGINT REFERENCES people (id),
    room_id BIGINT REFERENCES rooms (id),
    campus_id BIGINT REFERENCES campuses (id),
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    day BIGINT NOT NULL,
    makeup BIGINT NOT NULL,
    hours BIGINT NOT NULL,
    created_at BIGINT NOT NULL
) TABLE_OPTS;
CREATE INDEX lesson_sessions_class ON lesson_sessions (tenant_id, class_id, starts_at);
CREATE INDEX lesson_sessions_day ON lesson_sessions (tenant_id, day);
CREATE INDEX lesson_sessions_teacher ON lesson_sessions (tenant_id, teacher_id, day);

CREATE TABLE lesson_packages (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    name VARCHAR(200) NOT NULL,
    price_fen BIGINT NOT NULL,
    validity_days BIGINT NOT NULL,
    pools_json LONGTEXT_T NOT NULL,
    active BIGINT NOT NULL,
    created_at BIGINT NOT NULL
) TABLE_OPTS;
CREATE UNIQUE INDEX lesson_packages_name ON lesson_packages (tenant_id, name);

CREATE TABLE lesson_sales (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    student_id BIGINT NOT NULL REFERENCES people (id),
    package_id BIGINT REFERENCES lesson_packages (id),
    price_fen BIGINT NOT NULL,
    sold_by BIGINT,
    campus_id BIGINT REFERENCES campuses (id),
    day BIGINT NOT NULL,
    created_at BIGINT NOT NULL
) TABLE_OPTS;
CREATE INDEX lesson_sales_day ON lesson_sales (tenant_id, day);

-- One account per pool of a sale. Balances are encrypted (balance_enc);
-- what stays plain is listed in docs/security.md.
CREATE TABLE lesson_accounts (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    student_id BIGINT NOT NULL REFERENCES people (id),
    sale_id BIGINT NOT NULL REFERENCES lesson_sales (id),
    package_id BIGINT REFERENCES lesson_packages (id),
    pool_name VARCHAR(100) NOT NULL,
    priority BIGINT NOT NULL,
    price_fen BIGINT NOT NULL,
    paid_hours BIGINT NOT NULL,
    bonus_hours BIGINT NOT NULL,
    course_ids VARCHAR(1000) NOT NULL,
    subject_ids VARCHAR(1000) NOT NULL,
    valid_until BIGINT NOT NULL,
    frozen BIGINT NOT NULL,
    state VARCHAR(16) NOT NULL,
    balance_enc VARCHAR(200) NOT NULL,
    low_alerted BIGINT NOT NULL,
    expiry_reminded BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
) TABLE_OPTS;
CREATE INDEX lesson_accounts_student ON lesson_accounts (tenant_id, student_id, state);
CREATE INDEX lesson_accounts_state ON lesson_accounts (state, valid_until);

CREATE TABLE ledger_entries (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    -- The tenant's ledger is 16 hash chains (account_id mod 16); seq counts within one.
    chain_no BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    day BIGINT NOT NULL,
    account_id BIGINT NOT NULL REFERENCES lesson_accounts (id),
    student_id BIGINT NOT NULL,
    kind VARCHAR(16) NOT NULL,
    amount BIGINT NOT NULL,
    value_fen BIGINT NOT NULL,
    balance_after_enc VARCHAR(200) NOT NULL,
    ref VARCHAR(100),
    session_id BIGINT,
    teacher_id BIGINT,
    course_id BIGINT,
    campus_id BIGINT,
    actor_id BIGINT,
    prev_hash VARCHAR(64) NOT NULL,
    hash VARCHAR(64) NOT NULL
) TABLE_OPTS;
CREATE UNIQUE INDEX ledger_entries_seq ON ledger_entries (tenant_id, chain_no, seq);
CREATE INDEX ledger_entries_account ON ledger_entries (tenant_id, account_id, id);
CREATE INDEX ledger_entries_student ON ledger_entries (tenant_id, student_id, id);
CREATE INDEX ledger_entries_session ON ledger_entries (tenant_id, session_id, student_id);
-- Reports read these narrow indexes instead of the wide rows.
CREATE INDEX ledger_entries_day ON ledger_entries (tenant_id, day, kind, amount, value_fen, teacher_id, session_id, course_id, campus_id);

-- Consumption per day, one row per tenant, day and ledger chain: written by
-- the transaction that appends to the chain (under its lock), read by the heatmap.
CREATE TABLE lesson_daily (
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    day BIGINT NOT NULL,
    chain_no BIGINT NOT NULL,
    hours BIGINT NOT NULL,
    value_fen BIGINT NOT NULL,
    entries BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, day, chain_no)
) TABLE_OPTS;

CREATE TABLE attendance (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    session_id BIGINT NOT NULL REFERENCES lesson_sessions (id),
    student_id BIGINT NOT NULL REFERENCES people (id),
    status VARCHAR(16) NOT NULL,
    hours BIGINT NOT NULL,
    -- The operation that wrote the row last: a check-in reads back which rows it inserted.
    op VARCHAR(40) NOT NULL,
    actor_id BIGINT,
    at BIGINT NOT NULL
) TABLE_OPTS;
CREATE UNIQUE INDEX attendance_session_student ON attendance (tenant_id, session_id, student_id);
CREATE INDEX attendance_student ON attendance (tenant_id, student_id, at);

CREATE TABLE lesson_refunds (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    account_id BIGINT NOT NULL REFERENCES lesson_accounts (id),
    hours BIGINT NOT NULL,
    amount_fen BIGINT NOT NULL,
    state VARCHAR(16) NOT NULL,
    requested_by BIGINT,
    confirmed_by BIGINT,
    created_at BIGINT NOT NULL,
    decided_at BIGINT
) TABLE_OPTS;
CREATE INDEX lesson_refunds_account ON lesson_refunds (tenant_id, account_id);

CREATE TABLE lesson_transfers (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    from_account_id BIGINT NOT NULL REFERENCES lesson_accounts (id),
    to_student_id BIGINT NOT NULL REFERENCES people (id),
    hours BIGINT NOT NULL,
    state VARCHAR(16) NOT NULL,
    to_account_id BIGINT,
    requested_by BIGINT,
    decided_by BIGINT,
    created_at BIGINT NOT NULL,
    decided_at BIGINT
) TABLE_OPTS;
CREATE INDEX lesson_transfers_tenant ON lesson_transfers (tenant_id, state);

-- Notices to parents, recorded by the `lessons.parent_notice` job; one per job.
CREATE TABLE lesson_notices (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    parent_id BIGINT NOT NULL REFERENCES people (id),
    student_id BIGINT NOT NULL REFERENCES people (id),
    kind VARCHAR(32) NOT NULL,
    job_id BIGINT NOT NULL,
    body VARCHAR(1000) NOT NULL,
    payload LONGTEXT_T NOT NULL,
    created_at BIGINT NOT NULL
) TABLE_OPTS;
CREATE UNIQUE INDEX lesson_notices_job ON lesson_notices (job_id, parent_id);
CREATE INDEX lesson_notices_parent ON lesson_notices (tenant_id, parent_id, id);

CREATE TABLE teacher_pay_rules (
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    course_kind VARCHAR(20) NOT NULL,
    fen_per_hour BIGINT NOT NULL,
    fen_per_student_hour BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, course_kind)
) TABLE_OPTS;

CREATE TABLE teacher_availability (
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    teacher_id BIGINT NOT NULL REFERENCES people (id),
    hours_per_week BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, teacher_id)
) TABLE_OPTS;

-- Existing tenants' built-in roles get the lesson-hour permissions.
UPDATE roles SET permissions = REPLACE(permissions, ']', ',"lessons.read","lessons.manage","lessons.checkin","lessons.reports"]')
    WHERE builtin = 1 AND role_key IN ('institution_admin', 'academic_affairs') AND permissions LIKE '%"%';
UPDATE roles SET permissions = REPLACE(permissions, ']', ',"lessons.read","lessons.reports"]')
    WHERE builtin = 1 AND role_key = 'principal' AND permissions LIKE '%"%';
UPDATE roles SET permissions = REPLACE(permissions, ']', ',"lessons.read","lessons.checkin"]')
    WHERE builtin = 1 AND role_key = 'teacher' AND permissions LIKE '%"%';
UPDATE roles SET permissions = '["lessons.read"]'
    WHERE builtin = 1 AND role_key IN ('parent', 'student') AND permissions = '[]';
