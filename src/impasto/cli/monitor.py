"""``impasto monitor``: a local web page with live loss curves and previews of a training run."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path
from typing import Any

from ..errors import UsageError

__all__ = ["register", "run_command", "HOST"]

HOST = "127.0.0.1"  # never exposed beyond this machine

EPILOG = """\
examples:
  impasto monitor models/starry                 # then open http://127.0.0.1:8000/
  impasto monitor models/starry --port 8080

The page polls the run's log.jsonl and previews/ and redraws without reloading; it works while
training runs and after it finished. It listens on 127.0.0.1 only (use an SSH tunnel to watch a
remote machine: ssh -L 8000:127.0.0.1:8000 HOST).
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "monitor",
        help="watch a training run in the browser (localhost only)",
        description="Serve a local page with live loss curves and preview images of a training run.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the training folder (impasto train -o RUN_DIR)")
    p.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (default: 8000)")
    p.set_defaults(handler=run_command)


def _check_port(port: int) -> None:
    if not 1 <= port <= 65535:
        raise UsageError(f"--port must be 1..65535, got {port}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            raise UsageError(f"port {port} on {HOST} is in use; choose another with --port") from None


def run_command(args: argparse.Namespace) -> int:
    from ..service.monitor import create_monitor_app

    run_dir = Path(args.run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"{run_dir}: is not a training folder")
    app = create_monitor_app(run_dir)
    _check_port(args.port)
    try:
        import uvicorn
    except ImportError:
        raise UsageError("the monitor needs uvicorn: pip install 'impasto[monitor]'") from None
    print(f"monitoring {run_dir} at http://{HOST}:{args.port}/ (Ctrl-C to stop)", file=sys.stderr)
    uvicorn.run(app, host=HOST, port=args.port, log_level="warning")
    return 0
