"""Scheduled jobs: a registry, run slots claimed once, run history, and runners.

A job is an async function of the Runtime declared next to its domain code with
`@job("leads.recalibrate", cron="0 3 * * *")` and listed in its domain's `Domain.jobs`;
`tallyhub.domains.register_jobs()` puts every domain's jobs in the registry. Before
running, a runner claims the slot (job name, scheduled time) by inserting a unique
`job_runs` row; a second scheduler or worker trying the same slot gets nothing. The row
records status, timing, error and the job's own counts. Missed slots within the grace
window run once at start (embedded: in `serve`; Celery: beat sends them).

A run by hand (`POST /api/jobs/{name}/run`) runs in the web process with the embedded
scheduler; with Celery it is recorded `queued` and sent to a worker, and the API answers
at once. Either way a lost one (its process killed, or its message lost) is run again like
a lost slot.

A claim is a lease: while the job runs, its runner renews `heartbeat_at` every third of
`job_lease_seconds`. A process killed mid-run (a deploy, the OOM killer) leaves a
`running` row whose lease lapses; one stopped at shutdown marks its run `interrupted`.
The job `core.recover_runs` (every 30 s, on every runner) runs such a slot again as the
next attempt while it is still its job's latest, and a run by hand in any case (at most
MAX_ATTEMPTS in all), and marks the others `abandoned`; the catch-up at start takes over
its slots the same way.
A runner whose slot was taken over (it stalled past its lease) stops its job and records
nothing. Leases compare the clocks of the hosts that write them: keep them in sync (NTP),
well within a third of the lease.

The package: `registry` (jobs and their schedules), `runner` (slots, leases, history,
the embedded runner), `celery_runner`, and `api` (`/api/jobs`).
"""
