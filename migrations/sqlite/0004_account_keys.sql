-- Per-account data keys for erasure by crypto-shredding (src/store/keys.rs): each wrapped
-- under the master key. Erasing an account deletes its row and records it in
-- `erased_accounts`, so no new key is made for it.
CREATE TABLE IF NOT EXISTS account_keys (
    account_id  TEXT    PRIMARY KEY,
    wrapped_key BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS erased_accounts (
    account_id TEXT    PRIMARY KEY,
    erased_at  INTEGER NOT NULL
);
