-- The log's hash chain: each event's seal is H(previous seal ‖ the event in canonical form),
-- in log order, written by the sealer (src/store/seal.rs). `log_chain` is its one head row:
-- the last sealed cursor and its hash (genesis: no event, 32 zero bytes).
CREATE TABLE IF NOT EXISTS log_seals (
    position INTEGER PRIMARY KEY,
    tx_id    INTEGER NOT NULL DEFAULT 0,
    hash     BLOB    NOT NULL
);

CREATE TABLE IF NOT EXISTS log_chain (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    tx_id      INTEGER NOT NULL,
    position   INTEGER NOT NULL,
    hash       BLOB    NOT NULL,
    updated_at INTEGER NOT NULL
);

INSERT OR IGNORE INTO log_chain (id, tx_id, position, hash, updated_at)
VALUES (1, 0, 0, zeroblob(32), 0);
