-- Foundation: tenants, directory, accounts, roles, sessions, tokens, audit, jobs, cron, imports.
-- Tokens replaced per backend: ID_PK, BLOB_T, LONGTEXT_T, TABLE_OPTS.

CREATE TABLE tenants (
    id ID_PK,
    code VARCHAR(64) NOT NULL UNIQUE,
    name VARCHAR(200) NOT NULL,
    created_at BIGINT NOT NULL
) TABLE_OPTS;

CREATE TABLE campuses (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    name VARCHAR(200) NOT NULL,
    address VARCHAR(500),
    created_at BIGINT NOT NULL
) TABLE_OPTS;
CREATE UNIQUE INDEX campuses_name ON campuses (tenant_id, name);

CREATE TABLE departments (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    parent_id BIGINT REFERENCES departments (id),
    name VARCHAR(200) NOT NULL,
    path VARCHAR(1000) NOT NULL,
    created_at BIGINT NOT NULL
) TABLE_OPTS;
CREATE INDEX departments_tenant ON departments (tenant_id, parent_id);

CREATE TABLE grades (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    name VARCHAR(100) NOT NULL,
    entry_year BIGINT,
    created_at BIGINT NOT NULL
) TABLE_OPTS;
CREATE UNIQUE INDEX grades_name ON grades (tenant_id, name);

CREATE TABLE classes (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    grade_id BIGINT REFERENCES grades (id),
    department_id BIGINT REFERENCES departments (id),
    campus_id BIGINT REFERENCES campuses (id),
    name VARCHAR(100) NOT NULL,
    created_at BIGINT NOT NULL
) TABLE_OPTS;
CREATE UNIQUE INDEX classes_name ON classes (tenant_id, name);

CREATE TABLE people (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    kind VARCHAR(20) NOT NULL,
    number VARCHAR(64),
    name VARCHAR(100) NOT NULL,
    name_pinyin VARCHAR(400) NOT NULL,
    name_initials VARCHAR(100) NOT NULL,
    -- Lower-cased name, pinyin, initials, number, username and e-mail, for one LIKE.
    search_key VARCHAR(700) NOT NULL,
    gender VARCHAR(10),
    phone_enc VARCHAR(200),
    phone_index VARCHAR(64),
    email VARCHAR(254),
    id_number_enc VARCHAR(200),
    id_number_index VARCHAR(64),
    username VARCHAR(64),
    password_hash VARCHAR(200),
    must_change_password BIGINT NOT NULL,
    platform_admin BIGINT NOT NULL,
    department_id BIGINT REFERENCES departments (id),
    class_id BIGINT REFERENCES classes (id),
    active BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
) TABLE_OPTS;
CREATE UNIQUE INDEX people_number ON people (tenant_id, number);
CREATE UNIQUE INDEX people_username ON people (tenant_id, username);
CREATE UNIQUE INDEX people_email ON people (tenant_id, email);
CREATE INDEX people_phone ON people (tenant_id, phone_index);
CREATE INDEX people_id_number ON people (tenant_id, id_number_index);
CREATE INDEX people_class ON people (tenant_id, class_id);
CREATE INDEX people_department ON people (tenant_id, department_id);
CREATE INDEX people_name ON people (tenant_id, name);
-- Lists are ordered by pinyin: these let a page be read in index order and counted from the index.
CREATE INDEX people_list ON people (tenant_id, active, name_pinyin, id);
CREATE INDEX people_kind_list ON people (tenant_id, kind, active, name_pinyin, id);
-- Search scans this narrow index instead of the table's wide rows.
CREATE INDEX people_search ON people (tenant_id, active, search_key);

CREATE TABLE guardianships (
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    parent_id BIGINT NOT NULL REFERENCES people (id),
    student_id BIGINT NOT NULL REFERENCES people (id),
    relation VARCHAR(20),
    PRIMARY KEY (parent_id, student_id)
) TABLE_OPTS;
CREATE INDEX guardianships_student ON guardianships (tenant_id, student_id);

CREATE TABLE tags (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    name VARCHAR(100) NOT NULL
) TABLE_OPTS;
CREATE UNIQUE INDEX tags_name ON tags (tenant_id, name);

CREATE TABLE person_tags (
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    person_id BIGINT NOT NULL REFERENCES people (id),
    tag_id BIGINT NOT NULL REFERENCES tags (id),
    PRIMARY KEY (person_id, tag_id)
) TABLE_OPTS;

CREATE TABLE class_teachers (
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    class_id BIGINT NOT NULL REFERENCES classes (id),
    person_id BIGINT NOT NULL REFERENCES people (id),
    role VARCHAR(20) NOT NULL,
    PRIMARY KEY (class_id, person_id)
) TABLE_OPTS;
CREATE INDEX class_teachers_person ON class_teachers (tenant_id, person_id);

CREATE TABLE roles (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    role_key VARCHAR(64) NOT NULL,
    name VARCHAR(100) NOT NULL,
    builtin BIGINT NOT NULL,
    permissions VARCHAR(2000) NOT NULL,
    scope VARCHAR(20) NOT NULL,
    created_at BIGINT NOT NULL
) TABLE_OPTS;
CREATE UNIQUE INDEX roles_key ON roles (tenant_id, role_key);

CREATE TABLE person_roles (
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    person_id BIGINT NOT NULL REFERENCES people (id),
    role_id BIGINT NOT NULL REFERENCES roles (id),
    PRIMARY KEY (person_id, role_id)
) TABLE_OPTS;
CREATE INDEX person_roles_role ON person_roles (tenant_id, role_id);

CREATE TABLE sessions (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    person_id BIGINT NOT NULL REFERENCES people (id),
    token_hash VARCHAR(64) NOT NULL UNIQUE,
    csrf_token VARCHAR(64) NOT NULL,
    ip VARCHAR(64),
    user_agent VARCHAR(300),
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
) TABLE_OPTS;
CREATE INDEX sessions_person ON sessions (person_id);

CREATE TABLE api_tokens (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    person_id BIGINT NOT NULL REFERENCES people (id),
    name VARCHAR(100) NOT NULL,
    prefix VARCHAR(16) NOT NULL,
    token_hash VARCHAR(64) NOT NULL UNIQUE,
    scopes VARCHAR(2000) NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    expires_at BIGINT,
    revoked_at BIGINT
) TABLE_OPTS;
CREATE INDEX api_tokens_person ON api_tokens (tenant_id, person_id);

CREATE TABLE login_failures (
    id ID_PK,
    throttle_key VARCHAR(300) NOT NULL,
    at BIGINT NOT NULL
) TABLE_OPTS;
CREATE INDEX login_failures_key ON login_failures (throttle_key, at);

CREATE TABLE chain_heads (
    chain VARCHAR(100) NOT NULL PRIMARY KEY,
    seq BIGINT NOT NULL,
    head_hash VARCHAR(64) NOT NULL
) TABLE_OPTS;

CREATE TABLE audit_log (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    actor_id BIGINT,
    actor_name VARCHAR(100),
    action VARCHAR(64) NOT NULL,
    entity VARCHAR(64) NOT NULL,
    entity_id VARCHAR(64),
    ip VARCHAR(64),
    request_id VARCHAR(64),
    before_json LONGTEXT_T,
    after_json LONGTEXT_T,
    prev_hash VARCHAR(64) NOT NULL,
    hash VARCHAR(64) NOT NULL
) TABLE_OPTS;
CREATE UNIQUE INDEX audit_log_seq ON audit_log (tenant_id, seq);
CREATE INDEX audit_log_entity ON audit_log (tenant_id, entity, entity_id);
CREATE INDEX audit_log_actor ON audit_log (tenant_id, actor_id);

CREATE TABLE jobs (
    id ID_PK,
    tenant_id BIGINT,
    kind VARCHAR(100) NOT NULL,
    payload LONGTEXT_T NOT NULL,
    state VARCHAR(16) NOT NULL,
    priority BIGINT NOT NULL,
    run_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    max_attempts BIGINT NOT NULL,
    lease_until BIGINT,
    lease_token VARCHAR(100),
    last_error LONGTEXT_T,
    unique_key VARCHAR(200) UNIQUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT
) TABLE_OPTS;
CREATE INDEX jobs_ready ON jobs (state, priority, run_at);
CREATE INDEX jobs_lease ON jobs (state, lease_until);

CREATE TABLE cron_schedules (
    name VARCHAR(100) NOT NULL PRIMARY KEY,
    expr VARCHAR(100) NOT NULL,
    job_kind VARCHAR(100) NOT NULL,
    payload LONGTEXT_T NOT NULL,
    next_at BIGINT NOT NULL,
    last_at BIGINT,
    enabled BIGINT NOT NULL
) TABLE_OPTS;

CREATE TABLE diag_job_runs (
    id ID_PK,
    job_id BIGINT NOT NULL,
    worker VARCHAR(100) NOT NULL,
    at BIGINT NOT NULL
) TABLE_OPTS;

CREATE TABLE imports (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    actor_id BIGINT,
    file_name VARCHAR(300) NOT NULL,
    mode VARCHAR(20) NOT NULL,
    state VARCHAR(16) NOT NULL,
    total_rows BIGINT NOT NULL,
    processed_rows BIGINT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    unchanged BIGINT NOT NULL,
    skipped BIGINT NOT NULL,
    errors LONGTEXT_T,
    content BLOB_T,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
) TABLE_OPTS;
CREATE INDEX imports_tenant ON imports (tenant_id, id);
