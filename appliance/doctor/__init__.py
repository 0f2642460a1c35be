"""`appliance doctor`: one run of every health check, a verdict and a plain-language fix each.

One module per group of checks (database, store, turn, certificate, system, clock, services,
recorder); `runner` runs them all at once, each under a timeout; `report` renders the table and
the JSON; `command` is the CLI sub-command. The CLI and `GET /api/admin/doctor`
(appliance/transport/http/doctor_routes.py) share it. Nothing is imported here, so building the
CLI's parser stays cheap.
"""
