import GRDB

/// The SQLite store's schema, as GRDB migrations.
///
/// Dates are integer milliseconds since the Unix epoch; JSON documents are stored as text.
/// Migrations are append-only: a published migration is never edited, only followed by a new one.
enum SQLiteSchema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-queue") { db in
            try db.execute(sql: """
                CREATE TABLE users (
                    id TEXT PRIMARY KEY NOT NULL,
                    name TEXT NOT NULL UNIQUE,
                    created_at INTEGER NOT NULL
                );
                CREATE TABLE api_tokens (
                    id TEXT PRIMARY KEY NOT NULL,
                    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    label TEXT NOT NULL,
                    secret_hash TEXT NOT NULL UNIQUE,
                    created_at INTEGER NOT NULL,
                    revoked_at INTEGER
                );
                CREATE INDEX api_tokens_by_user ON api_tokens(user_id);
                CREATE TABLE jobs (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    user_id TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    project TEXT NOT NULL,
                    status TEXT NOT NULL,
                    priority INTEGER NOT NULL,
                    payload TEXT NOT NULL,
                    attempt INTEGER NOT NULL,
                    max_attempts INTEGER NOT NULL,
                    created_at INTEGER NOT NULL,
                    not_before INTEGER NOT NULL,
                    started_at INTEGER,
                    finished_at INTEGER,
                    lease_owner TEXT,
                    lease_expires_at INTEGER,
                    cancel_requested INTEGER NOT NULL DEFAULT 0,
                    result TEXT,
                    metrics TEXT,
                    error TEXT,
                    last_event_seq INTEGER NOT NULL DEFAULT 0,
                    idempotency_key TEXT,
                    request_hash TEXT
                );
                CREATE UNIQUE INDEX jobs_idempotency ON jobs(user_id, idempotency_key)
                    WHERE idempotency_key IS NOT NULL;
                CREATE INDEX jobs_claim ON jobs(status, priority DESC, seq);
                CREATE INDEX jobs_lease ON jobs(status, lease_expires_at);
                CREATE INDEX jobs_by_user ON jobs(user_id, id DESC);
                CREATE TABLE job_events (
                    job_id TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    type TEXT NOT NULL,
                    data TEXT NOT NULL,
                    time INTEGER NOT NULL,
                    PRIMARY KEY (job_id, seq)
                ) WITHOUT ROWID;
                """)
        }
        migrator.registerMigration("v2-limits") { db in
            try db.execute(sql: SQLiteLimitSchema.v2)
        }
        migrator.registerMigration("v2-event-log-bytes") { db in
            // The size of each job's event log, kept next to `last_event_seq` so the cap is
            // checked inside the appending transaction without summing the log.
            try db.execute(sql: """
                ALTER TABLE jobs ADD COLUMN event_bytes INTEGER NOT NULL DEFAULT 0;
                UPDATE jobs SET event_bytes = (
                    SELECT COALESCE(SUM(LENGTH(CAST(type AS BLOB)) + LENGTH(CAST(data AS BLOB))), 0)
                    FROM job_events WHERE job_events.job_id = jobs.id);
                """)
        }
        return migrator
    }
}
