-- User accounts. `username_key` and `email_key` hold the lower-cased forms: uniqueness and
-- lookups use them. They are VARBINARY so that comparison is byte for byte, exactly as in
-- SQLite: no collation folds accents or ignores trailing spaces. `username` and `email`
-- keep what the user typed. `roles` is a JSON array of role names, sorted.
-- No DEFAULT on the TEXT column: MySQL before 8.0.13 refuses one.
CREATE TABLE users (
    id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    username      VARCHAR(255)    NOT NULL,
    username_key  VARBINARY(1024) NOT NULL,
    email         VARCHAR(320)    NOT NULL,
    email_key     VARBINARY(1280) NOT NULL,
    password_hash VARCHAR(1024)   NOT NULL,
    roles         TEXT            NOT NULL,
    disabled      BOOLEAN         NOT NULL DEFAULT FALSE,
    created_at    BIGINT          NOT NULL,
    updated_at    BIGINT          NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY users_username_key (username_key),
    UNIQUE KEY users_email_key (email_key)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci ROW_FORMAT = DYNAMIC;
