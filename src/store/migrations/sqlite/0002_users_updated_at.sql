-- Running gateways ask every second which users changed (`updated_at`), so that a
-- disabled account or a revoked role takes effect without reading each user per request.
CREATE INDEX users_updated_at ON users (updated_at);
