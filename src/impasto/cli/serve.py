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

Jobs persist under IMPASTO_HOME (default ~/.impasto): SQLite plus one folder per job. A restart
keeps finished results and re-queues jobs that were queued or running. Identical requests are
answered from the cache. The page lists the methods of the registry with forms built from their
options; the REST API is documented at /docs.
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
    p.add_argument("--workers", type=int, default=1, help="jobs run at the same time (default: 1)")
    p.add_argument("--backend", choices=("local",), default="local", help="where jobs run: local (worker threads in this process)")
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
    for flag, value in (("--workers", args.workers), ("--port", args.port)):
        if value < 1:
            raise UsageError(f"{flag} must be >= 1, got {value}")
    settings = ServiceSettings(
        home=Path(args.home) if args.home else default_home(),
        workers=args.workers,
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
    print(f"serving at http://{args.host}:{args.port}/ (jobs in {settings.home}; Ctrl-C to stop)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
