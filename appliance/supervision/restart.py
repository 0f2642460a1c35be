"""How the web service asks its supervisor to restart services once set-up has changed the config.

- supervisord (`appliance up`; `APPLIANCE_SUPERVISOR=supervisord` and
  `APPLIANCE_SUPERVISOR_SOCKET=<run-dir>/supervisor.sock` in the web program's environment):
  restart `turn` and `store` over supervisord's XML-RPC on its private unix socket, then end
  this process; supervisord (`autorestart=true`) starts it again with the new config.
- systemd (`APPLIANCE_SUPERVISOR=systemd`): nothing to do here. A path unit watches the config
  file and restarts the services when it changes.
- Anything else (tests, a bare `appliance web`): log that a restart is needed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import xmlrpc.client
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

SUPERVISOR_ENV = "APPLIANCE_SUPERVISOR"
SOCKET_ENV = "APPLIANCE_SUPERVISOR_SOCKET"
#: supervisord's fault code for stopping a process that is not running.
NOT_RUNNING = 70


@dataclass(frozen=True, slots=True)
class RestartPlan:
    """Services to restart and to stop (by their name in appliance/supervision/services.py);
    `web`: this process must restart too."""

    restart: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    web: bool = True


class Restarter(Protocol):
    #: "supervisord", "systemd" or "manual": what the admin is told.
    kind: str

    async def apply(self, plan: RestartPlan) -> None: ...


def _terminate_self() -> None:
    # The server's own SIGTERM handling shuts down gracefully (open responses are finished).
    os.kill(os.getpid(), signal.SIGTERM)


class SupervisordRestarter:
    kind = "supervisord"

    def __init__(
        self,
        socket_path: str,
        *,
        delay: float = 0.5,
        exit_self: Callable[[], None] = _terminate_self,
    ) -> None:
        self._socket_path = socket_path
        self._delay = delay
        self._exit_self = exit_self

    def _rpc(self, plan: RestartPlan) -> None:
        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(None, None, f"unix://{self._socket_path}")
        # The host part is ignored: the transport talks to the unix socket.
        proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
        try:
            for name in (*plan.stop, *plan.restart):
                try:
                    proxy.supervisor.stopProcess(name, True)
                except xmlrpc.client.Fault as fault:
                    if fault.faultCode != NOT_RUNNING:
                        raise
            for name in plan.restart:
                proxy.supervisor.startProcess(name, True)
        finally:
            transport.close()

    async def apply(self, plan: RestartPlan) -> None:
        # Let the HTTP response that finished set-up reach the browser first.
        await asyncio.sleep(self._delay)
        try:
            await asyncio.to_thread(self._rpc, plan)
            log.info(
                "restarted %s and stopped %s through supervisord",
                ", ".join(plan.restart) or "nothing",
                ", ".join(plan.stop) or "nothing",
            )
        except (OSError, xmlrpc.client.Error) as exc:
            log.error("could not restart services through supervisord: %s", exc)
        if plan.web:
            log.info("set-up changed the config: the web service restarts now")
            self._exit_self()


class SystemdRestarter:
    kind = "systemd"

    async def apply(self, plan: RestartPlan) -> None:
        log.info("config changed: systemd restarts the services (appliance-reload.path)")


class ManualRestarter:
    kind = "manual"

    async def apply(self, plan: RestartPlan) -> None:
        services = [*plan.restart, *plan.stop, *(["web"] if plan.web else [])]
        log.warning(
            "set-up changed the config: restart the appliance (%s) to apply it",
            ", ".join(services),
        )


def from_environment(environ: Mapping[str, str] | None = None) -> Restarter:
    env = os.environ if environ is None else environ
    kind = env.get(SUPERVISOR_ENV, "")
    if kind == "supervisord":
        socket_path = env.get(SOCKET_ENV, "")
        if socket_path:
            return SupervisordRestarter(socket_path)
        log.warning("%s=supervisord but %s is not set", SUPERVISOR_ENV, SOCKET_ENV)
    elif kind == "systemd":
        return SystemdRestarter()
    return ManualRestarter()


def describe(restarter: Restarter, services: Sequence[str]) -> str:
    """A sentence for the admin about what happens next."""
    if restarter.kind == "manual":
        return "Restart the appliance to apply the new settings."
    return (
        f"The appliance now restarts its services ({', '.join(services)}) to apply the new "
        "settings; this takes a few seconds."
    )
