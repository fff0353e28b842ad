-- The log's hash chain: each event's seal is H(previous seal ‖ the event in canonical form),
-- in log order, written by the sealer (src/store/seal.rs). `log_chain` is its one head row:
-- the last sealed cursor and its hash (genesis: no event, 32 zero bytes).
CREATE TABLE IF NOT EXISTS log_seals (
    tx_id    bigint NOT NULL,
    position bigint NOT NULL,
    hash     bytea  NOT NULL,
    PRIMARY KEY (tx_id, position)
);

CREATE TABLE IF NOT EXISTS log_chain (
    id         integer PRIMARY KEY CHECK (id = 1),
    tx_id      bigint  NOT NULL,
    position   bigint  NOT NULL,
    hash       bytea   NOT NULL,
    updated_at bigint  NOT NULL
);

INSERT INTO log_chain (id, tx_id, position, hash, updated_at)
VALUES (1, 0, 0, decode(repeat('00', 32), 'hex'), 0)
ON CONFLICT (id) DO NOTHING;
