-- The builder's database role (docs/security.md, "Database roles").
--
-- A builder runs the jobs that run package code (build, verify). Its role may
-- read what those jobs need, never a credential or anyone's account, and
-- write only their logs and results: no environment, project, credential,
-- approval or person. Run this as the tables' owner after every migrate
-- (psql -v role=console_builder -f deploy/builder-grants.sql), once the role
-- exists (CREATE ROLE console_builder LOGIN PASSWORD '...';). The web server,
-- the publishers, beat and migrate keep the owner's role.

GRANT USAGE ON SCHEMA public TO :"role";

-- Reads.
GRANT SELECT ON
    releases_project, releases_environment, releases_release, releases_artifact,
    releases_deployment, releases_deploymentfile, releases_approval,
    releases_job, releases_joblogline, releases_sbom, releases_checkresult,
    releases_vulnerabilityfinding, releases_vulnerabilityalert,
    releases_auditevent, releases_auditchainhead, releases_webhookdelivery, releases_workflowrun
TO :"role";

-- Its jobs: claimed, beating, finished; the job that follows a build or a verify.
GRANT INSERT ON releases_job TO :"role";
GRANT UPDATE (state, outcome, reason, step, attempts, celery_task_id, worker, queued_at, started_at,
              heartbeat_at, finished_at, log_lines, sent_at) ON releases_job TO :"role";
GRANT INSERT ON releases_joblogline TO :"role";
-- Its own row in the list of live workers (the dashboard's job queue).
GRANT SELECT, INSERT, UPDATE, DELETE ON releases_worker TO :"role";

-- A build's result: the release's state and its files.
GRANT UPDATE (state, outcome, reason, commit, warnings, built_at) ON releases_release TO :"role";
GRANT INSERT ON releases_artifact TO :"role";

-- A verify's result: where the deployment and its files are, what the checks
-- found, the SBOM and its scan. Never which release, where to, or how many
-- approvals a deployment needs.
GRANT UPDATE (state, outcome, reason, summary, verified_modules, started_at, finished_at)
    ON releases_deployment TO :"role";
GRANT UPDATE (state, outcome, reason, index_sha256, url, updated_at, provenance) ON releases_deploymentfile TO :"role";
GRANT INSERT ON releases_checkresult, releases_sbom, releases_vulnerabilityfinding TO :"role";
GRANT UPDATE (passed, detail, seconds) ON releases_checkresult TO :"role";
GRANT UPDATE (scanned_at, scan_error) ON releases_sbom TO :"role";

-- The audit trail: appended to (the database refuses any change to an event).
GRANT INSERT ON releases_auditevent TO :"role";
GRANT UPDATE (last_event_id, last_hash) ON releases_auditchainhead TO :"role";
