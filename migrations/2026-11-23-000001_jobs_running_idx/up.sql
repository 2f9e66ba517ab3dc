-- The sweeper's scan for rows left running by an attempt that recorded no outcome.
CREATE INDEX jobs_running_idx ON jobs (queue, updated_at) WHERE status = 'running';
