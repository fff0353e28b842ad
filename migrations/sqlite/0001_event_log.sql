-- The event log (the table sqlite-es reads and writes) plus Threadline's columns.
-- The global position is an INTEGER PRIMARY KEY (the rowid, made explicit so that VACUUM
-- never renumbers it): writes go through one connection, so position order is commit order.
-- event_id and recorded_at are filled by the database.
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY,
    aggregate_type TEXT    NOT NULL,
    aggregate_id   TEXT    NOT NULL,
    sequence       INTEGER NOT NULL CHECK (sequence >= 0),
    event_type     TEXT    NOT NULL,
    event_version  TEXT    NOT NULL,
    payload        TEXT    NOT NULL,
    metadata       TEXT    NOT NULL,
    event_id       TEXT    NOT NULL DEFAULT (lower(hex(randomblob(16)))),
    recorded_at    INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    -- sqlite-es expects this to be the primary key; as a unique constraint its violation is
    -- reported differently, and the command bus maps it to a conflict (src/store/bus.rs).
    UNIQUE (aggregate_type, aggregate_id, sequence)
);

-- Where each projection has got to in the log.
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    name       TEXT    PRIMARY KEY,
    version    INTEGER NOT NULL,
    tx_id      INTEGER NOT NULL DEFAULT 0,
    position   INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);
