DROP INDEX IF EXISTS jobs_running_idx;
