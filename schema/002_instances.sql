-- Several instances on one PostgreSQL: a running job belongs to the instance that runs
-- it (server.instance_id). A starting instance requeues only its own leftovers; the jobs
-- of an instance whose lease expired are requeued by whichever instance notices first.
ALTER TABLE jobs ADD COLUMN instance_id text;

CREATE INDEX jobs_running_instance_idx ON jobs (instance_id) WHERE status = 'running';
