"""`make demo`: set up the demo catalog, train the first model and run the whole product.

Every step is an ordinary management command run as a subprocess, so the demo exercises exactly
what an operator would run, and this process stays small (no TensorFlow, no Django models).
Running it again is safe: each step is idempotent and the admin password is kept unless a new
one is given. Ctrl-C stops every process it started.
"""

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CATALOG_DIR = REPO_ROOT / "demo" / "catalog"
MANAGE = [sys.executable, str(REPO_ROOT / "manage.py")]

# Small enough to train in about a minute on two cores, large enough to tell the nine
# categories apart on 160x160 renderings.
DEMO_TRAINING = ["--architecture", "cnn", "--image-size", "96", "--epochs", "20",
                 "--batch-size", "32", "--seed", "42"]


def _env() -> dict[str, str]:
    env = os.environ.copy()
    env.setdefault("DJANGO_DEBUG", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def manage(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    print(f"$ manage.py {' '.join(args)}", flush=True)
    return subprocess.run([*MANAGE, *args], cwd=REPO_ROOT, env=_env(), check=check)


def manage_output(*args: str) -> str:
    return subprocess.run(
        [*MANAGE, *args], cwd=REPO_ROOT, env=_env(), check=True, capture_output=True, text=True
    ).stdout.strip()


def ensure_admin(username: str, password: str | None) -> str | None:
    """Create the demo admin, or reset its password when one is given. Returns a new password."""
    code = (
        "from django.contrib.auth import get_user_model; U = get_user_model(); "
        f"print('exists' if U.objects.filter(username={username!r}).exists() else 'missing')"
    )
    state = manage_output("shell", "-c", code).splitlines()[-1]
    if state == "exists" and not password:
        return None
    password = password or secrets.token_urlsafe(12)
    code = (
        "from django.contrib.auth import get_user_model; U = get_user_model(); "
        f"u = U.objects.filter(username={username!r}).first() or "
        f"U.objects.create_superuser({username!r}, 'admin@example.com', {password!r}); "
        f"u.set_password({password!r}); u.save()"
    )
    manage_output("shell", "-c", code)
    return password


def has_model_version() -> bool:
    code = "from classifier.models import ModelVersion; print(ModelVersion.objects.exists())"
    return manage_output("shell", "-c", code).splitlines()[-1] == "True"


def wait_for_http(url: str, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # the server answered
        except OSError:
            time.sleep(0.5)
    return False


def start_processes(host: str, port: int) -> list[subprocess.Popen]:
    env = _env()
    commands = [
        [*MANAGE, "runserver", f"{host}:{port}", "--noreload"],
        [*MANAGE, "qcluster"],
        # Training has its own cluster: long timeout, one worker, never retried.
        [*MANAGE, "qcluster"],
    ]
    envs = [env, env, {**env, "Q_CLUSTER_NAME": "training"}]
    return [
        subprocess.Popen(cmd, cwd=REPO_ROOT, env=e, start_new_session=True)
        for cmd, e in zip(commands, envs, strict=True)
    ]


def stop_processes(processes: list[subprocess.Popen]) -> None:
    for proc in processes:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for proc in processes:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", 8000)))
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", default=os.environ.get("DEMO_PASSWORD"),
                        help="Set (or reset) the demo admin's password instead of a random one.")
    parser.add_argument("--flowers", action="store_true",
                        help="Online only: download the tutorial's flower photos as the catalog.")
    parser.add_argument("--setup-only", action="store_true",
                        help="Prepare the database, catalog and model, then exit.")
    return parser.parse_args(argv)


def setup(args: argparse.Namespace) -> str | None:
    manage("migrate", "--no-input")
    password = ensure_admin(args.username, args.password)
    if args.flowers:
        from demo.flowers import prepare_flowers_catalog

        catalog_csv, categories_csv = prepare_flowers_catalog(REPO_ROOT / "var" / "flowers")
    else:
        catalog_csv, categories_csv = CATALOG_DIR / "catalog.csv", CATALOG_DIR / "categories.csv"
    manage("import_catalog", str(catalog_csv), "--categories", str(categories_csv))
    if not has_model_version():
        manage("train_classifier", *DEMO_TRAINING, "--activate", "--name", "demo")
    return password


def main(argv=None) -> int:
    args = parse_args(argv)
    password = setup(args)
    if args.setup_only:
        return 0
    processes = start_processes(args.host, args.port)
    base = f"http://{args.host}:{args.port}"
    try:
        if not wait_for_http(f"{base}/admin/login/"):
            print("The web server did not start; see its output above.", file=sys.stderr)
            return 1
        manage("classify_catalog", "--unclassified")
        login = (f"password: {password}  (shown once; pass --password or DEMO_PASSWORD to reset)"
                 if password else "password: unchanged (pass --password to reset it)")
        print(f"\nCatalog Classifier is running.\n  Admin:    {base}/admin/\n"
              f"  API docs: {base}/api/docs/\n  Login:    {args.username}   {login}\n"
              "Press Ctrl-C to stop.\n", flush=True)
        while all(proc.poll() is None for proc in processes):
            time.sleep(1)
        print("A demo process exited; stopping the others.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping…", flush=True)
        return 0
    finally:
        stop_processes(processes)


if __name__ == "__main__":
    sys.exit(main())
