-- Message center: templates, messages, frozen audiences, inbox, deliveries,
-- channel settings and preferences.

CREATE TABLE message_types (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    code VARCHAR(64) NOT NULL,
    name VARCHAR(100) NOT NULL,
    created_at BIGINT NOT NULL
) TABLE_OPTS;
CREATE UNIQUE INDEX message_types_code ON message_types (tenant_id, code);

CREATE TABLE message_templates (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    code VARCHAR(64) NOT NULL,
    name VARCHAR(200) NOT NULL,
    kind VARCHAR(64) NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
) TABLE_OPTS;
CREATE UNIQUE INDEX message_templates_code ON message_templates (tenant_id, code);

-- Every saved version is kept; messages name the version they were written from.
CREATE TABLE message_template_versions (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    template_id BIGINT NOT NULL REFERENCES message_templates (id),
    version BIGINT NOT NULL,
    content LONGTEXT_T NOT NULL,
    created_by BIGINT,
    created_at BIGINT NOT NULL
) TABLE_OPTS;
CREATE UNIQUE INDEX message_template_versions_v ON message_template_versions (template_id, version);

CREATE TABLE messages (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    kind VARCHAR(64) NOT NULL,
    title VARCHAR(300) NOT NULL,
    -- Template sources (title, body, per-channel variants) as JSON.
    content LONGTEXT_T NOT NULL,
    vars LONGTEXT_T NOT NULL,
    template_id BIGINT,
    template_version BIGINT,
    priority VARCHAR(10) NOT NULL,
    state VARCHAR(16) NOT NULL,
    channels VARCHAR(500) NOT NULL,
    audience LONGTEXT_T NOT NULL,
    require_confirm BIGINT NOT NULL,
    sender_id BIGINT,
    sender_name VARCHAR(100),
    source VARCHAR(64) NOT NULL,
    publish_at BIGINT,
    expires_at BIGINT,
    published_at BIGINT,
    withdrawn_at BIGINT,
    recipient_count BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
) TABLE_OPTS;
CREATE INDEX messages_list ON messages (tenant_id, created_at);
CREATE INDEX messages_state ON messages (tenant_id, state, created_at);

-- The recipient list frozen at publish time: person ids (and, for parents,
-- the student they were reached through) as little-endian i64 arrays.
CREATE TABLE message_audiences (
    message_id BIGINT NOT NULL PRIMARY KEY REFERENCES messages (id),
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    person_ids BLOB_T NOT NULL,
    via_ids BLOB_T NOT NULL
) TABLE_OPTS;

CREATE TABLE message_attachments (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    message_id BIGINT REFERENCES messages (id),
    filename VARCHAR(300) NOT NULL,
    content_type VARCHAR(200) NOT NULL,
    size BIGINT NOT NULL,
    data BLOB_T NOT NULL,
    created_by BIGINT,
    created_at BIGINT NOT NULL
) TABLE_OPTS;
CREATE INDEX message_attachments_message ON message_attachments (tenant_id, message_id);

-- One row per recipient and message: the in-app inbox entry and its read receipt.
CREATE TABLE inbox (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    message_id BIGINT NOT NULL REFERENCES messages (id),
    person_id BIGINT NOT NULL REFERENCES people (id),
    via_person_id BIGINT,
    created_at BIGINT NOT NULL,
    read_at BIGINT,
    confirmed_at BIGINT
) TABLE_OPTS;
CREATE UNIQUE INDEX inbox_once ON inbox (message_id, person_id);
CREATE INDEX inbox_person ON inbox (tenant_id, person_id, id);

-- One row per recipient and outside channel (person_id 0: a group channel
-- such as a robot or webhook that gets one copy per message).
CREATE TABLE deliveries (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    message_id BIGINT NOT NULL REFERENCES messages (id),
    person_id BIGINT NOT NULL,
    channel VARCHAR(32) NOT NULL,
    provider VARCHAR(32) NOT NULL,
    address VARCHAR(300),
    state VARCHAR(16) NOT NULL,
    attempts BIGINT NOT NULL,
    next_at BIGINT,
    fallback_from VARCHAR(32),
    last_code VARCHAR(100),
    last_error VARCHAR(1000),
    provider_message_id VARCHAR(200),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    sent_at BIGINT
) TABLE_OPTS;
CREATE UNIQUE INDEX deliveries_once ON deliveries (message_id, person_id, channel);
CREATE INDEX deliveries_message ON deliveries (tenant_id, message_id, channel, state);
CREATE INDEX deliveries_person ON deliveries (tenant_id, person_id);

-- Provider settings per tenant and channel; credentials AES-GCM encrypted.
CREATE TABLE channel_configs (
    id ID_PK,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    channel VARCHAR(32) NOT NULL,
    provider VARCHAR(32) NOT NULL,
    config_enc LONGTEXT_T NOT NULL,
    enabled BIGINT NOT NULL,
    rate_per_sec BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
) TABLE_OPTS;
CREATE UNIQUE INDEX channel_configs_channel ON channel_configs (tenant_id, channel);

-- A person's account on an outside platform (WeCom userid, DingTalk userid, Feishu open_id).
CREATE TABLE person_channel_ids (
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    person_id BIGINT NOT NULL REFERENCES people (id),
    channel VARCHAR(32) NOT NULL,
    address VARCHAR(200) NOT NULL,
    PRIMARY KEY (person_id, channel)
) TABLE_OPTS;

-- Per person: channels per message type, and quiet hours (kind '*').
CREATE TABLE message_preferences (
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    person_id BIGINT NOT NULL REFERENCES people (id),
    kind VARCHAR(64) NOT NULL,
    channels VARCHAR(500),
    quiet_start VARCHAR(5),
    quiet_end VARCHAR(5),
    PRIMARY KEY (person_id, kind)
) TABLE_OPTS;

-- Per tenant: default quiet hours, fallbacks, urgent SMS.
CREATE TABLE messaging_settings (
    tenant_id BIGINT NOT NULL PRIMARY KEY REFERENCES tenants (id),
    settings LONGTEXT_T NOT NULL,
    updated_at BIGINT NOT NULL
) TABLE_OPTS;

-- Built-in roles of existing tenants gain the message-center permissions
-- (new tenants get them from the code's role list).
UPDATE roles SET permissions = REPLACE(permissions, '["people.read"', '["people.read","messages.send","messages.read","messages.manage"')
    WHERE builtin = 1 AND role_key IN ('institution_admin', 'academic_affairs') AND permissions NOT LIKE '%messages.%';
UPDATE roles SET permissions = REPLACE(permissions, '["people.read"', '["people.read","messages.send","messages.read"')
    WHERE builtin = 1 AND role_key = 'principal' AND permissions NOT LIKE '%messages.%';
UPDATE roles SET permissions = REPLACE(permissions, '["people.read"', '["people.read","messages.send"')
    WHERE builtin = 1 AND role_key IN ('department_staff', 'teacher') AND permissions NOT LIKE '%messages.%';
