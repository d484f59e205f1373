-- Sluice warehouse, migration 1: targets, staging, load jobs, load audit, quarantine.
-- One source for both dialects, rendered by warehouse.sqlgen.render_ddl:
--   {{schema}}        the schema from SLUICE_WAREHOUSE_SCHEMA
--   {{json}}          JSONB on PostgreSQL, SUPER on Redshift
--   {{pg:...}}        text kept on PostgreSQL only
--   {{rs:...}}        text kept on Redshift only
-- Statements end with a semicolon at the end of a line.

CREATE TABLE IF NOT EXISTS {{schema}}.financial_transactions (
    event_id          VARCHAR(36)    NOT NULL,
    event_type        VARCHAR(64)    NOT NULL,
    schema_version    INTEGER        NOT NULL,
    occurred_at       TIMESTAMPTZ    NOT NULL,
    ingested_at       TIMESTAMPTZ,
    source            VARCHAR(256),
    tenant_id         VARCHAR(128)   NOT NULL,
    metadata          {{json}},
    transaction_id    VARCHAR(128)   NOT NULL,
    account_id        VARCHAR(128)   NOT NULL,
    amount            DECIMAL(18,4)  NOT NULL,
    currency          VARCHAR(3)     NOT NULL,
    transaction_type  VARCHAR(64),
    channel           VARCHAR(64),
    status            VARCHAR(64),
    card_number       VARCHAR(32),
    merchant_name     VARCHAR(512),
    merchant_mcc      VARCHAR(8),
    merchant_country  VARCHAR(2),
    PRIMARY KEY (event_id)
){{rs: DISTKEY (event_id) COMPOUND SORTKEY (occurred_at, tenant_id)}};

CREATE TABLE IF NOT EXISTS {{schema}}.insurance_claims (
    event_id                   VARCHAR(36)    NOT NULL,
    event_type                 VARCHAR(64)    NOT NULL,
    schema_version             INTEGER        NOT NULL,
    occurred_at                TIMESTAMPTZ    NOT NULL,
    ingested_at                TIMESTAMPTZ,
    source                     VARCHAR(256),
    tenant_id                  VARCHAR(128)   NOT NULL,
    metadata                   {{json}},
    claim_id                   VARCHAR(128)   NOT NULL,
    policy_id                  VARCHAR(128)   NOT NULL,
    policyholder_id            VARCHAR(128),
    line_of_business           VARCHAR(64),
    loss_date                  DATE,
    reported_at                TIMESTAMPTZ,
    claim_amount               DECIMAL(18,4)  NOT NULL,
    currency                   VARCHAR(3)     NOT NULL,
    status                     VARCHAR(64),
    cause_of_loss              VARCHAR(256),
    claimant_national_id       VARCHAR(128),
    loss_location_country      VARCHAR(2),
    loss_location_region       VARCHAR(128),
    loss_location_postal_code  VARCHAR(32),
    PRIMARY KEY (event_id)
){{rs: DISTKEY (event_id) COMPOUND SORTKEY (occurred_at, tenant_id)}};

-- Staging: same columns, no keys; empty outside a load transaction.
CREATE {{pg:UNLOGGED }}TABLE IF NOT EXISTS {{schema}}.stg_financial_transactions (
    LIKE {{schema}}.financial_transactions
){{rs: DISTKEY (event_id)}};

CREATE {{pg:UNLOGGED }}TABLE IF NOT EXISTS {{schema}}.stg_insurance_claims (
    LIKE {{schema}}.insurance_claims
){{rs: DISTKEY (event_id)}};

-- One row per load job (one manifest into one target), keyed by its stable id.
CREATE TABLE IF NOT EXISTS {{schema}}.load_jobs (
    load_id         VARCHAR(64)    NOT NULL,
    manifest_url    VARCHAR(1024)  NOT NULL,
    target_table    VARCHAR(64)    NOT NULL,
    state           VARCHAR(16)    NOT NULL,
    attempts        INTEGER        NOT NULL,
    last_error      VARCHAR(4096),
    rows_staged     BIGINT         NOT NULL,
    rows_rejected   BIGINT         NOT NULL,
    rows_inserted   BIGINT         NOT NULL,
    rows_updated    BIGINT         NOT NULL,
    created_at      TIMESTAMPTZ    NOT NULL,
    updated_at      TIMESTAMPTZ    NOT NULL,
    PRIMARY KEY (load_id)
){{rs: DISTSTYLE ALL}};

-- The load audit: every attempt on every file, with its outcome.
CREATE TABLE IF NOT EXISTS {{schema}}.load_audit (
    load_id         VARCHAR(64)    NOT NULL,
    manifest_url    VARCHAR(1024)  NOT NULL,
    file_url        VARCHAR(1024)  NOT NULL,
    target_table    VARCHAR(64)    NOT NULL,
    outcome         VARCHAR(16)    NOT NULL,
    attempt         INTEGER        NOT NULL,
    rows_read       BIGINT         NOT NULL,
    rows_staged     BIGINT         NOT NULL,
    rows_rejected   BIGINT         NOT NULL,
    error           VARCHAR(4096),
    recorded_at     TIMESTAMPTZ    NOT NULL
){{rs: DISTSTYLE ALL SORTKEY (file_url)}};

{{pg:CREATE INDEX IF NOT EXISTS load_audit_file_idx ON {{schema}}.load_audit (file_url, outcome);}}

-- Rows the warehouse would not take, never dropped: where from, which line, why.
CREATE TABLE IF NOT EXISTS {{schema}}.quarantine (
    load_id         VARCHAR(64),
    source          VARCHAR(1024)  NOT NULL,
    line_no         BIGINT         NOT NULL,
    target_table    VARCHAR(64),
    reason          VARCHAR(1024)  NOT NULL,
    raw_line        VARCHAR(65535) NOT NULL,
    quarantined_at  TIMESTAMPTZ    NOT NULL
){{rs: DISTSTYLE EVEN SORTKEY (quarantined_at)}};
