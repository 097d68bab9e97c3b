-- The jobs table: one row per accepted download, the source of truth for its state.
CREATE TABLE jobs (
    id            uuid PRIMARY KEY,
    url           text NOT NULL,
    type          text NOT NULL CHECK (type IN ('ytdlp', 'aria2', 'ffmpeg', 'twitter')),
    status        text NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled', 'paused')),
    stage         text,
    progress      real CHECK (progress IS NULL OR (progress >= 0 AND progress <= 100)),
    speed         bigint CHECK (speed IS NULL OR speed >= 0),
    eta           integer CHECK (eta IS NULL OR eta >= 0),
    total_bytes   bigint CHECK (total_bytes IS NULL OR total_bytes >= 0),
    filename      text,
    output_path   text,
    size          bigint CHECK (size IS NULL OR size >= 0),
    error_code    text,
    error_message text,
    options       jsonb NOT NULL DEFAULT '{}'::jsonb,
    meta          jsonb NOT NULL DEFAULT '{}'::jsonb,
    headers       jsonb NOT NULL DEFAULT '{}'::jsonb,
    attempts      integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    worker_id     text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz
);

-- GET /downloads: newest first, optionally by status, keyset-paginated on (created_at, id).
CREATE INDEX jobs_created_idx ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_status_created_idx ON jobs (status, created_at DESC, id DESC);
