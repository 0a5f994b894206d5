-- User accounts. `username_key` and `email_key` hold the lower-cased forms: uniqueness and
-- lookups use them, so they behave the same on every backend, while `username` and `email`
-- keep what the user typed. `roles` is a JSON array of role names, sorted.
-- AUTOINCREMENT: an id is never handed out twice, even after a delete, because tokens and
-- sessions name users by id.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL,
    username_key  TEXT    NOT NULL,
    email         TEXT    NOT NULL,
    email_key     TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    roles         TEXT    NOT NULL DEFAULT '[]',
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;

CREATE UNIQUE INDEX users_username_key ON users (username_key);
CREATE UNIQUE INDEX users_email_key ON users (email_key);
