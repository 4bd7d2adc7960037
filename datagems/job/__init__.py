"""The job domain: what a job is in the store, and every rule about it.

- ``state``: a job's status, totals and coverage derived from its peer states (pure);
- ``lifecycle``: create, read, cancel and finalize a job; fleet metrics; its provider;
- ``commands``: retry and extend requests, decided by the job's command owner;
- ``caps``: per-user caps on open jobs and records;
- ``index``: the open-jobs index (``datagen:open-jobs``) and its rebuild;
- ``listing``: a user's jobs, page by page;
- ``liveness``: which peers are alive and who takes over a silent peer's range;
- ``results``: a range's local result file (the truth every count is derived from);
- ``seen``: records already produced in a job (duplicates);
- ``export``: the merged result slices (their merge by index, the CSV cell rule);
- ``rows``, ``parquet``: the export's one row set in every format (JSON, JSONL, CSV, Parquet);
- ``records``: the dashboard's record list of a job;
- ``browse``: the records view's pages (filters, search) and one record's detail;
- ``honest``: what the job page says of a job's state (completed with failures, a cancel
  still ending, ranges after extensions, why a job is queued).
"""
