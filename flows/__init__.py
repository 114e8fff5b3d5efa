"""politikpi: the district's raw exports in, an audited, versioned DuckDB warehouse out.

ingest/ (scan, read, validate, threshold, load) -> build/ (models, runner, patch, transform) ->
release/ (audit, publish, store, releases, report, summary). refresh.py wraps the stages in
Prefect's flow and tasks, serve.py deploys it; cli.py is the `politikpi` command."""
