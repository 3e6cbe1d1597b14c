"""scripts/loadtest: drive the stack with the photo mix. See docs/reliability.md.

  scripts/loadtest smoke                      # 30 s, 8 clients, against run-local on $PORT
  scripts/loadtest capacity                   # steps up clients until p99 > 2 s
  scripts/loadtest soak --minutes 60 --rate 20
  scripts/loadtest soak --minutes 10          # rate = 70 % of a capacity run's figure

Target: --url (default http://127.0.0.1:$PORT, PORT default 8080), the stack's names --ui-host and
--api-host (default $UI_HOST, $API_HOST or *.service.localhost). HTTPS: --url https://127.0.0.1:8443
(run-local's HTTPS_PORT); every request's TLS handshake names its host and the certificate is
verified for it, against the system's roots or --ca-cert FILE (a private CA). The processes whose
memory and file descriptors are watched come from --run-dir (scripts/run-local's
RUN_DIR/services.json) or --pid NAME=PID. Reports (CSV, HTML, summary.json) go to --out. Exit
status 1 when a request failed (or, for soak, resources grew past the bounds); a 429
`uploads_busy` (the edge shedding large uploads on purpose) is counted as shed, not failed."""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from loadtest.payloads import API_HOST, UI_HOST, build_mix  # noqa: E402
from loadtest.run import run_load  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO.parent / "shared" / "fixtures" / "leaf-photos"
P99_LIMIT_MS = 2000.0
CAPACITY_STEPS = (1, 2, 4, 8, 12, 16, 24, 32, 48)
SOAK_SHARE = 0.7
RSS_GROWTH_LIMIT_PCT = 10.0
FD_GROWTH_LIMIT = 4  # a gRPC reconnect or a log rotation may hold a few for a while


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/loadtest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", choices=["smoke", "capacity", "soak", "fixed"])
    parser.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('PORT', '8080')}")
    parser.add_argument("--ui-host", default=os.environ.get("UI_HOST") or UI_HOST,
                        help="the page's host name (Host header, SNI)")
    parser.add_argument("--api-host", default=os.environ.get("API_HOST") or API_HOST,
                        help="the API's host name (Host header, SNI)")
    parser.add_argument("--ca-cert", metavar="FILE",
                        help="HTTPS: verify the stack's certificates against this CA file")
    parser.add_argument("--run-dir", type=Path, default=os.environ.get("RUN_DIR"),
                        help="scripts/run-local's RUN_DIR: watch its model server and API")
    parser.add_argument("--pid", action="append", default=[], metavar="NAME=PID")
    parser.add_argument("--out", type=Path, default=Path("test-artifacts/loadtest"))
    parser.add_argument("--users", type=int, help="clients (smoke 8, soak 16, fixed 8)")
    parser.add_argument("--seconds", type=float, help="length (smoke 30, fixed 30)")
    parser.add_argument("--minutes", type=float, default=10.0, help="soak length")
    parser.add_argument("--rate", type=float, help="soak/fixed: requests/s for all clients")
    parser.add_argument("--capacity-json", type=Path,
                        help="soak: take the rate from this capacity summary (x 0.7)")
    parser.add_argument("--step-seconds", type=float, default=20.0, help="capacity step length")
    parser.add_argument("--max-users", type=int, default=CAPACITY_STEPS[-1],
                        help="capacity: the last step")
    parser.add_argument("--no-large", action="store_true", help="leave 12 MP photos out")
    parser.add_argument("--photos", type=Path, default=PHOTOS)
    return parser.parse_args(argv)


def watched_pids(args: argparse.Namespace) -> dict[str, int]:
    pids = {}
    if args.run_dir and (args.run_dir / "services.json").is_file():
        services = json.loads((args.run_dir / "services.json").read_text())["services"]
        pids = {name: info["pid"] for name, info in services.items()
                if name in ("model-server", "api") and info.get("pid")}
    for item in args.pid:
        name, _, pid = item.partition("=")
        pids[name] = int(pid)
    return pids


def printable(summary: dict[str, Any]) -> str:
    return (f"{summary['name']}: {summary['users']} clients, {summary['seconds']} s, "
            f"{summary['requests']} requests, {summary['failures']} failed, "
            f"{summary.get('shed', 0)} shed by the edge (429 uploads_busy, the limits working), "
            f"{summary['rps']} req/s, p50 {summary['p50_ms']:.0f} ms, "
            f"p99 {summary['p99_ms']:.0f} ms")


def capacity(args: argparse.Namespace, mix: list, pids: dict[str, int]) -> dict[str, Any]:
    steps = []
    for users in [u for u in CAPACITY_STEPS if u <= args.max_users]:
        step = run_load(args.url, mix, users=users, seconds=args.step_seconds, out_dir=args.out,
                        name=f"capacity-{users:02d}", pids=pids, window=args.step_seconds,
                        html=False, ca_cert=args.ca_cert)
        step.pop("_monitor")
        print(printable(step), flush=True)
        steps.append(step)
        if step["p99_ms"] > P99_LIMIT_MS or step["failures"] > 0.01 * max(step["requests"], 1):
            break
    held = [s for s in steps if s["p99_ms"] <= P99_LIMIT_MS and s["failures"] == 0]
    best = max(held, key=lambda s: s["rps"]) if held else None
    return {"profile": "capacity", "p99_limit_ms": P99_LIMIT_MS, "steps": steps,
            "capacity_rps": best["rps"] if best else 0.0,
            "capacity_users": best["users"] if best else 0,
            "failures": sum(s["failures"] for s in steps if s in held)}


def soak_verdict(summary: dict[str, Any], monitor: Any, warmup: float) -> dict[str, Any]:
    growth = monitor.growth(warmup)
    problems = []
    if summary["failures"]:
        problems.append(f"{summary['failures']} failed requests")
    for service, figures in growth.items():
        if figures["rss_growth_pct"] > RSS_GROWTH_LIMIT_PCT:
            problems.append(f"{service} RSS grew {figures['rss_growth_pct']:.1f} %")
        if figures["fds_growth"] > FD_GROWTH_LIMIT:
            problems.append(f"{service} open fds grew by {figures['fds_growth']:.0f}")
    windows = [w["p99_ms"] for w in summary["windows"] if w["window_start_s"] >= warmup]
    return {"warmup_s": warmup, "resources": growth, "p99_by_window_ms": windows,
            "problems": problems}


def main(argv: list[str]) -> int:
    args = arguments(argv)
    if not args.photos.is_dir():
        print(f"no photos in {args.photos}", file=sys.stderr)
        return 2
    if args.ca_cert and not Path(args.ca_cert).is_file():
        print(f"--ca-cert {args.ca_cert}: no such file", file=sys.stderr)
        return 2
    mix = build_mix(sorted(args.photos.glob("*.jpg")), large=not args.no_large,
                    api_host=args.api_host, ui_host=args.ui_host)
    pids = watched_pids(args)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    if args.profile == "capacity":
        result = capacity(args, mix, pids)
        print(f"capacity: {result['capacity_rps']} req/s at {result['capacity_users']} clients "
              f"(p99 <= {P99_LIMIT_MS:.0f} ms)")
        failed = result["failures"] > 0
    else:
        if args.profile == "soak":
            rate = args.rate
            if rate is None and args.capacity_json:
                rate = SOAK_SHARE * json.loads(args.capacity_json.read_text())["capacity_rps"]
            if not rate:
                print("soak needs --rate or --capacity-json", file=sys.stderr)
                return 2
            seconds, users = args.minutes * 60, args.users or 16
        else:  # smoke and fixed
            rate, seconds, users = args.rate, args.seconds or 30.0, args.users or 8
        window = 60.0 if seconds >= 300 else 10.0
        result = run_load(args.url, mix, users=users, seconds=seconds, out_dir=args.out,
                          name=args.profile, rate=rate, pids=pids, window=window,
                          ca_cert=args.ca_cert)
        monitor = result.pop("_monitor")
        print(printable(result))
        failed = result["failures"] > 0
        if args.profile == "soak":
            result["verdict"] = soak_verdict(result, monitor, warmup=max(60.0, seconds * 0.2))
            for service, figures in result["verdict"]["resources"].items():
                print(f"  {service}: RSS {figures['rss_after_warmup_mib']:.0f} -> "
                      f"{figures['rss_end_mib']:.0f} MiB ({figures['rss_growth_pct']:+.1f} %), "
                      f"fds {figures['fds_after_warmup']:.0f} -> {figures['fds_end']:.0f}")
            failed = bool(result["verdict"]["problems"])
            for problem in result["verdict"]["problems"]:
                print(f"  FAILED: {problem}")
    for error, count in list(result.get("errors", {}).items())[:10]:
        print(f"  {count} x {error}")
    result.update(started=started, watched=pids)
    (args.out / f"{args.profile}-summary.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"reports: {args.out}/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
