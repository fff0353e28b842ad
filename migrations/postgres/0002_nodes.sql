-- Nodes record a heartbeat; a running reply whose node is silent gets marked interrupted.
CREATE TABLE IF NOT EXISTS nodes (
    id           text   PRIMARY KEY,
    heartbeat_at bigint NOT NULL
);
