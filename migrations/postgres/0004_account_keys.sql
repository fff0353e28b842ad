-- Per-account data keys for erasure by crypto-shredding (src/store/keys.rs): each wrapped
-- under the master key. Erasing an account deletes its row and records it in
-- `erased_accounts`, so no new key is made for it.
CREATE TABLE IF NOT EXISTS account_keys (
    account_id  text   PRIMARY KEY,
    wrapped_key bytea  NOT NULL,
    created_at  bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS erased_accounts (
    account_id text   PRIMARY KEY,
    erased_at  bigint NOT NULL
);
