/// The SQLite tables behind `LimitStore` (migration `v2-limits`).
///
/// - `user_limits`: stored overrides, one row per user plus the row `'*'` for the store-wide
///   defaults. `NULL` inherits, `-1` lifts the limit; `rate_count`/`rate_period_ms` go
///   together; money is in millionths of a dollar; `kind_costs` is a JSON object.
/// - `user_counters` and `queue_depth`: queued and running jobs (and their cost units) per
///   user, and queued jobs in all, kept exact by triggers on every insert and status change of
///   `jobs`, whichever code path makes it. Limits read them in O(1) instead of counting the
///   queue.
/// - `rate_limits`: each user's GCRA state (theoretical arrival time, microseconds).
/// - `user_usage`: model usage per user and UTC day; `job_usage`: per run (job, attempt and
///   lease owner: a released job runs its attempt again under another owner), so a worker's
///   running totals turn into exact increments.
/// - `jobs.cost`: the job's cost units, fixed at submission.
enum SQLiteLimitSchema {
    static let v2 = """
        ALTER TABLE jobs ADD COLUMN cost INTEGER NOT NULL DEFAULT 1;
        CREATE INDEX jobs_user_queue ON jobs(user_id, status, priority DESC, seq);

        CREATE TABLE user_limits (
            user_id TEXT PRIMARY KEY NOT NULL,
            rate_count INTEGER,
            rate_period_ms INTEGER,
            burst INTEGER,
            max_running INTEGER,
            max_queued INTEGER,
            daily_tokens INTEGER,
            daily_cost_micro_usd INTEGER,
            disk_quota_bytes INTEGER,
            kind_costs TEXT
        ) WITHOUT ROWID;

        CREATE TABLE user_counters (
            user_id TEXT PRIMARY KEY NOT NULL,
            queued_jobs INTEGER NOT NULL DEFAULT 0,
            queued_cost INTEGER NOT NULL DEFAULT 0,
            running_jobs INTEGER NOT NULL DEFAULT 0,
            running_cost INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID;
        INSERT INTO user_counters (user_id, queued_jobs, queued_cost, running_jobs, running_cost)
            SELECT user_id, SUM(status = 'queued'), SUM((status = 'queued') * cost),
                   SUM(status = 'running'), SUM((status = 'running') * cost)
            FROM jobs GROUP BY user_id;

        CREATE TABLE queue_depth (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            queued_jobs INTEGER NOT NULL
        );
        INSERT INTO queue_depth (id, queued_jobs) SELECT 1, COUNT(*) FROM jobs WHERE status = 'queued';

        CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
            INSERT INTO user_counters (user_id, queued_jobs, queued_cost, running_jobs, running_cost)
            VALUES (NEW.user_id, NEW.status = 'queued', (NEW.status = 'queued') * NEW.cost,
                    NEW.status = 'running', (NEW.status = 'running') * NEW.cost)
            ON CONFLICT (user_id) DO UPDATE SET
                queued_jobs = queued_jobs + excluded.queued_jobs,
                queued_cost = queued_cost + excluded.queued_cost,
                running_jobs = running_jobs + excluded.running_jobs,
                running_cost = running_cost + excluded.running_cost;
            UPDATE queue_depth SET queued_jobs = queued_jobs + 1 WHERE id = 1 AND NEW.status = 'queued';
        END;

        CREATE TRIGGER jobs_count_status AFTER UPDATE OF status ON jobs
        WHEN OLD.status IS NOT NEW.status BEGIN
            UPDATE user_counters SET
                queued_jobs = queued_jobs - (OLD.status = 'queued') + (NEW.status = 'queued'),
                queued_cost = queued_cost - (OLD.status = 'queued') * OLD.cost + (NEW.status = 'queued') * NEW.cost,
                running_jobs = running_jobs - (OLD.status = 'running') + (NEW.status = 'running'),
                running_cost = running_cost - (OLD.status = 'running') * OLD.cost + (NEW.status = 'running') * NEW.cost
            WHERE user_id = NEW.user_id;
            UPDATE queue_depth SET queued_jobs = queued_jobs - (OLD.status = 'queued') + (NEW.status = 'queued')
            WHERE id = 1 AND (OLD.status = 'queued' OR NEW.status = 'queued');
        END;

        CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
            UPDATE user_counters SET
                queued_jobs = queued_jobs - (OLD.status = 'queued'),
                queued_cost = queued_cost - (OLD.status = 'queued') * OLD.cost,
                running_jobs = running_jobs - (OLD.status = 'running'),
                running_cost = running_cost - (OLD.status = 'running') * OLD.cost
            WHERE user_id = OLD.user_id;
            UPDATE queue_depth SET queued_jobs = queued_jobs - 1 WHERE id = 1 AND OLD.status = 'queued';
        END;

        CREATE TABLE rate_limits (
            user_id TEXT PRIMARY KEY NOT NULL,
            tat_us INTEGER NOT NULL
        ) WITHOUT ROWID;

        CREATE TABLE user_usage (
            user_id TEXT NOT NULL,
            day INTEGER NOT NULL,
            tokens INTEGER NOT NULL DEFAULT 0,
            cost_micro_usd INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (user_id, day)
        ) WITHOUT ROWID;

        CREATE TABLE job_usage (
            job_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            owner TEXT NOT NULL,
            tokens INTEGER NOT NULL,
            cost_micro_usd INTEGER NOT NULL,
            PRIMARY KEY (job_id, attempt, owner)
        ) WITHOUT ROWID;
        """
}
