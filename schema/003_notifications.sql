-- Notifications (the outbox): one row per delivery to one target, inserted in the same
-- transaction as the state it announces (a job's terminal write, a subscription's check),
-- then sent by the service with retries (mediad/notify/). `payload` is the body's content
-- frozen at record time; `id` is the delivery id, the same on every retry.
-- A sender claims due rows with FOR UPDATE SKIP LOCKED and pushes `next_attempt_at` past
-- the attempt (a lease): a row claimed by an instance that died is due again after it.
CREATE TABLE notifications (
    id uuid PRIMARY KEY,
    target text NOT NULL,
    event text NOT NULL,
    job_id uuid,
    subscription_id uuid,
    payload jsonb NOT NULL,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    claimed_by text,
    created_at timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz DEFAULT now(),
    delivered_at timestamptz
);

CREATE INDEX notifications_due_idx ON notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notifications_created_idx ON notifications (created_at DESC, id DESC);
CREATE INDEX notifications_job_idx ON notifications (job_id);
