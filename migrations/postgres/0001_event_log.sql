-- The event log (the table postgres-es reads and writes) plus Threadline's columns.
-- Log order is (tx_id, position): readers take only rows with
-- tx_id < pg_snapshot_xmin(pg_current_snapshot()), so a transaction that took its position
-- early and committed late is never skipped.
CREATE TABLE IF NOT EXISTS events (
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    sequence       bigint      NOT NULL CHECK (sequence >= 0),
    event_type     text        NOT NULL,
    event_version  text        NOT NULL,
    payload        json        NOT NULL,
    metadata       json        NOT NULL,
    position       bigint      GENERATED ALWAYS AS IDENTITY,
    tx_id          xid8        NOT NULL DEFAULT pg_current_xact_id(),
    event_id       uuid        NOT NULL DEFAULT gen_random_uuid(),
    recorded_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE UNIQUE INDEX IF NOT EXISTS events_log_order ON events (tx_id, position);

-- Every insert wakes the projectors and live readers of every node (NOTIFY collapses
-- duplicates within one transaction, so a batch of chunks costs one notification).
CREATE OR REPLACE FUNCTION threadline_notify_events() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('threadline_events', '');
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS events_notify ON events;
CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION threadline_notify_events();

-- Where each projection has got to in the log.
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    name       text   PRIMARY KEY,
    version    bigint NOT NULL,
    tx_id      bigint NOT NULL DEFAULT 0,
    position   bigint NOT NULL DEFAULT 0,
    updated_at bigint NOT NULL
);
