"""`make demo`: set up the demo catalog, train the first model and run the whole product.

Every step is an ordinary management command run as a subprocess, so the demo exercises exactly
what an operator would run, and this process stays small (no TensorFlow, no Django models).
Running it again is safe: each step is idempotent and the admin password is kept unless a new
one is given. Ctrl-C stops every process it started.
"""

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from demo.flowers import FLOWERS_URL, FlowersError, prepare_flowers_catalog

REPO_ROOT = Path(__file__).resolve().parent.parent
CATALOG_DIR = REPO_ROOT / "demo" / "catalog"
MANAGE = [sys.executable, str(REPO_ROOT / "manage.py")]

VAR_DIR = Path(os.environ.get("CATALOG_VAR_DIR", REPO_ROOT / "var"))

# The demo trains exactly what `train_classifier` trains by default (EfficientNet-Lite0 with
# its shipped ImageNet weights, a cross-validated head, calibrated thresholds), so what it shows
# is what a shop gets. DEMO_IMAGE_SIZE shrinks the input for the demo's own end-to-end test;
# nobody needs it to try the product.
DEMO_IMAGE_SIZE = os.environ.get("DEMO_IMAGE_SIZE", "")


class DemoStepError(Exception):
    """A step of the demo failed; the message says which and where its output is."""


def demo_training_args() -> list[str]:
    return ["--seed", "42", *(["--image-size", DEMO_IMAGE_SIZE] if DEMO_IMAGE_SIZE else [])]


def _env() -> dict[str, str]:
    env = os.environ.copy()
    env.setdefault("DJANGO_DEBUG", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def manage(*args: str) -> None:
    """Run one management command, its output going to the terminal."""
    print(f"$ manage.py {' '.join(args)}", flush=True)
    result = subprocess.run([*MANAGE, *args], cwd=REPO_ROOT, env=_env())
    if result.returncode:
        raise DemoStepError(f"`manage.py {' '.join(args)}` failed (exit {result.returncode}); "
                            "its output is above.")


def manage_output(*args: str) -> str:
    """Run a management command quietly and return its standard output."""
    result = subprocess.run([*MANAGE, *args], cwd=REPO_ROOT, env=_env(), capture_output=True,
                            text=True)
    if result.returncode:
        raise DemoStepError(f"`manage.py {args[0]}` failed (exit {result.returncode}):\n"
                            f"{result.stderr.strip()[-3000:]}")
    return result.stdout.strip()


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


SUMMARY_CODE = """
import json
from catalog.models import Category, Product
from classifier.models import ModelVersion
model = ModelVersion.objects.filter(is_active=True).first()
print(json.dumps({
    "products": Product.objects.count(),
    "labelled": Product.objects.filter(category_source="person").count(),
    # Categories a product can be filed under; parents such as "Food & drink" only group them.
    "categories": Category.objects.filter(children__isnull=True).count(),
    "model": str(model) if model else None,
    "accuracy": model.accuracy if model else None,
}))
"""


def catalog_summary() -> dict:
    """What the demo has set up: product counts and the active model's test accuracy."""
    return json.loads(manage_output("shell", "-c", SUMMARY_CODE).splitlines()[-1])


def print_summary(summary: dict) -> None:
    accuracy = summary["accuracy"]
    model = summary["model"] or "none (training did not produce one)"
    if accuracy is not None:
        model += f", held-out accuracy {accuracy:.1%} on products it had not seen"
    print(f"\nDemo catalog: {summary['products']} products in {summary['categories']} "
          f"categories, {summary['labelled']} labelled by a person.\nActive model: {model}.",
          flush=True)


# What the classifier did to the products a person has not labelled, checked against the demo
# catalog's own ground truth (its CSV names every product's true category).
AUTO_FILL_CODE = """
import csv, json
from catalog.models import Product
from classifier.models import ClassificationJob
truth = {{row["sku"]: row["category_slug"] for row in csv.DictReader(open({csv!r}))}}
busy = ClassificationJob.objects.filter(finished_at__isnull=True).exists()
new = Product.objects.exclude(category_source="person").filter(sku__in=list(truth))
filled = list(new.filter(category_source="classifier").values_list("sku", "category__slug"))
print(json.dumps({{"busy": busy, "new": new.count(), "filled": len(filled),
                  "right": sum(truth[sku] == slug for sku, slug in filled),
                  "review": new.filter(review_status="needs_review").count()}}))
"""
# Longest the demo waits for its classification job before printing the figures anyway.
CLASSIFY_WAIT_SECONDS = 600


def auto_fill_report(catalog_csv: Path) -> dict:
    """How many unlabelled products the classifier filed itself, and how many of those are right."""
    code = AUTO_FILL_CODE.format(csv=str(catalog_csv))
    return json.loads(manage_output("shell", "-c", code).splitlines()[-1])


def wait_and_report_auto_fill(catalog_csv: Path, *, seconds: float = CLASSIFY_WAIT_SECONDS
                              ) -> dict:
    """Wait for the classification jobs to finish, then print the auto-fill figures."""
    deadline = time.monotonic() + seconds
    report = auto_fill_report(catalog_csv)
    while report["busy"] and time.monotonic() < deadline:
        time.sleep(2)
        report = auto_fill_report(catalog_csv)
    print(auto_fill_line(report), flush=True)
    return report


def auto_fill_line(report: dict) -> str:
    new, filled, right = report["new"], report["filled"], report["right"]
    if not new:
        return "Every product is labelled by a person: nothing left for the classifier."
    line = (f"\nThe classifier filed {filled} of the {new} products nobody had labelled "
            f"({filled / new:.0%}) on its own")
    if filled:
        line += (f"; {right} of those {filled} ({right / filled:.1%}) match the demo catalog's "
                 "ground truth")
    line += f". {report['review']} wait in the review queue for a person."
    if report["busy"]:
        line += " (Classification was still running; the figures will still change.)"
    return line


def wait_for_http(url: str, server: subprocess.Popen, seconds: float = 60) -> bool:
    """Wait until our server answers; False if it exits first (e.g. the port is taken)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and server.poll() is None:
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


# qcluster stops its workers gracefully on SIGTERM; this is how long that may take.
STOP_GRACE_SECONDS = 20


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass  # the whole group has already exited


def stop_processes(processes: list[subprocess.Popen]) -> None:
    """Stop each process with its whole group (qcluster's workers too); none is left behind."""
    # SIGTERM to each leader only: qcluster then stops its sentinel and workers in order
    # (signalling the whole group kills those first and leaves the leader waiting on them).
    for proc in processes:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for proc in processes:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    # A leader that ignored SIGTERM, or a worker it left behind, is killed outright.
    for proc in processes:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", 8000)))
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", default=os.environ.get("DEMO_PASSWORD"),
                        help="Set (or reset) the demo admin's password instead of a random one.")
    parser.add_argument("--flowers", action="store_true",
                        help="Online only: download the tutorial's flower photos as the catalog.")
    parser.add_argument("--flowers-url", default=FLOWERS_URL,
                        help="Where to download the flower archive from (e.g. a local mirror).")
    parser.add_argument("--setup-only", action="store_true",
                        help="Prepare the database, catalog and model, then exit.")
    return parser.parse_args(argv)


def setup(args: argparse.Namespace) -> str | None:
    manage("migrate", "--no-input")
    password = ensure_admin(args.username, args.password)
    if args.flowers:
        catalog_csv, categories_csv = prepare_flowers_catalog(VAR_DIR / "flowers",
                                                              url=args.flowers_url)
    else:
        catalog_csv, categories_csv = CATALOG_DIR / "catalog.csv", CATALOG_DIR / "categories.csv"
    args.catalog_csv = catalog_csv  # run() checks the classifier against its ground truth
    # Image paths in the CSV are relative to its folder.
    manage("import_catalog", str(catalog_csv), "--categories", str(categories_csv),
           "--images-dir", str(catalog_csv.parent))
    if not has_model_version():
        manage("train_classifier", *demo_training_args(), "--activate", "--name", "demo")
    print_summary(catalog_summary())
    return password


def login_text(username: str, password: str | None) -> str:
    if password:
        return (f"{username}   password: {password}  (shown once; pass --password or "
                "DEMO_PASSWORD to reset)")
    return f"{username}   password: unchanged (pass --password to reset it)"


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        password = setup(args)
    except (DemoStepError, FlowersError) as exc:
        print(f"\nThe demo stopped during setup: {exc}", file=sys.stderr)
        return 1
    if args.setup_only:
        print(f"Setup done. Login: {login_text(args.username, password)}", flush=True)
        return 0
    return run(args, password)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def stop_on_termination_signals() -> None:
    """Make SIGTERM and SIGHUP (``kill``, a closed terminal, a process manager) stop the demo
    as Ctrl-C does. Its servers run in sessions of their own, so a demo that just died would
    leave them running and the port taken. SIGINT is restored too: a shell that starts the demo
    as a background job starts it with SIGINT ignored."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    for sig in STOP_SIGNALS:
        signal.signal(sig, interrupt)


def run(args: argparse.Namespace, password: str | None) -> int:
    """Start the web server and both worker clusters, classify, and wait for Ctrl-C."""
    stop_on_termination_signals()
    processes = start_processes(args.host, args.port)
    base = f"http://{args.host}:{args.port}"
    try:
        if not wait_for_http(f"{base}/admin/login/", processes[0]):
            print(f"The web server did not start on {args.host}:{args.port}; see its output "
                  "above (is the port taken? pass --port or DEMO_PORT).", file=sys.stderr)
            return 1
        manage("classify_catalog", "--unclassified")
        wait_and_report_auto_fill(args.catalog_csv)
        print(f"\nCatalog Classifier is running.\n  Admin:    {base}/admin/\n"
              f"  API docs: {base}/api/docs/\n  Login:    {login_text(args.username, password)}\n"
              "Press Ctrl-C to stop.\n", flush=True)
        while all(proc.poll() is None for proc in processes):
            time.sleep(1)
        print("A demo process exited; stopping the others.", file=sys.stderr)
        return 1
    except DemoStepError as exc:
        print(f"\nThe demo stopped: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping…", flush=True)
        return 0
    finally:
        for sig in STOP_SIGNALS:  # a second signal must not cut the clean-up short
            signal.signal(sig, signal.SIG_IGN)
        stop_processes(processes)


if __name__ == "__main__":
    sys.exit(main())
