"""``impasto serve``: the web service (browser page + REST API + persistent job queue)."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path
from typing import Any

from ..errors import UsageError

__all__ = ["register", "run_command", "check_host"]

EPILOG = """\
examples:
  impasto serve                                   # http://127.0.0.1:8000/ (page), /docs (API)
  impasto serve --workers 2 --models runs/        # offer every trained model in runs/
  impasto serve --host 0.0.0.0 --token SECRET     # other machines: a bearer token on every call
  IMPASTO_HOME=/srv/impasto impasto serve         # where jobs and results persist
  ray start --head && impasto serve --backend ray # jobs as tasks on a Ray cluster (any number of nodes)

Jobs persist under IMPASTO_HOME (default ~/.impasto): SQLite plus one folder per job. A restart
keeps finished results and re-queues jobs that were queued or running. Identical requests are
answered from the cache. With --backend ray the server keeps the queue and each job runs as a
Ray task on the cluster; a job whose worker or node dies is retried on another node. The page
lists the methods of the registry with forms built from their options; the REST API is
documented at /docs.
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the web service: a browser page, a REST API and a job queue",
        description="Serve impasto over HTTP: upload a photo, choose a style and method, follow the job live, download the result.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1; any other needs --token or --insecure)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--workers", type=int, default=None, help="jobs run at the same time (default: 1 with --backend local; with ray, as many as the cluster's CPUs allow)")
    p.add_argument("--backend", choices=("local", "ray"), default="local", help="where jobs run: local (worker threads in this process, the default) or ray (tasks on a Ray cluster)")
    ray = p.add_argument_group("Ray backend (pip install 'impasto[ray]')")
    ray.add_argument("--ray-address", default="auto", metavar="ADDR", help="the cluster to join: HOST:PORT of its head, or auto for the one `ray start` made on this machine (default: auto)")
    ray.add_argument("--ray-node-ip", metavar="ADDR", help="this machine's address in the cluster (default: Ray's guess; 127.0.0.1 for a cluster on loopback)")
    ray.add_argument("--job-cpus", type=float, default=1.0, metavar="N", help="CPUs each job reserves on a node, and the threads it uses (default: 1)")
    p.add_argument("--models", metavar="DIR", help="folder of trained models (model.pt files or training folders) to offer as styles")
    p.add_argument("--styles", metavar="DIR", help="folder of paintings to offer (default: the bundled examples)")
    p.add_argument("--home", metavar="DIR", help="where jobs and results persist (default: $IMPASTO_HOME or ~/.impasto)")
    p.add_argument("--token", help="bearer token required on every API call and on the page (?token=...)")
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback --host without --token")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest accepted upload in MB (default: 20)")
    p.add_argument("--time-limit", type=float, default=600.0, metavar="SECONDS", help="a job fails after this long (default: 600)")
    p.set_defaults(handler=run_command)


def check_host(host: str, token: str | None, insecure: bool) -> None:
    """A non-loopback address needs a token (or an explicit --insecure)."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not token and not insecure:
        raise UsageError(f"--host {host} exposes the service beyond this machine: give --token SECRET (or --insecure to allow anyone)")


def run_command(args: argparse.Namespace) -> int:
    from ..service.app import ServiceSettings, create_app, default_home

    check_host(args.host, args.token, args.insecure)
    for flag, value in (("--workers", args.workers), ("--port", args.port), ("--job-cpus", args.job_cpus)):
        if value is not None and value <= 0:
            raise UsageError(f"{flag} must be > 0, got {value:g}")
    if args.backend != "ray":
        for flag, value, default in (("--ray-address", args.ray_address, "auto"), ("--ray-node-ip", args.ray_node_ip, None), ("--job-cpus", args.job_cpus, 1.0)):
            if value != default:
                raise UsageError(f"{flag} needs --backend ray")
    settings = ServiceSettings(
        home=Path(args.home) if args.home else default_home(),
        workers=args.workers if args.workers is not None else (1 if args.backend == "local" else 0),
        backend=args.backend,
        ray_address=args.ray_address,
        ray_node_ip=args.ray_node_ip,
        cpus_per_job=args.job_cpus,
        models=Path(args.models) if args.models else None,
        styles=Path(args.styles) if args.styles else None,
        token=args.token,
        max_upload_mb=args.max_upload_mb,
        time_limit_s=args.time_limit,
    )
    for flag, path in (("--models", settings.models), ("--styles", settings.styles)):
        if path is not None and not path.is_dir():
            raise UsageError(f"{flag} {path}: not a folder")
    app = create_app(settings)
    try:
        import uvicorn
    except ImportError:
        raise UsageError("impasto serve needs uvicorn: pip install 'impasto[serve]'") from None
    if args.backend == "ray":
        app.state.backend.connect()  # a wrong --ray-address is a one-line error here, not in the server's startup
    print(f"serving at http://{args.host}:{args.port}/ (jobs in {settings.home}; Ctrl-C to stop)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
