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
- ``export``: the merged result slices as JSON, JSONL or CSV;
- ``records``: the dashboard's record list of a job.
"""
