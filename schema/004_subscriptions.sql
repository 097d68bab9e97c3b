-- Subscriptions: a channel, playlist or feed watched by checks. A check lists the
-- entries (in a worker, holding a slot like a job), remembers each by extractor and id
-- (subscription_seen) and creates one job per entry not seen before, in one transaction.
CREATE TABLE subscriptions (
    id            uuid PRIMARY KEY,
    url           text NOT NULL,
    type          text NOT NULL CHECK (type IN ('ytdlp', 'twitter')),
    options       jsonb NOT NULL DEFAULT '{}'::jsonb,
    interval_s    integer NOT NULL CHECK (interval_s >= 1),
    max_items     integer NOT NULL CHECK (max_items >= 1),
    backfill      boolean NOT NULL DEFAULT true,
    enabled       boolean NOT NULL DEFAULT true,
    title         text,
    seen          integer NOT NULL DEFAULT 0 CHECK (seen >= 0),
    -- A check finished with success at least once (backfill: false only skips the first).
    listed_once   boolean NOT NULL DEFAULT false,
    -- The claim: the check queued or running for this subscription (one at a time,
    -- across instances: set only WHERE check_id IS NULL, cleared with the check's end).
    check_id      uuid,
    next_check_at timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX subscriptions_created_idx ON subscriptions (created_at DESC, id DESC);
CREATE INDEX subscriptions_due_idx ON subscriptions (next_check_at)
    WHERE enabled AND check_id IS NULL;

CREATE TABLE subscription_checks (
    id              uuid PRIMARY KEY,
    subscription_id uuid NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'running', 'ok', 'failed')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    instance_id     text,
    worker_id       text,
    found           integer CHECK (found IS NULL OR found >= 0),
    created         integer CHECK (created IS NULL OR created >= 0),
    error_code      text,
    error_message   text,
    queued_at       timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz
);

CREATE INDEX subscription_checks_sub_idx ON subscription_checks (subscription_id, queued_at DESC);
CREATE INDEX subscription_checks_open_idx ON subscription_checks (status)
    WHERE status IN ('queued', 'running');

-- What each subscription has seen, like yt-dlp's download archive.
CREATE TABLE subscription_seen (
    subscription_id uuid NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    extractor       text NOT NULL,
    entry_id        text NOT NULL,
    seen_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription_id, extractor, entry_id)
);

-- The subscription whose check created a job (the job stays when it is deleted).
ALTER TABLE jobs ADD COLUMN subscription_id uuid;
CREATE INDEX jobs_subscription_idx ON jobs (subscription_id) WHERE subscription_id IS NOT NULL;
